//! Two real star-heartbeat processes on one shared disk file, with a witness, recording
//! stand-ins for star-target and star-takeover, an init stand-in that plays the hardware
//! watchdog (a node that stops sending WATCHDOG=1 for the watchdog timeout is killed with
//! SIGKILL, as the reset would), and a UDP relay between the two daemons that can cut each
//! direction. No VM and no root: the disk is a file, its faults come from the daemon's
//! `--disk-fault` layer.
//!
//! Every scenario ends with the invariant checked on what the stand-ins recorded: never
//! two nodes with the target promoted at once in the same term, terms never go down, and
//! a reset node counts as demoted at its reset.
//!
//! `STAR_HARNESS_TIMING=lab` (or `ebs`) runs with star.toml's lab timeouts or the EBS
//! defaults instead of the short ones (bench/failover.sh uses it).

use star_core::heartbeat_status::{HeartbeatReply, HeartbeatRequest, HeartbeatStatus};
use star_core::node_config::Timeouts;
use star_disk::buf::Block;
use star_disk::layout::{heartbeat_block, meta_block_offset};
use star_disk::ownership::{self, Ownership};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STAR_HEARTBEAT: &str = env!("CARGO_BIN_EXE_star-heartbeat");
const KEY: &str = "5f0c3a1e9b7d2c4a6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809";
const LAB: &str = include_str!("../../../board/examples/lab-ctl1.star.toml");

fn timeouts() -> Timeouts {
    match std::env::var("STAR_HARNESS_TIMING").as_deref() {
        // The lab's star.toml [timeouts] (board/examples/lab-ctl*.star.toml).
        Ok("lab") => {
            let value = |key: &str| -> u64 {
                LAB.lines()
                    .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix('='))
                    .and_then(|v| v.split('#').next()?.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{key} in lab-ctl1.star.toml"))
            };
            Timeouts {
                heartbeat_interval: Duration::from_millis(value("heartbeat_interval_ms")),
                io_timeout: Duration::from_millis(value("io_timeout_ms")),
                peer_dead: Duration::from_millis(value("peer_dead_ms")),
                watchdog: Duration::from_secs(value("watchdog_sec")),
            }
        }
        Ok("ebs") => Timeouts::default(),
        _ => Timeouts {
            heartbeat_interval: Duration::from_millis(100),
            io_timeout: Duration::from_millis(400),
            peer_dead: Duration::from_millis(1000),
            // Above the 1 s the rules allow here, so that a loaded test machine starving a
            // daemon for a second is not taken for a fault: msgwait is 6 s.
            watchdog: Duration::from_secs(3),
        },
    }
}

/// The longest a failover may take with stand-ins that answer at once, plus slack for a
/// loaded test machine.
fn failover_bound(t: &Timeouts) -> Duration {
    t.peer_dead
        + t.heartbeat_interval * 4
        + t.io_timeout * 3
        + t.watchdog * 3
        + Duration::from_secs(3)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Promote {
        term: u64,
    },
    Demote,
    Acquire,
    Release,
    /// Asked star-takeover to power the peer off (star.toml's [fencing]).
    FencePeer,
    /// The harness's watchdog killed the node (or the scenario did, with kill -9).
    Reset,
    Stop,
    Cont,
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    at: Instant,
    node: u8,
    kind: Kind,
}

type Log = Arc<Mutex<Vec<Rec>>>;

fn record(log: &Log, node: u8, kind: Kind) {
    log.lock().unwrap().push(Rec {
        at: Instant::now(),
        node,
        kind,
    });
}

/// What the init stand-in knows of one node.
#[derive(Debug, Default)]
struct Watch {
    pid: Option<i32>,
    last_feed: Option<Instant>,
    feeds: Vec<Instant>,
    ready: bool,
    status: String,
    /// SIGSTOPped: the whole machine, its watchdog included, is frozen.
    paused_at: Option<Instant>,
    /// WATCHDOG_USEC= as the daemon set it.
    watchdog_usec: Option<u64>,
    /// WATCHDOG=trigger: the daemon asked to be reset now.
    triggered: bool,
}

struct Node {
    id: u8,
    child: Option<Child>,
    socket: PathBuf,
    fault: PathBuf,
    stderr: PathBuf,
    watch: Arc<Mutex<Watch>>,
}

