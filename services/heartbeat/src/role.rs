//! The role state machine of one controller: pure, no I/O, no clock.
//!
//! The daemon calls [`Machine::step`] with the time on its monotonic clock and one
//! [`Event`] (a tick, the completion of a disk read or write it was asked to do, a UDP
//! heartbeat from the peer, a witness answer, the result of an orchestration step, an
//! operator command) and carries out the [`Action`]s it gets back, reporting their
//! results as further events. The daemon ticks once per heartbeat interval. Everything
//! the machine knows about time comes from those `now` values; it never compares its
//! clock with the peer's. The clock must count time the machine was paused (Linux
//! `CLOCK_BOOTTIME`, or `CLOCK_MONOTONIC` under kvmclock): a resumed node has to see
//! that time passed to know that its own heartbeat is late.
//!
//! # Roles
//!
//! | role        | serves I/O | feeds watchdog        | leaves to                                       |
//! |-------------|------------|-----------------------|-------------------------------------------------|
//! | Starting    | no         | yes                   | Standby once its slot is written, its mailbox holds no pill (a pill for an earlier life is cleared), and the ownership record, the peer's slot and the peer's mailbox are read |
//! | Standby     | no         | yes                   | Promoting (peer dead on disk; peer asked to hand over; hand-over ack; witness grant in a partition); Maintenance |
//! | Promoting   | from its target step on | while its heartbeat is on time | Active; Demoting (a step failed); Standby (aborted before the ownership write) |
//! | Active      | yes        | while its heartbeat is on time | Demoting (planned switchover)                       |
//! | Demoting    | until `target demote` succeeds | while its heartbeat is on time | Standby                               |
//! | Maintenance | no         | yes                   | Standby (operator)                               |
//! | Fenced      | not after reset | **no**           | nothing: the watchdog resets the machine         |
//!
//! Every role but Fenced goes to Fenced at once on any of DESIGN.md §5's triggers: its
//! own heartbeat write failed or was late (io_timeout), a poison pill in its mailbox
//! (Starting clears it instead: it is for an earlier life), a disk write it issued hung
//! past io_timeout, or — while it holds a term — a higher term or another owner seen on
//! the disk, from the peer or from the witness.
//!
//! # Promotion and demotion
//!
//! ```text
//! Standby ──peer dead / witness grant──▶ write pill ─▶ msgwait ─┐
//!    │──hand-over request──▶ await ack ──(timeout)──▶ write pill┘
//!    │                           │ack                           │
//!    └──hand-over ack (yield)────┴──────▶ write ownership (term+1) ─▶ target promote
//!                                          ─▶ takeover acquire ─▶ Active
//! Active ─switchover─▶ write request ─▶ takeover release ─▶ target demote ─▶ write ack ─▶ Standby
//! ```
//!
//! A failed promotion unwinds through Demoting (takeover release, target demote) to
//! Standby; a step whose outcome is unknown (a timed-out `target promote`, a failed
//! `target demote`, a hung disk write) self-fences, because only a reset makes it sure.
//!
//! # Who is preferred when both are healthy
//!
//! At first boot, or after both controllers restarted, both are Standby and alive. The
//! owner in the ownership record (controller 1 if nobody ever owned the array) is
//! preferred: the other one writes a hand-over ack into its mailbox ("I am not serving
//! and will not without fencing you"), and the preferred node promotes on that ack
//! without a poison pill. No node ever promotes merely because it is preferred: that
//! would race with a peer that is promoting at the same moment. A yield and the owner's
//! own switchover ack can cross; `may_take_ack` says who wins, and why the yielder
//! reads back the peer's mailbox to remember its promise across restarts.

use crate::timing::Timing;
use std::time::Duration;

/// A reading of the node's monotonic clock (time since an arbitrary origin).
pub type Mono = Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Starting,
    Standby,
    Promoting,
    Active,
    Demoting,
    Fenced,
    Maintenance,
}

impl Role {
    /// The code carried in the disk slot and the UDP heartbeat.
    pub fn code(self) -> u8 {
        match self {
            Role::Starting => 0,
            Role::Standby => 1,
            Role::Promoting => 2,
            Role::Active => 3,
            Role::Demoting => 4,
            Role::Fenced => 5,
            Role::Maintenance => 6,
        }
    }
}

/// What a mailbox holds. Only the peer writes a node's mailbox, except that a starting
/// node clears a pill meant for its previous life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mail {
    Empty,
    /// "You are fenced": written by a peer about to take `term`.
    PoisonPill {
        term: u64,
    },
    /// "I, the active of `term`, want you to take over."
    HandOverRequest {
        term: u64,
    },
    /// "I am not serving and will not in `term` without fencing you first": the end of a
    /// planned switchover, or a healthy standby yielding to the preferred node.
    HandOverAck {
        term: u64,
    },
}

/// A node's heartbeat slot as written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Grows at every start of the daemon: a restarted peer is a new writer.
    pub incarnation: u64,
    /// Grows with every write of one incarnation: the liveness signal.
    pub seq: u64,
    pub role: Role,
    /// The term the writer holds, or the highest it knows when it holds none.
    pub term: u64,
}

