//! On EC2 the configuration is behind the network: user-data comes from the instance
//! metadata service at 169.254.169.254, and star-net cannot start before star.toml says
//! which interfaces to bring up. So, on aws-ec2 only, star-config brings up the primary
//! interface itself for as long as the fetch takes: DHCP on the first Ethernet interface
//! (the primary ENI, eth0, is always the lowest-numbered), its address and default route,
//! the fetch, then the address removed again. star-net then starts from a clean interface
//! and only star.toml decides what it gets (cloud-init's "ephemeral DHCP" does the same).

use star_net::dhcp::{run_until_bound, Lease};
use star_net::netlink::Netlink;
use std::time::{Duration, Instant};

/// The primary interface's driver probes while the modules load; on a Nitro instance it
/// is there within a second or two.
const LINK_WAIT: Duration = Duration::from_secs(15);
const LEASE_WAIT: Duration = Duration::from_secs(20);

/// An interface configured for the fetch; [`Bootstrap::release`] undoes it.
pub struct Bootstrap {
    nl: Netlink,
    pub interface: String,
    index: u32,
    pub lease: Lease,
}

impl Bootstrap {
    /// Brings up the first Ethernet interface with a DHCP lease and a default route.
    pub fn start() -> Result<Bootstrap, String> {
        let mut nl = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
        let deadline = Instant::now() + LINK_WAIT;
        let link = loop {
            let links = nl.links()?;
            if let Some(link) = links.into_iter().find(|l| l.mac.is_some()) {
                break link;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no Ethernet interface appeared within {} s, so no way to the instance metadata service",
                    LINK_WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mac = link.mac.expect("chosen for having one");
        nl.set_up(link.index)?;
        let lease = run_until_bound(&link.name, mac, LEASE_WAIT)?;
        nl.add_address(link.index, lease.address, lease.prefix_len, None)?;
        let mut bootstrap = Bootstrap {
            nl,
            interface: link.name,
            index: link.index,
            lease,
        };
        if let Some(router) = bootstrap.lease.router {
            if let Err(e) = bootstrap.nl.set_default_route(bootstrap.index, router) {
                bootstrap.release();
                return Err(e);
            }
        }
        Ok(bootstrap)
    }

    /// Removes the address; the kernel drops the routes through the interface with its
    /// last address. The link stays up for star-net.
    pub fn release(&mut self) {
        let _ = self
            .nl
            .delete_address(self.index, self.lease.address, self.lease.prefix_len);
    }
}
