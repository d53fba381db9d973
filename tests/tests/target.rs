//! The iSCSI target end to end: the qemu image booted with a shared disk file, the real
//! LIO target inside it configured by star-target, and libiscsi's tools on the host as
//! the initiator, through a port forward of QEMU's user network.
//!
//! The shared disk is initialized on the host (`star disk init --disk FILE`) and the
//! ownership record written there too (`star target promote --disk FILE --node N`): the
//! controllers follow the disk within a second, as they will follow the heartbeat
//! service's writes.

use star_lab::array::{
    controller, free_port, one_controller, probe, shared_disk, star, until_ok, url, wait_for_alua,
    TARGET_IQN, TESTER,
};
use star_lab::{run, scratch};
use std::time::Duration;

#[test]
fn one_controller_exports_its_luns_with_acls_and_chap() {
    let dir = scratch("target-one");
    let (mut vm, shared, port) = one_controller(&dir);

    let inq = until_ok(
        "iscsi-inq",
        &["-i", TESTER, &url(port, 0)],
        Duration::from_secs(60),
    );
    assert!(inq.contains("STAR"), "vendor: {inq}");
    let cap = until_ok(
        "iscsi-readcapacity16",
        &["-i", TESTER, &url(port, 0)],
        Duration::from_secs(30),
    );
    // data0 is 64 MiB of 512-byte blocks.
    assert!(
        cap.contains("RETURNED LOGICAL BLOCK ADDRESS:131071"),
        "{cap}"
    );
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:512"), "{cap}");

    // An initiator the array does not know is refused at login.
    let (ok, out, err) = run(
        "iscsi-inq",
        &["-i", "iqn.2026-11.test.star:stranger", &url(port, 0)],
    );
    assert!(!ok, "an unknown initiator logged in: {out}");
    assert!(err.to_lowercase().contains("login"), "{err}");

    // The CHAP host: its secret lets it in, a wrong one does not.
    let secure = "iqn.2026-11.test.star:secure";
    // It sees data1 only, under data1's LUN number, 1.
    let good = format!("iscsi://secure%chap-secret-12@127.0.0.1:{port}/{TARGET_IQN}/1");
    let bad = format!("iscsi://secure%wrong-secret-1@127.0.0.1:{port}/{TARGET_IQN}/1");
    let inq = until_ok("iscsi-inq", &["-i", secure, &good], Duration::from_secs(10));
    assert!(inq.contains("STAR"), "{inq}");
    let (ok, out, err) = run("iscsi-inq", &["-i", secure, &bad]);
    assert!(!ok, "a wrong CHAP secret logged in: {out}");
    assert!(err.to_lowercase().contains("login"), "{err}");
    // ... and without CHAP at all.
    let (ok, _, _) = run("iscsi-inq", &["-i", secure, &url(port, 1)]);
    assert!(!ok, "the CHAP host logged in without CHAP");

    // A LUN added on the disk appears without disturbing the others.
    star(&[
        "lun",
        "create",
        "data2",
        "16MiB",
        "--disk",
        shared.to_str().unwrap(),
    ]);
    star(&[
        "host",
        "add",
        "late",
        "iqn.2026-11.test.star:late",
        "data2",
        "--disk",
        shared.to_str().unwrap(),
    ]);
    let cap = until_ok(
        "iscsi-readcapacity16",
        &["-i", "iqn.2026-11.test.star:late", &url(port, 2)],
        Duration::from_secs(30),
    );
    assert!(
        cap.contains("RETURNED LOGICAL BLOCK ADDRESS:32767"),
        "{cap}"
    );
    vm.wait_for("star-target: generation 3:", Duration::from_secs(30));
    vm.power_off();
}

#[test]
fn two_controllers_report_one_identity_and_swap_alua_states() {
    let dir = scratch("target-two");
    let shared = shared_disk(&dir);
    let disk = shared.to_str().unwrap().to_string();
    star(&["target", "promote", "--disk", &disk, "--node", "1"]);
    let (p1, p2) = (free_port(), free_port());
    let mut c1 = controller(1, &shared, p1, &dir);
    let mut c2 = controller(2, &shared, p2, &dir);

    // One device identity through both portals: the logical unit's designators (the
    // NAA among them) and its unit serial. The standby path answers INQUIRY too.
    until_ok(
        "iscsi-inq",
        &["-i", TESTER, &url(p1, 0)],
        Duration::from_secs(60),
    );
    let lu_ids = |port| {
        let r = probe("vpd83", port, 0, TESTER);
        assert_eq!(r["ok"], true, "VPD 0x83 through port {port}: {r}");
        let all = r["designators"].as_array().cloned().unwrap_or_default();
        let lu: Vec<serde_json::Value> = all
            .iter()
            .filter(|d| d["association"] == 0)
            .cloned()
            .collect();
        (lu, all)
    };
    let (lu1, all1) = lu_ids(p1);
    let (lu2, all2) = lu_ids(p2);
    assert!(
        lu1.iter().any(|d| d["type"] == 3),
        "no NAA designator for the logical unit: {all1:?}"
    );
    assert_eq!(lu1, lu2, "the LU identity differs:\n{all1:?}\n{all2:?}");
    // The port designators (relative port, port group) are the path's own.
    assert_ne!(all1, all2, "both paths claim the same target port");
    let serial = |port| probe("vpd80", port, 0, TESTER)["serial"].clone();
    assert_eq!(serial(p1), serial(p2));
    assert!(
        serial(p1).as_str().is_some_and(|s| s.len() == 32),
        "{}",
        serial(p1)
    );

    // Both controllers report both groups: 1 Active/Optimized (0), 2 Standby (2).
    let r1 = wait_for_alua(p1, [0, 2], Duration::from_secs(30));
    let r2 = wait_for_alua(p2, [0, 2], Duration::from_secs(30));
    assert_eq!(
        r1["groups"], r2["groups"],
        "RTPG differs between the controllers"
    );

    // The standby path refuses I/O with NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET
    // PORT IN STANDBY STATE (02h, 04h/0Bh); the active path serves it.
    for what in ["read", "write"] {
        let r = probe(what, p2, 0, TESTER);
        assert_eq!(r["ok"], false, "{what} on the standby: {r}");
        assert_eq!(
            (
                r["sense_key"].as_u64(),
                r["asc"].as_u64(),
                r["ascq"].as_u64()
            ),
            (Some(2), Some(4), Some(0x0b)),
            "{what}: {r}"
        );
        let r = probe(what, p1, 0, TESTER);
        assert_eq!(r["ok"], true, "{what} on the active: {r}");
    }

    // Controller 2 takes over: the states swap on both.
    star(&["target", "promote", "--disk", &disk, "--node", "2"]);
    wait_for_alua(p1, [2, 0], Duration::from_secs(30));
    wait_for_alua(p2, [2, 0], Duration::from_secs(30));
    for what in ["read", "write"] {
        assert_eq!(probe(what, p2, 0, TESTER)["ok"], true);
        let r = probe(what, p1, 0, TESTER);
        assert_eq!(
            (
                r["sense_key"].as_u64(),
                r["asc"].as_u64(),
                r["ascq"].as_u64()
            ),
            (Some(2), Some(4), Some(0x0b)),
            "{what}: {r}"
        );
    }
    // Controller 1 dead: its group Unavailable (3) as controller 2 reports it.
    star(&[
        "target",
        "promote",
        "--disk",
        &disk,
        "--node",
        "2",
        "--peer-dead",
    ]);
    wait_for_alua(p2, [3, 0], Duration::from_secs(30));

    c1.power_off();
    c2.power_off();
}
