//! Builds real images from Debian's packages and boots them in QEMU (TCG, OVMF) with
//! star-init as PID 1: to `star: appliance ready`, then an ACPI power-button press
//! (`system_powerdown`) that must end the VM by itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const STAR_IMAGE: &str = env!("CARGO_BIN_EXE_star-image");
use star_lab::vm::{direct_args, disk_args, uefi_args, Vm};
use star_lab::{root, scratch, static_bins};

/// Runs `star-image build`; returns (success, stdout+stderr). One build at a time: builds
/// share the package cache.
fn star_image(board: &str, out: &Path, envs: &[(&str, &str)]) -> (bool, String) {
    let example = root().join(format!("board/examples/{board}.star.toml"));
    let config: Vec<PathBuf> = example.exists().then_some(example).into_iter().collect();
    star_image_with(board, out, envs, &config)
}

fn star_image_with(
    board: &str,
    out: &Path,
    envs: &[(&str, &str)],
    config: &[PathBuf],
) -> (bool, String) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(STAR_IMAGE);
    cmd.args(["build", "--board", board, "--out"])
        .arg(out)
        .arg("--bin-dir")
        .arg(static_bins())
        .arg("--cache")
        .arg(root().join(".cache"))
        .args(
            config
                .iter()
                .flat_map(|c| [PathBuf::from("--config"), c.clone()]),
        )
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .current_dir(root());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// Each board is built once per test run, with the board's example star.toml on its
/// config partition, and shared by the tests that boot it.
fn built(board: &'static str) -> PathBuf {
    let example = root().join(format!("board/examples/{board}.star.toml"));
    built_with(board, Some(example))
}

/// The same without any star.toml.
fn built_without_config(board: &'static str) -> PathBuf {
    built_with(board, None)
}

