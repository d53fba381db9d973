//! The network service: every interface of star.toml up, with its static address and
//! route or its DHCP lease, kept for as long as the service runs.
//!
//! One thread and one poll: the DHCP sockets, the status socket, and a timeout that is the
//! earliest DHCP deadline (retransmission, T1, T2, expiry). Ready (sd_notify) once every
//! interface has had its address.

use crate::dhcp::{DhcpAction, DhcpClient, DhcpSocket, Lease, State};
use crate::netlink::Netlink;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use star_core::net_status::{InterfaceStatus, LeaseStatus, NetStatus};
use star_core::node_config::{Addressing, Interface, NodeConfig, Purpose};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a configured interface may take to appear (its driver loads with the others).
const LINK_WAIT: Duration = Duration::from_secs(15);

struct Iface {
    spec: Interface,
    index: Option<u32>,
    dhcp: Option<(DhcpClient, DhcpSocket)>,
    lease: Option<Lease>,
    /// When the current lease was granted or renewed: lease times count from here.
    bound_at: Option<Instant>,
    /// It has its address now.
    configured: bool,
    detail: Option<String>,
}

pub struct Service {
    nl: Netlink,
    ifaces: Vec<Iface>,
    status: UnixListener,
    announced: bool,
    /// Sent as the DHCP host name option, so the server's lease table names the node.
    node_name: String,
}

fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::Client => "client",
        Purpose::Interconnect => "interconnect",
    }
}

/// Interfaces whose subnets overlap, each pair said once. The kernel then has two routes to
/// the same addresses and uses the first one made: answers to clients may leave by the
/// interconnect (or the other way round), which neither side expects.
fn shared_subnets(addresses: &[(String, IpAddr, u8)]) -> Vec<String> {
    let network = |address: &IpAddr, prefix_len: u8| -> Option<u128> {
        let (bits, width) = match address {
            IpAddr::V4(a) => (u128::from(u32::from(*a)), 32u32),
            IpAddr::V6(a) => (u128::from(*a), 128),
        };
        let host_bits = width.checked_sub(u32::from(prefix_len))?;
        Some(bits.checked_shr(host_bits).unwrap_or(0))
    };
    let mut warnings = Vec::new();
    for (i, (name_a, a, len_a)) in addresses.iter().enumerate() {
        for (name_b, b, len_b) in &addresses[i + 1..] {
            if a.is_ipv4() != b.is_ipv4() {
                continue;
            }
            let shorter = (*len_a).min(*len_b);
            let same = matches!(
                (network(a, shorter), network(b, shorter)),
                (Some(x), Some(y)) if x == y
            );
            if same {
                warnings.push(format!(
                    "{name_a} ({a}/{len_a}) and {name_b} ({b}/{len_b}) share a subnet: traffic \
                     for it leaves by whichever got its address first; give each interface a \
                     subnet of its own"
                ));
            }
        }
    }
    warnings
}

/// The interface's address: the static one, or the lease's once there is one.
fn address(f: &Iface) -> Option<(IpAddr, u8)> {
    match (&f.spec.addressing, &f.lease) {
        (
            Addressing::Static {
                address,
                prefix_len,
                ..
            },
            _,
        ) => Some((*address, *prefix_len)),
        (Addressing::Dhcp, Some(l)) => Some((IpAddr::V4(l.address), l.prefix_len)),
        _ => None,
    }
}

fn log(text: &str) {
    println!("{text}");
}

impl Service {
    pub fn new(config: &NodeConfig, status_socket: &Path) -> Result<Service, String> {
        let nl = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
        if let Some(dir) = status_socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(status_socket);
        let status = UnixListener::bind(status_socket)
            .map_err(|e| format!("{}: {e}", status_socket.display()))?;
        status.set_nonblocking(true).map_err(|e| e.to_string())?;
        let ifaces = config
            .interfaces
            .iter()
            .map(|spec| Iface {
                spec: spec.clone(),
                index: None,
                dhcp: None,
                lease: None,
                bound_at: None,
                configured: false,
                detail: None,
            })
            .collect();
        Ok(Service {
            nl,
            ifaces,
            status,
            announced: false,
            node_name: config.node.name.clone(),
        })
    }

