//! What LIO says about its traffic, for `star target status`: per-LUN statistics and the
//! sessions logged in. Read-only; missing files read as nothing.

use std::path::Path;

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
