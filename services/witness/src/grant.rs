//! The grant rules, pure: no clock, no I/O. The server feeds them the time and makes
//! every outcome with `durable_changed` durable before it answers.
//!
//! The witness hands out a term with a lease to one controller at a time:
//!
//! - the owner renewing within its lease keeps its term (ties go to the current owner);
//! - the other node is refused while the owner's lease runs;
//! - once the lease has run out, whoever claims first gets a new term, one above every term
//!   the witness ever granted and every term the claimant says it knows of;
//! - an owner may release; the other node may then claim at once;
//! - after a restart the witness cannot know how much of the owner's lease was left, so it
//!   counts a full lease from its own start before granting to anyone else.
//!
//! Why a lease and not just "the last one to ask": a controller that was granted a term
//! goes on serving until its lease runs out by its own clock, counted from when it *sent*
//! the claim. The witness counts the same lease from when it *received* the claim, which
//! is later, so the witness always believes the lease lasts at least as long as the owner
//! does. When the witness grants to the other node, the old owner's lease has run out on
//! both clocks: the loser was refused (by the lease running out) before the winner was
//! granted, which is corosync-qnetd's ffsplit rule with time in place of a NACK message.

use serde::{Deserialize, Serialize};

/// What the witness keeps on disk for one array. The lease's end is not here: it is on
/// the witness's monotonic clock, which means nothing after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Durable {
    /// The highest term ever granted for this array; never goes down.
    pub highest_term: u64,
    /// Who holds `highest_term`, unless it was released.
    pub owner: Option<Owner>,
    /// The last claim refused, for `status` and for the operator.
    pub last_refused: Option<Refusal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub node: u8,
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub node: u8,
    /// The term the refused node said it knew of.
    pub term: u64,
    pub reason: Reason,
    /// Wall-clock time of the refusal, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Why a claim or release was answered the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A new term for the claimant.
    Granted,
    /// The owner renewed its lease; its term is unchanged.
    Renewed,
    /// The other node holds the term and its lease has not run out.
    HeldByOther,
    /// No term is left (the term would pass u64::MAX).
    TermExhausted,
    /// The owner gave its term up.
    Released,
    /// A release by a node that does not hold that term.
    NotOwner,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Granted => "granted",
            Reason::Renewed => "renewed",
            Reason::HeldByOther => "held_by_other",
            Reason::TermExhausted => "term_exhausted",
            Reason::Released => "released",
            Reason::NotOwner => "not_owner",
        }
    }
}

/// The witness's answer to one claim or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub granted: bool,
    /// The term the owner holds after this request (the highest granted if none does).
    pub term: u64,
    pub owner: Option<u8>,
    /// How much of the owner's lease is left, on the witness's clock.
    pub lease_ms: u64,
    pub reason: Reason,
}

/// The time a decision is made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The witness's monotonic clock, milliseconds since it started.
    pub mono_ms: u64,
    /// The wall clock, only for the record of refusals.
    pub unix_ms: u64,
}

/// One array's grant state in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    pub durable: Durable,
    /// When the owner's lease ends, on the monotonic clock; meaningless without an owner.
    pub lease_until_ms: u64,
}

/// A decision: the answer and the state after it. When `durable_changed`, the caller
/// must write `next.durable` to disk (and succeed) before it may send the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub next: Grants,
    pub durable_changed: bool,
}

impl Grants {
    /// An array the witness has never granted anything for.
    pub fn fresh() -> Grants {
        Grants {
            durable: Durable::default(),
            lease_until_ms: 0,
        }
    }

    /// The state read back after a (re)start at `now`: a persisted owner's lease is taken
    /// to run for a full `lease_ms` from now, since the witness cannot know how much of it
    /// was left when it stopped, nor how long it was down.
    pub fn restored(durable: Durable, now: Now, lease_ms: u64) -> Grants {
        let lease_until_ms = if durable.owner.is_some() {
            now.mono_ms.saturating_add(lease_ms)
        } else {
            0
        };
        Grants {
            durable,
            lease_until_ms,
        }
    }

    /// The owner's remaining lease; 0 without an owner or once it ran out.
    pub fn lease_left(&self, now: Now) -> u64 {
        match self.durable.owner {
            Some(_) => self.lease_until_ms.saturating_sub(now.mono_ms),
            None => 0,
        }
    }

    fn verdict(&self, granted: bool, reason: Reason, now: Now) -> Verdict {
        Verdict {
            granted,
            term: self
                .durable
                .owner
                .map_or(self.durable.highest_term, |o| o.term),
            owner: self.durable.owner.map(|o| o.node),
            lease_ms: self.lease_left(now),
            reason,
        }
    }

