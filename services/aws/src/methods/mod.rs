//! The ways a floating address moves on AWS, as operations star-takeover calls: acquire
//! (this controller becomes the one clients reach), release (it stops being), status
//! (who is it now). Each operation
//!
//! - is idempotent: acquiring what is already held re-confirms it, releasing what is
//!   not held succeeds;
//! - is bounded by the caller's deadline, retries included;
//! - confirms its result through a Describe/Get call before it reports success, because
//!   EC2 applies some changes asynchronously (a reassigned secondary IP) and Route 53
//!   takes time to reach its name servers;
//! - checks what it can before changing anything, so that a configuration mistake
//!   leaves AWS as it was and says what to fix;
//! - returns a short line for the log and `star status` on success.

pub mod fence;
pub mod route53;
pub mod route_table;
pub mod secondary_ip;

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::imds::Imds;

pub use fence::{instance_state, stop_instance};
pub use route53::{DnsRecord, DnsStatus};
pub use route_table::{RouteTableStatus, RouteTables};
pub use secondary_ip::{SecondaryIp, SecondaryIpStatus};

/// This controller as EC2 knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub instance_id: String,
    /// The ENI the floating address moves to: the one on the client network.
    pub eni_id: String,
}

impl Controller {
    /// From the metadata service: this instance's id and the ENI of the interface with
    /// MAC address `mac` (from /sys/class/net/IF/address), or of the primary interface.
    pub fn from_imds(imds: &Imds, mac: Option<&str>, deadline: Instant) -> Result<Self, Error> {
        let instance_id = imds.instance_id(deadline)?;
        let mac = match mac {
            Some(m) => m.to_string(),
            None => imds.primary_mac(deadline)?,
        };
        Ok(Controller {
            instance_id,
            eni_id: imds.interface_id(&mac, deadline)?,
        })
    }
}

/// A takeover method with its parameters: one type for star-takeover to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    SecondaryIp(SecondaryIp),
    RouteTables(RouteTables),
    Route53(DnsRecord),
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    SecondaryIp(SecondaryIpStatus),
    RouteTables(RouteTableStatus),
    Route53(DnsStatus),
}

impl Status {
    /// Whether clients reach this controller by the floating address now.
    pub fn held_by_us(&self) -> bool {
        match self {
            Status::SecondaryIp(s) => s.held_by_us(),
            Status::RouteTables(s) => s.held_by_us(),
            Status::Route53(s) => s.held_by_us(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::SecondaryIp(s) => s.fmt(f),
            Status::RouteTables(s) => s.fmt(f),
            Status::Route53(s) => s.fmt(f),
        }
    }
}

impl Method {
    pub fn acquire(&self, c: &Client, deadline: Instant) -> Result<String, Error> {
        match self {
            Method::SecondaryIp(m) => m.acquire(c, deadline),
            Method::RouteTables(m) => m.acquire(c, deadline),
            Method::Route53(m) => m.acquire(c, deadline),
        }
    }

    pub fn release(&self, c: &Client, deadline: Instant) -> Result<String, Error> {
        match self {
            Method::SecondaryIp(m) => m.release(c, deadline),
            Method::RouteTables(m) => Ok(m.release()),
            Method::Route53(m) => Ok(m.release()),
        }
    }

    pub fn status(&self, c: &Client, deadline: Instant) -> Result<Status, Error> {
        Ok(match self {
            Method::SecondaryIp(m) => Status::SecondaryIp(m.status(c, deadline)?),
            Method::RouteTables(m) => Status::RouteTables(m.status(c, deadline)?),
            Method::Route53(m) => Status::Route53(m.status(c, deadline)?),
        })
    }
}

/// One look at the state being waited for.
pub(crate) enum Seen<T> {
    Done(T),
    /// Not yet; what was seen instead, for the error if it stays that way.
    NotYet(String),
}

/// How often to look again while waiting for a change to show: `first` after the first
/// look, doubling up to `max`. Early looks catch a change that shows at once; later
/// ones stay under the APIs' request rates (Route 53 allows five per second per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Poll {
    pub first: Duration,
    pub max: Duration,
}

impl Poll {
    /// The wait after look number `look` (1 for the first). Pure.
    pub fn interval(&self, look: u32) -> Duration {
        self.first
            .checked_mul(1u32 << look.saturating_sub(1).min(20))
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// EC2 state (a reassigned address, a replaced route, a stopping instance) usually shows
/// within a second.
pub(crate) const EC2_POLL: Poll = Poll {
    first: Duration::from_millis(200),
    max: Duration::from_secs(1),
};

/// Looks at the state with `check` until it is as wanted or `deadline` passes, waiting
/// between looks as `poll` says. The first look is immediate.
pub(crate) fn wait_for<T>(
    what: &str,
    poll: Poll,
    deadline: Instant,
    mut check: impl FnMut() -> Result<Seen<T>, Error>,
) -> Result<T, Error> {
    let started = Instant::now();
    let mut looks = 0;
    loop {
        looks += 1;
        let seen = match check()? {
            Seen::Done(v) => return Ok(v),
            Seen::NotYet(s) => s,
        };
        let now = Instant::now();
        let interval = poll.interval(looks);
        if now + interval >= deadline {
            return Err(Error::new(
                what,
                ErrorKind::NotConfirmed(format!(
                    "after {looks} look{} over {:.1} s: {seen}",
                    if looks == 1 { "" } else { "s" },
                    (now - started).as_secs_f64()
                )),
                0,
            ));
        }
        thread::sleep(interval);
    }
}

/// A `*.NotFound`-style AWS error turned into a refusal that names what is missing.
pub(crate) fn missing_is_refusal(e: Error, codes: &[&str]) -> Error {
    match &e.kind {
        ErrorKind::Aws { code, message, .. } if codes.contains(&code.as_str()) => Error {
            kind: ErrorKind::Refused(format!("{code}: {message}")),
            ..e
        },
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_double_up_to_their_maximum() {
        let p = Poll {
            first: Duration::from_millis(250),
            max: Duration::from_secs(2),
        };
        let ms: Vec<u128> = (1..=7).map(|l| p.interval(l).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 2000, 2000, 2000]);
        assert_eq!(p.interval(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn waiting_ends_at_the_deadline_with_what_was_seen() {
        let p = Poll {
            first: Duration::from_millis(20),
            max: Duration::from_millis(20),
        };
        let mut looks = 0;
        let e = wait_for::<()>(
            "route x",
            p,
            Instant::now() + Duration::from_millis(70),
            || {
                looks += 1;
                Ok(Seen::NotYet(format!("look {looks}")))
            },
        )
        .unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NotConfirmed(_)));
        assert!((2..=4).contains(&looks), "{looks}");
        assert!(e
            .to_string()
            .starts_with("route x: not confirmed before the deadline: after "));
        assert!(e.to_string().ends_with(&format!("look {looks}")), "{e}");
        let v = wait_for("x", p, Instant::now() + Duration::from_secs(1), || {
            Ok(Seen::Done(7))
        });
        assert_eq!(v.unwrap(), 7);
    }
}
