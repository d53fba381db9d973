//! The parts of EC2's XML answers that STAR reads. Pure: a body in, typed values out.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::xml::{self, child, items, text};

/// An elastic network interface and the addresses on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub subnet_id: String,
    /// The instance it is attached to, if any.
    pub instance_id: Option<String>,
    /// Every private IPv4 address, the primary first as EC2 lists it.
    pub private_ips: Vec<Ipv4Addr>,
}

impl NetworkInterface {
    pub fn holds(&self, addr: Ipv4Addr) -> bool {
        self.private_ips.contains(&addr)
    }
}

/// A page of DescribeNetworkInterfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePage {
    pub interfaces: Vec<NetworkInterface>,
    pub next_token: Option<String>,
}

/// One route: its destination and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: String,
    pub network_interface_id: Option<String>,
    pub instance_id: Option<String>,
    /// Any other target (`local`, `igw-...`, `nat-...`), for status lines.
    pub other_target: Option<String>,
    /// `active`, or `blackhole` when the target is gone (a deleted ENI).
    pub state: Option<String>,
}

impl Route {
    /// The target, as one word for status lines.
    pub fn target(&self) -> &str {
        self.network_interface_id
            .as_deref()
            .or(self.instance_id.as_deref())
            .or(self.other_target.as_deref())
            .unwrap_or("nothing")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// The route for exactly `destination` (`10.0.1.100/32`).
    pub fn route(&self, destination: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.destination == destination)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub cidr: Ipv4Net,
}

/// An instance's lifecycle state (`pending`, `running`, `stopping`, `stopped`,
/// `shutting-down`, `terminated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceState {
    pub instance_id: String,
    pub state: String,
}

