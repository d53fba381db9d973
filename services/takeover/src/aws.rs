//! The AWS methods: `aws-secondary-ip` (a secondary private IP moved to this controller's
//! ENI with AllowReassignment), `aws-route-table` (route-table entries for the address
//! pointed at this ENI) and `aws-route53` (an A record UPSERTed to this controller).
//!
//! They go through the star-aws crate (IMDSv2, role credentials, SigV4-signed EC2 and
//! Route 53 requests with retries), which this build does not link yet: until it does,
//! every request is refused with [`unavailable`], and nothing is changed. To wire it in:
//! add star-aws to Cargo.toml and fill in the three calls below. The secondary-IP and
//! route-table methods also put the address on the client interface themselves (AWS
//! routes it to the ENI, the OS must still accept it): [`LocalAddress`] does that part,
//! as it does for L2, without the announcements, which a VPC does not forward.

use crate::address::LocalAddress;
use crate::method::{method_name, Acquired, FloatingMethod, Observation};
use star_core::node_config::{Floating, TakeoverMethod};

pub struct Aws {
    name: &'static str,
    method: TakeoverMethod,
    local: LocalAddress,
}

/// The refusal of every request until star-aws is linked.
pub fn unavailable(method: &str) -> String {
    format!("method {method} is not available in this build")
}

impl Aws {
    pub fn new(method: &TakeoverMethod, client_interface: String, floating: &Floating) -> Aws {
        Aws {
            name: method_name(method),
            method: method.clone(),
            local: LocalAddress {
                interface: client_interface,
                address: floating.address,
                prefix_len: floating.prefix_len,
            },
        }
    }

    /// The method's parameters, for the day the calls are made.
    pub fn method(&self) -> &TakeoverMethod {
        &self.method
    }
}

impl FloatingMethod for Aws {
    fn name(&self) -> &'static str {
        self.name
    }

    fn address(&self) -> String {
        self.local.cidr()
    }

    fn interface(&self) -> Option<String> {
        match self.method {
            TakeoverMethod::AwsRoute53 { .. } => None,
            _ => Some(self.local.interface.clone()),
        }
    }

    fn acquire(&mut self) -> Result<Acquired, String> {
        Err(unavailable(self.name))
    }

    fn release(&mut self) -> Result<String, String> {
        Err(unavailable(self.name))
    }

    fn status(&mut self) -> Result<Observation, String> {
        Err(unavailable(self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::node_config::Garp;

    #[test]
    fn every_aws_method_refuses_by_name_until_wired() {
        let floating = |method: TakeoverMethod| Floating {
            address: "10.0.1.100".parse().unwrap(),
            prefix_len: 24,
            method,
            garp: Garp::default(),
        };
        for (method, name) in [
            (TakeoverMethod::AwsSecondaryIp, "aws-secondary-ip"),
            (
                TakeoverMethod::AwsRouteTable {
                    route_table_ids: vec!["rtb-1".into()],
                },
                "aws-route-table",
            ),
            (
                TakeoverMethod::AwsRoute53 {
                    hosted_zone_id: "Z1".into(),
                    record_name: "star.example.internal".into(),
                    ttl: 10,
                },
                "aws-route53",
            ),
        ] {
            let f = floating(method.clone());
            let mut aws = Aws::new(&method, "ens5".into(), &f);
            let expected = format!("method {name} is not available in this build");
            assert_eq!(aws.name(), name);
            assert_eq!(aws.address(), "10.0.1.100/24");
            assert_eq!(aws.acquire().err(), Some(expected.clone()));
            assert_eq!(aws.release(), Err(expected.clone()));
            assert_eq!(aws.status(), Err(expected));
        }
    }
}
