//! The DHCP client against a real server: busybox udhcpd (Debian package `udhcpd`), across a
//! veth pair between two network namespaces made for the test. Needs root.
//!
//! udhcpd rather than dnsmasq because it hands out leases of a few seconds (dnsmasq will
//! not go below 120 s), which lets the test watch a renewal, a rebinding and an expiry in
//! about fifteen seconds.
//!
//! The client runs on a thread of this process that has moved itself into the client
//! namespace with setns(2), rather than in a copy of the test binary started with
//! `ip netns exec`: network namespaces are per thread, so the rest of the process stays
//! where it can run `ip` and control the server, and the test drives the client step by step
//! and asserts on it directly instead of through another process's output.

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use star_net::dhcp::{self, DhcpAction, DhcpClient, DhcpSocket, Lease, State};

const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const POOL_START: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const POOL_END: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 150);
const LEASE: Duration = Duration::from_secs(6);
const MTU: u16 = 1400;
const HOSTNAME: &str = "star-dhcp-test";

/// Two namespaces joined by a veth pair, a udhcpd serving one end, and the cleanup of all
/// of it.
struct Fixture {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    client_mac: [u8; 6],
    dir: PathBuf,
    server: Mutex<Option<Child>>,
    server_starts: Mutex<u32>,
}

