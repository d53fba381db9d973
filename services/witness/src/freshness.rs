//! Freshness: a signed request is let through only if it was written recently (its wall
//! clock within `max_skew` of the witness's) and was not seen before (its sequence grows
//! within its sender's incarnation).
//!
//! Why remember several incarnations rather than only the last: the incarnation is random,
//! so it says nothing about which of two runs of a controller's daemon was later. A message
//! of an earlier run replayed after the node restarted would look new if only the current
//! incarnation were remembered. A replay must also pass the clock check, so a message
//! accepted at witness time t can only be replayed up to t + 2 × max_skew (it was written
//! within max_skew of t, and must be within max_skew of the replay). Remembering every
//! incarnation seen within the last 2 × max_skew is therefore enough to refuse any replay.
//! This memory is not kept across a restart of the witness; see docs/witness.md.

use std::collections::VecDeque;

/// Incarnations remembered per node; a node restarting more often than this within
/// 2 × max_skew evicts the oldest (it would be restarting every few seconds).
const REMEMBERED: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// The sender's clock is too far from the witness's, either way.
    Clock { skew_ms: i128, max_skew_ms: u64 },
    /// This (incarnation, sequence) or a later one was already accepted.
    Replayed {
        incarnation: u64,
        seq: u64,
        last_seq: u64,
    },
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Clock {
                skew_ms,
                max_skew_ms,
            } => write!(
                f,
                "stale: the sender's clock is {skew_ms} ms from the witness's (at most {max_skew_ms} ms allowed)"
            ),
            Stale::Replayed {
                incarnation,
                seq,
                last_seq,
            } => write!(
                f,
                "replayed: incarnation {incarnation:016x} sequence {seq}, already had {last_seq}"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    incarnation: u64,
    seq: u64,
    /// Monotonic ms of the last accepted message of this incarnation.
    at_ms: u64,
}

/// The sequences seen from one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayGuard {
    seen: VecDeque<Seen>,
}

/// Whether `time_ms` (sender) is within `max_skew_ms` of `now_unix_ms` (witness).
pub fn check_clock(time_ms: u64, now_unix_ms: u64, max_skew_ms: u64) -> Result<(), Stale> {
    let skew_ms = time_ms as i128 - now_unix_ms as i128;
    if skew_ms.unsigned_abs() > max_skew_ms as u128 {
        return Err(Stale::Clock {
            skew_ms,
            max_skew_ms,
        });
    }
    Ok(())
}

impl ReplayGuard {
    /// Whether (incarnation, seq) is new; does not remember it (see `accept`), so that a
    /// request refused later for another reason changes nothing.
    pub fn check(&self, incarnation: u64, seq: u64) -> Result<(), Stale> {
        match self.seen.iter().find(|s| s.incarnation == incarnation) {
            Some(s) if seq <= s.seq => Err(Stale::Replayed {
                incarnation,
                seq,
                last_seq: s.seq,
            }),
            _ => Ok(()),
        }
    }

    /// Remembers an accepted request at monotonic `now_ms`, forgetting incarnations not
    /// heard from for `keep_ms` (2 × max_skew).
    pub fn accept(&mut self, incarnation: u64, seq: u64, now_ms: u64, keep_ms: u64) {
        self.seen
            .retain(|s| s.incarnation != incarnation && now_ms.saturating_sub(s.at_ms) < keep_ms);
        if self.seen.len() >= REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back(Seen {
            incarnation,
            seq,
            at_ms: now_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_window_both_ways() {
        let now = 1_700_000_000_000;
        assert!(check_clock(now, now, 30_000).is_ok());
        assert!(check_clock(now - 30_000, now, 30_000).is_ok());
        assert!(check_clock(now + 30_000, now, 30_000).is_ok());
        assert!(matches!(
            check_clock(now - 30_001, now, 30_000),
            Err(Stale::Clock {
                skew_ms: -30_001,
                ..
            })
        ));
        assert!(check_clock(now + 30_001, now, 30_000).is_err());
        assert!(check_clock(0, now, 30_000).is_err());
        assert!(check_clock(u64::MAX, now, 30_000).is_err());
    }

    #[test]
    fn sequence_must_grow_within_an_incarnation() {
        let mut g = ReplayGuard::default();
        assert!(g.check(7, 1).is_ok());
        g.accept(7, 1, 0, 60_000);
        assert!(g.check(7, 1).is_err(), "the same message again");
        assert!(g.check(7, 0).is_err(), "an older one");
        assert!(g.check(7, 2).is_ok());
        assert!(g.check(7, 100).is_ok(), "gaps are fine: requests get lost");
        assert!(g.check(8, 0).is_ok(), "a restarted daemon");
    }

    #[test]
    fn checking_remembers_nothing() {
        let g = ReplayGuard::default();
        assert!(g.check(7, 1).is_ok());
        assert!(g.check(7, 1).is_ok());
    }

    #[test]
    fn an_earlier_run_cannot_be_replayed_after_a_restart() {
        let mut g = ReplayGuard::default();
        g.accept(7, 50, 0, 60_000);
        g.accept(8, 1, 1_000, 60_000); // the daemon restarted
        assert!(g.check(7, 50).is_err());
        assert!(g.check(8, 1).is_err());
        // Forgotten only once no replay of it could pass the clock check any more.
        g.accept(8, 2, 60_000, 60_000);
        assert!(g.check(7, 50).is_ok());
        assert!(g.check(8, 2).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = ReplayGuard::default();
        for i in 0..100 {
            g.accept(i, 1, i, 60_000);
        }
        assert_eq!(g.seen.len(), REMEMBERED);
        assert!(g.check(99, 1).is_err());
    }
}
