//! The star-heartbeat daemon: one loop owns the role [`Machine`]; everything that waits
//! (the disk, the network, the witness, star-target, star-takeover, the control socket)
//! waits on a thread of its own and reports to the loop through one channel.
//!
//! ```text
//! ticker ──Tick──────────────┐
//! disk worker ──completions──┤
//! UDP receiver ──heartbeats──┤            ┌─▶ disk jobs (one at a time, in order)
//! witness ──answers──────────┼─▶ loop ────┼─▶ UDP datagram to the peer
//! step threads ──StepDone────┤  (Machine) ├─▶ witness claim
//! control socket ──requests──┘            ├─▶ target promote/demote, takeover acquire/release
//!                                         └─▶ WATCHDOG=1, READY=1, STATUS= to init
//! ```
//!
//! The loop never blocks on I/O: a hung disk write leaves the machine waiting for its
//! completion, and the machine fences itself when it is late. Time is CLOCK_BOOTTIME,
//! which keeps counting while the machine is suspended or its VM paused: a resumed node
//! must see that its heartbeat is long overdue.

use crate::disk::{self, Job, Report, SharedDisk};
use crate::fault::Fault;
use crate::records::{role_from_code, role_name};
use crate::role::{self, Action, Event, Machine, Mono, Operator, Role, Step, StepResult};
use crate::timing::{self, Timing};
use star_core::heartbeat_status::{
    HeartbeatReply, HeartbeatRequest, HeartbeatStatus, PeerView, TakeoverRequest, TcpConnection,
};
use star_core::net_heartbeat::{self, Heartbeat, FLAG_DISK_OK, FLAG_MAINTENANCE};
use star_core::node_config::{Addressing, NodeConfig, Purpose, Role as NodeRole};
use star_core::target_status::TargetRequest;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The UDP port of the heartbeat on the interconnect (the witness has 7400).
pub const HEARTBEAT_PORT: u16 = 7401;

pub const USAGE: &str = "\
usage: star-heartbeat [--config FILE] [--disk PATH] [--listen ADDR:PORT] [--peer ADDR:PORT]
                      [--socket PATH] [--target-socket PATH] [--takeover-socket PATH]
                      [--init-socket PATH] [--disk-fault FILE]

The authority on roles: heartbeats on the shared disk and over the interconnect, the
witness, and the orders to star-target and star-takeover. See docs/heartbeat.md.
  --config           star.toml (default /run/star/star.toml)
  --disk             the shared disk (default: the disk with a STAR-META partition)
  --listen           UDP address for heartbeats (default: the interconnect address, port 7401)
  --peer             the peer's heartbeat address (default: the one its disk slot gives)
  --socket           control socket (default /run/star/heartbeat.sock)
  --target-socket    star-target's socket (default /run/star/target.sock)
  --takeover-socket  star-takeover's socket (default /run/star/takeover.sock)
  --init-socket      star-init's control socket, to set the hardware watchdog to
                     watchdog_sec (default /run/star/init.sock; absent: not under star-init)
  --disk-fault       fault injection for the fault suite: FILE holds ok, fail or stall";

#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub disk: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub socket: PathBuf,
    pub target_socket: PathBuf,
    pub takeover_socket: PathBuf,
    pub init_socket: PathBuf,
    pub disk_fault: Option<PathBuf>,
}

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            config: "/run/star/star.toml".into(),
            disk: None,
            listen: None,
            peer: None,
            socket: "/run/star/heartbeat.sock".into(),
            target_socket: "/run/star/target.sock".into(),
            takeover_socket: "/run/star/takeover.sock".into(),
            init_socket: star_core::init_config::DEFAULT_CONTROL_SOCKET.into(),
            disk_fault: None,
        };
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = || args.next().ok_or(format!("{a} needs a value"));
            let addr = |v: String| {
                v.parse::<SocketAddr>()
                    .map_err(|e| format!("{a}: {v:?} is not ADDR:PORT: {e}"))
            };
            match a.as_str() {
                "--config" => o.config = value()?.into(),
                "--disk" => o.disk = Some(value()?.into()),
                "--listen" => o.listen = Some(addr(value()?)?),
                "--peer" => o.peer = Some(addr(value()?)?),
                "--socket" => o.socket = value()?.into(),
                "--target-socket" => o.target_socket = value()?.into(),
                "--takeover-socket" => o.takeover_socket = value()?.into(),
                "--init-socket" => o.init_socket = value()?.into(),
                "--disk-fault" => o.disk_fault = Some(value()?.into()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }
}

