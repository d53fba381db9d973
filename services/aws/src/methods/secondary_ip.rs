//! Secondary private IP: the floating address is a secondary IP of the active
//! controller's ENI. Both controllers must be in one subnet (so one AZ, which EBS
//! Multi-Attach needs anyway). Clients keep the address; nothing outside the subnet
//! changes.
//!
//! AssignPrivateIpAddresses with AllowReassignment moves the address from the peer's ENI
//! in one call, but EC2 applies the move asynchronously: for a moment the old ENI may
//! still list it. Acquire therefore waits until this ENI lists it, then removes it from
//! any other ENI that still does, and confirms that this ENI alone holds it.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::client::Client;
use crate::ec2::{self, NetworkInterface};
use crate::error::Error;
use crate::methods::{wait_for, Controller, Seen, EC2_POLL};
use crate::subnet;

/// The secondary-IP method for `address` on this controller's ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryIp {
    pub address: Ipv4Addr,
    pub me: Controller,
}

/// Who holds the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryIpStatus {
    pub address: Ipv4Addr,
    /// This controller's ENI.
    pub our_eni: String,
    /// Every ENI that lists the address, with its instance.
    pub holders: Vec<Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub eni_id: String,
    pub instance_id: Option<String>,
    /// The address is this ENI's primary IP (then it cannot be moved).
    pub primary: bool,
}

impl SecondaryIpStatus {
    /// This ENI holds the address, and no other ENI does.
    pub fn held_by_us(&self) -> bool {
        self.holders.len() == 1 && self.holders[0].eni_id == self.our_eni
    }

    fn others(&self) -> impl Iterator<Item = &Holder> {
        self.holders.iter().filter(|h| h.eni_id != self.our_eni)
    }

    fn ours(&self) -> bool {
        self.holders.iter().any(|h| h.eni_id == self.our_eni)
    }
}

impl fmt::Display for SecondaryIpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holders.is_empty() {
            return write!(f, "{} is on no interface", self.address);
        }
        let list: Vec<String> = self
            .holders
            .iter()
            .map(|h| {
                let who = if h.eni_id == self.our_eni {
                    "this controller".to_string()
                } else {
                    h.instance_id
                        .clone()
                        .unwrap_or_else(|| "no instance".into())
                };
                format!("{} ({who})", h.eni_id)
            })
            .collect();
        write!(f, "{} is on {}", self.address, list.join(" and "))
    }
}

/// Who holds `addr` among `interfaces`. Pure.
pub fn holders(addr: Ipv4Addr, interfaces: &[NetworkInterface]) -> Vec<Holder> {
    interfaces
        .iter()
        .filter(|i| i.holds(addr))
        .map(|i| Holder {
            eni_id: i.id.clone(),
            instance_id: i.instance_id.clone(),
            primary: i.private_ips.first() == Some(&addr),
        })
        .collect()
}

impl SecondaryIp {
    fn what(&self) -> String {
        format!("secondary IP {} on {}", self.address, self.me.eni_id)
    }

    /// Who holds the address among the ENIs of `subnet_id`. An address can only be on
    /// an ENI of its own subnet, so listing the subnet finds every holder. (Filtering on
    /// `addresses.private-ip-address` would return fewer ENIs on AWS, but moto matches
    /// that filter against primary addresses only, and the subnet filter is exact on
    /// both.)
    fn look(
        &self,
        c: &Client,
        subnet_id: &str,
        deadline: Instant,
    ) -> Result<SecondaryIpStatus, Error> {
        let enis = ec2::network_interfaces_in_subnet(c, subnet_id, deadline)?;
        Ok(SecondaryIpStatus {
            address: self.address,
            our_eni: self.me.eni_id.clone(),
            holders: holders(self.address, &enis),
        })
    }

    /// Moves the address to this controller's ENI and confirms that it alone holds it.
    /// Refused, before any change, when the address is not an assignable address of the
    /// ENI's subnet or is another interface's primary address.
    pub fn acquire(&self, c: &Client, deadline: Instant) -> Result<String, Error> {
        let what = self.what();
        let ctx = |e: Error| e.within(&what);
        let eni = ec2::describe_network_interface(c, &self.me.eni_id, deadline).map_err(ctx)?;
        let subnet = ec2::describe_subnet(c, &eni.subnet_id, deadline).map_err(ctx)?;
        subnet::check_assignable(self.address, &subnet.id, subnet.cidr)
            .map_err(|why| Error::refused(&what, why))?;
        let before = self.look(c, &subnet.id, deadline).map_err(ctx)?;
        if let Some(p) = before.holders.iter().find(|h| h.primary) {
            return Err(Error::refused(
                &what,
                format!(
                    "{} is the primary address of {} ({}): a floating address must not be \
                     any interface's primary address",
                    self.address,
                    p.eni_id,
                    p.instance_id.as_deref().unwrap_or("no instance")
                ),
            ));
        }
        if before.held_by_us() {
            return Ok(format!(
                "{} already on {} (this controller) alone",
                self.address, self.me.eni_id
            ));
        }
        let previous: Vec<String> = before.others().map(|h| h.eni_id.clone()).collect();
        if !before.ours() {
            ec2::assign_private_ip(c, &self.me.eni_id, self.address, deadline).map_err(ctx)?;
        }
        // EC2 moves the address asynchronously: wait until this ENI lists it.
        let mut now = wait_for(&what, EC2_POLL, deadline, || {
            let s = self.look(c, &subnet.id, deadline).map_err(ctx)?;
            Ok(if s.ours() {
                Seen::Done(s)
            } else {
                Seen::NotYet(s.to_string())
            })
        })?;
        // Then make sure no other ENI keeps it. On AWS the old ENI drops it by itself
        // moments later; removing it explicitly makes that certain (and it is what has
        // to happen against moto, which never removes a reassigned address).
        let stale: Vec<String> = now.others().map(|h| h.eni_id.clone()).collect();
        for other in &stale {
            if let Err(e) = ec2::unassign_private_ip(c, other, self.address, deadline) {
                // It may have gone from that ENI between the look and the call: look again.
                now = self.look(c, &subnet.id, deadline).map_err(ctx)?;
                if now.holders.iter().any(|h| &h.eni_id == other) {
                    return Err(ctx(e));
                }
            }
        }
        wait_for(&what, EC2_POLL, deadline, || {
            let s = self.look(c, &subnet.id, deadline).map_err(ctx)?;
            Ok(if s.held_by_us() {
                Seen::Done(())
            } else {
                Seen::NotYet(s.to_string())
            })
        })?;
        Ok(if previous.is_empty() {
            format!(
                "{} assigned to {} (this controller)",
                self.address, self.me.eni_id
            )
        } else {
            format!(
                "{} moved from {} to {} (this controller)",
                self.address,
                previous.join(", "),
                self.me.eni_id
            )
        })
    }