fn built_with(board: &'static str, config: Option<PathBuf>) -> PathBuf {
    type Builds = Vec<(&'static str, bool, PathBuf)>;
    static BUILDS: OnceLock<Mutex<Builds>> = OnceLock::new();
    let builds = BUILDS.get_or_init(|| Mutex::new(Vec::new()));
    let mut builds = builds.lock().unwrap_or_else(|e| e.into_inner());
    let with = config.is_some();
    if let Some((_, _, dir)) = builds.iter().find(|(b, w, _)| *b == board && *w == with) {
        return dir.clone();
    }
    let out = scratch(&format!("build-{board}-{with}"));
    let mut extra = Vec::new();
    if let Some(c) = &config {
        extra.push(c.clone());
    }
    let (ok, text) = star_image_with(board, &out, &[], &extra);
    assert!(ok, "star-image build --board {board} failed:\n{text}");
    builds.push((board, with, out.clone()));
    out
}

/// Boots a disk through OVMF, as a cloud or VirtualBox would, with QEMU's user-mode
/// network (its own DHCP server, no host configuration) on a NIC of each model.
fn boot(disk: &Path, format: &str, interface: &str, nics: &[&str], dir: &Path) -> Vm {
    let mut args = uefi_args(dir);
    args.extend(disk_args(disk, format, interface));
    for model in nics {
        args.extend(["-nic".to_string(), format!("user,model={model}")]);
    }
    if nics.is_empty() {
        args.extend(["-nic".to_string(), "none".to_string()]);
    }
    Vm::start(args, dir)
}

/// Boots the image's kernel and initramfs directly, with words added to the command line.
fn boot_direct(boot: &Path, extra_cmdline: &str, dir: &Path) -> Vm {
    let mut args = vec!["-nic".to_string(), "none".to_string()];
    args.extend(direct_args(boot, extra_cmdline));
    Vm::start(args, dir)
}

/// Boots a disk to ready and powers it off with the ACPI button; returns the console.
fn boot_and_power_off(disk: &Path, format: &str, interface: &str, nics: &[&str]) -> String {
    let dir = scratch(&format!("vm-{format}"));
    let mut vm = boot(disk, format, interface, nics, &dir);
    // TCG through OVMF is slow on a loaded machine: a generous limit, not a timing check.
    vm.wait_for("star: appliance ready", Duration::from_secs(240));
    vm.monitor("system_powerdown");
    let status = vm.wait_exit(Duration::from_secs(120));
    let serial = vm.serial();
    assert!(status.success(), "QEMU: {status}\n{serial}");
    serial
}

#[test]
fn the_qemu_image_boots_to_ready_and_powers_off_on_the_acpi_button() {
    let out = built("qemu");
    let nics = ["virtio-net-pci", "virtio-net-pci"];
    let serial = boot_and_power_off(&out.join("star-qemu.raw"), "raw", "virtio", &nics);
    assert!(
        serial.contains("star-net: ready: eth0 10.0.1.11/24; eth1 10.0.2.11/24"),
        "{serial}"
    );
    assert!(
        serial
            .contains("star-time: no time.ntp_server in star.toml: keeping the clock the RTC gave"),
        "{serial}"
    );
    assert!(
        serial.contains("STAR init") && serial.contains("as PID 1"),
        "{serial}"
    );
    assert!(serial.contains("kernel modules ready:"), "{serial}");
    assert!(serial.contains("iscsi_target_mod"), "{serial}");
    assert!(
        serial.contains("hardware watchdog /dev/watchdog armed"),
        "{serial}"
    );
    assert!(serial.contains("ACPI power button: poweroff"), "{serial}");
    assert!(
        serial.contains(
            "star-config: ctl1 (controller 1) of array star0001, from /dev/vda2:star.toml"
        ),
        "{serial}"
    );
    assert!(serial.contains("powering off"), "{serial}");
    assert!(!serial.contains("Kernel panic"), "{serial}");
    assert!(
        !serial.contains("star-init: error:"),
        "init reported an error:\n{serial}"
    );
}

#[test]
fn the_virtualbox_vdi_boots() {
    let out = built("virtualbox");
    assert!(out.join("vbox-lab.sh").exists());
    // e1000 NICs, as VirtualBox has; eth0 gets its address from QEMU's DHCP server.
    let nics = ["e1000", "e1000"];
    let serial = boot_and_power_off(&out.join("star-virtualbox.vdi"), "vdi", "ide", &nics);
    assert!(
        serial.contains("star-net: eth0: 10.0.2.15/24 from DHCP server 10.0.2.2"),
        "{serial}"
    );
    assert!(
        serial.contains("star-net: ready: eth0 10.0.2.15/24; eth1 172.31.255.11/24"),
        "{serial}"
    );
    assert!(
        serial.contains("ahci") && serial.contains("e1000"),
        "{serial}"
    );
}

/// Boots the aws-ec2 image the way EC2 runs it: the boot disk on NVMe, two NICs with
/// DHCP, and the instance metadata service at 169.254.169.254, served by
/// tests/imds-responder.py. QEMU's user network forwards only addresses inside its own
/// network, so the first NIC's network is 169.254.0.0/16 (its lease: 169.254.2.15).
/// `user_data` None: the instance has none. Returns the console and the requests the
/// metadata service saw.
fn boot_aws(disk: &Path, format: &str, user_data: Option<&str>, dir: &Path) -> (Vm, PathBuf) {
    let log = dir.join("imds.log");
    let _ = std::fs::remove_file(&log);
    let served = match user_data {
        Some(text) => {
            let file = dir.join("user-data");
            std::fs::write(&file, text).unwrap();
            file.display().to_string()
        }
        None => "-".into(),
    };
    let responder = root().join("image/tests/imds-responder.py");
    let mut args = uefi_args(dir);
    args.extend(disk_args(disk, format, "nvme"));
    args.extend([
        "-nic".to_string(),
        format!(
            "user,model=virtio-net-pci,net=169.254.0.0/16,\
                 guestfwd=tcp:169.254.169.254:80-cmd:python3 {} {} {served}",
            responder.display(),
            log.display()
        ),
        "-nic".to_string(),
        "user,model=virtio-net-pci".to_string(),
    ]);
    (Vm::start(args, dir), log)
}

#[test]
fn the_aws_image_takes_its_identity_from_user_data_through_imdsv2() {
    let out = built_without_config("aws-ec2");
    for f in [
        "star-aws-ec2.vmdk",
        "register-image.json",
        "aws-import.sh",
        "manifest.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let dir = scratch("aws-user-data");
    // The example, as the second controller: the identity must come from here.
    let user_data = std::fs::read_to_string(root().join("board/examples/aws-ec2.star.toml"))
        .unwrap()
        .replace("name = \"ctl1\"", "name = \"ec2-ctl2\"")
        .replace("id = 1", "id = 2");
    let (mut vm, log) = boot_aws(
        &out.join("star-aws-ec2.vmdk"),
        "vmdk",
        Some(&user_data),
        &dir,
    );
    vm.wait_for("star: appliance ready", Duration::from_secs(240));
    let serial = vm.serial();
    assert!(
        serial.contains(
            "star-config: eth0 has 169.254.2.15/16 from DHCP for the instance metadata service"
        ),
        "{serial}"
    );
    assert!(
        serial
            .contains("star-config: ec2-ctl2 (controller 2) of array star-ec2, from EC2 user-data"),
        "{serial}"
    );
    // star-net starts from a clean interface and leases it again for itself.
    assert!(
        serial.contains("star-net: eth0: 169.254.2.15/16 from DHCP server"),
        "{serial}"
    );
    assert!(
        serial.contains("nvme_core.io_timeout=4294967295"),
        "{serial}"
    );
    let requests = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = requests.lines().collect();
    assert_eq!(
        lines[..2.min(lines.len())],
        [
            "PUT /latest/api/token token=no",
            "GET /latest/user-data token=yes"
        ],
        "IMDSv2: a token first, then the user-data with it"
    );
    // star-takeover's AWS method asks the metadata service too (its instance and ENI):
    // every read carries a token, IMDSv1 is never used.
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("PUT /latest/api/token") || l.ends_with("token=yes")),
        "{lines:?}"
    );
    vm.monitor("system_powerdown");
    assert!(vm.wait_exit(Duration::from_secs(120)).success());
}

