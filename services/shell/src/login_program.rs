//! star-login: the login on a console (one per console device the board lists, started
//! by star-init on that tty). The user is `admin`, the password is checked against
//! star.toml's `[admin] password_hash`; then the `star` shell takes over the terminal.
//! When the session ends, star-init starts star-login again.

use crate::login::{self, Setup, Verdict};
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

const USAGE: &str = "usage: star-login [--config STAR_TOML] [--shell STAR_BINARY]
Run on a terminal: asks for the user and password, then runs `STAR_BINARY shell`
(default /bin/star). STAR_TOML defaults to /run/star/star.toml.";

/// Cooked mode with echo: whatever the last session left the terminal in (the shell's
/// line editor uses raw mode, and a session can end in the middle of it).
fn sane_terminal() {
    use nix::sys::termios::*;
    let stdin = std::io::stdin();
    if let Ok(mut t) = tcgetattr(&stdin) {
        t.local_flags |=
            LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ISIG;
        t.input_flags |= InputFlags::ICRNL;
        t.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
    }
}

fn set_echo(on: bool) {
    use nix::sys::termios::*;
    let stdin = std::io::stdin();
    if let Ok(mut t) = tcgetattr(&stdin) {
        t.local_flags.set(LocalFlags::ECHO, on);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
    }
}

/// Typed-ahead guesses are dropped after a failure: each one waits its own delay.
fn discard_typeahead() {
    let _ = nix::sys::termios::tcflush(std::io::stdin(), nix::sys::termios::FlushArg::TCIFLUSH);
}

/// The kernel log keeps a record of logins and failures (`dmesg`), where the console's
/// own scrollback would lose it.
fn record(text: &str) {
    if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = writeln!(kmsg, "<13>star-login: {text}");
    }
}

/// One line from the terminal, without its newline; `None` at end of input.
fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
    }
}

pub fn main() -> std::process::ExitCode {
    let mut config = PathBuf::from(crate::config::CONFIG_IN_FORCE);
    let mut shell = PathBuf::from("/bin/star");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--config", Some(p)) => config = PathBuf::from(p),
            ("--shell", Some(p)) => shell = PathBuf::from(p),
            _ => {
                eprintln!("star-login: unexpected {:?}\n{USAGE}", args[i]);
                return std::process::ExitCode::from(2);
            }
        }
        i += 2;
    }
    let tty = nix::unistd::ttyname(std::io::stdin())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "stdin".into());
    sane_terminal();
    let mut failures: u32 = 0;
    let mut out = std::io::stdout();
    loop {
        let setup = login::setup_from(&config);
        let host = crate::status::host_name();
        let _ = write!(out, "{}\n{host} login: ", login::banner(&host, &setup));
        let _ = out.flush();
        let Some(user) = read_line() else {
            return std::process::ExitCode::SUCCESS;
        };
        let user = user.trim().to_string();
        if user.is_empty() {
            continue;
        }
        let _ = write!(out, "Password: ");
        let _ = out.flush();
        set_echo(false);
        let password = read_line();
        set_echo(true);
        let _ = writeln!(out);
        let Some(password) = password else {
            return std::process::ExitCode::SUCCESS;
        };
        // Read again: the password may have been set while the prompt was up.
        let setup = login::setup_from(&config);
        match login::check(&user, &password, &setup) {
            Verdict::Granted => {
                record(&format!("{user} logged in on {tty}"));
                let mut cmd = std::process::Command::new(&shell);
                cmd.arg("shell").env("STAR_CONFIG", &config);
                match &setup {
                    Setup::Ready {
                        idle_timeout: Some(t),
                        ..
                    } => {
                        cmd.env("STAR_IDLE_TIMEOUT_SEC", t.as_secs().to_string());
                    }
                    _ => {
                        cmd.env("STAR_IDLE_TIMEOUT_SEC", "0");
                    }
                }
                let e = cmd.exec();
                let _ = writeln!(out, "cannot start the shell {}: {e}", shell.display());
                record(&format!("cannot start {}: {e}", shell.display()));
                std::thread::sleep(std::time::Duration::from_secs(2));
                return std::process::ExitCode::FAILURE;
            }
            Verdict::Incorrect => {
                failures = failures.saturating_add(1);
                record(&format!(
                    "login as {user:?} on {tty} refused (failure {failures} in a row)"
                ));
                std::thread::sleep(login::failure_delay(failures));
                discard_typeahead();
                let _ = writeln!(out, "Login incorrect");
            }
            Verdict::Disabled(why) => {
                let _ = writeln!(out, "Login refused: {why}");
                std::thread::sleep(std::time::Duration::from_secs(1));
                discard_typeahead();
            }
        }
    }
}
