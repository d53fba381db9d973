//! Route 53 A record: clients use a DNS name, and the active controller UPSERTs the
//! record to its own address. Works across zones (each controller in its own subnet);
//! the cost is DNS: the change must reach Route 53's name servers (INSYNC, usually well
//! under a minute) and clients keep the old answer for the record's TTL.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::Error;
use crate::methods::{missing_is_refusal, wait_for, Poll, Seen};
use crate::route53::{self, request::fqdn, request::zone_id, RecordSet};

/// How often a PENDING change is looked at: from a quarter second (moto, and small
/// changes on a quiet day) to every 2 s. Route 53 documents that changes usually reach
/// all its name servers within 60 seconds; the CLI's waiter polls every 30 s, which is
/// far too slow for a takeover.
const CHANGE_POLL: Poll = Poll {
    first: Duration::from_millis(250),
    max: Duration::from_secs(2),
};

/// The Route 53 method: the A record `name` in `hosted_zone_id` with `ttl`, pointing at
/// `value` (this controller's own address on the client network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub hosted_zone_id: String,
    pub name: String,
    pub ttl: u32,
    pub value: Ipv4Addr,
}

/// The record as Route 53 has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsStatus {
    pub name: String,
    /// This controller's address.
    pub ours: Ipv4Addr,
    /// The record, or `None` when the zone has no A record of that name.
    pub record: Option<RecordSet>,
}

impl DnsStatus {
    /// The record answers with this controller's address alone.
    pub fn held_by_us(&self) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| r.values == [self.ours.to_string()])
    }
}

impl fmt::Display for DnsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            None => write!(f, "{} has no A record", self.name),
            Some(r) => {
                write!(f, "{} A {}", self.name, r.values.join(" "))?;
                if let Some(ttl) = r.ttl {
                    write!(f, " (TTL {ttl} s)")?;
                }
                if self.held_by_us() {
                    write!(f, " (this controller)")?;
                }
                Ok(())
            }
        }
    }
}

impl DnsRecord {
    fn what(&self) -> String {
        format!(
            "Route 53 record {} in {}",
            fqdn(&self.name),
            zone_id(&self.hosted_zone_id)
        )
    }

    /// UPSERTs the record to this controller's address, waits until the change is
    /// INSYNC, and reads the record back. A missing hosted zone, or a name outside it,
    /// is refused by Route 53 without any change.
    pub fn acquire(&self, c: &Client, deadline: Instant) -> Result<String, Error> {
        let what = self.what();
        let change = route53::upsert_a(
            c,
            &self.hosted_zone_id,
            &self.name,
            self.ttl,
            self.value,
            deadline,
        )
        .map_err(|e| {
            missing_is_refusal(
                e,
                &["NoSuchHostedZone", "InvalidChangeBatch", "InvalidInput"],
            )
            .within(&what)
        })?;
        let started = Instant::now();
        let id = change.id.clone();
        // The first look is the UPSERT's own answer; after that, GetChange.
        let mut first = Some(change);
        wait_for(&what, CHANGE_POLL, deadline, || {
            let info = match first.take() {
                Some(info) => info,
                None => route53::get_change(c, &id, deadline).map_err(|e| e.within(&what))?,
            };
            Ok(if info.in_sync() {
                Seen::Done(())
            } else {
                Seen::NotYet(format!("change {} is {}", info.id, info.status))
            })
        })?;
        let status = self.status(c, deadline)?;
        if !status.held_by_us() {
            return Err(Error::new(
                &what,
                crate::error::ErrorKind::NotConfirmed(format!(
                    "change {id} is INSYNC but the record reads: {status}"
                )),
                0,
            ));
        }
        Ok(format!(
            "{} A {} (this controller), TTL {} s, INSYNC after {:.1} s",
            fqdn(&self.name),
            self.value,
            self.ttl,
            started.elapsed().as_secs_f64()
        ))
    }

    /// Nothing to undo on AWS: the record keeps pointing at this controller until the
    /// peer's acquire UPSERTs its own address. Deleting it would make the name fail to
    /// resolve, and resolvers cache that failure (the zone's negative TTL), which is
    /// worse for clients than an answer that is about to change.
    pub fn release(&self) -> String {
        format!(
            "{} left as it is: the record changes when the peer's acquire UPSERTs it",
            fqdn(&self.name)
        )
    }

    /// The record's current value.
    pub fn status(&self, c: &Client, deadline: Instant) -> Result<DnsStatus, Error> {
        let record = route53::a_record(c, &self.hosted_zone_id, &self.name, deadline)
            .map_err(|e| missing_is_refusal(e, &["NoSuchHostedZone"]).within(&self.what()))?;
        Ok(DnsStatus {
            name: fqdn(&self.name),
            ours: self.value,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_shows_the_record_and_whose_it_is() {
        let rec = |values: &[&str]| {
            Some(RecordSet {
                name: "star.example.internal.".into(),
                kind: "A".into(),
                ttl: Some(10),
                values: values.iter().map(|v| v.to_string()).collect(),
            })
        };
        let s = DnsStatus {
            name: "star.example.internal.".into(),
            ours: Ipv4Addr::new(10, 0, 2, 10),
            record: rec(&["10.0.2.10"]),
        };
        assert!(s.held_by_us());
        assert_eq!(
            s.to_string(),
            "star.example.internal. A 10.0.2.10 (TTL 10 s) (this controller)"
        );
        let theirs = DnsStatus {
            record: rec(&["10.0.3.10"]),
            ..s.clone()
        };
        assert!(!theirs.held_by_us());
        assert_eq!(
            theirs.to_string(),
            "star.example.internal. A 10.0.3.10 (TTL 10 s)"
        );
        let both = DnsStatus {
            record: rec(&["10.0.2.10", "10.0.3.10"]),
            ..s.clone()
        };
        assert!(!both.held_by_us());
        let none = DnsStatus { record: None, ..s };
        assert!(!none.held_by_us());
        assert_eq!(none.to_string(), "star.example.internal. has no A record");
    }
}
