//! The star program: what its executable runs (src/main.rs, and star-box
//! when the image carries every program in one executable).

use crate::commands::{self, Context};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Installed as /sbin/poweroff and /sbin/reboot too: the kernel's orderly_poweroff runs
    // /sbin/poweroff, and people type these out of habit. Both go through star-init.
    let invoked_as = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string));
    if let Some(cmd @ ("poweroff" | "reboot")) = invoked_as.as_deref() {
        args = vec![cmd.to_string()];
    }
    let mut socket = commands::default_init_socket();
    let mut json = false;
    while let Some(first) = args.first() {
        match first.as_str() {
            "--socket" if args.len() >= 2 => {
                socket = PathBuf::from(&args[1]);
                args.drain(..2);
            }
            "--json" => {
                json = true;
                args.remove(0);
            }
            "-h" | "--help" => {
                print!("{}", commands::usage_text());
                return ExitCode::SUCCESS;
            }
            _ => break,
        }
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["shell"] => {
            // star-login says how long a console session may sit idle; 0 is never.
            let idle = std::env::var("STAR_IDLE_TIMEOUT_SEC")
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs);
            return crate::shell::run(idle, socket);
        }
        [] => {
            eprintln!("star: no command given\n{}", commands::usage_text());
            return ExitCode::from(2);
        }
        _ => {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Ctrl-C ends `logs -f` and `perf` cleanly rather than killing them mid-line.
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone());
    let ctx = Context {
        init_socket: socket,
        json,
        stop,
    };
    let outcome = commands::run(&words, &ctx);
    if outcome.ok {
        print!("{}", outcome.text);
    } else {
        eprintln!("star: {}", outcome.text.trim_end());
    }
    ExitCode::from(outcome.code)
}
