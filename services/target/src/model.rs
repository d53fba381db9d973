//! The LIO state STAR manages, as plain comparable data.
//!
//! A [`LioState`] describes the part of `/sys/kernel/config/target` that STAR owns: the
//! iblock backstores with their identity, attributes and ALUA groups, and the iSCSI
//! targets with their portal groups, LUNs, portals and ACLs. [`crate::desired`] builds
//! one from the array config, [`crate::configfs`] reads one from the kernel, and
//! [`crate::plan`](mod@crate::plan) turns the difference into configfs operations. Maps
//! are `BTreeMap`s so that two states compare with `==` and every walk over them is in a
//! stable order: the plan for the same pair of states is always the same list of
//! operations.
//!
//! Values of configfs attribute files are kept as the text the kernel shows, trimmed
//! (`"1"`, `"64"`), so that a state read from configfs compares directly with a desired
//! one. Only the attributes named in the `*_ATTRIBUTES` lists are read and written: the
//! rest keep the kernel's defaults, which are the same on both controllers.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The kernel's own default for `target/dbroot`, which [`crate::desired`] starts from. Only
/// PR APTPL files are written there (`alua_write_metadata` is off), node-local either way.
/// A caller may choose another directory (it must exist): the kernel takes a new dbroot
/// only while no device exists, so the plan sets it first at boot, and a later change
/// replaces every backstore.
pub const DEFAULT_DBROOT: &str = "/var/target";

/// The one iblock HBA all STAR backstores live in. The index is arbitrary; LIO only
/// needs the `<plugin>_<n>` form.
pub const HBA: &str = "iblock_0";

/// The kernel-created ALUA group of every device: it cannot be removed, and every LUN
/// link starts in it until `alua_tg_pt_gp` moves it to its controller's group.
pub const DEFAULT_TG_PT_GP: &str = "default_tg_pt_gp";

/// INQUIRY identity, pinned so that both controllers' kernels report the same thing
/// whatever their versions' defaults ("LIO-ORG", "IBLOCK", "4.0"). Hosts' multipath
/// device sections match on these: `vendor "STAR" product "STAR-LUN"`.
pub const VENDOR_ID: &str = "STAR";
pub const PRODUCT_ID: &str = "STAR-LUN";
/// Pinned rather than tied to the firmware version, so that a rolling upgrade (one
/// controller on the new firmware, one on the old) keeps identical INQUIRY data.
pub const REVISION: &str = "0001";

/// Device attributes STAR sets (`core/<hba>/<dev>/attrib/`), in write order.
pub const DEVICE_ATTRIBUTES: &[&str] = &[
    "emulate_3pc",
    "emulate_caw",
    "emulate_pr",
    "emulate_tpu",
    "emulate_tpws",
    "is_nonrot",
];

/// Device attributes the kernel refuses to change while the device is exported (linked
/// into a TPG): `target_core_configfs.c` checks `dev->export_count` in their store
/// functions. A change to one of them, like a change to `wwn/*`, means unexport, change,
/// re-export. None of [`DEVICE_ATTRIBUTES`] is among them, but a plan between arbitrary
/// states (a foreign configuration, a future attribute) must still respect the rule.
pub const EXPORT_SENSITIVE_ATTRIBUTES: &[&str] = &[
    "block_size",
    "emulate_model_alias",
    "emulate_tas",
    "emulate_ua_intlck_ctrl",
    "force_pr_aptpl",
    "optimal_sectors",
    "pi_prot_format",
    "pi_prot_type",
    "queue_depth",
    "unmap_zeroes_data",
];

/// TPG attributes STAR sets (`tpgt_N/attrib/`), in write order. `generate_node_acls`
/// comes first because the kernel silently ignores `cache_dynamic_acls=0` while
/// `generate_node_acls=1`.
pub const TPG_ATTRIBUTES: &[&str] = &[
    "generate_node_acls",
    "cache_dynamic_acls",
    "authentication",
    "default_cmdsn_depth",
    "demo_mode_discovery",
    "demo_mode_write_protect",
    "prod_mode_write_protect",
    "tpg_enabled_sendtargets",
];

/// TPG parameters STAR sets (`tpgt_N/param/`): none yet. The RFC 3720 defaults LIO
/// offers suit open-iscsi, VMware and Windows; the hook stays so that a tuned value is
/// one line in `desired` and is then read back and reconciled like the rest.
pub const TPG_PARAMETERS: &[&str] = &[];

/// ACL attributes STAR sets (`acls/<iqn>/attrib/`), in write order. `authentication`
/// (per-ACL CHAP enforcement, Linux 6.0 and later) comes first, right after the ACL's
/// mkdir, so that no login can slip in without CHAP while the rest is being written.
pub const ACL_ATTRIBUTES: &[&str] = &["authentication", "nopin_timeout", "nopin_response_timeout"];

