//! star-init as a plain supervisor, with real processes: restarts, readiness, watchdogs,
//! reaping and shutdown.

mod common;

use common::*;
use star_core::control::{ExitInfo, Reply, Request, ServiceState};
use std::os::unix::process::ExitStatusExt;

#[test]
fn a_failing_service_backs_off_and_is_given_up() {
    let r = Running::start(
        "giveup",
        r#"
[[service]]
name = "flaky"
exec = ["sh", "-c", "echo flaky run; exit 7"]
restart = "always"
restart_sec = 0.1
restart_max_sec = 0.4
start_limit_burst = 5
"#,
    );
    r.wait_for_service("flaky", "failed", |s| s.state == ServiceState::Failed);
    let s = r.service("flaky");
    assert_eq!(s.restarts, 4, "five starts: the first and four restarts");
    assert_eq!(s.last_exit, Some(ExitInfo::Exited { code: 7 }));
    let out = r.output();
    // The delays double from restart_sec up to restart_max_sec.
    let delays: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1))
        .collect();
    assert_eq!(delays, vec!["0.1 s", "0.2 s", "0.4 s", "0.4 s"], "{out}");
    assert_eq!(out.matches("flaky: flaky run").count(), 5, "{out}");
    assert!(
        out.contains("flaky: failed: started 5 times within 60 s, last exit 7"),
        "{out}"
    );
    let (status, _) = r.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "a failed non-critical service is not fatal"
    );
}

#[test]
fn on_failure_restarts_errors_but_not_clean_exits() {
    let r = Running::start(
        "onfailure",
        r#"
[[service]]
name = "clean"
exec = ["sh", "-c", "exit 0"]
restart = "on-failure"
[[service]]
name = "crashy"
exec = ["sh", "-c", "if [ -e @DIR@/crashed ]; then exec sleep 1000; fi; touch @DIR@/crashed; kill -SEGV $$"]
restart = "on-failure"
restart_sec = 0.1
"#,
    );
    r.wait_for_service("crashy", "running again", |s| {
        s.state == ServiceState::Running && s.restarts == 1
    });
    assert_eq!(
        r.service("crashy").last_exit,
        Some(ExitInfo::Killed { signal: 11 })
    );
    let clean = r.service("clean");
    assert_eq!(clean.state, ServiceState::Stopped);
    assert_eq!(clean.restarts, 0);
    r.stop();
}

#[test]
fn dependents_start_only_after_readiness_from_foreign_sd_notify_clients() {
    python_has_sdnotify();
    // "db" becomes ready through Python's sdnotify, "cache" through systemd-notify (run
    // from a shell, so the message comes from a helper process of the service). Each
    // writes a marker just before it says READY=1; "app" records which markers it saw.
    let r = Running::start(
        "readiness",
        r#"
[[service]]
name = "app"
exec = ["sh", "-c", "ls @DIR@ > @DIR@/app-saw.partial && mv @DIR@/app-saw.partial @DIR@/app-saw; exec sleep 1000"]
after = ["db", "cache"]
[[service]]
name = "db"
exec = ["python3", "-c", """
import sdnotify, time, pathlib
time.sleep(0.5)
pathlib.Path('@DIR@/db-ready').touch()
sdnotify.SystemdNotifier().notify('READY=1\\nSTATUS=db serving')
time.sleep(1000)
"""]
notify = true
[[service]]
name = "cache"
exec = ["sh", "-c", "sleep 0.3; touch @DIR@/cache-ready; systemd-notify --ready --status='cache warm'; exec sleep 1000"]
notify = true
"#,
    );
    r.wait_for_output("star: appliance ready");
    r.wait_for_service("app", "running", |s| s.state == ServiceState::Running);
    eventually("app wrote what it saw", || r.dir.join("app-saw").exists());
    let saw = std::fs::read_to_string(r.dir.join("app-saw")).unwrap();
    assert!(
        saw.contains("db-ready") && saw.contains("cache-ready"),
        "app saw {saw}"
    );
    assert_eq!(r.service("db").status.as_deref(), Some("db serving"));
    assert_eq!(r.service("cache").status.as_deref(), Some("cache warm"));
    let out = r.output();
    assert!(
        !out.contains("barrier"),
        "systemd-notify's barrier must be answered: {out}"
    );
    // The ready line comes once, after both notify services said READY=1.
    assert_eq!(out.matches("star: appliance ready").count(), 1);
    let ready_at = out.find("star: appliance ready").unwrap();
    assert!(out.find("db: ready").unwrap() < ready_at);
    assert!(out.find("cache: ready").unwrap() < ready_at);
    r.stop();
}

