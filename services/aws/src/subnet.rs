//! Whether an address can be a secondary private IP in a subnet. Pure.
//!
//! EC2 keeps five addresses of every subnet for itself: the network address, the next
//! three (VPC router, DNS, future use) and the broadcast address. AssignPrivateIpAddresses
//! refuses them, and an address outside the subnet, with a generic
//! InvalidParameterValue; checking first lets the error say what is wrong.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// `Ok` when `addr` is an assignable address of `subnet`, otherwise why not.
pub fn check_assignable(addr: Ipv4Addr, subnet_id: &str, cidr: Ipv4Net) -> Result<(), String> {
    if !cidr.contains(&addr) {
        return Err(format!(
            "{addr} is outside subnet {subnet_id} ({cidr}): a secondary IP must be an address \
             of the subnet both controllers' interfaces are in"
        ));
    }
    let offset = u32::from(addr) - u32::from(cidr.network());
    let last = u32::from(cidr.broadcast()) - u32::from(cidr.network());
    if offset < 4 || offset == last {
        return Err(format!(
            "{addr} is one of the five addresses AWS reserves in subnet {subnet_id} ({cidr}): \
             the network address, the next three and the last"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_inside_the_subnet_are_assignable() {
        assert!(check_assignable(Ipv4Addr::new(10, 0, 1, 100), "s", net("10.0.1.0/24")).is_ok());
        assert!(check_assignable(Ipv4Addr::new(10, 0, 1, 4), "s", net("10.0.1.0/24")).is_ok());
        assert!(check_assignable(Ipv4Addr::new(10, 0, 1, 254), "s", net("10.0.1.0/24")).is_ok());
        assert!(check_assignable(Ipv4Addr::new(10, 0, 3, 7), "s", net("10.0.0.0/22")).is_ok());
    }

    #[test]
    fn addresses_outside_name_the_subnet_and_its_cidr() {
        let e = check_assignable(Ipv4Addr::new(10, 0, 2, 100), "subnet-1", net("10.0.1.0/24"))
            .unwrap_err();
        assert!(
            e.starts_with("10.0.2.100 is outside subnet subnet-1 (10.0.1.0/24)"),
            "{e}"
        );
        assert!(check_assignable(Ipv4Addr::new(10, 0, 0, 255), "s", net("10.0.1.0/24")).is_err());
    }

    #[test]
    fn reserved_addresses_are_refused() {
        for last in [0, 1, 2, 3, 255] {
            let e = check_assignable(Ipv4Addr::new(10, 0, 1, last), "s", net("10.0.1.0/24"))
                .unwrap_err();
            assert!(e.contains("reserves"), "{last}: {e}");
        }
        assert!(check_assignable(Ipv4Addr::new(10, 0, 1, 15), "s", net("10.0.1.0/28")).is_err());
        assert!(check_assignable(Ipv4Addr::new(10, 0, 1, 14), "s", net("10.0.1.0/28")).is_ok());
    }
}
