//! Method arp against real kernels: the star-takeover binary, run with `ip netns exec` in
//! two controller namespaces (ctl1, ctl2) that share an L2 network with a client
//! namespace: three veth ports on a bridge in a fourth namespace, the switch. All traffic
//! stays inside these namespaces; addresses are from the documentation ranges (RFC 5737,
//! RFC 3849).
//!
//! The client's neighbour entries are made to last (base_reachable_time 10 min, first
//! probe after 5 min), so when one moves to the new controller's MAC right after acquire
//! returns, only the announcement can have moved it. Which controller answers is told
//! by a TCP listener in each that replies with its own name.
//!
//! Creating namespaces needs root (CI runs as root): without it the tests fail, loudly.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STAR_TAKEOVER: &str = env!("CARGO_BIN_EXE_star-takeover");
const PORT: u16 = 3260;

#[derive(Clone, Copy, PartialEq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn floating(self) -> &'static str {
        match self {
            Family::V4 => "192.0.2.100",
            Family::V6 => "2001:db8::100",
        }
    }
    fn prefix(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }
    fn own(self, who: &str) -> String {
        let host = match who {
            "ctl1" => 11,
            "ctl2" => 12,
            _ => 50,
        };
        match self {
            Family::V4 => format!("192.0.2.{host}/24"),
            Family::V6 => format!("2001:db8::{host}/64"),
        }
    }
}

const NODES: [&str; 3] = ["ctl1", "ctl2", "client"];

/// The switch, the two controllers and the client, deleted when dropped, on failure too,
/// with every process the test started in them.
struct Lab {
    prefix: String,
    family: Family,
    dir: PathBuf,
    children: Vec<Child>,
    stop: Arc<AtomicBool>,
}

