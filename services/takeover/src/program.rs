//! The star-takeover program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::cli::{self, Mode, USAGE};
use crate::{method, oneshot, service::Service};
use star_core::node_config::NodeConfig;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("star-takeover: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let node = match NodeConfig::load(&args.config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("star-takeover: {e}");
            return ExitCode::from(2);
        }
    };
    if node.node.role == star_core::node_config::Role::Witness {
        // The image runs the same services on every node; the witness has no address to move.
        eprintln!("star-takeover: this node is the witness: it has no floating address");
        return ExitCode::SUCCESS;
    }
    let mut method = match method::for_node(&node) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("star-takeover: {e}");
            return ExitCode::from(2);
        }
    };
    match args.mode {
        Mode::Once(cli::Command::FencePeer) => match crate::fence::fence_peer(&node) {
            Ok(m) => {
                println!("fenced: {m}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("star-takeover: fence-peer: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Once(command) => oneshot::run(method.as_mut(), command),
        Mode::Serve { socket } => match Service::new(method, &socket) {
            Ok(s) => s.with_fencing(node).run(&socket),
            Err(e) => {
                eprintln!("star-takeover: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
