//! `star disk`, `star lun`, `star host`, `star chap` and `star target`: the array's
//! commands. Changes go to the target service of the active controller
//! (/run/star/target.sock), which makes them on the shared disk; the standby notices the
//! new generation. With `--disk PATH` they are made on that disk directly: for a disk
//! prepared before the controllers boot, or from another machine.

use star_core::array_config::{Chap, Host};
use star_core::node_config::{parse_size, NodeConfig};
use star_core::target_status::{ArrayChange, TargetReply, TargetRequest, TargetStatus};
use star_disk::init::{init, InitRequest, LunSeed};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const USAGE: &str = "\
  disk init [--disk PATH] [--config STAR_TOML] [--force]
                      initialize the shared disk with star.toml's [[lun]] and [[host]]
  disk check [--disk PATH]
                      superblock, both config copies, partitions against the config
  lun list | lun create NAME SIZE | lun delete NAME [--force]
  host list | host add NAME IQN [LUN...] | host remove NAME
  host map NAME LUN... | host unmap NAME LUN...
  portal set NODE ADDRESS[:PORT] | portal clear NODE
  chap set HOST USER SECRET [MUTUAL_USER MUTUAL_SECRET] | chap clear HOST
                      array changes: through the active controller, or --disk PATH
  target status | target promote [--peer-dead] | target demote | target reconcile
  target promote --disk PATH --node N | target demote --disk PATH
                      the ownership record written on the disk directly";

pub const TARGET_SOCKET: &str = "/run/star/target.sock";

/// Runs an array command; `None` when `words` is not one.
pub fn run(words: &[&str], json: bool) -> Option<Result<String, String>> {
    let first = *words.first()?;
    if !matches!(
        first,
        "disk" | "lun" | "host" | "chap" | "portal" | "target"
    ) {
        return None;
    }
    let mut disk: Option<PathBuf> = None;
    let mut config = PathBuf::from("/run/star/star.toml");
    let mut force = false;
    let mut peer_dead = false;
    let mut node: Option<u8> = None;
    let mut rest: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "--disk" if i + 1 < words.len() => {
                disk = Some(words[i + 1].into());
                i += 1;
            }
            "--config" if i + 1 < words.len() => {
                config = words[i + 1].into();
                i += 1;
            }
            "--node" if i + 1 < words.len() => {
                node = words[i + 1].parse().ok().filter(|n| *n == 1 || *n == 2);
                if node.is_none() {
                    return Some(Err(format!("--node is 1 or 2, not {:?}", words[i + 1])));
                }
                i += 1;
            }
            "--force" => force = true,
            "--peer-dead" => peer_dead = true,
            w => rest.push(w),
        }
        i += 1;
    }
    if let (Some(path), ["target", what @ ("promote" | "demote")]) = (&disk, rest.as_slice()) {
        return Some(own_directly(path, what, node, peer_dead));
    }
    Some(dispatch(&rest, disk, &config, force, peer_dead, json))
}

/// `star target promote|demote --disk PATH [--node N]`: the ownership record written
/// straight to the disk, for a lab without its heartbeat service. Each controller's
/// target service follows the record within a second.
fn own_directly(
    disk: &Path,
    what: &str,
    node: Option<u8>,
    peer_dead: bool,
) -> Result<String, String> {
    let owner = match (what, node) {
        ("demote", _) => 0,
        (_, Some(n)) => n,
        _ => return Err("star target promote --disk PATH needs --node 1|2".into()),
    };
    let array = star_disk::array::Array::open(disk, star_disk::io::Access::ReadWrite)
        .map_err(|e| e.to_string())?;
    array.require_superblock().map_err(|e| e.to_string())?;
    let o =
        star_disk::ownership::take(&array.disk, owner, !peer_dead).map_err(|e| e.to_string())?;
    Ok(match owner {
        0 => format!("term {}: no controller owns the array\n", o.term),
        n => format!(
            "term {}: controller {n} owns the array (peer {})\n",
            o.term,
            if peer_dead { "dead" } else { "healthy" }
        ),
    })
}

