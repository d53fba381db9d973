//! The floating address on the client interface, over netlink (star-net's): what is
//! there, and the changes of [`crate::plan`] applied and confirmed. Every method that puts
//! the address on the node itself uses this: L2 with its announcements, and the AWS
//! secondary-IP and route-table methods after their API calls.

use crate::plan::{self, Change, Copy};
use star_net::netlink::{LinkInfo, Netlink};
use std::net::IpAddr;

/// The floating address and the interface it belongs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    /// The client interface's name, from star.toml.
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// What the kernel lists, at one moment.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The client interface, or why it cannot be used.
    pub link: Result<LinkInfo, String>,
    /// Every copy of the floating address, with its interface's name.
    pub copies: Vec<(Copy, String)>,
}

impl Observed {
    pub fn copies(&self) -> Vec<Copy> {
        self.copies.iter().map(|c| c.0).collect()
    }
}

/// "52:54:00:12:34:56".
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl LocalAddress {
    /// "192.0.2.100/24".
    /// Puts the address on its interface (stray copies removed) and confirms it, with no
    /// announcement: for the AWS methods, where the VPC routes the address and the OS
    /// only has to accept it.
    pub fn put_on(&self, nl: &mut Netlink) -> Result<String, String> {
        let before = self.observe(nl)?;
        let link = before.link.clone()?;
        let changes = crate::plan::acquire(&before.copies(), link.index, self.prefix_len);
        self.apply(nl, &changes)?;
        let after = self.observe(nl)?;
        if self.held(&after) {
            Ok(format!("{} on {}", self.cidr(), link.name))
        } else {
            Err(format!(
                "{} on {}: the kernel does not list it as added: {}",
                self.cidr(),
                link.name,
                self.describe(&after)
            ))
        }
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix_len)
    }

    pub fn observe(&self, nl: &mut Netlink) -> Result<Observed, String> {
        let links = nl.links()?;
        let addresses = nl.all_addresses()?;
        let name_of = |index: u32| {
            links
                .iter()
                .find(|l| l.index == index)
                .map_or_else(|| format!("interface #{index}"), |l| l.name.clone())
        };
        let copies = addresses
            .iter()
            .filter(|a| a.address == self.address)
            .map(|a| {
                (
                    Copy {
                        index: a.index,
                        prefix_len: a.prefix_len,
                        usable: !a.dad_failed,
                    },
                    name_of(a.index),
                )
            })
            .collect();
        let link = match links.iter().find(|l| l.name == self.interface) {
            Some(l) => Ok(l.clone()),
            None => {
                let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
                Err(self.missing(&names))
            }
        };
        Ok(Observed { link, copies })
    }

    fn missing(&self, known: &[&str]) -> String {
        format!(
            "interface {} (purpose client) does not exist (interfaces: {})",
            self.interface,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    }

    /// Why the address cannot be put on this link and announced from it, if it cannot.
    /// Checked before anything is changed.
    pub fn unusable(&self, link: &LinkInfo) -> Option<String> {
        let name = &self.interface;
        if !link.up {
            Some(format!(
                "interface {name} (purpose client) is down: star-net brings it up (star net status)"
            ))
        } else if !link.carrier {
            Some(format!(
                "interface {name} (purpose client) has no carrier: its cable or virtual \
                 network is disconnected, so no client could reach the address here"
            ))
        } else {
            None
        }
    }

    /// Held as configured: on the client interface with its prefix, and nowhere else.
    pub fn held(&self, observed: &Observed) -> bool {
        match &observed.link {
            Ok(link) => plan::held(&observed.copies(), link.index, self.prefix_len),
            Err(_) => false,
        }
    }

    /// Applies the changes in order; the first failure ends it. Whether it worked is
    /// decided by looking again, by the caller.
    pub fn apply(&self, nl: &mut Netlink, changes: &[Change]) -> Result<(), String> {
        for change in changes {
            match (*change, self.address) {
                (Change::Add { index, prefix_len }, IpAddr::V4(a)) => {
                    nl.add_address(index, a, prefix_len, None)?
                }
                (Change::Add { index, prefix_len }, IpAddr::V6(a)) => {
                    nl.add_address6(index, a, prefix_len)?
                }
                (Change::Remove { index, prefix_len }, IpAddr::V4(a)) => {
                    nl.delete_address(index, a, prefix_len)?
                }
                (Change::Remove { index, prefix_len }, IpAddr::V6(a)) => {
                    nl.delete_address6(index, a, prefix_len)?
                }
            }
        }
        Ok(())
    }

    /// Takes every copy off, and says whether any is left: what a failed acquire does
    /// before it reports, and what release does.
    pub fn remove_all(&self, nl: &mut Netlink) -> Result<Vec<String>, String> {
        let before = self.observe(nl)?;
        let removed: Vec<String> = before.copies.iter().map(|(_, name)| name.clone()).collect();
        let applied = self.apply(nl, &plan::release(&before.copies()));
        let after = self.observe(nl)?;
        if after.copies.is_empty() {
            return Ok(removed);
        }
        Err(format!(
            "{} is still {}{}",
            self.address,
            self.where_(&after),
            applied.err().map(|e| format!(" ({e})")).unwrap_or_default()
        ))
    }

    /// "on eth0 as /24", "on eth0 as /32 and on eth1 as /24", "on no interface of this node".
    fn where_(&self, observed: &Observed) -> String {
        if observed.copies.is_empty() {
            return "on no interface of this node".into();
        }
        observed
            .copies
            .iter()
            .map(|(c, name)| {
                format!(
                    "on {name} as /{}{}",
                    c.prefix_len,
                    if c.usable {
                        ""
                    } else {
                        " (duplicate address detected)"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// What status reports, in words.
    pub fn describe(&self, observed: &Observed) -> String {
        let link = match &observed.link {
            Ok(l) => format!(
                "{} is {}, {}{}",
                l.name,
                if l.up { "up" } else { "down" },
                if l.carrier { "carrier" } else { "no carrier" },
                l.mac
                    .map(|m| format!(", MAC {}", mac_text(&m)))
                    .unwrap_or_default()
            ),
            Err(e) => e.clone(),
        };
        let state = if self.held(observed) {
            format!("{} on {}", self.cidr(), self.interface)
        } else if observed.copies.is_empty() {
            format!("{} is on no interface of this node", self.address)
        } else {
            format!(
                "{} is {}, not as configured ({} on {})",
                self.address,
                self.where_(observed),
                self.cidr(),
                self.interface
            )
        };
        format!("{state}; {link}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalAddress {
        LocalAddress {
            interface: "eth0".into(),
            address: "192.0.2.100".parse().unwrap(),
            prefix_len: 24,
        }
    }

    fn link(up: bool, carrier: bool) -> LinkInfo {
        LinkInfo {
            name: "eth0".into(),
            index: 2,
            up,
            carrier,
            mtu: 1500,
            mac: Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        }
    }

    fn copy(index: u32, prefix_len: u8, name: &str) -> (Copy, String) {
        (
            Copy {
                index,
                prefix_len,
                usable: true,
            },
            name.into(),
        )
    }

    #[test]
    fn status_in_words() {
        let l = local();
        let held = Observed {
            link: Ok(link(true, true)),
            copies: vec![copy(2, 24, "eth0")],
        };
        assert!(l.held(&held));
        assert_eq!(
            l.describe(&held),
            "192.0.2.100/24 on eth0; eth0 is up, carrier, MAC 52:54:00:12:34:56"
        );
        let nowhere = Observed {
            link: Ok(link(true, false)),
            copies: vec![],
        };
        assert!(!l.held(&nowhere));
        assert_eq!(
            l.describe(&nowhere),
            "192.0.2.100 is on no interface of this node; eth0 is up, no carrier, MAC \
             52:54:00:12:34:56"
        );
        let astray = Observed {
            link: Ok(link(true, true)),
            copies: vec![copy(2, 32, "eth0"), copy(3, 24, "eth1")],
        };
        assert!(!l.held(&astray));
        assert!(
            l.describe(&astray).starts_with(
                "192.0.2.100 is on eth0 as /32 and on eth1 as /24, not as configured \
                 (192.0.2.100/24 on eth0)"
            ),
            "{}",
            l.describe(&astray)
        );
        let no_link = Observed {
            link: Err(l.missing(&["lo", "eth1"])),
            copies: vec![copy(3, 24, "eth1")],
        };
        assert!(!l.held(&no_link), "not on the client interface");
        assert_eq!(
            l.describe(&no_link),
            "192.0.2.100 is on eth1 as /24, not as configured (192.0.2.100/24 on eth0); \
             interface eth0 (purpose client) does not exist (interfaces: lo, eth1)"
        );
    }

    #[test]
    fn a_link_must_be_up_with_a_carrier() {
        let l = local();
        assert_eq!(l.unusable(&link(true, true)), None);
        assert_eq!(
            l.unusable(&link(false, false)).unwrap(),
            "interface eth0 (purpose client) is down: star-net brings it up (star net status)"
        );
        assert!(l
            .unusable(&link(true, false))
            .unwrap()
            .starts_with("interface eth0 (purpose client) has no carrier"));
        assert_eq!(
            l.missing(&[]),
            "interface eth0 (purpose client) does not exist (interfaces: none)"
        );
    }
}
