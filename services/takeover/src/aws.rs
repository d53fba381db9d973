//! The AWS methods: `aws-secondary-ip` (a secondary private IP moved to this controller's
//! ENI with AllowReassignment), `aws-route-table` (route-table entries for the address
//! pointed at this ENI) and `aws-route53` (an A record UPSERTed to this controller).
//!
//! The calls are star-aws's (IMDSv2, role credentials, SigV4-signed EC2 and Route 53
//! requests with retries, each confirmed through a Describe/Get). The session (instance,
//! ENI of the client interface, region, credentials) is made at the first request, so
//! that a service started before the instance role is attached still starts; it is kept
//! while it works. The secondary-IP and route-table methods also put the address on the
//! client interface ([`LocalAddress`]): AWS routes it to the ENI, the OS must accept it.
//! Nothing is announced: a VPC does not forward gratuitous ARP.
//!
//! Order and failures: acquire moves the address in AWS first (checked before any change
//! by star-aws: subnet, route tables, hosted zone), then puts it on the interface. If that
//! last step fails, acquire fails with both facts in its message: AWS sends the address
//! here while this node does not answer for it, which is no worse than the dead holder it
//! replaces, and star-heartbeat's reaction (release, then demote) takes it back. Release
//! takes the address off the interface first, then lets go in AWS.

use crate::address::LocalAddress;
use crate::method::{method_name, Acquired, FloatingMethod, Observation};
use star_core::node_config::{AwsEndpoints, Floating, TakeoverMethod};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Each request, retries and confirmation included, within star-heartbeat's takeover
/// step (15 s by default) with room to spare.
const REQUEST_BUDGET: Duration = Duration::from_secs(10);

pub struct Aws {
    name: &'static str,
    method: TakeoverMethod,
    local: LocalAddress,
    endpoints: AwsEndpoints,
    session: Option<Session>,
}

struct Session {
    client: star_aws::Client,
    method: star_aws::Method,
}

impl Aws {
    pub fn new(
        method: &TakeoverMethod,
        client_interface: String,
        floating: &Floating,
        endpoints: &AwsEndpoints,
    ) -> Aws {
        Aws {
            name: method_name(method),
            method: method.clone(),
            local: LocalAddress {
                interface: client_interface,
                address: floating.address,
                prefix_len: floating.prefix_len,
            },
            endpoints: endpoints.clone(),
            session: None,
        }
    }

    /// Whether the address must also be on the client interface.
    fn local_too(&self) -> bool {
        !matches!(self.method, TakeoverMethod::AwsRoute53 { .. })
    }

    fn address_v4(&self) -> Result<Ipv4Addr, String> {
        match self.local.address {
            IpAddr::V4(a) => Ok(a),
            IpAddr::V6(a) => Err(format!("method {}: {a} is not IPv4", self.name)),
        }
    }

    fn session(&mut self, deadline: Instant) -> Result<&Session, String> {
        if self.session.is_none() {
            self.session = Some(self.open(deadline).map_err(|e| {
                format!(
                    "method {}: instance metadata ({}) and credentials: {e}",
                    self.name,
                    self.endpoints
                        .imds
                        .as_deref()
                        .unwrap_or(star_aws::imds::DEFAULT_ENDPOINT)
                )
            })?);
        }
        Ok(self.session.as_ref().expect("just made"))
    }

    fn open(&self, deadline: Instant) -> Result<Session, String> {
        let imds = star_aws::Imds::new(
            self.endpoints
                .imds
                .as_deref()
                .unwrap_or(star_aws::imds::DEFAULT_ENDPOINT),
            star_aws::RetryPolicy::default(),
        );
        let mac = interface_mac(&self.local.interface)?;
        let me = star_aws::Controller::from_imds(&imds, Some(&mac), deadline)
            .map_err(|e| e.to_string())?;
        let address = self.address_v4()?;
        let method = match &self.method {
            TakeoverMethod::AwsSecondaryIp => {
                star_aws::Method::SecondaryIp(star_aws::SecondaryIp { address, me })
            }
            TakeoverMethod::AwsRouteTable { route_table_ids } => {
                star_aws::Method::RouteTables(star_aws::RouteTables {
                    address,
                    route_table_ids: route_table_ids.clone(),
                    me,
                })
            }
            TakeoverMethod::AwsRoute53 {
                hosted_zone_id,
                record_name,
                ttl,
            } => {
                // The record points at this controller's own client address.
                let value = imds
                    .local_ipv4s(&mac, deadline)
                    .map_err(|e| e.to_string())?
                    .first()
                    .and_then(|a| a.parse().ok())
                    .ok_or(format!(
                        "the instance metadata gives no IPv4 address for {} ({mac})",
                        self.local.interface
                    ))?;
                star_aws::Method::Route53(star_aws::DnsRecord {
                    hosted_zone_id: hosted_zone_id.clone(),
                    name: record_name.clone(),
                    ttl: *ttl,
                    value,
                })
            }
            TakeoverMethod::Arp => unreachable!("method arp is L2's"),
        };
        let client = star_aws::Client::from_imds(
            star_aws::Config {
                ec2_endpoint: self.endpoints.ec2.clone(),
                route53_endpoint: self.endpoints.route53.clone(),
                ..star_aws::Config::default()
            },
            imds,
            deadline,
        )
        .map_err(|e| e.to_string())?;
        Ok(Session { client, method })
    }