#[test]
fn a_starved_watchdog_gets_the_service_killed_and_restarted() {
    python_has_sdnotify();
    // It pets the watchdog three times, then hangs; the second instance just hangs.
    let r = Running::start(
        "watchdog",
        r#"
[[service]]
name = "petter"
exec = ["python3", "-c", """
import sdnotify, time, os
n = sdnotify.SystemdNotifier()
n.notify('READY=1')
assert os.environ['WATCHDOG_USEC'] == '600000', os.environ['WATCHDOG_USEC']
for _ in range(3):
    time.sleep(0.2)
    n.notify('WATCHDOG=1')
time.sleep(1000)
"""]
notify = true
watchdog_sec = 0.6
restart = "always"
restart_sec = 0.1
"#,
    );
    r.wait_for_service("petter", "restarted after starving", |s| s.restarts >= 1);
    let s = r.service("petter");
    assert_eq!(s.last_exit, Some(ExitInfo::Killed { signal: 9 }));
    let out = r.output();
    assert!(
        out.contains("petter: watchdog starved: no WATCHDOG=1 for 0.6 s"),
        "{out}"
    );
    assert!(!out.contains("AssertionError"), "{out}");
    let (status, _) = r.stop();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn orphans_of_a_double_fork_are_reaped() {
    // The service's child forks a grandchild and exits at once, so the grandchild is
    // re-parented to star-init (a subreaper); when it exits, star-init must reap it.
    let r = Running::start(
        "orphans",
        r#"
[[service]]
name = "forker"
exec = ["sh", "-c", "for i in 1 2 3 4 5; do (sh -c 'sleep 0.2; touch @DIR@/orphan-$$-done' &) ; done; exec sleep 1000"]
"#,
    );
    eventually("five orphans finished", || {
        std::fs::read_dir(&r.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("orphan-")
            })
            .count()
            == 5
    });
    eventually("no zombie left under star-init", || {
        zombie_children(r.pid()).is_empty()
    });
    assert_eq!(r.service("forker").state, ServiceState::Running);
    r.stop();
}