/// CLOCK_BOOTTIME: monotonic, and counts time suspended.
pub fn now() -> Mono {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .expect("CLOCK_BOOTTIME exists on every Linux since 2.6.39");
    Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

fn log(line: &str) {
    eprintln!("star-heartbeat: {line}");
}

/// Everything the loop hears about.
pub enum Msg {
    Tick,
    Disk(Report),
    Net(Heartbeat),
    Witness(role::WitnessAnswer, String),
    Step(Step, StepResult, String),
    Control(HeartbeatRequest, Sender<HeartbeatReply>),
}

/// The incarnation for this start. It must be above every incarnation this node used
/// before, or the peer's replay guard drops our datagrams as replays and the peer reads
/// our slot as an old writer. Two sources, each covering the other's gap: our own slot
/// on the shared disk holds the last incarnation we wrote (+1 is above it even if the
/// wall clock was set back), and the wall clock in milliseconds is above it when the
/// slot is unreadable, torn, or was never written in the last life (a start that died
/// before its first heartbeat write). A node does not start twice within a millisecond.
pub fn incarnation(on_disk: Option<u64>) -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    on_disk.map_or(0, |i| i.saturating_add(1)).max(wall)
}

struct Resolved {
    node: NodeConfig,
    disk: PathBuf,
    listen: SocketAddr,
    /// Written into our slot for the peer; None when we cannot tell our own address.
    advertise: Option<SocketAddr>,
    /// From --peer; otherwise learned from the peer's slot.
    peer: Option<SocketAddr>,
    witness_url: Option<String>,
}

fn resolve(o: &Options, node: NodeConfig) -> Result<Resolved, String> {
    if !(1..=2).contains(&node.node.id) {
        return Err(format!(
            "{}: star-heartbeat runs on controllers 1 and 2, this is node {}",
            o.config.display(),
            node.node.id
        ));
    }
    let disk = match &o.disk {
        Some(d) => d.clone(),
        None => wait_for_shared_disk(node.timeouts.heartbeat_interval),
    };
    let interconnect = node.interface(Purpose::Interconnect);
    let listen = match o.listen {
        Some(a) => a,
        None => match interconnect.map(|i| &i.addressing) {
            Some(Addressing::Static { address, .. }) => SocketAddr::new(*address, HEARTBEAT_PORT),
            _ => SocketAddr::new(IpAddr::from([0, 0, 0, 0]), HEARTBEAT_PORT),
        },
    };
    // A DHCP interconnect has no address in star.toml: the kernel knows the one it got.
    let advertise = if listen.ip().is_unspecified() {
        interconnect
            .and_then(|i| interface_address(&i.name))
            .map(|ip| SocketAddr::new(ip, listen.port()))
    } else {
        Some(listen)
    };
    let witness_url = node.witness.as_ref().map(|w| {
        if w.host.contains(':') {
            format!("http://[{}]:{}", w.host, w.port)
        } else {
            format!("http://{}:{}", w.host, w.port)
        }
    });
    Ok(Resolved {
        node,
        disk,
        listen,
        advertise,
        peer: o.peer,
        witness_url,
    })
}