    /// `node` claims a term (or renews the one it holds); `known_term` is the highest term
    /// it knows of (the one it holds, or the disk's ownership record).
    pub fn claim(&self, node: u8, known_term: u64, now: Now, lease_ms: u64) -> Outcome {
        let lease_valid = self.lease_left(now) > 0;
        match self.durable.owner {
            // The owner renews within its lease: ties go to the current owner. A renewal
            // that says it knows a higher term than the one it holds (this witness's
            // state is older than the array's) falls through to a new grant instead, so
            // the term keeps growing.
            Some(o) if o.node == node && lease_valid && known_term <= o.term => {
                let mut next = self.clone();
                next.lease_until_ms = now.mono_ms.saturating_add(lease_ms);
                Outcome {
                    verdict: next.verdict(true, Reason::Renewed, now),
                    next,
                    durable_changed: false,
                }
            }
            Some(o) if o.node != node && lease_valid => {
                self.refuse(node, known_term, Reason::HeldByOther, now)
            }
            // No owner, or its lease ran out, or the owner knows a higher term: a new term.
            _ => {
                let Some(term) = self.durable.highest_term.max(known_term).checked_add(1) else {
                    return self.refuse(node, known_term, Reason::TermExhausted, now);
                };
                let mut next = self.clone();
                next.durable.highest_term = term;
                next.durable.owner = Some(Owner { node, term });
                next.lease_until_ms = now.mono_ms.saturating_add(lease_ms);
                Outcome {
                    verdict: next.verdict(true, Reason::Granted, now),
                    next,
                    durable_changed: true,
                }
            }
        }
    }

    fn refuse(&self, node: u8, known_term: u64, reason: Reason, now: Now) -> Outcome {
        let mut next = self.clone();
        let refusal = Refusal {
            node,
            term: known_term,
            reason,
            at_unix_ms: now.unix_ms,
        };
        // The same refusal again only moves its time: not worth a write to disk each time
        // a standby asks.
        let durable_changed = self.durable.last_refused.as_ref().is_none_or(|r| {
            (r.node, r.term, r.reason) != (refusal.node, refusal.term, refusal.reason)
        });
        next.durable.last_refused = Some(refusal);
        Outcome {
            verdict: self.verdict(false, reason, now),
            next,
            durable_changed,
        }
    }

