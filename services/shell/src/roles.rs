//! `star status`, `star switchover` and `star maintenance on|off`: the roles, as the
//! heartbeat service (/run/star/heartbeat.sock) sees and decides them.

use star_core::heartbeat_status::{HeartbeatReply, HeartbeatRequest, HeartbeatStatus};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
  status              this controller's role and term, the peer, the witness, and the
                      timing that bounds a failover
  switchover          (on the active) hand the array to the standby, the planned way
  maintenance on|off  no automatic promotion of this controller while on";

pub const HEARTBEAT_SOCKET: &str = "/run/star/heartbeat.sock";

/// Runs a roles command; `None` when `words` is not one.
pub fn run(words: &[&str], json: bool) -> Option<Result<String, String>> {
    let req = match words {
        ["status"] => HeartbeatRequest::Status,
        ["switchover"] => HeartbeatRequest::Switchover,
        ["maintenance", "on"] => HeartbeatRequest::Maintenance { on: true },
        ["maintenance", "off"] => HeartbeatRequest::Maintenance { on: false },
        ["maintenance", ..] => return Some(Err("maintenance on|off".into())),
        _ => return None,
    };
    Some(ask(&req, json))
}

fn ask(req: &HeartbeatRequest, json: bool) -> Result<String, String> {
    let socket = std::env::var_os("STAR_HEARTBEAT_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(HEARTBEAT_SOCKET));
    // A switchover waits for the whole hand-over: the standby's promotion included.
    let reply: HeartbeatReply = star_core::control::call(&socket, req, Duration::from_secs(120))
        .map_err(|e| {
            format!(
                "{e}: is the heartbeat service running? (`star services`; STAR_HEARTBEAT_SOCKET names another socket)"
            )
        })?;
    if json {
        let text = serde_json::to_string_pretty(&reply).unwrap_or_default() + "\n";
        return match reply {
            HeartbeatReply::Error { .. } => Err(text),
            _ => Ok(text),
        };
    }
    match reply {
        HeartbeatReply::Status { status } => Ok(render(&status)),
        HeartbeatReply::Done { message } => Ok(message + "\n"),
        HeartbeatReply::Error { message } => Err(message),
    }
}

/// The roles in words: who serves, in which term, how the peer and the witness look,
/// and why a failover takes as long as it does.
pub fn render(s: &HeartbeatStatus) -> String {
    let mut t = format!(
        "controller {}: {}{}  term {} (highest seen {})  incarnation {}  up {:.1} s\n",
        s.node,
        s.role,
        if s.fenced {
            " (fenced: no longer feeding the watchdog; the machine resets)"
        } else {
            ""
        },
        s.held_term,
        s.known_term,
        s.incarnation,
        s.uptime_ms as f64 / 1000.0
    );
    match &s.peer {
        Some(p) => t.push_str(&format!(
            "peer: {} in term {} (incarnation {}), last heard over the interconnect {:.1} s ago\n",
            p.role,
            p.term,
            p.incarnation,
            p.net_age_ms as f64 / 1000.0
        )),
        None => t.push_str("peer: not heard over the interconnect\n"),
    }
    let secs =
        |ms: Option<u64>| ms.map_or("-".to_string(), |m| format!("{:.1} s", m as f64 / 1000.0));
    t.push_str(&format!(
        "disk: own slot last written {} ago; peer's slot unchanged for {}\n",
        secs(s.own_write_age_ms),
        secs(s.peer_slot_unchanged_ms)
    ));
    t.push_str(&format!(
        "witness: {}\n",
        s.witness.as_deref().unwrap_or("not asked yet")
    ));
    t.push_str("timing:\n");
    for line in s.timing.lines() {
        t.push_str("  ");
        t.push_str(line);
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::heartbeat_status::PeerView;

    fn status(peer: Option<PeerView>, fenced: bool) -> HeartbeatStatus {
        HeartbeatStatus {
            node: 2,
            role: "active".into(),
            held_term: 4,
            known_term: 4,
            incarnation: 17,
            fenced,
            peer,
            own_write_age_ms: Some(120),
            peer_slot_unchanged_ms: None,
            witness: Some("granted term 4".into()),
            timing: "peer_dead 10 s\nmsgwait 20 s".into(),
            uptime_ms: 12_300,
        }
    }

    #[test]
    fn the_status_says_role_peer_witness_and_timing() {
        let peer = PeerView {
            role: "standby".into(),
            term: 4,
            incarnation: 9,
            net_age_ms: 250,
        };
        let text = render(&status(Some(peer), false));
        assert!(text.starts_with("controller 2: active  term 4"), "{text}");
        assert!(text.contains("peer: standby in term 4"), "{text}");
        assert!(text.contains("0.2 s ago"), "{text}");
        assert!(text.contains("witness: granted term 4"), "{text}");
        assert!(
            text.contains("disk: own slot last written 0.1 s ago; peer's slot unchanged for -"),
            "{text}"
        );
        assert!(text.contains("  msgwait 20 s\n"), "{text}");
        let fenced = render(&status(None, true));
        assert!(fenced.contains("fenced"), "{fenced}");
        assert!(fenced.contains("peer: not heard"), "{fenced}");
    }

    #[test]
    fn only_the_roles_commands_are_taken() {
        assert!(run(&["services"], false).is_none());
        assert!(run(&["target", "status"], false).is_none());
        assert_eq!(
            run(&["maintenance", "sideways"], false),
            Some(Err("maintenance on|off".into()))
        );
    }
}
