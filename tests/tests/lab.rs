//! The lab as `make lab-up` builds it (witness, ctl1 and ctl2 under QEMU in a network
//! namespace of their own, one shared disk file) and the reduced fault suite of
//! `make faults` against it, under the verifying client: no acknowledged write may be
//! lost and the controllers may never both be Active/Optimized.

use star_lab::{root, scratch};
use std::process::Command;

struct Lab {
    out: std::path::PathBuf,
    netns: String,
}

impl Lab {
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(root().join(program));
        c.env("LAB_OUT", &self.out).env("LAB_NETNS", &self.netns);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.cmd("lab/lab.sh").arg("down").output();
        if std::thread::panicking() {
            for n in ["witness", "ctl1", "ctl2"] {
                let log =
                    std::fs::read_to_string(self.out.join(format!("{n}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "--- {n} console (last lines, newest first)\n{}",
                    tail.join("\n")
                );
            }
        }
    }
}

#[test]
fn the_lab_survives_the_reduced_fault_suite_without_losing_a_write() {
    let lab = Lab {
        out: scratch("lab"),
        netns: format!("star-lab-test-{}", std::process::id()),
    };
    let up = lab.cmd("lab/lab.sh").arg("up").output().unwrap();
    let text =
        String::from_utf8_lossy(&up.stdout).to_string() + &String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "lab up: {text}");
    assert!(
        text.contains("floating address   192.0.2.100:3260"),
        "{text}"
    );
    let env = std::fs::read_to_string(lab.out.join("lab.env")).unwrap();
    for key in [
        "LAB_NETNS=",
        "VIP=192.0.2.100",
        "PORTAL1=",
        "PORTAL2=",
        "TARGET_IQN=iqn.2026-11.org.star-array:star-lab",
        "INITIATOR_IQN=",
        "CHAP_USER=client1",
        "CHAP_SECRET=",
        "CTL1_PID=",
        "CTL2_PID=",
        "WITNESS_PID=",
        "CTL1_CONSOLE=",
        "CTL2_CONSOLE=",
        "SHARED_DISK=",
        "ADMIN_PASSWORD=",
    ] {
        assert!(env.contains(key), "lab.env lacks {key}:\n{env}");
    }

    let faults = lab
        .cmd("lab/faults.py")
        .args([
            "--scenarios",
            "kill-active,pause-active,switchover-and-back",
            "--runs",
            "1",
        ])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&faults.stdout).to_string();
    let details = String::from_utf8_lossy(&faults.stderr).to_string();
    println!("{summary}{details}");
    assert!(faults.status.success(), "{summary}{details}");
    let line = summary.lines().last().unwrap_or_default();
    assert!(
        line.starts_with(
            "faults: 3 scenarios, 3 runs, acked writes lost 0, dual-active 0, max client gap "
        ),
        "{summary}{details}"
    );
}
