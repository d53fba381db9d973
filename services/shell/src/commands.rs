//! Every `star` command, in one table and one dispatcher: the same words do the same thing
//! typed in the console shell, or given to `star` from a script (`star status --json`),
//! on the appliance or on a distribution running the services under systemd.

use crate::{array, config, roles, status};
use star_core::control::{request, Reply, Request};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// One command of the table: its name, its forms and what it does. The help, the usage
/// text and the shell's completion are all made from this table.
pub struct CommandHelp {
    pub name: &'static str,
    /// What it is for, in a few words (the `help` list).
    pub short: &'static str,
    /// The forms, one per line, without the leading "star ".
    pub forms: &'static str,
    pub about: &'static str,
    /// Words that may follow the name (completion).
    pub subcommands: &'static [&'static str],
}

pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "status",
        short: "the array at a glance",
        forms: "status",
        about: "the array at a glance: both controllers and their roles, the term, heartbeat \
                ages on disk and network, the witness, the floating address, every LUN with \
                its ALUA state on each path, the sessions, and the timing that bounds a failover",
        subcommands: &[],
    },
    CommandHelp {
        name: "lun",
        short: "list, create and delete LUNs",
        forms: "lun list\nlun create NAME SIZE\nlun delete NAME [--force]",
        about: "the array's LUNs (SIZE as 10GiB, 512MiB...); changes go through the active \
                controller, and --force deletes a LUN that hosts still map",
        subcommands: &["list", "create", "delete"],
    },
    CommandHelp {
        name: "host",
        short: "the initiators allowed in and their LUNs",
        forms: "host list\nhost add NAME IQN [LUN...]\nhost remove NAME\nhost map NAME LUN...\nhost unmap NAME LUN...",
        about: "the initiators allowed in, by IQN, and the LUNs each one sees",
        subcommands: &["list", "add", "remove", "map", "unmap"],
    },
    CommandHelp {
        name: "chap",
        short: "CHAP secrets of a host",
        forms: "chap set HOST USER SECRET [MUTUAL_USER MUTUAL_SECRET]\nchap clear HOST",
        about: "CHAP for one host (secrets of 12 to 16 characters), one-way or mutual",
        subcommands: &["set", "clear"],
    },
    CommandHelp {
        name: "portal",
        short: "where initiators connect",
        forms: "portal\nportal set NODE ADDRESS[:PORT]\nportal clear NODE",
        about: "where initiators connect: the floating address and this controller's portal; \
                set moves controller NODE's portal (1 or 2) off its client address, clear \
                puts it back",
        subcommands: &["list", "set", "clear"],
    },
    CommandHelp {
        name: "switchover",
        short: "hand the array to the standby (planned)",
        forms: "switchover",
        about: "(on the active) hand the array to the standby, the planned way: no fencing wait",
        subcommands: &[],
    },
    CommandHelp {
        name: "maintenance",
        short: "hold off automatic actions on this controller",
        forms: "maintenance on|off",
        about: "while on, this controller takes no automatic action (no promotion)",
        subcommands: &["on", "off"],
    },
    CommandHelp {
        name: "services",
        short: "the services and their state",
        forms: "services",
        about: "every service: state, pid, restarts, uptime, last exit",
        subcommands: &[],
    },
    CommandHelp {
        name: "logs",
        short: "a service's output, or follow it",
        forms: "logs [NAME] [-n N] [-f]",
        about: "a service's output (every service's last lines without NAME); -f follows \
                it until Ctrl-C",
        subcommands: &[],
    },
    CommandHelp {
        name: "start",
        short: "start, stop or restart a service",
        forms: "start NAME\nstop NAME\nrestart NAME",
        about: "start, stop (it stays stopped) or restart one service",
        subcommands: &[],
    },
    CommandHelp {
        name: "perf",
        short: "live IOPS, throughput and latency",
        forms: "perf [-n COUNT] [--interval SECS]",
        about: "live IOPS, throughput and latency per LUN and for this controller, with \
                graphs of the last minutes, each second until Ctrl-C (or COUNT screens); \
                star --json perf gives one interval's figures",
        subcommands: &[],
    },
    CommandHelp {
        name: "config",
        short: "star.toml in force, or check a file",
        forms: "config show\nconfig validate [FILE]",
        about: "the star.toml in force (secrets hidden), or check a file the way boot does",
        subcommands: &["show", "validate"],
    },
    CommandHelp {
        name: "network",
        short: "interfaces, addresses, leases",
        forms: "network",
        about: "the interfaces: link, addresses, DHCP leases",
        subcommands: &[],
    },
    CommandHelp {
        name: "target",
        short: "the iSCSI target itself (expert)",
        forms: "target status | target promote [--peer-dead] | target demote | target reconcile\n\
                target promote --disk PATH --node N | target demote --disk PATH",
        about: "the iSCSI target itself (expert: star-heartbeat gives these orders)",
        subcommands: &["status", "promote", "demote", "reconcile"],
    },
    CommandHelp {
        name: "disk",
        short: "initialize or check the shared disk",
        forms: "disk init [--disk PATH] [--config STAR_TOML] [--force]\ndisk check [--disk PATH]",
        about: "initialize the shared disk from star.toml, or check it",
        subcommands: &["init", "check"],
    },
    CommandHelp {
        name: "reboot",
        short: "reboot or power off, in order",
        forms: "reboot\npoweroff",
        about: "stop every service in order, then reboot or power off",
        subcommands: &[],
    },
];