struct Cluster {
    name: String,
    dir: PathBuf,
    disk: PathBuf,
    t: Timeouts,
    nodes: Vec<Node>,
    log: Log,
    cut: [Arc<AtomicBool>; 2],
    witness_dead: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn free_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn read_ownership(disk: &Path) -> Option<Ownership> {
    let mut f = std::fs::File::open(disk).ok()?;
    f.seek(SeekFrom::Start(ownership::OFFSET)).ok()?;
    let mut b = Block([0; 4096]);
    f.read_exact(&mut b.0).ok()?;
    Ownership::decode(&b).ok().flatten()
}

fn star_toml(id: u8, witness: &str, t: &Timeouts) -> String {
    let mut out = String::new();
    for line in LAB.lines() {
        let l = line.trim_start();
        let line = if l.starts_with("name = \"ctl1\"") {
            format!("name = \"ctl{id}\"")
        } else if l.starts_with("id = 1") {
            format!("id = {id}")
        } else if l.starts_with("url = ") {
            format!("url = \"{witness}\"")
        } else if l.starts_with("heartbeat_interval_ms") {
            format!(
                "heartbeat_interval_ms = {}",
                t.heartbeat_interval.as_millis()
            )
        } else if l.starts_with("io_timeout_ms") {
            format!("io_timeout_ms = {}", t.io_timeout.as_millis())
        } else if l.starts_with("peer_dead_ms") {
            format!("peer_dead_ms = {}", t.peer_dead.as_millis())
        } else if l.starts_with("watchdog_sec") {
            format!("watchdog_sec = {}", t.watchdog.as_secs())
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    // Power fencing on: the takeover stand-in answers it like the rest.
    out.push_str(&format!(
        "\n[fencing]\nmethod = \"aws-stop-instance\"\npeer_instance_id = \"i-0000000000000000{}\"\n",
        3 - id
    ));
    out
}

/// The witness, in-process, behind a gate: "killing" it closes its port, so the
/// controllers see what they would see of a dead witness host: connection refused.
fn start_witness(dir: &Path, dead: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> String {
    let state = dir.join("witness");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = star_witness::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: state,
        lease: Duration::from_millis(1500),
        max_skew: Duration::from_secs(30),
        volatile_state: false,
        arrays: vec![star_witness::config::Array {
            name: "star-lab".into(),
            key: star_core::cluster_auth::from_hex(KEY).unwrap(),
        }],
    };
    let w = Arc::new(
        star_witness::server::Witness::open(
            &cfg,
            star_witness::grant::Now {
                mono_ms: 0,
                unix_ms: 0,
            },
        )
        .unwrap(),
    );
    let inner = TcpListener::bind("127.0.0.1:0").unwrap();
    let inner_addr = inner.local_addr().unwrap();
    std::thread::spawn(move || star_witness::server::serve(w, inner));
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", front.local_addr().unwrap());
    front.set_nonblocking(true).unwrap();
    std::thread::spawn(move || loop {
        if dead.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
            return; // the listener closes: connection refused from now on
        }
        match front.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(inner_addr) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let (mut c, mut s) = (client, server);
                    let _ = std::io::copy(&mut s, &mut c);
                });
            }
            Err(_) => sleep(Duration::from_millis(5)),
        }
    });
    url
}

/// A stand-in for star-target's or star-takeover's control socket: records every
/// request and answers done.
fn stand_in(path: &Path, node: u8, log: Log, disk: PathBuf) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut line = String::new();
            if BufReader::new(&s).read_line(&mut line).is_err() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let kind = match v["cmd"].as_str() {
                // star-target reads the term from the ownership record, as we do here.
                Some("promote") => Some(Kind::Promote {
                    term: read_ownership(&disk).map_or(0, |o| o.term),
                }),
                Some("demote") => Some(Kind::Demote),
                Some("acquire") => Some(Kind::Acquire),
                Some("release") => Some(Kind::Release),
                Some("fence_peer") => Some(Kind::FencePeer),
                _ => None,
            };
            if let Some(k) = kind {
                record(&log, node, k);
            }
            let _ = (&s).write_all(b"{\"reply\":\"done\",\"message\":\"ok\"}\n");
        }
    });
}