/// What this node's kernel and shared disk support. The kernel features are detected by
/// the presence of configfs files ([`crate::configfs::probe_features`]); `discard` comes
/// from the block layer (`queue/discard_max_bytes`). Both controllers see the same disk
/// and should run the same firmware, so they agree on all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Features {
    /// `tpgt_N/rtpi` exists (Linux 6.4+): relative target port IDs are per TPG and can be
    /// pinned. Without it they are per LUN, handed out in link order.
    pub tpg_rtpi: bool,
    /// `acls/<iqn>/attrib/authentication` exists (Linux 6.0+): CHAP can be required per
    /// host instead of per portal group.
    pub acl_authentication: bool,
    /// The shared disk supports discard, so UNMAP and WRITE SAME with UNMAP can be
    /// offered (the kernel refuses `emulate_tpu=1` otherwise).
    pub discard: bool,
}

/// Everything STAR manages under `/sys/kernel/config/target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LioState {
    /// `target/dbroot`: where the kernel keeps PR APTPL and ALUA metadata files.
    pub dbroot: String,
    /// `core/<hba>`: backstore HBAs, each with its devices.
    pub hbas: BTreeMap<String, Hba>,
    /// `iscsi/<iqn>`: iSCSI targets.
    pub targets: BTreeMap<String, Target>,
}

impl Default for LioState {
    fn default() -> LioState {
        LioState {
            dbroot: DEFAULT_DBROOT.to_string(),
            hbas: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }
}

impl LioState {
    pub fn device(&self, hba: &str, name: &str) -> Option<&Backstore> {
        self.hbas.get(hba)?.devices.get(name)
    }

    pub fn tpg(&self, iqn: &str, tag: u16) -> Option<&Tpg> {
        self.targets.get(iqn)?.tpgs.get(&tag)
    }

    /// Every device as (hba, name, device), in order.
    pub fn devices(&self) -> impl Iterator<Item = (&str, &str, &Backstore)> {
        self.hbas.iter().flat_map(|(hba, h)| {
            h.devices
                .iter()
                .map(move |(name, dev)| (hba.as_str(), name.as_str(), dev))
        })
    }

    /// Every TPG as (iqn, tag, tpg), in order.
    pub fn tpgs(&self) -> impl Iterator<Item = (&str, u16, &Tpg)> {
        self.targets.iter().flat_map(|(iqn, t)| {
            t.tpgs
                .iter()
                .map(move |(tag, tpg)| (iqn.as_str(), *tag, tpg))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hba {
    pub devices: BTreeMap<String, Backstore>,
}

/// One iblock device (`core/<hba>/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backstore {
    /// The block device the kernel opens (`control` `udev_path=`, also written to the
    /// informational `udev_path` file). Fixed once the device is enabled.
    pub udev_path: String,
    /// `control` `readonly=`; also fixed once enabled.
    pub readonly: bool,
    /// `enable`: the kernel has opened the block device. Only "1" can be written.
    pub enabled: bool,
    pub wwn: Wwn,
    /// `attrib/<name>` → value; see [`DEVICE_ATTRIBUTES`].
    pub attributes: BTreeMap<String, String>,
    /// The state of the kernel's `default_tg_pt_gp`. STAR keeps it Standby: a new LUN link
    /// sits in this group until it is moved to its controller's group, and that moment
    /// must not show a second Active/Optimized group.
    pub default_group_state: AluaState,
    /// `alua/<name>`: the custom ALUA target port groups (never `default_tg_pt_gp`).
    pub alua_groups: BTreeMap<String, AluaGroup>,
}

/// `wwn/`: the identity a host sees in INQUIRY and VPD pages 0x80 and 0x83. The kernel
/// refuses changes while the device is exported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Wwn {
    pub vpd_unit_serial: String,
    pub vendor_id: String,
    pub product_id: String,
    pub revision: String,
}

impl Wwn {
    /// (file name under `wwn/`, value), in write order.
    pub fn fields(&self) -> [(&'static str, &str); 4] {
        [
            ("vpd_unit_serial", &self.vpd_unit_serial),
            ("vendor_id", &self.vendor_id),
            ("product_id", &self.product_id),
            ("revision", &self.revision),
        ]
    }
}

/// ALUA access states (SPC-4 table "ASYMMETRIC ACCESS STATE field"), as written to and
/// read from `alua_access_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AluaState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    LbaDependent,
    Offline,
    Transitioning,
}

impl AluaState {
    pub fn code(self) -> u8 {
        match self {
            AluaState::ActiveOptimized => 0,
            AluaState::ActiveNonOptimized => 1,
            AluaState::Standby => 2,
            AluaState::Unavailable => 3,
            AluaState::LbaDependent => 4,
            AluaState::Offline => 14,
            AluaState::Transitioning => 15,
        }
    }

    pub fn from_code(code: u8) -> Option<AluaState> {
        Some(match code {
            0 => AluaState::ActiveOptimized,
            1 => AluaState::ActiveNonOptimized,
            2 => AluaState::Standby,
            3 => AluaState::Unavailable,
            4 => AluaState::LbaDependent,
            14 => AluaState::Offline,
            15 => AluaState::Transitioning,
            _ => return None,
        })
    }

    /// States STAR writes. Offline (14) is a secondary, per-LUN state in LIO, and a
    /// group parked in Transitioning (15) trips the Linux ALUA handler (tcmu-runner
    /// #471); the kernel passes through Transitioning by itself during every change.
    pub fn writable(self) -> bool {
        !matches!(self, AluaState::Offline | AluaState::Transitioning)
    }
}

impl fmt::Display for AluaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            AluaState::ActiveOptimized => "Active/Optimized",
            AluaState::ActiveNonOptimized => "Active/NonOptimized",
            AluaState::Standby => "Standby",
            AluaState::Unavailable => "Unavailable",
            AluaState::LbaDependent => "LBA dependent",
            AluaState::Offline => "Offline",
            AluaState::Transitioning => "Transitioning",
        };
        write!(f, "{name} ({})", self.code())
    }
}

