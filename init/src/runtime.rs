//! The event loop around the supervisor: the only place where init waits.
//!
//! One thread, one `epoll_wait`. Its sources: a signalfd (SIGCHLD and every other signal
//! init handles), the sd_notify socket, the control socket and its clients, one pipe per
//! service for its output, and, as PID 1, the ACPI power button. The wait's timeout is the
//! earliest deadline anything has (a restart delay, a service watchdog, a stop timeout, the
//! next hardware-watchdog feed); with none, init sleeps until something happens. There is
//! no polling.
//!
//! Reaping: on SIGCHLD (which coalesces) `waitpid(-1, WNOHANG)` runs until nothing is left
//! to reap. It is the only wait in the process, and a pid is recorded by the supervisor
//! before the loop can next run, so no exit is ever lost or stolen.

use crate::acpi::PowerButtonListener;
use crate::console;
use crate::hwwatchdog::HardwareWatchdog;
use crate::logbuf::LineRing;
use crate::notify::{self, NotifySocket};
use crate::spawn;
use crate::supervisor::{Action, StopSignal, Supervisor};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use star_core::control::{self, ExitInfo, Reply, Request};
use star_core::init_config::InitConfig;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a machine (`container == false`) or of a PID namespace (`container ==
    /// true`: nothing outside the namespace is touched: no mounts, modules or ACPI).
    Pid1 { container: bool },
    /// A child subreaper under some other init (tests, systemd).
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    Reboot,
    Poweroff,
    /// Plain supervisor: stop everything and exit.
    Exit,
}

impl ShutdownKind {
    fn describe(self) -> &'static str {
        match self {
            ShutdownKind::Reboot => "reboot",
            ShutdownKind::Poweroff => "poweroff",
            ShutdownKind::Exit => "exit",
        }
    }
}

/// How the loop ended.
pub struct Outcome {
    pub kind: ShutdownKind,
    /// Why the appliance must reset, if a critical service failed.
    pub critical_failure: Option<String>,
    pub watchdog: Option<HardwareWatchdog>,
}

/// The signals init takes through its signalfd: every one that can be blocked except the
/// synchronous faults (which only a bug raises, and which must stay fatal to be seen) and
/// SIGPIPE (ignored; a write to a closed client socket just fails).
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::all();
    for sig in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGSYS,
        Signal::SIGABRT,
        Signal::SIGPIPE,
        Signal::SIGKILL,
        Signal::SIGSTOP,
    ] {
        set.remove(sig);
    }
    set
}

/// Blocks the handled signals: must run before any child exists, so that no signal is
/// ever delivered with its default action (pitfall: PID 1 has none for most).
pub fn block_signals() -> io::Result<()> {
    handled_signals().thread_block().map_err(io::Error::from)
}

const TOKEN_SIGNALS: u64 = 1;
const TOKEN_NOTIFY: u64 = 2;
const TOKEN_CONTROL: u64 = 3;
const TOKEN_ACPI: u64 = 4;
const TOKEN_OUTPUT: u64 = 1 << 32;
const TOKEN_CLIENT: u64 = 1 << 48;

struct Output {
    read: OwnedFd,
    write: OwnedFd,
    ring: LineRing,
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The client finished sending: close once the replies are written.
    finished: bool,
}

pub struct Runtime {
    mode: Mode,
    sup: Supervisor,
    epoll: Epoll,
    signals: SignalFd,
    notify: NotifySocket,
    control: UnixListener,
    control_path: PathBuf,
    clients: HashMap<u64, Client>,
    next_client: u64,
    outputs: Vec<Option<Output>>,
    watchdog: Option<HardwareWatchdog>,
    acpi: Option<PowerButtonListener>,
    /// Under systemd with WatchdogSec=: when to send it the next WATCHDOG=1.
    systemd_watchdog: Option<(Duration, Instant)>,
    under_systemd: bool,
    started: Instant,
    shutdown: Option<ShutdownKind>,
    all_stopped: bool,
    critical_failure: Option<String>,
}