    /// Removes the address from this controller's ENI, if it is there, and confirms it is
    /// gone. The peer's ENI is never touched.
    pub fn release(&self, c: &Client, deadline: Instant) -> Result<String, Error> {
        let what = self.what();
        let ctx = |e: Error| e.within(&what);
        let eni = ec2::describe_network_interface(c, &self.me.eni_id, deadline).map_err(ctx)?;
        if !eni.holds(self.address) {
            return Ok(format!(
                "{} was not on {} (this controller); nothing to release",
                self.address, self.me.eni_id
            ));
        }
        if let Err(e) = ec2::unassign_private_ip(c, &self.me.eni_id, self.address, deadline) {
            // A retried request may have failed only because the first one worked.
            let again =
                ec2::describe_network_interface(c, &self.me.eni_id, deadline).map_err(ctx)?;
            if again.holds(self.address) {
                return Err(ctx(e));
            }
        }
        wait_for(&what, EC2_POLL, deadline, || {
            let i = ec2::describe_network_interface(c, &self.me.eni_id, deadline).map_err(ctx)?;
            Ok(if i.holds(self.address) {
                Seen::NotYet(format!("{} still lists {}", i.id, self.address))
            } else {
                Seen::Done(())
            })
        })?;
        Ok(format!(
            "{} removed from {} (this controller)",
            self.address, self.me.eni_id
        ))
    }

    /// Which ENIs (and instances) hold the address.
    pub fn status(&self, c: &Client, deadline: Instant) -> Result<SecondaryIpStatus, Error> {
        let what = self.what();
        let eni = ec2::describe_network_interface(c, &self.me.eni_id, deadline)
            .map_err(|e| e.within(&what))?;
        self.look(c, &eni.subnet_id, deadline)
            .map_err(|e| e.within(&what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eni(id: &str, inst: Option<&str>, ips: &[[u8; 4]]) -> NetworkInterface {
        NetworkInterface {
            id: id.into(),
            subnet_id: "subnet-1".into(),
            instance_id: inst.map(Into::into),
            private_ips: ips.iter().map(|a| Ipv4Addr::from(*a)).collect(),
        }
    }

    #[test]
    fn holders_and_the_status_line() {
        let addr = Ipv4Addr::new(10, 0, 1, 100);
        let enis = [
            eni("eni-1", Some("i-1"), &[[10, 0, 1, 10], [10, 0, 1, 100]]),
            eni("eni-2", Some("i-2"), &[[10, 0, 1, 11]]),
        ];
        let s = SecondaryIpStatus {
            address: addr,
            our_eni: "eni-1".into(),
            holders: holders(addr, &enis),
        };
        assert!(s.held_by_us());
        assert_eq!(s.to_string(), "10.0.1.100 is on eni-1 (this controller)");
        let theirs = SecondaryIpStatus {
            our_eni: "eni-2".into(),
            ..s.clone()
        };
        assert!(!theirs.held_by_us());
        assert_eq!(theirs.to_string(), "10.0.1.100 is on eni-1 (i-1)");
        let both = SecondaryIpStatus {
            holders: holders(
                addr,
                &[
                    eni("eni-1", Some("i-1"), &[[10, 0, 1, 10], [10, 0, 1, 100]]),
                    eni("eni-2", None, &[[10, 0, 1, 11], [10, 0, 1, 100]]),
                ],
            ),
            ..s.clone()
        };
        assert!(!both.held_by_us(), "held by two is not held by us alone");
        assert_eq!(
            both.to_string(),
            "10.0.1.100 is on eni-1 (this controller) and eni-2 (no instance)"
        );
        let none = SecondaryIpStatus {
            holders: vec![],
            ..s
        };
        assert!(!none.held_by_us());
        assert_eq!(none.to_string(), "10.0.1.100 is on no interface");
    }

    #[test]
    fn a_primary_address_is_marked() {
        let addr = Ipv4Addr::new(10, 0, 1, 10);
        let h = holders(addr, &[eni("eni-1", None, &[[10, 0, 1, 10]])]);
        assert!(h[0].primary);
    }
}
