//! What star-heartbeat answers on its control socket (/run/star/heartbeat.sock), and what
//! it asks star-takeover on its socket (/run/star/takeover.sock).
//!
//! Requests, one JSON object per line: `{"cmd":"status"}`, `{"cmd":"switchover"}`,
//! `{"cmd":"maintenance","on":true}`. Replies: `{"reply":"status","status":{...}}`,
//! `{"reply":"done","message":"..."}`, `{"reply":"error","message":"..."}`.
//!
//! star-takeover does not exist yet; the two requests star-heartbeat sends it are fixed
//! here so that it and any stand-in speak the same lines: `{"cmd":"acquire"}` and
//! `{"cmd":"release"}`, answered with a [`TakeoverReply`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum HeartbeatRequest {
    Status,
    /// Run on the active: hand the array to the standby (a planned switchover).
    Switchover,
    /// On: no automatic promotion of this node. Off: back to standby.
    Maintenance {
        on: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum HeartbeatReply {
    Status { status: Box<HeartbeatStatus> },
    Done { message: String },
    Error { message: String },
}

/// One controller's view of the roles, for `star status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatStatus {
    pub node: u8,
    /// starting, standby, promoting, active, demoting, fenced, maintenance.
    pub role: String,
    /// The term this node holds (0: none).
    pub held_term: u64,
    /// The highest term this node has seen.
    pub known_term: u64,
    pub incarnation: u64,
    /// The node stopped feeding its watchdog: it is waiting to be reset.
    pub fenced: bool,
    /// The peer as last seen over the interconnect.
    pub peer: Option<PeerView>,
    /// Milliseconds since this node's last heartbeat write completed.
    #[serde(default)]
    pub own_write_age_ms: Option<u64>,
    /// Milliseconds the peer's disk slot has shown the same value: the peer is judged
    /// dead when this reaches peer_dead.
    #[serde(default)]
    pub peer_slot_unchanged_ms: Option<u64>,
    /// The last witness answer ("granted term 4", "refused, term 4", "unreachable"), if
    /// it was asked.
    pub witness: Option<String>,
    /// The failover timing and its derivation (see star-heartbeat's timing module).
    pub timing: String,
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub role: String,
    pub term: u64,
    pub incarnation: u64,
    /// Milliseconds since its last authenticated UDP heartbeat.
    pub net_age_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum TakeoverRequest {
    /// Bring the floating address to this controller.
    Acquire,
    /// Let go of it.
    Release,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum TakeoverReply {
    Done { message: String },
    Error { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_their_documented_shape() {
        let m: HeartbeatRequest =
            serde_json::from_str(r#"{"cmd":"maintenance","on":true}"#).unwrap();
        assert_eq!(m, HeartbeatRequest::Maintenance { on: true });
        assert_eq!(
            serde_json::to_string(&HeartbeatRequest::Switchover).unwrap(),
            r#"{"cmd":"switchover"}"#
        );
        assert_eq!(
            serde_json::to_string(&TakeoverRequest::Acquire).unwrap(),
            r#"{"cmd":"acquire"}"#
        );
    }
}