fn ip(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

pub fn network_interfaces(body: &str) -> Result<InterfacePage, String> {
    let doc = xml::parse(body)?;
    let root = doc.root_element();
    let mut interfaces = Vec::new();
    for item in items(root, "networkInterfaceSet") {
        let id =
            text(item, "networkInterfaceId").ok_or("an interface without networkInterfaceId")?;
        let mut private_ips = Vec::new();
        for a in items(item, "privateIpAddressesSet") {
            if let Some(s) = text(a, "privateIpAddress") {
                private_ips.push(ip(&s)?);
            }
        }
        if private_ips.is_empty() {
            if let Some(s) = text(item, "privateIpAddress") {
                private_ips.push(ip(&s)?);
            }
        }
        interfaces.push(NetworkInterface {
            subnet_id: text(item, "subnetId").unwrap_or_default(),
            instance_id: child(item, "attachment").and_then(|a| text(a, "instanceId")),
            private_ips,
            id,
        });
    }
    Ok(InterfacePage {
        interfaces,
        next_token: text(root, "nextToken"),
    })
}

pub fn route_tables(body: &str) -> Result<Vec<RouteTable>, String> {
    let doc = xml::parse(body)?;
    let mut tables = Vec::new();
    for item in items(doc.root_element(), "routeTableSet") {
        let id = text(item, "routeTableId").ok_or("a route table without routeTableId")?;
        let routes = items(item, "routeSet")
            .map(|r| Route {
                destination: text(r, "destinationCidrBlock")
                    .or_else(|| text(r, "destinationIpv6CidrBlock"))
                    .or_else(|| text(r, "destinationPrefixListId"))
                    .unwrap_or_default(),
                network_interface_id: text(r, "networkInterfaceId"),
                instance_id: text(r, "instanceId"),
                other_target: [
                    "gatewayId",
                    "natGatewayId",
                    "transitGatewayId",
                    "vpcPeeringConnectionId",
                    "egressOnlyInternetGatewayId",
                    "localGatewayId",
                    "carrierGatewayId",
                    "coreNetworkArn",
                ]
                .iter()
                .find_map(|t| text(r, t)),
                state: text(r, "state"),
            })
            .collect();
        tables.push(RouteTable { id, routes });
    }
    Ok(tables)
}

pub fn subnets(body: &str) -> Result<Vec<Subnet>, String> {
    let doc = xml::parse(body)?;
    items(doc.root_element(), "subnetSet")
        .map(|item| {
            let id = text(item, "subnetId").ok_or("a subnet without subnetId")?;
            let cidr = text(item, "cidrBlock").ok_or("a subnet without cidrBlock")?;
            let cidr = cidr
                .parse()
                .map_err(|_| format!("subnet {id}: {cidr:?} is not an IPv4 CIDR block"))?;
            Ok(Subnet { id, cidr })
        })
        .collect()
}

/// The instances in a DescribeInstances answer (every reservation).
pub fn instance_states(body: &str) -> Result<Vec<InstanceState>, String> {
    let doc = xml::parse(body)?;
    let mut out = Vec::new();
    for reservation in items(doc.root_element(), "reservationSet") {
        for inst in items(reservation, "instancesSet") {
            out.push(InstanceState {
                instance_id: text(inst, "instanceId").ok_or("an instance without instanceId")?,
                state: child(inst, "instanceState")
                    .and_then(|s| text(s, "name"))
                    .ok_or("an instance without instanceState")?,
            });
        }
    }
    Ok(out)
}

/// The states in a StopInstances answer (`currentState` of each instance).
pub fn stopping_instances(body: &str) -> Result<Vec<InstanceState>, String> {
    let doc = xml::parse(body)?;
    items(doc.root_element(), "instancesSet")
        .map(|inst| {
            Ok(InstanceState {
                instance_id: text(inst, "instanceId").ok_or("an instance without instanceId")?,
                state: child(inst, "currentState")
                    .and_then(|s| text(s, "name"))
                    .ok_or("an instance without currentState")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from AWS's API reference examples.
    const ENIS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>fc45294c-006b-457b-bab9-012f5b3b0e40</requestId>
  <networkInterfaceSet>
    <item>
      <networkInterfaceId>eni-0f7db688</networkInterfaceId>
      <subnetId>subnet-c15ea5a8</subnetId>
      <vpcId>vpc-2a5f5a43</vpcId>
      <status>in-use</status>
      <macAddress>02:74:b0:70:7d:e3</macAddress>
      <privateIpAddress>10.0.1.10</privateIpAddress>
      <attachment>
        <attachmentId>eni-attach-b7a1e0de</attachmentId>
        <instanceId>i-0a5b4c3d</instanceId>
        <deviceIndex>0</deviceIndex>
        <status>attached</status>
      </attachment>
      <privateIpAddressesSet>
        <item><privateIpAddress>10.0.1.10</privateIpAddress><primary>true</primary></item>
        <item><privateIpAddress>10.0.1.100</privateIpAddress><primary>false</primary></item>
      </privateIpAddressesSet>
    </item>
    <item>
      <networkInterfaceId>eni-a66ed5cf</networkInterfaceId>
      <subnetId>subnet-c15ea5a8</subnetId>
      <privateIpAddress>10.0.1.11</privateIpAddress>
      <privateIpAddressesSet>
        <item><privateIpAddress>10.0.1.11</privateIpAddress><primary>true</primary></item>
      </privateIpAddressesSet>
    </item>
  </networkInterfaceSet>
  <nextToken>page2</nextToken>
</DescribeNetworkInterfacesResponse>"#;

    #[test]
    fn interfaces_with_their_addresses_and_instances() {
        let page = network_interfaces(ENIS).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("page2"));
        assert_eq!(page.interfaces.len(), 2);
        let a = &page.interfaces[0];
        assert_eq!(a.id, "eni-0f7db688");
        assert_eq!(a.subnet_id, "subnet-c15ea5a8");
        assert_eq!(a.instance_id.as_deref(), Some("i-0a5b4c3d"));
        assert!(a.holds(Ipv4Addr::new(10, 0, 1, 100)));
        let b = &page.interfaces[1];
        assert_eq!(b.instance_id, None);
        assert_eq!(b.private_ips, [Ipv4Addr::new(10, 0, 1, 11)]);
        assert!(!b.holds(Ipv4Addr::new(10, 0, 1, 100)));
    }

    #[test]
    fn an_empty_set_is_no_interfaces() {
        let page = network_interfaces(
            "<DescribeNetworkInterfacesResponse><networkInterfaceSet/></DescribeNetworkInterfacesResponse>",
        )
        .unwrap();
        assert!(page.interfaces.is_empty() && page.next_token.is_none());
        assert!(
            network_interfaces("<x><networkInterfaceSet><item/></networkInterfaceSet></x>")
                .is_err()
        );
    }

    #[test]
    fn route_tables_with_their_targets() {
        let body = r#"<DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <routeTableSet>
    <item>
      <routeTableId>rtb-f9ad4890</routeTableId>
      <vpcId>vpc-11ad4878</vpcId>
      <routeSet>
        <item><destinationCidrBlock>10.0.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state></item>
        <item><destinationCidrBlock>192.168.77.1/32</destinationCidrBlock><networkInterfaceId>eni-1</networkInterfaceId><instanceId>i-1</instanceId><state>active</state></item>
        <item><destinationCidrBlock>192.168.77.2/32</destinationCidrBlock><networkInterfaceId>eni-gone</networkInterfaceId><state>blackhole</state></item>
      </routeSet>
    </item>
  </routeTableSet>
</DescribeRouteTablesResponse>"#;
        let t = route_tables(body).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].id, "rtb-f9ad4890");
        let local = t[0].route("10.0.0.0/16").unwrap();
        assert_eq!(local.target(), "local");
        let ours = t[0].route("192.168.77.1/32").unwrap();
        assert_eq!(ours.network_interface_id.as_deref(), Some("eni-1"));
        assert_eq!(ours.target(), "eni-1");
        assert_eq!(
            t[0].route("192.168.77.2/32").unwrap().state.as_deref(),
            Some("blackhole")
        );
        assert!(t[0].route("192.168.77.3/32").is_none());
    }

    #[test]
    fn subnets_with_their_cidr() {
        let s = subnets(
            "<DescribeSubnetsResponse><subnetSet><item><subnetId>subnet-1</subnetId>\
             <cidrBlock>10.0.1.0/24</cidrBlock></item></subnetSet></DescribeSubnetsResponse>",
        )
        .unwrap();
        assert_eq!(s[0].id, "subnet-1");
        assert_eq!(s[0].cidr, "10.0.1.0/24".parse().unwrap());
        assert!(subnets(
            "<r><subnetSet><item><subnetId>s</subnetId><cidrBlock>x</cidrBlock></item></subnetSet></r>"
        )
        .unwrap_err()
        .contains("not an IPv4 CIDR"));
    }

    #[test]
    fn instance_states_from_describe_and_stop() {
        let d = r#"<DescribeInstancesResponse><reservationSet><item><reservationId>r-1</reservationId>
<instancesSet><item><instanceId>i-1</instanceId><instanceState><code>80</code><name>stopped</name></instanceState></item></instancesSet>
</item></reservationSet></DescribeInstancesResponse>"#;
        assert_eq!(
            instance_states(d).unwrap(),
            [InstanceState {
                instance_id: "i-1".into(),
                state: "stopped".into()
            }]
        );
        let s = r#"<StopInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>
<currentState><code>64</code><name>stopping</name></currentState>
<previousState><code>16</code><name>running</name></previousState></item></instancesSet></StopInstancesResponse>"#;
        assert_eq!(stopping_instances(s).unwrap()[0].state, "stopping");
    }
}
