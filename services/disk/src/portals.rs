//! Where each controller's portal listens: an entry in the array config overrides the
//! controller's client address. Config-only changes, like the hosts'.

use crate::array::{read_config, Changed};
use crate::error::Error;
use crate::hosts::apply;
use crate::luns::check_storable;
use star_core::array_config::{ArrayConfig, Portal};
use std::net::IpAddr;
use std::path::Path;

/// Controller `node` listens on `address:port`. The two controllers need different
/// portals: LIO refuses one IP:port on two portal groups of one target, and both
/// controllers carry both groups.
pub fn plan_set(
    config: &ArrayConfig,
    node: u8,
    address: IpAddr,
    port: u16,
) -> Result<ArrayConfig, Error> {
    if node != 1 && node != 2 {
        return Err(Error::Invalid(format!(
            "controller {node}: portals belong to controller 1 or 2"
        )));
    }
    if port == 0 {
        return Err(Error::Invalid(
            "port 0 is not a port to listen on (iSCSI's is 3260)".into(),
        ));
    }
    if address.is_unspecified() || address.is_multicast() {
        return Err(Error::Invalid(format!(
            "{address} is not an address a portal can listen on: give controller {node}'s address on the client network"
        )));
    }
    if let Some(other) = config
        .portals
        .iter()
        .find(|p| p.node != node && p.address == address && p.port == port)
    {
        return Err(Error::Invalid(format!(
            "{address}:{port} is controller {}'s portal already: each controller needs its own",
            other.node
        )));
    }
    let mut next = config.clone();
    next.portals.retain(|p| p.node != node);
    next.portals.push(Portal {
        node,
        address,
        port,
    });
    next.portals.sort_by_key(|p| p.node);
    check_storable(&next)?;
    Ok(next)
}

pub fn plan_clear(config: &ArrayConfig, node: u8) -> Result<ArrayConfig, Error> {
    if !config.portals.iter().any(|p| p.node == node) {
        return Err(Error::Invalid(format!(
            "controller {node} has no portal entry: it listens on its client address already"
        )));
    }
    let mut next = config.clone();
    next.portals.retain(|p| p.node != node);
    check_storable(&next)?;
    Ok(next)
}

pub fn set(
    path: &Path,
    node: u8,
    address: IpAddr,
    port: u16,
) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_set(c, node, address, port))
}

pub fn clear(path: &Path, node: u8) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_clear(c, node))
}

pub fn list(path: &Path) -> Result<Vec<Portal>, Error> {
    Ok(read_config(path)?.config.portals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_portal_replaces_the_controllers_entry_and_clears_back() {
        let c = ArrayConfig::new("lab");
        let c = plan_set(&c, 2, ip("192.0.2.22"), 3260).unwrap();
        let c = plan_set(&c, 1, ip("192.0.2.21"), 3261).unwrap();
        let c = plan_set(&c, 2, ip("192.0.2.23"), 3260).unwrap();
        assert_eq!(
            c.portals,
            [
                Portal {
                    node: 1,
                    address: ip("192.0.2.21"),
                    port: 3261
                },
                Portal {
                    node: 2,
                    address: ip("192.0.2.23"),
                    port: 3260
                },
            ]
        );
        let c = plan_clear(&c, 1).unwrap();
        assert_eq!(c.portals.len(), 1);
        assert!(plan_clear(&c, 1)
            .unwrap_err()
            .to_string()
            .contains("no portal entry"));
    }

    #[test]
    fn bad_portals_are_refused_with_the_reason() {
        let c = plan_set(&ArrayConfig::new("lab"), 1, ip("192.0.2.21"), 3260).unwrap();
        let e = |r: Result<ArrayConfig, Error>| r.unwrap_err().to_string();
        assert!(
            e(plan_set(&c, 2, ip("192.0.2.21"), 3260)).contains("controller 1's portal already")
        );
        assert!(e(plan_set(&c, 3, ip("192.0.2.23"), 3260)).contains("controller 1 or 2"));
        assert!(e(plan_set(&c, 2, ip("0.0.0.0"), 3260)).contains("not an address"));
        assert!(e(plan_set(&c, 2, ip("192.0.2.22"), 0)).contains("port 0"));
        // The same address on another port is a different portal.
        assert!(plan_set(&c, 2, ip("192.0.2.21"), 3261).is_ok());
    }
}