    /// The owner of `term` gives it up (a planned switchover, a clean stop). The caller
    /// must have stopped serving before it releases: the other node may be granted a new
    /// term the moment the release is durable.
    pub fn release(&self, node: u8, term: u64, now: Now) -> Outcome {
        match self.durable.owner {
            Some(o) if o.node == node && o.term == term => {
                let mut next = self.clone();
                next.durable.owner = None;
                next.lease_until_ms = 0;
                let mut verdict = next.verdict(true, Reason::Released, now);
                verdict.term = term;
                Outcome {
                    verdict,
                    next,
                    durable_changed: true,
                }
            }
            _ => Outcome {
                verdict: self.verdict(false, Reason::NotOwner, now),
                next: self.clone(),
                durable_changed: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 10_000;

    fn at(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            unix_ms: 1_700_000_000_000 + ms,
        }
    }

    #[test]
    fn first_claim_gets_term_one() {
        let o = Grants::fresh().claim(1, 0, at(0), LEASE);
        assert_eq!(
            o.verdict,
            Verdict {
                granted: true,
                term: 1,
                owner: Some(1),
                lease_ms: LEASE,
                reason: Reason::Granted
            }
        );
        assert!(o.durable_changed);
        assert_eq!(o.next.durable.highest_term, 1);
    }

    #[test]
    fn both_race_only_one_wins() {
        // Both nodes ask at the same instant; the server serializes them, either order.
        for (first, second) in [(1, 2), (2, 1)] {
            let a = Grants::fresh().claim(first, 0, at(5), LEASE);
            let b = a.next.claim(second, 0, at(5), LEASE);
            assert!(a.verdict.granted);
            assert!(!b.verdict.granted);
            assert_eq!(b.verdict.reason, Reason::HeldByOther);
            assert_eq!(b.verdict.owner, Some(first));
            assert_eq!(b.verdict.term, 1);
            assert_eq!(b.next.durable.highest_term, 1);
            assert_eq!(b.next.durable.owner, a.next.durable.owner);
            assert_eq!(b.next.durable.last_refused.as_ref().unwrap().node, second);
        }
    }

    #[test]
    fn owner_renews_and_keeps_its_term_the_other_is_refused() {
        let mut g = Grants::fresh().claim(1, 0, at(0), LEASE).next;
        for t in (1..20).map(|i| i * (LEASE / 2)) {
            let r = g.claim(2, 0, at(t - 1), LEASE);
            assert!(!r.verdict.granted, "at {t}");
            assert_eq!(r.verdict.lease_ms, LEASE / 2 + 1);
            let o = g.claim(1, 1, at(t), LEASE);
            assert_eq!(o.verdict.reason, Reason::Renewed);
            assert_eq!(o.verdict.term, 1);
            assert!(!o.durable_changed, "a renewal writes nothing");
            g = o.next;
        }
        assert_eq!(g.durable.highest_term, 1);
    }

    #[test]
    fn the_lease_ends_exactly_at_its_length() {
        let g = Grants::fresh().claim(1, 0, at(100), LEASE).next;
        assert!(!g.claim(2, 0, at(100 + LEASE - 1), LEASE).verdict.granted);
        let o = g.claim(2, 0, at(100 + LEASE), LEASE);
        assert_eq!((o.verdict.granted, o.verdict.term), (true, 2));
        assert_eq!(o.verdict.owner, Some(2));
    }

    #[test]
    fn an_owner_whose_lease_ran_out_gets_a_new_term() {
        let g = Grants::fresh().claim(1, 0, at(0), LEASE).next;
        let o = g.claim(1, 1, at(LEASE + 1), LEASE);
        assert_eq!(
            (o.verdict.granted, o.verdict.term, o.verdict.reason),
            (true, 2, Reason::Granted)
        );
        assert!(o.durable_changed);
    }

    #[test]
    fn a_claimant_that_knows_a_higher_term_gets_one_above_it() {
        // A witness replaced with empty state must not hand out a term the array used.
        let o = Grants::fresh().claim(2, 41, at(0), LEASE);
        assert_eq!(o.verdict.term, 42);
        // The owner renewing with a higher known term is moved above it too.
        let r = o.next.claim(2, 50, at(1), LEASE);
        assert_eq!((r.verdict.term, r.verdict.reason), (51, Reason::Granted));
        // The other node knowing a higher term still waits for the lease.
        assert!(!r.next.claim(1, 99, at(2), LEASE).verdict.granted);
    }

    #[test]
    fn the_last_term_is_never_wrapped() {
        let g = Grants {
            durable: Durable {
                highest_term: u64::MAX,
                owner: None,
                last_refused: None,
            },
            lease_until_ms: 0,
        };
        let o = g.claim(1, 0, at(0), LEASE);
        assert_eq!(
            (o.verdict.granted, o.verdict.reason),
            (false, Reason::TermExhausted)
        );
        assert_eq!(o.next.durable.highest_term, u64::MAX);
    }

    #[test]
    fn release_lets_the_other_in_at_once() {
        let g = Grants::fresh().claim(1, 0, at(0), LEASE).next;
        assert_eq!(g.release(2, 1, at(1)).verdict.reason, Reason::NotOwner);
        assert_eq!(g.release(1, 7, at(1)).verdict.reason, Reason::NotOwner);
        assert!(!g.release(1, 7, at(1)).durable_changed);
        let r = g.release(1, 1, at(1));
        assert_eq!(
            (r.verdict.granted, r.verdict.term, r.verdict.owner),
            (true, 1, None)
        );
        assert!(r.durable_changed);
        assert_eq!(r.next.durable.highest_term, 1, "a release keeps the term");
        let o = r.next.claim(2, 1, at(2), LEASE);
        assert_eq!((o.verdict.granted, o.verdict.term), (true, 2));
    }

    #[test]
    fn the_same_refusal_again_is_not_written() {
        let g = Grants::fresh().claim(1, 0, at(0), LEASE).next;
        let a = g.claim(2, 0, at(1), LEASE);
        assert!(a.durable_changed);
        let b = a.next.claim(2, 0, at(2), LEASE);
        assert!(!b.durable_changed);
        assert_eq!(
            b.next.durable.last_refused.as_ref().unwrap().at_unix_ms,
            at(2).unix_ms
        );
        assert!(b.next.claim(2, 1, at(3), LEASE).durable_changed);
    }

    #[test]
    fn after_a_restart_the_owner_keeps_a_full_lease_from_the_start() {
        let g = Grants::fresh().claim(1, 0, at(0), LEASE).next;
        // Restarted long after the lease ran out: still a full lease, counted from start.
        let r = Grants::restored(g.durable.clone(), at(0), LEASE);
        assert_eq!(r.lease_left(at(0)), LEASE);
        assert!(!r.claim(2, 1, at(LEASE - 1), LEASE).verdict.granted);
        let o = r.claim(2, 1, at(LEASE), LEASE);
        assert_eq!((o.verdict.granted, o.verdict.term), (true, 2));
        // The owner itself renews its term within it.
        let k = r.claim(1, 1, at(3), LEASE);
        assert_eq!((k.verdict.reason, k.verdict.term), (Reason::Renewed, 1));
        // Nothing to wait for when nobody owned the term.
        let released = g.release(1, 1, at(1)).next;
        let r = Grants::restored(released.durable, at(0), LEASE);
        assert_eq!(r.claim(2, 0, at(0), LEASE).verdict.term, 2);
    }

    // -------------------------------------------------------------------------------
    // Exhaustive check of every short history: what each node believes against what the
    // witness does.

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Claim(u8, KnownTerm),
        Release(u8),
        Wait(u64),
        Restart,
    }

    #[derive(Clone, Copy, Debug)]
    enum KnownTerm {
        Zero,
        Held,
        AboveHighest,
    }

    /// A node's own view: the term it holds and when its lease ends by its clock (here
    /// the same clock; the node counts from when it sent the claim, the witness from when
    /// it received it, which can only be later).
    #[derive(Clone, Copy, Debug, Default)]
    struct Belief {
        term: u64,
        until: u64,
    }

    #[derive(Clone, Debug)]
    struct World {
        witness: Grants,
        /// What is on disk: only what a `durable_changed` outcome wrote.
        disk: Durable,
        now: u64,
        nodes: [Belief; 2],
        granted_terms: Vec<(u8, u64)>,
    }

    const OPS: [Op; 10] = [
        Op::Claim(1, KnownTerm::Zero),
        Op::Claim(1, KnownTerm::Held),
        Op::Claim(2, KnownTerm::Zero),
        Op::Claim(2, KnownTerm::Held),
        Op::Claim(2, KnownTerm::AboveHighest),
        Op::Release(1),
        Op::Release(2),
        Op::Wait(LEASE / 2),
        Op::Wait(LEASE),
        Op::Restart,
    ];

    fn step(w: &World, op: Op) -> World {
        let mut w = w.clone();
        let now = at(w.now);
        match op {
            Op::Claim(node, known) => {
                let held = w.nodes[node as usize - 1].term;
                let known_term = match known {
                    KnownTerm::Zero => 0,
                    KnownTerm::Held => held,
                    KnownTerm::AboveHighest => w.witness.durable.highest_term + 1,
                };
                let o = w.witness.claim(node, known_term, now, LEASE);
                if o.durable_changed {
                    w.disk = o.next.durable.clone();
                }
                if o.verdict.granted {
                    assert_eq!(o.verdict.owner, Some(node));
                    let t = o.verdict.term;
                    if o.verdict.reason == Reason::Granted {
                        assert!(o.durable_changed, "a new term is written before the reply");
                        for &(_, earlier) in &w.granted_terms {
                            assert!(t > earlier, "term {t} granted after {earlier}: {w:?}");
                        }
                        w.granted_terms.push((node, t));
                    } else {
                        assert_eq!(w.granted_terms.last(), Some(&(node, t)));
                    }
                    w.nodes[node as usize - 1] = Belief {
                        term: t,
                        until: w.now + LEASE,
                    };
                }
                w.witness = o.next;
            }
            Op::Release(node) => {
                let b = w.nodes[node as usize - 1];
                let o = w.witness.release(node, b.term, now);
                if o.durable_changed {
                    w.disk = o.next.durable.clone();
                }
                if o.verdict.granted {
                    // It stopped serving before it asked.
                    w.nodes[node as usize - 1].until = 0;
                }
                w.witness = o.next;
            }
            Op::Wait(ms) => w.now += ms,
            Op::Restart => {
                w.witness = Grants::restored(w.disk.clone(), now, LEASE);
            }
        }
        // Never two nodes with a lease running by their own clocks.
        let live = w.nodes.iter().filter(|b| b.until > w.now).count();
        assert!(live <= 1, "two owners at once: {w:?}");
        // The disk never falls behind what was granted.
        assert_eq!(
            w.disk.highest_term,
            w.granted_terms.last().map_or(0, |g| g.1)
        );
        w
    }

    fn explore(w: &World, depth: usize, histories: &mut u64) {
        if depth == 0 {
            *histories += 1;
            return;
        }
        for op in OPS {
            explore(&step(w, op), depth - 1, histories);
        }
    }

    #[test]
    fn every_history_of_six_steps_keeps_one_owner_and_growing_terms() {
        let w = World {
            witness: Grants::fresh(),
            disk: Durable::default(),
            now: 0,
            nodes: [Belief::default(); 2],
            granted_terms: Vec::new(),
        };
        let mut histories = 0;
        explore(&w, 6, &mut histories);
        assert_eq!(histories, 10u64.pow(6));
    }
}
