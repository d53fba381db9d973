//! What configfs should hold on one controller, computed from the array config.
//!
//! Both controllers export the same target IQN with the same two portal groups:
//! `tpgt_1` is controller 1's port and `tpgt_2` controller 2's. Each node creates both,
//! with the same LUNs, ACLs, identities and ALUA groups, and enables only its own. The
//! disabled remote TPG is not dead weight: it is what makes REPORT TARGET PORT GROUPS
//! list both ports with the same IDs on both controllers, and (with
//! `tpg_enabled_sendtargets=0`) what makes SendTargets on either node return both
//! portals. The two nodes' desired states therefore differ only in which TPG is enabled.
//!
//! ## CHAP and `attrib/authentication`
//!
//! LIO's TPG attribute `authentication=1` does two things: it requires CHAP of every ACL
//! that does not say otherwise, and it removes `None` from the TPG's `AuthMethod` offer
//! (`iscsit_ta_authentication`, re-applied at every TPG enable). The second part means
//! that with `authentication=1` an initiator without CHAP cannot even negotiate, whatever
//! its ACL says. Hence:
//!
//! - Linux 6.0 and later have a per-ACL `attrib/authentication` (-1 inherit, 0, 1), used
//!   by `iscsi_conn_auth_required()` for a known ACL. STAR then sets the TPG to
//!   `authentication=0` (which keeps `None` negotiable) and every ACL explicitly: `1` for
//!   a host with CHAP (a login without it is refused), `0` for a host without. The TPG
//!   value never depends on the hosts, so adding or removing a host touches only its own
//!   ACLs, and no ACL relies on inheritance. Demo mode is off, so there are no dynamic
//!   ACLs the TPG default would apply to.
//! - Older kernels only have the TPG-wide switch: `authentication=1` when any host has
//!   CHAP, 0 otherwise. A mix of hosts with and without CHAP cannot be expressed there:
//!   [`check_config`] refuses it, and should one get through anyway, the TPG fails
//!   closed (CHAP required, the hosts without it cannot log in).
//!
//! Discovery sessions are governed by `iscsi/discovery_auth`, not by these attributes.

use crate::model::{
    self, Acl, AclAuth, AluaGroup, AluaState, AluaSupport, Backstore, Features, Hba, LioState,
    LunLink, MappedLink, MappedLun, Target, Tpg, TpgLun, Wwn,
};
use star_core::array_config::{ArrayConfig, Lun};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// iSCSI names longer than this do not fit LIO's buffers (`ISCSI_IQN_LEN` 224 with NUL).
pub const MAX_IQN_LEN: usize = 223;

/// CmdSN window per session, the default of recent kernels, pinned because older ones
/// used 16 and both controllers must offer hosts the same queue.
pub const CMDSN_DEPTH: u32 = 64;

/// NOP-In interval and response timeout per ACL (tcmu-runner PR #229): a dead path is
/// noticed within `nopin_timeout + nopin_response_timeout` = 10 s, so hosts should set
/// their recovery timeout (`fast_io_fail_tmo`, `replacement_timeout`) to at least
/// 2 × 5 + 5 = 15 s, and 25 s is what the multipath stanza recommends.
pub const NOPIN_TIMEOUT_SECS: u32 = 5;
pub const NOPIN_RESPONSE_TIMEOUT_SECS: u32 = 5;

/// Which controller serves I/O, as the role state machine decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AluaRoles {
    /// The controller (1 or 2) that is active, whose group is Active/Optimized; `None`
    /// while no controller is active yet.
    pub active: Option<u8>,
    /// Whether the peer controller is alive. A dead peer's group is Unavailable rather
    /// than Standby, so hosts stop probing it.
    pub peer_healthy: bool,
}

