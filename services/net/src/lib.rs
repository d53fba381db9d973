//! star-net: the network service. [`netlink`] configures links, addresses and routes;
//! [`dhcp`] is the DHCPv4 client (a pure state machine and its sockets); [`service`] runs
//! them for the interfaces of star.toml.

pub mod dhcp;
pub mod netlink;
pub mod program;
pub mod service;
