//! The command form, for operators: one acquire, release or status, here and now.

use crate::announce::Unguarded;
use crate::cli::Command;
use crate::method::{FloatingMethod, Later};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

pub fn run(method: &mut dyn FloatingMethod, command: Command) -> ExitCode {
    match command {
        Command::Acquire => match method.acquire() {
            Ok(acquired) => {
                println!("acquired {}", acquired.message);
                if let Some(later) = acquired.later {
                    detach(later);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("acquire", &e),
        },
        Command::Release => match method.release() {
            Ok(m) => {
                println!("released: {m}");
                ExitCode::SUCCESS
            }
            Err(e) => fail("release", &e),
        },
        Command::Status => match method.status() {
            Ok(o) => {
                println!(
                    "{} {}: {}",
                    method.name(),
                    method.address(),
                    if o.held { "held" } else { "not held" }
                );
                println!("observed: {}", o.observed);
                ExitCode::SUCCESS
            }
            Err(e) => fail("status", &e),
        },
        // Needs star.toml's [fencing], not the address's method: main runs it.
        Command::FencePeer => fail("fence-peer", "not an address command"),
    }
}

fn fail(what: &str, e: &str) -> ExitCode {
    eprintln!("star-takeover: {what}: {e}");
    ExitCode::FAILURE
}

/// Leaves the later work (the second burst) to a child process, so that the command
/// returns after the first burst as the service's acquire does. The child writes nothing
/// (its output goes to /dev/null, so a caller reading this command's output is not kept
/// waiting), and each of its packets goes out only while the address is still held here:
/// a release run meanwhile silences it.
fn detach(later: Later) {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the command runs on one thread only (nothing in it spawns one), so the child
    // starts with a consistent copy of everything.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => {}
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..=2 {
                    // SAFETY: dup2 only replaces descriptors 0 to 2 with /dev/null, which
                    // `null` keeps open for the call.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            std::thread::sleep(later.after);
            let _ = (later.run)(&Unguarded);
            std::process::exit(0);
        }
        Err(e) => eprintln!("star-takeover: {} not scheduled: fork: {e}", later.what),
    }
}