fn dispatch(
    words: &[&str],
    disk: Option<PathBuf>,
    config: &Path,
    force: bool,
    peer_dead: bool,
    json: bool,
) -> Result<String, String> {
    let change = match words {
        ["disk", "init"] => return disk_init(&disk_or_found(disk)?, config, force),
        ["disk", "check"] => {
            let report =
                star_disk::check::check(&disk_or_found(disk)?).map_err(|e| e.to_string())?;
            return if report.is_clean() {
                Ok(report.to_string())
            } else {
                Err(report.to_string())
            };
        }
        ["lun", "list"] => return lun_list(disk),
        ["host", "list"] => return host_list(disk),
        ["lun", "create", name, size] => ArrayChange::LunCreate {
            name: name.to_string(),
            size_bytes: parse_size(size)?,
        },
        ["lun", "delete", name] => ArrayChange::LunDelete {
            name: name.to_string(),
            force,
        },
        ["host", "add", name, iqn, luns @ ..] => ArrayChange::HostAdd {
            name: name.to_string(),
            iqn: iqn.to_string(),
            luns: luns.iter().map(|l| l.to_string()).collect(),
        },
        ["host", "remove", name] => ArrayChange::HostRemove {
            name: name.to_string(),
        },
        ["host", "map", name, luns @ ..] if !luns.is_empty() => ArrayChange::HostMap {
            name: name.to_string(),
            luns: luns.iter().map(|l| l.to_string()).collect(),
        },
        ["host", "unmap", name, luns @ ..] if !luns.is_empty() => ArrayChange::HostUnmap {
            name: name.to_string(),
            luns: luns.iter().map(|l| l.to_string()).collect(),
        },
        ["portal", "set", node, address] => {
            let (address, port) = parse_portal(address)?;
            ArrayChange::PortalSet {
                node: parse_node(node)?,
                address,
                port,
            }
        }
        ["portal", "clear", node] => ArrayChange::PortalClear {
            node: parse_node(node)?,
        },
        ["chap", "set", host, user, secret] => ArrayChange::ChapSet {
            host: host.to_string(),
            userid: user.to_string(),
            secret: secret.to_string(),
            mutual_userid: None,
            mutual_secret: None,
        },
        ["chap", "set", host, user, secret, muser, msecret] => ArrayChange::ChapSet {
            host: host.to_string(),
            userid: user.to_string(),
            secret: secret.to_string(),
            mutual_userid: Some(muser.to_string()),
            mutual_secret: Some(msecret.to_string()),
        },
        ["chap", "clear", host] => ArrayChange::ChapClear {
            host: host.to_string(),
        },
        ["target", "status"] => return target(&TargetRequest::Status, json),
        ["target", "promote"] => return target(&TargetRequest::Promote { peer_dead }, json),
        ["target", "demote"] => return target(&TargetRequest::Demote, json),
        ["target", "reconcile"] => return target(&TargetRequest::Reconcile, json),
        _ => return Err(format!("unknown command: {}\n{USAGE}", words.join(" "))),
    };
    match disk {
        Some(path) => star_disk::changes::apply(&path, &change)
            .map(|(text, _)| text)
            .map_err(|e| e.to_string()),
        None => target(&TargetRequest::Array { change }, json),
    }
}

/// `192.0.2.21`, `192.0.2.21:3261`, `fd00::21` or `[fd00::21]:3261`; iSCSI's port 3260
/// when none is given.
pub fn parse_portal(text: &str) -> Result<(std::net::IpAddr, u16), String> {
    if let Ok(sa) = text.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip(), sa.port()));
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| (ip, 3260))
        .map_err(|_| format!("{text:?} is not an address or address:port (192.0.2.21, 192.0.2.21:3260, [fd00::21]:3260)"))
}

fn parse_node(text: &str) -> Result<u8, String> {
    match text {
        "1" | "ctl1" => Ok(1),
        "2" | "ctl2" => Ok(2),
        _ => Err(format!("{text:?} is not a controller: 1 or 2")),
    }
}

/// The shared disk of this controller: the disk holding a STAR-META partition.
fn disk_or_found(disk: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(d) = disk {
        return Ok(d);
    }
    star_disk::locate::shared_disk(Path::new("/sys"), Path::new("/dev")).ok_or_else(|| {
        "no shared disk found (no disk has a STAR-META partition); name one with --disk PATH".into()
    })
}

fn disk_init(disk: &Path, config: &Path, force: bool) -> Result<String, String> {
    let node = NodeConfig::load(config).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut req = InitRequest::new(&node.array_name, node.node.id, now);
    req.force = force;
    req.luns = node
        .luns
        .iter()
        .map(|l| LunSeed {
            name: l.name.clone(),
            size_bytes: l.size_bytes,
        })
        .collect();
    req.hosts = node
        .hosts
        .iter()
        .map(|h| Host {
            name: h.name.clone(),
            iqn: h.iqn.clone(),
            luns: h.luns.clone(),
            chap: match (&h.chap_user, &h.chap_secret) {
                (Some(user), Some(secret)) => Some(Chap {
                    userid: user.clone(),
                    secret: secret.clone(),
                    mutual_userid: None,
                    mutual_secret: None,
                }),
                _ => None,
            },
        })
        .collect();
    let done = init(disk, &req).map_err(|e| e.to_string())?;
    let mut text = format!(
        "{}: initialized for array {} ({} LUNs, {} hosts), array config generation 1\n",
        disk.display(),
        node.array_name,
        done.config.luns.len(),
        done.config.hosts.len()
    );
    for w in &done.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    Ok(text)
}

fn config_of(disk: Option<PathBuf>) -> Result<star_core::array_config::ArrayConfig, String> {
    match disk {
        Some(path) => star_disk::array::read_config(&path)
            .map(|s| s.config)
            .map_err(|e| e.to_string()),
        None => {
            let found = disk_or_found(None)?;
            star_disk::array::read_config(&found)
                .map(|s| s.config)
                .map_err(|e| e.to_string())
        }
    }
}

