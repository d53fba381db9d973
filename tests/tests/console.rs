//! The maintenance shell on a booted controller's serial console, typed the way an
//! operator types it: a wrong password refused, the right one let in, `status` showing
//! the role the heartbeat decided, a LUN created at the prompt that an initiator then
//! sees, `perf` showing that initiator's reads, and `logout` bringing the login back.

use star_lab::array::{controller_with, free_port, shared_disk, until_ok, TARGET_IQN};
use star_lab::scratch;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(30);
const VIEWER: &str = "iqn.2026-11.org.star-array:viewer";

#[test]
fn an_operator_logs_in_sees_the_role_creates_a_lun_and_logs_out() {
    let dir = scratch("console");
    let shared = shared_disk(&dir);
    let witness_port = free_port();
    let mut witness = star_lab::array::witness(witness_port, &dir);
    let port = free_port();
    let mut c1 = controller_with(
        1,
        &shared,
        port,
        &dir,
        &format!("star.witness.url=http://10.0.2.2:{witness_port}"),
    );
    c1.wait_for("login: ", SHORT);

    // tests/configs/target-ctl.star.toml: admin / "startest-admin".
    c1.type_line("admin");
    c1.wait_for("Password: ", SHORT);
    c1.type_line("guess");
    c1.wait_for("Login incorrect", SHORT);
    assert!(!c1.serial().contains("guess"), "the password was echoed");
    c1.wait_for_count("login: ", 2, SHORT);
    c1.type_line("admin");
    c1.wait_for_count("Password: ", 2, SHORT);
    c1.type_line("startest-admin");
    c1.wait_for("STAR 0.1.0 on ctl1: `help` lists the commands", SHORT);

    // A lone controller becomes active only after peer_dead, the pill and msgwait, with
    // the witness's grant; until then `status` says standby.
    c1.wait_for("role promoting → active", Duration::from_secs(240));
    // The screen has a login too (the qemu board lists tty1), and it stays up: running,
    // never restarted.
    c1.type_line("services");
    c1.wait_for("login-tty1 ", SHORT);
    std::thread::sleep(Duration::from_secs(1));
    let serial = c1.serial();
    let row = serial
        .lines()
        .rev()
        .find(|l| l.starts_with("login-tty1 "))
        .unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cells.get(1), cells.get(3)),
        (Some(&"running"), Some(&"0")),
        "{row}"
    );
    c1.type_line("status");
    c1.wait_for("ctl1: controller 1 ACTIVE in term 1", SHORT);
    c1.wait_for("peer: controller 2 not heard over the interconnect", SHORT);
    c1.wait_for("active/optimized  unavailable", SHORT);

    c1.type_line("lun create data7 32MiB");
    c1.wait_for("LUN data7 created: number ", SHORT);
    let serial = c1.serial();
    let number: u16 = serial
        .split("LUN data7 created: number ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no LUN number:\n{serial}"));
    c1.type_line(&format!("host add viewer {VIEWER} data7"));
    c1.wait_for(&format!("host viewer ({VIEWER}) added"), SHORT);
    // The initiator sees the new LUN at its size: 32 MiB = LBA 0..65535 of 512 bytes.
    let url = format!("iscsi://127.0.0.1:{port}/{TARGET_IQN}/{number}");
    let capacity = until_ok(
        "iscsi-readcapacity16",
        &["-i", VIEWER, &url],
        Duration::from_secs(60),
    );
    assert!(
        capacity.contains("RETURNED LOGICAL BLOCK ADDRESS:65535"),
        "iscsi-readcapacity16 {url}:\n{capacity}"
    );

    // `perf` shows the reads an initiator makes on the new LUN, on its row.
    let mut reader = std::process::Command::new("iscsi-perf")
        .args(["-i", VIEWER, "-b", "8", "-m", "4", &url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iscsi-perf (libiscsi-bin)");
    std::thread::sleep(Duration::from_secs(2));
    let prompts = c1.serial().matches("ctl1 (active)> ").count();
    c1.type_line("perf -n 3");
    c1.wait_for("Ctrl-C ends", SHORT);
    c1.wait_for_count("ctl1 (active)> ", prompts + 1, SHORT);
    let _ = reader.kill();
    let _ = reader.wait();
    let serial = c1.serial();
    let screens = &serial[serial.find("Ctrl-C ends").unwrap_or(0)..];
    let busy = screens.lines().any(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        cells.first() == Some(&"data7")
            && cells.get(1).and_then(|c| c.parse::<f64>().ok()) > Some(0.0)
    });
    assert!(busy, "no reads on data7 in perf's screens:\n{screens}");
    assert!(screens.contains("data7  IOPS  |"), "no graph:\n{screens}");

    // A command that cannot work says why and what to do.
    let prompts = c1.serial().matches("ctl1 (active)> ").count();
    c1.type_line("lun create data7 1GiB");
    c1.wait_for("star: a LUN named \"data7\" already exists", SHORT);
    // The line editor reads ahead: type the next line once the prompt is back.
    c1.wait_for_count("ctl1 (active)> ", prompts + 1, SHORT);
    c1.type_line("logout");
    c1.wait_for("logged out", SHORT);
    c1.wait_for_count("login: ", 3, SHORT);

    c1.power_off();
    witness.power_off();
}