impl AluaRoles {
    /// The state of controller `group_node`'s ALUA group, as seen by `local_node`. The
    /// active controller's group is Active/Optimized, a dead peer's Unavailable, any
    /// other Standby (so both Standby while neither is active). Never Transitioning, never
    /// Offline, and at most one Active/Optimized group.
    pub fn state_of(&self, group_node: u8, local_node: u8) -> AluaState {
        if self.active == Some(group_node) {
            AluaState::ActiveOptimized
        } else if group_node != local_node && !self.peer_healthy {
            AluaState::Unavailable
        } else {
            AluaState::Standby
        }
    }
}

/// The LIO state controller `node` (1 or 2) should hold.
///
/// `local_portal` is where this node listens (its `[[portal]]` entry, or its client
/// address); `peer_portal` is the peer's, put on the disabled remote TPG so that
/// SendTargets lists it (LIO binds portals with `IP_FREEBIND`, so a non-local address is
/// fine). `device_path` gives each LUN's block device, e.g.
/// `/dev/disk/by-partuuid/<partuuid>`. The config should have passed [`check_config`] and
/// [`check_portals`].
pub fn desired_state(
    config: &ArrayConfig,
    node: u8,
    local_portal: SocketAddr,
    peer_portal: Option<SocketAddr>,
    alua: AluaRoles,
    features: &Features,
    device_path: impl Fn(&Lun) -> String,
) -> LioState {
    let peer = 3 - node.clamp(1, 2);
    let devices: BTreeMap<String, Backstore> = config
        .luns
        .iter()
        .map(|lun| {
            (
                lun.name.clone(),
                backstore(lun, node, alua, features, &device_path),
            )
        })
        .collect();
    let mut hbas = BTreeMap::new();
    if !devices.is_empty() {
        hbas.insert(model::HBA.to_string(), Hba { devices });
    }

    let mut tpgs = BTreeMap::new();
    for tag in [1u16, 2] {
        let portal = if tag == u16::from(node) {
            Some(local_portal)
        } else if tag == u16::from(peer) {
            peer_portal
        } else {
            None
        };
        tpgs.insert(tag, tpg(config, tag, node, portal, features));
    }
    let mut targets = BTreeMap::new();
    targets.insert(config.target_iqn.clone(), Target { tpgs });

    LioState {
        dbroot: model::DEFAULT_DBROOT.to_string(),
        hbas,
        targets,
    }
}

fn backstore(
    lun: &Lun,
    node: u8,
    alua: AluaRoles,
    features: &Features,
    device_path: &impl Fn(&Lun) -> String,
) -> Backstore {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let mut attributes = BTreeMap::new();
    // Third-party copy (XCOPY) and COMPARE AND WRITE: VMware's VAAI uses both, ATS
    // (COMPARE AND WRITE) instead of reservations for VMFS locking.
    attributes.insert("emulate_3pc".to_string(), flag(true));
    attributes.insert("emulate_caw".to_string(), flag(true));
    // SCSI-3 persistent reservations, for Windows failover clusters and fence_scsi.
    // Their state is per controller and not replicated to the peer (research §3): a
    // reservation does not survive a failover. That is the documented v1 limit.
    attributes.insert("emulate_pr".to_string(), flag(true));
    // UNMAP and WRITE SAME with UNMAP pass discards to the shared disk; the kernel refuses
    // them when the disk cannot discard, so they follow the disk.
    attributes.insert("emulate_tpu".to_string(), flag(features.discard));
    attributes.insert("emulate_tpws".to_string(), flag(features.discard));
    // iblock copies the rotational flag of the backing disk, which depends on the
    // hypervisor's disk model (VirtualBox's AHCI disk claims to spin); STAR's LUNs are
    // slices of a virtual or SSD-backed disk, and both controllers must report the same
    // VPD page 0xB1. emulate_write_cache is left alone: iblock reports the backing
    // device's own cache setting and refuses emulate_write_cache=1.
    attributes.insert("is_nonrot".to_string(), flag(true));

    let mut alua_groups = BTreeMap::new();
    for group_node in [1u8, 2] {
        alua_groups.insert(
            alua_group_name(group_node),
            alua_group(group_node, alua.state_of(group_node, node)),
        );
    }
    Backstore {
        udev_path: device_path(lun),
        readonly: false,
        enabled: true,
        wwn: Wwn {
            vpd_unit_serial: lun.serial.clone(),
            vendor_id: model::VENDOR_ID.to_string(),
            product_id: model::PRODUCT_ID.to_string(),
            revision: model::REVISION.to_string(),
        },
        attributes,
        default_group_state: AluaState::Standby,
        alua_groups,
    }
}