/// The shared disk, once one with a STAR-META partition is attached. A controller
/// without it has nothing to guard: it says so, counts as ready (the rest of the
/// appliance is usable, `star disk init` among it) and keeps its watchdog fed.
fn wait_for_shared_disk(interval: Duration) -> PathBuf {
    let mut said = false;
    loop {
        if let Some(d) = star_disk::locate::shared_disk(Path::new("/sys"), Path::new("/dev")) {
            if said {
                log(&format!("shared disk {} attached", d.display()));
            }
            return d;
        }
        if !said {
            said = true;
            let why = "waiting for the shared disk: no disk with a STAR-META partition \
                       (attach it, or initialize it with `star disk init`)";
            log(why);
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(why),
            ]);
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        std::thread::sleep(interval);
    }
}

/// The first IPv4 address of interface `name` (IPv6 when it has none).
fn interface_address(name: &str) -> Option<IpAddr> {
    let addrs: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == name)
        .filter_map(|a| {
            let a = a.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

/// Makes the watchdogs that stand behind self-fencing as short as the peer assumes:
/// the peer takes over `msgwait` = 2 × watchdog_sec after poisoning us, so both our
/// service watchdog (how long init lets this daemon go unheard) and the hardware
/// watchdog (how long the machine runs on when init itself is stuck) must fire within
/// watchdog_sec. Outside star-init (no control socket) there is nothing to set.
fn align_watchdogs(init_socket: &Path, watchdog: Duration) -> Result<Option<String>, String> {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let usec = format!("WATCHDOG_USEC={}", watchdog.as_micros());
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Custom(&usec)]);
    }
    if !init_socket.exists() {
        return Ok(None);
    }
    let request = star_core::control::Request::HardwareWatchdog {
        timeout_sec: watchdog.as_secs().max(1),
    };
    match star_core::control::call(init_socket, &request, Duration::from_secs(5)) {
        Ok(star_core::control::Reply::Done { message }) => Ok(Some(message)),
        Ok(star_core::control::Reply::Error { message }) => Err(format!(
            "the hardware watchdog cannot fire within watchdog_sec = {} s, which the \
             peer's takeover wait assumes: {message}",
            watchdog.as_secs()
        )),
        Ok(other) => Err(format!("star-init answered {other:?}")),
        Err(e) => Err(format!("star-init at {}: {e}", init_socket.display())),
    }
}

