//! The star-net binary in a network namespace, as star-init would run it: one interface by
//! DHCP from a real udhcpd, one static; it must say READY=1 only when both have their
//! address, and answer `status` with the lease.

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STAR_NET: &str = env!("CARGO_BIN_EXE_star-net");

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (package iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip").args(args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Lab {
    server_ns: String,
    client_ns: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server_ns])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client_ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn dhcp_and_static_interfaces_come_up_and_are_reported() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates network namespaces: run it as root (CI does)"
    );
    let id = std::process::id();
    let mut lab = Lab {
        server_ns: format!("star-svc-s-{id}"),
        client_ns: format!("star-svc-c-{id}"),
        dir: std::env::temp_dir().join(format!("star-net-service-{id}")),
        children: Vec::new(),
    };
    std::fs::create_dir_all(&lab.dir).unwrap();
    let (s, c) = (lab.server_ns.clone(), lab.client_ns.clone());
    ip(&["netns", "add", &s]);
    ip(&["netns", "add", &c]);
    ip(&[
        "link", "add", "svc-s", "netns", &s, "type", "veth", "peer", "name", "eth0", "netns", &c,
    ]);
    ip(&["-n", &s, "addr", "add", "10.99.7.1/24", "dev", "svc-s"]);
    ip(&["-n", &s, "link", "set", "svc-s", "up"]);
    ip(&[
        "link", "add", "svc-s2", "netns", &s, "type", "veth", "peer", "name", "eth1", "netns", &c,
    ]);
    ip(&["-n", &s, "link", "set", "svc-s2", "up"]);
    ip(&["-n", &c, "link", "set", "lo", "up"]);

    let leases = lab.dir.join("leases");
    std::fs::write(&leases, b"").unwrap();
    let conf = lab.dir.join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start 10.99.7.50\nend 10.99.7.60\ninterface svc-s\nlease_file {}\npidfile {}\n\
             min_lease 1\nopt subnet 255.255.255.0\nopt router 10.99.7.1\nopt mtu 1400\nopt lease 30\n",
            leases.display(),
            lab.dir.join("udhcpd.pid").display()
        ),
    )
    .unwrap();
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", &s, "udhcpd", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("udhcpd (package udhcpd)"),
    );

    let star_toml = lab.dir.join("star.toml");
    std::fs::write(
        &star_toml,
        r#"version = 1
[array]
name = "nettest"
[node]
name = "ctl1"
id = 1
role = "controller"
[[interface]]
name = "eth0"
purpose = "client"
dhcp = true
[[interface]]
name = "eth1"
purpose = "interconnect"
address = "198.51.100.11/24"
[floating]
address = "10.99.7.100/24"
method = "arp"
[witness]
url = "http://198.51.100.3:7400"
[cluster]
key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
"#,
    )
    .unwrap();
    // star-init's side of sd_notify: a datagram socket in the file system, which a
    // process in another network namespace reaches all the same.
    let notify_path = lab.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let status_path = lab.dir.join("net.sock");
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", &c, STAR_NET, "--config"])
            .arg(&star_toml)
            .arg("--status")
            .arg(&status_path)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "star-net never said READY=1");
        let n = notify.recv(&mut buf).expect("READY=1 from star-net");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if msg.contains("READY=1") {
            // udhcpd picks any address of its pool, 10.99.7.50 to .60.
            let octet: u8 = msg
                .split("eth0 10.99.7.")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|o| o.parse().ok())
                .unwrap_or_else(|| panic!("no eth0 lease in {msg}"));
            assert!((50..=60).contains(&octet), "{msg}");
            assert!(msg.contains("eth1 198.51.100.11/24"), "{msg}");
            break;
        }
    }

    // The kernel has what star-net said.
    let addrs = ip_json(&["-n", &c, "-j", "-4", "addr"]);
    let has = |dev: &str, prefix: &str| {
        addrs.as_array().unwrap().iter().any(|l| {
            l["ifname"] == dev
                && l["addr_info"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["local"].as_str().unwrap().starts_with(prefix))
        })
    };
    assert!(has("eth0", "10.99.7."), "{addrs}");
    assert!(has("eth1", "198.51.100.11"), "{addrs}");
    let routes = ip_json(&["-n", &c, "-j", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.99.7.1", "{routes}");
    assert_eq!(routes[0]["dev"], "eth0", "{routes}");
    let links = ip_json(&["-n", &c, "-j", "link", "show", "eth0"]);
    assert_eq!(links[0]["mtu"], 1400, "the lease's MTU: {links}");

    // Bound, star-net listens on UDP port 68: no packet socket is left open in its
    // namespace to filter every IP packet of the interface.
    let packet = Command::new("ip")
        .args(["netns", "exec", &c, "cat", "/proc/net/packet"])
        .output()
        .unwrap();
    let packet = String::from_utf8_lossy(&packet.stdout);
    assert_eq!(
        packet.lines().count(),
        1,
        "packet sockets left open:\n{packet}"
    );

    // And its status socket says so too.
    let mut stream = UnixStream::connect(&status_path).unwrap();
    use std::io::{BufRead, BufReader, Write};
    stream.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
    let status = &reply["status"];
    assert_eq!(status["ready"], true, "{reply}");
    let eth0 = &status["interfaces"][0];
    assert_eq!(eth0["method"], "dhcp");
    assert_eq!(eth0["lease"]["server"], "10.99.7.1", "{reply}");
    assert_eq!(eth0["lease"]["lease_sec"], 30, "{reply}");
    assert_eq!(eth0["lease"]["mtu"], 1400, "{reply}");
    assert_eq!(eth0["link"], "up", "{reply}");
    assert_eq!(
        status["interfaces"][1]["addresses"][0], "198.51.100.11/24",
        "{reply}"
    );
}
