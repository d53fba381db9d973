//! The array changes operators ask for ([`ArrayChange`], from `star lun|host|chap` or the
//! target service's control socket), carried out on a disk and put into words.

use crate::error::Error;
use crate::{hosts, layout, luns, portals};
use star_core::array_config::{Chap, Host};
use star_core::target_status::ArrayChange;
use std::path::Path;

/// Makes one change; returns what was done (with any warnings) and the new generation.
pub fn apply(disk: &Path, change: &ArrayChange) -> Result<(String, u64), Error> {
    let (message, generation, warnings) = match change {
        ArrayChange::LunCreate { name, size_bytes } => {
            let c = luns::create(disk, name, *size_bytes)?;
            let lun = &c.value;
            (
                format!(
                    "LUN {} created: number {}, {}, serial {}, partition {}",
                    lun.name,
                    lun.id,
                    layout::human_size(lun.size_bytes),
                    lun.serial,
                    lun.partition
                ),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::LunDelete { name, force } => {
            let c = luns::delete(disk, name, *force)?;
            (format!("LUN {name} deleted"), c.generation, c.warnings)
        }
        ArrayChange::HostAdd { name, iqn, luns } => {
            let host = Host {
                name: name.clone(),
                iqn: iqn.clone(),
                luns: luns.clone(),
                chap: None,
            };
            let c = hosts::add(disk, host)?;
            (
                format!("host {name} ({iqn}) added"),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::HostRemove { name } => {
            let c = hosts::remove(disk, name)?;
            (format!("host {name} removed"), c.generation, c.warnings)
        }
        ArrayChange::ChapSet {
            host,
            userid,
            secret,
            mutual_userid,
            mutual_secret,
        } => {
            let chap = Chap {
                userid: userid.clone(),
                secret: secret.clone(),
                mutual_userid: mutual_userid.clone(),
                mutual_secret: mutual_secret.clone(),
            };
            let mutual = chap.mutual_userid.is_some();
            let c = hosts::chap_set(disk, host, chap)?;
            (
                format!(
                    "host {host}: {} CHAP set",
                    if mutual { "mutual" } else { "one-way" }
                ),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::HostMap { name, luns } => {
            let c = hosts::map(disk, name, luns)?;
            (
                format!("host {name} now sees {}", luns.join(", ")),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::HostUnmap { name, luns } => {
            let c = hosts::unmap(disk, name, luns)?;
            (
                format!("host {name} no longer sees {}", luns.join(", ")),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::PortalSet {
            node,
            address,
            port,
        } => {
            let c = portals::set(disk, *node, *address, *port)?;
            let shown = std::net::SocketAddr::new(*address, *port);
            (
                format!("controller {node}'s portal is {shown}"),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::PortalClear { node } => {
            let c = portals::clear(disk, *node)?;
            (
                format!("controller {node}'s portal is its client address again"),
                c.generation,
                c.warnings,
            )
        }
        ArrayChange::ChapClear { host } => {
            let c = hosts::chap_clear(disk, host)?;
            (
                format!("host {host}: CHAP cleared"),
                c.generation,
                c.warnings,
            )
        }
    };
    let mut text = format!("{message} (array config generation {generation})");
    for w in warnings {
        text.push_str(&format!("\nwarning: {w}"));
    }
    Ok((text, generation))
}
