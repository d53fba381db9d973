//! Everything init prints goes through here: its own messages ("star-init: ...") and each
//! service's output ("target: ..."), one line at a time.
//!
//! As PID 1 the console is a serial port at 115200 baud, about 11 KiB/s. A service that
//! prints faster than that must not be able to stall init, so there the console is opened
//! non-blocking and lines that do not fit are dropped and counted; the count is printed
//! with the next line that fits. Every line is also kept in the service's ring buffer, so
//! `star logs` still has it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

struct Console {
    /// `None`: standard output.
    fd: Option<OwnedFd>,
    dropped: u64,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    fd: None,
    dropped: 0,
});

/// From now on, write to this descriptor (the serial console, opened non-blocking).
pub fn use_fd(fd: OwnedFd) {
    lock().fd = Some(fd);
}

fn lock() -> std::sync::MutexGuard<'static, Console> {
    // A panic while holding the lock must not silence the console for the shutdown that
    // follows it.
    CONSOLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `prefix: text` as one line.
pub fn line(prefix: &str, text: &str) {
    let mut c = lock();
    let mut out = String::with_capacity(prefix.len() + text.len() + 48);
    if c.dropped > 0 {
        out.push_str(&format!("star-init: {} console lines dropped\n", c.dropped));
    }
    out.push_str(prefix);
    out.push_str(": ");
    out.push_str(text);
    out.push('\n');
    let stdout = io::stdout();
    let fd: BorrowedFd<'_> = match &c.fd {
        Some(fd) => fd.as_fd(),
        None => stdout.as_fd(),
    };
    match write_all(fd, out.as_bytes()) {
        Ok(()) => c.dropped = 0,
        Err(_) => c.dropped += 1,
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    let mut would_block_once = false;
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            // Half a line already went out: give the UART one short chance to take the rest
            // rather than leaving a torn line on the console.
            Err(nix::Error::EAGAIN) if !would_block_once && data.len() < 4096 => {
                would_block_once = true;
                let mut pfd = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u8));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Prints init's own tracing events on the console as `star-init: message key=value`.
pub struct ConsoleLayer {
    pub max_level: Level,
}

struct Fields(String);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for ConsoleLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.max_level {
            return;
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let text = match level {
            Level::ERROR => format!("error: {}", fields.0),
            Level::WARN => format!("warning: {}", fields.0),
            _ => fields.0,
        };
        line("star-init", &text);
    }
}

/// Installs the console layer, plus journald when systemd started us with our output
/// going to the journal.
pub fn init_logging(debug: bool) {
    use tracing_subscriber::prelude::*;
    let console = ConsoleLayer {
        max_level: if debug { Level::DEBUG } else { Level::INFO },
    };
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    // Under systemd our standard output already goes to the journal: one copy is enough.
    let console = journald.is_none().then_some(console);
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(journald)
        .try_init();
}