/// `alua_support_*`: the states a group may be put in, reported in REPORT TARGET PORT
/// GROUPS. The kernel refuses a state whose bit is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AluaSupport {
    pub active_optimized: bool,
    pub active_nonoptimized: bool,
    pub standby: bool,
    pub unavailable: bool,
    pub transitioning: bool,
    pub offline: bool,
}

/// One ALUA target port group of a device (`core/<hba>/<dev>/alua/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AluaGroup {
    /// `tg_pt_gp_id`; `None` until written. Every other setting needs it first.
    pub id: Option<u16>,
    /// `alua_access_type`: 0 none, 1 implicit, 2 explicit, 3 both.
    pub access_type: u8,
    pub support: AluaSupport,
    pub nonop_delay_msecs: u32,
    pub trans_delay_msecs: u32,
    pub write_metadata: bool,
    pub preferred: bool,
    pub state: AluaState,
}

impl AluaGroup {
    /// The group's settings other than its ID and state, as (file, value) in write order.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let bit = |b: bool| if b { "1" } else { "0" }.to_string();
        vec![
            ("alua_access_type", self.access_type.to_string()),
            (
                "alua_support_active_optimized",
                bit(self.support.active_optimized),
            ),
            (
                "alua_support_active_nonoptimized",
                bit(self.support.active_nonoptimized),
            ),
            ("alua_support_standby", bit(self.support.standby)),
            ("alua_support_unavailable", bit(self.support.unavailable)),
            (
                "alua_support_transitioning",
                bit(self.support.transitioning),
            ),
            ("alua_support_offline", bit(self.support.offline)),
            ("nonop_delay_msecs", self.nonop_delay_msecs.to_string()),
            ("trans_delay_msecs", self.trans_delay_msecs.to_string()),
            ("alua_write_metadata", bit(self.write_metadata)),
            ("preferred", bit(self.preferred)),
        ]
    }
}

/// `iscsi/<iqn>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Target {
    pub tpgs: BTreeMap<u16, Tpg>,
}

/// `iscsi/<iqn>/tpgt_<tag>`: a target portal group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tpg {
    /// `enable`: the TPG accepts logins.
    pub enabled: bool,
    /// `rtpi`: the relative target port ID. `None` when not managed (the kernel has no
    /// `rtpi` file). Can only be written while the TPG is disabled.
    pub rtpi: Option<u16>,
    /// `attrib/<name>` → value; see [`TPG_ATTRIBUTES`].
    pub attributes: BTreeMap<String, String>,
    /// `param/<name>` → value; see [`TPG_PARAMETERS`].
    pub params: BTreeMap<String, String>,
    /// `lun/lun_<index>`.
    pub luns: BTreeMap<u16, TpgLun>,
    /// `np/<ip:port>` directory names (`10.0.0.1:3260`, `[fd00::1]:3260`).
    pub portals: BTreeSet<String>,
    /// `acls/<initiator iqn>`.
    pub acls: BTreeMap<String, Acl>,
}

/// `lun/lun_<index>` of a TPG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpgLun {
    /// The symlink to the backstore; `None` for a LUN directory left without one.
    pub link: Option<LunLink>,
    /// The ALUA group the LUN's port is in (`alua_tg_pt_gp`); empty when unknown.
    pub alua_group: String,
}

/// `lun/lun_<index>/<name>` → `core/<hba>/<device>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunLink {
    pub name: String,
    pub hba: String,
    pub device: String,
}

