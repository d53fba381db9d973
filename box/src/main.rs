//! star-box: every program of the appliance in one executable, the way busybox carries
//! the shell tools. The image's /init, /bin/star-target, /bin/star... are links to it,
//! and it runs the program it is called as.
//!
//! Why: the appliance's root file system lives in RAM, so every byte of executable is
//! memory in use for as long as the machine runs. Separate static executables each carry
//! their own copy of the standard library, the async runtime, serde, the TLS stack; one
//! executable carries them once (see bench/RESULTS.md for what it saves).

use std::ffi::OsString;
use std::process::ExitCode;

/// A program's entry point.
type Program = fn() -> ExitCode;

/// The programs, by the name they are run as.
const PROGRAMS: &[(&str, Program)] = &[
    ("star-init", star_init::program::main),
    ("init", star_init::program::main),
    ("star-config", star_config::program::main),
    ("star-net", star_net::program::main),
    ("star-time", star_time::program::main),
    ("star-target", star_target::program::main),
    ("star-heartbeat", star_heartbeat::program::main),
    ("star-takeover", star_takeover::program::main),
    ("star-witness", star_witness::program::main),
    ("star", star_shell::program::main),
    // `star` itself acts on the name it was called as (the kernel's orderly_poweroff
    // runs /sbin/poweroff).
    ("poweroff", star_shell::program::main),
    ("reboot", star_shell::program::main),
    ("star-login", star_shell::login_program::main),
];

/// The program for a path's last component, if it is one of ours.
fn program_for(arg0: &OsString) -> Option<Program> {
    let name = std::path::Path::new(arg0).file_name()?.to_str()?;
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn names() -> String {
    PROGRAMS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> ExitCode {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    if let Some(program) = program_for(&arg0) {
        return program();
    }
    // `star-box PROGRAM ARGS...` runs PROGRAM; the programs read their arguments from
    // std::env::args, so that form is for listing and checking only.
    match std::env::args().nth(1).as_deref() {
        None | Some("--list") => {
            println!("{}", names().replace(", ", "\n"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "star-box: run it through a link named after the program ({other:?} given); \
                 programs: {}",
                names()
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_by_the_last_part_of_its_path() {
        assert!(program_for(&"/bin/star-target".into()).is_some());
        assert!(program_for(&"/init".into()).is_some());
        assert!(program_for(&"star".into()).is_some());
        assert!(program_for(&"/sbin/poweroff".into()).is_some());
        assert!(program_for(&"/bin/star-box".into()).is_none());
        assert!(program_for(&"/bin/sh".into()).is_none());
    }

    #[test]
    fn every_program_the_image_links_is_known() {
        for name in [
            "star-init",
            "star-config",
            "star-net",
            "star-time",
            "star-target",
            "star-heartbeat",
            "star-takeover",
            "star-witness",
            "star",
            "star-login",
        ] {
            assert!(PROGRAMS.iter().any(|(n, _)| *n == name), "{name}");
        }
    }
}
