//! The boot sequence of PID 1, start to finish, in one place.
//!
//! 1. Block every handled signal (before anything can fork) and install the panic hook.
//! 2. Mount /proc, /sys, /dev, /dev/pts, /dev/shm, /run.
//! 3. Open the console non-blocking; Ctrl-Alt-Del becomes SIGINT.
//! 4. Read `star.*` options from /proc/cmdline; read the services file.
//! 5. Set the host name; load the kernel modules with their dependencies; mount configfs
//!    (a module in Debian's kernels) on /sys/kernel/config.
//! 6. Arm the hardware watchdog; listen for the ACPI power button.
//! 7. Supervise until a shutdown is asked for (signal, control socket, power button).
//! 8. Stop services in reverse order, TERM then KILL what is left, sync (bounded),
//!    unmount (read-only where busy), disarm the watchdog, reboot(2) or power off.
//!
//! PID 1 must never exit: the kernel panics if it does. Every path ends in reboot(2), and
//! a panic anywhere becomes an emergency reboot (step 8 without the services).
//!
//! Run as PID 1 of a PID namespace (no kthreadd in it), the same sequence skips whatever
//! would reach outside the namespace: mounts, modules, host name, ACPI and unmounting.

use crate::cmdline::{self, KernelOptions};
use crate::console;
use crate::hwwatchdog::HardwareWatchdog;
use crate::runtime::{self, Mode, Runtime, ShutdownKind};
use crate::{acpi, kmod, mounts};
use nix::sys::reboot::{reboot, set_cad_enabled, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use star_core::init_config::{InitConfig, ServiceSpec, DEFAULT_CONFIG_PATH};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// Whether this process is PID 1 of the machine rather than of a PID namespace: only the
/// first namespace has kernel threads (kthreadd is always pid 2), and the pid 1 that /proc
/// shows must be us (a /proc mounted for another namespace shows that one's processes).
pub fn in_initial_pid_namespace() -> bool {
    let kthreadd = std::fs::read_to_string("/proc/2/stat").is_ok_and(|s| s.contains("(kthreadd)"));
    let ns = |p: &str| std::fs::read_link(p).ok();
    kthreadd && ns("/proc/self/ns/pid").is_some() && ns("/proc/self/ns/pid") == ns("/proc/1/ns/pid")
}

static IN_EMERGENCY: AtomicBool = AtomicBool::new(false);

/// PID 1's main: never returns.
pub fn pid1_main(config_override: Option<PathBuf>) -> ! {
    if let Err(e) = runtime::block_signals() {
        console::line("star-init", &format!("cannot block signals: {e}"));
    }
    std::panic::set_hook(Box::new(|info| {
        console::line("star-init", &format!("panic: {info}"));
    }));
    // The kernel starts init with nothing mounted; /proc is needed to tell a machine from
    // a PID namespace.
    let proc_failure = mounts::mount_proc_if_missing();
    let container = !in_initial_pid_namespace();
    let result = std::panic::catch_unwind(move || {
        if let Some(failure) = proc_failure {
            console::line("star-init", &failure);
        }
        boot_and_supervise(container, config_override)
    });
    match result {
        Ok((kind, watchdog)) => final_shutdown(kind, watchdog, container),
        Err(_) => emergency_reboot(container),
    }
}

fn boot_and_supervise(
    container: bool,
    config_override: Option<PathBuf>,
) -> (ShutdownKind, Option<HardwareWatchdog>) {
    let _ = nix::unistd::setsid();
    let mount_failures = if container {
        Vec::new()
    } else {
        mounts::mount_api_filesystems()
    };
    if !container {
        if let Some(fd) = open_console() {
            console::use_fd(fd);
        }
    }
    let opts = if container {
        KernelOptions::default()
    } else {
        cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
    };
    console::init_logging(opts.debug);
    info!("STAR init {} as PID 1", env!("CARGO_PKG_VERSION"));
    for failure in &mount_failures {
        error!("{failure}");
    }
    for unknown in &opts.unknown {
        warn!("unknown kernel option {unknown} (known: star.rescue, star.config=, star.hostname=, star.debug, star.mask=)");
    }
    if !container {
        // Ctrl-Alt-Del then arrives as SIGINT (an orderly reboot) instead of an instant one.
        if let Err(e) = set_cad_enabled(false) {
            warn!("cannot disable Ctrl-Alt-Del: {e}");
        }
    }

    let path = config_override
        .or(opts.config.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let mut config = match InitConfig::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                error!("{e}");
            }
            error!("the services file is unusable: starting the rescue shell instead");
            rescue_config(None)
        }
    };
    if opts.rescue {
        warn!("star.rescue: starting no services, only the rescue shell");
        // Loud, because this is a root shell without a login on the console.
        for line in [
            "********************************************************************",
            "* RESCUE MODE (star.rescue on the kernel command line): a root     *",
            "* shell WITHOUT LOGIN on the console, and no services are running. *",
            "* Boot without star.rescue to bring the array back.                *",
            "********************************************************************",
        ] {
            console::line("star-init", line);
        }
        config = rescue_config(Some(config));
    }

    if !container {
        if let Some(name) = opts.hostname.as_ref().or(config.init.hostname.as_ref()) {
            match nix::unistd::sethostname(name) {
                Ok(()) => info!("host name {name}"),
                Err(e) => error!("cannot set host name {name}: {e}"),
            }
        }
        load_modules(&config, opts.rescue);
        for failure in mounts::mount_configfs() {
            error!("{failure}");
        }
    }

    let watchdog = config.watchdog.as_ref().and_then(|w| {
        match HardwareWatchdog::open(&w.device, w.timeout, Instant::now()) {
            Ok(wd) => {
                info!(
                    "hardware watchdog {} armed: timeout {} s, fed every {:.1} s",
                    wd.path().display(),
                    wd.timeout().as_secs(),
                    wd.timeout().as_secs_f64() / 3.0
                );
                Some(wd)
            }
            Err(e) => {
                error!("{e}: running without a hardware watchdog");
                None
            }
        }
    });
    let power_button = if container {
        None
    } else {
        match acpi::PowerButtonListener::open() {
            Ok(l) => Some(l),
            Err(e) => {
                warn!("no ACPI power button: {e}");
                None
            }
        }
    };

    let grace = config.init.shutdown_grace;
    let mut rt = match Runtime::new(Mode::Pid1 { container }, config, watchdog, power_button) {
        Ok(rt) => rt,
        Err(e) => {
            // Without its sockets init cannot supervise; a reboot is the only way forward.
            error!("cannot start supervising: {e}");
            return (ShutdownKind::Reboot, None);
        }
    };
    for name in &opts.mask {
        match rt.mask(name) {
            Ok(()) => warn!("star.mask: {name} will not be started"),
            Err(e) => warn!("star.mask={name}: {e}"),
        }
    }
    rt.run();
    let outcome = rt.finish(grace);
    (outcome.kind, outcome.watchdog)
}