/// The ownership record (star-disk's `Ownership`, without `peer_healthy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub term: u64,
    /// 1 or 2; 0 while nobody owns the array.
    pub owner: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WitnessAnswer {
    Granted {
        term: u64,
    },
    /// Refused; the witness's current term.
    Refused {
        term: u64,
    },
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    TargetPromote,
    TargetDemote,
    TakeoverAcquire,
    TakeoverRelease,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepResult {
    Ok,
    Failed,
    /// The service did not answer in time: the outcome is unknown.
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// Run on the active: hand the array to the standby.
    Switchover,
    MaintenanceOn,
    MaintenanceOff,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// Once per heartbeat interval.
    Tick,
    HeartbeatWritten {
        latency: Duration,
    },
    HeartbeatWriteFailed,
    /// None: the slot was never written, or is torn or corrupt. Both count as "no
    /// progress", never as proof of death by themselves.
    PeerSlotRead(Option<Slot>),
    PeerSlotReadFailed,
    /// Our own mailbox. A torn block reads as `Empty`.
    MailboxRead(Mail),
    MailboxReadFailed,
    /// The peer's mailbox, which only we write: what we last told the peer, even in an
    /// earlier life.
    PeerMailboxRead(Mail),
    PeerMailboxReadFailed,
    OwnershipRead(Option<Owner>),
    OwnershipReadFailed,
    /// The result of the last `WriteMailbox` (ok: written and read back).
    MailboxWritten {
        ok: bool,
    },
    OwnershipWritten {
        ok: bool,
    },
    /// An authenticated UDP heartbeat from the peer.
    NetHeartbeat {
        role: Role,
        term: u64,
        incarnation: u64,
    },
    Witness(WitnessAnswer),
    StepDone {
        step: Step,
        result: StepResult,
    },
    Operator(Operator),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    WriteHeartbeat(Slot),
    ReadPeerSlot,
    ReadMailbox,
    ReadPeerMailbox,
    ReadOwnership,
    WriteMailbox {
        node: u8,
        mail: Mail,
    },
    WriteOwnership {
        term: u64,
        owner: u8,
        peer_healthy: bool,
    },
    SendNetHeartbeat {
        role: Role,
        term: u64,
        incarnation: u64,
    },
    AskWitness {
        term: u64,
    },
    TargetPromote {
        term: u64,
    },
    TargetDemote,
    TakeoverAcquire,
    TakeoverRelease,
    /// Tell init the daemon is alive (WATCHDOG=1); init feeds the hardware watchdog.
    FeedWatchdog,
    /// Stop feeding the watchdog for good: the machine resets within its timeout.
    SelfFence,
    Log(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    /// 1 or 2.
    pub me: u8,
    pub timing: Timing,
    /// Whether a witness is configured: without one, a partition is never resolved by a
    /// failover (both sides alive on disk means nobody needs fencing).
    pub witness: bool,
}

impl Config {
    fn peer(&self) -> u8 {
        3 - self.me
    }
}

/// What the machine is waiting for inside its role. `since` is when the step began,
/// for its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Idle,
    /// Starting: writing `Empty` over a pill meant for our previous life.
    Clear {
        since: Mono,
    },
    /// Standby: writing a hand-over ack into the preferred peer's mailbox.
    Yield {
        since: Mono,
    },
    /// Promoting: the active asked us to take over; waiting for its ack.
    AwaitAck {
        since: Mono,
    },
    Pill {
        since: Mono,
    },
    MsgWait {
        pill_at: Mono,
    },
    Ownership {
        since: Mono,
    },
    Target {
        since: Mono,
    },
    Takeover {
        since: Mono,
    },
    /// Demoting (planned): writing the hand-over request.
    Request {
        since: Mono,
    },
    Release {
        since: Mono,
    },
    Demote {
        since: Mono,
    },
    /// Demoting (planned): writing the hand-over ack.
    Ack {
        since: Mono,
    },
}

/// What we last saw of the peer's disk slot, for the liveness judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PeerDisk {
    /// The last slot read (None: never written or unreadable).
    slot: Option<Slot>,
    /// When we first saw this (incarnation, seq): the completion of that read, the
    /// latest moment the value can have been written.
    since: Mono,
    /// The issue time of the latest read that found the same value: the disk held it at
    /// least until then.
    still_at: Option<Mono>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Machine {
    cfg: Config,
    incarnation: u64,
    role: Role,
    phase: Phase,
    /// Whether Demoting ends with a hand-over ack (planned switchover).
    planned: bool,
    /// The highest term seen on the disk or from the peer.
    known_term: u64,
    /// The term this node took (from its ownership write until it is Standby again).
    held: u64,
    /// The ownership term when the current promotion began: if the record moves under
    /// us, someone else is promoting and we stop.
    base: u64,
    /// The term the current promotion takes: fixed when it begins, above every term
    /// seen then.
    next: u64,
    peer_alive_at_promotion: bool,
    holds_target: bool,
    holds_takeover: bool,
    seq: u64,
    hb_pending: Option<Mono>,
    hb_ok: Option<Mono>,
    peer_read: Option<Mono>,
    mailbox_read: Option<Mono>,
    peer_mailbox_read: Option<Mono>,
    ownership_read: Option<Mono>,
    peer: Option<PeerDisk>,
    /// What the peer's mailbox held at our last read (issued after our last write to it).
    told: Option<Mail>,
    /// Our last write to the peer's mailbox was issued then: reads issued earlier are
    /// stale.
    told_at: Option<Mono>,
    mail: Option<Mail>,
    /// Mailbox reads issued at or before this may predate our own clear: ignored.
    mail_valid_after: Option<Mono>,
    ownership: Option<Option<Owner>>,
    /// Ownership reads issued at or before this may predate our own write: ignored.
    ownership_valid_after: Option<Mono>,
    /// Last UDP heartbeat: when, the peer's role and term.
    net: Option<(Mono, Role, u64)>,
    witness_granted: Option<u64>,
    witness_refused: Option<u64>,
    yielded_at: Option<Mono>,
    /// The term in which we yielded to the preferred peer: our promise not to serve in
    /// it without fencing the peer first.
    yielded_in: Option<u64>,
}

impl Machine {
    /// A freshly started daemon. `incarnation` must grow at every start (it is kept on
    /// the local config partition), so the peer tells a restart from a stuck writer.
    pub fn new(cfg: Config, incarnation: u64) -> Machine {
        Machine {
            cfg,
            incarnation,
            role: Role::Starting,
            phase: Phase::Idle,
            planned: false,
            known_term: 0,
            held: 0,
            base: 0,
            next: 0,
            peer_alive_at_promotion: false,
            holds_target: false,
            holds_takeover: false,
            seq: 0,
            hb_pending: None,
            hb_ok: None,
            peer_read: None,
            mailbox_read: None,
            peer_mailbox_read: None,
            ownership_read: None,
            peer: None,
            told: None,
            told_at: None,
            mail: None,
            mail_valid_after: None,
            ownership: None,
            ownership_valid_after: None,
            net: None,
            witness_granted: None,
            witness_refused: None,
            yielded_at: None,
            yielded_in: None,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The term this node holds (0 when it holds none).
    pub fn held_term(&self) -> u64 {
        self.held
    }

    /// The highest term this node has seen.
    pub fn known_term(&self) -> u64 {
        self.known_term.max(self.held)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// When this node's last heartbeat write completed, for `star status`.
    pub fn own_write_at(&self) -> Option<Mono> {
        self.hb_ok
    }

    /// Since when the peer's disk slot has shown its current value (on this node's
    /// clock): the peer is judged dead once that lasts peer_dead. `None` before a slot
    /// was read.
    pub fn peer_slot_unchanged_since(&self) -> Option<Mono> {
        self.peer.map(|p| p.since)
    }

    /// Feeds one event; returns what to do, in order.
    pub fn step(&mut self, now: Mono, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        // Fenced is terminal: the machine is about to be reset, and nothing it could
        // still do (not even a heartbeat, which would make it look alive) is wanted.
        if self.role == Role::Fenced {
            return out;
        }
        let tick = event == Event::Tick;
        self.learn(now, event, &mut out);
        self.decide(now, &mut out);
        if tick && self.role != Role::Fenced {
            self.tick_io(now, &mut out);
            // Last, after every check of this step passed: a machine that stops
            // stepping (hung, paused) stops feeding by itself.
            out.push(Action::FeedWatchdog);
        }
        out
    }

    // --- knowledge --------------------------------------------------------------------

    fn learn(&mut self, now: Mono, event: Event, out: &mut Vec<Action>) {
        let t = self.cfg.timing;
        match event {
            Event::Tick => {}
            Event::HeartbeatWritten { latency } => {
                // When the write really completed: its issue time plus its latency, not
                // the time this event is handled. A completion queued before a pause is
                // handled after it; counting it as fresh would let a resumed node feed
                // its watchdog once more before noticing how late it is.
                let completed = self
                    .hb_pending
                    .take()
                    .map_or(now, |issued| (issued + latency).min(now));
                if latency > t.io_timeout {
                    // Completed, but too late to have counted: the peer may already
                    // have judged us dead. SBD's and o2hb's rule.
                    self.fence(
                        out,
                        format!(
                            "own heartbeat write took {} ms, over io_timeout {} ms",
                            latency.as_millis(),
                            t.io_timeout.as_millis()
                        ),
                    );
                } else {
                    self.hb_ok = Some(completed);
                }
            }
            Event::HeartbeatWriteFailed => {
                self.hb_pending = None;
                self.fence(out, "own heartbeat write failed".into());
            }
            Event::PeerSlotRead(slot) => {
                let issued = self.peer_read.take().unwrap_or(now);
                let id = slot.map(|s| (s.incarnation, s.seq));
                match &mut self.peer {
                    Some(p) if p.slot.map(|s| (s.incarnation, s.seq)) == id => {
                        p.still_at = Some(issued);
                        p.slot = slot;
                    }
                    _ => {
                        self.peer = Some(PeerDisk {
                            slot,
                            since: now,
                            still_at: None,
                        })
                    }
                }
                if let Some(s) = slot {
                    self.known_term = self.known_term.max(s.term);
                }
            }
            Event::PeerSlotReadFailed => self.peer_read = None,
            Event::MailboxRead(mail) => {
                let issued = self.mailbox_read.take().unwrap_or(now);
                if self.mail_valid_after.is_none_or(|v| issued > v) {
                    self.mail = Some(mail);
                }
            }
            Event::MailboxReadFailed => self.mailbox_read = None,
            Event::PeerMailboxRead(mail) => {
                let issued = self.peer_mailbox_read.take().unwrap_or(now);
                if self.told_at.is_none_or(|at| issued > at) {
                    self.told = Some(mail);
                }
            }
            Event::PeerMailboxReadFailed => self.peer_mailbox_read = None,
            Event::OwnershipRead(o) => {
                let issued = self.ownership_read.take().unwrap_or(now);
                if self.ownership_valid_after.is_none_or(|v| issued > v) {
                    self.ownership = Some(o);
                    if let Some(o) = o {
                        self.known_term = self.known_term.max(o.term);
                    }
                }
            }
            Event::OwnershipReadFailed => self.ownership_read = None,
            Event::MailboxWritten { ok } => self.mailbox_written(now, ok, out),
            Event::OwnershipWritten { ok } => self.ownership_written(now, ok, out),
            Event::NetHeartbeat { role, term, .. } => {
                self.net = Some((now, role, term));
                self.known_term = self.known_term.max(term);
            }
            Event::Witness(answer) => match answer {
                WitnessAnswer::Granted { term } => self.witness_granted = Some(term),
                WitnessAnswer::Refused { term } => self.witness_refused = Some(term),
                WitnessAnswer::Unreachable => {}
            },
            Event::StepDone { step, result } => self.step_done(now, step, result, out),
            Event::Operator(op) => self.operator(now, op, out),
        }
    }

    fn mailbox_written(&mut self, now: Mono, ok: bool, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Clear { .. } => {
                self.phase = Phase::Idle;
                if ok {
                    // The pill we read is gone; only reads issued from now on count.
                    self.mail = None;
                    self.mail_valid_after = Some(now);
                }
            }
            Phase::Yield { .. } => {
                // `yielded_in` was set when the write was issued: from then on the peer
                // may read it, whether or not we hear that it landed.
                self.phase = Phase::Idle;
                self.yielded_at = Some(now);
            }
            Phase::Pill { .. } => {
                if ok {
                    // msgwait counts from the moment the pill is on the disk (written
                    // and read back): before that the peer could not have seen it.
                    self.phase = Phase::MsgWait { pill_at: now };
                    out.push(Action::Log(format!(
                        "poison pill written to controller {}; waiting msgwait {} ms",
                        self.cfg.peer(),
                        self.cfg.timing.msgwait().as_millis()
                    )));
                } else {
                    self.back_to_standby(out, "could not write the poison pill".into());
                }
            }
            Phase::Request { .. } => {
                if ok {
                    // Release the address first and LIO second: the reverse of promotion,
                    // so the address never points at a controller whose ports are down
                    // longer than needed.
                    out.push(Action::TakeoverRelease);
                    self.phase = Phase::Release { since: now };
                } else {
                    // Nothing changed yet: stay active; the operator sees the log.
                    self.role = Role::Active;
                    self.planned = false;
                    self.phase = Phase::Idle;
                    out.push(Action::Log(
                        "switchover abandoned: could not write the hand-over request".into(),
                    ));
                }
            }
            Phase::Ack { .. } => {
                // Either way we are done: without the ack the peer falls back to the pill
                // after handover_wait, and we obey it.
                self.become_standby(out, "switchover done: now standby".into());
            }
            _ => {}
        }
    }

    fn ownership_written(&mut self, now: Mono, ok: bool, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Ownership { .. }) {
            return;
        }
        let term = self.next_term();
        if !ok {
            self.back_to_standby(out, format!("could not write ownership term {term}"));
            return;
        }
        // The term is ours from here on, and before LIO serves a single write: every
        // reader (the peer, `star status`) attributes this term to us.
        self.held = term;
        self.known_term = self.known_term.max(term);
        self.ownership = Some(Some(Owner {
            term,
            owner: self.cfg.me,
        }));
        self.ownership_valid_after = Some(now);
        self.holds_target = true;
        out.push(Action::TargetPromote { term });
        self.phase = Phase::Target { since: now };
    }

    fn step_done(&mut self, now: Mono, step: Step, result: StepResult, out: &mut Vec<Action>) {
        match (self.phase, step) {
            (Phase::Target { .. }, Step::TargetPromote) => match result {
                StepResult::Ok => {
                    self.holds_takeover = true;
                    out.push(Action::TakeoverAcquire);
                    self.phase = Phase::Takeover { since: now };
                }
                // star-target reports a failure after rolling back; demote to be sure
                // and give the array back to the rules (the peer is fenced, so we will
                // try again, with a new pill and msgwait).
                StepResult::Failed => self.unwind(now, out, "target promote failed"),
                // Unknown: LIO may be serving. Only a reset is certain.
                StepResult::TimedOut => self.fence(out, "target promote timed out".into()),
            },
            (Phase::Takeover { .. }, Step::TakeoverAcquire) => match result {
                StepResult::Ok => {
                    self.role = Role::Active;
                    self.phase = Phase::Idle;
                    out.push(Action::Log(format!("active in term {}", self.held)));
                }
                // The address is not ours: serving without it helps nobody, and a
                // clean demotion lets the peer (or our next attempt) try.
                _ => self.unwind(now, out, "takeover acquire failed"),
            },
            (Phase::Release { .. }, Step::TakeoverRelease) => {
                // Even a failed release continues: an address left behind is a routing
                // problem, not a data one; LIO must stop regardless.
                self.holds_takeover = false;
                out.push(Action::TargetDemote);
                self.phase = Phase::Demote { since: now };
            }
            (Phase::Demote { .. }, Step::TargetDemote) => match result {
                StepResult::Ok => {
                    self.holds_target = false;
                    if self.planned {
                        self.tell(now, Mail::HandOverAck { term: self.held }, out);
                        self.phase = Phase::Ack { since: now };
                    } else {
                        self.become_standby(out, "demoted: now standby".into());
                    }
                }
                _ => self.fence(out, "target demote did not succeed".into()),
            },
            _ => {}
        }
    }

    fn operator(&mut self, now: Mono, op: Operator, out: &mut Vec<Action>) {
        match op {
            Operator::Switchover => {
                if self.role != Role::Active || self.phase != Phase::Idle {
                    out.push(Action::Log(format!(
                        "switchover refused: this controller is {:?}; run it on the active",
                        self.role
                    )));
                } else if !self.peer_alive() || self.peer_role() != Some(Role::Standby) {
                    out.push(Action::Log(
                        "switchover refused: the peer is not a healthy standby".into(),
                    ));
                } else {
                    self.tell(now, Mail::HandOverRequest { term: self.held }, out);
                    self.role = Role::Demoting;
                    self.planned = true;
                    self.phase = Phase::Request { since: now };
                }
            }
            Operator::MaintenanceOn => match (self.role, self.phase) {
                (Role::Starting | Role::Standby, Phase::Idle) => {
                    self.role = Role::Maintenance;
                    out.push(Action::Log("maintenance: no automatic promotion".into()));
                }
                _ => out.push(Action::Log(format!(
                    "maintenance refused while {:?}: switch over first, or put the standby \
                     in maintenance to prevent a failover",
                    self.role
                ))),
            },
            Operator::MaintenanceOff => {
                if self.role == Role::Maintenance {
                    self.role = Role::Standby;
                    out.push(Action::Log("maintenance off: standby".into()));
                }
            }
        }
    }

    // --- rules --------------------------------------------------------------------------

    fn decide(&mut self, now: Mono, out: &mut Vec<Action>) {
        if self.role == Role::Fenced {
            return;
        }
        let t = self.cfg.timing;
        // 1. Our own heartbeat. A write that hangs may land at any later time, and a
        // node that did not write for an interval plus io_timeout was paused or starved:
        // in both cases the peer may already count us dead and be fencing us, so we
        // must not serve another write. This comes first so that a resumed node acts on
        // nothing else before it notices.
        if let Some(at) = self.hb_pending {
            if now.saturating_sub(at) > t.io_timeout {
                return self.fence(
                    out,
                    format!(
                        "own heartbeat write pending for {} ms, over io_timeout",
                        now.saturating_sub(at).as_millis()
                    ),
                );
            }
        }
        if let Some(ok) = self.hb_ok {
            if now.saturating_sub(ok) > t.own_write_deadline() {
                return self.fence(
                    out,
                    format!(
                        "no heartbeat write completed for {} ms: this node was paused or starved",
                        now.saturating_sub(ok).as_millis()
                    ),
                );
            }
        }
        // 2. Any disk write of ours hanging past io_timeout: the same reasoning (it may
        // land after the peer has taken over, a pill or an ownership record from the
        // past).
        if let Some(since) = self.disk_write_since() {
            if now.saturating_sub(since) > t.io_timeout {
                return self.fence(out, "a disk write hung past io_timeout".into());
            }
        }
        // 3. A poison pill: the peer is taking over and counts on us being gone after
        // msgwait. A starting node has never served in this life: it clears the pill
        // (it was meant for the previous one) instead of resetting again.
        if let Some(Mail::PoisonPill { term }) = self.mail {
            if self.role == Role::Starting {
                if self.phase == Phase::Idle {
                    out.push(Action::WriteMailbox {
                        node: self.cfg.me,
                        mail: Mail::Empty,
                    });
                    self.phase = Phase::Clear { since: now };
                }
            } else {
                return self.fence(out, format!("poison pill for term {term} in our mailbox"));
            }
        }
        // 4. A higher term, or another owner, while we hold one: someone else took the
        // array, so we must not write another block.
        if self.held > 0 {
            if let Some(reason) = self.term_conflict() {
                return self.fence(out, reason);
            }
        }
        self.timeouts(now, out);
        if self.role == Role::Fenced {
            return;
        }
        self.progress(now, out);
    }

    fn term_conflict(&self) -> Option<String> {
        let held = self.held;
        if let Some(Some(o)) = self.ownership {
            if (o.term, o.owner) != (held, self.cfg.me) {
                return Some(format!(
                    "ownership record says term {} owner {} while we hold term {held}",
                    o.term, o.owner
                ));
            }
        }
        if self.known_term > held {
            return Some(format!(
                "term {} seen while we hold term {held}",
                self.known_term
            ));
        }
        if let Some(w) = self.witness_refused.filter(|&w| w > held) {
            return Some(format!(
                "the witness granted term {w} to the peer while we hold term {held}"
            ));
        }
        None
    }

    fn timeouts(&mut self, now: Mono, out: &mut Vec<Action>) {
        let t = self.cfg.timing;
        let over = |since: Mono, limit: Duration| now.saturating_sub(since) > limit;
        match self.phase {
            Phase::Target { since } if over(since, t.steps.target) => {
                self.fence(out, "target promote timed out".into())
            }
            Phase::Takeover { since } if over(since, t.steps.takeover) => {
                self.unwind(now, out, "takeover acquire timed out")
            }
            Phase::Release { since } if over(since, t.steps.takeover) => {
                self.holds_takeover = false;
                out.push(Action::TargetDemote);
                self.phase = Phase::Demote { since: now };
            }
            Phase::Demote { since } if over(since, t.steps.target) => {
                self.fence(out, "target demote timed out".into())
            }
            Phase::AwaitAck { since } if over(since, t.handover_wait()) => {
                // The active asked, then did not finish: it may be stuck mid-demotion,
                // so take the safe path.
                out.push(Action::Log(
                    "no hand-over ack in time: fencing the peer instead".into(),
                ));
                self.write_pill(now, out);
            }
            Phase::MsgWait { pill_at } if now.saturating_sub(pill_at) >= t.msgwait() => {
                self.write_ownership(now, out);
            }
            _ => {}
        }
    }

    fn progress(&mut self, now: Mono, out: &mut Vec<Action>) {
        match self.role {
            Role::Starting => {
                let ready = self.hb_ok.is_some()
                    && self.ownership.is_some()
                    && self.peer.is_some()
                    && self.told.is_some()
                    && matches!(self.mail, Some(m) if !matches!(m, Mail::PoisonPill { .. }));
                if ready && self.phase == Phase::Idle {
                    self.role = Role::Standby;
                    out.push(Action::Log("started: standby".into()));
                }
            }
            Role::Standby if self.phase == Phase::Idle => self.standby(now, out),
            Role::Promoting => {
                // While we wait (for an ack, or msgwait), the peer's hand-over ack proves
                // it stopped serving: no need to wait out msgwait.
                if let Phase::AwaitAck { .. } | Phase::MsgWait { .. } = self.phase {
                    if self.may_take_ack(self.base) {
                        out.push(Action::Log("hand-over acknowledged on disk".into()));
                        self.write_ownership(now, out);
                    } else if self.record_term() != self.base {
                        self.back_to_standby(
                            out,
                            format!(
                                "the ownership record moved to term {} during our promotion",
                                self.record_term()
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// The standby's promotion triggers, in the order they are trusted.
    fn standby(&mut self, now: Mono, out: &mut Vec<Action>) {
        let Some(record) = self.ownership else {
            return;
        };
        let base = record.map_or(0, |o| o.term);
        let owner = record.map_or(0, |o| o.owner);
        // (fast path) The peer acknowledged on disk that it is not serving in the
        // current term: nothing to fence (see `may_take_ack`).
        if self.may_take_ack(base) && self.known_term == base {
            self.start_promotion(base, out, "the peer handed over");
            return self.write_ownership(now, out);
        }
        // (a) The active of the current term asked us to take over: wait for its ack.
        if self.mail == Some(Mail::HandOverRequest { term: base }) && owner == self.cfg.peer() {
            self.start_promotion(base, out, "the peer asked to hand over");
            self.phase = Phase::AwaitAck { since: now };
            return;
        }
        // (a) The peer's slot stopped changing for peer_dead on our clock.
        if self.peer_dead() {
            self.start_promotion(base, out, "the peer's heartbeat stopped");
            return self.write_pill(now, out);
        }
        // (a) Partition: the peer is alive on disk but silent on the interconnect, and
        // the witness gave us the next term (it refuses while the active is connected
        // to it, so a plain interconnect cut changes nothing).
        if self.partitioned(now) && self.witness_granted == Some(base.max(self.known_term) + 1) {
            self.start_promotion(base, out, "the witness granted us the next term");
            return self.write_pill(now, out);
        }
        // Both healthy and nobody serving: yield to the preferred node.
        let preferred = if owner == 0 { 1 } else { owner };
        let peer_idle = self.peer_alive()
            && matches!(self.peer_role(), Some(Role::Standby))
            && owner != self.cfg.me;
        let recently = self
            .yielded_at
            .is_some_and(|at| now.saturating_sub(at) < self.cfg.timing.peer_dead);
        if preferred == self.cfg.peer() && peer_idle && !recently && self.known_term == base {
            self.tell(now, Mail::HandOverAck { term: base }, out);
            self.yielded_in = Some(base);
            self.phase = Phase::Yield { since: now };
        }
    }

    /// Whether the peer's hand-over ack for `term` lets us promote without fencing.
    ///
    /// Acks can cross: the owner of a term finishing a switchover (its ack says "take
    /// it") while the other node, seeing it standby, yields to it (its ack says "you
    /// take it"). If both promoted on the other's ack there would be two owners of the
    /// next term; the model check found exactly that. So the owner of the term (the
    /// preferred node) may always take a yield, and the other node may take the
    /// owner's ack only if it has not yielded in this term — which it knows from its
    /// memory and, across its own restarts, from the peer's mailbox, which only it
    /// writes.
    fn may_take_ack(&self, term: u64) -> bool {
        if self.mail != Some(Mail::HandOverAck { term }) {
            return false;
        }
        let owner = self.ownership.flatten().filter(|o| o.term == term);
        let preferred = owner.map_or(1, |o| o.owner);
        if preferred == self.cfg.me {
            return true;
        }
        let yielded = self.yielded_in == Some(term)
            || self.told == Some(Mail::HandOverAck { term })
            || self.told.is_none();
        !yielded
    }

    // --- transitions --------------------------------------------------------------------

    fn start_promotion(&mut self, base: u64, out: &mut Vec<Action>, why: &str) {
        self.role = Role::Promoting;
        self.base = base;
        self.next = base.max(self.known_term) + 1;
        self.peer_alive_at_promotion = self.peer_alive();
        self.witness_granted = None;
        out.push(Action::Log(format!(
            "promoting to term {}: {why}",
            self.next_term()
        )));
    }

    fn next_term(&self) -> u64 {
        self.next
    }

    fn write_pill(&mut self, now: Mono, out: &mut Vec<Action>) {
        self.tell(
            now,
            Mail::PoisonPill {
                term: self.next_term(),
            },
            out,
        );
        self.phase = Phase::Pill { since: now };
    }

    fn write_ownership(&mut self, now: Mono, out: &mut Vec<Action>) {
        // The record must still hold the term we started from: if it moved, the peer
        // (or a late write) took a term meanwhile, and ours would not be the only one.
        if self.record_term() != self.base || self.known_term >= self.next {
            return self.back_to_standby(
                out,
                format!(
                    "the ownership record moved (term {}, highest seen {})",
                    self.record_term(),
                    self.known_term
                ),
            );
        }
        out.push(Action::WriteOwnership {
            term: self.next_term(),
            owner: self.cfg.me,
            peer_healthy: self.peer_alive_at_promotion,
        });
        self.phase = Phase::Ownership { since: now };
    }

    /// A promotion step failed after LIO may have started: take the address back, stop
    /// LIO, then stand by.
    fn unwind(&mut self, now: Mono, out: &mut Vec<Action>, why: &str) {
        out.push(Action::Log(format!("{why}: demoting")));
        self.role = Role::Demoting;
        self.planned = false;
        if self.holds_takeover {
            out.push(Action::TakeoverRelease);
            self.holds_takeover = false;
        }
        out.push(Action::TargetDemote);
        self.phase = Phase::Demote { since: now };
    }

    /// Abandons a promotion before the ownership record was written: nothing to undo.
    fn back_to_standby(&mut self, out: &mut Vec<Action>, why: String) {
        out.push(Action::Log(format!("promotion abandoned: {why}")));
        self.role = Role::Standby;
        self.phase = Phase::Idle;
    }

    fn become_standby(&mut self, out: &mut Vec<Action>, why: String) {
        out.push(Action::Log(why));
        self.role = Role::Standby;
        self.phase = Phase::Idle;
        self.planned = false;
        self.known_term = self.known_term.max(self.held);
        self.held = 0;
    }

    /// Every write to the peer's mailbox goes through here, so that reads of it issued
    /// before the write are not mistaken for its current content.
    fn tell(&mut self, now: Mono, mail: Mail, out: &mut Vec<Action>) {
        out.push(Action::WriteMailbox {
            node: self.cfg.peer(),
            mail,
        });
        self.told = None;
        self.told_at = Some(now);
    }

    fn fence(&mut self, out: &mut Vec<Action>, why: String) {
        // Stop feeding first: whatever follows is best effort; the reset is the
        // guarantee. Then LIO (writes), then the address.
        out.push(Action::SelfFence);
        if self.holds_target {
            out.push(Action::TargetDemote);
        }
        if self.holds_takeover {
            out.push(Action::TakeoverRelease);
        }
        out.push(Action::Log(format!("self-fencing: {why}")));
        self.role = Role::Fenced;
        self.phase = Phase::Idle;
    }

    // --- I/O of a tick ------------------------------------------------------------------

    fn tick_io(&mut self, now: Mono, out: &mut Vec<Action>) {
        if self.hb_pending.is_none() {
            self.seq += 1;
            out.push(Action::WriteHeartbeat(Slot {
                incarnation: self.incarnation,
                seq: self.seq,
                role: self.role,
                term: self.known_term(),
            }));
            self.hb_pending = Some(now);
        }
        // One read of each kind at a time: a stalled disk does not pile up requests,
        // and the issue time of each read is known (see `PeerDisk`).
        if self.peer_read.is_none() {
            out.push(Action::ReadPeerSlot);
            self.peer_read = Some(now);
        }
        if self.mailbox_read.is_none() {
            out.push(Action::ReadMailbox);
            self.mailbox_read = Some(now);
        }
        if self.peer_mailbox_read.is_none() {
            out.push(Action::ReadPeerMailbox);
            self.peer_mailbox_read = Some(now);
        }
        if self.ownership_read.is_none() {
            out.push(Action::ReadOwnership);
            self.ownership_read = Some(now);
        }
        out.push(Action::SendNetHeartbeat {
            role: self.role,
            term: self.known_term(),
            incarnation: self.incarnation,
        });
        // The active keeps its witness lease renewed at every tick, partition or not: the
        // witness then knows the owner is alive when a standby that lost the interconnect
        // claims, and refuses it (ties go to the owner) instead of starting an unneeded
        // failover. A standby asks only in a partition. An unreachable witness changes
        // nothing for either: a dead witness never causes anything itself.
        if self.cfg.witness && self.phase == Phase::Idle {
            match self.role {
                // Renew: a refusal naming a higher term fences us (rule 4).
                Role::Active => out.push(Action::AskWitness { term: self.held }),
                Role::Standby if !self.partitioned(now) => {}
                Role::Standby if self.peer_role() == Some(Role::Active) => {
                    let base = self.record_term();
                    out.push(Action::AskWitness {
                        term: base.max(self.known_term) + 1,
                    })
                }
                _ => {}
            }
        }
    }

    // --- views --------------------------------------------------------------------------

    fn disk_write_since(&self) -> Option<Mono> {
        match self.phase {
            Phase::Clear { since }
            | Phase::Yield { since }
            | Phase::Pill { since }
            | Phase::Ownership { since }
            | Phase::Request { since }
            | Phase::Ack { since } => Some(since),
            _ => None,
        }
    }

    /// The peer's slot held the same (incarnation, seq) from `since` (when we first saw
    /// it) until at least the issue time of our latest read: if that span reaches
    /// peer_dead, the peer wrote nothing for peer_dead. Reads that were merely delayed
    /// (our own pause, a slow read) never stretch the span, because it is measured
    /// from the first sighting to a read issued later, both on our clock.
    fn peer_dead(&self) -> bool {
        self.peer.is_some_and(|p| {
            p.still_at
                .is_some_and(|at| at.saturating_sub(p.since) >= self.cfg.timing.peer_dead)
        })
    }

    fn peer_alive(&self) -> bool {
        self.peer.is_some_and(|p| p.slot.is_some()) && !self.peer_dead()
    }

    fn peer_role(&self) -> Option<Role> {
        self.peer.and_then(|p| p.slot).map(|s| s.role)
    }

    fn record_term(&self) -> u64 {
        self.ownership.flatten().map_or(0, |o| o.term)
    }

    /// The peer is alive on disk but we have not heard it on the interconnect for
    /// peer_dead.
    fn partitioned(&self, now: Mono) -> bool {
        let silent = self
            .net
            .is_none_or(|(at, _, _)| now.saturating_sub(at) >= self.cfg.timing.peer_dead);
        silent && self.peer_alive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::StepTimeouts;

    const S: Duration = Duration::from_secs(1);

    fn cfg(me: u8) -> Config {
        Config {
            me,
            timing: Timing {
                heartbeat_interval: S,
                io_timeout: S,
                peer_dead: 4 * S,
                watchdog: 4 * S,
                steps: StepTimeouts {
                    target: S,
                    takeover: S,
                },
            },
            witness: true,
        }
    }

    fn slot(role: Role, seq: u64, term: u64) -> Option<Slot> {
        Some(Slot {
            incarnation: 1,
            seq,
            role,
            term,
        })
    }

    /// A tiny driver: answers the machine's I/O from a fixed world, one tick per second.
    struct Drive {
        m: Machine,
        now: Mono,
        peer: Option<Slot>,
        mail: Mail,
        /// The peer's mailbox.
        told: Mail,
        owner: Option<Owner>,
        log: Vec<Action>,
    }

    impl Drive {
        fn new(me: u8) -> Drive {
            Drive {
                m: Machine::new(cfg(me), 1),
                now: Duration::ZERO,
                peer: slot(Role::Standby, 1, 0),
                mail: Mail::Empty,
                told: Mail::Empty,
                owner: None,
                log: Vec::new(),
            }
        }

        /// One tick, with every disk action answered at once and steps succeeding.
        fn tick(&mut self) -> Vec<Action> {
            let mut queue = vec![Event::Tick];
            let mut all = Vec::new();
            while let Some(ev) = queue.pop() {
                for a in self.m.step(self.now, ev) {
                    match &a {
                        Action::WriteHeartbeat(_) => queue.push(Event::HeartbeatWritten {
                            latency: Duration::ZERO,
                        }),
                        Action::ReadPeerSlot => queue.push(Event::PeerSlotRead(self.peer)),
                        Action::ReadMailbox => queue.push(Event::MailboxRead(self.mail)),
                        Action::ReadOwnership => queue.push(Event::OwnershipRead(self.owner)),
                        Action::ReadPeerMailbox => queue.push(Event::PeerMailboxRead(self.told)),
                        Action::WriteMailbox { node, mail } => {
                            if *node == self.m.cfg.me {
                                self.mail = *mail;
                            } else {
                                self.told = *mail;
                            }
                            queue.push(Event::MailboxWritten { ok: true })
                        }
                        Action::WriteOwnership { term, owner, .. } => {
                            self.owner = Some(Owner {
                                term: *term,
                                owner: *owner,
                            });
                            queue.push(Event::OwnershipWritten { ok: true })
                        }
                        Action::TargetPromote { .. } => queue.push(Event::StepDone {
                            step: Step::TargetPromote,
                            result: StepResult::Ok,
                        }),
                        Action::TakeoverAcquire => queue.push(Event::StepDone {
                            step: Step::TakeoverAcquire,
                            result: StepResult::Ok,
                        }),
                        Action::TakeoverRelease => queue.push(Event::StepDone {
                            step: Step::TakeoverRelease,
                            result: StepResult::Ok,
                        }),
                        Action::TargetDemote => queue.push(Event::StepDone {
                            step: Step::TargetDemote,
                            result: StepResult::Ok,
                        }),
                        _ => {}
                    }
                    all.push(a);
                }
            }
            self.log.extend(all.clone());
            self.now += S;
            all
        }

        fn ticks(&mut self, n: usize) {
            for _ in 0..n {
                self.tick();
            }
        }

        /// Node 2, Standby, with node 1 active in term 1 and beating.
        fn standby_of_active() -> Drive {
            let mut d = Drive::new(2);
            d.owner = Some(Owner { term: 1, owner: 1 });
            d.peer = slot(Role::Active, 1, 1);
            d.tick();
            d.tick();
            assert_eq!(d.m.role(), Role::Standby);
            d
        }

        /// Node 1 made active by its peer's yield.
        fn active() -> Drive {
            let mut d = Drive::new(1);
            d.ticks(2);
            assert_eq!(d.m.role(), Role::Standby);
            d.mail = Mail::HandOverAck { term: 0 };
            d.tick();
            assert_eq!(d.m.role(), Role::Active);
            assert_eq!(d.owner, Some(Owner { term: 1, owner: 1 }));
            d.peer = slot(Role::Standby, 2, 1);
            d
        }

        fn beat_peer(&mut self) {
            if let Some(s) = &mut self.peer {
                s.seq += 1;
            }
        }

        fn fenced(&self) -> bool {
            self.m.role() == Role::Fenced && self.log.contains(&Action::SelfFence)
        }
    }

    #[test]
    fn a_starting_node_clears_a_pill_from_its_previous_life() {
        let mut d = Drive::new(2);
        d.mail = Mail::PoisonPill { term: 3 };
        d.ticks(3);
        assert_eq!(d.mail, Mail::Empty);
        assert_eq!(d.m.role(), Role::Standby);
        assert!(!d.log.contains(&Action::SelfFence));
    }

    #[test]
    fn a_late_heartbeat_write_fences_at_once() {
        let mut d = Drive::active();
        let out = d.m.step(
            d.now,
            Event::HeartbeatWritten {
                latency: 2 * S, // io_timeout is 1 s
            },
        );
        assert_eq!(out[0], Action::SelfFence);
        assert!(out.contains(&Action::TargetDemote));
        assert_eq!(d.m.role(), Role::Fenced);
        // Terminal: no heartbeat, no watchdog feeding.
        assert!(d.m.step(d.now + S, Event::Tick).is_empty());
    }

    #[test]
    fn a_heartbeat_write_still_pending_past_io_timeout_fences() {
        let mut d = Drive::active();
        let t0 = d.now;
        let out = d.m.step(t0, Event::Tick);
        assert!(out.iter().any(|a| matches!(a, Action::WriteHeartbeat(_))));
        // No completion arrives.
        let out = d.m.step(t0 + S, Event::Tick);
        assert!(
            out.contains(&Action::FeedWatchdog),
            "1 s pending is still in time"
        );
        let out = d.m.step(t0 + 2 * S, Event::Tick);
        assert_eq!(out[0], Action::SelfFence);
        assert!(!out.contains(&Action::FeedWatchdog));
    }

    #[test]
    fn a_resumed_node_notices_its_pause_before_anything_else() {
        let mut d = Drive::active();
        // Paused for 5 s: the first event after resume is a step result, not a tick.
        d.now += 5 * S;
        let out = d.m.step(
            d.now,
            Event::StepDone {
                step: Step::TakeoverAcquire,
                result: StepResult::Ok,
            },
        );
        assert_eq!(out[0], Action::SelfFence);
    }

    #[test]
    fn a_failed_heartbeat_write_fences_even_a_standby() {
        let mut d = Drive::standby_of_active();
        let out = d.m.step(d.now, Event::HeartbeatWriteFailed);
        assert_eq!(out[0], Action::SelfFence);
        assert!(!out.contains(&Action::TargetDemote), "it held no target");
    }

    #[test]
    fn a_poison_pill_fences_the_active() {
        let mut d = Drive::active();
        d.mail = Mail::PoisonPill { term: 2 };
        d.tick();
        assert!(d.fenced());
    }

    #[test]
    fn a_higher_term_fences_the_active() {
        let mut d = Drive::active();
        d.tick();
        assert_eq!(d.m.role(), Role::Active);
        d.m.step(
            d.now,
            Event::NetHeartbeat {
                role: Role::Active,
                term: 2,
                incarnation: 1,
            },
        );
        assert_eq!(d.m.role(), Role::Fenced);

        let mut d = Drive::active();
        d.owner = Some(Owner { term: 2, owner: 2 });
        d.tick();
        assert!(d.fenced());

        let mut d = Drive::active();
        let out =
            d.m.step(d.now, Event::Witness(WitnessAnswer::Refused { term: 2 }));
        assert_eq!(out[0], Action::SelfFence);
    }

    #[test]
    fn the_same_term_from_the_peer_does_not_fence() {
        let mut d = Drive::active();
        d.m.step(
            d.now,
            Event::NetHeartbeat {
                role: Role::Standby,
                term: 1,
                incarnation: 1,
            },
        );
        d.ticks(3);
        assert_eq!(d.m.role(), Role::Active);
    }

    #[test]
    fn a_standby_promotes_only_after_peer_dead_pill_and_msgwait() {
        let mut d = Drive::standby_of_active();
        // The peer keeps beating: nothing happens, ever.
        for _ in 0..20 {
            d.beat_peer();
            d.tick();
            assert_eq!(d.m.role(), Role::Standby);
        }
        // The peer stops. First sighting of the frozen value at t0; dead once a read
        // issued ≥ t0 + peer_dead (4 s) still finds it.
        d.log.clear();
        let stopped = d.now;
        let mut pill_at = None;
        let mut active_at = None;
        for _ in 0..20 {
            d.tick();
            if pill_at.is_none() && matches!(d.mail, Mail::Empty) {
                let wrote_pill = d.log.iter().any(|a| {
                    matches!(
                        a,
                        Action::WriteMailbox {
                            node: 1,
                            mail: Mail::PoisonPill { term: 2 }
                        }
                    )
                });
                if wrote_pill {
                    pill_at = Some(d.now - S);
                }
            }
            if active_at.is_none() && d.m.role() == Role::Active {
                active_at = Some(d.now - S);
            }
        }
        let pill_at = pill_at.expect("a pill was written");
        // The frozen value was first seen at the tick of the peer's last beat.
        let first_seen = stopped - S;
        assert_eq!(
            pill_at - first_seen,
            4 * S,
            "peer_dead after the first sighting"
        );
        let active_at = active_at.expect("became active");
        assert_eq!(active_at - pill_at, 8 * S, "msgwait = 2 × watchdog");
        assert_eq!(d.owner, Some(Owner { term: 2, owner: 2 }));
        // The order: ownership record, then target, then address.
        let order: Vec<_> = d
            .log
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::WriteOwnership { .. }
                        | Action::TargetPromote { .. }
                        | Action::TakeoverAcquire
                )
            })
            .cloned()
            .collect();
        assert_eq!(
            order,
            vec![
                Action::WriteOwnership {
                    term: 2,
                    owner: 2,
                    peer_healthy: false
                },
                Action::TargetPromote { term: 2 },
                Action::TakeoverAcquire
            ]
        );
    }

    #[test]
    fn a_pause_of_the_standby_does_not_look_like_the_peers_death() {
        let mut d = Drive::standby_of_active();
        d.beat_peer();
        d.tick();
        // We are paused 10 s; the peer wrote meanwhile. The first read after resume
        // was issued before the pause, so it is the old value: not enough to judge.
        d.now += 10 * S;
        let out = d.m.step(d.now, Event::PeerSlotRead(d.peer));
        assert!(
            !out.iter().any(|a| matches!(a, Action::WriteMailbox { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn a_hand_over_request_then_ack_promotes_without_msgwait() {
        let mut d = Drive::standby_of_active();
        d.beat_peer();
        d.mail = Mail::HandOverRequest { term: 1 };
        d.tick();
        assert_eq!(d.m.role(), Role::Promoting);
        d.beat_peer();
        d.tick();
        assert_eq!(d.m.role(), Role::Promoting, "no ack yet: keeps waiting");
        d.mail = Mail::HandOverAck { term: 1 };
        d.beat_peer();
        d.tick();
        assert_eq!(d.m.role(), Role::Active);
        assert_eq!(d.owner, Some(Owner { term: 2, owner: 2 }));
        assert!(!d.log.iter().any(|a| matches!(
            a,
            Action::WriteMailbox {
                mail: Mail::PoisonPill { .. },
                ..
            }
        )));
    }

    #[test]
    fn a_request_without_ack_falls_back_to_the_pill() {
        let mut d = Drive::standby_of_active();
        d.mail = Mail::HandOverRequest { term: 1 };
        let mut pill = false;
        for _ in 0..10 {
            d.beat_peer();
            d.tick();
            pill |= d.log.iter().any(|a| {
                matches!(
                    a,
                    Action::WriteMailbox {
                        mail: Mail::PoisonPill { term: 2 },
                        ..
                    }
                )
            });
        }
        assert!(pill);
        assert_eq!(d.m.role(), Role::Promoting, "still waiting out msgwait");
    }

    #[test]
    fn a_stale_request_or_ack_is_ignored() {
        let mut d = Drive::standby_of_active();
        d.mail = Mail::HandOverAck { term: 0 };
        for _ in 0..10 {
            d.beat_peer();
            d.tick();
        }
        assert_eq!(d.m.role(), Role::Standby);
        d.mail = Mail::HandOverRequest { term: 0 };
        d.beat_peer();
        d.tick();
        assert_eq!(d.m.role(), Role::Standby);
    }

    #[test]
    fn the_planned_switchover_demotes_in_reverse_order_then_acks() {
        let mut d = Drive::active();
        d.tick();
        let out = d.m.step(d.now, Event::Operator(Operator::Switchover));
        assert_eq!(
            out,
            vec![Action::WriteMailbox {
                node: 2,
                mail: Mail::HandOverRequest { term: 1 }
            }]
        );
        assert_eq!(d.m.role(), Role::Demoting);
        let out = d.m.step(d.now, Event::MailboxWritten { ok: true });
        assert_eq!(out, vec![Action::TakeoverRelease]);
        let out = d.m.step(
            d.now,
            Event::StepDone {
                step: Step::TakeoverRelease,
                result: StepResult::Ok,
            },
        );
        assert_eq!(out, vec![Action::TargetDemote]);
        let out = d.m.step(
            d.now,
            Event::StepDone {
                step: Step::TargetDemote,
                result: StepResult::Ok,
            },
        );
        assert_eq!(
            out,
            vec![Action::WriteMailbox {
                node: 2,
                mail: Mail::HandOverAck { term: 1 }
            }]
        );
        d.m.step(d.now, Event::MailboxWritten { ok: true });
        assert_eq!(d.m.role(), Role::Standby);
        assert_eq!(d.m.held_term(), 0);
    }

    #[test]
    fn a_failed_target_demote_during_switchover_fences() {
        let mut d = Drive::active();
        d.tick();
        d.m.step(d.now, Event::Operator(Operator::Switchover));
        d.m.step(d.now, Event::MailboxWritten { ok: true });
        d.m.step(
            d.now,
            Event::StepDone {
                step: Step::TakeoverRelease,
                result: StepResult::Ok,
            },
        );
        let out = d.m.step(
            d.now,
            Event::StepDone {
                step: Step::TargetDemote,
                result: StepResult::Failed,
            },
        );
        assert_eq!(out[0], Action::SelfFence);
    }

    #[test]
    fn switchover_is_refused_without_a_healthy_standby() {
        let mut d = Drive::active();
        d.peer = slot(Role::Starting, 9, 1);
        d.tick();
        let out = d.m.step(d.now, Event::Operator(Operator::Switchover));
        assert!(matches!(&out[..], [Action::Log(l)] if l.contains("refused")));
        assert_eq!(d.m.role(), Role::Active);
    }

    #[test]
    fn promotion_steps_fail_safely() {
        // target promote fails → demote → standby; times out → fence.
        for (result, fenced) in [(StepResult::Failed, false), (StepResult::TimedOut, true)] {
            let mut d = Drive::new(1);
            d.ticks(2);
            d.mail = Mail::HandOverAck { term: 0 };
            let now = d.now;
            let mut evs = vec![Event::Tick];
            while let Some(ev) = evs.pop() {
                for a in d.m.step(now, ev) {
                    match a {
                        Action::WriteHeartbeat(_) => evs.push(Event::HeartbeatWritten {
                            latency: Duration::ZERO,
                        }),
                        Action::ReadMailbox => evs.push(Event::MailboxRead(d.mail)),
                        Action::ReadPeerMailbox => evs.push(Event::PeerMailboxRead(d.told)),
                        Action::ReadOwnership => evs.push(Event::OwnershipRead(None)),
                        Action::ReadPeerSlot => evs.push(Event::PeerSlotRead(d.peer)),
                        Action::WriteOwnership { .. } => {
                            evs.push(Event::OwnershipWritten { ok: true })
                        }
                        _ => {}
                    }
                }
            }
            assert_eq!(d.m.role(), Role::Promoting);
            let out = d.m.step(
                now,
                Event::StepDone {
                    step: Step::TargetPromote,
                    result,
                },
            );
            if fenced {
                assert_eq!(out[0], Action::SelfFence);
            } else {
                assert!(out.contains(&Action::TargetDemote));
                assert_eq!(d.m.role(), Role::Demoting);
                d.m.step(
                    now,
                    Event::StepDone {
                        step: Step::TargetDemote,
                        result: StepResult::Ok,
                    },
                );
                assert_eq!(d.m.role(), Role::Standby);
            }
        }
    }

    #[test]
    fn a_target_promote_that_never_answers_fences() {
        let mut d = Drive::new(1);
        d.ticks(2);
        d.mail = Mail::HandOverAck { term: 0 };
        let now = d.now;
        let out = d.m.step(now, Event::MailboxRead(d.mail));
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::WriteOwnership { .. })));
        d.m.step(now, Event::Tick);
        d.m.step(now, Event::HeartbeatWritten { latency: S / 2 });
        d.m.step(now, Event::OwnershipWritten { ok: true });
        // Keep the heartbeat fresh; the target never answers.
        let out = d.m.step(now + S, Event::Tick);
        assert!(!out.contains(&Action::SelfFence));
        d.m.step(now + S, Event::HeartbeatWritten { latency: S / 2 });
        let out = d.m.step(now + 2 * S, Event::Tick);
        assert_eq!(out[0], Action::SelfFence);
    }

    #[test]
    fn both_healthy_the_non_preferred_node_yields() {
        // Fresh array: controller 1 is preferred; controller 2 yields to it.
        let mut d = Drive::new(2);
        d.ticks(3);
        assert_eq!(d.m.role(), Role::Standby);
        assert!(d.log.contains(&Action::WriteMailbox {
            node: 1,
            mail: Mail::HandOverAck { term: 0 }
        }));
        // Controller 1 does not yield, and does not promote on its own.
        let mut d = Drive::new(1);
        for _ in 0..10 {
            d.beat_peer();
            d.tick();
        }
        assert_eq!(d.m.role(), Role::Standby);
        assert!(!d
            .log
            .iter()
            .any(|a| matches!(a, Action::WriteMailbox { .. })));
    }

    #[test]
    fn crossing_acks_only_the_preferred_node_promotes() {
        // Controller 1 owned term 1 and finished a switchover (its ack is in our
        // mailbox) while we, controller 2, had yielded to it in term 1.
        let mut d = Drive::new(2);
        d.owner = Some(Owner { term: 1, owner: 1 });
        d.told = Mail::HandOverAck { term: 1 }; // our yield, from an earlier life
        d.mail = Mail::HandOverAck { term: 1 };
        for _ in 0..3 {
            d.beat_peer();
            d.tick();
        }
        assert_eq!(d.m.role(), Role::Standby, "we promised: no fast path");
        // Without the yield on disk, the owner's ack is ours to take.
        let mut d = Drive::new(2);
        d.owner = Some(Owner { term: 1, owner: 1 });
        d.peer = slot(Role::Active, 1, 1);
        d.mail = Mail::HandOverAck { term: 1 };
        d.ticks(2);
        assert_eq!(d.m.role(), Role::Active);
        // The preferred node (the owner) takes the yield even though it acked too.
        let mut d = Drive::new(1);
        d.owner = Some(Owner { term: 1, owner: 1 });
        d.told = Mail::HandOverAck { term: 1 };
        d.mail = Mail::HandOverAck { term: 1 };
        d.ticks(2);
        assert_eq!(d.m.role(), Role::Active);
        assert_eq!(d.owner, Some(Owner { term: 2, owner: 1 }));
    }

    #[test]
    fn an_interconnect_cut_alone_changes_nothing_and_the_witness_decides() {
        let mut d = Drive::standby_of_active();
        // No UDP heartbeats ever arrive; the peer is alive on disk.
        for _ in 0..10 {
            d.beat_peer();
            let out = d.tick();
            if d.now > 5 * S {
                assert!(out.contains(&Action::AskWitness { term: 2 }), "{out:?}");
            }
            for a in out {
                if let Action::AskWitness { .. } = a {
                    d.m.step(d.now, Event::Witness(WitnessAnswer::Refused { term: 1 }));
                }
            }
        }
        assert_eq!(
            d.m.role(),
            Role::Standby,
            "refused: the active keeps the array"
        );
        // An unreachable witness changes nothing either.
        d.m.step(d.now, Event::Witness(WitnessAnswer::Unreachable));
        d.beat_peer();
        d.tick();
        assert_eq!(d.m.role(), Role::Standby);
        // Granted: the standby fences the active through the disk, as always.
        d.m.step(d.now, Event::Witness(WitnessAnswer::Granted { term: 2 }));
        assert_eq!(d.m.role(), Role::Promoting);
    }

    #[test]
    fn maintenance_stops_promotion_but_not_fencing() {
        let mut d = Drive::standby_of_active();
        d.m.step(d.now, Event::Operator(Operator::MaintenanceOn));
        assert_eq!(d.m.role(), Role::Maintenance);
        d.ticks(20); // the peer is dead
        assert_eq!(d.m.role(), Role::Maintenance);
        // Back to standby, it acts at once on what it knows: the peer is dead.
        d.m.step(d.now, Event::Operator(Operator::MaintenanceOff));
        assert_eq!(d.m.role(), Role::Promoting);
        let mut d = Drive::standby_of_active();
        d.m.step(d.now, Event::Operator(Operator::MaintenanceOn));
        d.mail = Mail::PoisonPill { term: 5 };
        d.tick();
        assert!(d.fenced());
        // And an active refuses maintenance.
        let mut d = Drive::active();
        d.m.step(d.now, Event::Operator(Operator::MaintenanceOn));
        assert_eq!(d.m.role(), Role::Active);
    }
}
