//! star-init: STAR's PID 1, and the same supervisor as a plain process.
//!
//! - [`boot`]: the PID-1 sequence, from the first mount to reboot(2).
//! - [`runtime`]: the event loop (signals, sd_notify, control socket, service output).
//! - [`supervisor`]: the pure state machine behind it (ordering, restarts, watchdogs,
//!   shutdown order), tested without processes.
//! - [`spawn`], [`notify`], [`logbuf`], [`console`]: starting services, hearing from them,
//!   keeping and printing their output.
//! - [`cmdline`], [`mounts`], [`kmod`], [`hwwatchdog`], [`acpi`]: PID-1 duties.

pub mod acpi;
pub mod boot;
pub mod cmdline;
pub mod console;
pub mod hwwatchdog;
pub mod kmod;
pub mod logbuf;
pub mod mounts;
pub mod notify;
pub mod program;
pub mod runtime;
pub mod spawn;
pub mod supervisor;

use runtime::{Mode, Runtime, ShutdownKind};
use star_core::init_config::InitConfig;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tracing::error;

/// Exit status of a plain supervisor that stopped because a critical service failed.
pub const EXIT_CRITICAL_FAILURE: u8 = 3;
/// Exit status for a services file that was refused.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// `star-init --config FILE [--control SOCKET]` when not PID 1.
pub fn plain_main(config_path: PathBuf, control: Option<PathBuf>, debug: bool) -> ExitCode {
    if let Err(e) = runtime::block_signals() {
        eprintln!("star-init: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    console::init_logging(debug);
    let mut config = match InitConfig::load(&config_path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("star-init: {e}");
            }
            eprintln!("star-init: nothing was started");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Some(control) = control {
        config.init.control_socket = control;
    }
    // Orphans of our services are re-parented to us rather than to the real init, so we
    // reap them and can end them at shutdown.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        error!("cannot become a child subreaper: {e}");
    }
    let watchdog = config.watchdog.as_ref().and_then(|w| {
        hwwatchdog::HardwareWatchdog::open(&w.device, w.timeout, Instant::now())
            .map_err(|e| error!("{e}: running without a hardware watchdog"))
            .ok()
    });
    let grace = config.init.shutdown_grace;
    let mut rt = match Runtime::new(Mode::Plain, config, watchdog, None) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("star-init: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kind = rt.run();
    debug_assert_eq!(kind, ShutdownKind::Exit);
    let outcome = rt.finish(grace);
    if let Some(wd) = outcome.watchdog {
        if outcome.critical_failure.is_none() {
            wd.magic_close();
        }
    }
    match outcome.critical_failure {
        Some(_) => ExitCode::from(EXIT_CRITICAL_FAILURE),
        None => ExitCode::SUCCESS,
    }
}