    /// Brings every interface up and configures the static ones; starts DHCP on the others.
    pub fn start(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + LINK_WAIT;
        for i in 0..self.ifaces.len() {
            let name = self.ifaces[i].spec.name.clone();
            let index = loop {
                match self.nl.link_index(&name) {
                    Ok(index) => break index,
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            };
            self.ifaces[i].index = Some(index);
            if let Some(mtu) = self.ifaces[i].spec.mtu {
                self.nl.set_mtu(index, mtu)?;
            }
            self.nl.set_up(index)?;
            match self.ifaces[i].spec.addressing.clone() {
                Addressing::Static {
                    address,
                    prefix_len,
                    gateway,
                } => {
                    let std::net::IpAddr::V4(v4) = address else {
                        return Err(format!("{name}: IPv6 addresses are not supported yet"));
                    };
                    self.nl.add_address(index, v4, prefix_len, None)?;
                    if let Some(std::net::IpAddr::V4(gw)) = gateway {
                        self.nl.set_default_route(index, gw)?;
                    }
                    self.ifaces[i].configured = true;
                    log(&format!("star-net: {name}: {v4}/{prefix_len} (static)"));
                }
                Addressing::Dhcp => {
                    let mac = self
                        .nl
                        .links()?
                        .into_iter()
                        .find(|l| l.index == index)
                        .and_then(|l| l.mac)
                        .ok_or_else(|| format!("{name}: no MAC address, so no DHCP"))?;
                    let socket =
                        DhcpSocket::open(&name).map_err(|e| format!("{name}: DHCP socket: {e}"))?;
                    let seed =
                        u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0])
                            ^ std::process::id() as u64;
                    let mut client = DhcpClient::new(mac, Some(self.node_name.clone()), seed);
                    let actions = client.start(Instant::now());
                    self.ifaces[i].dhcp = Some((client, socket));
                    self.ifaces[i].detail = Some("asking for a DHCP lease".into());
                    log(&format!("star-net: {name}: asking for a DHCP lease"));
                    self.act(i, actions);
                }
            }
        }
        self.maybe_ready();
        Ok(())
    }

    /// Serves until killed.
    pub fn run(&mut self) -> ! {
        loop {
            let now = Instant::now();
            for i in 0..self.ifaces.len() {
                let due = self.ifaces[i]
                    .dhcp
                    .as_ref()
                    .and_then(|(c, _)| c.next_deadline())
                    .is_some_and(|d| d <= now);
                if due {
                    let actions = self.ifaces[i].dhcp.as_mut().unwrap().0.on_timeout(now);
                    self.act(i, actions);
                }
            }
            let deadline = self
                .ifaces
                .iter()
                .filter_map(|f| f.dhcp.as_ref().and_then(|(c, _)| c.next_deadline()))
                .min();
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let ms = d
                        .saturating_duration_since(Instant::now())
                        .as_micros()
                        .div_ceil(1000);
                    PollTimeout::try_from(ms as u64).unwrap_or(PollTimeout::MAX)
                }
            };
            let (ready_dhcp, status_ready) = {
                let mut fds = vec![PollFd::new(self.status.as_fd(), PollFlags::POLLIN)];
                let owners: Vec<usize> = (0..self.ifaces.len())
                    .filter(|&i| self.ifaces[i].dhcp.is_some())
                    .collect();
                for &i in &owners {
                    fds.push(PollFd::new(
                        self.ifaces[i].dhcp.as_ref().unwrap().1.as_fd(),
                        PollFlags::POLLIN,
                    ));
                }
                let _ = poll(&mut fds, timeout);
                let readable =
                    |f: &PollFd| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
                let ready: Vec<usize> = owners
                    .iter()
                    .zip(&fds[1..])
                    .filter(|(_, f)| readable(f))
                    .map(|(&i, _)| i)
                    .collect();
                (ready, readable(&fds[0]))
            };
            for i in ready_dhcp {
                while let Ok(Some(packet)) = self.ifaces[i].dhcp.as_ref().unwrap().1.recv() {
                    let actions = self.ifaces[i]
                        .dhcp
                        .as_mut()
                        .unwrap()
                        .0
                        .on_packet(&packet, Instant::now());
                    self.act(i, actions);
                }
            }
            if status_ready {
                self.answer_status();
            }
        }
    }

    fn act(&mut self, i: usize, actions: Vec<DhcpAction>) {
        let name = self.ifaces[i].spec.name.clone();
        for action in actions {
            match action {
                DhcpAction::Broadcast(_) | DhcpAction::Unicast(..) => {
                    if let Err(e) = self.ifaces[i].dhcp.as_mut().unwrap().1.send(&action) {
                        self.ifaces[i].detail = Some(format!("DHCP send: {e}"));
                    }
                }
                DhcpAction::Bound(lease) => self.bind(i, lease),
                DhcpAction::Lost(lease) => {
                    let index = self.ifaces[i].index.unwrap_or(0);
                    let _ = self
                        .nl
                        .delete_address(index, lease.address, lease.prefix_len);
                    self.ifaces[i].configured = false;
                    self.ifaces[i].lease = None;
                    self.ifaces[i].detail =
                        Some(format!("lease on {} lost; asking again", lease.address));
                    log(&format!(
                        "star-net: {name}: lease on {} lost",
                        lease.address
                    ));
                }
            }
        }
        self.listen_on_port_once_bound(i);
        self.maybe_ready();
    }

    /// With the lease's address on the interface, its DHCP messages arrive through the UDP
    /// port, and the packet socket, which would filter every IP packet of the interface
    /// (the iSCSI traffic too), is closed. A broadcast opens it again.
    fn listen_on_port_once_bound(&mut self, i: usize) {
        let iface = &mut self.ifaces[i];
        let Some((client, socket)) = iface.dhcp.as_mut() else {
            return;
        };
        if iface.configured && client.state() == State::Bound && socket.on_link() {
            if let Err(e) = socket.listen_on_port() {
                log(&format!(
                    "star-net: {}: keeping the packet socket: {e}",
                    iface.spec.name
                ));
            }
        }
    }

    fn bind(&mut self, i: usize, lease: Lease) {
        let name = self.ifaces[i].spec.name.clone();
        let index = self.ifaces[i].index.unwrap_or(0);
        if let Some(old) = &self.ifaces[i].lease {
            if old.address != lease.address || old.prefix_len != lease.prefix_len {
                let _ = self.nl.delete_address(index, old.address, old.prefix_len);
            }
        }
        let result = self
            .nl
            .add_address(index, lease.address, lease.prefix_len, None)
            // No kernel lifetime on the address: a renewal with the same values produces no
            // new Bound, and the client's Lost is what ends the lease.
            .and_then(|()| match (self.ifaces[i].spec.mtu, lease.mtu) {
                (None, Some(mtu)) => self.nl.set_mtu(index, u32::from(mtu)),
                _ => Ok(()),
            })
            .and_then(|()| match (self.ifaces[i].spec.purpose, lease.router) {
                // The default route belongs to the client network; the interconnect's lease
                // must not take it.
                (Purpose::Client, Some(router)) => self.nl.set_default_route(index, router),
                _ => Ok(()),
            });
        match result {
            Ok(()) => {
                if self.ifaces[i].lease.as_ref() != Some(&lease) {
                    log(&format!(
                        "star-net: {name}: {}/{} from DHCP server {} for {} s{}",
                        lease.address,
                        lease.prefix_len,
                        lease.server,
                        lease.lease_time.as_secs(),
                        lease
                            .router
                            .map_or(String::new(), |r| format!(", router {r}"))
                    ));
                }
                self.ifaces[i].configured = true;
                self.ifaces[i].detail = None;
                self.ifaces[i].lease = Some(lease);
                self.ifaces[i].bound_at = Some(Instant::now());
            }
            Err(e) => {
                log(&format!("star-net: {name}: cannot apply the lease: {e}"));
                self.ifaces[i].detail = Some(e);
            }
        }
    }

    fn maybe_ready(&mut self) {
        if !self.announced && self.ifaces.iter().all(|f| f.configured) {
            self.announced = true;
            let summary: Vec<String> = self
                .ifaces
                .iter()
                .map(|f| format!("{} {}", f.spec.name, self.addresses(f).join(",")))
                .collect();
            log(&format!("star-net: ready: {}", summary.join("; ")));
            let addresses: Vec<(String, IpAddr, u8)> = self
                .ifaces
                .iter()
                .filter_map(|f| address(f).map(|(a, len)| (f.spec.name.clone(), a, len)))
                .collect();
            for warning in shared_subnets(&addresses) {
                log(&format!("star-net: warning: {warning}"));
            }
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Status(&summary.join("; ")),
                sd_notify::NotifyState::Ready,
            ]);
        }
    }

    fn addresses(&self, f: &Iface) -> Vec<String> {
        address(f)
            .map(|(a, len)| format!("{a}/{len}"))
            .into_iter()
            .collect()
    }

    pub fn status(&mut self) -> NetStatus {
        let links = self.nl.links().unwrap_or_default();
        let now = Instant::now();
        let interfaces = self
            .ifaces
            .iter()
            .map(|f| {
                let link = links.iter().find(|l| Some(l.index) == f.index);
                InterfaceStatus {
                    name: f.spec.name.clone(),
                    purpose: purpose_name(f.spec.purpose).into(),
                    method: match f.spec.addressing {
                        Addressing::Dhcp => "dhcp".into(),
                        Addressing::Static { .. } => "static".into(),
                    },
                    link: match link {
                        None => "missing".into(),
                        Some(l) if !l.up => "down".into(),
                        Some(l) if !l.carrier => "no-carrier".into(),
                        Some(_) => "up".into(),
                    },
                    mtu: link.map(|l| l.mtu),
                    addresses: self.addresses(f),
                    lease: match (&f.lease, &f.dhcp) {
                        (Some(l), Some((client, _))) => {
                            let since = f.bound_at.unwrap_or(now);
                            let elapsed = now.saturating_duration_since(since);
                            Some(LeaseStatus {
                                state: format!("{:?}", client.state()).to_lowercase(),
                                address: l.address.to_string(),
                                server: l.server.to_string(),
                                router: l.router.map(|r| r.to_string()),
                                hostname: l.hostname.clone(),
                                mtu: l.mtu,
                                lease_sec: l.lease_time.as_secs(),
                                renew_in_sec: l.renew_at.saturating_sub(elapsed).as_secs_f64(),
                                expires_in_sec: l.lease_time.saturating_sub(elapsed).as_secs_f64(),
                            })
                        }
                        _ => None,
                    },
                    detail: f.detail.clone(),
                }
            })
            .collect();
        NetStatus {
            ready: self.ifaces.iter().all(|f| f.configured),
            interfaces,
        }
    }

    fn answer_status(&mut self) {
        while let Ok((stream, _)) = self.status.accept() {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let reply = if line.contains("\"status\"") {
                serde_json::json!({"reply": "status", "status": self.status()})
            } else {
                serde_json::json!({"reply": "error", "message": "star-net answers {\"cmd\":\"status\"}"})
            };
            let mut text = reply.to_string();
            text.push('\n');
            let _ = (&stream).write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, address: &str, prefix_len: u8) -> (String, IpAddr, u8) {
        (name.to_string(), address.parse().unwrap(), prefix_len)
    }

    #[test]
    fn interfaces_on_one_subnet_are_named() {
        let warnings = shared_subnets(&[
            entry("eth0", "10.0.2.15", 24),
            entry("eth1", "10.0.2.16", 24),
        ]);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("eth0 (10.0.2.15/24) and eth1 (10.0.2.16/24) share a subnet")
        );
        // A narrower subnet inside a wider one overlaps too.
        assert_eq!(
            shared_subnets(&[entry("eth0", "10.0.0.5", 16), entry("eth1", "10.0.9.5", 24)]).len(),
            1
        );
        assert_eq!(
            shared_subnets(&[entry("eth0", "fd00::1", 64), entry("eth1", "fd00::2", 64)]).len(),
            1
        );
    }

    #[test]
    fn separate_subnets_and_families_are_fine() {
        assert!(shared_subnets(&[
            entry("eth0", "192.0.2.11", 24),
            entry("eth1", "198.51.100.11", 24),
            entry("eth2", "fd00::1", 64),
        ])
        .is_empty());
        assert!(shared_subnets(&[
            entry("eth0", "10.0.2.15", 25),
            entry("eth1", "10.0.2.200", 25)
        ])
        .is_empty());
        // /0 covers everything: two default-sized nets of one family overlap.
        assert_eq!(
            shared_subnets(&[
                entry("eth0", "10.0.2.15", 0),
                entry("eth1", "192.0.2.1", 24)
            ])
            .len(),
            1
        );
    }
}