#[test]
fn the_aws_image_without_user_data_says_so_and_waits_for_a_config() {
    let out = built_without_config("aws-ec2");
    let dir = scratch("aws-no-user-data");
    let (mut vm, log) = boot_aws(&out.join("star-aws-ec2.raw"), "raw", None, &dir);
    vm.wait_for(
        "the services that need star.toml will not start",
        Duration::from_secs(240),
    );
    let serial = vm.serial();
    assert!(
        serial.contains("star-config: error:   this instance has no EC2 user-data"),
        "{serial}"
    );
    assert!(
        serial.contains("star-config: error: give the instance its star.toml as user-data"),
        "{serial}"
    );
    assert!(!serial.contains("star: appliance ready"), "{serial}");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("GET /latest/user-data token=yes"));
    vm.monitor("system_powerdown");
    assert!(vm.wait_exit(Duration::from_secs(120)).success());
}

#[test]
fn two_builds_of_the_same_tree_are_byte_identical() {
    let first = built("qemu");
    let second = scratch("repro");
    let (ok, text) = star_image("qemu", &second, &[]);
    assert!(ok, "{text}");
    let a = std::fs::read(first.join("star-qemu.raw")).unwrap();
    let b = std::fs::read(second.join("star-qemu.raw")).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the raw images differ");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source_date_epoch"], 1700000000);
    let raw = &manifest["artifacts"][0];
    assert_eq!(raw["file"], "star-qemu.raw");
    assert_eq!(raw["size"], a.len() as u64);
    assert_eq!(raw["sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["kernel_release"]
        .as_str()
        .unwrap()
        .ends_with("-cloud-amd64"));
}

