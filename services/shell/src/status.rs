//! `star status`, `star portal` and `star network`: the array at a glance, gathered from
//! every service that knows a part of it (star-heartbeat: roles and heartbeats;
//! star-target: LUNs, ALUA states as configfs holds them, sessions; star-takeover: the
//! floating address; star-net: interfaces). A service that does not answer leaves its
//! part saying so; the rest is still shown.

use serde_json::json;
use star_core::heartbeat_status::{
    HeartbeatReply, HeartbeatRequest, HeartbeatStatus, TakeoverReply, TakeoverRequest,
    TakeoverStatus,
};
use star_core::net_status::NetStatus;
use star_core::target_status::{TargetReply, TargetRequest, TargetStatus};
use std::path::PathBuf;
use std::time::Duration;

fn socket(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Status answers are quick; a service that takes longer is shown as not answering.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything `status` shows, each part as its service answered or why it did not.
#[derive(Debug, Clone)]
pub struct Overview {
    pub host: String,
    pub heartbeat: Result<HeartbeatStatus, String>,
    pub target: Result<TargetStatus, String>,
    pub floating: Result<TakeoverStatus, String>,
    pub system: Result<SystemLoad, String>,
}

/// The machine itself: how long it has run and the memory it uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SystemLoad {
    pub uptime_sec: f64,
    pub mem_total_kib: u64,
    /// MemTotal less MemAvailable: what the kernel could not hand out without swapping
    /// or dropping something still wanted.
    pub mem_used_kib: u64,
}

/// Reads /proc/uptime and /proc/meminfo's text.
pub fn parse_system(uptime: &str, meminfo: &str) -> Result<SystemLoad, String> {
    let uptime_sec = uptime
        .split_whitespace()
        .next()
        .and_then(|u| u.parse::<f64>().ok())
        .ok_or_else(|| format!("/proc/uptime holds {:?}", uptime.trim()))?;
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| format!("/proc/meminfo has no {name}"))
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    Ok(SystemLoad {
        uptime_sec,
        mem_total_kib: total,
        mem_used_kib: total.saturating_sub(available),
    })
}

fn read_system() -> Result<SystemLoad, String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    parse_system(&read("/proc/uptime")?, &read("/proc/meminfo")?)
}

fn ask_heartbeat() -> Result<HeartbeatStatus, String> {
    let path = socket("STAR_HEARTBEAT_SOCKET", crate::roles::HEARTBEAT_SOCKET);
    match star_core::control::call(&path, &HeartbeatRequest::Status, ASK_TIMEOUT) {
        Ok(HeartbeatReply::Status { status }) => Ok(*status),
        Ok(HeartbeatReply::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("star-heartbeat does not answer ({e})")),
    }
}

pub fn ask_target() -> Result<TargetStatus, String> {
    let path = socket("STAR_TARGET_SOCKET", crate::array::TARGET_SOCKET);
    match star_core::control::call(&path, &TargetRequest::Status, ASK_TIMEOUT) {
        Ok(TargetReply::Status { status }) => Ok(*status),
        Ok(TargetReply::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("star-target does not answer ({e})")),
    }
}

fn ask_takeover() -> Result<TakeoverStatus, String> {
    let path = socket("STAR_TAKEOVER_SOCKET", "/run/star/takeover.sock");
    match star_core::control::call(&path, &TakeoverRequest::Status, ASK_TIMEOUT) {
        Ok(TakeoverReply::Status { status }) => Ok(*status),
        Ok(TakeoverReply::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("star-takeover does not answer ({e})")),
    }
}

pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "star".into())
}

pub fn gather() -> Overview {
    Overview {
        host: host_name(),
        heartbeat: ask_heartbeat(),
        target: ask_target(),
        floating: ask_takeover(),
        system: read_system(),
    }
}