/// The ALUA group of controller `node`'s port: `ctrl_1` or `ctrl_2`.
pub fn alua_group_name(node: u8) -> String {
    format!("ctrl_{node}")
}

fn alua_group(node: u8, state: AluaState) -> AluaGroup {
    AluaGroup {
        // The group ID is the controller number on both nodes, so REPORT TARGET PORT
        // GROUPS answers the same through either port.
        id: Some(u16::from(node)),
        // Implicit only: the array decides who is active; a host's SET TARGET PORT
        // GROUPS cannot pull the standby into Active/Optimized behind the fencing logic.
        access_type: 1,
        support: AluaSupport {
            active_optimized: true,
            // Never used: an Active/NonOptimized path still accepts writes, and two
            // controllers writing one LUN is what the whole design prevents.
            active_nonoptimized: false,
            standby: true,
            unavailable: true,
            // STAR never writes it, but the kernel passes through it during every
            // change, and RTPG should not report a state the group does not support.
            transitioning: true,
            offline: false,
        },
        // Only applies to Active/NonOptimized, which is off; 0 so that a stray ANO group
        // never adds the kernel's default 100 ms per command.
        nonop_delay_msecs: 0,
        // A state change is immediate: Transitioning lasts as short as possible.
        trans_delay_msecs: 0,
        // The kernel would write <dbroot>/alua/tpgs_<serial>/<group> on every change:
        // STAR keeps ALUA state itself (shared disk), and a node-local copy would only
        // disagree with it after a failover.
        write_metadata: false,
        // The PREF bit is static and both groups swap roles at failover: a host that
        // honours it (multipath `prio_args exclusive_pref_bit`) would keep preferring a
        // Standby path. So neither group is preferred.
        preferred: false,
        state,
    }
}

