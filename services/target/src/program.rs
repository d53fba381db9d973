//! The star-target program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::service::{Paths, Service};
use star_core::node_config::NodeConfig;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: star-target [--config FILE] [--socket PATH] [--configfs DIR] [--dbroot DIR]

Exports the array of the shared disk (the disk with a STAR-META partition) through the
kernel's LIO iSCSI target: reads the array config and the ownership record from the
disk once a second and reconciles configfs (default /sys/kernel/config/target) with
them. Answers star-core's target protocol on SOCKET (default /run/star/target.sock):
status, promote, demote, reconcile, and array changes on the active controller.";

pub fn main() -> ExitCode {
    let mut config = PathBuf::from("/run/star/star.toml");
    let mut paths = Paths {
        configfs: PathBuf::from("/sys/kernel/config/target"),
        sys: PathBuf::from("/sys"),
        dev: PathBuf::from("/dev"),
        socket: PathBuf::from("/run/star/target.sock"),
        dbroot: PathBuf::from("/var/lib/star/target"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || PathBuf::from(args.next().unwrap_or_default());
        match a.as_str() {
            "--config" => config = value(),
            "--socket" => paths.socket = value(),
            "--configfs" => paths.configfs = value(),
            "--dbroot" => paths.dbroot = value(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("star-target: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let node = match NodeConfig::load(&config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("star-target: {e}");
            return ExitCode::from(2);
        }
    };
    if node.node.role == star_core::node_config::Role::Witness {
        // The image runs the same services on every node; the witness exports nothing.
        eprintln!("star-target: this node is the witness: it exports nothing");
        return ExitCode::SUCCESS;
    }
    match Service::new(node, paths) {
        Ok(mut s) => s.run(),
        Err(e) => {
            eprintln!("star-target: {e}");
            ExitCode::FAILURE
        }
    }
}
