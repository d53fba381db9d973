//! Route table ("overlay IP"): the floating address is usually outside the VPC's CIDR,
//! and a host route `address/32` in each configured route table points at the active
//! controller's ENI. Works across subnets and zones of one VPC; not reachable over Direct
//! Connect or a transit gateway from outside the VPC (the seed article's caveat). The
//! ENIs need source/destination checking off, since they receive traffic for an address
//! that is not theirs.
//!
//! ReplaceRoute only replaces, so each table must already have a route for the address
//! (created once, when the array is installed, pointing at either controller). Acquire
//! checks every table before it changes any, so a missing table or route leaves all the
//! tables as they were.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::client::Client;
use crate::ec2::{self, request::host_cidr, Route, RouteTable};
use crate::error::Error;
use crate::methods::{missing_is_refusal, wait_for, Controller, Seen, EC2_POLL};

/// The route-table method: `address`/32 in each of `route_table_ids` to this controller's
/// ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTables {
    pub address: Ipv4Addr,
    pub route_table_ids: Vec<String>,
    pub me: Controller,
}

/// Where the route for the address points in each table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTableStatus {
    /// `address/32`.
    pub destination: String,
    pub our_eni: String,
    /// Each configured table and its route for the address (`None`: no such route).
    pub routes: Vec<(String, Option<Route>)>,
}

impl RouteTableStatus {
    /// Every configured table routes the address to this controller's ENI.
    pub fn held_by_us(&self) -> bool {
        !self.routes.is_empty()
            && self.routes.iter().all(|(_, r)| {
                r.as_ref()
                    .is_some_and(|r| r.network_interface_id.as_deref() == Some(&self.our_eni))
            })
    }
}

impl fmt::Display for RouteTableStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .routes
            .iter()
            .map(|(t, r)| match r {
                None => format!("{t}: no route"),
                Some(r) => {
                    let mut s = format!("{t} -> {}", r.target());
                    if r.network_interface_id.as_deref() == Some(&self.our_eni) {
                        s.push_str(" (this controller)");
                    }
                    if let Some(state) = r.state.as_deref().filter(|s| *s != "active") {
                        s.push_str(&format!(" [{state}]"));
                    }
                    s
                }
            })
            .collect();
        write!(f, "{}: {}", self.destination, parts.join(", "))
    }
}

/// What acquire will do, decided from the tables as they are. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Tables whose route points elsewhere: ReplaceRoute each.
    pub replace: Vec<String>,
    /// Tables already routing to us.
    pub already: Vec<String>,
}

/// The plan, or why nothing can be done: a configured table missing from `tables`, or
/// a table without a route for the address.
pub fn plan(
    ids: &[String],
    tables: &[RouteTable],
    addr: Ipv4Addr,
    eni: &str,
) -> Result<Plan, String> {
    let dest = host_cidr(addr);
    let absent: Vec<&str> = ids
        .iter()
        .filter(|id| !tables.iter().any(|t| &t.id == *id))
        .map(String::as_str)
        .collect();
    if !absent.is_empty() {
        return Err(format!(
            "route table{} {} not found",
            if absent.len() == 1 { "" } else { "s" },
            absent.join(", ")
        ));
    }
    let mut out = Plan {
        replace: Vec::new(),
        already: Vec::new(),
    };
    let mut no_route = Vec::new();
    for id in ids {
        let table = tables.iter().find(|t| &t.id == id).expect("checked above");
        match table.route(&dest) {
            None => no_route.push(id.as_str()),
            Some(r) if r.network_interface_id.as_deref() == Some(eni) => {
                out.already.push(id.clone())
            }
            Some(_) => out.replace.push(id.clone()),
        }
    }
    if !no_route.is_empty() {
        return Err(format!(
            "no route for {dest} in {}: ReplaceRoute only replaces, so create it once, e.g. \
             `aws ec2 create-route --route-table-id {} --destination-cidr-block {dest} \
             --network-interface-id {eni}`",
            no_route.join(", "),
            no_route[0]
        ));
    }
    Ok(out)
}

impl RouteTables {
    fn what(&self) -> String {
        format!(
            "route {}/32 in {}",
            self.address,
            self.route_table_ids.join(", ")
        )
    }

    fn describe(&self, c: &Client, deadline: Instant) -> Result<Vec<RouteTable>, Error> {
        let ids: Vec<&str> = self.route_table_ids.iter().map(String::as_str).collect();
        ec2::describe_route_tables(c, &ids, deadline)
    }

    /// Points the route in every table at this controller's ENI and confirms it. Refused,
    /// before any change, when a table or a route is missing.
    pub fn acquire(&self, c: &Client, deadline: Instant) -> Result<String, Error> {
        let what = self.what();
        let ctx = |e: Error| e.within(&what);
        if self.route_table_ids.is_empty() {
            return Err(Error::refused(&what, "no route tables configured"));
        }
        let tables = self
            .describe(c, deadline)
            .map_err(|e| ctx(missing_is_refusal(e, &["InvalidRouteTableID.NotFound"])))?;
        let plan = plan(
            &self.route_table_ids,
            &tables,
            self.address,
            &self.me.eni_id,
        )
        .map_err(|why| Error::refused(&what, why))?;
        for (n, table) in plan.replace.iter().enumerate() {
            if let Err(e) = ec2::replace_route(c, table, self.address, &self.me.eni_id, deadline) {
                let moved = &plan.replace[..n];
                let left = &plan.replace[n..];
                return Err(e.within(&format!(
                    "{what} (replaced so far: {}; not replaced: {})",
                    if moved.is_empty() {
                        "none".into()
                    } else {
                        moved.join(", ")
                    },
                    left.join(", ")
                )));
            }
        }
        wait_for(&what, EC2_POLL, deadline, || {
            let s = self.status(c, deadline)?;
            Ok(if s.held_by_us() {
                Seen::Done(())
            } else {
                Seen::NotYet(s.to_string())
            })
        })?;
        Ok(format!(
            "{}/32 routed to {} (this controller) in {} ({} replaced, {} already)",
            self.address,
            self.me.eni_id,
            self.route_table_ids.join(", "),
            plan.replace.len(),
            plan.already.len()
        ))
    }

