//! Bursts of announcements: the loop, without the sockets, so its counting and its
//! stopping are tested without a network or a clock.

use std::time::Duration;

/// What happened to one packet of a burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Sent,
    /// This packet could not be sent; the next ones are still tried (a full transmit queue
    /// or a brief carrier loss passes).
    Failed(String),
    /// The burst must end here: the address is not ours any more.
    Stop(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// "gratuitous ARP" or "unsolicited neighbour advertisements".
    pub what: &'static str,
    pub count: u32,
    pub sent: u32,
    pub interval: Duration,
    pub last_error: Option<String>,
    pub stopped: Option<String>,
}

impl Report {
    /// At least one packet went out: neighbours that heard it moved their entry.
    pub fn any_sent(&self) -> bool {
        self.sent > 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sent == self.count {
            write!(f, "{} {} sent", self.sent, self.what)?;
        } else {
            write!(f, "{} of {} {} sent", self.sent, self.count, self.what)?;
        }
        if self.count > 1 {
            write!(f, " at {} ms intervals", self.interval.as_millis())?;
        }
        if let Some(why) = &self.stopped {
            write!(f, ", then stopped: {why}")?;
        }
        if let Some(e) = &self.last_error {
            write!(f, " (last error: {e})")?;
        }
        Ok(())
    }
}

/// Sends `count` packets `interval` apart through `send` (given the packet's number from
/// 0), sleeping through `sleep` between them, never after the last.
pub fn burst(
    what: &'static str,
    count: u32,
    interval: Duration,
    mut send: impl FnMut(u32) -> Step,
    mut sleep: impl FnMut(Duration),
) -> Report {
    let mut report = Report {
        what,
        count,
        sent: 0,
        interval,
        last_error: None,
        stopped: None,
    };
    for n in 0..count {
        if n > 0 {
            sleep(interval);
        }
        match send(n) {
            Step::Sent => report.sent += 1,
            Step::Failed(e) => report.last_error = Some(e),
            Step::Stop(why) => {
                report.stopped = Some(why);
                break;
            }
        }
    }
    report
}

/// Lets a release stop what an earlier acquire left to do later (the second burst): each
/// packet of it goes out through [`Guard::run_if_current`], and the service makes that
/// refuse once a newer acquire or release began. The check and the packet happen under
/// one lock that the release takes too, so no packet of an old burst can follow a release.
pub trait Guard: Send + Sync {
    /// Runs `step` and returns true, or returns false without running it when the action
    /// that made this guard is no longer the latest.
    fn run_if_current(&self, step: &mut dyn FnMut()) -> bool;
}

/// For the one-shot command, which has no later requests to be overtaken by: whether the
/// address is still held is all that is checked, by the method itself.
pub struct Unguarded;

impl Guard for Unguarded {
    fn run_if_current(&self, step: &mut dyn FnMut()) -> bool {
        step();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(count: u32, steps: Vec<Step>) -> (Report, Vec<Duration>, u32) {
        let mut steps = steps.into_iter();
        let mut slept = Vec::new();
        let mut calls = 0;
        let report = burst(
            "gratuitous ARP",
            count,
            Duration::from_millis(200),
            |n| {
                assert_eq!(n, calls, "packets are numbered in order");
                calls += 1;
                steps.next().unwrap_or(Step::Sent)
            },
            |d| slept.push(d),
        );
        (report, slept, calls)
    }

    #[test]
    fn a_burst_sends_count_packets_with_interval_sleeps_between() {
        let (report, slept, calls) = run(5, vec![]);
        assert_eq!(calls, 5);
        assert_eq!(
            slept,
            vec![Duration::from_millis(200); 4],
            "none after the last"
        );
        assert_eq!(report.sent, 5);
        assert_eq!(
            report.to_string(),
            "5 gratuitous ARP sent at 200 ms intervals"
        );
        let (report, slept, _) = run(1, vec![]);
        assert!(slept.is_empty());
        assert_eq!(report.to_string(), "1 gratuitous ARP sent");
    }

    #[test]
    fn failures_are_counted_and_the_burst_goes_on() {
        let (report, _, calls) = run(
            3,
            vec![Step::Failed("ENOBUFS".into()), Step::Sent, Step::Sent],
        );
        assert_eq!(calls, 3);
        assert!(report.any_sent());
        assert_eq!(
            report.to_string(),
            "2 of 3 gratuitous ARP sent at 200 ms intervals (last error: ENOBUFS)"
        );
        let (report, _, _) = run(2, vec![Step::Failed("ENETDOWN".into()); 2]);
        assert!(!report.any_sent());
    }

    #[test]
    fn a_stop_ends_the_burst_at_once() {
        let (report, slept, calls) = run(
            5,
            vec![
                Step::Sent,
                Step::Stop("192.0.2.100 is no longer on eth0".into()),
            ],
        );
        assert_eq!(calls, 2);
        assert_eq!(slept.len(), 1);
        assert_eq!(
            report.to_string(),
            "1 of 5 gratuitous ARP sent at 200 ms intervals, then stopped: 192.0.2.100 is no \
             longer on eth0"
        );
    }

    #[test]
    fn unguarded_always_runs() {
        let mut ran = 0;
        assert!(Unguarded.run_if_current(&mut || ran += 1));
        assert_eq!(ran, 1);
    }
}
