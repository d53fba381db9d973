//! The failover timing: every wait the role machine makes, derived from the configured
//! [`Timeouts`], with the derivation written out so that `star status` can show an
//! operator why the recovery time is what it is.
//!
//! ```text
//! detect  = peer_dead + heartbeat_interval   the peer's slot stops changing; we notice
//!                                            at our next read
//! fence   = io_timeout + msgwait             poison pill written, then SBD's wait
//! msgwait = 2 × watchdog                     a peer that could still read the pill
//!                                            stops feeding its watchdog, which resets it
//! promote = io_timeout + target + takeover   ownership record, LIO, floating address
//! failover RTO (worst) = detect + fence + promote
//! switchover RTO (planned, both healthy) =
//!     2 × heartbeat_interval (each side sees the other's mailbox message)
//!   + takeover + target + io_timeout        the old active releases, demotes, acks
//!   + promote                               the new active takes the next term
//! ```

use star_core::node_config::Timeouts;
use std::fmt::Write as _;
use std::time::Duration;

/// How long the orchestration steps that are not disk I/O may take. They are not in
/// star.toml yet; these defaults are what a board's method needs at worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepTimeouts {
    /// `target promote` / `target demote`: configfs writes, a few milliseconds
    /// normally; seconds when the kernel is busy tearing down sessions.
    pub target: Duration,
    /// `takeover acquire` / `release`: an address add and a gratuitous ARP, or an AWS
    /// API call with retries.
    pub takeover: Duration,
}

impl Default for StepTimeouts {
    fn default() -> StepTimeouts {
        StepTimeouts {
            target: Duration::from_secs(5),
            takeover: Duration::from_secs(15),
        }
    }
}

/// Every duration the role machine waits on. Copied out of [`Timeouts`] (which carries
/// no `Eq`/`Hash`) so that a machine can be compared and hashed by the model checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    pub io_timeout: Duration,
    pub peer_dead: Duration,
    /// The watchdog timeout the *peer* runs with. Both controllers read the same
    /// star.toml timeouts, so it is ours too; a mismatch is a misconfiguration that
    /// shortens msgwait below what fencing needs (the model check shows the result).
    pub watchdog: Duration,
    pub steps: StepTimeouts,
}

impl Timing {
    pub fn new(t: &Timeouts, steps: StepTimeouts) -> Timing {
        Timing {
            heartbeat_interval: t.heartbeat_interval,
            io_timeout: t.io_timeout,
            peer_dead: t.peer_dead,
            watchdog: t.watchdog,
            steps,
        }
    }

    /// SBD's rule: after the poison pill is on disk, wait twice the peer's watchdog
    /// timeout. A peer still running reads the pill within one heartbeat interval (plus
    /// the read's own io_timeout), stops feeding the watchdog, and is reset one watchdog
    /// timeout after its last feed; a peer that cannot read the disk has already
    /// stopped feeding because its own heartbeat write is late. Either way it is gone
    /// before msgwait ends, provided `watchdog ≥ 2 × (heartbeat_interval + io_timeout)`
    /// (refused otherwise when star.toml is loaded: star-core's node_config).
    pub fn msgwait(&self) -> Duration {
        self.watchdog * 2
    }

    /// Our own heartbeat write counts as late after this: a write still pending past
    /// io_timeout, or no completed write for an interval plus io_timeout (this node was
    /// paused, or its loop starved).
    pub fn own_write_deadline(&self) -> Duration {
        self.heartbeat_interval + self.io_timeout
    }

    /// How long a standby asked to take over waits for the active's hand-over ack
    /// before it falls back to the poison pill: the active's three demotion steps and
    /// two heartbeat intervals for the mailbox messages to be seen.
    pub fn handover_wait(&self) -> Duration {
        self.heartbeat_interval * 2 + self.steps.takeover + self.steps.target + self.io_timeout * 2
    }

    pub fn detect(&self) -> Duration {
        self.peer_dead + self.heartbeat_interval
    }

    pub fn fence(&self) -> Duration {
        self.io_timeout + self.msgwait()
    }

    pub fn promote(&self) -> Duration {
        self.io_timeout + self.steps.target + self.steps.takeover
    }

    /// From the active's death to the standby serving, every step at its timeout.
    pub fn failover_rto(&self) -> Duration {
        self.detect() + self.fence() + self.promote()
    }

    /// A planned switchover with both controllers healthy, every step at its timeout.
    pub fn switchover_rto(&self) -> Duration {
        self.heartbeat_interval * 2
            + self.steps.takeover
            + self.steps.target
            + self.io_timeout
            + self.promote()
    }

    /// The derivation, for `star status`.
    pub fn explain(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "heartbeat every {}, own write late after {} (io_timeout), peer dead after {} unchanged",
            ms(self.heartbeat_interval),
            ms(self.io_timeout),
            ms(self.peer_dead)
        );
        let _ = writeln!(
            s,
            "msgwait = 2 × watchdog {} = {}",
            ms(self.watchdog),
            ms(self.msgwait())
        );
        let _ = writeln!(
            s,
            "failover RTO ≤ detect (peer_dead {} + interval {}) + fence (pill write {} + msgwait {}) \
             + promote (ownership write {} + target {} + takeover {}) = {}",
            ms(self.peer_dead),
            ms(self.heartbeat_interval),
            ms(self.io_timeout),
            ms(self.msgwait()),
            ms(self.io_timeout),
            ms(self.steps.target),
            ms(self.steps.takeover),
            ms(self.failover_rto())
        );
        let _ = writeln!(
            s,
            "planned switchover RTO ≤ 2 × interval {} + release {} + demote {} + ack write {} \
             + promote {} = {}",
            ms(self.heartbeat_interval),
            ms(self.steps.takeover),
            ms(self.steps.target),
            ms(self.io_timeout),
            ms(self.promote()),
            ms(self.switchover_rto())
        );
        s
    }
}

/// The timing of a node with the default step timeouts.
pub fn timing(t: &Timeouts) -> Timing {
    Timing::new(t, StepTimeouts::default())
}

fn ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_derive_the_documented_numbers() {
        let t = timing(&Timeouts::default());
        assert_eq!(t.msgwait(), Duration::from_secs(20));
        // 10.5 s detect + 23 s fence + 23 s promote.
        assert_eq!(t.failover_rto(), Duration::from_millis(56_500));
        assert_eq!(t.switchover_rto(), Duration::from_secs(47));
        let text = t.explain();
        assert!(
            text.contains("msgwait = 2 × watchdog 10 s = 20 s"),
            "{text}"
        );
        assert!(text.contains("= 56500 ms"), "{text}");
    }
}
