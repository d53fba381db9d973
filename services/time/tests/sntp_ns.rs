//! star-time against a real NTP server: chrony's chronyd serving in a network namespace
//! (with `-x`: it never touches the clock), the client in another. `--dry-run` keeps the
//! client's hands off the clock too: a test must not move the machine's time.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STAR_TIME: &str = env!("CARGO_BIN_EXE_star-time");

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

struct Lab {
    namespaces: Vec<String>,
    server: Option<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(s) = &mut self.server {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn star_time(ns: &str, server: &str) -> (bool, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            STAR_TIME,
            "--server",
            server,
            "--once",
            "--dry-run",
        ])
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn measures_the_offset_from_chrony_and_reports_an_absent_server() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test creates network namespaces: run it as root (CI does)"
    );
    let id = std::process::id();
    let (s, c) = (format!("star-ntp-s-{id}"), format!("star-ntp-c-{id}"));
    let mut lab = Lab {
        namespaces: vec![s.clone(), c.clone()],
        server: None,
        dir: std::env::temp_dir().join(format!("star-time-{id}")),
    };
    std::fs::create_dir_all(&lab.dir).unwrap();
    ip(&["netns", "add", &s]);
    ip(&["netns", "add", &c]);
    ip(&[
        "link", "add", "ntp-s", "netns", &s, "type", "veth", "peer", "name", "ntp-c", "netns", &c,
    ]);
    ip(&["-n", &s, "addr", "add", "198.18.5.1/24", "dev", "ntp-s"]);
    ip(&["-n", &c, "addr", "add", "198.18.5.2/24", "dev", "ntp-c"]);
    ip(&["-n", &s, "link", "set", "ntp-s", "up"]);
    ip(&["-n", &c, "link", "set", "ntp-c", "up"]);

    let conf = lab.dir.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "local stratum 8\nallow all\nbindaddress 198.18.5.1\nport 123\ncmdport 0\n\
             pidfile {}\ndriftfile {}\n",
            lab.dir.join("chronyd.pid").display(),
            lab.dir.join("drift").display()
        ),
    )
    .unwrap();
    lab.server = Some(
        Command::new("ip")
            .args(["netns", "exec", &s, "chronyd", "-d", "-x", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chronyd (package chrony)"),
    );

    // chronyd needs a moment before it answers; star-time itself tries three times.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let (ok, out) = star_time(&c, "198.18.5.1");
        if ok {
            break out;
        }
        assert!(Instant::now() < deadline, "chronyd never answered: {out}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // Same machine, same clock: the offset is tiny and the server is at stratum 8.
    let offset: f64 = out
        .split("offset ")
        .nth(1)
        .and_then(|r| r.split(" s").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {out}"));
    assert!(offset.abs() < 0.5, "{out}");
    assert!(out.contains("stratum 8"), "{out}");

    // Nothing at that address: a clear failure, not a hang.
    let (ok, out) = star_time(&c, "198.18.5.9");
    assert!(!ok);
    assert!(out.contains("no answer within 2 s"), "{out}");
}
