//! The sd_notify protocol, as systemd defines it (sd_notify(3)).
//!
//! Services find the socket in `NOTIFY_SOCKET` and send datagrams of `KEY=VALUE` lines.
//! Each datagram carries the sender's credentials (SO_PASSCRED), which is how a message is
//! tied to a service: by its main pid, or by the process group the service runs in (so that
//! `systemd-notify` run from a service's shell script counts for that service). Descriptors
//! passed along (FDSTORE=1, and the BARRIER=1 that `systemd-notify` sends and waits on) are
//! closed at once: closing a barrier's descriptor is how the sender learns we have read
//! everything before it.

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What one datagram said. Unknown keys are ignored, as systemd does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyMessage {
    pub ready: bool,
    pub stopping: bool,
    pub watchdog: bool,
    /// WATCHDOG=trigger: the service asks to be treated as if its watchdog had fired.
    pub watchdog_trigger: bool,
    /// WATCHDOG_USEC=N: the service sets its own watchdog timeout (and re-arms it), as
    /// star-heartbeat does from the cluster's watchdog_sec. 0 is ignored.
    pub watchdog_usec: Option<u64>,
    pub status: Option<String>,
    pub main_pid: Option<i32>,
    pub errno: Option<i32>,
}

impl NotifyMessage {
    pub fn parse(datagram: &[u8]) -> NotifyMessage {
        let mut msg = NotifyMessage::default();
        for line in datagram.split(|&b| b == b'\n') {
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (&line[..eq], &line[eq + 1..]);
            match key {
                b"READY" => msg.ready = value == b"1",
                b"STOPPING" => msg.stopping = value == b"1",
                b"WATCHDOG" if value == b"1" => msg.watchdog = true,
                b"WATCHDOG" if value == b"trigger" => msg.watchdog_trigger = true,
                b"WATCHDOG_USEC" => {
                    msg.watchdog_usec = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|&us| us > 0)
                }
                b"STATUS" => msg.status = Some(String::from_utf8_lossy(value).into_owned()),
                b"MAINPID" => {
                    msg.main_pid = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<i32>().ok())
                        .filter(|&p| p > 1)
                }
                b"ERRNO" => {
                    msg.errno = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                }
                _ => {}
            }
        }
        msg
    }

    /// Nothing in it concerns the supervisor (e.g. a lone BARRIER=1).
    pub fn is_empty(&self) -> bool {
        *self == NotifyMessage::default()
    }
}

/// The process group and session of a live process, from /proc/<pid>/stat.
pub fn process_group_and_session(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_group_session(&stat)
}

/// Fields 5 and 6 of /proc/<pid>/stat; the command name (field 2) may contain spaces and
/// parentheses, so parsing starts after the last ')'.
pub fn parse_stat_group_session(stat: &str) -> Option<(i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some((pgrp, session))
}

/// The parent pid of a live process.
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub struct NotifySocket {
    fd: OwnedFd,
    path: PathBuf,
}

impl NotifySocket {
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        let context = |what: &str, e: nix::Error| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("notify socket {}: {what}: {e}", path.display()),
            )
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A socket file left by an earlier run would make bind fail with EADDRINUSE.
        let _ = std::fs::remove_file(path);
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| context("socket", e))?;
        setsockopt(&fd, sockopt::PassCred, &true).map_err(|e| context("SO_PASSCRED", e))?;
        let addr = UnixAddr::new(path).map_err(|e| context("address", e))?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| context("bind", e))?;
        // Services may run as other users; systemd's socket is writable by all too.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(NotifySocket {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One pending datagram with its sender's pid; `Ok(None)` when nothing is pending.
    /// Datagrams without credentials are dropped (they cannot be attributed).
    pub fn receive(&self) -> io::Result<Option<(i32, NotifyMessage)>> {
        loop {
            let mut buf = [0u8; 4096];
            let mut cmsg = nix::cmsg_space!(libc::ucred, [RawFd; 16]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let received = recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC,
            );
            let msg = match received {
                Ok(m) => m,
                Err(nix::Error::EAGAIN) => return Ok(None),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut sender = None;
            for c in msg.cmsgs()? {
                match c {
                    ControlMessageOwned::ScmCredentials(cred) => sender = Some(cred.pid()),
                    ControlMessageOwned::ScmRights(fds) => {
                        for fd in fds {
                            // SAFETY: the kernel just installed these descriptors for us and
                            // nothing else refers to them; dropping closes them.
                            drop(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                    _ => {}
                }
            }
            let len = msg.bytes.min(buf.len());
            let Some(pid) = sender else { continue };
            return Ok(Some((pid, NotifyMessage::parse(&buf[..len]))));
        }
    }
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keys_systemd_defines() {
        let m = NotifyMessage::parse(b"READY=1\nSTATUS=serving 3 LUNs\nMAINPID=4242\nWATCHDOG=1\n");
        assert!(m.ready && m.watchdog && !m.watchdog_trigger);
        assert_eq!(m.status.as_deref(), Some("serving 3 LUNs"));
        assert_eq!(m.main_pid, Some(4242));
        let t = NotifyMessage::parse(b"WATCHDOG=trigger");
        assert_eq!(
            NotifyMessage::parse(b"WATCHDOG_USEC=1500000\nWATCHDOG=1").watchdog_usec,
            Some(1_500_000)
        );
        assert_eq!(NotifyMessage::parse(b"WATCHDOG_USEC=0").watchdog_usec, None);
        assert_eq!(
            NotifyMessage::parse(b"WATCHDOG_USEC=soon").watchdog_usec,
            None
        );
        assert!(t.watchdog_trigger && !t.watchdog);
    }

    #[test]
    fn ignores_what_it_does_not_know_and_bad_values() {
        assert!(NotifyMessage::parse(b"BARRIER=1").is_empty());
        assert!(NotifyMessage::parse(b"garbage\n\xff\xfe").is_empty());
        assert!(NotifyMessage::parse(b"READY=0").is_empty());
        assert_eq!(
            NotifyMessage::parse(b"MAINPID=1").main_pid,
            None,
            "never pid 1"
        );
        assert_eq!(NotifyMessage::parse(b"MAINPID=x").main_pid, None);
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = "1234 (a) b (c)) S 1 1230 1229 0 -1 4194560 0 0";
        assert_eq!(parse_stat_group_session(stat), Some((1230, 1229)));
        assert_eq!(parse_stat_group_session("garbage"), None);
    }

    #[test]
    fn own_group_and_session_are_read_from_proc() {
        let me = std::process::id() as i32;
        let (pgrp, sid) = process_group_and_session(me).unwrap();
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(sid, nix::unistd::getsid(None).unwrap().as_raw());
    }

    #[test]
    fn a_datagram_arrives_with_its_senders_pid() {
        let dir = std::env::temp_dir().join(format!("star-notify-test-{}", std::process::id()));
        let path = dir.join("n.sock");
        let sock = NotifySocket::bind(&path).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.send_to(b"READY=1\nSTATUS=hi", &path).unwrap();
        let (pid, msg) = sock.receive().unwrap().expect("a datagram");
        assert_eq!(pid, std::process::id() as i32);
        assert!(msg.ready);
        assert_eq!(msg.status.as_deref(), Some("hi"));
        assert!(sock.receive().unwrap().is_none());
        drop(sock);
        assert!(!path.exists(), "the socket file is removed");
        let _ = std::fs::remove_dir(&dir);
    }
}
