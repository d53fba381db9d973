//! The test array: its config, a shared disk initialized on the host, controllers booted
//! from the qemu image with their portals forwarded to the host, and libiscsi's tools
//! pointed at them.

use crate::vm::{direct_args, disk_args, shared_disk_args, Vm};
use crate::{image, root, run, static_bins};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const TARGET_IQN: &str = "iqn.2026-11.org.star-array:star-test";
/// libiscsi's default initiator name, and the second one its conformance suite uses.
pub const TESTER: &str = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test";
pub const TESTER2: &str = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2";
pub const BOOT_LIMIT: Duration = Duration::from_secs(240);

/// The test array's star.toml (LUNs data0 and data1; hosts tester, tester2 and secure).
pub fn config() -> PathBuf {
    root().join("tests/configs/target-ctl.star.toml")
}

/// Runs the static `star` CLI; panics with its output if it fails.
pub fn star(args: &[&str]) -> String {
    let (ok, out, err) = run(static_bins().join("star").to_str().unwrap(), args);
    assert!(ok, "star {}: {out}{err}", args.join(" "));
    out
}

/// A shared disk of 256 MiB initialized with the test config's LUNs and hosts.
pub fn shared_disk(dir: &Path) -> PathBuf {
    let disk = dir.join("shared.raw");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    star(&[
        "disk",
        "init",
        "--disk",
        disk.to_str().unwrap(),
        "--config",
        config().to_str().unwrap(),
    ]);
    disk
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Controller `node` of the test array, booted directly (kernel and initramfs) with its
/// boot disk, the shared disk, and its portal forwarded to 127.0.0.1:`port`; returned
/// once star-target exports. These tests give the ownership record to a controller
/// themselves (`star target promote --disk`), so the role authority is masked.
pub fn controller(node: u8, shared: &Path, port: u16, dir: &Path) -> Vm {
    controller_with(node, shared, port, dir, "star.mask=heartbeat")
}

/// As [`controller`], with `extra` on the kernel command line instead of the mask.
pub fn controller_with(node: u8, shared: &Path, port: u16, dir: &Path, extra: &str) -> Vm {
    let out = image("qemu", Some(&config()));
    let extra = if node == 1 {
        extra.to_string()
    } else {
        format!("{extra} star.node.name=ctl{node} star.node.id={node}")
    };
    let mut args = direct_args(&out.join("boot"), &extra);
    args.extend(disk_args(&out.join("star-qemu.raw"), "raw", "virtio"));
    args.extend(shared_disk_args(shared, "shared0001"));
    args.extend([
        "-nic".to_string(),
        format!("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:3260"),
        // The interconnect on a user network of its own: on the same 10.0.2.0/24 as eth0,
        // whichever lease came first would own the subnet's route, and the portal's
        // answers would leave by eth1 when that was eth1's.
        "-nic".to_string(),
        "user,model=virtio-net-pci,net=10.0.3.0/24".to_string(),
    ]);
    let dir = dir.join(format!("ctl{node}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut vm = Vm::start(args, &dir);
    vm.wait_for("star: appliance ready", BOOT_LIMIT);
    vm.wait_for("star-target: exporting", BOOT_LIMIT);
    vm
}

/// The test array's witness, booted from the image with role witness; the host's
/// 127.0.0.1:`port` is forwarded to its port 7400, and the controllers reach it as
/// http://10.0.2.2:`port` (the host, as QEMU's user network shows it to them).
pub fn witness(port: u16, dir: &Path) -> Vm {
    let out = image(
        "qemu",
        Some(&root().join("tests/configs/witness.star.toml")),
    );
    let mut args = direct_args(&out.join("boot"), "");
    args.extend(disk_args(&out.join("star-qemu.raw"), "raw", "virtio"));
    args.extend([
        "-nic".to_string(),
        format!("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:7400"),
    ]);
    let dir = dir.join("witness");
    std::fs::create_dir_all(&dir).unwrap();
    let mut vm = Vm::start(args, &dir);
    vm.wait_for("star: appliance ready", BOOT_LIMIT);
    vm.wait_for("star-witness: listening on 0.0.0.0:7400", BOOT_LIMIT);
    vm
}

pub fn url(port: u16, lun: u16) -> String {
    format!("iscsi://127.0.0.1:{port}/{TARGET_IQN}/{lun}")
}

/// Runs a libiscsi tool until it succeeds or `limit` passes (the portal comes up and the
/// ALUA state changes within a poll of the shared disk); returns its output.
pub fn until_ok(program: &str, args: &[&str], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (ok, out, err) = run(program, args);
        if ok {
            return out;
        }
        if Instant::now() >= deadline {
            panic!("{program} {}: {out}{err}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The array with one controller: a fresh shared disk owned by controller 1 and
/// controller 1 booted on it, exporting. Returns the machine, the disk and the port its
/// portal is forwarded to.
pub fn one_controller(dir: &Path) -> (Vm, PathBuf, u16) {
    let shared = shared_disk(dir);
    star(&[
        "target",
        "promote",
        "--disk",
        shared.to_str().unwrap(),
        "--node",
        "1",
    ]);
    let port = free_port();
    let vm = controller(1, &shared, port, dir);
    (vm, shared, port)
}

/// Runs tests/iscsi-probe.py (`read`, `write`, `rtpg`, `vpd80`, `vpd83`) against LUN `lun`
/// through `port`; returns its JSON answer.
pub fn probe(what: &str, port: u16, lun: u16, initiator: &str) -> serde_json::Value {
    let script = root().join("tests/iscsi-probe.py");
    let o = std::process::Command::new("python3")
        .arg(script)
        .args(["--initiator", initiator, what, &url(port, lun)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "iscsi-probe {what}: {e}: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Waits until REPORT TARGET PORT GROUPS through `port` shows `states` for groups 1 and 2.
pub fn wait_for_alua(port: u16, states: [u64; 2], limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let r = probe("rtpg", port, 0, TESTER);
        let groups = r["groups"].as_array().cloned().unwrap_or_default();
        let state = |id: u64| {
            groups
                .iter()
                .find(|g| g["id"] == id)
                .and_then(|g| g["state"].as_u64())
        };
        if state(1) == Some(states[0]) && state(2) == Some(states[1]) {
            return r;
        }
        if Instant::now() >= deadline {
            panic!("RTPG through port {port}: wanted {states:?}, got {r}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