/// The aliases of the table: names that have their help under another entry.
fn entry(name: &str) -> Option<&'static CommandHelp> {
    let name = match name {
        "stop" | "restart" => "start",
        "poweroff" => "reboot",
        other => other,
    };
    COMMANDS.iter().find(|c| c.name == name)
}

/// Every word the shell completes in first position.
pub fn command_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    names.extend(["stop", "restart", "poweroff", "help"]);
    names.sort_unstable();
    names
}

/// The words that may follow `name`.
pub fn subcommands(name: &str) -> &'static [&'static str] {
    COMMANDS
        .iter()
        .find(|c| c.name == name)
        .map_or(&[], |c| c.subcommands)
}

fn wrap(text: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            out.push_str(&" ".repeat(indent));
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&" ".repeat(indent));
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `help` (every command, a line each) or `help NAME` (its forms and what it does).
pub fn help(topic: Option<&str>) -> Result<String, String> {
    match topic {
        None => {
            let mut t = String::from(
                "Commands (help NAME for more; --json before a command for scripts):\n",
            );
            for c in COMMANDS {
                let names = match c.name {
                    "start" => "start|stop|restart",
                    "reboot" => "reboot|poweroff",
                    n => n,
                };
                t.push_str(&format!("  {names:<20} {}\n", c.short));
            }
            t.push_str("  help [NAME]          this list, or one command in full\n");
            t.push_str("  logout               end the console session (also exit, Ctrl-D)\n");
            Ok(t)
        }
        Some(name) => {
            let c = entry(name).ok_or_else(|| format!("no command {name:?}: `help` lists them"))?;
            let mut t = String::new();
            for form in c.forms.lines() {
                t.push_str(&format!("  {}\n", form.trim()));
            }
            t.push_str(&wrap(c.about, 4, 80));
            Ok(t)
        }
    }
}

/// The usage text of the `star` binary.
pub fn usage_text() -> String {
    let mut t = String::from("usage: star [--socket PATH] [--json] COMMAND\n       star shell   (the interactive shell: line editing, history, completion)\n\n");
    for c in COMMANDS {
        for form in c.forms.lines() {
            t.push_str(&format!("  {}\n", form.trim()));
        }
        t.push_str(&wrap(c.about, 6, 88));
    }
    t.push_str(
        "\nThe control sockets are in /run/star (STAR_INIT_SOCKET, STAR_HEARTBEAT_SOCKET, \
         STAR_TARGET_SOCKET, STAR_TAKEOVER_SOCKET and STAR_NET_SOCKET name others).\n",
    );
    t
}

/// What a command printed and how it ended.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub text: String,
    pub ok: bool,
    /// The exit status of `star`: 0 done, 1 refused or failed, 2 not understood, 3 a
    /// service did not answer.
    pub code: u8,
}

