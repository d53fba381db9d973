//! The hardware watchdog (/dev/watchdog: softdog, i6300esb, EC2's none): the last line of
//! defence. If init or a critical service stops being healthy, init stops feeding it and the
//! machine resets after the timeout, whatever state the software is in.
//!
//! Fed every timeout/3 (Talos' rule: two missed feeds still leave a margin). A write of any
//! byte but 'V' is a keepalive; 'V' then close is the "magic close" that disarms it, done only
//! at the very end of an orderly shutdown.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);
nix::ioctl_read!(wdioc_gettimeout, b'W', 7, libc::c_int);

pub struct HardwareWatchdog {
    fd: OwnedFd,
    path: PathBuf,
    timeout: Duration,
    /// What the services file asked for: a service may shorten the timeout, never
    /// lengthen it past this.
    ceiling: Duration,
    next_feed: Instant,
}

impl HardwareWatchdog {
    /// Opens the device and arms it with `timeout` (a device may round it; what it reports
    /// back is what counts). A FIFO or plain file is accepted too, which is how tests watch
    /// the feeds.
    pub fn open(path: &Path, timeout: Duration, now: Instant) -> io::Result<HardwareWatchdog> {
        let fail = |what: &str, e: nix::Error| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("watchdog {}: {what}: {e}", path.display()),
            )
        };
        // O_NONBLOCK: opening a FIFO with no reader fails at once instead of hanging boot.
        let fd = open(
            path,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| fail("open", e))?;
        let timeout = arm(&fd, timeout).map_err(|e| fail("WDIOC_SETTIMEOUT", e))?;
        let mut wd = HardwareWatchdog {
            fd,
            path: path.to_path_buf(),
            timeout,
            ceiling: timeout,
            next_feed: now,
        };
        wd.feed(now)?;
        Ok(wd)
    }

    /// Sets a shorter timeout (capped at the one it was opened with) and feeds at once;
    /// returns what the device reports it now has, which may be rounded.
    pub fn shorten(&mut self, timeout: Duration, now: Instant) -> io::Result<Duration> {
        let wanted = timeout.min(self.ceiling).max(Duration::from_secs(1));
        self.timeout = arm(&self.fd, wanted).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("watchdog {}: WDIOC_SETTIMEOUT: {e}", self.path.display()),
            )
        })?;
        self.feed(now)?;
        Ok(self.timeout)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn next_feed(&self) -> Instant {
        self.next_feed
    }

    pub fn feed(&mut self, now: Instant) -> io::Result<()> {
        self.next_feed = now + self.timeout / 3;
        match nix::unistd::write(self.fd.as_fd(), b"k") {
            Ok(_) | Err(nix::Error::EAGAIN) => Ok(()),
            Err(e) => Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("watchdog {}: feed: {e}", self.path.display()),
            )),
        }
    }

    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// Disarms the watchdog: only at the end of an orderly shutdown.
    pub fn magic_close(self) {
        let _ = nix::unistd::write(self.fd.as_fd(), b"V");
    }
}

/// Sets the timeout of a watchdog device and reads back what it took. A FIFO or plain file
/// (the tests' stand-in) has no timeout to set: it takes what it is given.
fn arm(fd: &OwnedFd, timeout: Duration) -> nix::Result<Duration> {
    let kind = SFlag::from_bits_truncate(fstat(fd)?.st_mode);
    if !kind.contains(SFlag::S_IFCHR) {
        return Ok(timeout);
    }
    let mut secs = timeout.as_secs() as libc::c_int;
    // SAFETY: both ioctls read or write one c_int that lives on our stack.
    unsafe {
        wdioc_settimeout(fd.as_raw_fd(), &mut secs)?;
        if wdioc_gettimeout(fd.as_raw_fd(), &mut secs).is_ok() && secs > 0 {
            return Ok(Duration::from_secs(secs as u64));
        }
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_may_shorten_the_timeout_but_never_lengthen_it() {
        let dir = std::env::temp_dir().join(format!("star-hwwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("watchdog");
        std::fs::write(&path, b"").unwrap();
        let t0 = Instant::now();
        let mut wd = HardwareWatchdog::open(&path, Duration::from_secs(30), t0).unwrap();
        assert_eq!(wd.shorten(Duration::from_secs(1), t0).unwrap().as_secs(), 1);
        assert_eq!(wd.next_feed(), t0 + Duration::from_secs(1) / 3);
        assert_eq!(
            wd.shorten(Duration::from_secs(60), t0).unwrap().as_secs(),
            30
        );
        assert_eq!(wd.shorten(Duration::ZERO, t0).unwrap().as_secs(), 1);
        assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == b'k'));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