impl Fixture {
    fn new() -> Fixture {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!(
                "dhcp_ns must run as root: it creates network namespaces and runs a DHCP \
                 server (CI runs it as root)"
            );
        }
        for (tool, package) in [("udhcpd", "udhcpd"), ("ip", "iproute2")] {
            if let Err(e) = Command::new(tool).arg("-h").output() {
                panic!("cannot run {tool} ({e}): install the Debian package {package}");
            }
        }

        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("star-dhcp-ns-{pid}"));
        let fixture = Fixture {
            server_ns: format!("star-dhcps-{pid}"),
            client_ns: format!("star-dhcpc-{pid}"),
            // Interface names are limited to 15 characters.
            server_if: format!("dhs{pid}"),
            client_if: format!("dhc{pid}"),
            client_mac: {
                let [a, b, c, d] = pid.to_be_bytes();
                [0x02, 0x99, a, b, c, d]
            },
            dir,
            server: Mutex::new(None),
            server_starts: Mutex::new(0),
        };
        // From here on Drop cleans up whatever was made.
        fs::create_dir_all(&fixture.dir).expect("creating the test directory");
        let mac = fixture
            .client_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let (sns, cns) = (&fixture.server_ns, &fixture.client_ns);
        let (sif, cif) = (&fixture.server_if, &fixture.client_if);
        ip(&["netns", "add", sns]);
        ip(&["netns", "add", cns]);
        ip(&[
            "-n", sns, "link", "add", sif, "type", "veth", "peer", "name", cif, "address", &mac,
            "netns", cns,
        ]);
        ip(&["-n", sns, "addr", "add", "10.99.0.1/24", "dev", sif]);
        ip(&["-n", sns, "link", "set", "lo", "up"]);
        ip(&["-n", sns, "link", "set", sif, "up"]);
        // Loopback is up on every real host. Without any local address the kernel treats
        // the leased address of a renewal as a broadcast one and sends from 0.0.0.0.
        ip(&["-n", cns, "link", "set", "lo", "up"]);
        // The only configuration of the client's interface: addresses are not this
        // module's business, so the client must work without one.
        ip(&["-n", cns, "link", "set", cif, "up"]);
        fixture.write_server_config();
        fixture
    }

    fn lease_file(&self) -> PathBuf {
        self.dir.join("udhcpd.leases")
    }

    fn write_server_config(&self) {
        let config = format!(
            "start {POOL_START}\n\
             end {POOL_END}\n\
             max_leases 51\n\
             interface {interface}\n\
             lease_file {leases}\n\
             pidfile {pidfile}\n\
             min_lease 1\n\
             opt subnet 255.255.255.0\n\
             opt router {SERVER_ADDR}\n\
             opt dns {SERVER_ADDR}\n\
             opt mtu {MTU}\n\
             opt lease {lease}\n",
            interface = self.server_if,
            leases = self.lease_file().display(),
            pidfile = self.dir.join("udhcpd.pid").display(),
            lease = LEASE.as_secs(),
        );
        fs::write(self.dir.join("udhcpd.conf"), config).expect("writing udhcpd.conf");
        fs::File::create(self.lease_file()).expect("creating the lease file");
    }

    fn server_log(&self, run: u32) -> PathBuf {
        self.dir.join(format!("udhcpd-{run}.log"))
    }

    /// Starts udhcpd and waits until it listens; returns the number of this run, which
    /// names its log.
    fn start_server(&self) -> u32 {
        let mut starts = self.server_starts.lock().unwrap();
        *starts += 1;
        let run = *starts;
        let log = fs::File::create(self.server_log(run)).expect("creating the server log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns, "udhcpd", "-f"])
            // The ARP probe of an offered address delays each OFFER by this many ms.
            .args(["-a", "100"])
            .arg(self.dir.join("udhcpd.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting udhcpd");
        *self.server.lock().unwrap() = Some(child);

        let end = Instant::now() + Duration::from_secs(5);
        while !self.server_listening() {
            if let Some(status) = self
                .server
                .lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .try_wait()
                .unwrap()
            {
                panic!(
                    "udhcpd exited with {status}: {}",
                    fs::read_to_string(self.server_log(run)).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < end,
                "udhcpd did not open port 67 within 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        run
    }

    fn server_listening(&self) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server_ns, "cat", "/proc/net/udp"])
            .output()
            .expect("reading the server namespace's UDP sockets");
        // Port 67 in the local address column.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .any(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| a.ends_with(":0043"))
            })
    }

    fn stop_server(&self) {
        let Some(mut child) = self.server.lock().unwrap().take() else {
            return;
        };
        // SIGTERM makes udhcpd write its lease file, which the test reads.
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: the pid is our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let end = Instant::now() + Duration::from_secs(3);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn acks_sent(&self, run: u32) -> usize {
        fs::read_to_string(self.server_log(run))
            .unwrap_or_default()
            .matches("sending ACK")
            .count()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop_server();
        // Deleting a namespace destroys the veth pair with it.
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves the calling thread, and only it, into the named network namespace.
fn enter_netns(name: &str) {
    let file = fs::File::open(format!("/run/netns/{name}")).expect("opening the namespace");
    // SAFETY: setns on a valid namespace descriptor; it affects this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn check_lease(lease: &Lease) {
    assert!(
        (POOL_START..=POOL_END).contains(&lease.address),
        "address outside the pool: {lease:?}"
    );
    assert_eq!(lease.prefix_len, 24, "{lease:?}");
    assert_eq!(lease.router, Some(SERVER_ADDR), "{lease:?}");
    assert_eq!(lease.dns, vec![SERVER_ADDR], "{lease:?}");
    assert_eq!(lease.mtu, Some(MTU), "{lease:?}");
    assert_eq!(lease.server, SERVER_ADDR, "{lease:?}");
    assert_eq!(lease.lease_time, LEASE, "{lease:?}");
    assert_eq!(lease.renew_at, LEASE / 2, "{lease:?}");
    assert_eq!(lease.rebind_at, LEASE * 7 / 8, "{lease:?}");
}

/// The client with its socket, and a timeline of what it did for failure messages.
struct Driver {
    client: DhcpClient,
    socket: DhcpSocket,
    t0: Instant,
    timeline: Vec<String>,
}

impl Driver {
    fn note(&mut self, what: String) {
        let at = self.t0.elapsed().as_secs_f64();
        self.timeline.push(format!("{at:7.3} s  {what}"));
    }

    /// Runs the client until `done` accepts what happened in one step, and returns the
    /// actions and states of the whole phase with the time each was seen.
    fn run_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&[DhcpAction], State) -> bool,
    ) -> Vec<(Instant, Vec<DhcpAction>, State)> {
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut state = self.client.state();
        loop {
            assert!(
                Instant::now() < end,
                "{what}: not done within {limit:?}; timeline:\n{}",
                self.timeline.join("\n")
            );
            let actions = dhcp::step(&mut self.client, &mut self.socket, end).expect("DHCP I/O");
            let now = Instant::now();
            for action in &actions {
                let text = match action {
                    DhcpAction::Broadcast(_) => "sent a broadcast".to_owned(),
                    DhcpAction::Unicast(to, _) => format!("sent a unicast to {to}"),
                    DhcpAction::Bound(lease) => format!("Bound {lease:?}"),
                    DhcpAction::Lost(lease) => format!("Lost {}", lease.address),
                };
                self.note(text);
            }
            if self.client.state() != state {
                state = self.client.state();
                self.note(format!("state {state:?}"));
            }
            let finished = done(&actions, state);
            seen.push((now, actions, state));
            if finished {
                return seen;
            }
        }
    }
}