/// The state of the path through controller `node`, as configfs holds it for its ALUA
/// group (the groups are named after the controllers' port groups, ctrl_1 and ctrl_2).
fn path_state(t: &TargetStatus, node: u8) -> String {
    t.alua
        .iter()
        .find(|g| u8::try_from(g.id).ok() == Some(node))
        .map_or_else(|| "-".to_string(), |g| g.state.clone())
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The screen of `status`.
pub fn render(o: &Overview) -> String {
    let mut t = String::new();
    match &o.heartbeat {
        Ok(h) => {
            t.push_str(&format!(
                "{}: controller {} {}{} in term {} (highest seen {}), up {}\n",
                o.host,
                h.node,
                h.role.to_uppercase(),
                if h.fenced {
                    " (FENCED: the machine resets)"
                } else {
                    ""
                },
                h.held_term,
                h.known_term,
                crate::human_duration(h.uptime_ms as f64 / 1000.0)
            ));
            let peer = 3 - h.node.clamp(1, 2);
            match &h.peer {
                Some(p) => t.push_str(&format!(
                    "peer: controller {peer} {} in term {}, heard over the interconnect {} ago\n",
                    p.role.to_uppercase(),
                    p.term,
                    seconds(p.net_age_ms)
                )),
                None => t.push_str(&format!(
                    "peer: controller {peer} not heard over the interconnect\n"
                )),
            }
            t.push_str(&format!(
                "heartbeats: own disk slot written {} ago; peer's disk slot unchanged for {}\n",
                h.own_write_age_ms.map_or("-".into(), seconds),
                h.peer_slot_unchanged_ms.map_or("-".into(), seconds)
            ));
            t.push_str(&format!(
                "witness: {}\n",
                h.witness.as_deref().unwrap_or("not asked yet")
            ));
        }
        Err(e) => t.push_str(&format!("{}: roles unknown: {e}\n", o.host)),
    }
    match &o.system {
        Ok(l) => t.push_str(&format!(
            "system: up {}, memory in use {} MiB of {} MiB\n",
            crate::human_duration(l.uptime_sec),
            l.mem_used_kib / 1024,
            l.mem_total_kib / 1024
        )),
        Err(e) => t.push_str(&format!("system: {e}\n")),
    }
    match &o.floating {
        Ok(f) => t.push_str(&format!(
            "floating address {} ({}): {}, {}\n",
            f.address,
            f.method,
            if f.held { "held here" } else { "not here" },
            f.observed
        )),
        Err(e) => t.push_str(&format!("floating address: {e}\n")),
    }
    match &o.target {
        Ok(s) => {
            t.push_str(&format!(
                "target {}  portal {}  shared disk {} (generation {}, owner {})\n",
                s.target_iqn.as_deref().unwrap_or("-"),
                s.portal.as_deref().unwrap_or("-"),
                s.disk.as_deref().unwrap_or("none"),
                s.generation.map_or("-".into(), |g| g.to_string()),
                s.owner.map_or("none".into(), |o| format!("controller {o}"))
            ));
            if s.luns.is_empty() {
                t.push_str("no LUNs (lun create NAME SIZE makes one)\n");
            } else {
                let rows: Vec<[String; 5]> = s
                    .luns
                    .iter()
                    .map(|l| {
                        [
                            l.id.to_string(),
                            l.name.clone(),
                            star_disk::layout::human_size(l.size_bytes),
                            path_state(s, 1),
                            path_state(s, 2),
                        ]
                    })
                    .collect();
                t.push_str(&table(
                    ["LUN", "NAME", "SIZE", "PATH ctl 1", "PATH ctl 2"],
                    &rows,
                ));
            }
            if s.sessions.is_empty() {
                t.push_str("sessions: none on this controller\n");
            }
            for x in &s.sessions {
                t.push_str(&format!(
                    "session {}{}\n",
                    x.initiator,
                    x.address
                        .as_deref()
                        .map_or(String::new(), |a| format!(" from {a}"))
                ));
            }
            for p in &s.problems {
                t.push_str(&format!("problem: {p}\n"));
            }
        }
        Err(e) => t.push_str(&format!("LUNs: {e}\n")),
    }
    if let Ok(h) = &o.heartbeat {
        t.push_str("timing:\n");
        for line in h.timing.lines() {
            t.push_str(&format!("  {line}\n"));
        }
    }
    t
}

/// Columns as wide as their widest cell, two blanks apart.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("{cell:<w$}  "));
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn to_json(o: &Overview) -> serde_json::Value {
    fn part<T: serde::Serialize>(r: &Result<T, String>) -> serde_json::Value {
        match r {
            Ok(v) => serde_json::to_value(v).unwrap_or_default(),
            Err(e) => json!({ "error": e }),
        }
    }
    json!({
        "host": o.host,
        "roles": part(&o.heartbeat),
        "target": part(&o.target),
        "floating": part(&o.floating),
        "system": part(&o.system),
    })
}

/// `status`: fails (exit 1) only when no service answered at all.
pub fn run(json_out: bool) -> Result<String, String> {
    let o = gather();
    let text = if json_out {
        serde_json::to_string_pretty(&to_json(&o)).unwrap_or_default() + "\n"
    } else {
        render(&o)
    };
    if o.heartbeat.is_err() && o.target.is_err() && o.floating.is_err() {
        Err(format!(
            "{text}no service answered: `star services` shows what runs"
        ))
    } else {
        Ok(text)
    }
}

/// `portal`: where initiators log in.
pub fn portals(json_out: bool) -> Result<String, String> {
    let target = ask_target();
    let floating = ask_takeover();
    if json_out {
        return Ok(serde_json::to_string_pretty(&json!({
            "floating": floating.as_ref().map(|f| f.address.clone()).ok(),
            "portal": target.as_ref().ok().and_then(|t| t.portal.clone()),
            "target_iqn": target.as_ref().ok().and_then(|t| t.target_iqn.clone()),
        }))
        .unwrap_or_default()
            + "\n");
    }
    let mut t = String::new();
    match &floating {
        Ok(f) => t.push_str(&format!(
            "floating address {} (port 3260): initiators should use this one; {}\n",
            f.address,
            if f.held {
                "held by this controller"
            } else {
                "held by the other controller"
            }
        )),
        Err(e) => t.push_str(&format!("floating address: {e}\n")),
    }
    match &target {
        Ok(s) => t.push_str(&format!(
            "this controller's portal {} for target {}\n",
            s.portal.as_deref().unwrap_or("(none yet)"),
            s.target_iqn.as_deref().unwrap_or("-")
        )),
        Err(e) => return Err(format!("{t}{e}")),
    }
    Ok(t)
}

/// `network`: star-net's view of the interfaces.
pub fn network(json_out: bool) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    #[serde(tag = "reply", rename_all = "snake_case")]
    enum NetReply {
        Status { status: NetStatus },
        Error { message: String },
    }
    let path = socket("STAR_NET_SOCKET", "/run/star/net.sock");
    let status = match star_core::control::call(&path, &json!({"cmd": "status"}), ASK_TIMEOUT) {
        Ok(NetReply::Status { status }) => status,
        Ok(NetReply::Error { message }) => return Err(message),
        Err(e) => {
            return Err(format!(
                "star-net does not answer ({e}): `star services` shows whether it runs"
            ))
        }
    };
    if json_out {
        return Ok(serde_json::to_string_pretty(&status).unwrap_or_default() + "\n");
    }
    Ok(render_network(&status))
}