impl Lab {
    fn new(tag: &str, family: Family) -> Lab {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests create network namespaces and must run as root (CI does); \
             run them with sudo or in a root container"
        );
        let prefix = format!("stk-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            prefix,
            family,
            dir,
            children: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        // The guard exists before the first namespace: a failure from here on still
        // deletes them all.
        run(&["ip", "netns", "add", &lab.ns("switch")]);
        for who in NODES {
            run(&["ip", "netns", "add", &lab.ns(who)]);
        }
        let sw = lab.ns("switch");
        lab.ip("switch", &["link", "add", "br0", "type", "bridge"]);
        // Multicast snooping could keep ff02::1 from a port that never joined a group.
        lab.ip(
            "switch",
            &[
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        );
        lab.ip("switch", &["link", "set", "br0", "up"]);
        for who in NODES {
            let ns = lab.ns(who);
            run(&[
                "ip", "-n", &sw, "link", "add", who, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            lab.ip("switch", &["link", "set", who, "master", "br0", "up"]);
            lab.ip(who, &["link", "set", "lo", "up"]);
            lab.ip(who, &["link", "set", "eth0", "up"]);
            let own = family.own(who);
            match family {
                Family::V4 => lab.ip(who, &["addr", "add", &own, "dev", "eth0"]),
                Family::V6 => lab.ip(who, &["addr", "add", &own, "dev", "eth0", "nodad"]),
            };
        }
        // Entries the client learns stay REACHABLE for minutes and are not probed again
        // soon: aging cannot be what moves them.
        let v = if family == Family::V4 { "ipv4" } else { "ipv6" };
        lab.sysctl(
            "client",
            &format!("net.{v}.neigh.eth0.base_reachable_time_ms"),
            "600000",
        );
        lab.sysctl(
            "client",
            &format!("net.{v}.neigh.eth0.delay_first_probe_time"),
            "300",
        );
        lab.wait_for_carrier();
        lab
    }

    fn ns(&self, who: &str) -> String {
        format!("{}-{who}", self.prefix)
    }

    fn ip(&self, who: &str, args: &[&str]) -> String {
        let ns = self.ns(who);
        let mut command = vec!["ip", "-n", &ns];
        command.extend_from_slice(args);
        run(&command)
    }

    fn sysctl(&self, who: &str, key: &str, value: &str) {
        let ns = self.ns(who);
        let setting = format!("{key}={value}");
        run(&["ip", "netns", "exec", &ns, "sysctl", "-q", "-w", &setting]);
    }

    fn wait_for_carrier(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for who in NODES {
            while !self.ip(who, &["link", "show", "eth0"]).contains("LOWER_UP") {
                assert!(Instant::now() < deadline, "no carrier on {who}'s eth0");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn floating(&self) -> IpAddr {
        self.family.floating().parse().unwrap()
    }

    /// A star.toml for controller `who`: the client interface named `client_if`, the
    /// floating address `floating`, and `extra` lines in [floating].
    fn config_with(&self, who: &str, client_if: &str, floating: &str, extra: &str) -> PathBuf {
        let id = if who == "ctl2" { 2 } else { 1 };
        let text = format!(
            r#"version = 1
[array]
name = "takeover-test"
[node]
name = "{who}"
id = {id}
role = "controller"
[[interface]]
name = "{client_if}"
purpose = "client"
address = "{own}"
[[interface]]
name = "eth1"
purpose = "interconnect"
address = "198.51.100.{id}/24"
[floating]
address = "{floating}"
method = "arp"
{extra}
[witness]
url = "http://198.51.100.3:7400"
[cluster]
key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
"#,
            own = self.family.own(who)
        );
        let path = self.dir.join(format!("{who}-{}.toml", self.children.len()));
        let path = unique(path);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The usual star.toml: short bursts, and a second one 3 s later, well after the 1 s
    /// in which the first must have moved the client (so the second cannot be what did).
    fn config(&self, who: &str) -> PathBuf {
        self.config_repeating(who, 3000)
    }

    fn config_repeating(&self, who: &str, repeat_after_ms: u32) -> PathBuf {
        let floating = format!("{}/{}", self.family.floating(), self.family.prefix());
        self.config_with(
            who,
            "eth0",
            &floating,
            &format!(
                "garp_count = 3\ngarp_interval_ms = 100\ngarp_repeat_after_ms = {repeat_after_ms}"
            ),
        )
    }

    /// The one-shot command in `who`'s namespace.
    fn takeover(&self, who: &str, config: &PathBuf, command: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(who), STAR_TAKEOVER, "--config"])
            .arg(config)
            .arg(command)
            .output()
            .expect("run star-takeover")
    }

    /// The command, which must succeed; its output.
    fn ok(&self, who: &str, config: &PathBuf, command: &str) -> String {
        let out = self.takeover(who, config, command);
        assert!(
            out.status.success(),
            "{who}: star-takeover {command}: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The command, which must fail with `code`; its error output.
    fn refused(&self, who: &str, config: &PathBuf, command: &str, code: i32) -> String {
        let out = self.takeover(who, config, command);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{who}: star-takeover {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn mac(&self, who: &str) -> String {
        let link: serde_json::Value =
            serde_json::from_str(&self.ip(who, &["-j", "link", "show", "eth0"])).unwrap();
        link[0]["address"].as_str().unwrap().to_string()
    }

    /// Every copy of the floating address in `who`'s namespace: "eth0 192.0.2.100/24".
    fn copies(&self, who: &str) -> Vec<String> {
        let all: serde_json::Value =
            serde_json::from_str(&self.ip(who, &["-j", "addr", "show"])).unwrap();
        let mut found = Vec::new();
        for link in all.as_array().unwrap() {
            for a in link["addr_info"].as_array().unwrap() {
                if a["local"] == self.family.floating() {
                    found.push(format!(
                        "{} {}/{}",
                        link["ifname"].as_str().unwrap(),
                        self.family.floating(),
                        a["prefixlen"]
                    ));
                }
            }
        }
        found
    }

    fn held_by(&self, who: &str) -> Vec<String> {
        let copies = self.copies(who);
        let cidr = format!("eth0 {}/{}", self.family.floating(), self.family.prefix());
        assert!(copies.iter().all(|c| *c == cidr), "{who}: {copies:?}");
        copies
    }

    /// The MAC of the client's neighbour entry for the floating address.
    fn client_neighbour(&self) -> Option<String> {
        let all: serde_json::Value = serde_json::from_str(&self.ip(
            "client",
            &["-j", "neigh", "show", self.family.floating(), "dev", "eth0"],
        ))
        .unwrap();
        all.as_array()?
            .first()?
            .get("lladdr")?
            .as_str()
            .map(str::to_string)
    }

    /// Waits up to `within` for the client's entry to show `mac`.
    fn client_neighbour_becomes(&self, mac: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let now = self.client_neighbour();
            if now.as_deref() == Some(mac) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the client's entry for {} is {now:?}, not {mac}",
                    self.family.floating()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A TCP listener on every address of `who` that answers each connection with `who`.
    fn answer_as(&self, who: &'static str) {
        let any: IpAddr = match self.family {
            Family::V4 => "0.0.0.0".parse().unwrap(),
            Family::V6 => "::".parse().unwrap(),
        };
        let listener = in_ns(&self.ns(who), move || {
            TcpListener::bind(SocketAddr::new(any, PORT)).expect("bind the listener")
        });
        listener.set_nonblocking(true).unwrap();
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(who.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    /// Who answers the floating address, as the client reaches it.
    fn who_answers(&self) -> Result<String, String> {
        let to = SocketAddr::new(self.floating(), PORT);
        in_ns(&self.ns("client"), move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| format!("connect to {to}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut name = String::new();
            s.read_to_string(&mut name)
                .map_err(|e| format!("read from {to}: {e}"))?;
            Ok(name)
        })
    }

    /// Counts the announcements for the floating address from `mac` that reach the
    /// client, from now on.
    fn count_announcements(&self, mac: &str) -> Arc<AtomicU32> {
        let count = Arc::new(AtomicU32::new(0));
        let socket = in_ns(&self.ns("client"), || {
            // ETH_P_ALL: every frame the client's interfaces see.
            // SAFETY: socket(2) takes no pointers.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from((libc::ETH_P_ALL as u16).to_be()),
                )
            };
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            // SAFETY: a descriptor we just opened and own alone.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &timeout.into(),
        )
        .unwrap();
        let mac: Vec<u8> = mac
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        let floating = self.floating();
        let (stop, counted) = (self.stop.clone(), count.clone());
        std::thread::spawn(move || {
            let mut frame = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: the buffer is live and its length is passed.
                let n = unsafe {
                    libc::recv(
                        socket.as_raw_fd(),
                        frame.as_mut_ptr().cast(),
                        frame.len(),
                        0,
                    )
                };
                if n > 0 && is_announcement(&frame[..n as usize], &mac, floating) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        count
    }

    /// The service in `who`'s namespace; returns its socket once it said READY=1.
    fn service(&mut self, who: &str, config: &PathBuf) -> PathBuf {
        let socket = unique(self.dir.join(format!("{who}-takeover.sock")));
        let notify_path = unique(self.dir.join(format!("{who}-notify.sock")));
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        self.children.push(
            Command::new("ip")
                .args(["netns", "exec", &self.ns(who), STAR_TAKEOVER, "--config"])
                .arg(config)
                .arg("--socket")
                .arg(&socket)
                .env("NOTIFY_SOCKET", &notify_path)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the service"),
        );
        let mut buf = [0u8; 4096];
        loop {
            let n = notify.recv(&mut buf).expect("READY=1 from star-takeover");
            let message = String::from_utf8_lossy(&buf[..n]);
            if message.contains("READY=1") {
                let want = format!(
                    "STATUS=arp {}/{}: not held",
                    self.family.floating(),
                    self.family.prefix()
                );
                assert!(message.contains(&want), "{message}");
                return socket;
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for who in ["switch", "ctl1", "ctl2", "client"] {
            // Not a panic: this may run while a failed test unwinds.
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(who)])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique(path: PathBuf) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    path.with_file_name(format!(
        "{n}-{}",
        path.file_name().unwrap().to_string_lossy()
    ))
}

fn run(command: &[&str]) -> String {
    let out = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (is iproute2 installed?): {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `f` on a thread of its own that has joined namespace `ns`: sockets it opens
/// belong to that namespace for their whole life, and no thread of the test harness
/// moves.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns only reads the descriptor, which `file` keeps open for the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the thread inside the namespace panicked")
}

/// A gratuitous ARP, or an unsolicited neighbour advertisement with the override flag,
/// for `address` from `mac`: parsed here independently of the code that builds them.
fn is_announcement(frame: &[u8], mac: &[u8], address: IpAddr) -> bool {
    if frame.len() < 14 || frame[6..12] != *mac {
        return false;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    match address {
        IpAddr::V4(a) => {
            let arp = &frame[14..];
            ethertype == 0x0806
                && arp.len() >= 28
                && arp[6..8] == [0, 1]
                && arp[8..14] == *mac
                && arp[14..18] == a.octets()
                && arp[24..28] == a.octets()
        }
        IpAddr::V6(a) => {
            let ip = &frame[14..];
            ethertype == 0x86dd
                && ip.len() >= 40 + 24
                && ip[6] == 58
                && ip[7] == 255
                && ip[40] == 136
                && ip[44] & 0x20 != 0
                && ip[48..64] == a.octets()
        }
    }
}

fn count_reaches(count: &AtomicU32, want: u32, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    while count.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    count.load(Ordering::SeqCst)
}

/// The move both families share: ctl1 acquires, the client reaches ctl1; ctl1 releases,
/// ctl2 acquires, and the client's entry is ctl2's at once and stays so.
fn the_address_moves(family: Family, tag: &str) {
    let lab = Lab::new(tag, family);
    // ctl2 sends no second burst, so that the end of this test sees only what ctl1's
    // second bursts, scheduled before it released, do.
    let (c1, c2) = (lab.config("ctl1"), lab.config_repeating("ctl2", 0));
    let (mac1, mac2) = (lab.mac("ctl1"), lab.mac("ctl2"));
    lab.answer_as("ctl1");
    lab.answer_as("ctl2");
    let floating = family.floating();
    let cidr = format!("{floating}/{}", family.prefix());

    let out = lab.ok("ctl1", &c1, "acquire");
    assert!(
        out.starts_with(&format!("acquired {cidr} on eth0 ({mac1}): added; 3 ")),
        "{out}"
    );
    assert_eq!(lab.held_by("ctl1").len(), 1);
    assert_eq!(lab.who_answers(), Ok("ctl1".into()));
    assert_eq!(lab.client_neighbour(), Some(mac1.clone()));

    // Acquiring again changes nothing, and says so.
    let out = lab.ok("ctl1", &c1, "acquire");
    assert!(out.contains(": held already; "), "{out}");
    assert_eq!(lab.held_by("ctl1").len(), 1, "one copy, not two");

    let out = lab.ok("ctl1", &c1, "release");
    assert_eq!(out, format!("released: {floating} taken off eth0\n"));
    assert!(lab.copies("ctl1").is_empty());
    let out = lab.ok("ctl2", &c2, "acquire");
    assert!(
        out.starts_with(&format!("acquired {cidr} on eth0 ({mac2}): added; 3 ")),
        "{out}"
    );
    assert!(!out.contains("second burst"), "{out}");
    // The first burst is out when acquire returns: the client's entry, which would have
    // stayed ctl1's for minutes, is ctl2's now.
    lab.client_neighbour_becomes(&mac2, Duration::from_secs(1))
        .unwrap();
    assert_eq!(lab.who_answers(), Ok("ctl2".into()));

    // ctl1's two acquires each left a second burst for later; ctl1 released since, so
    // neither may pull the client back when its time comes.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(lab.client_neighbour(), Some(mac2.clone()));
    assert_eq!(lab.who_answers(), Ok("ctl2".into()));
    assert_eq!(lab.held_by("ctl2").len(), 1);
    assert!(lab.copies("ctl1").is_empty());

    // Releasing what is not held succeeds, and says so.
    let out = lab.ok("ctl1", &c1, "release");
    assert_eq!(
        out,
        format!("released: {floating} is not held: it is on no interface of this node\n")
    );
    let out = lab.ok("ctl2", &c2, "status");
    assert!(out.starts_with(&format!("arp {cidr}: held\n")), "{out}");
    let out = lab.ok("ctl1", &c1, "status");
    assert!(out.starts_with(&format!("arp {cidr}: not held\n")), "{out}");
}

#[test]
fn the_ipv4_address_moves_and_gratuitous_arp_moves_the_client() {
    the_address_moves(Family::V4, "move4");
}

#[test]
fn the_ipv6_address_moves_and_neighbour_advertisements_move_the_client() {
    the_address_moves(Family::V6, "move6");
}

#[test]
fn the_service_acquires_releases_and_reports_on_its_socket() {
    let mut lab = Lab::new("svc", Family::V4);
    let config = lab.config("ctl1");
    let mac = lab.mac("ctl1");
    let garps = lab.count_announcements(&mac);
    let socket = lab.service("ctl1", &config);
    let ask = |line: &str| -> serde_json::Value {
        let stream = UnixStream::connect(&socket).expect("connect to the service");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"))
    };

    let status = ask(r#"{"cmd":"status"}"#);
    assert_eq!(status["reply"], "status", "{status}");
    assert_eq!(status["status"]["held"], false, "{status}");
    assert_eq!(status["status"]["method"], "arp");
    assert_eq!(status["status"]["address"], "192.0.2.100/24");
    assert_eq!(status["status"]["interface"], "eth0");
    assert_eq!(status["status"]["last_action"], serde_json::Value::Null);

    let reply = ask(r#"{"cmd":"acquire"}"#);
    assert_eq!(reply["reply"], "done", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("192.0.2.100/24 on eth0"),
        "{reply}"
    );
    assert_eq!(lab.held_by("ctl1").len(), 1);
    // The first burst reached the client; the second has not started.
    assert_eq!(count_reaches(&garps, 3, Duration::from_secs(1)), 3);
    let status = ask(r#"{"cmd":"status"}"#);
    let s = &status["status"];
    assert_eq!(s["held"], true, "{status}");
    assert_eq!(s["last_action"]["action"], "acquire");
    assert_eq!(s["last_action"]["ok"], true);
    assert!(
        s["observed"].as_str().unwrap().starts_with(&format!(
            "192.0.2.100/24 on eth0; eth0 is up, carrier, MAC {mac}"
        )),
        "{status}"
    );
    assert!(
        s["announce"].as_str().unwrap().starts_with(
            "first burst: 3 gratuitous ARP sent at 100 ms intervals; second burst of 3 \
             gratuitous ARP due in "
        ),
        "{status}"
    );

    // The second burst, 3 s later.
    assert_eq!(count_reaches(&garps, 6, Duration::from_secs(10)), 6);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = ask(r#"{"cmd":"status"}"#);
        let announce = status["status"]["announce"].as_str().unwrap().to_string();
        if announce.ends_with("second burst: 3 gratuitous ARP sent at 100 ms intervals") {
            break;
        }
        assert!(Instant::now() < deadline, "{announce}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let reply = ask(r#"{"cmd":"release"}"#);
    assert_eq!(
        reply,
        serde_json::json!({"reply": "done", "message": "192.0.2.100 taken off eth0"})
    );
    assert!(lab.copies("ctl1").is_empty());
    let reply = ask(r#"{"cmd":"release"}"#);
    assert_eq!(reply["reply"], "done", "release when not held: {reply}");
    let status = ask(r#"{"cmd":"status"}"#);
    assert_eq!(status["status"]["held"], false);
    assert_eq!(status["status"]["last_action"]["action"], "release");

    // A release right after an acquire cancels its second burst: not one packet more.
    let before = garps.load(Ordering::SeqCst);
    assert_eq!(ask(r#"{"cmd":"acquire"}"#)["reply"], "done");
    assert_eq!(
        count_reaches(&garps, before + 3, Duration::from_secs(1)),
        before + 3
    );
    assert_eq!(ask(r#"{"cmd":"release"}"#)["reply"], "done");
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(garps.load(Ordering::SeqCst), before + 3);
    let status = ask(r#"{"cmd":"status"}"#);
    assert!(
        status["status"]["announce"]
            .as_str()
            .unwrap()
            .ends_with("second burst cancelled: released"),
        "{status}"
    );

    let reply = ask(r#"{"cmd":"promote"}"#);
    assert_eq!(reply["reply"], "error");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("bad request"),
        "{reply}"
    );
}

#[test]
fn copies_astray_are_tidied_by_acquire_and_release() {
    let lab = Lab::new("astray", Family::V4);
    let config = lab.config("ctl1");
    // Left by hand: the address with the wrong prefix, and on another interface.
    lab.ip("ctl1", &["addr", "add", "192.0.2.100/32", "dev", "eth0"]);
    lab.ip("ctl1", &["addr", "add", "192.0.2.100/32", "dev", "lo"]);
    let out = lab.ok("ctl1", &config, "status");
    assert!(
        out.contains("not held\nobserved: 192.0.2.100 is on "),
        "{out}"
    );
    let out = lab.ok("ctl1", &config, "acquire");
    assert!(out.contains(": added (2 stray copies removed); "), "{out}");
    assert_eq!(lab.copies("ctl1"), vec!["eth0 192.0.2.100/24"]);
    lab.ip("ctl1", &["addr", "add", "192.0.2.100/32", "dev", "lo"]);
    let out = lab.ok("ctl1", &config, "release");
    assert_eq!(out, "released: 192.0.2.100 taken off lo and eth0\n");
    assert!(lab.copies("ctl1").is_empty());
}

#[test]
fn bad_input_is_refused_by_name_and_changes_nothing() {
    let lab = Lab::new("bad", Family::V4);
    let own = vec!["192.0.2.11/24".to_string()];
    let ipv4 = |lab: &Lab| -> Vec<String> {
        let all: serde_json::Value =
            serde_json::from_str(&lab.ip("ctl1", &["-j", "-4", "addr", "show", "dev", "eth0"]))
                .unwrap();
        all[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    };

    // star.toml names a client interface this node does not have.
    let config = lab.config_with("ctl1", "eth9", "192.0.2.100/24", "");
    let err = lab.refused("ctl1", &config, "acquire", 1);
    assert_eq!(
        err,
        "star-takeover: acquire: interface eth9 (purpose client) does not exist \
         (interfaces: lo, eth0)\n"
    );
    assert_eq!(ipv4(&lab), own);
    let out = lab.ok("ctl1", &config, "status");
    assert!(out.contains("not held"), "{out}");
    assert!(
        out.contains("interface eth9 (purpose client) does not exist"),
        "{out}"
    );
    lab.ok("ctl1", &config, "release");

    // The client interface is down.
    let config = lab.config("ctl1");
    lab.ip("ctl1", &["link", "set", "eth0", "down"]);
    let err = lab.refused("ctl1", &config, "acquire", 1);
    assert_eq!(
        err,
        "star-takeover: acquire: interface eth0 (purpose client) is down: star-net brings \
         it up (star net status)\n"
    );
    assert!(lab.copies("ctl1").is_empty());
    lab.ip("ctl1", &["link", "set", "eth0", "up"]);
    assert_eq!(ipv4(&lab), own);

    // The floating address is the interface's own: release would take it away.
    let config = lab.config_with("ctl1", "eth0", "192.0.2.11/24", "");
    for command in ["acquire", "release"] {
        let err = lab.refused("ctl1", &config, command, 2);
        assert!(
            err.contains(
                "floating.address: 192.0.2.11 is interface eth0's own address: the floating \
                 address must be one that no interface has, since release removes it"
            ),
            "{err}"
        );
    }
    assert_eq!(ipv4(&lab), own);

    // Announcements that could not be: refused by name.
    let config = lab.config_with("ctl1", "eth0", "192.0.2.100/24", "garp_count = 0");
    let err = lab.refused("ctl1", &config, "acquire", 2);
    assert!(
        err.contains("floating.garp_count: must be between 1 and 100"),
        "{err}"
    );
    assert!(lab.copies("ctl1").is_empty());

    // An IPv6 floating address where IPv6 is off: the kernel's refusal, named, and
    // nothing left behind.
    lab.sysctl("ctl1", "net.ipv6.conf.eth0.disable_ipv6", "1");
    let config = lab.config_with("ctl1", "eth0", "2001:db8::100/64", "");
    let err = lab.refused("ctl1", &config, "acquire", 1);
    assert!(
        err.starts_with(
            "star-takeover: acquire: 2001:db8::100/64 on eth0: add 2001:db8::100/64 to eth0: "
        ),
        "{err}"
    );
    assert!(err.contains("IPv6 is disabled"), "{err}");
    assert!(
        err.ends_with("; the address is on no interface of this node\n"),
        "{err}"
    );
    let all = lab.ip("ctl1", &["addr", "show"]);
    assert!(!all.contains("2001:db8::100"), "{all}");
    assert_eq!(ipv4(&lab), own);
}

/// A listener in `who` on `port` that accepts connections and holds them open, saying
/// nothing: a target whose client waits for an answer.
fn hold_connections(lab: &Lab, who: &str, port: u16) {
    let any: IpAddr = match lab.family {
        Family::V4 => "0.0.0.0".parse().unwrap(),
        Family::V6 => "::".parse().unwrap(),
    };
    let listener = in_ns(&lab.ns(who), move || {
        TcpListener::bind(SocketAddr::new(any, port)).expect("bind the listener")
    });
    listener.set_nonblocking(true).unwrap();
    let stop = lab.stop.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

fn tickled(family: Family, tag: &str) {
    const HELD: u16 = 3261;
    let mut lab = Lab::new(tag, family);
    let (c1, c2) = (lab.config("ctl1"), lab.config_repeating("ctl2", 0));
    lab.ok("ctl1", &c1, "acquire");
    hold_connections(&lab, "ctl1", HELD);
    let vip = SocketAddr::new(lab.floating(), HELD);
    // Two clients of ctl1, each waiting for an answer that will never come.
    let connect = || {
        in_ns(&lab.ns("client"), move || {
            let s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
            s
        })
    };
    let (mut listed, mut unlisted) = (connect(), connect());
    let listed_end = listed.local_addr().unwrap();

    // ctl1 dies without a word: its port goes dark.
    lab.ip("ctl1", &["link", "set", "eth0", "down"]);
    let socket = lab.service("ctl2", &c2);
    let ask = |line: String| -> serde_json::Value {
        let stream = UnixStream::connect(&socket).expect("connect to the service");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"))
    };
    let reset = serde_json::json!({
        "cmd": "reset_connections",
        "connections": [
            {"local": vip.to_string(), "remote": listed_end.to_string()},
            // An address ctl2 does not take over is left alone.
            {"local": SocketAddr::new(family.own("ctl1").split('/').next().unwrap().parse().unwrap(), HELD).to_string(),
             "remote": listed_end.to_string()},
        ]
    })
    .to_string();
    // Not held yet: nothing is sent, and the reply says why.
    let refused = ask(reset.clone());
    assert_eq!(refused["reply"], "error", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("is not held here"),
        "{refused}"
    );

    assert_eq!(ask(r#"{"cmd":"acquire"}"#.into())["reply"], "done");
    let done = ask(reset);
    assert_eq!(
        done,
        serde_json::json!({"reply": "done", "message":
            "tickle ACKs sent to 1 client connection(s) of the previous holder; 1 to other addresses ignored"})
    );
    // The listed client learns at once that its connection is gone ...
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let err = listed
        .read(&mut buf)
        .expect_err("the connection must be reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // ... while the one nobody named waits on, until its own timeout.
    let err = unlisted.read(&mut buf).expect_err("no data comes");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

#[test]
fn the_previous_holders_ipv4_clients_are_reset_after_a_takeover() {
    tickled(Family::V4, "tickle4");
}

#[test]
fn the_previous_holders_ipv6_clients_are_reset_after_a_takeover() {
    tickled(Family::V6, "tickle6");
}
