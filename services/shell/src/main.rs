use star_core::control::{request, Request};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: star [--socket PATH] [--json] COMMAND

  services            every service: state, pid, restarts, uptime, last exit
  logs NAME [-n N]    the last N lines (default: all kept) of a service's output
  start NAME          start a stopped or failed service
  stop NAME           stop a service (it stays stopped)
  restart NAME        stop and start a service
  reboot              stop every service in order, then reboot
  poweroff            stop every service in order, then power off
{ROLES}
{ARRAY}

The socket is /run/star/init.sock unless --socket or STAR_INIT_SOCKET says otherwise.";

fn usage_text() -> String {
    USAGE
        .replace("{ROLES}", star_shell::roles::USAGE)
        .replace("{ARRAY}", star_shell::array::USAGE)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Installed as /sbin/poweroff and /sbin/reboot too: the kernel's orderly_poweroff runs
    // /sbin/poweroff, and people type these out of habit. Both go through star-init.
    let invoked_as = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string));
    if let Some(cmd @ ("poweroff" | "reboot")) = invoked_as.as_deref() {
        args = vec![cmd.to_string()];
    }
    let mut socket = std::env::var_os("STAR_INIT_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(star_core::init_config::DEFAULT_CONTROL_SOCKET));
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
            "-h" | "--help" | "help" => {
                println!("{}", usage_text());
                return ExitCode::SUCCESS;
            }
            _ => break,
        }
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let command =
        star_shell::roles::run(&words, json).or_else(|| star_shell::array::run(&words, json));
    if let Some(result) = command {
        return match result {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(text) => {
                eprintln!("star: {}", text.trim_end());
                ExitCode::FAILURE
            }
        };
    }
    let req = match words.as_slice() {
        ["services"] => Request::Services,
        ["logs", name] => Request::Logs {
            name: name.to_string(),
            lines: None,
        },
        ["logs", name, "-n", n] | ["logs", "-n", n, name] => match n.parse() {
            Ok(n) => Request::Logs {
                name: name.to_string(),
                lines: Some(n),
            },
            Err(_) => return usage(&format!("-n wants a number of lines, not {n:?}")),
        },
        ["start", name] => Request::Start {
            name: name.to_string(),
        },
        ["stop", name] => Request::Stop {
            name: name.to_string(),
        },
        ["restart", name] => Request::Restart {
            name: name.to_string(),
        },
        ["reboot"] => Request::Reboot,
        ["poweroff"] => Request::Poweroff,
        [] => return usage("no command given"),
        _ => return usage(&format!("unknown command: {}", words.join(" "))),
    };
    let reply = match request(&socket, &req, Duration::from_secs(10)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("star: {e}\nstar: is star-init running? (--socket or STAR_INIT_SOCKET name another socket)");
            return ExitCode::from(3);
        }
    };
    let ok = !matches!(reply, star_core::control::Reply::Error { .. });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reply).unwrap_or_default()
        );
    } else {
        let (text, _) = star_shell::render(&reply);
        if ok {
            print!("{text}");
        } else {
            eprint!("{text}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("star: {problem}\n{}", usage_text());
    ExitCode::from(2)
}