/// Runs the daemon; returns only on a startup error.
pub fn run(o: Options) -> Result<(), String> {
    let node = NodeConfig::load(&o.config).map_err(|e| e.to_string())?;
    if node.node.role == NodeRole::Witness {
        // The image runs the same services on every node; on the witness this one has
        // nothing to do, and ends cleanly so that nothing waits for it.
        log("this node is the witness: heartbeats run on the controllers");
        return Ok(());
    }
    let timing = timing::timing(&node.timeouts);
    match align_watchdogs(&o.init_socket, timing.watchdog)? {
        Some(message) => log(&message),
        None => log(&format!(
            "no star-init at {}: the hardware watchdog is whatever runs this daemon",
            o.init_socket.display()
        )),
    }
    let r = resolve(&o, node)?;
    let me = r.node.node.id;
    let peer = 3 - me;
    // The relations the safety argument needs between these timeouts were checked when
    // star.toml was loaded (node_config): a set that breaks one never gets here.
    let fault = o.disk_fault.clone().map_or(Fault::none(), Fault::from_file);
    let shared = SharedDisk::open(&r.disk, me, fault, r.advertise)?
        .with_floating(r.node.floating.as_ref().map(|f| f.address));
    let mut startup_log = Vec::new();
    let own = match shared.read_slot(me, &mut startup_log) {
        Ok(s) => s.map(|s| s.incarnation),
        Err(e) => {
            log(&format!(
                "own slot unreadable at start ({e}): incarnation from the clock"
            ));
            None
        }
    };
    for l in startup_log {
        log(&l);
    }
    let incarnation = incarnation(own);
    log(&format!(
        "node {me}, incarnation {incarnation}, disk {}, heartbeats on {} (given to the peer \
         as {}) → {}, witness {}",
        r.disk.display(),
        r.listen,
        r.advertise
            .map_or("nothing: our address is unknown".into(), |a| a.to_string()),
        r.peer
            .map_or("the address in the peer's slot".into(), |a| a.to_string()),
        r.witness_url.as_deref().unwrap_or("none")
    ));
    for line in timing.explain().lines() {
        log(line);
    }

    let (tx, rx) = mpsc::channel::<Msg>();
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    disk::spawn_worker(shared, jobs_rx, tx.clone());

    let udp = UdpSocket::bind(r.listen).map_err(|e| format!("UDP {}: {e}", r.listen))?;
    spawn_udp_receiver(
        udp.try_clone().map_err(|e| e.to_string())?,
        peer,
        r.node.cluster_key.clone(),
        tx.clone(),
    );
    let witness_tx = r.witness_url.as_ref().map(|url| {
        spawn_witness(
            url.clone(),
            r.node.array_name.clone(),
            r.node.cluster_key.clone(),
            me,
            timing.io_timeout,
            tx.clone(),
        )
    });
    spawn_control(&o.socket, tx.clone())?;
    spawn_ticker(timing.heartbeat_interval, tx.clone());

    let machine = Machine::new(
        role::Config {
            me,
            timing,
            witness: witness_tx.is_some(),
        },
        incarnation,
    );
    let mut d = Daemon {
        machine,
        me,
        timing,
        incarnation,
        started: now(),
        jobs: jobs_tx,
        udp,
        peer_addr: r.peer,
        peer_addr_fixed: r.peer.is_some(),
        power_fencing: r.node.fencing.is_some(),
        key: r.node.cluster_key.clone(),
        net_seq: 0,
        owner: 0,
        peer_healthy: true,
        witness: witness_tx,
        last_witness: None,
        peer_conns: Vec::new(),
        peer_seen: None,
        tx: tx.clone(),
        target_socket: o.target_socket.clone(),
        takeover_socket: o.takeover_socket.clone(),
        fenced: false,
        ready: false,
        udp_error: None,
    };
    drop(tx);
    for msg in rx {
        d.handle(msg);
    }
    Err("every event source stopped".into())
}

struct Daemon {
    machine: Machine,
    me: u8,
    timing: Timing,
    incarnation: u64,
    started: Mono,
    jobs: Sender<Job>,
    udp: UdpSocket,
    peer_addr: Option<SocketAddr>,
    /// --peer was given: the address in the peer's slot does not replace it.
    peer_addr_fixed: bool,
    /// star.toml has [fencing]: the peer is powered off when it is poisoned.
    power_fencing: bool,
    key: Vec<u8>,
    net_seq: u64,
    /// The owner in the last ownership record read, for the datagram.
    owner: u8,
    /// From the last ownership write: whether star-target is told the peer is dead.
    peer_healthy: bool,
    witness: Option<Sender<u64>>,
    last_witness: Option<String>,
    /// The client connections the peer's slot listed last: reset once we hold the
    /// floating address.
    peer_conns: Vec<TcpConnection>,
    peer_seen: Option<(Mono, Heartbeat)>,
    tx: Sender<Msg>,
    target_socket: PathBuf,
    takeover_socket: PathBuf,
    fenced: bool,
    ready: bool,
    udp_error: Option<String>,
}