fn tpg(
    config: &ArrayConfig,
    tag: u16,
    node: u8,
    portal: Option<SocketAddr>,
    features: &Features,
) -> Tpg {
    let mut attributes = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        attributes.insert(k.to_string(), v.to_string());
    };
    // No demo mode: only initiators with an ACL log in, and see only their LUNs.
    set("generate_node_acls", "0");
    set("cache_dynamic_acls", "0");
    set("authentication", tpg_authentication(config, features));
    set("default_cmdsn_depth", &CMDSN_DEPTH.to_string());
    // Kept at the default 1: with 0 the kernel checks the initiator's ACL while holding
    // a spinlock (a reported sleeping-in-atomic bug), and hiding the target name from
    // initiators without an ACL protects nothing CHAP does not.
    set("demo_mode_discovery", "1");
    // Only applies to demo mode, which is off; 1 is the safe value should it ever be on.
    set("demo_mode_write_protect", "1");
    set("prod_mode_write_protect", "0");
    // List disabled TPGs in SendTargets too: the remote TPG's portal is the peer's
    // address, so discovery through either controller returns both paths. On the enabled
    // local TPG the value makes no difference; setting it on both keeps the two TPGs
    // identical but for `enable`.
    set("tpg_enabled_sendtargets", "0");

    let luns = config
        .luns
        .iter()
        .map(|lun| {
            (
                lun.id,
                TpgLun {
                    link: Some(LunLink {
                        name: lun.name.clone(),
                        hba: model::HBA.to_string(),
                        device: lun.name.clone(),
                    }),
                    alua_group: alua_group_name(tag as u8),
                },
            )
        })
        .collect();

    let acls = config
        .hosts
        .iter()
        .map(|host| {
            let mut attributes = BTreeMap::new();
            if features.acl_authentication {
                let required = if host.chap.is_some() { "1" } else { "0" };
                attributes.insert("authentication".to_string(), required.to_string());
            }
            attributes.insert("nopin_timeout".to_string(), NOPIN_TIMEOUT_SECS.to_string());
            attributes.insert(
                "nopin_response_timeout".to_string(),
                NOPIN_RESPONSE_TIMEOUT_SECS.to_string(),
            );
            let auth = match &host.chap {
                Some(chap) => AclAuth {
                    userid: Some(chap.userid.clone()),
                    password: Some(chap.secret.clone()),
                    userid_mutual: chap.mutual_userid.clone(),
                    password_mutual: chap.mutual_secret.clone(),
                },
                None => AclAuth::default(),
            };
            let mapped_luns = host
                .luns
                .iter()
                .filter_map(|name| config.lun(name))
                .map(|lun| {
                    (
                        lun.id,
                        MappedLun {
                            link: Some(MappedLink {
                                name: lun.name.clone(),
                                tpg_lun: lun.id,
                            }),
                            write_protect: false,
                        },
                    )
                })
                .collect();
            (
                host.iqn.clone(),
                Acl {
                    cmdsn_depth: CMDSN_DEPTH,
                    auth,
                    attributes,
                    mapped_luns,
                },
            )
        })
        .collect();

    Tpg {
        enabled: tag == u16::from(node),
        rtpi: features.tpg_rtpi.then_some(tag),
        attributes,
        params: BTreeMap::new(),
        luns,
        portals: portal.map(portal_name).into_iter().collect::<BTreeSet<_>>(),
        acls,
    }
}

/// The TPG-wide `authentication` value; see the module documentation.
fn tpg_authentication(config: &ArrayConfig, features: &Features) -> &'static str {
    if features.acl_authentication {
        "0"
    } else if config.hosts.iter().any(|h| h.chap.is_some()) {
        "1"
    } else {
        "0"
    }
}

/// The `np/` directory name of a portal: `10.0.0.1:3260` or `[fd00::1]:3260`.
pub fn portal_name(addr: SocketAddr) -> String {
    addr.to_string()
}

/// The array config rules that come from LIO rather than from the config itself (which
/// [`ArrayConfig::validate`] checks first). The message says what to change.
pub fn check_config(config: &ArrayConfig, features: &Features) -> Result<(), String> {
    config.validate()?;
    if config.target_iqn.len() > MAX_IQN_LEN {
        return Err(format!(
            "target IQN {:?} is {} characters; LIO takes at most {MAX_IQN_LEN}",
            config.target_iqn,
            config.target_iqn.len()
        ));
    }
    for host in &config.hosts {
        if host.iqn.len() > MAX_IQN_LEN {
            return Err(format!(
                "host {:?}: IQN is {} characters; LIO takes at most {MAX_IQN_LEN}",
                host.name,
                host.iqn.len()
            ));
        }
        for (i, name) in host.luns.iter().enumerate() {
            if host.luns[..i].contains(name) {
                return Err(format!("host {:?} lists LUN {name:?} twice", host.name));
            }
        }
    }
    if !features.acl_authentication {
        let with = config.hosts.iter().find(|h| h.chap.is_some());
        let without = config.hosts.iter().find(|h| h.chap.is_none());
        if let (Some(with), Some(without)) = (with, without) {
            return Err(format!(
                "host {:?} uses CHAP and host {:?} does not: this kernel can only require CHAP for all hosts or for none (per-host CHAP needs Linux 6.0 or later); give every host CHAP credentials, or none",
                with.name, without.name
            ));
        }
    }
    Ok(())
}