fn lun_list(disk: Option<PathBuf>) -> Result<String, String> {
    let config = config_of(disk)?;
    let mut text = format!(
        "{:<4} {:<16} {:>10}  {:<32}  PART\n",
        "LUN", "NAME", "SIZE", "SERIAL"
    );
    for l in &config.luns {
        text.push_str(&format!(
            "{:<4} {:<16} {:>10}  {:<32}  {}\n",
            l.id,
            l.name,
            star_disk::layout::human_size(l.size_bytes),
            l.serial,
            l.partition
        ));
    }
    Ok(text)
}

fn host_list(disk: Option<PathBuf>) -> Result<String, String> {
    let config = config_of(disk)?;
    let mut text = String::new();
    for h in &config.hosts {
        let chap = match &h.chap {
            None => "no CHAP".to_string(),
            Some(c) if c.mutual_userid.is_some() => format!("mutual CHAP ({})", c.userid),
            Some(c) => format!("CHAP ({})", c.userid),
        };
        text.push_str(&format!(
            "{}  {}  LUNs: {}  {chap}\n",
            h.name,
            h.iqn,
            if h.luns.is_empty() {
                "none".to_string()
            } else {
                h.luns.join(", ")
            }
        ));
    }
    Ok(text)
}

/// One request to the target service; its reply in words (or JSON).
fn target(req: &TargetRequest, json: bool) -> Result<String, String> {
    let socket = std::env::var_os("STAR_TARGET_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TARGET_SOCKET));
    let reply: TargetReply = star_core::control::call(&socket, req, Duration::from_secs(60))
        .map_err(|e| {
            format!(
                "{e}: is the target service running? (`star services`; STAR_TARGET_SOCKET names another socket; --disk PATH changes a disk directly)"
            )
        })?;
    if json {
        let text = serde_json::to_string_pretty(&reply).unwrap_or_default() + "\n";
        return match reply {
            TargetReply::Error { .. } => Err(text),
            _ => Ok(text),
        };
    }
    match reply {
        TargetReply::Status { status } => Ok(render_status(&status)),
        TargetReply::Done { message } => Ok(message + "\n"),
        TargetReply::Error { message } => Err(message),
    }
}

/// The see-through view of the target.
pub fn render_status(s: &TargetStatus) -> String {
    let mut t = format!(
        "controller {}: {}  target {}\n",
        s.node,
        s.role,
        s.target_iqn.as_deref().unwrap_or("-")
    );
    t.push_str(&format!(
        "shared disk {}  generation {}  owner {}  term {}\n",
        s.disk.as_deref().unwrap_or("none"),
        s.generation.map_or("-".into(), |g| g.to_string()),
        s.owner.map_or("none".into(), |o| format!("controller {o}")),
        s.term.map_or("-".into(), |g| g.to_string()),
    ));
    t.push_str(&format!(
        "portal {}  dbroot {}\n",
        s.portal.as_deref().unwrap_or("-"),
        s.dbroot.as_deref().unwrap_or("-")
    ));
    for g in &s.alua {
        t.push_str(&format!(
            "ALUA group {} (id {}): {}\n",
            g.name, g.id, g.state
        ));
    }
    for l in &s.luns {
        t.push_str(&format!(
            "LUN {} {}: {} serial {} on {}; {} commands, {} MiB read, {} MiB written\n",
            l.id,
            l.name,
            star_disk::layout::human_size(l.size_bytes),
            l.serial,
            l.device,
            l.commands,
            l.read_mib,
            l.written_mib
        ));
    }
    for x in &s.sessions {
        t.push_str(&format!(
            "session {} on tpgt_{}{}\n",
            x.initiator,
            x.tpg,
            x.address
                .as_deref()
                .map_or(String::new(), |a| format!(" from {a}"))
        ));
    }
    if let Some(r) = &s.last_reconcile {
        t.push_str(&format!("last reconcile: {r}\n"));
    }
    for p in &s.problems {
        t.push_str(&format!("problem: {p}\n"));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portals_are_written_as_people_write_them() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            parse_portal("192.0.2.21").unwrap(),
            (ip("192.0.2.21"), 3260)
        );
        assert_eq!(
            parse_portal("192.0.2.21:3261").unwrap(),
            (ip("192.0.2.21"), 3261)
        );
        assert_eq!(parse_portal("fd00::21").unwrap(), (ip("fd00::21"), 3260));
        assert_eq!(
            parse_portal("[fd00::21]:3261").unwrap(),
            (ip("fd00::21"), 3261)
        );
        assert!(parse_portal("ctl1.lab")
            .unwrap_err()
            .contains("is not an address"));
        assert_eq!(parse_node("ctl2"), Ok(2));
        assert!(parse_node("3").unwrap_err().contains("1 or 2"));
        // Parsed before anything is asked of a service or a disk.
        let r = run(&["portal", "set", "9", "192.0.2.21"], false).unwrap();
        assert!(r.unwrap_err().contains("is not a controller"));
        let r = run(&["host", "map", "app1"], false).unwrap();
        assert!(r.unwrap_err().contains("unknown command"));
    }
}
