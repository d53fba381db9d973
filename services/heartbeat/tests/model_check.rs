//! Exhaustive model check of the role state machine: two controllers running the real
//! `Machine::step`, a shared disk, an interconnect and a witness, explored breadth-first
//! through every interleaving of node steps, clock ticks and faults, up to a time
//! horizon and a fault budget.
//!
//! # The model
//!
//! - Time is whole ticks; one tick is one second and one heartbeat interval. Each tick
//!   every running node takes exactly one step (a `Tick` event and everything it
//!   causes), in either order, before time advances: a running node is never starved,
//!   only a paused one is. A node's monotonic clock reads the global time (it counts
//!   paused time, as `CLOCK_BOOTTIME` does).
//! - Disk I/O of a node whose disk is healthy completes within its step. A stalled disk
//!   queues the node's I/O; when the stall ends the queued writes land then (late
//!   writes) and the reads answer with what the disk holds then. A failing disk answers
//!   every I/O with an error and writes nothing.
//! - Orchestration steps (target, takeover) succeed within the step that asked for them.
//! - The watchdog counts wall time (assumption W): a node is reset when more than the
//!   real watchdog timeout has passed since its last feed — checked when time advances
//!   for a running node, and at resume for a paused node, before it runs anything. A
//!   watchdog that counted only the guest's running time (an emulated watchdog device
//!   that pauses with the VM) could not stop a paused node from serving on resume;
//!   that case needs storage fencing (SCSI/NVMe reservations), not this protocol.
//! - A reset drops the node's queued I/O (assumption R: the storage path aborts a
//!   reset host's commands). It then may restart at once, as a fresh incarnation.
//! - Faults, each using one unit of the budget: crash, pause, disk stall, disk failure
//!   (per node), interconnect cut, isolation of one node from every network (peer and
//!   witness), witness down. Resume, repairs and restarts are free. Operator commands
//!   (switchover, maintenance on/off) use a separate budget.
//!
//! # Writers
//!
//! A node is a *writer* when it is running and its LIO target is promoted (from the
//! `TargetPromote` action until a `TargetDemote` that is trusted, or a reset). This is
//! exactly "accepts writes": LIO serves I/O from promotion to demotion, and nothing else
//! on the node writes LUN blocks. Conservatively, the `TargetDemote` a node issues while
//! self-fencing is *not* trusted (it may hang): such a node stays a writer until the
//! watchdog resets it, so the proof rests on the watchdog alone. A paused node is not a
//! writer while paused (the whole VM, LIO included, is frozen) but is one again the
//! moment it resumes — unless the watchdog resets it at resume; that is why the model
//! checks the watchdog at resume, and why msgwait must cover a pause.
//!
//! # Properties
//!
//! - Safety, in every reachable state: at most one writer; every writer holds the term
//!   in the ownership record and is its owner; the ownership record's term, the
//!   witness's term and each incarnation's known term only grow.
//! - Liveness (bounded progress), from every reachable state where one node is running
//!   with a healthy disk and not in maintenance and the other is crashed or paused for
//!   good: with no further faults, the healthy node is an Active writer within a bound
//!   derived from the timing.

use star_heartbeat::role::{
    Action, Config, Event, Machine, Mail, Operator, Owner, Role, Slot, Step, StepResult,
    WitnessAnswer,
};
use star_heartbeat::timing::{StepTimeouts, Timing};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