pub fn render_network(s: &NetStatus) -> String {
    let rows: Vec<[String; 6]> = s
        .interfaces
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.purpose.clone(),
                i.method.clone(),
                i.link.clone(),
                i.mtu.map_or("-".into(), |m| m.to_string()),
                if i.addresses.is_empty() {
                    "-".into()
                } else {
                    i.addresses.join(" ")
                },
            ]
        })
        .collect();
    let mut t = format!(
        "network {}\n",
        if s.ready {
            "ready: every interface has its address"
        } else {
            "NOT ready"
        }
    );
    t.push_str(&table(
        ["IFACE", "PURPOSE", "METHOD", "LINK", "MTU", "ADDRESSES"],
        &rows,
    ));
    for i in &s.interfaces {
        if let Some(l) = &i.lease {
            t.push_str(&format!(
                "{}: DHCP lease {} from {} ({}){}\n",
                i.name,
                l.address,
                l.server,
                l.state,
                l.router
                    .as_deref()
                    .map_or(String::new(), |r| format!(", router {r}"))
            ));
        }
        if let Some(d) = &i.detail {
            t.push_str(&format!("{}: {d}\n", i.name));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::heartbeat_status::PeerView;
    use star_core::target_status::{AluaGroupStatus, LunStatus, SessionStatus};

    fn overview() -> Overview {
        let target: TargetStatus = serde_json::from_value(json!({
            "node": 1, "role": "active", "target_iqn": "iqn.2026-01.org.star:star-lab",
            "disk": "/dev/vdb", "generation": 3, "owner": 1, "term": 4,
            "portal": "192.0.2.11:3260", "dbroot": null,
            "alua": [], "luns": [], "sessions": [], "last_reconcile": null, "problems": []
        }))
        .unwrap();
        let mut target = target;
        target.alua = vec![
            AluaGroupStatus {
                name: "ctrl_1".into(),
                id: 1,
                state: "active/optimized".into(),
            },
            AluaGroupStatus {
                name: "ctrl_2".into(),
                id: 2,
                state: "standby".into(),
            },
        ];
        target.luns = vec![LunStatus {
            name: "data0".into(),
            id: 1,
            size_bytes: 512 << 20,
            serial: "s".into(),
            device: "/dev/vdb2".into(),
            commands: 5,
            read_mib: 1,
            written_mib: 2,
        }];
        target.sessions = vec![SessionStatus {
            initiator: "iqn.2026-01.org.star:client1".into(),
            tpg: 1,
            address: Some("192.0.2.50".into()),
        }];
        Overview {
            host: "ctl1".into(),
            heartbeat: Ok(HeartbeatStatus {
                node: 1,
                role: "active".into(),
                held_term: 4,
                known_term: 4,
                incarnation: 3,
                fenced: false,
                peer: Some(PeerView {
                    role: "standby".into(),
                    term: 4,
                    incarnation: 2,
                    net_age_ms: 90,
                }),
                own_write_age_ms: Some(40),
                peer_slot_unchanged_ms: Some(60),
                witness: Some("granted term 4".into()),
                timing: "peer_dead 1.0 s\nexpected RTO 3.4 s".into(),
                uptime_ms: 65_000,
            }),
            target: Ok(target),
            floating: Ok(TakeoverStatus {
                method: "arp".into(),
                address: "192.0.2.100/24".into(),
                interface: Some("eth0".into()),
                held: true,
                observed: "192.0.2.100/24 on eth0".into(),
                last_action: None,
                announce: None,
            }),
            system: Ok(SystemLoad {
                uptime_sec: 66.0,
                mem_total_kib: 481 * 1024,
                mem_used_kib: 38 * 1024 + 500,
            }),
        }
    }

    #[test]
    fn the_system_line_comes_from_proc() {
        let meminfo = "MemTotal:         492544 kB\nMemFree:          400000 kB\nMemAvailable:     453632 kB\n";
        assert_eq!(
            parse_system("66.12 60.00\n", meminfo).unwrap(),
            SystemLoad {
                uptime_sec: 66.12,
                mem_total_kib: 492544,
                mem_used_kib: 492544 - 453632,
            }
        );
        assert_eq!(
            parse_system("66.12 60.00\n", "MemTotal: 1 kB\n").unwrap_err(),
            "/proc/meminfo has no MemAvailable"
        );
        assert!(parse_system("", meminfo)
            .unwrap_err()
            .contains("/proc/uptime"));
    }

    #[test]
    fn status_shows_roles_heartbeats_witness_address_luns_paths_and_sessions() {
        let t = render(&overview());
        for want in [
            "ctl1: controller 1 ACTIVE in term 4 (highest seen 4), up 1 m 05 s",
            "peer: controller 2 STANDBY in term 4, heard over the interconnect 0.1 s ago",
            "own disk slot written 0.0 s ago; peer's disk slot unchanged for 0.1 s",
            "witness: granted term 4",
            "system: up 1 m 06 s, memory in use 38 MiB of 481 MiB",
            "floating address 192.0.2.100/24 (arp): held here",
            "session iqn.2026-01.org.star:client1 from 192.0.2.50",
            "  expected RTO 3.4 s",
        ] {
            assert!(t.contains(want), "{want:?} missing:\n{t}");
        }
        let header = t.lines().find(|l| l.starts_with("LUN")).unwrap();
        assert_eq!(header, "LUN  NAME   SIZE     PATH ctl 1        PATH ctl 2");
        let row = t.lines().find(|l| l.starts_with("1 ")).unwrap();
        assert_eq!(row, "1    data0  512 MiB  active/optimized  standby");
    }

    #[test]
    fn a_silent_service_leaves_its_part_saying_so() {
        let mut o = overview();
        o.heartbeat = Err("star-heartbeat does not answer (no socket)".into());
        o.floating = Err("star-takeover does not answer (x)".into());
        let t = render(&o);
        assert!(
            t.starts_with("ctl1: roles unknown: star-heartbeat does not answer"),
            "{t}"
        );
        assert!(
            t.contains("floating address: star-takeover does not answer"),
            "{t}"
        );
        assert!(t.contains("data0"), "{t}");
        assert!(!t.contains("timing:"), "{t}");
        let v = to_json(&o);
        assert_eq!(
            v["roles"]["error"],
            "star-heartbeat does not answer (no socket)"
        );
        assert_eq!(v["target"]["luns"][0]["name"], "data0");
    }

    #[test]
    fn the_network_table() {
        let s: NetStatus = serde_json::from_value(json!({
            "ready": true,
            "interfaces": [
                {"name": "eth0", "purpose": "client", "method": "static", "link": "up", "mtu": 1500,
                 "addresses": ["192.0.2.11/24"], "lease": null, "detail": null},
                {"name": "eth1", "purpose": "interconnect", "method": "dhcp", "link": "no-carrier", "mtu": null,
                 "addresses": [], "lease": null, "detail": "waiting for a carrier"}
            ]
        }))
        .unwrap();
        let t = render_network(&s);
        assert!(
            t.contains("eth0   client        static  up          1500  192.0.2.11/24"),
            "{t}"
        );
        assert!(t.contains("eth1: waiting for a carrier"), "{t}");
    }
}