/// A services file with only the rescue shell on the console, keeping the init settings
/// (sockets, watchdog) of `base` when there is one.
fn rescue_config(base: Option<InitConfig>) -> InitConfig {
    let mut config = base.unwrap_or_else(|| {
        InitConfig::from_toml("", Path::new("(built in)")).expect("the empty file is valid")
    });
    let shell: Vec<&str> = config
        .init
        .rescue_shell
        .iter()
        .map(String::as_str)
        .collect();
    let mut rescue = ServiceSpec::new("rescue", &shell);
    rescue.tty = Some(PathBuf::from("/dev/console"));
    rescue.restart = star_core::init_config::RestartPolicy::Always;
    rescue.start_limit_burst = 1000;
    config.services = vec![rescue];
    config
}

/// Loads the board's modules; then, on an appliance (`free_module_files`) and not in
/// rescue mode, where someone may want to load one by hand, gives their files' RAM back.
fn load_modules(config: &InitConfig, rescue: bool) {
    if config.init.modules.is_empty() {
        return;
    }
    let dir = config.init.modules_dir.clone().unwrap_or_else(|| {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        PathBuf::from("/lib/modules").join(release)
    });
    match kmod::load_modules(&dir, &config.init.modules) {
        Ok(loaded) => {
            let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
            info!("kernel modules ready: {}", names.join(" "));
            if config.init.free_module_files && !rescue {
                match kmod::free_module_files(&dir) {
                    Ok(bytes) => info!(
                        "module files deleted from the RAM root: {} KiB freed",
                        bytes / 1024
                    ),
                    Err(e) => warn!("module files kept: {e}"),
                }
            }
        }
        // The files stay when a load failed: they are what a rescue would need.
        Err(e) => error!("kernel modules: {e}"),
    }
}