const S: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Status {
    Running,
    Paused,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Disk {
    Ok,
    Stalled,
    Failing,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Node {
    m: Machine,
    status: Status,
    incarnation: u64,
    target_up: bool,
    target_term: u64,
    fed_at: u32,
    fencing: bool,
    stepped: bool,
    /// I/O waiting on a stalled disk, with its issue tick.
    queued: Vec<(Action, u32)>,
    inbox: Vec<Event>,
    disk: Disk,
    isolated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    t: u32,
    n: [Node; 2],
    owner: Option<Owner>,
    mbox: [Mail; 2],
    slot: [Option<Slot>; 2],
    witness_up: bool,
    witness_term: u64,
    witness_holder: u8,
    cut: bool,
    faults: u8,
    ops: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Label {
    Step(usize),
    Advance,
    Crash(usize),
    Restart(usize),
    Pause(usize),
    Resume(usize),
    Stall(usize),
    Fail(usize),
    Repair(usize),
    Cut,
    Heal,
    Isolate(usize),
    Rejoin(usize),
    WitnessDown,
    WitnessUp,
    Op(usize, Operator),
}

/// A deliberately broken node, to show the checker catches real bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    /// The mailbox reader drops poison pills (as if it never read its mailbox).
    IgnorePill,
}

#[derive(Debug, Clone, Copy)]
struct Params {
    horizon: u32,
    faults: u8,
    ops: u8,
    /// The watchdog the hardware really has, in ticks.
    watchdog: u32,
    /// The timing the machines are configured with.
    timing: Timing,
    witness: bool,
    variant: Variant,
    /// Pauses are the costliest fault to explore; they can be left out of a run.
    pauses: bool,
}

fn model_timing(watchdog: u32) -> Timing {
    Timing {
        heartbeat_interval: S,
        io_timeout: S,
        peer_dead: 4 * S,
        watchdog: S * watchdog,
        steps: StepTimeouts {
            target: S,
            takeover: S,
        },
    }
}

impl Params {
    fn correct() -> Params {
        Params {
            horizon: 16,
            faults: 2,
            ops: 1,
            watchdog: 4,
            timing: model_timing(4),
            witness: true,
            variant: Variant::Correct,
            pauses: true,
        }
    }
}

fn fresh(p: &Params, me: u8, incarnation: u64, t: u32) -> Node {
    Node {
        m: Machine::new(
            Config {
                me,
                timing: p.timing,
                witness: p.witness,
            },
            incarnation,
        ),
        status: Status::Running,
        incarnation,
        target_up: false,
        target_term: 0,
        fed_at: t,
        fencing: false,
        stepped: false,
        queued: Vec::new(),
        inbox: Vec::new(),
        disk: Disk::Ok,
        isolated: false,
    }
}

fn initial(p: &Params) -> World {
    World {
        t: 0,
        n: [fresh(p, 1, 1, 0), fresh(p, 2, 1, 0)],
        owner: None,
        mbox: [Mail::Empty; 2],
        slot: [None; 2],
        witness_up: true,
        witness_term: 0,
        witness_holder: 0,
        cut: false,
        faults: p.faults,
        ops: p.ops,
    }
}

fn fingerprint(w: &World) -> u64 {
    let mut h = DefaultHasher::new();
    w.hash(&mut h);
    h.finish()
}

impl World {
    fn reset(&mut self, i: usize) {
        let n = &mut self.n[i];
        n.status = Status::Down;
        n.target_up = false;
        n.fencing = false;
        n.queued.clear();
        n.inbox.clear();
    }

    fn writers(&self) -> Vec<usize> {
        (0..2)
            .filter(|&i| self.n[i].status == Status::Running && self.n[i].target_up)
            .collect()
    }

    fn successors(&self, p: &Params) -> Vec<Label> {
        let mut out = Vec::new();
        for i in 0..2 {
            if self.n[i].status == Status::Running && !self.n[i].stepped {
                out.push(Label::Step(i));
            }
        }
        let all_stepped = self
            .n
            .iter()
            .all(|n| n.status != Status::Running || n.stepped);
        if all_stepped && self.t < p.horizon {
            out.push(Label::Advance);
        }
        // Faults, repairs, restarts and operator commands happen between ticks: at the
        // granularity of the model (one tick per heartbeat interval) a fault between
        // the two nodes' steps of one tick is the same as one at the next boundary,
        // except for effects the model does not have (sub-tick timing).
        if self.n.iter().any(|n| n.stepped) {
            return out;
        }
        for i in 0..2 {
            let n = &self.n[i];
            match n.status {
                Status::Down => out.push(Label::Restart(i)),
                Status::Paused => out.push(Label::Resume(i)),
                _ => {}
            }
            if n.disk != Disk::Ok {
                out.push(Label::Repair(i));
            }
            if n.isolated {
                out.push(Label::Rejoin(i));
            }
            if self.faults > 0 {
                if n.status != Status::Down {
                    out.push(Label::Crash(i));
                }
                if n.status == Status::Running && p.pauses {
                    out.push(Label::Pause(i));
                }
                if n.disk == Disk::Ok {
                    out.push(Label::Stall(i));
                    out.push(Label::Fail(i));
                }
                if !n.isolated {
                    out.push(Label::Isolate(i));
                }
            }
            // Only the commands the node would act on: a refused one changes nothing
            // but the budget (the refusals are unit-tested in role.rs).
            if self.ops > 0 && n.status == Status::Running {
                match n.m.role() {
                    Role::Active => out.push(Label::Op(i, Operator::Switchover)),
                    Role::Standby | Role::Starting => {
                        out.push(Label::Op(i, Operator::MaintenanceOn))
                    }
                    Role::Maintenance => out.push(Label::Op(i, Operator::MaintenanceOff)),
                    _ => {}
                }
            }
        }
        if self.faults > 0 {
            if !self.cut {
                out.push(Label::Cut);
            }
            if self.witness_up {
                out.push(Label::WitnessDown);
            }
        }
        if self.cut {
            out.push(Label::Heal);
        }
        if !self.witness_up {
            out.push(Label::WitnessUp);
        }
        out
    }

    /// Applies one transition; Err is a safety violation found while applying it.
    fn apply(&mut self, p: &Params, label: Label, log: &mut Vec<String>) -> Result<(), String> {
        match label {
            Label::Step(i) => {
                self.n[i].stepped = true;
                let mut events: VecDeque<Event> = self.n[i].inbox.drain(..).collect();
                events.push_back(Event::Tick);
                self.run(p, i, events, log)?;
            }
            Label::Advance => {
                self.t += 1;
                for i in 0..2 {
                    self.n[i].stepped = false;
                    if self.n[i].status == Status::Running && self.t - self.n[i].fed_at > p.watchdog
                    {
                        log.push(format!("watchdog resets controller {}", i + 1));
                        self.reset(i);
                    }
                }
            }
            Label::Crash(i) => {
                self.faults -= 1;
                self.reset(i);
            }
            Label::Restart(i) => {
                let inc = self.n[i].incarnation + 1;
                let keep = (self.n[i].disk, self.n[i].isolated);
                self.n[i] = fresh(p, i as u8 + 1, inc, self.t);
                (self.n[i].disk, self.n[i].isolated) = keep;
            }
            Label::Pause(i) => {
                self.faults -= 1;
                self.n[i].status = Status::Paused;
            }
            Label::Resume(i) => {
                if self.t - self.n[i].fed_at > p.watchdog {
                    log.push(format!("watchdog resets controller {} at resume", i + 1));
                    self.reset(i);
                } else {
                    self.n[i].status = Status::Running;
                }
            }
            Label::Stall(i) => {
                self.faults -= 1;
                self.n[i].disk = Disk::Stalled;
            }
            Label::Fail(i) => {
                self.faults -= 1;
                self.n[i].disk = Disk::Failing;
            }
            Label::Repair(i) => {
                self.n[i].disk = Disk::Ok;
                let queued = std::mem::take(&mut self.n[i].queued);
                for (a, at) in queued {
                    let ev = self.disk_io(i, &a, self.t - at)?;
                    if self.n[i].status != Status::Down {
                        self.n[i].inbox.push(ev);
                    }
                }
            }
            Label::Cut => {
                self.faults -= 1;
                self.cut = true;
            }
            Label::Heal => self.cut = false,
            Label::Isolate(i) => {
                self.faults -= 1;
                self.n[i].isolated = true;
            }
            Label::Rejoin(i) => self.n[i].isolated = false,
            Label::WitnessDown => {
                self.faults -= 1;
                self.witness_up = false;
            }
            Label::WitnessUp => self.witness_up = true,
            Label::Op(i, op) => {
                self.ops -= 1;
                self.n[i].inbox.push(Event::Operator(op));
            }
        }
        Ok(())
    }

    fn run(
        &mut self,
        p: &Params,
        i: usize,
        mut events: VecDeque<Event>,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let now = Duration::from_secs(u64::from(self.t));
        let mut guard = 0;
        while let Some(mut ev) = events.pop_front() {
            guard += 1;
            assert!(guard < 200, "a step that does not settle");
            if p.variant == Variant::IgnorePill {
                if let Event::MailboxRead(Mail::PoisonPill { .. }) = ev {
                    ev = Event::MailboxRead(Mail::Empty);
                }
            }
            let before = self.n[i].m.known_term();
            let actions = self.n[i].m.step(now, ev);
            if self.n[i].m.known_term() < before {
                return Err(format!(
                    "controller {}'s known term went from {before} to {}",
                    i + 1,
                    self.n[i].m.known_term()
                ));
            }
            for a in actions {
                self.exec(i, a, &mut events, log)?;
            }
        }
        Ok(())
    }

    fn exec(
        &mut self,
        i: usize,
        a: Action,
        events: &mut VecDeque<Event>,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let peer = 1 - i;
        let ok = |step| Event::StepDone {
            step,
            result: StepResult::Ok,
        };
        match a {
            Action::Log(line) => log.push(format!("  controller {}: {line}", i + 1)),
            Action::SelfFence => self.n[i].fencing = true,
            Action::FeedWatchdog => {
                if !self.n[i].fencing {
                    self.n[i].fed_at = self.t;
                }
            }
            Action::TargetPromote { term } => {
                if !self.n[i].fencing {
                    self.n[i].target_up = true;
                    self.n[i].target_term = term;
                    events.push_back(ok(Step::TargetPromote));
                }
            }
            Action::TargetDemote => {
                // Not trusted while self-fencing: the watchdog has to do it.
                if !self.n[i].fencing {
                    self.n[i].target_up = false;
                    events.push_back(ok(Step::TargetDemote));
                }
            }
            Action::TakeoverAcquire => events.push_back(ok(Step::TakeoverAcquire)),
            Action::TakeoverRelease => events.push_back(ok(Step::TakeoverRelease)),
            Action::SendNetHeartbeat {
                role,
                term,
                incarnation,
            } => {
                let reachable = !self.cut
                    && !self.n[i].isolated
                    && !self.n[peer].isolated
                    && self.n[peer].status == Status::Running;
                if reachable {
                    let inbox = &mut self.n[peer].inbox;
                    inbox.retain(|e| !matches!(e, Event::NetHeartbeat { .. }));
                    inbox.push(Event::NetHeartbeat {
                        role,
                        term,
                        incarnation,
                    });
                }
            }
            Action::AskWitness { term } => {
                let answer = self.witness(i, term);
                events.push_back(Event::Witness(answer));
            }
            disk => match self.n[i].disk {
                Disk::Ok => events.push_back(self.disk_io(i, &disk, 0)?),
                Disk::Stalled => self.n[i].queued.push((disk, self.t)),
                Disk::Failing => events.push_back(match disk {
                    Action::WriteHeartbeat(_) => Event::HeartbeatWriteFailed,
                    Action::ReadPeerSlot => Event::PeerSlotReadFailed,
                    Action::ReadMailbox => Event::MailboxReadFailed,
                    Action::ReadPeerMailbox => Event::PeerMailboxReadFailed,
                    Action::ReadOwnership => Event::OwnershipReadFailed,
                    Action::WriteMailbox { .. } => Event::MailboxWritten { ok: false },
                    Action::WriteOwnership { .. } => Event::OwnershipWritten { ok: false },
                    other => unreachable!("not disk I/O: {other:?}"),
                }),
            },
        }
        Ok(())
    }

    fn disk_io(&mut self, i: usize, a: &Action, latency: u32) -> Result<Event, String> {
        Ok(match *a {
            Action::WriteHeartbeat(s) => {
                self.slot[i] = Some(s);
                Event::HeartbeatWritten {
                    latency: S * latency,
                }
            }
            Action::ReadPeerSlot => Event::PeerSlotRead(self.slot[1 - i]),
            Action::ReadMailbox => Event::MailboxRead(self.mbox[i]),
            Action::ReadPeerMailbox => Event::PeerMailboxRead(self.mbox[1 - i]),
            Action::ReadOwnership => Event::OwnershipRead(self.owner),
            Action::WriteMailbox { node, mail } => {
                self.mbox[usize::from(node) - 1] = mail;
                Event::MailboxWritten { ok: true }
            }
            Action::WriteOwnership { term, owner, .. } => {
                let old = self.owner.map_or(0, |o| o.term);
                if term < old {
                    return Err(format!(
                        "the ownership term went from {old} down to {term} (written by controller {})",
                        i + 1
                    ));
                }
                self.owner = Some(Owner { term, owner });
                Event::OwnershipWritten { ok: true }
            }
            ref other => unreachable!("not disk I/O: {other:?}"),
        })
    }

    /// corosync-qnetd's ffsplit, reduced to two nodes: a term above the witness's goes
    /// to the asker unless the other node is connected and active (ties go to the
    /// current owner); the holder may renew its own term; a node that cannot reach the
    /// witness gets no answer.
    fn witness(&mut self, i: usize, term: u64) -> WitnessAnswer {
        if !self.witness_up || self.n[i].isolated {
            return WitnessAnswer::Unreachable;
        }
        let other = &self.n[1 - i];
        let other_connected = other.status == Status::Running && !other.isolated;
        let me = i as u8 + 1;
        if term > self.witness_term && !(other_connected && other.m.role() == Role::Active) {
            self.witness_term = term;
            self.witness_holder = me;
            WitnessAnswer::Granted { term }
        } else if term == self.witness_term && self.witness_holder == me {
            WitnessAnswer::Granted { term }
        } else {
            WitnessAnswer::Refused {
                term: self.witness_term,
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let writers = self.writers();
        if writers.len() > 1 {
            return Err(format!(
                "two writers: controller 1 in term {}, controller 2 in term {}",
                self.n[0].target_term, self.n[1].target_term
            ));
        }
        for &i in &writers {
            let mine = Owner {
                term: self.n[i].target_term,
                owner: i as u8 + 1,
            };
            if self.owner != Some(mine) {
                return Err(format!(
                    "controller {} serves term {} but the ownership record is {:?}",
                    i + 1,
                    mine.term,
                    self.owner
                ));
            }
        }
        Ok(())
    }

    fn summary(&self) -> String {
        let node = |n: &Node| {
            format!(
                "{:?}/{:?}{}{}{}",
                n.status,
                n.m.role(),
                if n.target_up {
                    format!(" serving t{}", n.target_term)
                } else {
                    String::new()
                },
                if n.disk != Disk::Ok {
                    format!(" disk {:?}", n.disk)
                } else {
                    String::new()
                },
                if n.isolated { " isolated" } else { "" }
            )
        };
        format!(
            "t={:>2} c1 {} | c2 {} | owner {:?} | mbox {:?}{}{}",
            self.t,
            node(&self.n[0]),
            node(&self.n[1]),
            self.owner.map(|o| (o.term, o.owner)),
            self.mbox,
            if self.cut { " | cut" } else { "" },
            if self.witness_up {
                ""
            } else {
                " | witness down"
            }
        )
    }
}

struct Found {
    violation: String,
    trace: String,
}

struct Report {
    states: usize,
    max_depth: usize,
    liveness_checked: usize,
    worst_recovery: u32,
    elapsed: Duration,
}

fn replay(p: &Params, labels: &[Label]) -> String {
    let mut w = initial(p);
    let mut s = String::new();
    let _ = writeln!(s, "{}", w.summary());
    for &l in labels {
        let mut log = Vec::new();
        let r = w.apply(p, l, &mut log).and_then(|_| w.check());
        let _ = writeln!(s, "-> {l:?}");
        for line in log {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "{}", w.summary());
        if let Err(e) = r {
            let _ = writeln!(s, "!! {e}");
        }
    }
    s
}

/// Ticks from `w` until the healthy node `i` serves, with no further faults; None if
/// it does not within `limit`.
fn recovery(
    p: &Params,
    w: &World,
    i: usize,
    limit: u32,
    cache: &mut HashMap<u64, Option<u32>>,
) -> Option<u32> {
    let mut w = w.clone();
    let mut path = Vec::new();
    let mut result = None;
    for ticks in 0..=limit {
        let fp = fingerprint(&w);
        if let Some(&known) = cache.get(&fp) {
            result = known.map(|k| k + ticks);
            break;
        }
        path.push((fp, ticks));
        if w.n[i].status == Status::Running && w.n[i].m.role() == Role::Active && w.n[i].target_up {
            result = Some(ticks);
            break;
        }
        let mut log = Vec::new();
        if w.n[i].status == Status::Down {
            w.apply(p, Label::Restart(i), &mut log).unwrap();
        }
        if w.n[i].status == Status::Running && !w.n[i].stepped {
            w.apply(p, Label::Step(i), &mut log).unwrap();
        }
        // The continuation ignores the horizon.
        let mut q = p.to_owned();
        q.horizon = u32::MAX;
        w.apply(&q, Label::Advance, &mut log).unwrap();
    }
    for (fp, at) in path {
        cache.insert(fp, result.map(|r| r - at));
    }
    result
}

fn check(p: &Params, liveness_limit: Option<u32>) -> Result<Report, Found> {
    let started = Instant::now();
    let init = initial(p);
    // Per visited state: its parent's index and the label that led to it; enough to
    // rebuild any trace by replaying the labels from the initial state.
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut parent: Vec<(u32, Option<Label>, u16)> = Vec::new();
    let mut queue = VecDeque::new();
    seen.insert(fingerprint(&init), 0);
    parent.push((0, None, 0));
    queue.push_back((init, 0u32));
    let mut cache = HashMap::new();
    let mut liveness_checked = 0;
    let mut worst_recovery = 0;
    let trace_to = |parent: &Vec<(u32, Option<Label>, u16)>, mut idx: u32| {
        let mut labels = Vec::new();
        while let (up, Some(l), _) = parent[idx as usize] {
            labels.push(l);
            idx = up;
        }
        labels.reverse();
        labels
    };
    while let Some((w, idx)) = queue.pop_front() {
        if let Some(limit) = liveness_limit {
            for i in 0..2 {
                let (me, other) = (&w.n[i], &w.n[1 - i]);
                // An operator's maintenance request still in the inbox counts as
                // maintenance: it is the operator's choice that nothing happens.
                let maintenance = me.m.role() == Role::Maintenance
                    || me.inbox.contains(&Event::Operator(Operator::MaintenanceOn));
                let eligible = me.status == Status::Running
                    && me.disk == Disk::Ok
                    && !maintenance
                    && other.status != Status::Running;
                if eligible {
                    liveness_checked += 1;
                    match recovery(p, &w, i, limit, &mut cache) {
                        Some(ticks) => worst_recovery = worst_recovery.max(ticks),
                        None => {
                            return Err(Found {
                                violation: format!(
                                    "controller {} is healthy and alone but not serving within {limit} ticks",
                                    i + 1
                                ),
                                trace: replay(p, &trace_to(&parent, idx)),
                            })
                        }
                    }
                }
            }
        }
        for label in w.successors(p) {
            let mut next = w.clone();
            let mut log = Vec::new();
            let result = next.apply(p, label, &mut log).and_then(|_| next.check());
            let fp = fingerprint(&next);
            if seen.contains_key(&fp) && result.is_ok() {
                continue;
            }
            let depth = parent[idx as usize].2 + 1;
            let new = parent.len() as u32;
            parent.push((idx, Some(label), depth));
            if let Err(violation) = result {
                return Err(Found {
                    violation,
                    trace: replay(p, &trace_to(&parent, new)),
                });
            }
            seen.insert(fp, new);
            queue.push_back((next, new));
        }
    }
    Ok(Report {
        states: seen.len(),
        max_depth: parent.iter().map(|p| p.2).max().unwrap_or(0) as usize,
        liveness_checked,
        worst_recovery,
        elapsed: started.elapsed(),
    })
}

/// The recovery bound the liveness check holds the machine to, in ticks: a reset and
/// restart of the survivor if it was fencing itself (watchdog + 1), one tick to start,
/// then the documented failover RTO, plus a tick of rounding per stage.
fn recovery_bound(p: &Params) -> u32 {
    let t = p.timing;
    let rto = t.failover_rto().as_secs() as u32;
    p.watchdog + 1 + 1 + rto + 4
}

/// `STAR_MODEL_HORIZON`, `STAR_MODEL_FAULTS` and `STAR_MODEL_OPS` widen a search for
/// a deeper run than the default suite affords in a debug build, e.g.
/// `STAR_MODEL_FAULTS=2 STAR_MODEL_HORIZON=12 cargo test --release -p star-heartbeat
/// --test model_check`.
fn from_env(mut p: Params) -> Params {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    if let Some(h) = var("STAR_MODEL_HORIZON") {
        p.horizon = h;
    }
    if let Some(f) = var("STAR_MODEL_FAULTS") {
        p.faults = f as u8;
    }
    if let Some(o) = var("STAR_MODEL_OPS") {
        p.ops = o as u8;
    }
    p
}

fn expect_correct(name: &str, p: Params, liveness: bool) -> Report {
    let p = from_env(p);
    let bound = recovery_bound(&p);
    match check(&p, liveness.then_some(bound)) {
        Ok(r) => {
            eprintln!(
                "{name}: horizon {} faults {} ops {}: {} states (depth {}), liveness checked \
                 from {} states, worst recovery {} ticks (bound {bound}), {:.1?}",
                p.horizon,
                p.faults,
                p.ops,
                r.states,
                r.max_depth,
                r.liveness_checked,
                r.worst_recovery,
                r.elapsed
            );
            r
        }
        Err(f) => panic!("{}\n{}", f.violation, f.trace),
    }
}

/// One fault of any kind at any tick up to 16 s: long enough for a failover started by
/// it to complete inside the horizon (bootstrap ≈ 2 s, detection 5 s, msgwait 8 s).
#[test]
fn one_fault_at_any_time_is_safe_and_a_survivor_takes_over() {
    let mut p = Params::correct();
    p.faults = 1;
    p.ops = 0;
    let r = expect_correct("one fault", p, true);
    assert!(r.states > 100_000, "the model explored too little");
    assert!(r.liveness_checked > 10_000);
    // A crash of the active: at least detection and msgwait must pass.
    assert!(r.worst_recovery >= 12, "{}", r.worst_recovery);
}

/// Operator commands (a switchover, maintenance) combined with one fault.
#[test]
fn operator_commands_with_a_fault_are_safe() {
    let mut p = Params::correct();
    p.horizon = 10;
    p.faults = 1;
    p.ops = 1;
    let r = expect_correct("commands and a fault", p, true);
    assert!(r.states > 100_000, "the model explored too little");
}

/// Two faults (one hiding or repairing the other: a pause and a disk stall, a crash
/// and a restart during the peer's fencing) early in the array's life.
#[test]
fn two_faults_are_safe() {
    let mut p = Params::correct();
    p.horizon = 7;
    p.faults = 2;
    p.ops = 0;
    let r = expect_correct("two faults", p, true);
    assert!(r.states > 100_000, "the model explored too little");
}

#[test]
fn a_msgwait_shorter_than_the_real_watchdog_is_caught() {
    // The machines believe the watchdog is 1 s (msgwait 2 s); the hardware's is 4 s.
    let mut p = Params::correct();
    p.faults = 1;
    p.ops = 0;
    p.timing = model_timing(1);
    let found = match check(&p, None) {
        Err(f) => f,
        Ok(r) => panic!("no violation in {} states", r.states),
    };
    eprintln!("{}\n{}", found.violation, found.trace);
    assert!(
        found.violation.starts_with("two writers")
            || found.violation.contains("ownership record is"),
        "{}",
        found.violation
    );
}

#[test]
fn a_node_that_ignores_its_poison_pill_is_caught() {
    let mut p = Params::correct();
    p.faults = 1;
    p.ops = 0;
    p.variant = Variant::IgnorePill;
    let found = match check(&p, None) {
        Err(f) => f,
        Ok(r) => panic!("no violation in {} states", r.states),
    };
    eprintln!("{}\n{}", found.violation, found.trace);
    assert!(
        found.violation.starts_with("two writers")
            || found.violation.contains("ownership record is"),
        "{}",
        found.violation
    );
}
