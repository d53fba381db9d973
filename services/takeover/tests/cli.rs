//! The star-takeover binary's answers that need no network: usage mistakes, a refused
//! star.toml, the witness, and the AWS methods of a build without star-aws. None of them
//! may touch an interface, so these run anywhere, as any user.

use std::path::PathBuf;
use std::process::{Command, Output};

const STAR_TAKEOVER: &str = env!("CARGO_BIN_EXE_star-takeover");

/// A star.toml file, removed when dropped.
struct Toml(PathBuf);

impl Toml {
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Toml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // The last one out removes the directory.
        let _ = std::fs::remove_dir(self.0.parent().unwrap());
    }
}

fn star_toml(name: &str, role: &str, floating: &str) -> Toml {
    let dir = std::env::temp_dir().join(format!("star-takeover-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (id, interfaces) = match role {
        "witness" => (3, "[[interface]]\nname = \"eth0\"\npurpose = \"interconnect\"\naddress = \"198.51.100.3/24\"\n"),
        _ => (1, "[[interface]]\nname = \"eth0\"\npurpose = \"client\"\naddress = \"10.0.1.11/24\"\n[[interface]]\nname = \"eth1\"\npurpose = \"interconnect\"\naddress = \"198.51.100.11/24\"\n[witness]\nurl = \"http://198.51.100.3:7400\"\n"),
    };
    let text = format!(
        "version = 1\n[array]\nname = \"cli\"\n[node]\nname = \"n{id}\"\nid = {id}\nrole = \"{role}\"\n\
         {interfaces}{floating}[cluster]\nkey = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\n\
         "
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Toml(path)
}

fn takeover(args: &[&str]) -> Output {
    Command::new(STAR_TAKEOVER)
        .args(args)
        .output()
        .expect("run star-takeover")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_mistakes_exit_2_with_the_usage() {
    for args in [&["frobnicate"][..], &["acquire", "release"], &["--config"]] {
        let out = takeover(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("usage: star-takeover"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = takeover(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: star-takeover"));
}

#[test]
fn a_refused_star_toml_exits_2_naming_the_mistake() {
    let path = star_toml(
        "bad.toml",
        "controller",
        "[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"arp\"\ngarp_interval_ms = 9000\n",
    );
    let out = takeover(&["--config", path.path(), "acquire"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("floating.garp_interval_ms: must be between 0 and 5000"),
        "{}",
        stderr(&out)
    );
    let out = takeover(&["--config", "/nonexistent/star.toml", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/star.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_witness_has_nothing_to_move() {
    let path = star_toml("witness.toml", "witness", "");
    let out = takeover(&["--config", path.path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "star-takeover: this node is the witness: it has no floating address\n"
    );
}

#[test]
fn aws_methods_off_ec2_fail_with_a_clear_error_and_change_nothing() {
    for (method, extra) in [
        ("aws-secondary-ip", ""),
        ("aws-route-table", "route_table_ids = [\"rtb-0123\"]\n"),
        (
            "aws-route53",
            "hosted_zone_id = \"Z0123\"\nrecord_name = \"star.example.internal\"\n",
        ),
    ] {
        // A client interface that does not exist here, and nothing on the discard port
        // for the metadata service: it fails at once wherever the test runs (tests/
        // aws_moto.rs covers the methods themselves).
        let path = star_toml(
            &format!("{method}.toml"),
            "controller",
            &format!(
                "[floating]\naddress = \"10.0.1.100/24\"\nmethod = \"{method}\"\n{extra}\
                 [aws]\nimds_endpoint = \"http://127.0.0.1:9\"\n"
            ),
        );
        let text = std::fs::read_to_string(path.path()).unwrap().replacen(
            "name = \"eth0\"\npurpose = \"client\"",
            "name = \"nic-missing0\"\npurpose = \"client\"",
            1,
        );
        std::fs::write(path.path(), text).unwrap();
        for command in ["acquire", "release", "status"] {
            let out = takeover(&["--config", path.path(), command]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{method} {command}: {err}");
            assert!(
                err.starts_with(&format!("star-takeover: {command}: ")),
                "{err}"
            );
            assert!(
                err.contains("interface nic-missing0 (purpose client) does not exist"),
                "{method} {command}: {err}"
            );
        }
    }
}
