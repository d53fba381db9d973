//! The supervision state machine: pure, no I/O, no clock of its own.
//!
//! The runtime feeds it what happened (a process was spawned or exited, a service sent an
//! sd_notify message, time passed, an operator asked for something) together with the
//! current `Instant`, and carries out the [`Action`]s it returns. Because it never reads
//! the clock or touches a process, every rule here (ordering, backoff, give-up, watchdog,
//! reverse-order shutdown) is tested with made-up times in the unit tests below.
//!
//! Rules, in one place:
//! - A service starts when every service in its `after` list is ready (a notify service
//!   once it sent READY=1, any other once it was started; a service that exited cleanly and
//!   is not restarted also counts, so one-shot setup steps can come first).
//! - When it dies it is restarted according to `restart`, after a delay that starts at
//!   `restart_sec` and doubles for each quick death in a row up to `restart_max_sec` (a run
//!   longer than `restart_max_sec` resets the doubling). If it was started
//!   `start_limit_burst` times within `start_limit_interval_sec`, it is `failed` instead.
//! - A service with `watchdog_sec` that does not send WATCHDOG=1 in time is SIGKILLed and
//!   treated as a death. A critical service that starves or gives up is a
//!   [`Action::CriticalFailure`]: the appliance resets.
//! - Shutdown stops services in reverse dependency order: a service gets SIGTERM only when
//!   nothing that waits for it is still running, and SIGKILL after its `stop_timeout_sec`.

use crate::notify::NotifyMessage;
use star_core::control::{ExitInfo, ServiceInfo, ServiceState};
use star_core::init_config::{RestartPolicy, ServiceSpec};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Kill,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start the service's program, then report `spawned` or `spawn_failed`.
    Spawn(usize),
    /// Signal the service's process group (and its main pid, if that moved elsewhere).
    Signal {
        unit: usize,
        pgid: i32,
        pid: i32,
        signal: StopSignal,
    },
    /// Something the operator should read on the console.
    Note(String),
    /// Every notify service has become ready: print `star: appliance ready`. Sent once.
    ApplianceReady,
    /// A critical service gave up or starved its watchdog: reset the appliance.
    CriticalFailure { unit: usize, reason: String },
    /// During shutdown: no service has a process left. Sent once.
    AllStopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// `star stop`: stays stopped.
    Command,
    /// `star restart`: started again at once, not counted as a death.
    Restart,
    /// Starved its watchdog: a death.
    Watchdog,
    /// Not ready within start_timeout_sec: a death.
    StartTimeout,
    Shutdown,
}

#[derive(Debug)]
struct Unit {
    spec: ServiceSpec,
    state: ServiceState,
    /// Should be running (false after `stop`, after giving up, and during shutdown).
    wanted: bool,
    /// The main process; MAINPID= can move it.
    pid: Option<i32>,
    /// The process group (and session) the service was started in: its first pid.
    pgid: Option<i32>,
    started_at: Option<Instant>,
    ready_once: bool,
    /// The last exit was clean and nothing will start it again: dependents may go on.
    finished_ok: bool,
    restarts: u32,
    /// Start times within the start-limit window.
    starts: VecDeque<Instant>,
    /// Deaths in a row, each after a short run: drives the backoff doubling.
    quick_deaths: u32,
    last_exit: Option<ExitInfo>,
    status_text: Option<String>,
    detail: Option<String>,
    restart_at: Option<Instant>,
    watchdog_at: Option<Instant>,
    /// Set by the service itself with WATCHDOG_USEC=, for the life of this process.
    watchdog_override: Option<Duration>,
    /// `star.mask=` on the kernel command line: never started, and counts as finished.
    masked: bool,
    ready_deadline: Option<Instant>,
    kill_at: Option<Instant>,
    stop_reason: Option<StopReason>,
}

impl Unit {
    fn new(spec: ServiceSpec) -> Unit {
        Unit {
            spec,
            state: ServiceState::Stopped,
            wanted: false,
            pid: None,
            pgid: None,
            started_at: None,
            ready_once: false,
            finished_ok: false,
            restarts: 0,
            starts: VecDeque::new(),
            quick_deaths: 0,
            last_exit: None,
            status_text: None,
            detail: None,
            restart_at: None,
            watchdog_at: None,
            watchdog_override: None,
            masked: false,
            ready_deadline: None,
            kill_at: None,
            stop_reason: None,
        }
    }

    fn alive(&self) -> bool {
        self.pid.is_some()
    }

    /// The service watchdog in force: the service's own WATCHDOG_USEC= over the file's.
    fn watchdog(&self) -> Option<Duration> {
        self.watchdog_override.or(self.spec.watchdog)
    }

    fn satisfies_dependents(&self) -> bool {
        self.state == ServiceState::Running
            || (self.state == ServiceState::Stopped && self.finished_ok)
    }

