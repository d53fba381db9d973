use star_heartbeat::daemon::{self, Options, USAGE};
use std::process::ExitCode;

fn main() -> ExitCode {
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
