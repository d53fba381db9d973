//! The EC2 calls STAR makes, typed. Each is one signed request (pages aside); the
//! parameters are built in `request`, the answers read in `response`.

pub mod request;
pub mod response;

use std::net::Ipv4Addr;
use std::time::Instant;

pub use response::{InstanceState, NetworkInterface, Route, RouteTable, Subnet};

use crate::client::Client;
use crate::error::Error;

fn parsed<T>(call: &str, r: Result<T, String>) -> Result<T, Error> {
    r.map_err(|why| Error::bad_response(call, why))
}

pub fn assign_private_ip(
    c: &Client,
    eni: &str,
    addr: Ipv4Addr,
    deadline: Instant,
) -> Result<(), Error> {
    let call = format!("AssignPrivateIpAddresses on {eni} for {addr}");
    c.ec2_query(
        "AssignPrivateIpAddresses",
        &request::assign_private_ip(eni, addr),
        &call,
        deadline,
    )
    .map(drop)
}

pub fn unassign_private_ip(
    c: &Client,
    eni: &str,
    addr: Ipv4Addr,
    deadline: Instant,
) -> Result<(), Error> {
    let call = format!("UnassignPrivateIpAddresses on {eni} for {addr}");
    c.ec2_query(
        "UnassignPrivateIpAddresses",
        &request::unassign_private_ip(eni, addr),
        &call,
        deadline,
    )
    .map(drop)
}

/// One ENI by id.
pub fn describe_network_interface(
    c: &Client,
    eni: &str,
    deadline: Instant,
) -> Result<NetworkInterface, Error> {
    let call = format!("DescribeNetworkInterfaces for {eni}");
    let body = c.ec2_query(
        "DescribeNetworkInterfaces",
        &request::describe_network_interfaces(&[eni], &[], None),
        &call,
        deadline,
    )?;
    let page = parsed(&call, response::network_interfaces(&body))?;
    page.interfaces
        .into_iter()
        .find(|i| i.id == eni)
        .ok_or_else(|| Error::bad_response(&call, format!("{eni} is not in the answer")))
}

/// Every ENI in `subnet`, all pages.
pub fn network_interfaces_in_subnet(
    c: &Client,
    subnet: &str,
    deadline: Instant,
) -> Result<Vec<NetworkInterface>, Error> {
    let call = format!("DescribeNetworkInterfaces in {subnet}");
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let body = c.ec2_query(
            "DescribeNetworkInterfaces",
            &request::describe_network_interfaces(
                &[],
                &[("subnet-id", &[subnet])],
                token.as_deref(),
            ),
            &call,
            deadline,
        )?;
        let page = parsed(&call, response::network_interfaces(&body))?;
        all.extend(page.interfaces);
        match page.next_token {
            Some(t) if Some(&t) != token.as_ref() => token = Some(t),
            _ => return Ok(all),
        }
    }
}

pub fn describe_subnet(c: &Client, subnet: &str, deadline: Instant) -> Result<Subnet, Error> {
    let call = format!("DescribeSubnets for {subnet}");
    let body = c.ec2_query(
        "DescribeSubnets",
        &request::describe_subnet(subnet),
        &call,
        deadline,
    )?;
    parsed(&call, response::subnets(&body))?
        .into_iter()
        .find(|s| s.id == subnet)
        .ok_or_else(|| Error::bad_response(&call, format!("{subnet} is not in the answer")))
}

pub fn replace_route(
    c: &Client,
    table: &str,
    addr: Ipv4Addr,
    eni: &str,
    deadline: Instant,
) -> Result<(), Error> {
    let call = format!("ReplaceRoute on {table} for {addr}/32 to {eni}");
    c.ec2_query(
        "ReplaceRoute",
        &request::replace_route(table, addr, eni),
        &call,
        deadline,
    )
    .map(drop)
}

/// The route tables `tables`, in one call. A missing one fails the whole call with
/// `InvalidRouteTableID.NotFound`, whose message names it.
pub fn describe_route_tables(
    c: &Client,
    tables: &[&str],
    deadline: Instant,
) -> Result<Vec<RouteTable>, Error> {
    let call = format!("DescribeRouteTables for {}", tables.join(", "));
    let body = c.ec2_query(
        "DescribeRouteTables",
        &request::describe_route_tables(tables),
        &call,
        deadline,
    )?;
    parsed(&call, response::route_tables(&body))
}

/// StopInstances with Force; the state it reports right after.
pub fn stop_instance_forced(
    c: &Client,
    instance: &str,
    deadline: Instant,
) -> Result<Option<String>, Error> {
    let call = format!("StopInstances (Force) on {instance}");
    let body = c.ec2_query(
        "StopInstances",
        &request::stop_instance_forced(instance),
        &call,
        deadline,
    )?;
    Ok(parsed(&call, response::stopping_instances(&body))?
        .into_iter()
        .find(|s| s.instance_id == instance)
        .map(|s| s.state))
}

pub fn describe_instance_state(
    c: &Client,
    instance: &str,
    deadline: Instant,
) -> Result<String, Error> {
    let call = format!("DescribeInstances for {instance}");
    let body = c.ec2_query(
        "DescribeInstances",
        &request::describe_instance(instance),
        &call,
        deadline,
    )?;
    parsed(&call, response::instance_states(&body))?
        .into_iter()
        .find(|s| s.instance_id == instance)
        .map(|s| s.state)
        .ok_or_else(|| Error::bad_response(&call, format!("{instance} is not in the answer")))
}