impl Daemon {
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Tick => {
                self.step(Event::Tick);
            }
            Msg::Disk(Report::Log(l)) => log(&l),
            Msg::Disk(Report::PeerAddress(a)) => {
                if !self.peer_addr_fixed && self.peer_addr != Some(a) {
                    log(&format!("peer's slot: it takes heartbeats on {a}"));
                    self.peer_addr = Some(a);
                }
            }
            Msg::Disk(Report::PeerConnections(conns)) => {
                self.peer_conns = conns;
            }
            Msg::Disk(Report::Event(e)) => {
                if let Event::OwnershipRead(Some(o)) = &e {
                    self.owner = o.owner;
                }
                self.step(e);
            }
            Msg::Net(hb) => {
                self.peer_seen = Some((now(), hb));
                if let Some(role) = role_from_code(hb.role) {
                    self.step(Event::NetHeartbeat {
                        role,
                        term: hb.term,
                        incarnation: hb.incarnation,
                    });
                } else {
                    log(&format!(
                        "peer heartbeat with unknown role {}: ignored",
                        hb.role
                    ));
                }
            }
            Msg::Witness(answer, text) => {
                self.last_witness = Some(text);
                self.step(Event::Witness(answer));
            }
            Msg::Step(step, result, text) => {
                log(&text);
                if step == Step::TakeoverAcquire && result == StepResult::Ok {
                    self.reset_peer_connections();
                }
                self.step(Event::StepDone { step, result });
            }
            Msg::Control(req, reply) => {
                let _ = reply.send(self.control(req));
            }
        }
    }

    fn control(&mut self, req: HeartbeatRequest) -> HeartbeatReply {
        let op = match req {
            HeartbeatRequest::Status => {
                return HeartbeatReply::Status {
                    status: Box::new(self.status()),
                }
            }
            HeartbeatRequest::Switchover => Operator::Switchover,
            HeartbeatRequest::Maintenance { on: true } => Operator::MaintenanceOn,
            HeartbeatRequest::Maintenance { on: false } => Operator::MaintenanceOff,
        };
        if self.fenced {
            return HeartbeatReply::Error {
                message: "this node fenced itself and is waiting for its watchdog reset".into(),
            };
        }
        let before = self.machine.role();
        let lines = self.step(Event::Operator(op));
        let after = self.machine.role();
        let mut message = format!("{op:?}: {} → {}", role_name(before), role_name(after));
        for l in lines {
            message.push_str("; ");
            message.push_str(&l);
        }
        // Every operator command changes the role when the machine takes it; an
        // unchanged role is a refusal, whose reason the machine logged.
        if before == after {
            HeartbeatReply::Error { message }
        } else {
            HeartbeatReply::Done { message }
        }
    }

    fn status(&self) -> HeartbeatStatus {
        let t = now();
        HeartbeatStatus {
            node: self.me,
            role: role_name(self.machine.role()).into(),
            held_term: self.machine.held_term(),
            known_term: self.machine.known_term(),
            incarnation: self.incarnation,
            fenced: self.fenced,
            peer: self.peer_seen.map(|(at, hb)| PeerView {
                role: role_from_code(hb.role).map_or("unknown", role_name).into(),
                term: hb.term,
                incarnation: hb.incarnation,
                net_age_ms: t.saturating_sub(at).as_millis() as u64,
            }),
            own_write_age_ms: self
                .machine
                .own_write_at()
                .map(|at| t.saturating_sub(at).as_millis() as u64),
            peer_slot_unchanged_ms: self
                .machine
                .peer_slot_unchanged_since()
                .map(|since| t.saturating_sub(since).as_millis() as u64),
            witness: self.last_witness.clone(),
            timing: self.timing.explain(),
            uptime_ms: t.saturating_sub(self.started).as_millis() as u64,
        }
    }

    /// Steps the machine and carries out its actions; returns the machine's log lines.
    fn step(&mut self, event: Event) -> Vec<String> {
        let before = self.machine.role();
        let tick = event == Event::Tick;
        let actions = self.machine.step(now(), event);
        let mut lines = Vec::new();
        for a in actions {
            if let Action::Log(l) = &a {
                lines.push(l.clone());
            }
            self.act(a);
        }
        let after = self.machine.role();
        if after != before {
            log(&format!(
                "role {} → {} (term held {}, known {})",
                role_name(before),
                role_name(after),
                self.machine.held_term(),
                self.machine.known_term()
            ));
            self.notify_status();
        }
        if tick && !self.ready && !self.fenced {
            self.ready = true;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            self.notify_status();
        }
        lines
    }

    fn notify_status(&self) {
        let s = format!(
            "{} (term {})",
            role_name(self.machine.role()),
            self.machine.known_term()
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&s)]);
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::WriteHeartbeat(s) => self.job(Job::WriteHeartbeat(s)),
            Action::ReadPeerSlot => self.job(Job::ReadPeerSlot),
            Action::ReadMailbox => self.job(Job::ReadMailbox),
            Action::ReadPeerMailbox => self.job(Job::ReadPeerMailbox),
            Action::ReadOwnership => self.job(Job::ReadOwnership),
            Action::WriteMailbox { node, mail } => {
                log(&format!("writing {mail:?} into node {node}'s mailbox"));
                if self.power_fencing
                    && node != self.me
                    && matches!(mail, role::Mail::PoisonPill { .. })
                {
                    self.fence_peer();
                }
                self.job(Job::WriteMailbox { node, mail })
            }
            Action::WriteOwnership {
                term,
                owner,
                peer_healthy,
            } => {
                log(&format!(
                    "writing ownership: term {term}, owner {owner}, peer healthy {peer_healthy}"
                ));
                self.peer_healthy = peer_healthy;
                self.job(Job::WriteOwnership {
                    term,
                    owner,
                    peer_healthy,
                })
            }
            Action::SendNetHeartbeat {
                role,
                term,
                incarnation,
            } => self.send_net(role, term, incarnation),
            Action::AskWitness { term } => {
                if let Some(w) = &self.witness {
                    let _ = w.send(term);
                }
            }
            Action::TargetPromote { term } => {
                log(&format!("target promote, term {term}"));
                let req = TargetRequest::Promote {
                    peer_dead: !self.peer_healthy,
                };
                self.order(Step::TargetPromote, true, serde_json::to_value(&req));
            }
            Action::TargetDemote => {
                log("target demote");
                self.order(
                    Step::TargetDemote,
                    true,
                    serde_json::to_value(&TargetRequest::Demote),
                )
            }
            Action::TakeoverAcquire => {
                log("takeover acquire");
                self.order(
                    Step::TakeoverAcquire,
                    false,
                    serde_json::to_value(&TakeoverRequest::Acquire),
                )
            }
            Action::TakeoverRelease => {
                log("takeover release");
                self.order(
                    Step::TakeoverRelease,
                    false,
                    serde_json::to_value(&TakeoverRequest::Release),
                )
            }
            Action::FeedWatchdog => {
                if !self.fenced {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
            Action::SelfFence => {
                self.fenced = true;
                log("SELF-FENCING: no more WATCHDOG=1; the watchdog resets this controller");
                // WATCHDOG=trigger has star-init reset at once instead of after the
                // watchdog timeout; the silence that follows is the fallback.
                let _ = sd_notify::notify(&[
                    sd_notify::NotifyState::Status("fenced: waiting for the watchdog reset"),
                    sd_notify::NotifyState::Custom("WATCHDOG=trigger"),
                ]);
            }
            Action::Log(l) => log(&l),
        }
    }

    /// Powers the peer off through star-takeover (star.toml's `[fencing]`), beside the
    /// pill and msgwait, which stay the rule: the promotion does not wait for it, and a
    /// fence that fails is logged, not fatal. What it adds is a peer that its hypervisor
    /// paused, which no watchdog inside it stops, being stopped from outside.
    fn fence_peer(&self) {
        let socket = self.takeover_socket.clone();
        std::thread::spawn(move || {
            let reply: std::io::Result<serde_json::Value> = star_core::control::call(
                &socket,
                &TakeoverRequest::FencePeer,
                Duration::from_secs(30),
            );
            match reply {
                Ok(r) if r.get("reply").and_then(|v| v.as_str()) == Some("done") => {
                    log(&format!("power fence of the peer: {r}"))
                }
                Ok(r) => log(&format!("power fence of the peer FAILED: {r}")),
                Err(e) => log(&format!("power fence of the peer FAILED: {e}")),
            }
        });
    }

    /// Once the floating address is ours: the clients the peer served on it are told at
    /// once that those connections are gone (tickle ACKs through star-takeover), instead
    /// of each waiting out its own command timeout before it logs in again here. Like the
    /// power fence, it does not hold up the promotion, and a failure is logged.
    fn reset_peer_connections(&mut self) {
        let connections = std::mem::take(&mut self.peer_conns);
        if connections.is_empty() {
            return;
        }
        let socket = self.takeover_socket.clone();
        std::thread::spawn(move || {
            let reply: std::io::Result<serde_json::Value> = star_core::control::call(
                &socket,
                &TakeoverRequest::ResetConnections { connections },
                Duration::from_secs(10),
            );
            match reply {
                Ok(r) => log(&format!(
                    "the peer's client connections: {}",
                    r.get("message").and_then(|m| m.as_str()).unwrap_or("?")
                )),
                Err(e) => log(&format!("the peer's client connections: not reset: {e}")),
            }
        });
    }

    fn job(&self, j: Job) {
        // The worker lives as long as the loop; a send cannot fail while we run.
        let _ = self.jobs.send(j);
    }

    fn send_net(&mut self, role: Role, term: u64, incarnation: u64) {
        self.net_seq += 1;
        let mut flags = FLAG_DISK_OK;
        if role == Role::Maintenance {
            flags |= FLAG_MAINTENANCE;
        }
        let hb = Heartbeat {
            node: self.me,
            role: role.code(),
            incarnation,
            sequence: self.net_seq,
            term,
            owner: self.owner,
            flags,
        };
        // Until the peer's slot gives its address there is no one to send to; the disk
        // heartbeat alone carries liveness meanwhile.
        let Some(peer) = self.peer_addr else { return };
        let r = self.udp.send_to(&hb.encode(&self.key), peer);
        // Logged when it starts or stops failing, not at every interval.
        let err = r.err().map(|e| e.to_string());
        if err != self.udp_error {
            match &err {
                Some(e) => log(&format!("heartbeat to {peer}: {e}")),
                None => log(&format!("heartbeats to {peer} flow again")),
            }
            self.udp_error = err;
        }
    }

    /// Sends one order to star-target (`target`) or star-takeover on a thread of its own;
    /// its outcome comes back as a StepDone.
    fn order(&self, step: Step, target: bool, request: serde_json::Result<serde_json::Value>) {
        let (socket, timeout) = if target {
            (self.target_socket.clone(), self.timing.steps.target)
        } else {
            (self.takeover_socket.clone(), self.timing.steps.takeover)
        };
        let tx = self.tx.clone();
        let request = request.expect("plain requests serialize");
        std::thread::spawn(move || {
            let answer: std::io::Result<serde_json::Value> =
                star_core::control::call(&socket, &request, timeout);
            let (result, text) = match answer {
                Ok(reply) => match reply.get("reply").and_then(|r| r.as_str()) {
                    Some("done") => (StepResult::Ok, format!("{step:?}: done ({reply})")),
                    _ => (StepResult::Failed, format!("{step:?}: refused: {reply}")),
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    (
                        StepResult::TimedOut,
                        format!("{step:?}: no answer within {} ms", timeout.as_millis()),
                    )
                }
                Err(e) => (StepResult::Failed, format!("{step:?}: failed: {e}")),
            };
            let _ = tx.send(Msg::Step(step, result, text));
        });
    }
}