/// `acls/<initiator iqn>`: a host allowed to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub cmdsn_depth: u32,
    pub auth: AclAuth,
    /// `attrib/<name>` → value; see [`ACL_ATTRIBUTES`].
    pub attributes: BTreeMap<String, String>,
    /// `lun_<mapped index>`: the LUN numbers this host sees.
    pub mapped_luns: BTreeMap<u16, MappedLun>,
}

/// `acls/<iqn>/auth/`: CHAP credentials. `None` is an unset value (the kernel shows an
/// empty string or "NULL"). Passwords are never serialized and never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AclAuth {
    pub userid: Option<String>,
    #[serde(skip_serializing, default)]
    pub password: Option<String>,
    pub userid_mutual: Option<String>,
    #[serde(skip_serializing, default)]
    pub password_mutual: Option<String>,
}

impl AclAuth {
    /// (file name under `auth/`, value), in write order: each user name before its secret.
    pub fn fields(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("userid", &self.userid),
            ("password", &self.password),
            ("userid_mutual", &self.userid_mutual),
            ("password_mutual", &self.password_mutual),
        ]
    }
}

impl fmt::Debug for AclAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |s: &Option<String>| s.as_ref().map(|_| "********");
        f.debug_struct("AclAuth")
            .field("userid", &self.userid)
            .field("password", &mask(&self.password))
            .field("userid_mutual", &self.userid_mutual)
            .field("password_mutual", &mask(&self.password_mutual))
            .finish()
    }
}

/// `acls/<iqn>/lun_<index>`: a LUN number a host sees, pointing at a TPG LUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedLun {
    pub link: Option<MappedLink>,
    pub write_protect: bool,
}

/// `acls/<iqn>/lun_<index>/<name>` → `lun/lun_<tpg_lun>` of the same TPG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedLink {
    pub name: String,
    pub tpg_lun: u16,
}

/// Whether a configfs file holds a CHAP secret, so that printed plans and errors hide it.
pub fn is_secret(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    path.contains("/auth/") && file.starts_with("password")
}

/// Paths of configfs objects, relative to the configfs target root
/// (`/sys/kernel/config/target`).
pub mod paths {
    pub fn hba(hba: &str) -> String {
        format!("core/{hba}")
    }

    pub fn device(hba: &str, name: &str) -> String {
        format!("core/{hba}/{name}")
    }

    pub fn alua_group(hba: &str, name: &str, group: &str) -> String {
        format!("core/{hba}/{name}/alua/{group}")
    }

    pub fn target(iqn: &str) -> String {
        format!("iscsi/{iqn}")
    }

    pub fn tpg(iqn: &str, tag: u16) -> String {
        format!("iscsi/{iqn}/tpgt_{tag}")
    }

    pub fn tpg_lun(iqn: &str, tag: u16, index: u16) -> String {
        format!("iscsi/{iqn}/tpgt_{tag}/lun/lun_{index}")
    }

    pub fn portal(iqn: &str, tag: u16, portal: &str) -> String {
        format!("iscsi/{iqn}/tpgt_{tag}/np/{portal}")
    }

    pub fn acl(iqn: &str, tag: u16, initiator: &str) -> String {
        format!("iscsi/{iqn}/tpgt_{tag}/acls/{initiator}")
    }

    pub fn mapped_lun(iqn: &str, tag: u16, initiator: &str, index: u16) -> String {
        format!("iscsi/{iqn}/tpgt_{tag}/acls/{initiator}/lun_{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alua_state_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(state) = AluaState::from_code(code) {
                assert_eq!(state.code(), code);
            }
        }
        assert!(!AluaState::Transitioning.writable());
        assert!(!AluaState::Offline.writable());
        assert!(AluaState::Unavailable.writable());
    }

    #[test]
    fn secrets_are_recognized_by_path() {
        assert!(is_secret("iscsi/iqn.x/tpgt_1/acls/iqn.y/auth/password"));
        assert!(is_secret(
            "iscsi/iqn.x/tpgt_1/acls/iqn.y/auth/password_mutual"
        ));
        assert!(!is_secret("iscsi/iqn.x/tpgt_1/acls/iqn.y/auth/userid"));
        assert!(!is_secret("core/iblock_0/password/enable"));
    }

    #[test]
    fn auth_debug_hides_passwords() {
        let auth = AclAuth {
            userid: Some("host".into()),
            password: Some("secret-123456".into()),
            ..AclAuth::default()
        };
        let text = format!("{auth:?}");
        assert!(text.contains("host"));
        assert!(!text.contains("secret-123456"));
    }

    #[test]
    fn paths_are_relative_to_the_target_root() {
        assert_eq!(paths::device(HBA, "data0"), "core/iblock_0/data0");
        assert_eq!(
            paths::mapped_lun("iqn.a", 2, "iqn.h", 3),
            "iscsi/iqn.a/tpgt_2/acls/iqn.h/lun_3"
        );
    }
}