fn nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Seconds since the kernel started (CLOCK_BOOTTIME), the figure the ready line carries.
pub fn uptime_since_boot() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

impl Runtime {
    pub fn new(
        mode: Mode,
        config: InitConfig,
        watchdog: Option<HardwareWatchdog>,
        acpi: Option<PowerButtonListener>,
    ) -> io::Result<Runtime> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?;
        epoll.add(
            &signals,
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
        )?;

        let notify = NotifySocket::bind(&config.init.notify_socket)?;
        epoll.add(&notify, EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_NOTIFY))?;

        let control_path = config.init.control_socket.clone();
        if let Some(dir) = control_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&control_path);
        let control = UnixListener::bind(&control_path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("control socket {}: {e}", control_path.display()),
            )
        })?;
        // Anyone who can reach this socket can stop the array: root only.
        std::fs::set_permissions(&control_path, std::fs::Permissions::from_mode(0o600))?;
        control.set_nonblocking(true)?;
        epoll.add(
            &control,
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_CONTROL),
        )?;

        if let Some(acpi) = &acpi {
            epoll.add(
                acpi.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_ACPI),
            )?;
        }

        let mut outputs = Vec::new();
        for (i, spec) in config.services.iter().enumerate() {
            if spec.tty.is_some() {
                outputs.push(None);
                continue;
            }
            // One pipe per service for its whole life: a restart reuses it, and output
            // written by a dying instance is still read.
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            nonblocking(&read)?;
            epoll.add(
                &read,
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_OUTPUT + i as u64),
            )?;
            outputs.push(Some(Output {
                read,
                write,
                ring: LineRing::new(config.init.log_buffer_bytes),
            }));
        }

        let under_systemd = mode == Mode::Plain && std::env::var_os("NOTIFY_SOCKET").is_some();
        let systemd_watchdog = if under_systemd {
            sd_notify::watchdog_enabled().map(|t| (t / 2, Instant::now()))
        } else {
            None
        };
        let sup = Supervisor::new(config.services.clone());
        Ok(Runtime {
            mode,
            sup,
            epoll,
            signals,
            notify,
            control,
            control_path,
            clients: HashMap::new(),
            next_client: 0,
            outputs,
            watchdog,
            acpi,
            systemd_watchdog,
            under_systemd,
            started: Instant::now(),
            shutdown: None,
            all_stopped: false,
            critical_failure: None,
        })
    }

    /// Keeps a service from being started (see [`Supervisor::mask`]).
    pub fn mask(&mut self, name: &str) -> Result<(), String> {
        self.sup.mask(name)
    }

    /// Runs until a shutdown has stopped every service.
    pub fn run(&mut self) -> ShutdownKind {
        info!(
            "supervising {} services; control socket {}",
            self.sup.len(),
            self.control_path.display()
        );
        let actions = self.sup.start_all(Instant::now());
        self.execute(actions);
        let mut events = [EpollEvent::empty(); 32];
        loop {
            let now = Instant::now();
            let actions = self.sup.tick(now);
            self.execute(actions);
            self.feed_watchdogs(now);
            if let (Some(kind), true) = (self.shutdown, self.all_stopped) {
                return kind;
            }
            let n = match self.epoll.wait(&mut events, self.wait_timeout()) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(e) => {
                    error!("epoll_wait: {e}");
                    0
                }
            };
            for ev in &events[..n] {
                self.dispatch(ev.data(), ev.events());
            }
        }
    }

    fn wait_timeout(&self) -> PollTimeout {
        let deadlines = [
            self.sup.next_deadline(),
            self.watchdog
                .as_ref()
                .filter(|_| self.sup.healthy())
                .map(|w| w.next_feed()),
            self.systemd_watchdog.map(|(_, next)| next),
        ];
        match deadlines.into_iter().flatten().min() {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up: waking a little early would only spin until the deadline.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms as u64).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    fn feed_watchdogs(&mut self, now: Instant) {
        if !self.sup.healthy() {
            return;
        }
        if let Some(wd) = &mut self.watchdog {
            if wd.next_feed() <= now {
                if let Err(e) = wd.feed(now) {
                    warn!("{e}");
                }
            }
        }
        if let Some((interval, next)) = &mut self.systemd_watchdog {
            if *next <= now {
                *next = now + *interval;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }

    fn dispatch(&mut self, token: u64, flags: EpollFlags) {
        match token {
            TOKEN_SIGNALS => self.on_signals(),
            TOKEN_NOTIFY => self.on_notify(),
            TOKEN_CONTROL => self.on_control_accept(),
            TOKEN_ACPI => self.on_acpi(),
            t if t >= TOKEN_CLIENT => self.on_client(t - TOKEN_CLIENT, flags),
            t if t >= TOKEN_OUTPUT => self.on_output((t - TOKEN_OUTPUT) as usize),
            _ => {}
        }
    }

    fn on_signals(&mut self) {
        let mut reap = false;
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => {
                    let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                        debug!("ignoring signal {}", info.ssi_signo);
                        continue;
                    };
                    match sig {
                        Signal::SIGCHLD => reap = true,
                        Signal::SIGTERM | Signal::SIGINT => {
                            let kind = match self.mode {
                                Mode::Plain => ShutdownKind::Exit,
                                Mode::Pid1 { .. } => ShutdownKind::Reboot,
                            };
                            info!("{sig} from pid {}: {}", info.ssi_pid, kind.describe());
                            self.request_shutdown(kind);
                        }
                        Signal::SIGUSR2 | Signal::SIGPWR => {
                            let kind = match self.mode {
                                Mode::Plain => ShutdownKind::Exit,
                                Mode::Pid1 { .. } => ShutdownKind::Poweroff,
                            };
                            info!("{sig} from pid {}: {}", info.ssi_pid, kind.describe());
                            self.request_shutdown(kind);
                        }
                        other => info!("ignoring {other} from pid {}", info.ssi_pid),
                    }
                }
                Ok(None) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    error!("reading signals: {e}");
                    break;
                }
            }
        }
        if reap {
            self.reap();
        }
    }

    /// Collects every exited child. Returns false once there are no children at all.
    fn reap(&mut self) -> bool {
        loop {
            let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitInfo::Exited { code }),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    (pid, ExitInfo::Killed { signal: sig as i32 })
                }
                Ok(WaitStatus::StillAlive) => return true,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return false,
                Err(e) => {
                    error!("waitpid: {e}");
                    return true;
                }
            };
            let pid = pid.as_raw();
            if let Some(unit) = self.sup.unit_of_pid(pid) {
                // Output still in the pipe belongs before the news of the death.
                self.on_output(unit);
                debug!("{} (pid {pid}) ended: {exit}", self.sup.spec(unit).name);
            } else {
                debug!("reaped pid {pid}: {exit}");
            }
            let actions = self.sup.exited(pid, exit, Instant::now());
            self.execute(actions);
        }
    }

    fn on_notify(&mut self) {
        loop {
            let (pid, msg) = match self.notify.receive() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    warn!("notify socket: {e}");
                    break;
                }
            };
            let Some(unit) = self.attribute(pid) else {
                debug!("notify message from pid {pid}, which belongs to no service: {msg:?}");
                continue;
            };
            let mut msg = msg;
            if let Some(main) = msg.main_pid {
                // Only a process of the service's own group may become its main process.
                if self.attribute(main) != Some(unit) {
                    warn!(
                        "{}: ignoring MAINPID={main}: not a process of this service",
                        self.sup.spec(unit).name
                    );
                    msg.main_pid = None;
                }
            }
            if !msg.is_empty() {
                let actions = self.sup.notify(unit, &msg, Instant::now());
                self.execute(actions);
            }
        }
    }

    /// The service a pid belongs to: its main process, or any process in the process group
    /// or session the service was started in (a helper such as systemd-notify).
    fn attribute(&self, pid: i32) -> Option<usize> {
        if let Some(unit) = self.sup.unit_of_pid(pid) {
            return Some(unit);
        }
        let (pgrp, session) = notify::process_group_and_session(pid)?;
        self.sup
            .unit_of_group(pgrp)
            .or_else(|| self.sup.unit_of_group(session))
    }

    fn on_output(&mut self, unit: usize) {
        let name = self.sup.spec(unit).name.clone();
        let Some(out) = self.outputs.get_mut(unit).and_then(Option::as_mut) else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(&out.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for line in out.ring.push_bytes(&buf[..n]) {
                        console::line(&name, &line);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
    }

    fn on_acpi(&mut self) {
        let Some(acpi) = &self.acpi else { return };
        match acpi.read_events() {
            Ok(events) => {
                if events.iter().any(|e| e.is_power_button()) {
                    info!("ACPI power button: poweroff");
                    self.request_shutdown(ShutdownKind::Poweroff);
                }
            }
            Err(e) => warn!("ACPI events: {e}"),
        }
    }

    fn request_shutdown(&mut self, kind: ShutdownKind) {
        if self.shutdown.is_some() {
            return;
        }
        self.shutdown = Some(kind);
        if self.under_systemd {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        }
        info!("shutting down ({}): stopping services", kind.describe());
        let actions = self.sup.shutdown(Instant::now());
        self.execute(actions);
    }

    fn execute(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn(unit) => {
                    let spec = self.sup.spec(unit);
                    let pipe = self.outputs[unit].as_ref().map(|o| &o.write);
                    let result = spawn::spawn(spec, self.notify.path(), pipe);
                    let now = Instant::now();
                    let more = match result {
                        Ok(pid) => {
                            info!("{}: started (pid {pid})", spec.name);
                            self.sup.spawned(unit, pid, now)
                        }
                        Err(e) => {
                            let e = e.to_string();
                            self.sup.spawn_failed(unit, &e, now)
                        }
                    };
                    queue.extend(more);
                }
                Action::Signal {
                    pgid, pid, signal, ..
                } => {
                    let sig = match signal {
                        StopSignal::Term => Signal::SIGTERM,
                        StopSignal::Kill => Signal::SIGKILL,
                    };
                    let _ = kill(Pid::from_raw(-pgid), sig);
                    if pid != pgid {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                    if sig == Signal::SIGTERM {
                        // A stopped process cannot act on SIGTERM.
                        let _ = kill(Pid::from_raw(-pgid), Signal::SIGCONT);
                    }
                }
                Action::Note(text) => info!("{text}"),
                Action::ApplianceReady => {
                    let uptime = match self.mode {
                        Mode::Pid1 { container: false } => uptime_since_boot(),
                        _ => self.started.elapsed().as_secs_f64(),
                    };
                    console::line("star", &format!("appliance ready (uptime {uptime:.2} s)"));
                    if self.under_systemd {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                    }
                }
                Action::CriticalFailure { reason, .. } => self.on_critical_failure(reason),
                Action::AllStopped => self.all_stopped = true,
            }
        }
    }

    /// A critical service failed. The hardware watchdog is no longer fed (the supervisor is
    /// now unhealthy), and PID 1 resets the machine at once: a controller whose heartbeat
    /// has given up must stop serving before its peer takes over, and an orderly shutdown
    /// would take longer than the peer waits.
    fn on_critical_failure(&mut self, reason: String) {
        error!("{reason}");
        if self.critical_failure.is_none() {
            self.critical_failure = Some(reason);
        }
        match self.mode {
            Mode::Pid1 { .. } => crate::boot::reset_now("critical service failure"),
            Mode::Plain => {
                error!("plain supervisor: stopping everything and exiting with status 3");
                self.request_shutdown(ShutdownKind::Exit);
            }
        }
    }

    // ---- control socket -----------------------------------------------------------------

    fn on_control_accept(&mut self) {
        loop {
            match self.control.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = self.next_client;
                    self.next_client += 1;
                    let ev = EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_CLIENT + id);
                    if self.epoll.add(&stream, ev).is_ok() {
                        self.clients.insert(
                            id,
                            Client {
                                stream,
                                input: Vec::new(),
                                output: Vec::new(),
                                finished: false,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("control socket accept: {e}");
                    break;
                }
            }
        }
    }

    fn on_client(&mut self, id: u64, flags: EpollFlags) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let mut failed = flags.contains(EpollFlags::EPOLLERR);
        let mut buf = [0u8; 4096];
        loop {
            match client.stream.read(&mut buf) {
                Ok(0) => {
                    client.finished = true;
                    break;
                }
                Ok(n) => client.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let mut requests = Vec::new();
        while let Some(nl) = client.input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = client.input.drain(..=nl).collect();
            requests.push(line);
        }
        if client.input.len() > control::MAX_REQUEST_BYTES {
            client.input.clear();
            requests.push(b"\0request too long".to_vec());
            client.finished = true;
        }
        for line in requests {
            let reply = match control::parse_request(line.trim_ascii()) {
                Ok(req) => self.handle_request(req),
                Err(reply) => reply,
            };
            let mut text = serde_json::to_vec(&reply).unwrap_or_default();
            text.push(b'\n');
            if let Some(c) = self.clients.get_mut(&id) {
                c.output.extend_from_slice(&text);
            }
        }
        self.flush_client(id, failed);
    }

    fn flush_client(&mut self, id: u64, failed: bool) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let mut failed = failed;
        while !failed && !client.output.is_empty() {
            match client.stream.write(&client.output) {
                Ok(n) => {
                    client.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => failed = true,
            }
        }
        if failed || (client.finished && client.output.is_empty()) {
            let _ = self.epoll.delete(&client.stream);
            self.clients.remove(&id);
            return;
        }
        let want = if client.output.is_empty() {
            EpollFlags::EPOLLIN
        } else {
            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
        };
        let mut ev = EpollEvent::new(want, TOKEN_CLIENT + id);
        let _ = self.epoll.modify(&client.stream, &mut ev);
    }

    fn handle_request(&mut self, req: Request) -> Reply {
        let now = Instant::now();
        let result = match req {
            Request::Services => {
                let uptime = match self.mode {
                    Mode::Pid1 { container: false } => uptime_since_boot(),
                    _ => self.started.elapsed().as_secs_f64(),
                };
                return Reply::Services {
                    uptime_sec: uptime,
                    ready: self.sup.appliance_ready(),
                    shutdown: self.shutdown.map(|k| k.describe().to_string()),
                    services: self.sup.info(now),
                };
            }
            Request::Logs { name, lines } => {
                let Some(unit) = self.sup.index_of(&name) else {
                    return Reply::Error {
                        message: format!("no service named {name:?}"),
                    };
                };
                return match &self.outputs[unit] {
                    Some(out) => Reply::Logs {
                        name,
                        lines: out.ring.last(lines.unwrap_or(usize::MAX)),
                    },
                    None => Reply::Error {
                        message: format!(
                            "{name} runs on a terminal ({}); its output is not captured",
                            self.sup
                                .spec(unit)
                                .tty
                                .as_ref()
                                .map_or(String::new(), |t| t.display().to_string())
                        ),
                    },
                };
            }
            Request::Start { name } => self
                .sup
                .start(&name, now)
                .map(|a| (a, format!("starting {name}"))),
            Request::Stop { name } => self
                .sup
                .stop(&name, now)
                .map(|a| (a, format!("stopping {name}"))),
            Request::Restart { name } => self
                .sup
                .restart(&name, now)
                .map(|a| (a, format!("restarting {name}"))),
            Request::HardwareWatchdog { timeout_sec } => {
                let Some(wd) = &mut self.watchdog else {
                    return Reply::Error {
                        message: "no hardware watchdog: none in the services file, or it \
                                  could not be opened at boot (see the console)"
                            .into(),
                    };
                };
                if timeout_sec == 0 || Duration::from_secs(timeout_sec) > wd.ceiling() {
                    return Reply::Error {
                        message: format!(
                            "hardware watchdog {}: {timeout_sec} s refused: between 1 s and \
                             the services file's {} s; it keeps {} s",
                            wd.path().display(),
                            wd.ceiling().as_secs(),
                            wd.timeout().as_secs()
                        ),
                    };
                }
                return match wd.shorten(Duration::from_secs(timeout_sec), now) {
                    Ok(t) => {
                        let message = format!(
                            "hardware watchdog {}: timeout {} s, fed every {:.1} s",
                            wd.path().display(),
                            t.as_secs(),
                            t.as_secs_f64() / 3.0
                        );
                        info!("{message}");
                        if t.as_secs() > timeout_sec {
                            Reply::Error {
                                message: format!(
                                    "{message}: asked for {timeout_sec} s, the device \
                                     cannot go that low"
                                ),
                            }
                        } else {
                            Reply::Done { message }
                        }
                    }
                    Err(e) => Reply::Error {
                        message: e.to_string(),
                    },
                };
            }
            Request::Reboot | Request::Poweroff => {
                let kind = match (self.mode, req == Request::Reboot) {
                    (Mode::Plain, _) => ShutdownKind::Exit,
                    (_, true) => ShutdownKind::Reboot,
                    (_, false) => ShutdownKind::Poweroff,
                };
                if let Some(already) = self.shutdown {
                    return Reply::Error {
                        message: format!("already shutting down ({})", already.describe()),
                    };
                }
                self.request_shutdown(kind);
                let message = match kind {
                    ShutdownKind::Exit => {
                        "stopping every service; the supervisor then exits (plain mode: \
                         the host itself is not rebooted)"
                            .to_string()
                    }
                    k => format!("stopping every service, then {}", k.describe()),
                };
                return Reply::Done { message };
            }
        };
        match result {
            Ok((actions, message)) => {
                self.execute(actions);
                Reply::Done { message }
            }
            Err(message) => Reply::Error { message },
        }
    }

    // ---- after the services -------------------------------------------------------------

    /// Every service has stopped: end whatever processes are left, then give back what the
    /// caller needs for the final step.
    pub fn finish(mut self, grace: Duration) -> Outcome {
        // Replies to the last requests (e.g. the `poweroff` that started this).
        let ids: Vec<u64> = self.clients.keys().copied().collect();
        for id in ids {
            self.flush_client(id, false);
        }
        match self.mode {
            Mode::Pid1 { .. } => {
                // Everything but us: the services are gone, these are leftovers.
                let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
                let _ = kill(Pid::from_raw(-1), Signal::SIGCONT);
                if !self.wait_for_no_children(grace) {
                    warn!("processes left after {:.1} s: SIGKILL", grace.as_secs_f64());
                    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                    self.wait_for_no_children(Duration::from_secs(5));
                }
            }
            Mode::Plain => {
                // Only our own descendants, which, as a subreaper, are our children by now.
                let me = std::process::id() as i32;
                let leftovers = children_of(me);
                for &pid in &leftovers {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                }
                if !leftovers.is_empty() && !self.wait_for_no_children(grace) {
                    for pid in children_of(me) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    self.wait_for_no_children(Duration::from_secs(5));
                }
            }
        }
        let _ = std::fs::remove_file(&self.control_path);
        info!("all services stopped");
        Outcome {
            kind: self.shutdown.unwrap_or(ShutdownKind::Exit),
            critical_failure: self.critical_failure.take(),
            watchdog: self.watchdog.take(),
        }
    }

    /// Reaps until no child is left or the time is up; true when none is left.
    fn wait_for_no_children(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.reap() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.feed_watchdogs(now);
            let wait = (deadline - now).min(Duration::from_millis(500));
            let mut pfd = [nix::poll::PollFd::new(
                self.signals.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            let _ = nix::poll::poll(&mut pfd, ms);
            // Drain the signalfd; the reap at the top of the loop does the work.
            while let Ok(Some(_)) = self.signals.read_signal() {}
        }
    }
}

/// Pids whose parent is `parent`, from /proc.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| notify::parent_pid(pid) == Some(parent))
        .collect()
}