    fn clear_timers(&mut self) {
        self.restart_at = None;
        self.watchdog_at = None;
        self.ready_deadline = None;
        self.kill_at = None;
    }
}

pub struct Supervisor {
    units: Vec<Unit>,
    announced_ready: bool,
    shutting_down: bool,
    announced_all_stopped: bool,
    /// A critical service failed: the hardware watchdog must not be fed any more.
    critical_failed: bool,
}

impl Supervisor {
    pub fn new(specs: Vec<ServiceSpec>) -> Supervisor {
        Supervisor {
            units: specs.into_iter().map(Unit::new).collect(),
            announced_ready: false,
            shutting_down: false,
            announced_all_stopped: false,
            critical_failed: false,
        }
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub fn spec(&self, unit: usize) -> &ServiceSpec {
        &self.units[unit].spec
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.units.iter().position(|u| u.spec.name == name)
    }

    pub fn unit_of_pid(&self, pid: i32) -> Option<usize> {
        self.units.iter().position(|u| u.pid == Some(pid))
    }

    /// The running service whose process group (or session) is `id`.
    pub fn unit_of_group(&self, id: i32) -> Option<usize> {
        self.units
            .iter()
            .position(|u| u.alive() && u.pgid == Some(id))
    }

    pub fn state(&self, unit: usize) -> ServiceState {
        self.units[unit].state
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Whether the hardware watchdog may be fed: no critical service has failed or starved.
    pub fn healthy(&self) -> bool {
        !self.critical_failed
    }

    /// Every notify service has been ready at least once.
    pub fn appliance_ready(&self) -> bool {
        self.announced_ready
    }

    /// Keeps a service from starting at all (`star.mask=` on the kernel command line): it
    /// stays stopped, counts as finished for the services after it, and `star start` can
    /// still start it by hand. Call before [`Supervisor::start_all`].
    pub fn mask(&mut self, name: &str) -> Result<(), String> {
        let unit = self.lookup(name)?;
        let u = &mut self.units[unit];
        u.masked = true;
        u.finished_ok = true;
        u.detail = Some("masked (star.mask= on the kernel command line)".into());
        Ok(())
    }

    /// Begin: every service that is not masked is wanted.
    pub fn start_all(&mut self, now: Instant) -> Vec<Action> {
        for u in self.units.iter_mut().filter(|u| !u.masked) {
            u.wanted = true;
            u.state = ServiceState::Waiting;
        }
        let mut actions = Vec::new();
        self.schedule(now, &mut actions);
        actions
    }

    pub fn spawned(&mut self, unit: usize, pid: i32, now: Instant) -> Vec<Action> {
        let u = &mut self.units[unit];
        u.pid = Some(pid);
        u.pgid = Some(pid);
        u.started_at = Some(now);
        u.finished_ok = false;
        u.status_text = None;
        u.detail = None;
        u.starts.push_back(now);
        u.watchdog_override = None;
        u.watchdog_at = u.spec.watchdog.map(|w| now + w);
        let mut actions = Vec::new();
        if u.spec.notify {
            u.state = ServiceState::Starting;
            u.ready_deadline = u.spec.start_timeout.map(|t| now + t);
        } else {
            self.became_ready(unit, &mut actions);
        }
        self.schedule(now, &mut actions);
        actions
    }

    pub fn spawn_failed(&mut self, unit: usize, error: &str, now: Instant) -> Vec<Action> {
        let mut actions = vec![Action::Note(format!(
            "{}: cannot start {}: {error}",
            self.units[unit].spec.name, self.units[unit].spec.exec[0]
        ))];
        let u = &mut self.units[unit];
        u.starts.push_back(now);
        u.started_at = Some(now);
        u.last_exit = Some(ExitInfo::SpawnFailed);
        self.died(unit, now, &mut actions);
        self.schedule(now, &mut actions);
        actions
    }

    /// A process was reaped. Processes that are no service's main process (orphans, old
    /// main pids after MAINPID=) need nothing and produce no actions.
    pub fn exited(&mut self, pid: i32, exit: ExitInfo, now: Instant) -> Vec<Action> {
        let Some(unit) = self.unit_of_pid(pid) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        let u = &mut self.units[unit];
        let pgid = u.pgid.unwrap_or(pid);
        u.pid = None;
        u.last_exit = Some(exit);
        u.clear_timers();
        // Whatever the service left behind in its process group belongs to a dead instance;
        // it must not outlive it (a stale process holding a disk or an address).
        actions.push(Action::Signal {
            unit,
            pgid,
            pid,
            signal: StopSignal::Kill,
        });
        match u.stop_reason.take() {
            Some(StopReason::Command) | Some(StopReason::Shutdown) => {
                u.state = ServiceState::Stopped;
                u.detail = Some(format!("stopped ({exit})"));
                actions.push(Action::Note(format!("{}: stopped ({exit})", u.spec.name)));
            }
            Some(StopReason::Restart) => {
                u.state = ServiceState::Waiting;
                u.restarts += 1;
                u.wanted = true;
            }
            Some(StopReason::Watchdog) | Some(StopReason::StartTimeout) => {
                self.died(unit, now, &mut actions);
            }
            None if self.shutting_down => {
                u.state = ServiceState::Stopped;
                u.detail = Some(format!("exited during shutdown ({exit})"));
            }
            None => {
                let restart = match u.spec.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => !exit.success(),
                    RestartPolicy::Never => false,
                };
                if restart {
                    self.died(unit, now, &mut actions);
                } else if exit.success() {
                    u.state = ServiceState::Stopped;
                    u.finished_ok = true;
                    u.wanted = false;
                    u.detail = Some("finished".into());
                    actions.push(Action::Note(format!("{}: finished ({exit})", u.spec.name)));
                } else {
                    let why = format!("exited ({exit}) and restart is \"never\"");
                    self.give_up(unit, why, &mut actions);
                }
            }
        }
        self.schedule(now, &mut actions);
        actions
    }

    /// A message from the notify socket, already attributed to `unit`.
    pub fn notify(&mut self, unit: usize, msg: &NotifyMessage, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let u = &mut self.units[unit];
        if !u.alive() || u.state == ServiceState::Stopping {
            return actions;
        }
        if let Some(status) = &msg.status {
            u.status_text = Some(status.clone());
        }
        if let Some(pid) = msg.main_pid {
            u.pid = Some(pid);
        }
        if let Some(us) = msg.watchdog_usec {
            u.watchdog_override = Some(Duration::from_micros(us));
            u.watchdog_at = Some(now + Duration::from_micros(us));
        }
        if msg.watchdog {
            u.watchdog_at = u.watchdog().map(|w| now + w);
        }
        if msg.watchdog_trigger {
            self.watchdog_starved(
                unit,
                "asked for it with WATCHDOG=trigger",
                now,
                &mut actions,
            );
        } else if msg.ready && self.units[unit].state == ServiceState::Starting {
            self.units[unit].ready_deadline = None;
            self.became_ready(unit, &mut actions);
        }
        self.schedule(now, &mut actions);
        actions
    }

    /// Acts on every deadline that has passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for unit in 0..self.units.len() {
            let u = &mut self.units[unit];
            if u.restart_at.is_some_and(|t| t <= now) {
                u.restart_at = None;
                if u.wanted && u.state == ServiceState::Backoff {
                    u.state = ServiceState::Waiting;
                    u.restarts += 1;
                }
            }
            if u.kill_at.is_some_and(|t| t <= now) {
                u.kill_at = None;
                if let (Some(pid), Some(pgid)) = (u.pid, u.pgid) {
                    actions.push(Action::Note(format!(
                        "{}: still running {:.1} s after SIGTERM; sending SIGKILL",
                        u.spec.name,
                        u.spec.stop_timeout.as_secs_f64()
                    )));
                    actions.push(Action::Signal {
                        unit,
                        pgid,
                        pid,
                        signal: StopSignal::Kill,
                    });
                }
            }
            if u.watchdog_at.is_some_and(|t| t <= now) {
                let limit = u.watchdog().unwrap_or_default();
                let why = format!("no WATCHDOG=1 for {:.1} s", limit.as_secs_f64());
                self.watchdog_starved(unit, &why, now, &mut actions);
            }
            let u = &mut self.units[unit];
            if u.ready_deadline.is_some_and(|t| t <= now) {
                u.ready_deadline = None;
                let limit = u.spec.start_timeout.unwrap_or_default().as_secs_f64();
                actions.push(Action::Note(format!(
                    "{}: not ready within {limit:.1} s; stopping it",
                    u.spec.name
                )));
                self.begin_stop(
                    unit,
                    StopReason::StartTimeout,
                    StopSignal::Term,
                    now,
                    &mut actions,
                );
            }
        }
        self.schedule(now, &mut actions);
        actions
    }

    /// The earliest time `tick` has something to do; `None` means nothing is pending, and
    /// the runtime may sleep until an event arrives.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.units
            .iter()
            .flat_map(|u| [u.restart_at, u.kill_at, u.watchdog_at, u.ready_deadline])
            .flatten()
            .min()
    }

    pub fn start(&mut self, name: &str, now: Instant) -> Result<Vec<Action>, String> {
        let unit = self.lookup(name)?;
        if self.shutting_down {
            return Err("shutting down: nothing can be started".into());
        }
        let mut actions = Vec::new();
        let u = &mut self.units[unit];
        match u.state {
            ServiceState::Starting | ServiceState::Running => {
                return Err(format!("{name} is already {}", u.state.as_str()));
            }
            ServiceState::Stopping => {
                // It comes back as soon as the old process is gone.
                u.stop_reason = Some(StopReason::Restart);
            }
            _ => {
                u.wanted = true;
                u.state = ServiceState::Waiting;
                u.restart_at = None;
                u.starts.clear();
                u.quick_deaths = 0;
                u.detail = None;
            }
        }
        self.schedule(now, &mut actions);
        Ok(actions)
    }

    pub fn stop(&mut self, name: &str, now: Instant) -> Result<Vec<Action>, String> {
        let unit = self.lookup(name)?;
        let mut actions = Vec::new();
        let u = &mut self.units[unit];
        u.wanted = false;
        if u.alive() {
            self.begin_stop(
                unit,
                StopReason::Command,
                StopSignal::Term,
                now,
                &mut actions,
            );
        } else {
            u.clear_timers();
            u.state = ServiceState::Stopped;
            u.detail = Some("stopped by command".into());
        }
        Ok(actions)
    }

    pub fn restart(&mut self, name: &str, now: Instant) -> Result<Vec<Action>, String> {
        let unit = self.lookup(name)?;
        if self.shutting_down {
            return Err("shutting down: nothing can be restarted".into());
        }
        if self.units[unit].alive() {
            let mut actions = Vec::new();
            self.units[unit].wanted = true;
            self.begin_stop(
                unit,
                StopReason::Restart,
                StopSignal::Term,
                now,
                &mut actions,
            );
            Ok(actions)
        } else {
            self.start(name, now)
        }
    }

    /// Stop everything, in reverse dependency order.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.shutting_down {
            self.shutting_down = true;
            for u in &mut self.units {
                u.wanted = false;
                u.restart_at = None;
                u.ready_deadline = None;
                if !u.alive() && u.state != ServiceState::Failed {
                    u.state = ServiceState::Stopped;
                }
            }
        }
        self.schedule(now, &mut actions);
        actions
    }

    pub fn info(&self, now: Instant) -> Vec<ServiceInfo> {
        self.units
            .iter()
            .map(|u| ServiceInfo {
                name: u.spec.name.clone(),
                state: u.state,
                pid: u.pid,
                restarts: u.restarts,
                last_exit: u.last_exit,
                uptime_sec: u
                    .pid
                    .and(u.started_at)
                    .map(|t| now.saturating_duration_since(t).as_secs_f64()),
                critical: u.spec.critical,
                notify: u.spec.notify,
                status: u.status_text.clone(),
                detail: match (u.state, u.restart_at) {
                    (ServiceState::Backoff, Some(at)) => Some(format!(
                        "restarting in {:.1} s",
                        at.saturating_duration_since(now).as_secs_f64()
                    )),
                    _ => u.detail.clone(),
                },
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------

    fn lookup(&self, name: &str) -> Result<usize, String> {
        self.index_of(name).ok_or_else(|| {
            let names: Vec<&str> = self.units.iter().map(|u| u.spec.name.as_str()).collect();
            format!("no service named {name:?} (services: {})", names.join(", "))
        })
    }

    fn became_ready(&mut self, unit: usize, actions: &mut Vec<Action>) {
        let u = &mut self.units[unit];
        u.state = ServiceState::Running;
        if u.spec.notify && !u.ready_once {
            actions.push(Action::Note(format!("{}: ready", u.spec.name)));
        }
        u.ready_once = true;
    }

    fn watchdog_starved(
        &mut self,
        unit: usize,
        why: &str,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let u = &mut self.units[unit];
        u.watchdog_at = None;
        actions.push(Action::Note(format!(
            "{}: watchdog starved: {why}",
            u.spec.name
        )));
        if u.spec.critical {
            self.critical_failed = true;
            actions.push(Action::CriticalFailure {
                unit,
                reason: format!(
                    "critical service {} starved its watchdog: {why}",
                    u.spec.name
                ),
            });
        }
        // A hung process cannot be trusted to act on SIGTERM.
        self.begin_stop(unit, StopReason::Watchdog, StopSignal::Kill, now, actions);
        self.units[unit].detail = Some(format!("watchdog starved: {why}"));
    }

    fn begin_stop(
        &mut self,
        unit: usize,
        reason: StopReason,
        signal: StopSignal,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let u = &mut self.units[unit];
        let (Some(pid), Some(pgid)) = (u.pid, u.pgid) else {
            return;
        };
        u.state = ServiceState::Stopping;
        u.stop_reason = Some(reason);
        u.watchdog_at = None;
        u.ready_deadline = None;
        u.kill_at = match signal {
            StopSignal::Term => Some(now + u.spec.stop_timeout),
            StopSignal::Kill => None,
        };
        actions.push(Action::Signal {
            unit,
            pgid,
            pid,
            signal,
        });
    }

    /// The main process died while wanted: restart later, or give up.
    fn died(&mut self, unit: usize, now: Instant, actions: &mut Vec<Action>) {
        let u = &mut self.units[unit];
        let exit = u.last_exit.unwrap_or(ExitInfo::SpawnFailed);
        let window = u.spec.start_limit_interval;
        while u
            .starts
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > window)
        {
            u.starts.pop_front();
        }
        if u.starts.len() >= u.spec.start_limit_burst as usize {
            let why = format!(
                "started {} times within {:.0} s, last {exit}",
                u.starts.len(),
                window.as_secs_f64()
            );
            self.give_up(unit, why, actions);
            return;
        }
        let ran = u
            .started_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if ran >= u.spec.restart_delay_max {
            u.quick_deaths = 0;
        }
        u.quick_deaths += 1;
        let delay = backoff_delay(
            u.spec.restart_delay,
            u.spec.restart_delay_max,
            u.quick_deaths,
        );
        u.state = ServiceState::Backoff;
        u.restart_at = Some(now + delay);
        u.detail = Some(format!("{exit}"));
        actions.push(Action::Note(format!(
            "{}: {exit}; restarting in {:.1} s",
            u.spec.name,
            delay.as_secs_f64()
        )));
    }

    fn give_up(&mut self, unit: usize, why: String, actions: &mut Vec<Action>) {
        let u = &mut self.units[unit];
        u.state = ServiceState::Failed;
        u.wanted = false;
        u.restart_at = None;
        u.detail = Some(format!("gave up: {why}"));
        actions.push(Action::Note(format!("{}: failed: {why}", u.spec.name)));
        if u.spec.critical {
            self.critical_failed = true;
            actions.push(Action::CriticalFailure {
                unit,
                reason: format!("critical service {} failed: {why}", u.spec.name),
            });
        }
    }

    /// Starts what can start, stops what must stop (in shutdown), and sends the one-time
    /// announcements. Called after every change.
    fn schedule(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.shutting_down {
            self.stop_in_reverse_order(now, actions);
            if !self.announced_all_stopped && self.units.iter().all(|u| !u.alive()) {
                self.announced_all_stopped = true;
                actions.push(Action::AllStopped);
            }
            return;
        }
        for unit in 0..self.units.len() {
            let u = &self.units[unit];
            if !(u.wanted && u.state == ServiceState::Waiting) {
                continue;
            }
            let deps_ready = u.spec.after.iter().all(|d| {
                self.index_of(d)
                    .is_some_and(|d| self.units[d].satisfies_dependents())
            });
            if deps_ready {
                // Starting until the runtime reports the pid.
                self.units[unit].state = ServiceState::Starting;
                actions.push(Action::Spawn(unit));
            }
        }
        if !self.announced_ready
            && self
                .units
                .iter()
                .filter(|u| u.spec.notify)
                // A masked service, or one that finished cleanly before it was ever ready
                // (star-heartbeat on the witness), is not waited for.
                .all(|u| u.ready_once || u.finished_ok)
        {
            self.announced_ready = true;
            actions.push(Action::ApplianceReady);
        }
    }

    fn stop_in_reverse_order(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for unit in 0..self.units.len() {
            let u = &self.units[unit];
            if !u.alive() || u.state == ServiceState::Stopping {
                continue;
            }
            let name = u.spec.name.as_str();
            let waited_on_by_a_live_one = self
                .units
                .iter()
                .any(|other| other.alive() && other.spec.after.iter().any(|d| d == name));
            if !waited_on_by_a_live_one {
                self.begin_stop(unit, StopReason::Shutdown, StopSignal::Term, now, actions);
            }
        }
    }
}

/// `base * 2^(n-1)`, capped: the delay before the n-th restart in a row.
pub fn backoff_delay(base: Duration, cap: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, after: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec::new(name, &["/bin/true"]);
        s.after = after.iter().map(|a| a.to_string()).collect();
        s
    }

    fn spawns(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn(u) => Some(*u),
                _ => None,
            })
            .collect()
    }

    fn term_targets(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Signal {
                    unit,
                    signal: StopSignal::Term,
                    ..
                } => Some(*unit),
                _ => None,
            })
            .collect()
    }

    fn ready() -> NotifyMessage {
        NotifyMessage {
            ready: true,
            ..Default::default()
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs(1);
        let cap = Duration::from_secs(30);
        let got: Vec<u64> = (1..=7)
            .map(|n| backoff_delay(s, cap, n).as_secs())
            .collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff_delay(s, cap, 100), cap);
    }

    #[test]
    fn dependents_wait_for_readiness() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.notify = true;
        let mut sup = Supervisor::new(vec![svc("b", &["a"]), a]);
        let acts = sup.start_all(t0);
        assert_eq!(spawns(&acts), vec![1], "only a starts");
        let acts = sup.spawned(1, 100, t0);
        assert!(spawns(&acts).is_empty(), "a is not ready yet");
        assert_eq!(sup.state(0), ServiceState::Waiting);
        let acts = sup.notify(1, &ready(), t0);
        assert_eq!(spawns(&acts), vec![0]);
        assert!(acts.contains(&Action::ApplianceReady), "{acts:?}");
        sup.spawned(0, 101, t0);
        assert_eq!(sup.state(0), ServiceState::Running);
    }

    #[test]
    fn appliance_ready_is_announced_once() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.notify = true;
        a.restart = RestartPolicy::Always;
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        sup.spawned(0, 10, t0);
        let first = sup.notify(0, &ready(), t0);
        assert_eq!(
            first
                .iter()
                .filter(|a| **a == Action::ApplianceReady)
                .count(),
            1
        );
        sup.exited(10, ExitInfo::Exited { code: 1 }, t0);
        let acts = sup.tick(t0 + Duration::from_secs(2));
        assert_eq!(spawns(&acts), vec![0]);
        sup.spawned(0, 11, t0 + Duration::from_secs(2));
        let again = sup.notify(0, &ready(), t0 + Duration::from_secs(2));
        assert!(!again.contains(&Action::ApplianceReady));
    }

    #[test]
    fn restart_backs_off_then_gives_up() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.restart = RestartPolicy::Always;
        a.start_limit_burst = 4;
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        let mut now = t0;
        let mut pid = 100;
        let mut delays = Vec::new();
        sup.spawned(0, pid, now);
        loop {
            sup.exited(pid, ExitInfo::Exited { code: 3 }, now);
            if sup.state(0) == ServiceState::Failed {
                break;
            }
            assert_eq!(sup.state(0), ServiceState::Backoff);
            let due = sup.next_deadline().expect("a restart is scheduled");
            delays.push(due - now);
            // Nothing happens before the delay is over.
            assert!(spawns(&sup.tick(due - Duration::from_millis(1))).is_empty());
            now = due;
            assert_eq!(spawns(&sup.tick(now)), vec![0]);
            pid += 1;
            sup.spawned(0, pid, now);
        }
        let secs: Vec<u64> = delays.iter().map(|d| d.as_secs()).collect();
        assert_eq!(
            secs,
            vec![1, 2, 4],
            "three restarts, doubling, then give up"
        );
        let info = &sup.info(now)[0];
        assert_eq!(info.restarts, 3);
        assert!(
            info.detail.as_deref().unwrap().starts_with("gave up"),
            "{info:?}"
        );
        assert_eq!(
            sup.next_deadline(),
            None,
            "a failed service schedules nothing"
        );
    }

    #[test]
    fn long_runs_reset_the_backoff_and_old_starts_leave_the_window() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.restart = RestartPolicy::Always;
        a.start_limit_burst = 2;
        a.start_limit_interval = Duration::from_secs(10);
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        let mut now = t0;
        for pid in 1..20 {
            sup.spawned(0, pid, now);
            now += Duration::from_secs(60); // a long, healthy run
            sup.exited(pid, ExitInfo::Killed { signal: 9 }, now);
            assert_eq!(sup.state(0), ServiceState::Backoff);
            assert_eq!(sup.next_deadline(), Some(now + Duration::from_secs(1)));
            now += Duration::from_secs(1);
            sup.tick(now);
        }
    }

    #[test]
    fn on_failure_and_never_policies() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.restart = RestartPolicy::OnFailure;
        let mut b = svc("b", &[]);
        b.restart = RestartPolicy::Never;
        let mut c = svc("c", &["a"]);
        c.restart = RestartPolicy::Never;
        let mut sup = Supervisor::new(vec![a, b, c]);
        sup.start_all(t0);
        sup.spawned(0, 1, t0);
        sup.spawned(1, 2, t0);
        sup.spawned(2, 3, t0);
        sup.exited(1, ExitInfo::Exited { code: 0 }, t0);
        assert_eq!(
            sup.state(0),
            ServiceState::Stopped,
            "clean exit is not restarted"
        );
        sup.exited(2, ExitInfo::Exited { code: 2 }, t0);
        assert_eq!(sup.state(1), ServiceState::Failed, "never + error = failed");
        sup.exited(3, ExitInfo::Exited { code: 0 }, t0);
        assert_eq!(sup.state(2), ServiceState::Stopped);
        assert_eq!(sup.next_deadline(), None);
    }

    #[test]
    fn one_shot_setup_step_lets_dependents_start() {
        let t0 = Instant::now();
        let mut setup = svc("setup", &[]);
        setup.restart = RestartPolicy::OnFailure;
        setup.notify = true; // not ready until it is done
        let mut sup = Supervisor::new(vec![setup, svc("daemon", &["setup"])]);
        sup.start_all(t0);
        sup.spawned(0, 1, t0);
        let acts = sup.exited(1, ExitInfo::Exited { code: 0 }, t0);
        assert_eq!(spawns(&acts), vec![1]);
    }

    #[test]
    fn watchdog_starvation_kills_and_restarts() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.watchdog = Some(Duration::from_secs(2));
        a.restart = RestartPolicy::Always;
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        sup.spawned(0, 7, t0);
        let pet = NotifyMessage {
            watchdog: true,
            ..Default::default()
        };
        sup.notify(0, &pet, t0 + Duration::from_millis(1500));
        assert!(
            sup.tick(t0 + Duration::from_millis(3000)).is_empty(),
            "fed in time"
        );
        let acts = sup.tick(t0 + Duration::from_millis(3600));
        assert!(acts.iter().any(|a| matches!(
            a,
            Action::Signal {
                signal: StopSignal::Kill,
                pid: 7,
                ..
            }
        )));
        assert!(sup.healthy(), "not critical: the appliance stays up");
        sup.exited(
            7,
            ExitInfo::Killed { signal: 9 },
            t0 + Duration::from_secs(4),
        );
        assert_eq!(sup.state(0), ServiceState::Backoff);
    }

    #[test]
    fn critical_starvation_is_a_critical_failure() {
        let t0 = Instant::now();
        let mut hb = svc("heartbeat", &[]);
        hb.watchdog = Some(Duration::from_secs(1));
        hb.critical = true;
        let mut sup = Supervisor::new(vec![hb]);
        sup.start_all(t0);
        sup.spawned(0, 7, t0);
        assert!(sup.healthy());
        let acts = sup.tick(t0 + Duration::from_secs(2));
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::CriticalFailure { unit: 0, .. })));
        assert!(!sup.healthy());
    }

    #[test]
    fn a_service_can_shorten_its_own_watchdog() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut hb = svc("heartbeat", &[]);
        hb.watchdog = Some(Duration::from_secs(30));
        hb.critical = true;
        let mut sup = Supervisor::new(vec![hb]);
        sup.start_all(t0);
        sup.spawned(0, 7, t0);
        let shorten = NotifyMessage {
            watchdog_usec: Some(1_000_000),
            ..Default::default()
        };
        sup.notify(0, &shorten, t0);
        let pet = NotifyMessage {
            watchdog: true,
            ..Default::default()
        };
        sup.notify(0, &pet, t0 + ms(500));
        assert!(sup.tick(t0 + ms(1400)).is_empty(), "fed 0.9 s ago");
        let acts = sup.tick(t0 + ms(1600));
        assert!(
            acts.iter()
                .any(|a| matches!(a, Action::CriticalFailure { unit: 0, .. })),
            "1.1 s without a feed starves a 1 s watchdog, whatever the file said: {acts:?}"
        );
    }

    #[test]
    fn a_masked_service_never_starts_and_does_not_hold_anything_up() {
        let t0 = Instant::now();
        let mut hb = svc("heartbeat", &[]);
        hb.notify = true;
        let mut after = svc("after-heartbeat", &["heartbeat"]);
        after.notify = true;
        let mut sup = Supervisor::new(vec![hb, after]);
        sup.mask("heartbeat").unwrap();
        assert!(sup
            .mask("heartbaet")
            .unwrap_err()
            .contains("no service named"));
        let acts = sup.start_all(t0);
        assert_eq!(spawns(&acts), vec![1], "only the service after it starts");
        sup.spawned(1, 8, t0);
        let acts = sup.notify(1, &ready(), t0);
        assert!(acts.contains(&Action::ApplianceReady), "{acts:?}");
        assert_eq!(sup.state(0), ServiceState::Stopped);
        assert!(sup.info(t0)[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("masked"));
        let acts = sup.start("heartbeat", t0).unwrap();
        assert_eq!(spawns(&acts), vec![0], "star start still starts it by hand");
    }

    #[test]
    fn a_clean_exit_before_ready_does_not_hold_up_appliance_ready() {
        let t0 = Instant::now();
        let mut witness_only = svc("witness", &[]);
        witness_only.notify = true;
        witness_only.restart = RestartPolicy::OnFailure;
        let mut target = svc("target", &[]);
        target.notify = true;
        let mut sup = Supervisor::new(vec![witness_only, target]);
        sup.start_all(t0);
        sup.spawned(0, 7, t0);
        sup.spawned(1, 8, t0);
        sup.notify(1, &ready(), t0);
        let acts = sup.exited(7, ExitInfo::Exited { code: 0 }, t0);
        assert!(acts.contains(&Action::ApplianceReady), "{acts:?}");
    }

    #[test]
    fn critical_give_up_is_a_critical_failure() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.critical = true;
        a.start_limit_burst = 1;
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        sup.spawned(0, 7, t0);
        let acts = sup.exited(7, ExitInfo::Exited { code: 1 }, t0);
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::CriticalFailure { .. })));
    }

    #[test]
    fn shutdown_goes_in_reverse_dependency_order_and_escalates() {
        let t0 = Instant::now();
        // c after b after a; d independent.
        let mut sup = Supervisor::new(vec![
            svc("a", &[]),
            svc("b", &["a"]),
            svc("c", &["b"]),
            svc("d", &[]),
        ]);
        let mut acts = sup.start_all(t0);
        while let Some(unit) = spawns(&acts).first().copied() {
            acts = sup.spawned(unit, 10 + unit as i32, t0);
            let more = spawns(&acts);
            if more.is_empty() {
                // Remaining spawns from earlier batches.
                acts = (0..4)
                    .filter(|&u| sup.state(u) == ServiceState::Starting)
                    .map(Action::Spawn)
                    .collect();
            }
        }
        assert!((0..4).all(|u| sup.state(u) == ServiceState::Running));
        let acts = sup.shutdown(t0);
        assert_eq!(term_targets(&acts), vec![2, 3], "leaves first");
        let acts = sup.exited(12, ExitInfo::Killed { signal: 15 }, t0);
        assert_eq!(term_targets(&acts), vec![1]);
        // b ignores SIGTERM: SIGKILL after its stop timeout.
        let late = t0 + Duration::from_secs(10);
        let acts = sup.tick(late);
        assert!(acts.iter().any(|a| matches!(
            a,
            Action::Signal {
                unit: 1,
                signal: StopSignal::Kill,
                ..
            }
        )));
        sup.exited(11, ExitInfo::Killed { signal: 9 }, late);
        sup.exited(13, ExitInfo::Exited { code: 0 }, late);
        let acts = sup.exited(10, ExitInfo::Exited { code: 0 }, late);
        assert!(acts.contains(&Action::AllStopped));
        assert!(spawns(&acts).is_empty(), "nothing restarts during shutdown");
    }

    #[test]
    fn stop_start_restart_by_command() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.restart = RestartPolicy::Always;
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        sup.spawned(0, 5, t0);
        let acts = sup.restart("a", t0).unwrap();
        assert_eq!(term_targets(&acts), vec![0]);
        let acts = sup.exited(5, ExitInfo::Killed { signal: 15 }, t0);
        assert_eq!(spawns(&acts), vec![0], "restart is immediate");
        sup.spawned(0, 6, t0);
        sup.stop("a", t0).unwrap();
        sup.exited(6, ExitInfo::Killed { signal: 15 }, t0);
        assert_eq!(
            sup.state(0),
            ServiceState::Stopped,
            "stop is not undone by restart=always"
        );
        assert_eq!(sup.next_deadline(), None);
        assert!(sup.stop("zzz", t0).unwrap_err().contains("services: a"));
        let acts = sup.start("a", t0).unwrap();
        assert_eq!(spawns(&acts), vec![0]);
        assert_eq!(sup.info(t0)[0].restarts, 1);
    }

    #[test]
    fn spawn_failure_counts_as_a_death() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.start_limit_burst = 2;
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        let acts = sup.spawn_failed(0, "No such file or directory", t0);
        assert_eq!(sup.state(0), ServiceState::Backoff, "{acts:?}");
        sup.tick(t0 + Duration::from_secs(1));
        sup.spawn_failed(0, "No such file or directory", t0 + Duration::from_secs(1));
        assert_eq!(sup.state(0), ServiceState::Failed);
    }

    #[test]
    fn exits_of_unknown_pids_change_nothing() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(vec![svc("a", &[])]);
        sup.start_all(t0);
        sup.spawned(0, 5, t0);
        assert!(sup.exited(999, ExitInfo::Exited { code: 0 }, t0).is_empty());
        assert_eq!(sup.state(0), ServiceState::Running);
    }

    #[test]
    fn mainpid_moves_the_tracked_process() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(vec![svc("a", &[])]);
        sup.start_all(t0);
        sup.spawned(0, 5, t0);
        let moved = NotifyMessage {
            main_pid: Some(6),
            ..Default::default()
        };
        sup.notify(0, &moved, t0);
        assert!(sup.exited(5, ExitInfo::Exited { code: 0 }, t0).is_empty());
        assert_eq!(sup.unit_of_pid(6), Some(0));
        assert_eq!(
            sup.unit_of_group(5),
            Some(0),
            "the group is still the first pid"
        );
    }

    #[test]
    fn start_timeout_stops_a_service_that_never_gets_ready() {
        let t0 = Instant::now();
        let mut a = svc("a", &[]);
        a.notify = true;
        a.start_timeout = Some(Duration::from_secs(5));
        let mut sup = Supervisor::new(vec![a]);
        sup.start_all(t0);
        sup.spawned(0, 5, t0);
        let acts = sup.tick(t0 + Duration::from_secs(5));
        assert_eq!(term_targets(&acts), vec![0]);
        sup.exited(
            5,
            ExitInfo::Killed { signal: 15 },
            t0 + Duration::from_secs(6),
        );
        assert_eq!(sup.state(0), ServiceState::Backoff);
    }
}