#[test]
fn lease_renewal_expiry_and_recovery_against_udhcpd() {
    let fixture = Fixture::new();
    let first_run = fixture.start_server();

    std::thread::scope(|scope| {
        let client_thread = scope.spawn(|| {
            enter_netns(&fixture.client_ns);
            client_scenario(&fixture, first_run);
        });
        if let Err(panic) = client_thread.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

fn client_scenario(fixture: &Fixture, first_run: u32) {
    let interface = fixture.client_if.as_str();
    let mac = dhcp::hardware_address(interface).expect("reading the client's MAC");
    assert_eq!(mac, fixture.client_mac);

    // The one-shot helper.
    let lease = dhcp::run_until_bound(interface, mac, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("run_until_bound: {e}"));
    check_lease(&lease);

    // The client driven step by step through a lease's whole life.
    let mut driver = Driver {
        client: DhcpClient::new(
            mac,
            Some(HOSTNAME.to_owned()),
            u64::from(std::process::id()),
        ),
        socket: DhcpSocket::open(interface).expect("opening the DHCP socket"),
        t0: Instant::now(),
        timeline: Vec::new(),
    };
    let first = driver.client.start(Instant::now());
    driver.socket.send_all(&first).expect("sending DISCOVER");

    // 1. A lease is obtained.
    let phase = driver.run_until("getting a lease", Duration::from_secs(15), |actions, _| {
        actions.iter().any(|a| matches!(a, DhcpAction::Bound(_)))
    });
    let (bound_at, actions, _) = phase.last().unwrap();
    let bound_at = *bound_at;
    let lease = actions
        .iter()
        .find_map(|a| match a {
            DhcpAction::Bound(lease) => Some(lease.clone()),
            _ => None,
        })
        .unwrap();
    check_lease(&lease);
    assert_eq!(driver.client.state(), State::Bound);
    let acks_before_renewal = fixture.acks_sent(first_run);

    // As star-net does: the address goes on the interface, then the client listens on the
    // UDP port and the packet socket (which sees every IP packet) is closed.
    let cidr = format!("{}/{}", lease.address, lease.prefix_len);
    ip(&[
        "-n",
        &fixture.client_ns,
        "addr",
        "add",
        &cidr,
        "dev",
        interface,
    ]);
    driver
        .socket
        .listen_on_port()
        .expect("listening on port 68");
    assert!(!driver.socket.on_link());

    // 2. It is renewed at T1 by the same server, and nothing has to be reconfigured.
    let mut renewing_since = None;
    let phase = driver.run_until("renewing at T1", LEASE, |_, state| {
        if state == State::Renewing && renewing_since.is_none() {
            renewing_since = Some(Instant::now());
        }
        renewing_since.is_some() && state == State::Bound
    });
    let renewing_since = renewing_since.unwrap();
    let timeline = driver.timeline.join("\n");
    for (_, actions, state) in &phase {
        assert!(
            *state != State::Rebinding
                && actions
                    .iter()
                    .all(|a| matches!(a, DhcpAction::Unicast(SERVER_ADDR, _))),
            "renewal went beyond unicast REQUESTs to the server:\n{timeline}"
        );
    }
    let renewed_after = renewing_since - bound_at;
    assert!(
        renewed_after + Duration::from_millis(300) >= lease.renew_at
            && renewed_after < lease.rebind_at,
        "renewal began {renewed_after:?} after binding, T1 is {:?}:\n{timeline}",
        lease.renew_at
    );
    assert!(
        fixture.acks_sent(first_run) > acks_before_renewal,
        "the server did not answer a renewing REQUEST:\n{timeline}"
    );
    assert_eq!(
        driver.client.lease(),
        Some(&lease),
        "the lease changed on renewal"
    );
    // So the ACK came in through the port: the packet socket stayed closed.
    assert!(
        !driver.socket.on_link(),
        "a renewal reopened the packet socket:\n{timeline}"
    );

    // 3. Without the server the client rebinds, then loses the lease when it expires.
    fixture.stop_server();
    let leases = Command::new("dumpleases")
        .arg("-f")
        .arg(fixture.lease_file())
        .output()
        .expect("running dumpleases");
    let leases = String::from_utf8_lossy(&leases.stdout);
    assert!(
        leases.contains(HOSTNAME) && leases.contains(&lease.address.to_string()),
        "the server did not record our hostname option with the lease:\n{leases}"
    );

    let phase = driver.run_until("losing the lease", LEASE * 2, |actions, _| {
        actions.iter().any(|a| matches!(a, DhcpAction::Lost(_)))
    });
    let timeline = driver.timeline.join("\n");
    let states: Vec<State> = phase.iter().map(|(_, _, state)| *state).collect();
    let renewing = states.iter().position(|s| *s == State::Renewing);
    let rebinding = states.iter().position(|s| *s == State::Rebinding);
    assert!(
        matches!((renewing, rebinding), (Some(r), Some(b)) if r < b),
        "expected Renewing then Rebinding before the expiry:\n{timeline}"
    );
    let (lost_at, actions, _) = phase.last().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, DhcpAction::Lost(l) if l.address == lease.address)),
        "{timeline}"
    );
    // The lease renewed in step 2 runs from that renewal's REQUEST.
    let expires = renewing_since + lease.lease_time;
    assert!(
        *lost_at + Duration::from_millis(300) >= expires
            && *lost_at < expires + Duration::from_secs(1),
        "lost {:?} after the renewal, the lease is {:?}:\n{timeline}",
        *lost_at - renewing_since,
        lease.lease_time
    );
    assert_eq!(driver.client.lease(), None);
    assert_eq!(driver.client.state(), State::Selecting, "{timeline}");
    // Rebinding broadcast, which opened the packet socket again for what follows.
    assert!(driver.socket.on_link(), "{timeline}");
    ip(&[
        "-n",
        &fixture.client_ns,
        "addr",
        "del",
        &cidr,
        "dev",
        interface,
    ]);

    // 4. With the server back, the client gets a lease again by itself.
    let second_run = fixture.start_server();
    let phase = driver.run_until(
        "getting a lease again",
        Duration::from_secs(20),
        |actions, _| actions.iter().any(|a| matches!(a, DhcpAction::Bound(_))),
    );
    let lease = phase
        .last()
        .unwrap()
        .1
        .iter()
        .find_map(|a| match a {
            DhcpAction::Bound(lease) => Some(lease.clone()),
            _ => None,
        })
        .unwrap();
    check_lease(&lease);
    assert!(fixture.acks_sent(second_run) >= 1);

    eprintln!("dhcp_ns timeline:\n{}", driver.timeline.join("\n"));
}
