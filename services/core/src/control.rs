//! The control-socket protocol: one JSON object per line, one request, one reply.
//!
//! ```text
//! → {"cmd":"services"}
//! ← {"reply":"services","uptime_sec":12.5,"ready":true,"services":[{"name":"target",...}]}
//! → {"cmd":"logs","name":"target","lines":50}
//! ← {"reply":"logs","name":"target","lines":["...","..."]}
//! → {"cmd":"restart","name":"target"}
//! ← {"reply":"done","message":"restarting target"}
//! ← {"reply":"error","message":"no service named \"targte\" (services: heartbeat, target)"}
//! → {"cmd":"hardware-watchdog","timeout_sec":1}
//! ← {"reply":"done","message":"hardware watchdog /dev/watchdog: timeout 1 s, fed every 0.3 s"}
//! ```
//!
//! Anything that can speak a Unix stream socket can use it (`socat`, Python); `star` is the
//! client people use.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Requests are refused past this size; a line that long is not a request.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Every service with its state.
    Services,
    /// The last `lines` lines of one service's output (all that is kept when absent).
    Logs {
        name: String,
        #[serde(default)]
        lines: Option<usize>,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    Reboot,
    Poweroff,
    /// Shorten the hardware watchdog's timeout: star-heartbeat asks for the cluster's
    /// watchdog_sec, which its peer's takeover wait is computed from. Never lengthens it
    /// past the services file's value; the reply says what the device now has.
    HardwareWatchdog {
        timeout_sec: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    Services {
        /// Seconds since the supervisor started (since boot for PID 1).
        uptime_sec: f64,
        /// Every notify service has been ready at least once.
        ready: bool,
        /// Shutting down, and how.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shutdown: Option<String>,
        services: Vec<ServiceInfo>,
    },
    Logs {
        name: String,
        lines: Vec<String>,
    },
    Done {
        message: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// Waiting for the services in its `after` list to be ready.
    Waiting,
    /// Started; a notify service has not sent READY=1 yet.
    Starting,
    /// Ready.
    Running,
    /// Sent SIGTERM (or SIGKILL after stop_timeout), waiting for it to exit.
    Stopping,
    /// Exited; will be started again when its restart delay is over.
    Backoff,
    /// Not running and not to be restarted: stopped by command, or exited cleanly.
    Stopped,
    /// Gave up: too many failures in the start-limit window (or exited with an error and
    /// `restart = "never"`).
    Failed,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Waiting => "waiting",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Stopping => "stopping",
            ServiceState::Backoff => "backoff",
            ServiceState::Stopped => "stopped",
            ServiceState::Failed => "failed",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitInfo {
    Exited {
        code: i32,
    },
    Killed {
        signal: i32,
    },
    /// The program could not be started at all (exec failed).
    SpawnFailed,
}

impl ExitInfo {
    pub fn success(self) -> bool {
        matches!(self, ExitInfo::Exited { code: 0 })
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitInfo::Exited { code } => write!(f, "exit {code}"),
            ExitInfo::Killed { signal } => write!(f, "killed by {}", signal_name(*signal)),
            ExitInfo::SpawnFailed => write!(f, "could not start"),
        }
    }
}

/// The conventional name of a signal number ("SIGKILL"), for people reading status.
pub fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(signal)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {signal}"), |n| n.to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub state: ServiceState,
    pub pid: Option<i32>,
    /// How many times it was started again after it exited.
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    /// Seconds since the running process started.
    pub uptime_sec: Option<f64>,
    pub critical: bool,
    pub notify: bool,
    /// The last STATUS= it sent.
    pub status: Option<String>,
    /// Why it is in this state, in words ("restarting in 2.0 s", "watchdog starved").
    pub detail: Option<String>,
}

/// Sends one request and reads its reply.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> std::io::Result<Reply> {
    call(socket, req, timeout)
}

/// One request line to any service's control socket and its one reply line: the
/// protocol every STAR service speaks, whatever its request and reply types.
pub fn call<Req: serde::Serialize, Rep: serde::de::DeserializeOwned>(
    socket: &Path,
    req: &Req,
    timeout: Duration,
) -> std::io::Result<Rep> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot connect to {}: {e}", socket.display()),
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    if reply.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} closed the connection without a reply", socket.display()),
        ));
    }
    serde_json::from_str(&reply).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable reply from {}: {e}", socket.display()),
        )
    })
}

/// Parses one request line; the error is the reply to send back.
pub fn parse_request(line: &[u8]) -> Result<Request, Reply> {
    serde_json::from_slice(line).map_err(|e| Reply::Error {
        message: format!("bad request: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_their_documented_shape() {
        let r = Request::Logs {
            name: "target".into(),
            lines: Some(5),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"cmd":"logs","name":"target","lines":5}"#);
        assert_eq!(parse_request(text.as_bytes()).unwrap(), r);
        assert_eq!(
            parse_request(br#"{"cmd":"services"}"#).unwrap(),
            Request::Services
        );
        assert_eq!(
            parse_request(br#"{"cmd":"hardware-watchdog","timeout_sec":12}"#).unwrap(),
            Request::HardwareWatchdog { timeout_sec: 12 }
        );
    }

    #[test]
    fn bad_requests_get_an_error_reply() {
        for bad in [&b"{"[..], br#"{"cmd":"explode"}"#, br#"{"cmd":"stop"}"#] {
            match parse_request(bad) {
                Err(Reply::Error { message }) => assert!(message.starts_with("bad request")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn exit_info_reads_like_a_person_would_say_it() {
        assert_eq!(ExitInfo::Exited { code: 3 }.to_string(), "exit 3");
        assert_eq!(
            ExitInfo::Killed { signal: 9 }.to_string(),
            "killed by SIGKILL"
        );
        assert_eq!(signal_name(64), "signal 64");
    }
}