    /// Runs one star-aws call; a failure that says the session is stale (credentials,
    /// a transport error) drops it, so the next request makes a new one.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&Session, Instant) -> Result<T, star_aws::Error>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + REQUEST_BUDGET;
        let session = self.session(deadline)?;
        let result = f(session, deadline);
        if let Err(e) = &result {
            if e.is_transient() {
                self.session = None;
            }
        }
        result.map_err(|e| e.to_string())
    }
}

/// The kernel's MAC of an interface (over netlink: sysfs may show another network
/// namespace), lowercase as IMDS lists it.
fn interface_mac(interface: &str) -> Result<String, String> {
    let links = netlink()?.links()?;
    let link = links.iter().find(|l| l.name == interface).ok_or(format!(
        "interface {interface} (purpose client) does not exist: it must be the ENI whose \
         address moves"
    ))?;
    link.mac
        .as_ref()
        .map(crate::address::mac_text)
        .ok_or(format!(
            "interface {interface} (purpose client) has no Ethernet address: it must be an ENI"
        ))
}

fn netlink() -> Result<star_net::netlink::Netlink, String> {
    star_net::netlink::Netlink::open().map_err(|e| format!("open a netlink socket: {e}"))
}

impl FloatingMethod for Aws {
    fn name(&self) -> &'static str {
        self.name
    }

    fn address(&self) -> String {
        self.local.cidr()
    }

    fn interface(&self) -> Option<String> {
        self.local_too().then(|| self.local.interface.clone())
    }

    fn acquire(&mut self) -> Result<Acquired, String> {
        let route53 = !self.local_too();
        let moved = self.call(|s, deadline| {
            match s.method.acquire(&s.client, deadline) {
                // Route 53 accepted the UPSERT but has not propagated it within the
                // budget (tens of seconds is usual): the record is ours already, and
                // failing here would make the controller demote and try again forever.
                // `status` says when it is INSYNC.
                Err(e) if route53 && matches!(e.kind, star_aws::ErrorKind::NotConfirmed(_)) => {
                    Ok(format!("UPSERT accepted, not yet in sync: {e}"))
                }
                other => other,
            }
        })?;
        let message = if self.local_too() {
            match netlink().and_then(|mut nl| self.local.put_on(&mut nl)) {
                Ok(local) => format!("{moved}; {local}"),
                Err(e) => {
                    return Err(format!(
                        "{moved}, but the address could not be put on this node: {e}"
                    ))
                }
            }
        } else {
            moved
        };
        Ok(Acquired {
            message,
            announce: None,
            later: None,
        })
    }

    fn release(&mut self) -> Result<String, String> {
        let mut parts = Vec::new();
        if self.local_too() {
            let removed = netlink().and_then(|mut nl| self.local.remove_all(&mut nl))?;
            if !removed.is_empty() {
                parts.push(format!(
                    "{} taken off {}",
                    self.local.address,
                    removed.join(" and ")
                ));
            }
        }
        parts.push(self.call(|s, deadline| s.method.release(&s.client, deadline))?);
        Ok(parts.join("; "))
    }

    fn status(&mut self) -> Result<Observation, String> {
        let status = self.call(|s, deadline| s.method.status(&s.client, deadline))?;
        let mut observed = status.to_string();
        let mut held = status.held_by_us();
        if self.local_too() {
            let mut nl = netlink()?;
            let local = self.local.observe(&mut nl)?;
            held = held && self.local.held(&local);
            observed = format!("{observed}; here: {}", self.local.describe(&local));
        }
        Ok(Observation { held, observed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::node_config::Garp;

    #[test]
    fn only_the_route53_method_leaves_the_interface_alone() {
        let floating = |method: TakeoverMethod| Floating {
            address: "10.0.1.100".parse().unwrap(),
            prefix_len: 24,
            method,
            garp: Garp::default(),
        };
        for (method, name, local) in [
            (TakeoverMethod::AwsSecondaryIp, "aws-secondary-ip", true),
            (
                TakeoverMethod::AwsRouteTable {
                    route_table_ids: vec!["rtb-1".into()],
                },
                "aws-route-table",
                true,
            ),
            (
                TakeoverMethod::AwsRoute53 {
                    hosted_zone_id: "Z1".into(),
                    record_name: "star.example.internal".into(),
                    ttl: 10,
                },
                "aws-route53",
                false,
            ),
        ] {
            let f = floating(method.clone());
            let aws = Aws::new(&method, "ens5".into(), &f, &AwsEndpoints::default());
            assert_eq!(aws.name(), name);
            assert_eq!(aws.address(), "10.0.1.100/24");
            assert_eq!(aws.interface().is_some(), local, "{name}");
        }
    }

    #[test]
    fn a_missing_interface_is_named_before_any_request() {
        let f = Floating {
            address: "10.0.1.100".parse().unwrap(),
            prefix_len: 24,
            method: TakeoverMethod::AwsSecondaryIp,
            garp: Garp::default(),
        };
        let mut aws = Aws::new(
            &TakeoverMethod::AwsSecondaryIp,
            "no-such-nic0".into(),
            &f,
            // Nothing listens here: a request would fail differently.
            &AwsEndpoints {
                imds: Some("http://127.0.0.1:9".into()),
                ..AwsEndpoints::default()
            },
        );
        let e = aws.acquire().err().unwrap();
        assert!(e.contains("interface no-such-nic0 (purpose client)"), "{e}");
    }
}
