//! What star-net answers on /run/star/net.sock to `{"cmd":"status"}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetStatus {
    /// Every configured interface has its address.
    pub ready: bool,
    pub interfaces: Vec<InterfaceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// "client" or "interconnect".
    pub purpose: String,
    /// "static" or "dhcp".
    pub method: String,
    /// "missing", "down", "no-carrier" or "up".
    pub link: String,
    pub mtu: Option<u32>,
    /// a.b.c.d/nn
    pub addresses: Vec<String>,
    pub lease: Option<LeaseStatus>,
    /// What it is doing or what went wrong, in words.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub state: String,
    pub address: String,
    pub server: String,
    pub router: Option<String>,
    /// The host name the DHCP server gave with the address (shown, not applied: the
    /// node's name comes from star.toml).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The MTU the server gave.
    #[serde(default)]
    pub mtu: Option<u16>,
    pub lease_sec: u64,
    pub renew_in_sec: f64,
    pub expires_in_sec: f64,
}
