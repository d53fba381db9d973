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
        let mut timeout = timeout;
        let kind = SFlag::from_bits_truncate(fstat(&fd).map_err(|e| fail("stat", e))?.st_mode);
        if kind.contains(SFlag::S_IFCHR) {
            let mut secs = timeout.as_secs() as libc::c_int;
            // SAFETY: both ioctls read or write one c_int that lives on our stack.
            unsafe {
                wdioc_settimeout(fd.as_raw_fd(), &mut secs)
                    .map_err(|e| fail("WDIOC_SETTIMEOUT", e))?;
                if wdioc_gettimeout(fd.as_raw_fd(), &mut secs).is_ok() && secs > 0 {
                    timeout = Duration::from_secs(secs as u64);
                }
            }
        }
        let mut wd = HardwareWatchdog {
            fd,
            path: path.to_path_buf(),
            timeout,
            next_feed: now,
        };
        wd.feed(now)?;
        Ok(wd)
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

    /// Disarms the watchdog: only at the end of an orderly shutdown.
    pub fn magic_close(self) {
        let _ = nix::unistd::write(self.fd.as_fd(), b"V");
    }
}
