//! What star-heartbeat answers on its control socket (/run/star/heartbeat.sock), and what
//! it asks star-takeover on its socket (/run/star/takeover.sock).
//!
//! Requests, one JSON object per line: `{"cmd":"status"}`, `{"cmd":"switchover"}`,
//! `{"cmd":"maintenance","on":true}`. Replies: `{"reply":"status","status":{...}}`,
//! `{"reply":"done","message":"..."}`, `{"reply":"error","message":"..."}`.
//!
//! star-takeover's requests are `{"cmd":"acquire"}` and `{"cmd":"release"}` (the two
//! star-heartbeat sends, answered `done` or `error`) and `{"cmd":"status"}` (for
//! operators, answered `{"reply":"status","status":{...}}`); see docs/takeover.md.

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
    /// Where the address is now, as this controller sees it, and what was last done.
    Status,
    /// Power the peer off by star.toml's `[fencing]` (star-heartbeat, when it takes over).
    FencePeer,
    /// After an acquire: make the clients of the previous holder drop these connections
    /// at once, rather than when their own timeouts run out (star-heartbeat passes what
    /// the peer's disk slot last listed).
    ResetConnections { connections: Vec<TcpConnection> },
}

/// One TCP connection to the floating address, as its holder sees it: its own end (the
/// floating address and the portal's port) and the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TcpConnection {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum TakeoverReply {
    Done { message: String },
    Error { message: String },
    Status { status: Box<TakeoverStatus> },
}

/// star-takeover's answer to `status`: observed when asked, not remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverStatus {
    /// star.toml's method: "arp", "aws-secondary-ip", "aws-route-table", "aws-route53".
    pub method: String,
    /// The floating address with its prefix length, "192.0.2.100/24".
    pub address: String,
    /// The interface the address is put on (the client interface), when the method
    /// puts it on one.
    pub interface: Option<String>,
    /// This controller holds the address: it is where the method puts it, as configured.
    pub held: bool,
    /// What was seen, in words: "192.0.2.100/24 on eth0 (52:54:00:12:34:56, carrier)",
    /// "on no interface of this node".
    pub observed: String,
    /// The last acquire or release, if there was one since the service started.
    pub last_action: Option<TakeoverAction>,
    /// The announcements of the last acquire: the first burst, and the second one
    /// (pending, sent, or cancelled by a release).
    pub announce: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverAction {
    /// "acquire" or "release".
    pub action: String,
    pub ok: bool,
    /// The reply that was sent: what was done, or the error.
    pub message: String,
    /// How long it took.
    pub took_ms: u64,
    /// How long ago it finished.
    pub ago_ms: u64,
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

    #[test]
    fn takeover_lines_keep_their_shape() {
        for (request, line) in [
            (TakeoverRequest::Acquire, r#"{"cmd":"acquire"}"#),
            (TakeoverRequest::Release, r#"{"cmd":"release"}"#),
            (TakeoverRequest::Status, r#"{"cmd":"status"}"#),
            (
                TakeoverRequest::ResetConnections {
                    connections: vec![TcpConnection {
                        local: "192.0.2.100:3260".parse().unwrap(),
                        remote: "192.0.2.50:51234".parse().unwrap(),
                    }],
                },
                r#"{"cmd":"reset_connections","connections":[{"local":"192.0.2.100:3260","remote":"192.0.2.50:51234"}]}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&request).unwrap(), line);
            assert_eq!(
                serde_json::from_str::<TakeoverRequest>(line).unwrap(),
                request
            );
        }
        // What star-heartbeat reads: the two replies it has always had.
        assert_eq!(
            serde_json::to_string(&TakeoverReply::Done {
                message: "held".into()
            })
            .unwrap(),
            r#"{"reply":"done","message":"held"}"#
        );
        assert_eq!(
            serde_json::from_str::<TakeoverReply>(r#"{"reply":"error","message":"no"}"#).unwrap(),
            TakeoverReply::Error {
                message: "no".into()
            }
        );
        let status = TakeoverReply::Status {
            status: Box::new(TakeoverStatus {
                method: "arp".into(),
                address: "192.0.2.100/24".into(),
                interface: Some("eth0".into()),
                held: true,
                observed: "192.0.2.100/24 on eth0".into(),
                last_action: Some(TakeoverAction {
                    action: "acquire".into(),
                    ok: true,
                    message: "acquired".into(),
                    took_ms: 801,
                    ago_ms: 5,
                }),
                announce: None,
            }),
        };
        let text = serde_json::to_string(&status).unwrap();
        assert!(
            text.starts_with(r#"{"reply":"status","status":{"method":"arp","address":"192.0.2.100/24","interface":"eth0","held":true,"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<TakeoverReply>(&text).unwrap(),
            status
        );
    }
}