fn notify_stand_in(path: &Path, watch: Arc<Mutex<Watch>>, stop: Arc<AtomicBool>) {
    let sock = UnixDatagram::bind(path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let mut w = watch.lock().unwrap();
            for line in text.lines() {
                match line {
                    "WATCHDOG=1" => {
                        let now = Instant::now();
                        w.last_feed = Some(now);
                        w.feeds.push(now);
                    }
                    "READY=1" => w.ready = true,
                    "WATCHDOG=trigger" => w.triggered = true,
                    l if l.starts_with("WATCHDOG_USEC=") => {
                        w.watchdog_usec = l[14..].parse().ok();
                    }
                    l if l.starts_with("STATUS=") => w.status = l[7..].to_string(),
                    _ => {}
                }
            }
        }
    });
}

/// The hardware watchdog: a node not fed for the timeout is reset (SIGKILL).
fn watchdog(
    nodes: Vec<(u8, Arc<Mutex<Watch>>)>,
    timeout: Duration,
    log: Log,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            for (id, w) in &nodes {
                let mut w = w.lock().unwrap();
                let (Some(pid), Some(last)) = (w.pid, w.last_feed) else {
                    continue;
                };
                if w.paused_at.is_none() && last.elapsed() > timeout {
                    unsafe { libc_kill(pid, 9) };
                    w.pid = None;
                    drop(w);
                    record(&log, *id, Kind::Reset);
                    eprintln!("harness: watchdog reset node {id}");
                }
            }
            sleep(Duration::from_millis(10));
        }
    });
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

impl Cluster {
    fn start(name: &str) -> Cluster {
        Cluster::start_with(name, false)
    }

    /// `learn_peer`: no --peer and no relay; each daemon finds the other's heartbeat
    /// address in its disk slot, as in the appliance (the interconnect cannot be cut).
    fn start_with(name: &str, learn_peer: bool) -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let t = timeouts();
        let dir = std::env::temp_dir().join(format!(
            "star-hb-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("shared.img");
        std::fs::File::create(&disk)
            .unwrap()
            .set_len(80 << 20)
            .unwrap();
        star_disk::init::init(
            &disk,
            &star_disk::init::InitRequest::new("star-lab", 1, unix_now()),
        )
        .unwrap();
        let log: Log = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let witness_dead = Arc::new(AtomicBool::new(false));
        let witness = start_witness(&dir, witness_dead.clone(), stop.clone());

        // The relay: node n sends to relay[n-1], which forwards to the other's listen port.
        let listen = [free_udp_port(), free_udp_port()];
        let cut = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        let mut relay_addr = Vec::new();
        for from in 0..2 {
            let r = UdpSocket::bind("127.0.0.1:0").unwrap();
            r.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            relay_addr.push(r.local_addr().unwrap());
            let to = listen[1 - from];
            let (cut, stop) = (cut[from].clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = r.recv(&mut buf) {
                        if !cut.load(Ordering::SeqCst) {
                            let _ = r.send_to(&buf[..n], to);
                        }
                    }
                }
            });
        }

