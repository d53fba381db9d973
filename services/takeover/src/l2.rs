//! Method `arp`: the controllers share the clients' L2 network. Acquire puts the address
//! on the client interface (netlink), confirms the kernel lists it, and announces it:
//! a burst of gratuitous ARP (IPv4) or unsolicited neighbour advertisements (IPv6), which
//! acquire waits for, and a second burst later (star.toml's `garp_*`), which it does not.
//! Release takes every copy of the address off the node. Status looks.
//!
//! Before anything changes, acquire checks that the client interface exists, is up, has
//! a carrier and an Ethernet address, and that the announcement socket opens: a bad
//! configuration or a missing privilege changes nothing. A failure after the address was
//! added (the kernel does not list it, or not one announcement could be sent) takes the
//! address off again before reporting: a failed acquire never leaves the address on a
//! node that neighbours were not told about, and star-heartbeat, which treats the failure
//! as "not held", is right.

use crate::address::{mac_text, LocalAddress};
use crate::announce::{burst, Guard, Report, Step};
use crate::frames::{gratuitous_arp, unsolicited_na, Mac};
use crate::method::{Acquired, FloatingMethod, Later, Observation};
use crate::packet::PacketSocket;
use crate::plan::{self, Change};
use star_core::node_config::{Floating, Garp};
use star_net::netlink::Netlink;
use std::net::IpAddr;

pub struct L2 {
    local: LocalAddress,
    garp: Garp,
}

/// What the announcements are called, by family.
fn announcement_name(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "gratuitous ARP",
        IpAddr::V6(_) => "unsolicited neighbour advertisements",
    }
}

/// The frame that tells neighbours `address` is at `mac`.
pub fn announcement(mac: Mac, address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => gratuitous_arp(mac, a),
        IpAddr::V6(a) => unsolicited_na(mac, a),
    }
}

fn netlink() -> Result<Netlink, String> {
    Netlink::open().map_err(|e| format!("open a netlink socket: {e}"))
}

impl L2 {
    pub fn new(client_interface: String, floating: &Floating) -> L2 {
        L2 {
            local: LocalAddress {
                interface: client_interface,
                address: floating.address,
                prefix_len: floating.prefix_len,
            },
            garp: floating.garp,
        }
    }

    fn what(&self) -> &'static str {
        announcement_name(self.local.address)
    }

    fn acquire_on(&self, nl: &mut Netlink) -> Result<Acquired, String> {
        let cidr = self.local.cidr();
        let before = self.local.observe(nl)?;
        let link = before.link.clone()?;
        if let Some(why) = self.local.unusable(&link) {
            return Err(why);
        }
        let mac = link.mac.ok_or_else(|| {
            format!(
                "interface {} (purpose client) has no Ethernet address: method arp \
                 announces the floating address from one",
                link.name
            )
        })?;
        let socket = PacketSocket::open(link.index).map_err(|e| {
            format!(
                "open a packet socket on {} to send {}: {e}",
                link.name,
                self.what()
            )
        })?;
        let frame = announcement(mac, self.local.address);

        // From here on, a failure takes the address off again.
        let changes = plan::acquire(&before.copies(), link.index, self.local.prefix_len);
        let added = changes.iter().any(|c| matches!(c, Change::Add { .. }));
        let strays = changes.len() - usize::from(added);
        let applied = self.local.apply(nl, &changes);
        let why = match (applied, self.local.observe(nl)) {
            (_, Ok(after)) if self.local.held(&after) => None,
            (Err(e), _) | (Ok(()), Err(e)) => Some(e),
            (Ok(()), Ok(after)) => Some(format!(
                "the kernel does not list it as added: {}",
                self.local.describe(&after)
            )),
        };
        if let Some(why) = why {
            return Err(self.undo(nl, format!("{cidr} on {}: {why}", link.name)));
        }

        let report = burst(
            self.what(),
            self.garp.count,
            self.garp.interval,
            |_| match socket.send(&frame) {
                Ok(()) => Step::Sent,
                Err(e) => Step::Failed(e.to_string()),
            },
            std::thread::sleep,
        );
        if !report.any_sent() {
            return Err(self.undo(
                nl,
                format!(
                    "{cidr} was put on {} but no {} could be sent ({})",
                    link.name,
                    self.what(),
                    report
                        .last_error
                        .as_deref()
                        .unwrap_or("no packet was tried")
                ),
            ));
        }

        let later = self.garp.repeat_after.map(|after| {
            let what = format!("second burst of {} {}", self.garp.count, self.what());
            let local = self.local.clone();
            let garp = self.garp;
            let index = link.index;
            Later {
                after,
                what,
                run: Box::new(move |guard: &dyn Guard| repeat(&local, garp, index, mac, guard)),
            }
        });
        let message = format!(
            "{cidr} on {} ({}): {}{}; {report}{}",
            link.name,
            mac_text(&mac),
            if added { "added" } else { "held already" },
            match strays {
                0 => String::new(),
                1 => " (1 stray copy removed)".into(),
                n => format!(" ({n} stray copies removed)"),
            },
            match self.garp.repeat_after {
                Some(d) => format!("; a second burst in {} ms", d.as_millis()),
                None => String::new(),
            }
        );
        Ok(Acquired {
            message,
            announce: Some(report.to_string()),
            later,
        })
    }

    /// Takes the address off after a failed acquire; the error says what happened and
    /// what state is left.
    fn undo(&self, nl: &mut Netlink, why: String) -> String {
        match self.local.remove_all(nl) {
            Ok(removed) if removed.is_empty() => {
                format!("{why}; the address is on no interface of this node")
            }
            Ok(removed) => format!(
                "{why}; the address was taken off {} again",
                removed.join(" and ")
            ),
            Err(e) => format!(
                "{why}; taking the address off again failed too: {e} (star-takeover release)"
            ),
        }
    }
}

