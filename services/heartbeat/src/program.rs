//! The star-heartbeat program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::daemon::{self, Options, USAGE};
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("star-heartbeat: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("star-heartbeat: {e}");
            ExitCode::FAILURE
        }
    }
}