impl Outcome {
    pub(crate) fn done(text: String) -> Outcome {
        Outcome {
            text,
            ok: true,
            code: 0,
        }
    }
    pub(crate) fn failed(text: String) -> Outcome {
        Outcome {
            text,
            ok: false,
            code: 1,
        }
    }
    pub(crate) fn not_understood(text: String) -> Outcome {
        Outcome {
            text,
            ok: false,
            code: 2,
        }
    }
    fn from(result: Result<String, String>) -> Outcome {
        match result {
            Ok(t) => Outcome::done(t),
            Err(e) => Outcome::failed(e),
        }
    }
}

/// Where the commands find star-init.
pub struct Context {
    pub init_socket: PathBuf,
    pub json: bool,
    /// Set by Ctrl-C: the long-running commands (`logs -f`, `perf`) end when it is.
    pub stop: Arc<AtomicBool>,
}

pub fn default_init_socket() -> PathBuf {
    std::env::var_os("STAR_INIT_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(star_core::init_config::DEFAULT_CONTROL_SOCKET))
}

/// Runs one command. `logs -f` and `perf` print as they go and return what is left.
pub fn run(words: &[&str], ctx: &Context) -> Outcome {
    match words {
        [] => return Outcome::not_understood("no command given: `help` lists them".into()),
        ["help"] | ["--help"] | ["-h"] => return Outcome::from(help(None)),
        ["help", name] | [name, "--help"] | [name, "help"] if entry(name).is_some() => {
            return Outcome::from(help(Some(name)))
        }
        ["help", name] => return Outcome::not_understood(help(Some(name)).unwrap_err()),
        ["status"] => return Outcome::from(status::run(ctx.json)),
        ["status", ..] => {
            return Outcome::not_understood(
                "status takes no arguments (star --json status for JSON)".into(),
            )
        }
        ["portal"] | ["portal", "list"] => return Outcome::from(status::portals(ctx.json)),
        ["config", rest @ ..] => {
            return match config::run(rest, ctx.json) {
                Ok(t) => Outcome::done(t),
                Err((e, code)) => Outcome {
                    text: e,
                    ok: false,
                    code,
                },
            }
        }
        ["network"] => return Outcome::from(status::network(ctx.json)),
        ["logs", rest @ ..] => return logs(rest, ctx),
        _ => {}
    }
    if let ["perf", rest @ ..] = words {
        return crate::perf::run(rest, ctx.json, &ctx.stop);
    }
    if let Some(r) = roles::run(words, ctx.json) {
        return Outcome::from(r);
    }
    if let Some(r) = array::run(words, ctx.json) {
        return Outcome::from(r);
    }
    let req = match words {
        ["services"] => Request::Services,
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
        [name, ..] if entry(name).is_some() => {
            return Outcome::not_understood(format!(
                "{} is not a form of {name}:\n{}",
                words.join(" "),
                help(Some(name)).unwrap_or_default()
            ))
        }
        _ => {
            return Outcome::not_understood(format!(
                "unknown command: {} (`help` lists the commands)",
                words.join(" ")
            ))
        }
    };
    init(&req, ctx)
}

fn init(req: &Request, ctx: &Context) -> Outcome {
    let reply = match request(&ctx.init_socket, req, Duration::from_secs(10)) {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                text: format!(
                    "{e}: is star-init running? (--socket or STAR_INIT_SOCKET name another socket)"
                ),
                ok: false,
                code: 3,
            }
        }
    };
    if ctx.json {
        let ok = !matches!(reply, Reply::Error { .. });
        let text = serde_json::to_string_pretty(&reply).unwrap_or_default() + "\n";
        return if ok {
            Outcome::done(text)
        } else {
            Outcome::failed(text)
        };
    }
    let (text, ok) = crate::render(&reply);
    if ok {
        Outcome::done(text)
    } else {
        Outcome::failed(text.trim_start_matches("star: ").to_string())
    }
}

/// The parsed arguments of `logs`.
#[derive(Debug, PartialEq)]
pub struct LogsArgs {
    pub name: Option<String>,
    pub lines: Option<usize>,
    pub follow: bool,
}

