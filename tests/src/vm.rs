//! A QEMU machine (TCG: KVM guests hang on our build machines) whose serial console is
//! QEMU's standard input and output, with a monitor socket for the ACPI power button and
//! for pausing the guest.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

pub struct Vm {
    child: Child,
    serial: Arc<Mutex<String>>,
    monitor: PathBuf,
}

/// Firmware arguments that boot a disk through OVMF, as a cloud or VirtualBox would.
/// `dir` keeps this machine's copy of the UEFI variables.
pub fn uefi_args(dir: &Path) -> Vec<String> {
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).expect("OVMF is installed (apt-get install ovmf)");
    vec![
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ]
}

/// Boots the image's kernel and initramfs (out/BOARD/boot) directly, with words added to
/// its command line: quicker than OVMF, and the command line is the test's to choose.
pub fn direct_args(boot: &Path, extra_cmdline: &str) -> Vec<String> {
    let cmdline = std::fs::read_to_string(boot.join("cmdline")).unwrap();
    vec![
        "-kernel".into(),
        boot.join("vmlinuz").display().to_string(),
        "-initrd".into(),
        boot.join("initrd.img").display().to_string(),
        "-append".into(),
        format!("{} {extra_cmdline}", cmdline.trim()),
    ]
}

/// Attaches `disk` as a copy-on-write snapshot (the image file stays as built);
/// "nvme" is a device rather than an `if=` interface.
pub fn disk_args(disk: &Path, format: &str, interface: &str) -> Vec<String> {
    let file = format!("file={},format={format},snapshot=on", disk.display());
    if interface == "nvme" {
        vec![
            "-drive".into(),
            format!("{file},if=none,id=boot"),
            "-device".into(),
            "nvme,drive=boot,serial=vol0123456789".into(),
        ]
    } else {
        vec!["-drive".into(), format!("{file},if={interface}")]
    }
}

/// Attaches the array's shared disk (a raw file) as a virtio disk that another QEMU may
/// have open at the same time: `share-rw` and no image locking, as two controllers on one
/// EBS Multi-Attach volume or one VirtualBox shareable disk. Writes go to the file, with
/// no host cache between the two machines.
pub fn shared_disk_args(disk: &Path, serial: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "file={},format=raw,if=none,id=shared,cache=none,aio=threads,file.locking=off",
            disk.display()
        ),
        "-device".into(),
        format!("virtio-blk-pci,drive=shared,share-rw=on,serial={serial}"),
    ]
}

impl Vm {
    /// Starts QEMU with `args` plus the common ones: q35, 512 MiB, one CPU, TCG, no
    /// display, no reboot (a guest reset ends QEMU), serial console on stdio.
    pub fn start(args: Vec<String>, dir: &Path) -> Vm {
        let monitor = dir.join("monitor.sock");
        let _ = std::fs::remove_file(&monitor);
        let mut child = Command::new("qemu-system-x86_64")
            .args(args)
            .args(["-accel", "tcg", "-machine", "q35", "-m", "512", "-smp", "1"])
            .args(["-display", "none", "-no-reboot"])
            .arg("-monitor")
            .arg(format!("unix:{},server,nowait", monitor.display()))
            .args(["-serial", "stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 (apt-get install qemu-system-x86)");
        let serial = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let serial = serial.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut s = serial.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        Vm {
            child,
            serial,
            monitor,
        }
    }

    /// Everything the console printed so far.
    pub fn serial(&self) -> String {
        self.serial.lock().unwrap().clone()
    }

    /// Waits for `needle` on the console; panics with the console if it does not come
    /// within `limit` (a generous bound for a slow machine, not a timing check).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        self.wait_for_count(needle, 1, limit)
    }

    /// Waits until `needle` has appeared `count` times on the console.
    pub fn wait_for_count(&mut self, needle: &str, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.serial().matches(needle).count() >= count {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "QEMU exited ({status}) before {needle:?}:\n{}",
                    self.serial()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!(
            "no {needle:?} within {limit:?}; serial console:\n{}",
            self.serial()
        );
    }

    /// Types a line on the serial console.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Sends one command to the QEMU monitor (system_powerdown, stop, cont...).
    pub fn monitor(&self, command: &str) {
        let mut s = std::os::unix::net::UnixStream::connect(&self.monitor).unwrap();
        s.write_all(format!("{command}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }

    /// QEMU must exit by itself (the guest powered off) within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!(
            "the VM did not power off; serial console:\n{}",
            self.serial()
        );
    }

    /// Presses the ACPI power button and waits for a clean power-off.
    pub fn power_off(&mut self) {
        self.monitor("system_powerdown");
        let status = self.wait_exit(Duration::from_secs(120));
        assert!(status.success(), "QEMU: {status}\n{}", self.serial());
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