#[test]
fn a_missing_host_tool_names_its_package() {
    let empty = scratch("no-tools");
    let (ok, text) = star_image(
        "qemu",
        &empty.join("out"),
        &[("STAR_IMAGE_PATH", empty.to_str().unwrap())],
    );
    assert!(!ok);
    assert!(
        text.contains("dpkg-deb is not installed: apt-get install dpkg"),
        "{text}"
    );
    assert!(
        text.contains("objcopy is not installed: apt-get install binutils"),
        "{text}"
    );
}

#[test]
fn an_unknown_board_lists_the_known_ones() {
    let out = scratch("unknown-board");
    let (ok, text) = star_image("raspberry-pi", &out, &[]);
    assert!(!ok);
    assert!(
        text.contains("unknown board \"raspberry-pi\"; known boards: aws-ec2, qemu, virtualbox"),
        "{text}"
    );
}

#[test]
fn star_rescue_gives_a_shell_on_the_console_whose_poweroff_goes_through_init() {
    let out = built("qemu");
    let dir = scratch("rescue");
    let mut vm = boot_direct(&out.join("boot"), "star.rescue", &dir);
    vm.wait_for("star: appliance ready", Duration::from_secs(240));
    assert!(vm
        .serial()
        .contains("star.rescue: starting no services, only the rescue shell"));
    // The shell answers on the serial console (the arithmetic proves it is a shell).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !vm.serial().contains("rescue-42") {
        assert!(Instant::now() < deadline, "no shell:\n{}", vm.serial());
        vm.type_line("echo rescue-$((6*7))");
        std::thread::sleep(Duration::from_secs(1));
    }
    // The star CLI inside the image reaches init's control socket.
    vm.type_line("star services");
    vm.wait_for("rescue   running", Duration::from_secs(60));
    // /sbin/poweroff is star, which asks init: an orderly power-off ends the VM.
    vm.type_line("poweroff");
    let status = vm.wait_exit(Duration::from_secs(120));
    let serial = vm.serial();
    assert!(status.success(), "{status}\n{serial}");
    assert!(serial.contains("rescue: stopped"), "{serial}");
    assert!(serial.contains("powering off"), "{serial}");
}

#[test]
fn without_star_toml_the_console_says_so_and_the_appliance_is_not_ready() {
    let out = built_without_config("qemu");
    let dir = scratch("no-config");
    let mut vm = boot(&out.join("star-qemu.raw"), "raw", "virtio", &[], &dir);
    vm.wait_for(
        "the services that need star.toml will not start",
        Duration::from_secs(240),
    );
    let serial = vm.serial();
    assert!(
        serial.contains("star-config: error: no star.toml found:"),
        "{serial}"
    );
    assert!(
        serial.contains(
            "star-config: error:   the STAR-CONFIG partition (/dev/vda2) has no star.toml"
        ),
        "{serial}"
    );
    assert!(!serial.contains("star: appliance ready"), "{serial}");
    // init is still in charge: the power button still powers off.
    vm.monitor("system_powerdown");
    assert!(vm.wait_exit(Duration::from_secs(120)).success());
}

#[test]
fn a_bad_star_toml_is_refused_at_build_time() {
    let dir = scratch("bad-config");
    let bad = dir.join("star.toml");
    let text = std::fs::read_to_string(root().join("board/examples/qemu.star.toml")).unwrap();
    std::fs::write(&bad, text.replace("id = 1", "id = 7")).unwrap();
    let (ok, out) = star_image_with("qemu", &dir.join("out"), &[], std::slice::from_ref(&bad));
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "--config: {}:10:6: node.id: a controller is node 1 or 2, not 7",
            bad.display()
        )),
        "{out}"
    );
    assert!(!dir.join("out/star-qemu.raw").exists());
}