pub fn parse_logs(args: &[&str]) -> Result<LogsArgs, String> {
    let mut parsed = LogsArgs {
        name: None,
        lines: None,
        follow: false,
    };
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "-f" | "--follow" => parsed.follow = true,
            "-n" => {
                let n = args.get(i + 1).ok_or("-n wants a number of lines")?;
                parsed.lines = Some(
                    n.parse()
                        .map_err(|_| format!("-n wants a number of lines, not {n:?}"))?,
                );
                i += 1;
            }
            flag if flag.starts_with('-') => return Err(format!("logs: unknown option {flag}")),
            name if parsed.name.is_none() => parsed.name = Some(name.to_string()),
            extra => {
                return Err(format!(
                    "logs: one service at a time ({extra:?} is one too many)"
                ))
            }
        }
        i += 1;
    }
    if parsed.follow && parsed.name.is_none() {
        return Err("logs -f follows one service: logs NAME -f".into());
    }
    Ok(parsed)
}

/// The lines of `now` that come after what was already printed (`before`), found by the
/// last printed line: the service's ring drops old lines, so counting would not do.
pub fn new_lines<'a>(before: &[String], now: &'a [String]) -> &'a [String] {
    let Some(last) = before.last() else {
        return now;
    };
    // Repeated identical lines: align on the longest common run ending at `last`.
    for start in (0..now.len()).rev() {
        if &now[start] == last {
            let run = (0..=start)
                .take_while(|k| before.len() > *k && now[start - k] == before[before.len() - 1 - k])
                .count();
            if run == start + 1 || run == before.len() || run >= 8 {
                return &now[start + 1..];
            }
        }
    }
    now
}

