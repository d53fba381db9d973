//! The parameters of each EC2 Query call STAR makes. Pure: lists of name/value pairs in
//! the Query API's flattened form (`PrivateIpAddress.1`, `Filter.1.Value.1`).

use std::net::Ipv4Addr;

pub type Params = Vec<(String, String)>;

fn p(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// Moves `addr` to `eni`, taking it from whichever ENI holds it now.
pub fn assign_private_ip(eni: &str, addr: Ipv4Addr) -> Params {
    vec![
        p("NetworkInterfaceId", eni),
        p("PrivateIpAddress.1", addr),
        // Without it, an address held by the peer's ENI is refused
        // (PrivateIpAddressInUse): the whole point of the call is to take it.
        p("AllowReassignment", "true"),
    ]
}

/// Removes `addr` from `eni`.
pub fn unassign_private_ip(eni: &str, addr: Ipv4Addr) -> Params {
    vec![p("NetworkInterfaceId", eni), p("PrivateIpAddress.1", addr)]
}

/// DescribeNetworkInterfaces: by ids, by filters (`name`, values), page after
/// `next_token`.
pub fn describe_network_interfaces(
    ids: &[&str],
    filters: &[(&str, &[&str])],
    next_token: Option<&str>,
) -> Params {
    let mut out = Params::new();
    for (i, id) in ids.iter().enumerate() {
        out.push(p(&format!("NetworkInterfaceId.{}", i + 1), id));
    }
    for (i, (name, values)) in filters.iter().enumerate() {
        out.push(p(&format!("Filter.{}.Name", i + 1), name));
        for (j, v) in values.iter().enumerate() {
            out.push(p(&format!("Filter.{}.Value.{}", i + 1, j + 1), v));
        }
    }
    if let Some(t) = next_token {
        out.push(p("NextToken", t));
    }
    out
}

pub fn describe_subnet(subnet_id: &str) -> Params {
    vec![p("SubnetId.1", subnet_id)]
}

/// Points the route for `addr`/32 in `table` at `eni`. The route must exist: ReplaceRoute
/// only replaces.
pub fn replace_route(table: &str, addr: Ipv4Addr, eni: &str) -> Params {
    vec![
        p("RouteTableId", table),
        p("DestinationCidrBlock", host_cidr(addr)),
        p("NetworkInterfaceId", eni),
    ]
}

pub fn describe_route_tables(tables: &[&str]) -> Params {
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| p(&format!("RouteTableId.{}", i + 1), t))
        .collect()
}

/// Stops `instance` without letting its OS shut down in order: a fence, not a shutdown.
pub fn stop_instance_forced(instance: &str) -> Params {
    vec![p("InstanceId.1", instance), p("Force", "true")]
}

pub fn describe_instance(instance: &str) -> Params {
    vec![p("InstanceId.1", instance)]
}

/// `addr/32`, the route destination of one address.
pub fn host_cidr(addr: Ipv4Addr) -> String {
    format!("{addr}/32")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(ps: &Params) -> Vec<(&str, &str)> {
        ps.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }

    #[test]
    fn assign_allows_reassignment() {
        let ps = assign_private_ip("eni-1", Ipv4Addr::new(10, 0, 1, 100));
        assert_eq!(
            pairs(&ps),
            [
                ("NetworkInterfaceId", "eni-1"),
                ("PrivateIpAddress.1", "10.0.1.100"),
                ("AllowReassignment", "true")
            ]
        );
        assert_eq!(
            pairs(&unassign_private_ip("eni-1", Ipv4Addr::new(10, 0, 1, 100))),
            [
                ("NetworkInterfaceId", "eni-1"),
                ("PrivateIpAddress.1", "10.0.1.100")
            ]
        );
    }

    #[test]
    fn filters_and_lists_are_numbered_from_one() {
        let ps = describe_network_interfaces(
            &["eni-1", "eni-2"],
            &[
                ("subnet-id", &["subnet-1"]),
                ("vpc-id", &["vpc-1", "vpc-2"]),
            ],
            Some("tok"),
        );
        assert_eq!(
            pairs(&ps),
            [
                ("NetworkInterfaceId.1", "eni-1"),
                ("NetworkInterfaceId.2", "eni-2"),
                ("Filter.1.Name", "subnet-id"),
                ("Filter.1.Value.1", "subnet-1"),
                ("Filter.2.Name", "vpc-id"),
                ("Filter.2.Value.1", "vpc-1"),
                ("Filter.2.Value.2", "vpc-2"),
                ("NextToken", "tok"),
            ]
        );
        assert_eq!(
            pairs(&describe_route_tables(&["rtb-a", "rtb-b"])),
            [("RouteTableId.1", "rtb-a"), ("RouteTableId.2", "rtb-b")]
        );
    }

    #[test]
    fn routes_are_host_routes_and_stops_are_forced() {
        assert_eq!(
            pairs(&replace_route(
                "rtb-a",
                Ipv4Addr::new(192, 168, 77, 1),
                "eni-1"
            )),
            [
                ("RouteTableId", "rtb-a"),
                ("DestinationCidrBlock", "192.168.77.1/32"),
                ("NetworkInterfaceId", "eni-1")
            ]
        );
        assert_eq!(
            pairs(&stop_instance_forced("i-1")),
            [("InstanceId.1", "i-1"), ("Force", "true")]
        );
    }
}
