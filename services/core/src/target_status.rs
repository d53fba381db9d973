//! What star-target reports on its control socket (/run/star/target.sock): the
//! see-through view of the iSCSI target.
//!
//! Requests, one JSON object per line: `{"cmd":"status"}`, `{"cmd":"promote"}`,
//! `{"cmd":"promote","peer_dead":true}`, `{"cmd":"demote"}`, `{"cmd":"reconcile"}`, and
//! the array changes `{"cmd":"array","change":{...}}` (see [`ArrayChange`]), which only
//! the active controller accepts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum TargetRequest {
    Status,
    /// Take ownership: this controller's port group Active/Optimized.
    Promote {
        #[serde(default)]
        peer_dead: bool,
    },
    /// Give it up: this controller's port group Standby.
    Demote,
    /// Read the shared disk and bring LIO in line now rather than at the next poll.
    Reconcile,
    Array {
        change: ArrayChange,
    },
}

/// A change to the array config on the shared disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ArrayChange {
    LunCreate {
        name: String,
        size_bytes: u64,
    },
    LunDelete {
        name: String,
        #[serde(default)]
        force: bool,
    },
    HostAdd {
        name: String,
        iqn: String,
        #[serde(default)]
        luns: Vec<String>,
    },
    HostRemove {
        name: String,
    },
    ChapSet {
        host: String,
        userid: String,
        secret: String,
        #[serde(default)]
        mutual_userid: Option<String>,
        #[serde(default)]
        mutual_secret: Option<String>,
    },
    ChapClear {
        host: String,
    },
    /// Lets a host see more LUNs.
    HostMap {
        name: String,
        luns: Vec<String>,
    },
    /// Hides LUNs from a host.
    HostUnmap {
        name: String,
        luns: Vec<String>,
    },
    /// Where controller `node`'s portal listens (instead of its client address).
    PortalSet {
        node: u8,
        address: std::net::IpAddr,
        port: u16,
    },
    /// Back to the client address of controller `node`.
    PortalClear {
        node: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum TargetReply {
    Status { status: Box<TargetStatus> },
    Done { message: String },
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub node: u8,
    /// "active", "standby", or "waiting" (no shared disk yet).
    pub role: String,
    pub target_iqn: Option<String>,
    /// The shared disk and the generation of the array config applied from it.
    pub disk: Option<String>,
    pub generation: Option<u64>,
    /// The ownership record: which controller owns the array, in which term.
    pub owner: Option<u8>,
    pub term: Option<u64>,
    pub portal: Option<String>,
    pub dbroot: Option<String>,
    pub alua: Vec<AluaGroupStatus>,
    pub luns: Vec<LunStatus>,
    pub sessions: Vec<SessionStatus>,
    /// The last reconciliation: how many configfs changes it made, or what failed.
    pub last_reconcile: Option<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AluaGroupStatus {
    pub name: String,
    pub id: u16,
    /// "active/optimized", "standby", "unavailable", ...
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunStatus {
    pub name: String,
    pub id: u16,
    pub size_bytes: u64,
    pub serial: String,
    pub device: String,
    /// From the backstore's statistics (the kernel counts whole MiB).
    pub commands: u64,
    pub read_mib: u64,
    pub written_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub initiator: String,
    pub tpg: u16,
    /// The initiator's address and port, when the kernel says.
    pub address: Option<String>,
}

/// ALUA access state numbers as configfs and REPORT TARGET PORT GROUPS have them.
pub fn alua_state_name(state: u8) -> &'static str {
    match state {
        0 => "active/optimized",
        1 => "active/non-optimized",
        2 => "standby",
        3 => "unavailable",
        4 => "lba-dependent",
        14 => "offline",
        15 => "transitioning",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_plain_json() {
        let r: TargetRequest = serde_json::from_str(r#"{"cmd":"promote"}"#).unwrap();
        assert_eq!(r, TargetRequest::Promote { peer_dead: false });
        let r: TargetRequest = serde_json::from_str(
            r#"{"cmd":"array","change":{"op":"lun_create","name":"vol1","size_bytes":1048576}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            TargetRequest::Array {
                change: ArrayChange::LunCreate {
                    name: "vol1".into(),
                    size_bytes: 1 << 20
                }
            }
        );
        assert!(serde_json::from_str::<TargetRequest>(r#"{"cmd":"explode"}"#).is_err());
    }
}
