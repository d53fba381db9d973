//! A disk fault layer for the fault suite (`--disk-fault FILE`), never used in
//! production: before every disk I/O the daemon reads FILE. `ok` (or no file) lets the
//! I/O proceed, `fail` makes it return an I/O error, `stall` blocks it until the file
//! says something else — a disk that hangs, as a lost path or a frozen EBS volume does.
//! It lets the process-level harness (tests/harness.rs) break one node's disk without
//! root, device-mapper or a VM.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Fault {
    file: Option<PathBuf>,
}

impl Fault {
    pub fn none() -> Fault {
        Fault { file: None }
    }

    pub fn from_file(file: PathBuf) -> Fault {
        Fault { file: Some(file) }
    }

    /// Called before each I/O: returns when the I/O may proceed, or the injected error.
    pub fn gate(&self, what: &str) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut said_stall = false;
        loop {
            let word = std::fs::read_to_string(file).unwrap_or_default();
            match word.trim() {
                "fail" => {
                    return Err(std::io::Error::other(format!(
                        "{what}: injected failure ({})",
                        file.display()
                    )))
                }
                "stall" => {
                    if !said_stall {
                        eprintln!(
                            "star-heartbeat: {what}: injected stall ({})",
                            file.display()
                        );
                        said_stall = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return Ok(()),
            }
        }
    }
}