/// LIO refuses the same IP:port on two portal groups of one target, and both TPGs live
/// on each node: the two controllers need different portals.
pub fn check_portals(local: SocketAddr, peer: Option<SocketAddr>) -> Result<(), String> {
    if peer == Some(local) {
        return Err(format!(
            "both controllers' portals are {local}: each controller needs its own address"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::array_config::{Chap, Host, Lun};

    pub(crate) fn config() -> ArrayConfig {
        let mut c = ArrayConfig::new("star-lab");
        for (i, name) in ["data0", "data1"].iter().enumerate() {
            c.luns.push(Lun {
                name: name.to_string(),
                id: i as u16,
                size_bytes: 1 << 30,
                serial: format!("{:032x}", i + 1),
                partition: i as u32 + 2,
                partuuid: format!("6c7f4e1a-0000-4000-8000-00000000000{i}"),
            });
        }
        c.hosts.push(Host {
            name: "client1".into(),
            iqn: "iqn.2026-11.example.lab:client1".into(),
            luns: vec!["data0".into(), "data1".into()],
            chap: Some(Chap {
                userid: "client1".into(),
                secret: "secret-123456".into(),
                mutual_userid: Some("array".into()),
                mutual_secret: Some("mutual-123456".into()),
            }),
        });
        c.hosts.push(Host {
            name: "client2".into(),
            iqn: "iqn.2026-11.example.lab:client2".into(),
            luns: vec!["data1".into()],
            chap: None,
        });
        c
    }

    const NEW: Features = Features {
        tpg_rtpi: true,
        acl_authentication: true,
        discard: true,
    };
    const OLD: Features = Features {
        tpg_rtpi: false,
        acl_authentication: false,
        discard: false,
    };

    fn state(node: u8, roles: AluaRoles, features: &Features) -> LioState {
        let a: SocketAddr = "10.0.0.1:3260".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:3260".parse().unwrap();
        let (local, peer) = if node == 1 { (a, b) } else { (b, a) };
        desired_state(&config(), node, local, Some(peer), roles, features, |lun| {
            format!("/dev/disk/by-partuuid/{}", lun.partuuid)
        })
    }

    fn roles(active: Option<u8>, peer_healthy: bool) -> AluaRoles {
        AluaRoles {
            active,
            peer_healthy,
        }
    }

    #[test]
    fn both_controllers_agree_on_everything_but_enable() {
        let r = roles(Some(1), true);
        let mut one = state(1, r, &NEW);
        let two = state(2, r, &NEW);
        assert_ne!(one, two);
        for tpg in one.targets.values_mut().flat_map(|t| t.tpgs.values_mut()) {
            tpg.enabled = !tpg.enabled;
        }
        assert_eq!(one, two);
        let tpgs = &two.targets["iqn.2026-11.org.star-array:star-lab"].tpgs;
        assert!(!tpgs[&1].enabled && tpgs[&2].enabled);
        assert_eq!(tpgs[&1].portals.iter().next().unwrap(), "10.0.0.1:3260");
        assert_eq!(tpgs[&2].portals.iter().next().unwrap(), "10.0.0.2:3260");
        assert_eq!((tpgs[&1].rtpi, tpgs[&2].rtpi), (Some(1), Some(2)));
        assert_eq!(tpgs[&1].luns[&0].alua_group, "ctrl_1");
        assert_eq!(tpgs[&2].luns[&0].alua_group, "ctrl_2");
    }

    fn group_states(s: &LioState) -> (AluaState, AluaState) {
        let dev = s.device(model::HBA, "data0").unwrap();
        (
            dev.alua_groups["ctrl_1"].state,
            dev.alua_groups["ctrl_2"].state,
        )
    }

    #[test]
    fn alua_states_follow_roles() {
        use AluaState::*;
        for node in [1, 2] {
            let s = |r| group_states(&state(node, r, &NEW));
            assert_eq!(s(roles(Some(1), true)), (ActiveOptimized, Standby));
            assert_eq!(s(roles(Some(2), true)), (Standby, ActiveOptimized));
            assert_eq!(s(roles(None, true)), (Standby, Standby));
        }
        // A dead peer's group is Unavailable; the survivor's own group never is.
        assert_eq!(
            group_states(&state(2, roles(Some(2), false), &NEW)),
            (Unavailable, ActiveOptimized)
        );
        assert_eq!(
            group_states(&state(1, roles(None, false), &NEW)),
            (Standby, Unavailable)
        );
    }

    #[test]
    fn never_transitioning_offline_or_two_active_groups() {
        for node in [1, 2] {
            for active in [None, Some(1), Some(2)] {
                for healthy in [true, false] {
                    let s = state(node, roles(active, healthy), &NEW);
                    for (_, _, dev) in s.devices() {
                        let states: Vec<_> = dev.alua_groups.values().map(|g| g.state).collect();
                        assert!(states.iter().all(|st| st.writable()));
                        let ao = states
                            .iter()
                            .filter(|st| **st == AluaState::ActiveOptimized)
                            .count();
                        assert!(ao <= 1);
                        assert_eq!(dev.default_group_state, AluaState::Standby);
                    }
                }
            }
        }
    }

    #[test]
    fn chap_per_acl_when_kernel_supports_it() {
        let s = state(1, roles(Some(1), true), &NEW);
        let tpg = s.tpg("iqn.2026-11.org.star-array:star-lab", 1).unwrap();
        assert_eq!(tpg.attributes["authentication"], "0");
        let c1 = &tpg.acls["iqn.2026-11.example.lab:client1"];
        let c2 = &tpg.acls["iqn.2026-11.example.lab:client2"];
        assert_eq!(c1.attributes["authentication"], "1");
        assert_eq!(c2.attributes["authentication"], "0");
        assert_eq!(c1.auth.userid_mutual.as_deref(), Some("array"));
        assert_eq!(c2.auth, AclAuth::default());
        assert_eq!(c1.mapped_luns.len(), 2);
        assert_eq!(c2.mapped_luns.keys().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn chap_tpg_wide_on_older_kernels() {
        let s = state(1, roles(Some(1), true), &OLD);
        let tpg = s.tpg("iqn.2026-11.org.star-array:star-lab", 1).unwrap();
        // Mixed config (refused by check_config): fails closed.
        assert_eq!(tpg.attributes["authentication"], "1");
        assert!(tpg
            .acls
            .values()
            .all(|a| !a.attributes.contains_key("authentication")));
        assert_eq!(tpg.rtpi, None);
        let dev = s.device(model::HBA, "data0").unwrap();
        assert_eq!(dev.attributes["emulate_tpu"], "0");
    }

    #[test]
    fn check_config_refuses_chap_mix_on_older_kernels() {
        let err = check_config(&config(), &OLD).unwrap_err();
        assert!(err.contains("\"client1\" uses CHAP and host \"client2\" does not"));
        assert_eq!(check_config(&config(), &NEW), Ok(()));
        let mut all = config();
        all.hosts[1].chap = all.hosts[0].chap.clone();
        assert_eq!(check_config(&all, &OLD), Ok(()));
    }

    #[test]
    fn check_config_refuses_what_lio_cannot_hold() {
        let mut c = config();
        c.hosts[1].luns.push("data1".into());
        assert_eq!(
            check_config(&c, &NEW),
            Err("host \"client2\" lists LUN \"data1\" twice".into())
        );
        let mut c = config();
        c.hosts[0].iqn = format!("iqn.2026-11.example.lab:{}", "x".repeat(220));
        // star-core's own IQN check already stops at LIO's length.
        assert!(check_config(&c, &NEW)
            .unwrap_err()
            .contains("is not an iSCSI name"));
        let a: SocketAddr = "10.0.0.1:3260".parse().unwrap();
        assert!(check_portals(a, Some(a)).is_err());
        assert!(check_portals(a, None).is_ok());
    }

    #[test]
    fn ipv6_portals_are_bracketed() {
        assert_eq!(
            portal_name("[fd00::1]:3260".parse().unwrap()),
            "[fd00::1]:3260"
        );
    }
}