fn logs(args: &[&str], ctx: &Context) -> Outcome {
    let parsed = match parse_logs(args) {
        Ok(p) => p,
        Err(e) => return Outcome::not_understood(e),
    };
    let Some(name) = parsed.name else {
        // Every service's last lines, one after another.
        let services = match request(
            &ctx.init_socket,
            &Request::Services,
            Duration::from_secs(10),
        ) {
            Ok(Reply::Services { services, .. }) => services,
            Ok(other) => return Outcome::failed(format!("star-init answered {other:?}")),
            Err(e) => {
                return Outcome {
                    text: format!("{e}: is star-init running?"),
                    ok: false,
                    code: 3,
                }
            }
        };
        let mut text = String::new();
        for s in services {
            let req = Request::Logs {
                name: s.name.clone(),
                lines: Some(parsed.lines.unwrap_or(10)),
            };
            if let Ok(Reply::Logs { lines, .. }) =
                request(&ctx.init_socket, &req, Duration::from_secs(10))
            {
                text.push_str(&format!("== {} ==\n", s.name));
                for l in lines {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
        }
        return Outcome::done(text);
    };
    let req = Request::Logs {
        name: name.clone(),
        lines: parsed.lines,
    };
    if !parsed.follow {
        return init(&req, ctx);
    }
    use std::io::Write;
    let mut printed: Vec<String> = Vec::new();
    let mut first = true;
    while !ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
        let req = Request::Logs {
            name: name.clone(),
            lines: if first {
                parsed.lines.or(Some(20))
            } else {
                None
            },
        };
        match request(&ctx.init_socket, &req, Duration::from_secs(10)) {
            Ok(Reply::Logs { lines, .. }) => {
                let fresh = if first {
                    &lines[..]
                } else {
                    new_lines(&printed, &lines)
                };
                let mut out = std::io::stdout().lock();
                for l in fresh {
                    let _ = writeln!(out, "{l}");
                }
                let _ = out.flush();
                if !fresh.is_empty() || first {
                    printed = lines;
                }
                first = false;
            }
            Ok(Reply::Error { message }) => return Outcome::failed(message),
            Ok(_) => {}
            Err(e) => return Outcome::failed(format!("{e}: star-init stopped answering")),
        }
        for _ in 0..10 {
            if ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Outcome::done(String::new())
}

/// Splits a typed line into words: blanks separate them, double or single quotes keep
/// blanks inside one (a CHAP secret may have them), a backslash escapes one character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') | (None, '\\') => {
                let next = chars.next().ok_or("a backslash at the end of the line")?;
                word.push(next);
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("the quote {q} is not closed"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            init_socket: PathBuf::from("/nonexistent/init.sock"),
            json: false,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words("  lun  create data3 1GiB ").unwrap(),
            ["lun", "create", "data3", "1GiB"]
        );
        assert_eq!(
            split_words(r#"chap set app1 user "a secret with blanks" x\ y ''"#).unwrap(),
            [
                "chap",
                "set",
                "app1",
                "user",
                "a secret with blanks",
                "x y",
                ""
            ]
        );
        assert_eq!(split_words("").unwrap(), Vec::<String>::new());
        assert_eq!(
            split_words("lun create \"x").unwrap_err(),
            "the quote \" is not closed"
        );
        assert!(split_words("lun \\").is_err());
    }

    #[test]
    fn help_covers_every_command_of_the_table() {
        let all = help(None).unwrap();
        for c in COMMANDS {
            assert!(all.contains(c.short), "{}", c.name);
            let one = help(Some(c.name)).unwrap();
            assert!(one.starts_with("  "), "{one}");
            assert!(one.lines().count() >= 2, "{one}");
        }
        assert!(help(Some("stop")).unwrap().contains("restart NAME"));
        assert!(help(Some("frobnicate"))
            .unwrap_err()
            .contains("`help` lists them"));
        // The same through the dispatcher, which needs no socket for help.
        let o = run(&["lun", "--help"], &ctx());
        assert!(o.ok && o.text.contains("lun create NAME SIZE"), "{o:?}");
        let o = run(&["help", "nothing"], &ctx());
        assert_eq!(o.code, 2);
    }

    #[test]
    fn unknown_and_malformed_commands_say_what_to_do() {
        let o = run(&["frobnicate"], &ctx());
        assert_eq!((o.ok, o.code), (false, 2));
        assert!(o.text.contains("`help` lists the commands"), "{}", o.text);
        let o = run(&["services", "now"], &ctx());
        assert_eq!(o.code, 2);
        assert!(o.text.contains("is not a form of services"), "{}", o.text);
        let o = run(&[], &ctx());
        assert_eq!(o.code, 2);
        // A service that does not answer: exit status 3 and where to look.
        let o = run(&["services"], &ctx());
        assert_eq!((o.ok, o.code), (false, 3));
        assert!(o.text.contains("is star-init running?"), "{}", o.text);
    }

    #[test]
    fn logs_arguments() {
        assert_eq!(
            parse_logs(&["target", "-n", "5", "-f"]).unwrap(),
            LogsArgs {
                name: Some("target".into()),
                lines: Some(5),
                follow: true
            }
        );
        assert_eq!(
            parse_logs(&[]).unwrap(),
            LogsArgs {
                name: None,
                lines: None,
                follow: false
            }
        );
        assert!(parse_logs(&["-f"]).unwrap_err().contains("logs NAME -f"));
        assert!(parse_logs(&["a", "b"])
            .unwrap_err()
            .contains("one service at a time"));
        assert!(parse_logs(&["a", "-n", "x"])
            .unwrap_err()
            .contains("not \"x\""));
        assert!(parse_logs(&["a", "-x"])
            .unwrap_err()
            .contains("unknown option -x"));
    }

    #[test]
    fn following_prints_each_line_once() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(new_lines(&s(&["a", "b"]), &s(&["a", "b", "c"])), s(&["c"]));
        // The ring dropped "a": "c" and "d" are still the only new ones.
        assert_eq!(
            new_lines(&s(&["a", "b", "c"]), &s(&["b", "c", "d", "e"])),
            s(&["d", "e"])
        );
        assert!(new_lines(&s(&["a", "b"]), &s(&["a", "b"])).is_empty());
        // Repeated lines: the run before "x" decides where the old output ends.
        assert_eq!(
            new_lines(
                &s(&["y", "x", "z", "x"]),
                &s(&["y", "x", "z", "x", "q", "x"])
            ),
            s(&["q", "x"])
        );
        assert_eq!(new_lines(&[], &s(&["a"])), s(&["a"]));
    }

    #[test]
    fn completion_words_come_from_the_table() {
        let names = command_names();
        for n in [
            "status",
            "lun",
            "switchover",
            "logs",
            "perf",
            "help",
            "poweroff",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert_eq!(subcommands("lun"), ["list", "create", "delete"]);
        assert_eq!(subcommands("maintenance"), ["on", "off"]);
        assert!(subcommands("status").is_empty());
    }
}
