//! star-init as PID 1 of a new PID namespace (unshare, as root): it reaps orphans there,
//! and its shutdown ends the namespace through reboot(2), which the kernel turns into a
//! signal for the namespace's init (SIGINT for power-off, SIGHUP for restart).

mod common;

use common::*;
use star_core::control::{Reply, Request, ServiceState};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test creates PID namespaces and must run as root (CI does)"
    );
}

const SERVICES: &str = r#"
[[service]]
name = "forker"
exec = ["sh", "-c", "echo $$ > @DIR@/forker.pid; while :; do (sleep 0.05 &); sleep 0.1; done"]
[[service]]
name = "ready"
exec = ["sh", "-c", "systemd-notify --ready; exec sleep 1000"]
notify = true
after = ["forker"]
[[service]]
name = "leaver"
exec = ["sh", "-c", "setsid sh -c 'trap \"\" TERM; while :; do sleep 0.05; done' & exec sleep 1000"]
"#;

fn start_in_namespace(name: &str) -> Running {
    require_root();
    let dir = scratch(name);
    let services = SERVICES.replace("@DIR@", dir.to_str().unwrap());
    let config = dir.join("init.toml");
    std::fs::write(&config, format!("{}{services}", init_table(&dir, ""))).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(STAR_INIT)
        .arg("--config")
        .arg(&config);
    Running::spawn(cmd, dir)
}

/// The host pid of the namespace's init: unshare's only child.
fn namespace_init(r: &Running) -> i32 {
    let mut found = None;
    eventually("unshare forked init", || {
        found = std::fs::read_to_string(format!("/proc/{}/task/{}/children", r.pid(), r.pid()))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn as_pid1_it_reaps_orphans_and_powers_off_on_request() {
    let mut r = start_in_namespace("pid1-poweroff");
    r.wait_for_output("star: appliance ready");
    let init = namespace_init(&r);
    assert!(r.output().contains("as PID 1"), "{}", r.output());
    // The forker makes an orphan every 100 ms; none may stay a zombie.
    eventually("orphans were made", || {
        r.output().contains("ready: started") && std::fs::metadata(r.dir.join("forker.pid")).is_ok()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    for _ in 0..10 {
        let zombies = zombie_children(init);
        // A zombie may exist for the instant between SIGCHLD and the reap; one that
        // stays is a bug.
        for z in zombies {
            eventually("zombie reaped", || !alive_or_zombie(z));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(matches!(r.request(Request::Poweroff), Reply::Done { .. }));
    let status = r.wait_exit();
    let out = r.output();
    assert_eq!(
        status.signal(),
        Some(libc::SIGINT),
        "poweroff in a PID namespace: {out}\n{status:?}"
    );
    assert!(out.contains("powering off"), "{out}");
    assert!(out.contains("forker: stopped"), "{out}");
    assert!(!alive_or_zombie(init));
}

#[test]
fn as_pid1_sigterm_means_reboot() {
    let mut r = start_in_namespace("pid1-reboot");
    r.wait_for_output("star: appliance ready");
    let init = namespace_init(&r);
    r.wait_for_service("forker", "running", |s| s.state == ServiceState::Running);
    // SAFETY: kill(2) on the namespace's init, a process we started.
    unsafe { libc::kill(init, libc::SIGTERM) };
    let status = r.wait_exit();
    let out = r.output();
    assert_eq!(
        status.signal(),
        Some(libc::SIGHUP),
        "reboot in a PID namespace: {out}"
    );
    assert!(out.contains("SIGTERM from pid 0: reboot"), "{out}");
    // The leftover that ignores SIGTERM was killed before reboot(2).
    assert!(out.contains("processes left after 2.0 s: SIGKILL"), "{out}");
    assert!(out.contains("rebooting"), "{out}");
}

fn alive_or_zombie(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