#[test]
fn shutdown_stops_in_reverse_order_and_kills_what_ignores_sigterm() {
    // base <- middle <- top; "stubborn" ignores SIGTERM and waits for "base" too.
    let r = Running::start(
        "shutdown",
        r#"
[[service]]
name = "base"
exec = ["sh", "-c", "trap 'echo base >> @DIR@/order; exit 0' TERM; echo base >> @DIR@/armed; while :; do sleep 0.05; done"]
[[service]]
name = "middle"
exec = ["sh", "-c", "trap 'echo middle >> @DIR@/order; exit 0' TERM; echo middle >> @DIR@/armed; while :; do sleep 0.05; done"]
after = ["base"]
[[service]]
name = "top"
exec = ["sh", "-c", "trap 'sleep 0.3; echo top >> @DIR@/order; exit 0' TERM; echo top >> @DIR@/armed; while :; do sleep 0.05; done"]
after = ["middle"]
[[service]]
name = "stubborn"
exec = ["sh", "-c", "trap '' TERM; echo $$ > @DIR@/stubborn.pid; while :; do sleep 0.05; done"]
after = ["base"]
stop_timeout_sec = 0.5
"#,
    );
    for name in ["base", "middle", "top", "stubborn"] {
        r.wait_for_service(name, "running", |s| s.state == ServiceState::Running);
    }
    // A shell is "running" from its exec, before it has set its trap: a SIGTERM in between
    // would kill it rather than run the trap.
    eventually("base, middle and top set their traps", || {
        std::fs::read_to_string(r.dir.join("armed")).is_ok_and(|s| s.lines().count() == 3)
    });
    eventually("stubborn wrote its pid", || {
        std::fs::read_to_string(r.dir.join("stubborn.pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    let stubborn: i32 = std::fs::read_to_string(r.dir.join("stubborn.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dir = r.dir.clone();
    let (status, out) = r.stop();
    assert_eq!(status.code(), Some(0), "{out}");
    let order = std::fs::read_to_string(dir.join("order")).unwrap();
    assert_eq!(order, "top\nmiddle\nbase\n", "{out}");
    assert!(
        out.contains("stubborn: still running 0.5 s after SIGTERM; sending SIGKILL"),
        "{out}"
    );
    assert!(
        out.contains("stubborn: stopped (killed by SIGKILL)"),
        "{out}"
    );
    // base waited for stubborn to be gone.
    assert!(
        out.find("stubborn: stopped").unwrap() < out.find("base: stopped").unwrap(),
        "{out}"
    );
    assert!(!alive(stubborn));
}

#[test]
fn processes_left_behind_are_ended_at_shutdown() {
    // The orphan ignores SIGTERM and belongs to no service once its parent is gone.
    let r = Running::start_with(
        "leftovers",
        "",
        r#"
[[service]]
name = "leaver"
exec = ["sh", "-c", "setsid sh -c 'trap \"\" TERM; echo $$ > @DIR@/orphan.pid; while :; do sleep 0.05; done' & exec sleep 1000"]
"#,
    );
    eventually("the orphan wrote its pid", || {
        std::fs::read_to_string(r.dir.join("orphan.pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    let orphan: i32 = std::fs::read_to_string(r.dir.join("orphan.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(orphan));
    let (status, out) = r.stop();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        !alive(orphan),
        "the leftover was killed after the grace period"
    );
}

#[test]
fn control_socket_start_stop_restart_and_logs() {
    let r = Running::start(
        "control",
        r#"
[[service]]
name = "talker"
exec = ["sh", "-c", "echo hello from $$; echo second line; exec sleep 1000"]
restart = "always"
"#,
    );
    r.wait_for_service("talker", "running", |s| s.state == ServiceState::Running);
    let first_pid = r.service("talker").pid.unwrap();
    eventually("two lines logged", || {
        matches!(r.request(Request::Logs { name: "talker".into(), lines: None }),
            Reply::Logs { lines, .. } if lines.len() == 2)
    });
    match r.request(Request::Logs {
        name: "talker".into(),
        lines: Some(1),
    }) {
        Reply::Logs { lines, .. } => assert_eq!(lines, vec!["second line"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.request(Request::Restart {
            name: "talker".into()
        }),
        Reply::Done { .. }
    ));
    r.wait_for_service("talker", "running under a new pid", |s| {
        s.state == ServiceState::Running && s.pid.is_some_and(|p| p != first_pid)
    });
    assert_eq!(r.service("talker").restarts, 1);
    assert!(!alive(first_pid));

    r.request(Request::Stop {
        name: "talker".into(),
    });
    r.wait_for_service("talker", "stopped", |s| s.state == ServiceState::Stopped);
    // restart = "always" does not undo a stop.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(r.service("talker").state, ServiceState::Stopped);

    r.request(Request::Start {
        name: "talker".into(),
    });
    r.wait_for_service("talker", "running", |s| s.state == ServiceState::Running);

    match r.request(Request::Stop {
        name: "nope".into(),
    }) {
        Reply::Error { message } => assert!(message.contains("services: talker"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A malformed request gets an error reply, and the socket keeps working.
    let raw = {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&r.socket).unwrap();
        s.write_all(b"{\"cmd\":\"explode\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        line
    };
    assert!(
        raw.contains("\"reply\":\"error\"") && raw.contains("bad request"),
        "{raw}"
    );

    // poweroff in plain mode: stop everything and exit 0.
    let mut r = r;
    assert!(matches!(r.request(Request::Poweroff), Reply::Done { .. }));
    assert_eq!(r.wait_exit().code(), Some(0));
}

#[test]
fn the_star_cli_shows_services_and_logs() {
    let r = Running::start(
        "cli",
        r#"
[[service]]
name = "echoer"
exec = ["sh", "-c", "echo cli-visible-line; exec sleep 1000"]
"#,
    );
    r.wait_for_output("echoer: cli-visible-line");
    let star = std::path::Path::new(STAR_INIT).with_file_name("star");
    assert!(
        star.exists(),
        "build the star binary first (cargo build --workspace)"
    );
    let out = std::process::Command::new(&star)
        .args(["--socket", r.socket.to_str().unwrap(), "services"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("echoer") && text.contains("running"),
        "{text}"
    );
    let out = std::process::Command::new(&star)
        .args(["--socket", r.socket.to_str().unwrap(), "logs", "echoer"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cli-visible-line\n");
    let out = std::process::Command::new(&star)
        .args(["--socket", r.socket.to_str().unwrap(), "stop", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service named \"bogus\""));
    r.stop();
}

/// A FIFO that stands in for /dev/watchdog: every byte star-init writes is a feed, kept
/// in the returned buffer by a reader thread (which ends when star-init closes it).
fn fifo_watchdog(
    name: &str,
) -> (
    std::path::PathBuf,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    std::thread::JoinHandle<()>,
) {
    let fifo = scratch(name).join("watchdog");
    nix_mkfifo(&fifo);
    let feeds = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = {
        let fifo = fifo.clone();
        let feeds = feeds.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut f = std::fs::File::open(&fifo).unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                feeds.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    // The reader must be there before star-init opens the FIFO for writing.
    std::thread::sleep(std::time::Duration::from_millis(200));
    (fifo, feeds, reader)
}

#[test]
fn a_critical_service_that_starves_stops_the_hardware_watchdog_feed() {
    let (fifo, feeds, reader) = fifo_watchdog("hwwd-fifo");
    let mut r = Running::start_with(
        "hwwd",
        &format!(
            "[watchdog]\ndevice = \"{}\"\ntimeout_sec = 3\n",
            fifo.display()
        ),
        r#"
[[service]]
name = "heartbeat"
exec = ["sh", "-c", "systemd-notify --ready; exec sleep 1000"]
notify = true
watchdog_sec = 1.5
critical = true
"#,
    );
    r.wait_for_output("star: appliance ready");
    // Fed at boot and every timeout/3 = 1 s while healthy.
    eventually("two feeds", || feeds.lock().unwrap().len() >= 2);
    let status = r.wait_exit();
    let out = r.output();
    assert_eq!(
        status.code(),
        Some(3),
        "a critical failure ends a plain supervisor with status 3: {out}"
    );
    assert!(
        out.contains("critical service heartbeat starved its watchdog"),
        "{out}"
    );
    reader.join().unwrap();
    let fed = feeds.lock().unwrap().clone();
    assert!(
        !fed.contains(&b'V'),
        "no magic close after a critical failure: {fed:?}"
    );
    assert!(fed.iter().all(|&b| b == b'k'));
}

#[test]
fn a_clean_exit_disarms_the_hardware_watchdog_with_magic_close() {
    let dir = scratch("hwwd-clean");
    let fifo = dir.join("watchdog");
    nix_mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).unwrap())
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let r = Running::start_with(
        "hwwd-clean",
        &format!("[watchdog]\ndevice = \"{}\"\n", fifo.display()),
        "[[service]]\nname = \"idle\"\nexec = [\"sleep\", \"1000\"]\n",
    );
    r.wait_for_output("star: appliance ready");
    let (status, _) = r.stop();
    assert_eq!(status.code(), Some(0));
    let fed = reader.join().unwrap();
    assert_eq!(fed.last(), Some(&b'V'), "{fed:?}");
    assert!(status.signal().is_none());
}

fn nix_mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn under_a_service_manager_it_reports_ready_feeds_the_watchdog_and_says_stopping() {
    // A datagram socket stands in for systemd's NOTIFY_SOCKET.
    let dir = scratch("under-systemd");
    let manager_path = dir.join("manager.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&manager_path).unwrap();
    manager
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let config = dir.join("init.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[service]]\nname = \"svc\"\nexec = [\"sh\", \"-c\", \"sleep 0.3; systemd-notify --ready; exec sleep 1000\"]\nnotify = true\n",
            init_table(&dir, "")
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(STAR_INIT);
    cmd.arg("--config").arg(&config);
    let mut child = cmd
        .env("NOTIFY_SOCKET", &manager_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        let n = manager.recv(&mut buf).expect("a message from star-init");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // The service's own READY=1 went to star-init, not to the manager: only one READY.
    assert_eq!(
        seen.iter().filter(|m| m.contains("READY=1")).count(),
        1,
        "{seen:?}"
    );
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        let n = manager.recv(&mut buf).expect("STOPPING=1 before exit");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn services_start_with_no_signal_blocked_and_stop_on_sigterm() {
    python_has_sdnotify();
    // init blocks the signals it handles; its services must not inherit that. A Python
    // service with default signal handling must die of SIGTERM, well within its timeout.
    let r = Running::start(
        "sigmask",
        r#"
[[service]]
name = "mask"
exec = ["sh", "-c", "exec grep -E '^Sig(Blk|Ign)' /proc/self/status"]
restart = "never"
[[service]]
name = "py"
exec = ["python3", "-c", "import time; time.sleep(1000)"]
stop_timeout_sec = 60
"#,
    );
    r.wait_for_output("mask: SigIgn:");
    r.wait_for_service("py", "running", |s| s.state == ServiceState::Running);
    let out = r.output();
    assert!(out.contains("mask: SigBlk:\t0000000000000000"), "{out}");
    // Signals 32 and 33 belong to the C library's threads and may come ignored from
    // whoever started the test; none of the standard ones may be ignored.
    let ignored = out
        .lines()
        .find_map(|l| l.strip_prefix("mask: SigIgn:\t"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(ignored & 0x7fff_ffff, 0, "signals 1 to 31: {out}");
    let (status, out) = r.stop();
    assert_eq!(status.code(), Some(0));
    assert!(out.contains("py: stopped (killed by SIGTERM)"), "{out}");
}

#[test]
fn a_service_shortens_its_own_watchdog_and_the_hardware_one() {
    let (fifo, _feeds, reader) = fifo_watchdog("hwwd-shorten");
    // The file gives both 30 s; the service asks for 1 s of its own and never feeds.
    let mut r = Running::start_with(
        "hwwd-shorten",
        &format!(
            "[watchdog]\ndevice = \"{}\"\ntimeout_sec = 30\n",
            fifo.display()
        ),
        r#"
[[service]]
name = "heartbeat"
exec = ["sh", "-c", "sleep 1; systemd-notify --ready WATCHDOG_USEC=2000000; exec sleep 1000"]
notify = true
watchdog_sec = 30
critical = true
"#,
    );
    match r.request(Request::HardwareWatchdog { timeout_sec: 3 }) {
        Reply::Done { message } => assert!(
            message.ends_with(": timeout 3 s, fed every 1.0 s"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    // Longer than the file allows, or zero: refused, and the 3 s stays.
    for bad in [60, 0] {
        match r.request(Request::HardwareWatchdog { timeout_sec: bad }) {
            Reply::Error { message } => assert!(
                message.contains(&format!(
                    "{bad} s refused: between 1 s and the services file's 30 s; it keeps 3 s"
                )),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
    r.wait_for_output("star: appliance ready");
    let ready = std::time::Instant::now();
    let status = r.wait_exit();
    let out = r.output();
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(
        out.contains("critical service heartbeat starved its watchdog"),
        "{out}"
    );
    assert!(
        ready.elapsed() < std::time::Duration::from_secs(20),
        "starved on its own 2 s watchdog, not the file's 30 s"
    );
    reader.join().unwrap();
}