fn spawn_ticker(interval: Duration, tx: Sender<Msg>) {
    std::thread::Builder::new()
        .name("ticker".into())
        .spawn(move || loop {
            if tx.send(Msg::Tick).is_err() {
                return;
            }
            std::thread::sleep(interval);
        })
        .expect("spawn the ticker");
}

fn spawn_udp_receiver(sock: UdpSocket, peer: u8, key: Vec<u8>, tx: Sender<Msg>) {
    std::thread::Builder::new()
        .name("udp".into())
        .spawn(move || {
            let mut guard = net_heartbeat::Receiver::new(peer);
            let mut buf = [0u8; 512];
            loop {
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) => {
                        log(&format!("UDP receive: {e}"));
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                match guard.accept(&buf[..n], &key) {
                    Ok(hb) => {
                        if tx.send(Msg::Net(hb)).is_err() {
                            return;
                        }
                    }
                    Err(why) => log(&format!("heartbeat datagram from {from} dropped: {why}")),
                }
            }
        })
        .expect("spawn the UDP receiver");
}

/// The witness thread: claims one term at a time. Requests that queued up while a claim
/// was under way are folded into the newest: only the current question matters.
fn spawn_witness(
    url: String,
    array: String,
    key: Vec<u8>,
    me: u8,
    timeout: Duration,
    tx: Sender<Msg>,
) -> Sender<u64> {
    let (ask, asks) = mpsc::channel::<u64>();
    std::thread::Builder::new()
        .name("witness".into())
        .spawn(move || {
            let mut client =
                match star_witness::client::Client::new(&url, &array, &key, me, timeout) {
                    Ok(c) => c,
                    Err(e) => {
                        log(&format!("witness client: {e}"));
                        return;
                    }
                };
            witness_loop(&mut client, asks, tx)
        })
        .expect("spawn the witness thread");
    ask
}

