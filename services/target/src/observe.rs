//! What LIO says about its traffic, for `star target status`: per-LUN statistics, the
//! sessions logged in, and the ALUA states the kernel reports. Read-only; missing files
//! read as nothing.

use crate::model::LioState;
use star_core::target_status::alua_state_name;
use std::collections::BTreeSet;
use std::path::Path;

/// The state of ALUA group `group` as configfs has it on the LUNs' devices, which is what
/// hosts see in REPORT TARGET PORT GROUPS: one state name when every device agrees, the
/// distinct ones joined with " / " when they do not (a reconcile failed half-way), `None`
/// when no device has the group (no LUN exported yet).
pub fn alua_state_in_configfs(actual: &LioState, group: &str) -> Option<String> {
    let states: BTreeSet<&str> = actual
        .devices()
        .filter_map(|(_, _, dev)| dev.alua_groups.get(group))
        .map(|g| alua_state_name(g.state.code()))
        .collect();
    if states.is_empty() {
        None
    } else {
        Some(states.into_iter().collect::<Vec<_>>().join(" / "))
    }
}

/// (commands, MiB read, MiB written) of the backstore named `lun` under iblock_0. The
/// kernel keeps these per device in whole MiB (statistics/scsi_lu).
pub fn lun_statistics(root: &Path, lun: &str) -> (u64, u64, u64) {
    let dir = root
        .join("core/iblock_0")
        .join(lun)
        .join("statistics/scsi_lu");
    let num = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    (num("num_cmds"), num("read_mbytes"), num("write_mbytes"))
}

/// The initiators logged in to TPG `tag` of `iqn`, with their addresses: from each ACL's
/// `info`, which names the initiator and lists its connections.
pub fn sessions(root: &Path, iqn: &str, tag: u16) -> Vec<(String, Option<String>)> {
    let acls = root
        .join("iscsi")
        .join(iqn)
        .join(format!("tpgt_{tag}/acls"));
    let Ok(entries) = std::fs::read_dir(&acls) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Option<String>)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let info = std::fs::read_to_string(e.path().join("info")).ok()?;
            parse_session(&e.file_name().to_string_lossy(), &info)
        })
        .collect();
    found.sort();
    found
}

/// One ACL's `info`: "No active iSCSI Session for Initiator Endpoint: ..." when there is
/// none, else the session's values and a line per connection, "   Address A TCP ...".
pub fn parse_session(initiator: &str, info: &str) -> Option<(String, Option<String>)> {
    if info.contains("No active iSCSI Session") || !info.contains("InitiatorName:") {
        return None;
    }
    let address = info.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("Address ")?;
        rest.split_whitespace().next().map(str::to_string)
    });
    Some((initiator.to_string(), address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_state, AluaRoles};
    use crate::model::{AluaState, Features};
    use star_core::array_config::{ArrayConfig, Lun};

    fn exported(luns: usize, active: u8) -> LioState {
        let mut c = ArrayConfig::new("star-lab");
        for i in 0..luns {
            c.luns.push(Lun {
                name: format!("data{i}"),
                id: i as u16,
                size_bytes: 1 << 30,
                serial: format!("{:032x}", i + 1),
                partition: i as u32 + 2,
                partuuid: format!("6c7f4e1a-0000-4000-8000-00000000000{i}"),
            });
        }
        let roles = AluaRoles {
            active: Some(active),
            peer_healthy: true,
        };
        let features = Features {
            tpg_rtpi: true,
            acl_authentication: true,
            discard: false,
        };
        desired_state(
            &c,
            1,
            "10.0.0.1:3260".parse().unwrap(),
            Some("10.0.0.2:3260".parse().unwrap()),
            roles,
            &features,
            |l| format!("/dev/disk/by-partuuid/{}", l.partuuid),
        )
    }

    #[test]
    fn alua_states_are_read_from_the_devices() {
        let state = exported(2, 2);
        assert_eq!(
            alua_state_in_configfs(&state, "ctrl_1").as_deref(),
            Some("standby")
        );
        assert_eq!(
            alua_state_in_configfs(&state, "ctrl_2").as_deref(),
            Some("active/optimized")
        );
        // No LUN, no group to read.
        assert_eq!(alua_state_in_configfs(&exported(0, 1), "ctrl_1"), None);
        // Devices that disagree (a reconcile stopped half-way) show every state.
        let mut split = exported(2, 1);
        let dev = split
            .hbas
            .values_mut()
            .flat_map(|h| h.devices.values_mut())
            .next()
            .unwrap();
        dev.alua_groups.get_mut("ctrl_1").unwrap().state = AluaState::Transitioning;
        let shown = alua_state_in_configfs(&split, "ctrl_1").unwrap();
        assert!(
            shown.contains("active/optimized") && shown.contains(" / "),
            "{shown}"
        );
    }

    #[test]
    fn sessions_are_read_from_acl_info() {
        let none = "No active iSCSI Session for Initiator Endpoint: iqn.x:y\n";
        assert_eq!(parse_session("iqn.x:y", none), None);
        let one = "InitiatorName: iqn.x:y\nInitiatorAlias: \nLIO Session ID: 1   ISID: 0x23 TSIH: 1  SessionType: Normal\n\
                   Session State: TARG_SESS_STATE_LOGGED_IN\n---\nCID: 0  Connection State: TARG_CONN_STATE_LOGGED_IN\n   Address 10.0.2.2 TCP  StatSN: 0x5\n";
        assert_eq!(
            parse_session("iqn.x:y", one),
            Some(("iqn.x:y".into(), Some("10.0.2.2".into())))
        );
    }
}
