//! The star-init program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use star_core::init_config::InitConfig;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: star-init [--config FILE] [--control SOCKET] [--debug]
       star-init --check FILE

As PID 1 it boots the appliance (services file /etc/star/init.toml, or star.config= on the
kernel command line). Otherwise it supervises the services of FILE as a child subreaper
until SIGTERM or SIGINT, then stops them in reverse order and exits 0.

  --config FILE     the services file
  --control SOCKET  the control socket (overrides [init] control_socket)
  --debug           log init's own debug messages
  --check FILE      validate a services file and exit (0 valid, 2 refused)";

pub fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut config = None;
    let mut control = None;
    let mut debug = false;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config") => config = args.next().map(PathBuf::from),
            Some("--control") => control = args.next().map(PathBuf::from),
            Some("--debug") => debug = true,
            Some("--check") => {
                let Some(file) = args.next().map(PathBuf::from) else {
                    eprintln!("star-init: --check needs a file\n{USAGE}");
                    return ExitCode::from(crate::EXIT_BAD_CONFIG);
                };
                return match InitConfig::load(&file) {
                    Ok(c) => {
                        println!("{}: {} services, valid", file.display(), c.services.len());
                        ExitCode::SUCCESS
                    }
                    Err(errors) => {
                        eprintln!("{errors}");
                        ExitCode::from(crate::EXIT_BAD_CONFIG)
                    }
                };
            }
            Some("--help") | Some("-h") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("--version") => {
                println!("star-init {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            // The kernel passes init the command-line words it does not understand (such
            // as "quiet" or "single"); as PID 1 those are not ours to refuse.
            _ if std::process::id() == 1 => {}
            _ => {
                eprintln!("star-init: unknown argument {arg:?}\n{USAGE}");
                return ExitCode::from(crate::EXIT_BAD_CONFIG);
            }
        }
    }
    if std::process::id() == 1 {
        crate::boot::pid1_main(config);
    }
    let Some(config) = config else {
        eprintln!("star-init: not PID 1, so --config FILE is needed\n{USAGE}");
        return ExitCode::from(crate::EXIT_BAD_CONFIG);
    };
    crate::plain_main(config, control, debug)
}