fn open_console() -> Option<OwnedFd> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    open(
        "/dev/console",
        OFlag::O_WRONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// sync(2) can hang on a dead disk; PID 1 must still get to reboot(2), so it waits for the
/// sync at most `limit`.
fn bounded_sync(limit: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            nix::unistd::sync();
            let _ = tx.send(());
        });
    if spawned.is_ok() && rx.recv_timeout(limit).is_err() {
        console::line(
            "star-init",
            &format!("sync did not finish within {} s", limit.as_secs()),
        );
    }
}

fn final_shutdown(kind: ShutdownKind, watchdog: Option<HardwareWatchdog>, container: bool) -> ! {
    bounded_sync(Duration::from_secs(30));
    if !container {
        for line in mounts::unmount_all() {
            console::line("star-init", &line);
        }
        nix::unistd::sync();
    }
    if let Some(wd) = watchdog {
        wd.magic_close();
    }
    let how = match kind {
        ShutdownKind::Poweroff => RebootMode::RB_POWER_OFF,
        _ => RebootMode::RB_AUTOBOOT,
    };
    console::line(
        "star-init",
        match how {
            RebootMode::RB_POWER_OFF => "powering off",
            _ => "rebooting",
        },
    );
    let err = reboot(how).unwrap_err();
    console::line(
        "star-init",
        &format!("reboot(2) failed: {err}; halting here"),
    );
    halt_forever()
}

/// Reset at once, without stopping anything: for a critical failure (self-fencing) and as
/// the end of an emergency. The hardware watchdog, no longer fed, is the backstop if even
/// reboot(2) fails.
pub fn reset_now(why: &str) -> ! {
    console::line("star-init", &format!("{why}: resetting now"));
    let err = reboot(RebootMode::RB_AUTOBOOT).unwrap_err();
    console::line(
        "star-init",
        &format!("reboot(2) failed: {err}; waiting for the watchdog"),
    );
    halt_forever()
}

fn emergency_reboot(container: bool) -> ! {
    if IN_EMERGENCY.swap(true, Ordering::SeqCst) {
        reset_now("second emergency");
    }
    console::line("star-init", "internal error: emergency reboot");
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    if !reap_until_none_left(Duration::from_secs(2)) {
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        reap_until_none_left(Duration::from_secs(2));
    }
    bounded_sync(Duration::from_secs(10));
    if !container {
        mounts::unmount_all();
    }
    reset_now("emergency")
}

/// Reaps until no child is left (true) or `limit` passes (false). The event loop is gone
/// in an emergency, so this checks every 50 ms rather than waiting for the full limit.
fn reap_until_none_left(limit: Duration) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = std::time::Instant::now() + limit;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(nix::errno::Errno::ECHILD) => return true,
            Ok(WaitStatus::StillAlive) | Err(_) => {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(_) => {}
        }
    }
}

fn halt_forever() -> ! {
    loop {
        // Signals stay blocked; nothing here can make PID 1 exit.
        std::thread::sleep(Duration::from_secs(3600));
    }
}
