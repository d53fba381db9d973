//! A bad services file is refused with file, line and key, and nothing is started.

mod common;

use common::*;
use std::process::Command;

/// Runs star-init on a services file whose "marker" service would leave a file behind if
/// it were ever started; returns (exit code, stderr).
fn refused(name: &str, services: &str) -> (Option<i32>, String, std::path::PathBuf) {
    let dir = scratch(name);
    let config = dir.join("init.toml");
    let marker = dir.join("started");
    let body = format!(
        "{}[[service]]\nname = \"marker\"\nexec = [\"touch\", \"{}\"]\n{}",
        init_table(&dir, ""),
        marker.display(),
        services
    );
    std::fs::write(&config, body).unwrap();
    let out = Command::new(STAR_INIT)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!marker.exists(), "nothing may start from a refused file");
    assert!(!dir.join("init.sock").exists(), "no control socket either");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        config,
    )
}

fn assert_names(stderr: &str, config: &std::path::Path, line: usize, key: &str) {
    let place = format!("{}:{line}:", config.display());
    assert!(stderr.contains(&place), "expected {place} in: {stderr}");
    assert!(stderr.contains(key), "expected the key {key} in: {stderr}");
    assert!(stderr.contains("nothing was started"), "{stderr}");
}

// The [init] table takes 5 lines and the marker service 3, so the file's own services
// start on line 9.

#[test]
fn unknown_key() {
    let (code, err, cfg) = refused(
        "unknown-key",
        "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\nrestart_policy = \"always\"\n",
    );
    assert_eq!(code, Some(2));
    assert_names(&err, &cfg, 12, "restart_policy");
}

#[test]
fn missing_exec() {
    let (code, err, cfg) = refused("missing-exec", "[[service]]\nname = \"a\"\n");
    assert_eq!(code, Some(2));
    assert_names(&err, &cfg, 9, "exec");
}

#[test]
fn dependency_cycle() {
    let (code, err, cfg) = refused(
        "cycle",
        "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\nafter = [\"b\"]\n\
         [[service]]\nname = \"b\"\nexec = [\"/bin/true\"]\nafter = [\"a\"]\n",
    );
    assert_eq!(code, Some(2));
    assert_names(&err, &cfg, 12, "service.after");
    assert!(err.contains("dependency cycle: a -> b -> a"), "{err}");
}

#[test]
fn unknown_dependency() {
    let (code, err, cfg) = refused(
        "unknown-dep",
        "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\nafter = [\"ghost\"]\n",
    );
    assert_eq!(code, Some(2));
    assert_names(&err, &cfg, 12, "service.after");
    assert!(err.contains("\"ghost\", which is not defined"), "{err}");
}

#[test]
fn wrong_type() {
    let (code, err, cfg) = refused(
        "wrong-type",
        "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\ncritical = \"yes\"\n",
    );
    assert_eq!(code, Some(2));
    assert_names(&err, &cfg, 12, "critical");
}

#[test]
fn check_mode_validates_without_running() {
    let dir = scratch("check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[[service]]\nname = \"a\"\nexec = [\"/bin/true\"]\n").unwrap();
    let out = Command::new(STAR_INIT)
        .arg("--check")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 services, valid"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[service]]\nname = \"a\"\n").unwrap();
    let out = Command::new(STAR_INIT)
        .arg("--check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing field `exec`"));
}
