//! What STAR's end-to-end tests share: the project's paths, scratch directories, images
//! built once per test run, and [`vm::Vm`], a QEMU machine whose serial console the test
//! reads and types on.

pub mod array;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The root of the project.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The static binaries `make static` leaves (make test builds them first).
pub fn static_bins() -> PathBuf {
    let dir = root().join("target/x86_64-unknown-linux-gnu/release");
    assert!(
        dir.join("star-init").exists() && dir.join("star").exists(),
        "static binaries missing in {}: run `make static` (make test does)",
        dir.display()
    );
    dir
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("star-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds the image of `board` with `config` on its config partition, once per test run
/// and configuration; returns its output directory.
pub fn image(board: &str, config: Option<&Path>) -> PathBuf {
    type Builds = Vec<(String, Option<PathBuf>, PathBuf)>;
    static BUILDS: OnceLock<Mutex<Builds>> = OnceLock::new();
    let builds = BUILDS.get_or_init(|| Mutex::new(Vec::new()));
    // One build at a time: builds share the package cache.
    let mut builds = builds.lock().unwrap_or_else(|e| e.into_inner());
    let key = config.map(Path::to_path_buf);
    if let Some((_, _, dir)) = builds.iter().find(|(b, c, _)| b == board && *c == key) {
        return dir.clone();
    }
    let out = scratch(&format!("image-{board}-{}", builds.len()));
    let mut cmd = Command::new(static_bins().join("star-image"));
    cmd.args(["build", "--board", board, "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(static_bins())
        .arg("--cache")
        .arg(root().join(".cache"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .current_dir(root());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "star-image build --board {board} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    builds.push((board.to_string(), key, out.clone()));
    out
}

/// Runs a program to completion; returns (success, stdout, stderr).
pub fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
