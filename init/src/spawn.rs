//! Starting a service's process.
//!
//! std's `Command` does the fork and exec: it builds every C string before forking and
//! reports a failed exec back to us as an error (reaping the dead child itself,
//! synchronously, before we ever call waitpid). The only code of ours that runs between
//! fork and exec is `pre_exec` below (signal mask, session, terminal), and it makes
//! async-signal-safe system calls only: no allocation, no locks.

use star_core::init_config::ServiceSpec;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Variables a service must not inherit from whoever started init: they describe init's
/// own manager, not the service's.
const NOT_INHERITED: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
];

/// Starts `spec`; returns the pid. `output` is the write end of the service's log pipe
/// (ignored for services on a tty).
pub fn spawn(
    spec: &ServiceSpec,
    notify_socket: &Path,
    output: Option<&OwnedFd>,
) -> io::Result<i32> {
    let mut cmd = Command::new(&spec.exec[0]);
    cmd.args(&spec.exec[1..]);
    for var in NOT_INHERITED {
        cmd.env_remove(var);
    }
    if std::env::var_os("PATH").is_none() {
        // PID 1 starts with almost no environment.
        cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    }
    cmd.env("NOTIFY_SOCKET", notify_socket);
    if let Some(watchdog) = spec.watchdog {
        // WATCHDOG_PID is left out on purpose: we only learn the pid after the fork, and
        // sd_watchdog_enabled() accepts a missing WATCHDOG_PID as "meant for you".
        cmd.env("WATCHDOG_USEC", watchdog.as_micros().to_string());
    }
    cmd.envs(&spec.env);
    cmd.current_dir(spec.working_directory.as_deref().unwrap_or(Path::new("/")));
    cmd.stdin(Stdio::null());

    let tty = match &spec.tty {
        Some(path) => Some(CString::new(path.as_os_str().as_bytes())?),
        None => None,
    };
    match (&tty, output) {
        (None, Some(pipe)) => {
            cmd.stdout(Stdio::from(pipe.try_clone()?));
            cmd.stderr(Stdio::from(pipe.try_clone()?));
        }
        _ => {
            cmd.stdout(Stdio::null());
            cmd.stderr(Stdio::null());
        }
    }

    // SAFETY: the closure only makes async-signal-safe system calls (sigprocmask, signal,
    // setsid, open, ioctl, dup2, close) on data prepared before the fork, and allocates
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            // init blocks every signal it handles (it reads them from a signalfd); a blocked
            // mask survives exec, and a service started with SIGTERM blocked could never be
            // stopped politely. Start it with nothing blocked and SIGPIPE at its default.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
            // Ignored dispositions survive exec too: whatever started init (nohup, a
            // container runtime) may have ignored SIGHUP or SIGINT, and a service must
            // still be stoppable by them. Every catchable signal goes back to its default.
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            // Own session and process group: init signals the whole group when it stops the
            // service, and a tty can become its controlling terminal.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(tty) = &tty {
                let fd = libc::open(tty.as_ptr(), libc::O_RDWR);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // Steal the terminal if an earlier session still holds it.
                if libc::ioctl(fd, libc::TIOCSCTTY, 1) < 0 {
                    return Err(io::Error::last_os_error());
                }
                for target in 0..3 {
                    if libc::dup2(fd, target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if fd > 2 {
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The `Child` is dropped without waiting: init's one reaping loop collects it.
    Ok(child.id() as i32)
}
