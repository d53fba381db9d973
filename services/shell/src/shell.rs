//! The interactive `star` shell on the console: line editing, history and completion
//! (rustyline), `help` on every command, and the same commands as `star` from a script.
//! A session with no command for the idle timeout is logged out.

use crate::commands::{self, Context};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What can follow the words typed so far: the candidates for the word under the cursor
/// and where that word starts. `services` lists the service names (for `logs`, `start`...),
/// asked only when needed.
pub fn complete_line(
    before_cursor: &str,
    services: &dyn Fn() -> Vec<String>,
) -> (usize, Vec<String>) {
    let start = before_cursor
        .rfind(char::is_whitespace)
        .map_or(0, |i| i + 1);
    let partial = &before_cursor[start..];
    let done: Vec<&str> = before_cursor[..start].split_whitespace().collect();
    let candidates: Vec<String> = match done.as_slice() {
        [] => commands::command_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
        ["help"] => commands::COMMANDS
            .iter()
            .map(|c| c.name.to_string())
            .collect(),
        ["logs" | "start" | "stop" | "restart"] => services(),
        [name] => commands::subcommands(name)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        _ => Vec::new(),
    };
    let mut matching: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.starts_with(partial))
        .collect();
    matching.sort();
    matching.dedup();
    (start, matching)
}

fn service_names() -> Vec<String> {
    match star_core::control::request(
        &commands::default_init_socket(),
        &star_core::control::Request::Services,
        Duration::from_secs(2),
    ) {
        Ok(star_core::control::Reply::Services { services, .. }) => {
            services.into_iter().map(|s| s.name).collect()
        }
        _ => Vec::new(),
    }
}

struct ShellHelper;

impl Completer for ShellHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = complete_line(&line[..pos], &service_names);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: format!("{w} "),
                })
                .collect(),
        ))
    }
}
impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// The prompt: the host name and the role, so that an operator always sees which
/// controller they are typing on and what it is doing.
fn prompt() -> String {
    let host = crate::status::host_name();
    let path = std::env::var_os("STAR_HEARTBEAT_SOCKET")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::roles::HEARTBEAT_SOCKET.into());
    let role = star_core::control::call::<_, star_core::heartbeat_status::HeartbeatReply>(
        &path,
        &star_core::heartbeat_status::HeartbeatRequest::Status,
        Duration::from_millis(500),
    );
    match role {
        Ok(star_core::heartbeat_status::HeartbeatReply::Status { status }) => {
            format!("{host} ({})> ", status.role)
        }
        _ => format!("{host}> "),
    }
}

fn since_start_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Ends the process when nothing was entered for `limit`: the console is a shared door,
/// and a session left open is anyone's.
fn watch_idle(
    limit: Duration,
    start: Instant,
    last: Arc<AtomicU64>,
    terminal: Option<nix::sys::termios::Termios>,
) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let idle = since_start_ms(start).saturating_sub(last.load(Ordering::Relaxed));
        if Duration::from_millis(idle) >= limit {
            if let Some(t) = &terminal {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    t,
                );
            }
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "\r\nidle for {}: logged out\r\n",
                crate::human_duration(limit.as_secs_f64())
            );
            let _ = out.flush();
            std::process::exit(0);
        }
    });
}

/// Runs the shell until `logout`, Ctrl-D or the idle timeout.
pub fn run(
    idle_timeout: Option<Duration>,
    init_socket: std::path::PathBuf,
) -> std::process::ExitCode {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // No job control on a console: a stopped shell would leave the console dead, and a
    // quit signal would dump the session. Ctrl-C ends the running command, not the shell.
    // SAFETY: setting the disposition to ignore installs no handler code.
    unsafe {
        let _ = signal(Signal::SIGTSTP, SigHandler::SigIgn);
        let _ = signal(Signal::SIGQUIT, SigHandler::SigIgn);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone());
    // An appliance console may come without TERM; rustyline needs one to edit lines.
    if std::env::var_os("TERM").is_none() {
        std::env::set_var("TERM", "vt220");
    }
    let config = rustyline::Config::builder()
        .max_history_size(500)
        .unwrap_or_default()
        .auto_add_history(true)
        .completion_type(rustyline::CompletionType::List)
        // A serial console's scrollback should hold text, not mode switches.
        .bracketed_paste(false)
        .build();
    let mut editor: Editor<ShellHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("star: cannot start the shell: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    editor.set_helper(Some(ShellHelper));
    // Synchronized-output mode switches around every prompt only litter a serial line.
    rustyline::config::Configurer::enable_synchronized_output(&mut editor, false);
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    if let Some(limit) = idle_timeout {
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
        watch_idle(limit, start, last.clone(), saved);
    }
    println!(
        "STAR {} on {}: `help` lists the commands, `logout` ends the session.",
        env!("CARGO_PKG_VERSION"),
        crate::status::host_name()
    );
    loop {
        let line = match editor.readline(&prompt()) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("star: the console: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        last.store(since_start_ms(start), Ordering::Relaxed);
        let words = match commands::split_words(&line) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("star: {e}");
                continue;
            }
        };
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            [] => continue,
            ["logout" | "exit" | "quit"] => break,
            _ => {}
        }
        let (json, words) = match words.as_slice() {
            ["--json", rest @ ..] => (true, rest),
            all => (false, all),
        };
        stop.store(false, Ordering::Relaxed);
        let ctx = Context {
            init_socket: init_socket.clone(),
            json,
            stop: stop.clone(),
        };
        let outcome = commands::run(words, &ctx);
        if outcome.ok {
            print!("{}", outcome.text);
        } else {
            eprintln!("star: {}", outcome.text.trim_end());
        }
        let _ = std::io::stdout().flush();
        last.store(since_start_ms(start), Ordering::Relaxed);
    }
    println!("logged out");
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<String> {
        vec!["heartbeat".into(), "target".into(), "takeover".into()]
    }

    #[test]
    fn completion_knows_commands_subcommands_and_services() {
        let (start, c) = complete_line("sw", &services);
        assert_eq!((start, c), (0, vec!["switchover".to_string()]));
        let (_, c) = complete_line("", &services);
        assert!(c.contains(&"status".to_string()) && c.contains(&"help".to_string()));
        assert_eq!(
            complete_line("lun c", &services),
            (4, vec!["create".to_string()])
        );
        assert_eq!(complete_line("maintenance ", &services).1, ["off", "on"]);
        assert_eq!(
            complete_line("logs ta", &services),
            (5, vec!["takeover".to_string(), "target".to_string()])
        );
        assert_eq!(complete_line("help pe", &services).1, ["perf"]);
        // Past the known words there is nothing to offer.
        assert!(complete_line("lun create data3 ", &services).1.is_empty());
        assert!(complete_line("status x", &services).1.is_empty());
    }
}
