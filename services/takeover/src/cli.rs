//! The command line, parsed without touching anything.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: star-takeover [--config FILE] [--socket PATH]
       star-takeover [--config FILE] acquire|release|status|fence-peer

Moves the floating address of star.toml (default /run/star/star.toml) with its method
(docs/takeover.md). Without a command it is the service: it answers star-heartbeat's
{\"cmd\":\"acquire\"} and {\"cmd\":\"release\"}, and {\"cmd\":\"status\"}, on SOCKET
(default /run/star/takeover.sock), and tells init READY=1 once it listens. With a command
it does that once, here, prints the result and exits 0 (done) or 1 (failed; the message
says why); status exits 0 when it could look, held or not. fence-peer powers the peer off
by star.toml's [fencing] (the service does it on {\"cmd\":\"fence_peer\"}). A bad
star.toml exits 2.";

pub const DEFAULT_CONFIG: &str = "/run/star/star.toml";
pub const DEFAULT_SOCKET: &str = "/run/star/takeover.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Acquire,
    Release,
    Status,
    /// Power the peer off by star.toml's [fencing].
    FencePeer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Serve { socket: PathBuf },
    Once(Command),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub mode: Mode,
}

/// `Ok(None)` for --help.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut config = None;
    let mut socket = None;
    let mut command = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--socket" => socket = Some(PathBuf::from(value("--socket")?)),
            "-h" | "--help" => return Ok(None),
            word @ ("acquire" | "release" | "status" | "fence-peer") => {
                if command.is_some() {
                    return Err(format!("one command at a time, not also {word:?}"));
                }
                command = Some(match word {
                    "acquire" => Command::Acquire,
                    "release" => Command::Release,
                    "fence-peer" => Command::FencePeer,
                    _ => Command::Status,
                });
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mode = match (command, socket) {
        (Some(_), Some(_)) => {
            return Err(
                "--socket is where the service listens; a command acts directly, without it".into(),
            )
        }
        (Some(c), None) => Mode::Once(c),
        (None, socket) => Mode::Serve {
            socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        },
    };
    Ok(Some(Args {
        config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        mode,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn the_service_by_default() {
        assert_eq!(
            p(&[]).unwrap().unwrap(),
            Args {
                config: DEFAULT_CONFIG.into(),
                mode: Mode::Serve {
                    socket: DEFAULT_SOCKET.into()
                }
            }
        );
        assert_eq!(
            p(&["--socket", "/tmp/t.sock", "--config", "/etc/star.toml"])
                .unwrap()
                .unwrap(),
            Args {
                config: "/etc/star.toml".into(),
                mode: Mode::Serve {
                    socket: "/tmp/t.sock".into()
                }
            }
        );
    }

    #[test]
    fn commands() {
        for (word, command) in [
            ("acquire", Command::Acquire),
            ("release", Command::Release),
            ("status", Command::Status),
        ] {
            assert_eq!(
                p(&["--config", "s.toml", word]).unwrap().unwrap(),
                Args {
                    config: "s.toml".into(),
                    mode: Mode::Once(command)
                }
            );
            // The command may come first too.
            assert_eq!(
                p(&[word, "--config", "s.toml"]).unwrap().unwrap().mode,
                Mode::Once(command)
            );
        }
        assert_eq!(p(&["--help"]).unwrap(), None);
    }

    #[test]
    fn mistakes() {
        assert_eq!(
            p(&["acquire", "release"]).unwrap_err(),
            "one command at a time, not also \"release\""
        );
        assert_eq!(p(&["--config"]).unwrap_err(), "--config needs a value");
        assert_eq!(
            p(&["takeover"]).unwrap_err(),
            "unknown argument \"takeover\""
        );
        assert!(p(&["--socket", "x", "status"])
            .unwrap_err()
            .starts_with("--socket is where the service listens"));
    }
}