    /// Nothing to undo on AWS. A route cannot point nowhere: deleting it would leave the
    /// peer's acquire nothing to replace (ReplaceRoute needs an existing route), and a
    /// route to an ENI that is not serving simply drops the traffic, which is what a
    /// released address should do. The route stays on this controller's ENI until the
    /// peer's acquire replaces it; star-takeover removes the address from the local
    /// interface, which is the part that stops this controller answering.
    pub fn release(&self) -> String {
        format!(
            "{}/32 left routed to {} in {}: routes stay until the peer's acquire replaces them",
            self.address,
            self.me.eni_id,
            self.route_table_ids.join(", ")
        )
    }

    /// Where each table's route for the address points.
    pub fn status(&self, c: &Client, deadline: Instant) -> Result<RouteTableStatus, Error> {
        let tables = self
            .describe(c, deadline)
            .map_err(|e| e.within(&self.what()))?;
        let dest = host_cidr(self.address);
        Ok(RouteTableStatus {
            routes: self
                .route_table_ids
                .iter()
                .map(|id| {
                    let route = tables
                        .iter()
                        .find(|t| &t.id == id)
                        .and_then(|t| t.route(&dest).cloned());
                    (id.clone(), route)
                })
                .collect(),
            destination: dest,
            our_eni: self.me.eni_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(id: &str, routes: &[(&str, &str)]) -> RouteTable {
        RouteTable {
            id: id.into(),
            routes: routes
                .iter()
                .map(|(d, eni)| Route {
                    destination: d.to_string(),
                    network_interface_id: Some(eni.to_string()),
                    instance_id: None,
                    other_target: None,
                    state: Some("active".into()),
                })
                .collect(),
        }
    }

    const ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tables_already_ours_are_left_alone() {
        let tables = [
            table("rtb-a", &[("192.168.77.1/32", "eni-peer")]),
            table(
                "rtb-b",
                &[("192.168.77.1/32", "eni-me"), ("0.0.0.0/0", "eni-x")],
            ),
        ];
        assert_eq!(
            plan(&ids(&["rtb-a", "rtb-b"]), &tables, ADDR, "eni-me").unwrap(),
            Plan {
                replace: ids(&["rtb-a"]),
                already: ids(&["rtb-b"])
            }
        );
    }

    #[test]
    fn a_missing_table_or_route_stops_the_whole_plan() {
        let tables = [
            table("rtb-a", &[("192.168.77.1/32", "eni-peer")]),
            table("rtb-b", &[("192.168.77.2/32", "eni-peer")]),
            table("rtb-c", &[]),
        ];
        assert_eq!(
            plan(&ids(&["rtb-a", "rtb-z", "rtb-y"]), &tables, ADDR, "eni-me").unwrap_err(),
            "route tables rtb-z, rtb-y not found"
        );
        let e = plan(&ids(&["rtb-a", "rtb-b", "rtb-c"]), &tables, ADDR, "eni-me").unwrap_err();
        assert!(
            e.starts_with(
                "no route for 192.168.77.1/32 in rtb-b, rtb-c: ReplaceRoute only replaces"
            ),
            "{e}"
        );
        assert!(e.contains("--route-table-id rtb-b"), "{e}");
    }

    #[test]
    fn status_is_ours_only_when_every_table_is() {
        let mk = |routes: Vec<(String, Option<Route>)>| RouteTableStatus {
            destination: "192.168.77.1/32".into(),
            our_eni: "eni-me".into(),
            routes,
        };
        let r = |eni: &str| table("t", &[("192.168.77.1/32", eni)]).routes[0].clone();
        let all = mk(vec![
            ("rtb-a".into(), Some(r("eni-me"))),
            ("rtb-b".into(), Some(r("eni-me"))),
        ]);
        assert!(all.held_by_us());
        assert_eq!(
            all.to_string(),
            "192.168.77.1/32: rtb-a -> eni-me (this controller), rtb-b -> eni-me (this controller)"
        );
        let half = mk(vec![
            ("rtb-a".into(), Some(r("eni-me"))),
            ("rtb-b".into(), Some(r("eni-peer"))),
        ]);
        assert!(!half.held_by_us());
        assert_eq!(
            half.to_string(),
            "192.168.77.1/32: rtb-a -> eni-me (this controller), rtb-b -> eni-peer"
        );
        let gone = mk(vec![("rtb-a".into(), None)]);
        assert!(!gone.held_by_us());
        assert_eq!(gone.to_string(), "192.168.77.1/32: rtb-a: no route");
        assert!(!mk(vec![]).held_by_us());
    }
}