/// The second burst: each packet only while the action that scheduled it is still the
/// latest (the guard) and the address is still on the interface it was announced from.
fn repeat(
    local: &LocalAddress,
    garp: Garp,
    index: u32,
    mac: Mac,
    guard: &dyn Guard,
) -> Result<String, String> {
    let mut nl = netlink()?;
    let socket = PacketSocket::open(index)
        .map_err(|e| format!("open a packet socket on {}: {e}", local.interface))?;
    let frame = announcement(mac, local.address);
    let report: Report = burst(
        announcement_name(local.address),
        garp.count,
        garp.interval,
        |_| {
            let mut step = Step::Stop("a later acquire or release took over".into());
            guard.run_if_current(&mut || {
                step = match local.observe(&mut nl) {
                    Ok(o) if o.link.as_ref().is_ok_and(|l| l.index == index) && local.held(&o) => {
                        match socket.send(&frame) {
                            Ok(()) => Step::Sent,
                            Err(e) => Step::Failed(e.to_string()),
                        }
                    }
                    Ok(_) => Step::Stop(format!(
                        "{} is no longer held on {}",
                        local.cidr(),
                        local.interface
                    )),
                    Err(e) => Step::Failed(e),
                }
            });
            step
        },
        std::thread::sleep,
    );
    if report.any_sent() || report.stopped.is_some() {
        Ok(report.to_string())
    } else {
        Err(report.to_string())
    }
}

impl FloatingMethod for L2 {
    fn name(&self) -> &'static str {
        "arp"
    }

    fn address(&self) -> String {
        self.local.cidr()
    }

    fn interface(&self) -> Option<String> {
        Some(self.local.interface.clone())
    }

    fn acquire(&mut self) -> Result<Acquired, String> {
        let mut nl = netlink()?;
        self.acquire_on(&mut nl)
    }

    fn release(&mut self) -> Result<String, String> {
        let mut nl = netlink()?;
        let removed = self.local.remove_all(&mut nl)?;
        Ok(if removed.is_empty() {
            format!(
                "{} is not held: it is on no interface of this node",
                self.local.address
            )
        } else {
            format!("{} taken off {}", self.local.address, removed.join(" and "))
        })
    }

    fn status(&mut self) -> Result<Observation, String> {
        let mut nl = netlink()?;
        let observed = self.local.observe(&mut nl)?;
        Ok(Observation {
            held: self.local.held(&observed),
            observed: self.local.describe(&observed),
        })
    }
}