fn witness_loop(client: &mut star_witness::client::Client, asks: Receiver<u64>, tx: Sender<Msg>) {
    use role::WitnessAnswer;
    while let Ok(mut term) = asks.recv() {
        while let Ok(t) = asks.try_recv() {
            term = t;
        }
        let (answer, text) = match client.claim(term) {
            Ok(a) if a.granted => (
                WitnessAnswer::Granted { term: a.term },
                format!("{} term {}", a.reason, a.term),
            ),
            Ok(a) => (
                WitnessAnswer::Refused { term: a.term },
                format!("refused ({}), term {}", a.reason, a.term),
            ),
            Err(e) => (WitnessAnswer::Unreachable, format!("unreachable: {e}")),
        };
        if tx.send(Msg::Witness(answer, text)).is_err() {
            return;
        }
    }
}

fn spawn_control(path: &Path, tx: Sender<Msg>) -> Result<(), String> {
    // A socket file left by a previous run would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve_one(stream, tx));
            }
        })
        .expect("spawn the control thread");
    Ok(())
}

fn serve_one(stream: UnixStream, tx: Sender<Msg>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let reply = match serde_json::from_str::<HeartbeatRequest>(&line) {
        Err(e) => HeartbeatReply::Error {
            message: format!("bad request: {e}"),
        },
        Ok(req) => {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Msg::Control(req, rtx)).is_err() {
                return;
            }
            rrx.recv_timeout(Duration::from_secs(5))
                .unwrap_or(HeartbeatReply::Error {
                    message: "the heartbeat loop did not answer within 5 s".into(),
                })
        }
    };
    let mut text = serde_json::to_string(&reply).expect("replies serialize");
    text.push('\n');
    let _ = (&stream).write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incarnation_grows_past_the_disk_and_the_clock() {
        let wall = incarnation(None);
        assert!(wall > 1_700_000_000_000, "milliseconds since the epoch");
        assert!(
            incarnation(Some(wall + 10)) == wall + 11,
            "a clock set back"
        );
        assert!(incarnation(Some(5)) >= wall, "an old slot");
    }

    #[test]
    fn options_parse() {
        let o = Options::parse(
            [
                "--peer",
                "127.0.0.1:9",
                "--disk",
                "/tmp/d",
                "--disk-fault",
                "/tmp/f",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(o.peer, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(o.socket, PathBuf::from("/run/star/heartbeat.sock"));
        assert!(Options::parse(["--peer".to_string()]).is_err());
        assert!(Options::parse(["--bogus".to_string()]).is_err());
    }
}