        let mut nodes = Vec::new();
        for id in 1..=2u8 {
            let i = usize::from(id - 1);
            let config = dir.join(format!("ctl{id}.star.toml"));
            std::fs::write(&config, star_toml(id, &witness, &t)).unwrap();
            let target = dir.join(format!("target{id}.sock"));
            let takeover = dir.join(format!("takeover{id}.sock"));
            stand_in(&target, id, log.clone(), disk.clone());
            stand_in(&takeover, id, log.clone(), disk.clone());
            let notify = dir.join(format!("notify{id}.sock"));
            let watch = Arc::new(Mutex::new(Watch::default()));
            notify_stand_in(&notify, watch.clone(), stop.clone());
            let fault = dir.join(format!("fault{id}"));
            std::fs::write(&fault, "ok").unwrap();
            let socket = dir.join(format!("heartbeat{id}.sock"));
            let stderr = dir.join(format!("ctl{id}.log"));
            let mut cmd = Command::new(STAR_HEARTBEAT);
            cmd.arg("--config")
                .arg(&config)
                .arg("--disk")
                .arg(&disk)
                .arg("--listen")
                .arg(listen[i].to_string());
            if !learn_peer {
                cmd.arg("--peer").arg(relay_addr[i].to_string());
            }
            let child = cmd
                .arg("--init-socket")
                .arg(dir.join("no-init.sock"))
                .arg("--socket")
                .arg(&socket)
                .arg("--target-socket")
                .arg(&target)
                .arg("--takeover-socket")
                .arg(&takeover)
                .arg("--disk-fault")
                .arg(&fault)
                .env("NOTIFY_SOCKET", &notify)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap();
            {
                let mut w = watch.lock().unwrap();
                w.pid = Some(child.id() as i32);
                // The watchdog is armed from the start: a daemon that never feeds is reset.
                w.last_feed = Some(Instant::now() + Duration::from_secs(2));
            }
            nodes.push(Node {
                id,
                child: Some(child),
                socket,
                fault,
                stderr,
                watch,
            });
        }
        watchdog(
            nodes.iter().map(|n| (n.id, n.watch.clone())).collect(),
            t.watchdog,
            log.clone(),
            stop.clone(),
        );
        Cluster {
            name: name.into(),
            dir,
            disk,
            t,
            nodes,
            log,
            cut,
            witness_dead,
            stop,
        }
    }

    fn node(&self, id: u8) -> &Node {
        &self.nodes[usize::from(id - 1)]
    }

    fn status(&self, id: u8) -> Option<HeartbeatStatus> {
        let reply: HeartbeatReply = star_core::control::call(
            &self.node(id).socket,
            &star_core::heartbeat_status::HeartbeatRequest::Status,
            Duration::from_secs(2),
        )
        .ok()?;
        match reply {
            HeartbeatReply::Status { status } => Some(*status),
            _ => None,
        }
    }

    fn role(&self, id: u8) -> Option<String> {
        self.status(id).map(|s| s.role)
    }

    fn wait_for(&self, what: &str, limit: Duration, mut f: impl FnMut(&Cluster) -> bool) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if f(self) {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        self.dump();
        panic!(
            "{}: timed out after {limit:?} waiting for {what}",
            self.name
        );
    }

    /// Waits for one node to be active and returns it.
    fn wait_active(&self) -> u8 {
        let mut found = 0;
        self.wait_for(
            "an active node",
            Duration::from_secs(10) + self.t.peer_dead * 3,
            |c| {
                for id in 1..=2 {
                    if c.role(id).as_deref() == Some("active") {
                        found = id;
                        return true;
                    }
                }
                false
            },
        );
        found
    }

    fn records(&self) -> Vec<Rec> {
        self.log.lock().unwrap().clone()
    }

    fn promotes_since(&self, since: Instant) -> Vec<Rec> {
        self.records()
            .into_iter()
            .filter(|r| r.at >= since && matches!(r.kind, Kind::Promote { .. }))
            .collect()
    }

    fn first(&self, node: u8, since: Instant, f: impl Fn(Kind) -> bool) -> Option<Instant> {
        self.records()
            .into_iter()
            .find(|r| r.node == node && r.at >= since && f(r.kind))
            .map(|r| r.at)
    }

    fn kill9(&self, id: u8) {
        let mut w = self.node(id).watch.lock().unwrap();
        if let Some(pid) = w.pid.take() {
            unsafe { libc_kill(pid, SIGKILL) };
            drop(w);
            record(&self.log, id, Kind::Reset);
        }
    }

    fn sigstop(&self, id: u8) {
        let mut w = self.node(id).watch.lock().unwrap();
        unsafe { libc_kill(w.pid.unwrap(), SIGSTOP) };
        w.paused_at = Some(Instant::now());
        drop(w);
        record(&self.log, id, Kind::Stop);
    }

    fn sigcont(&self, id: u8) {
        let mut w = self.node(id).watch.lock().unwrap();
        // The frozen watchdog resumes with the time it had left.
        let paused = w.paused_at.take().unwrap();
        if let Some(last) = w.last_feed {
            w.last_feed = Some(last + paused.elapsed());
        }
        unsafe { libc_kill(w.pid.unwrap(), SIGCONT) };
        drop(w);
        record(&self.log, id, Kind::Cont);
    }

    fn stderr(&self, id: u8) -> String {
        std::fs::read_to_string(&self.node(id).stderr).unwrap_or_default()
    }

    fn feeds_after(&self, id: u8, since: Instant) -> Vec<Instant> {
        let w = self.node(id).watch.lock().unwrap();
        w.feeds.iter().copied().filter(|f| *f > since).collect()
    }

    fn reset(&self, id: u8) -> bool {
        self.node(id).watch.lock().unwrap().pid.is_none()
    }

    fn dump(&self) {
        let t0 = self.records().first().map(|r| r.at);
        for r in self.records() {
            eprintln!(
                "  {:>7} ms node {} {:?}",
                t0.map_or(0, |t| r.at.duration_since(t).as_millis()),
                r.node,
                r.kind
            );
        }
        for id in 1..=2 {
            let text = self.stderr(id);
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "--- ctl{id} ({}) ---\n{}",
                self.node(id).stderr.display(),
                tail.join("\n")
            );
        }
    }

    /// DESIGN.md §5 on the recorded orders: promoted intervals of the two nodes in the
    /// same term never overlap (a reset ends a node's interval), and promotion terms
    /// never go down.
    fn check_invariant(&self) {
        let recs = self.records();
        let mut intervals: Vec<(u8, u64, Instant, Option<Instant>)> = Vec::new();
        let mut last_term = 0;
        for r in &recs {
            match r.kind {
                Kind::Promote { term } => {
                    if term < last_term {
                        self.dump();
                        panic!("{}: term went down: {term} after {last_term}", self.name);
                    }
                    last_term = term;
                    intervals.push((r.node, term, r.at, None));
                }
                Kind::Demote | Kind::Reset => {
                    for iv in intervals.iter_mut() {
                        if iv.0 == r.node && iv.3.is_none() {
                            iv.3 = Some(r.at);
                        }
                    }
                }
                _ => {}
            }
        }
        for a in &intervals {
            for b in &intervals {
                if a.0 == 1 && b.0 == 2 && a.1 == b.1 {
                    let a_end = a.3.unwrap_or_else(Instant::now);
                    let b_end = b.3.unwrap_or_else(Instant::now);
                    if a.2 < b_end && b.2 < a_end {
                        self.dump();
                        panic!("{}: both nodes promoted in term {} at once", self.name, a.1);
                    }
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = unsafe { libc_kill(c.id() as i32, SIGCONT) };
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn other(id: u8) -> u8 {
    3 - id
}

#[test]
fn both_start_at_once_and_exactly_one_becomes_active() {
    let c = Cluster::start("both-start");
    let a = c.wait_active();
    sleep(c.t.peer_dead * 2);
    assert_eq!(c.role(a).as_deref(), Some("active"));
    assert_eq!(c.role(other(a)).as_deref(), Some("standby"));
    let promoters: Vec<u8> = c
        .promotes_since(c.records()[0].at)
        .iter()
        .map(|r| r.node)
        .collect();
    assert_eq!(promoters, vec![a], "{:?}", c.records());
    for id in 1..=2 {
        assert!(
            c.node(id).watch.lock().unwrap().ready,
            "node {id} sent READY=1"
        );
        assert!(!c.reset(id), "node {id} still runs");
    }
    c.check_invariant();
}

#[test]
fn each_finds_the_peers_heartbeat_address_in_its_slot() {
    let c = Cluster::start_with("learn-peer", true);
    let a = c.wait_active();
    c.wait_for(
        "both nodes hearing the other over UDP",
        c.t.peer_dead * 4,
        |c| {
            (1..=2).all(|id| {
                c.status(id)
                    .and_then(|s| s.peer)
                    .is_some_and(|p| p.net_age_ms < c.t.peer_dead.as_millis() as u64)
            })
        },
    );
    for id in 1..=2 {
        assert!(
            c.stderr(id)
                .contains("peer's slot: it takes heartbeats on 127.0.0.1:"),
            "{}",
            c.stderr(id)
        );
        assert_eq!(
            c.node(id).watch.lock().unwrap().watchdog_usec,
            Some(c.t.watchdog.as_micros() as u64),
            "node {id} set its service watchdog to watchdog_sec"
        );
    }
    assert_eq!(c.role(other(a)).as_deref(), Some("standby"));
    c.check_invariant();
}

#[test]
fn kill_9_of_the_active_and_the_survivor_promotes() {
    let c = Cluster::start("kill-9");
    let a = c.wait_active();
    let b = other(a);
    sleep(c.t.heartbeat_interval * 5);
    let killed = Instant::now();
    c.kill9(a);
    c.wait_for(
        "the survivor's takeover acquire",
        failover_bound(&c.t),
        |c| c.first(b, killed, |k| k == Kind::Acquire).is_some(),
    );
    let promote = c
        .first(b, killed, |k| matches!(k, Kind::Promote { .. }))
        .unwrap();
    let acquire = c.first(b, killed, |k| k == Kind::Acquire).unwrap();
    let fence = c
        .first(b, killed, |k| k == Kind::FencePeer)
        .expect("the survivor asked for the peer to be powered off");
    assert!(
        fence <= promote,
        "the power fence is asked with the pill, before promote"
    );
    let (p, q) = (
        promote.duration_since(killed).as_millis(),
        acquire.duration_since(killed).as_millis(),
    );
    let timing = star_heartbeat::timing::timing(&c.t);
    println!(
        "FAILOVER kill->target_promote_ms={p} kill->takeover_acquire_ms={q} \
         (bound from timing.rs: detect {} ms + fence {} ms + promote steps)",
        timing.detect().as_millis(),
        timing.fence().as_millis()
    );
    assert!(acquire >= promote);
    // Not before fencing could have been done: peer_dead, then the pill, then msgwait.
    assert!(promote.duration_since(killed) >= c.t.peer_dead + timing.msgwait());
    c.wait_for("the survivor active", Duration::from_secs(5), |c| {
        c.role(b).as_deref() == Some("active")
    });
    c.check_invariant();
}

#[test]
fn a_paused_active_resumes_fenced_and_never_promotes_again() {
    let c = Cluster::start("sigstop");
    let a = c.wait_active();
    let b = other(a);
    let a_term = c.status(a).unwrap().held_term;
    sleep(c.t.heartbeat_interval * 5);
    let stopped = Instant::now();
    c.sigstop(a);
    c.wait_for("the survivor's promotion", failover_bound(&c.t), |c| {
        c.first(b, stopped, |k| k == Kind::Acquire).is_some()
    });
    let b_term = c.status(b).unwrap().held_term;
    assert!(
        b_term > a_term,
        "the survivor took a higher term: {b_term} > {a_term}"
    );
    sleep(c.t.heartbeat_interval * 3);
    let resumed = Instant::now();
    c.sigcont(a);
    c.wait_for(
        "the resumed node's reset",
        c.t.watchdog * 3 + Duration::from_secs(2),
        |c| c.reset(a),
    );
    let feeds = c.feeds_after(a, resumed);
    // Whatever was queued before the pause is handled with the clock read after it, and
    // a heartbeat write counts from when it completed: no feed may slip out.
    assert!(
        feeds.is_empty(),
        "the resumed node fed its watchdog {} times after resuming",
        feeds.len()
    );
    assert!(c.stderr(a).contains("self-fencing"), "{}", c.stderr(a));
    assert!(
        c.first(a, resumed, |k| matches!(
            k,
            Kind::Promote { .. } | Kind::Acquire
        ))
        .is_none(),
        "the resumed node sent target promote or takeover acquire"
    );
    assert_eq!(c.role(b).as_deref(), Some("active"));
    c.check_invariant();
}

fn disk_fault_fences_the_active(mode: &str) {
    let c = Cluster::start(&format!("disk-{mode}"));
    let a = c.wait_active();
    let b = other(a);
    sleep(c.t.heartbeat_interval * 5);
    let broke = Instant::now();
    std::fs::write(&c.node(a).fault, mode).unwrap();
    c.wait_for(
        "the broken node's reset",
        c.t.io_timeout * 2 + c.t.watchdog * 2 + Duration::from_secs(2),
        |c| c.reset(a),
    );
    assert!(c.stderr(a).contains("self-fencing"), "{}", c.stderr(a));
    assert!(
        c.node(a).watch.lock().unwrap().triggered,
        "a fencing node asks init for the reset at once (WATCHDOG=trigger)"
    );
    c.wait_for("the standby's takeover", failover_bound(&c.t), |c| {
        c.first(b, broke, |k| k == Kind::Acquire).is_some()
    });
    assert_eq!(c.role(b).as_deref(), Some("active"));
    c.check_invariant();
}

#[test]
fn a_failing_disk_fences_the_active_and_the_standby_takes_over() {
    disk_fault_fences_the_active("fail");
}

#[test]
fn a_stalled_disk_fences_the_active_and_the_standby_takes_over() {
    disk_fault_fences_the_active("stall");
}

#[test]
fn an_interconnect_cut_both_ways_keeps_one_active() {
    let c = Cluster::start("cut");
    let a = c.wait_active();
    let b = other(a);
    sleep(c.t.heartbeat_interval * 5);
    let cut = Instant::now();
    c.cut[0].store(true, Ordering::SeqCst);
    c.cut[1].store(true, Ordering::SeqCst);
    sleep(c.t.peer_dead * 2 + c.t.watchdog * 3 + Duration::from_secs(2));
    // The active renews its witness lease at every tick, so the standby's claim in the
    // partition is refused: ties go to the owner, and nothing moves.
    assert!(c.promotes_since(cut).is_empty(), "{:?}", c.records());
    assert!(c.first(a, cut, |k| k == Kind::Demote).is_none());
    assert!(!c.reset(a), "the active was reset");
    assert_eq!(c.role(a).as_deref(), Some("active"));
    assert_eq!(c.role(b).as_deref(), Some("standby"));
    let refused = c.status(b).and_then(|s| s.witness).unwrap_or_default();
    assert!(
        refused.contains("refused"),
        "the standby's witness answer: {refused:?}"
    );
    c.check_invariant();
}

#[test]
fn a_dead_witness_causes_no_failover() {
    let c = Cluster::start("witness-dead");
    let a = c.wait_active();
    let b = other(a);
    let killed = Instant::now();
    c.witness_dead.store(true, Ordering::SeqCst);
    sleep(c.t.peer_dead * 2 + c.t.watchdog * 2 + Duration::from_secs(1));
    assert!(c.promotes_since(killed).is_empty(), "{:?}", c.records());
    assert!(c.first(a, killed, |k| k == Kind::Demote).is_none());
    assert_eq!(c.role(a).as_deref(), Some("active"));
    assert_eq!(c.role(b).as_deref(), Some("standby"));
    // The disk heartbeats as `star status` shows them: both nodes write and see each
    // other within the limits that would otherwise have fenced one or failed over.
    for id in [a, b] {
        let s = c.status(id).expect("status");
        let own = s.own_write_age_ms.expect("own write age");
        let peer = s.peer_slot_unchanged_ms.expect("peer slot age");
        assert!(
            own < (c.t.heartbeat_interval + c.t.io_timeout).as_millis() as u64,
            "node {id}: own slot written {own} ms ago"
        );
        assert!(
            peer < c.t.peer_dead.as_millis() as u64,
            "node {id}: peer's slot unchanged for {peer} ms"
        );
    }
    c.check_invariant();
}

#[test]
fn a_corrupt_heartbeat_record_is_never_trusted_and_causes_no_failover() {
    let c = Cluster::start("corrupt");
    let a = c.wait_active();
    let b = other(a);
    sleep(c.t.heartbeat_interval * 5);
    let began = Instant::now();
    let offset = meta_block_offset(heartbeat_block(a).unwrap());
    // Garbage over the active's slot, again and again for less than peer_dead: the
    // standby reads a record that fails its check between the active's writes.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&c.disk)
        .unwrap();
    while began.elapsed() < c.t.peer_dead * 6 / 10 {
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&[0xa5; 4096]).unwrap();
        f.sync_data().unwrap();
        // No pause: the standby reads the slot a moment after the active rewrote it.
        std::thread::yield_now();
    }
    sleep(c.t.peer_dead * 2);
    assert!(c.promotes_since(began).is_empty(), "{:?}", c.records());
    assert_eq!(c.role(a).as_deref(), Some("active"));
    assert_eq!(c.role(b).as_deref(), Some("standby"));
    let log = c.stderr(b);
    assert!(
        log.contains("never trusted") && log.contains("wrong magic"),
        "the standby logs the corrupt slot: {log}"
    );
    c.check_invariant();
}

/// The derivation from timing.rs for the selected timing names the quantities a failover
/// is made of; bench/failover.sh prints it beside the measurements (`--nocapture`).
#[test]
fn the_timing_derivation_names_its_terms() {
    let text = star_heartbeat::timing::timing(&timeouts()).explain();
    for term in ["peer_dead", "msgwait", "watchdog"] {
        assert!(text.contains(term), "no {term} in the derivation:\n{text}");
    }
    for line in text.lines() {
        println!("  {line}");
    }
}

/// What controller `node`'s mailbox on the shared disk holds.
fn read_mail(disk: &Path, node: u8) -> Result<star_heartbeat::role::Mail, String> {
    let mut f = std::fs::File::open(disk).map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(meta_block_offset(
        star_disk::layout::mailbox_block(node).unwrap(),
    )))
    .map_err(|e| e.to_string())?;
    let mut b = Block([0; 4096]);
    f.read_exact(&mut b.0).map_err(|e| e.to_string())?;
    star_heartbeat::records::decode_mail(&b)
}

fn command(c: &Cluster, id: u8, req: HeartbeatRequest) -> HeartbeatReply {
    star_core::control::call(&c.node(id).socket, &req, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("node {id}: {req:?}: {e}"))
}

#[test]
fn a_switchover_hands_the_array_over_without_fencing() {
    let c = Cluster::start("switchover");
    let a = c.wait_active();
    let b = other(a);
    sleep(c.t.heartbeat_interval * 5);
    // Refused on the standby: only the active can hand the array over.
    assert!(
        matches!(
            command(&c, b, HeartbeatRequest::Switchover),
            HeartbeatReply::Error { .. }
        ),
        "the standby accepted a switchover"
    );
    let began = Instant::now();
    let reply = command(&c, a, HeartbeatRequest::Switchover);
    assert!(
        !matches!(reply, HeartbeatReply::Error { .. }),
        "switchover on the active: {reply:?}"
    );
    c.wait_for("the standby active", failover_bound(&c.t), |c| {
        c.role(b).as_deref() == Some("active")
    });
    // The planned way: the old active released and demoted before the new one promoted,
    // acknowledged on disk, and neither fenced nor was fenced.
    let demoted = c.first(a, began, |k| k == Kind::Demote).expect("a demoted");
    let promoted = c
        .first(b, began, |k| matches!(k, Kind::Promote { .. }))
        .expect("b promoted");
    assert!(demoted <= promoted, "{:?}", c.records());
    assert!(!c.reset(a), "the old active was reset");
    assert!(
        !matches!(
            read_mail(&c.disk, a),
            Ok(star_heartbeat::role::Mail::PoisonPill { .. })
        ),
        "a poison pill in the old active's mailbox: {:?}",
        read_mail(&c.disk, a)
    );
    c.wait_for("the old active standby", Duration::from_secs(5), |c| {
        c.role(a).as_deref() == Some("standby")
    });
    c.check_invariant();
}

#[test]
fn maintenance_keeps_a_standby_from_taking_over_until_it_ends() {
    let c = Cluster::start("maintenance");
    let a = c.wait_active();
    let b = other(a);
    sleep(c.t.heartbeat_interval * 5);
    let reply = command(&c, b, HeartbeatRequest::Maintenance { on: true });
    assert!(
        !matches!(reply, HeartbeatReply::Error { .. }),
        "maintenance on: {reply:?}"
    );
    c.wait_for("b in maintenance", Duration::from_secs(5), |c| {
        c.role(b).as_deref() == Some("maintenance")
    });
    let killed = Instant::now();
    c.kill9(a);
    // Well past the time a takeover would have taken: nothing moves.
    sleep(failover_bound(&c.t));
    assert!(c.promotes_since(killed).is_empty(), "{:?}", c.records());
    assert_eq!(c.role(b).as_deref(), Some("maintenance"));
    // Maintenance ends: the survivor follows the rules again and takes over.
    command(&c, b, HeartbeatRequest::Maintenance { on: false });
    c.wait_for(
        "the survivor active after maintenance",
        failover_bound(&c.t) * 2,
        |c| c.role(b).as_deref() == Some("active"),
    );
    c.check_invariant();
}
