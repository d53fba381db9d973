//! An in-memory configfs target subsystem, for tests without root or a kernel.
//!
//! [`Sim`] holds a tree of directories, attribute files and symlinks shaped like
//! `/sys/kernel/config/target`, creates the default groups and files the kernel creates
//! on every mkdir, shows values in the kernel's formats, and refuses what the kernel
//! refuses, with the kernel's errno (from drivers/target/ and fs/configfs/):
//!
//! - mkdir of an existing object: `EEXIST`; under a parent that cannot hold objects:
//!   `EPERM`; a malformed name (`tpgt_x`, a portal that is not IP:port): `EINVAL`; a
//!   portal already on another TPG of the target: `EEXIST`.
//! - rmdir of a directory that still holds user-created children or links: `ENOTEMPTY`;
//!   of a default group (`default_tg_pt_gp`, `attrib`, ...): `EPERM`.
//! - symlink to a missing object: `ENOENT`; a LUN link to a device that is not enabled:
//!   `ENODEV`; a second link in a LUN: `EEXIST`; a mapped LUN to another TPG's LUN, or to
//!   an unlinked one: `EINVAL`.
//! - `wwn/*` or an export-sensitive attribute while the device is exported, `dbroot`
//!   while any device exists, `rtpi` on an enabled TPG, an ALUA setting or state before
//!   `tg_pt_gp_id`, a state whose support bit is off or with implicit ALUA off, a second
//!   `tg_pt_gp_id` (or a duplicate one), `udev_path=` after `enable`: `EINVAL` (or
//!   `EEXIST`/`ENODEV` where the kernel says so).
//!
//! It is deliberately stricter than the kernel where the kernel would accept something
//! STAR must never do, so that a plan passing the simulator is one STAR wants:
//!
//! - `alua_access_state` 14 (Offline) or 15 (Transitioning): refused (`EINVAL`).
//! - CHAP values ending in a newline: refused (the kernel would keep the newline as part
//!   of the secret).
//! - rmdir of an object a symlink points at, unlink of a LUN link while mapped LUNs use
//!   it, rmdir of an enabled TPG: `EBUSY` (the kernel tears the dependants down
//!   silently, which drops hosts' access behind the plan's back).
//! - `readonly=` after `enable` and unknown `control` tokens: `EINVAL` (the kernel
//!   ignores them).
//!
//! After every operation it also checks STAR's own promise: no device ever has two ALUA
//! groups in Active/Optimized with ports in them ([`SimError::Invariant`]).

use crate::configfs::{self, ConfigfsTree, EntryKind, ReadError};
use crate::model::{self, AluaState, Features, LioState};
use crate::plan::Op;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Linux errno values the simulator answers with.
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EACCES: i32 = 13;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ENOTEMPTY: i32 = 39;
    pub const EOVERFLOW: i32 = 75;
}
use errno::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The kernel (or the simulator's stricter rule) refuses the operation.
    Refused { errno: i32, message: String },
    /// The operation went through but broke a promise STAR makes to hosts.
    Invariant(String),
}

impl SimError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            SimError::Refused { errno, .. } => Some(*errno),
            SimError::Invariant(_) => None,
        }
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Refused { errno, message } => write!(f, "errno {errno}: {message}"),
            SimError::Invariant(message) => write!(f, "invariant broken: {message}"),
        }
    }
}

impl std::error::Error for SimError {}

type Result<T> = std::result::Result<T, SimError>;

fn refuse<T>(errno: i32, message: impl Into<String>) -> Result<T> {
    Err(SimError::Refused {
        errno,
        message: message.into(),
    })
}

/// What a directory is, which decides what can be created in it and how its files
/// behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Root,
    Core,
    Hba,
    Device,
    DevAttrib,
    DevWwn,
    DevAlua,
    TgPtGp,
    Iscsi,
    Target,
    Tpg,
    TpgLuns,
    TpgLun,
    Nps,
    Portal,
    Acls,
    Acl,
    MappedLun,
    TpgAttrib,
    TpgParam,
    AclAttrib,
    AclAuth,
    Other,
}

#[derive(Debug, Clone)]
enum Node {
    /// `user`: created by mkdir (as opposed to a default group the kernel adds).
    Dir {
        kind: Kind,
        user: bool,
    },
    File(String),
    Link(String),
}

/// An iblock device's `control` settings, which are not files of their own.
#[derive(Debug, Clone, Default)]
struct Control {
    udev_path: Option<String>,
    readonly: bool,
    enabled: bool,
}

const DEVICE_ATTRIBUTE_DEFAULTS: &[(&str, &str)] = &[
    ("block_size", "512"),
    ("emulate_3pc", "1"),
    ("emulate_caw", "1"),
    ("emulate_model_alias", "1"),
    ("emulate_pr", "1"),
    ("emulate_tas", "1"),
    ("emulate_tpu", "0"),
    ("emulate_tpws", "0"),
    ("emulate_ua_intlck_ctrl", "0"),
    ("emulate_write_cache", "0"),
    ("force_pr_aptpl", "0"),
    ("hw_block_size", "512"),
    ("hw_max_sectors", "1024"),
    ("is_nonrot", "0"),
    ("optimal_sectors", "1024"),
    ("pi_prot_type", "0"),
    ("queue_depth", "128"),
    ("unmap_zeroes_data", "0"),
];

const TPG_ATTRIBUTE_DEFAULTS: &[(&str, &str)] = &[
    ("authentication", "1"),
    ("cache_dynamic_acls", "0"),
    ("default_cmdsn_depth", "64"),
    ("default_erl", "0"),
    ("demo_mode_discovery", "1"),
    ("demo_mode_write_protect", "1"),
    ("generate_node_acls", "0"),
    ("login_timeout", "15"),
    ("prod_mode_write_protect", "0"),
    ("t10_pi", "0"),
    ("tpg_enabled_sendtargets", "1"),
];

const ACL_ATTRIBUTE_DEFAULTS: &[(&str, &str)] = &[
    ("dataout_timeout", "3"),
    ("dataout_timeout_retries", "5"),
    ("default_erl", "0"),
    ("nopin_response_timeout", "30"),
    ("nopin_timeout", "15"),
];

const ALUA_SUPPORT: &[&str] = &[
    "active_nonoptimized",
    "active_optimized",
    "lba_dependent",
    "offline",
    "standby",
    "transitioning",
    "unavailable",
];

/// The simulated configfs target subsystem; see the module documentation.
#[derive(Debug, Clone)]
pub struct Sim {
    features: Features,
    nodes: BTreeMap<String, Node>,
    /// Device path → its `control` settings.
    control: BTreeMap<String, Control>,
    /// Linked TPG LUN path → the ALUA group its port is in.
    groups: BTreeMap<String, String>,
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The first `n` components of a path.
fn prefix(path: &str, n: usize) -> String {
    path.split('/').take(n).collect::<Vec<_>>().join("/")
}

fn number(value: &str) -> Option<u64> {
    let t = value.trim();
    match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

fn index(name: &str, prefix: &str) -> Option<u16> {
    name.strip_prefix(prefix)?.parse().ok()
}

fn io_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl Sim {
    /// A target subsystem with the iSCSI fabric loaded and nothing configured, on a kernel
    /// with `features`.
    pub fn new(features: Features) -> Sim {
        let mut sim = Sim {
            features,
            nodes: BTreeMap::new(),
            control: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        sim.dir("", Kind::Root, false);
        sim.file("dbroot", &format!("{}\n", model::DEFAULT_DBROOT));
        sim.file(
            "version",
            "Target Engine Core ConfigFS Infrastructure v5.0 (simulated)\n",
        );
        sim.dir("core", Kind::Core, false);
        sim.dir("core/alua", Kind::Other, false);
        sim.dir("core/alua/lu_gps", Kind::Other, false);
        sim.dir("core/alua/lu_gps/default_lu_gp", Kind::Other, false);
        sim.file("core/alua/lu_gps/default_lu_gp/lu_gp_id", "0\n");
        sim.dir("iscsi", Kind::Iscsi, false);
        sim.dir("iscsi/discovery_auth", Kind::Other, false);
        sim.file("iscsi/discovery_auth/enforce_discovery_auth", "0\n");
        sim.file(
            "iscsi/lio_version",
            "Datera Inc. iSCSI Target (simulated)\n",
        );
        sim.file("iscsi/cpus_allowed_list", "0-1\n");
        sim
    }

    pub fn features(&self) -> Features {
        self.features
    }

    /// The LIO state, read with the same parser as the real configfs.
    pub fn state(&self) -> std::result::Result<LioState, ReadError> {
        configfs::read_state(self)
    }

    /// Whether a path exists.
    pub fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    /// Applies one operation, then checks the invariants.
    pub fn apply(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::Mkdir(path) => self.mkdir(path)?,
            Op::Rmdir(path) => self.rmdir(path)?,
            Op::Write { path, value } => self.write(path, value)?,
            Op::Symlink { link, target } => self.symlink(link, target)?,
            Op::Unlink(path) => self.unlink(path)?,
        }
        self.check_invariants()
    }

    /// Applies operations in order, stopping at the first failure (with its index).
    pub fn apply_all(&mut self, ops: &[Op]) -> std::result::Result<(), (usize, SimError)> {
        for (i, op) in ops.iter().enumerate() {
            self.apply(op).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn dir(&mut self, path: &str, kind: Kind, user: bool) {
        self.nodes
            .insert(path.to_string(), Node::Dir { kind, user });
    }

    fn file(&mut self, path: &str, text: &str) {
        self.nodes
            .insert(path.to_string(), Node::File(text.to_string()));
    }

    fn kind(&self, path: &str) -> Option<Kind> {
        match self.nodes.get(path) {
            Some(Node::Dir { kind, .. }) => Some(*kind),
            _ => None,
        }
    }

    fn text(&self, path: &str) -> &str {
        match self.nodes.get(path) {
            Some(Node::File(text)) => text,
            _ => "",
        }
    }

    /// Direct children, by name.
    fn children(&self, dir: &str) -> Vec<(&str, &Node)> {
        let start = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .filter(|(k, _)| !k.is_empty() && !k[start.len()..].contains('/'))
            .map(|(k, node)| (&k[start.len()..], node))
            .collect()
    }

    /// The device a TPG LUN links to.
    fn lun_device(&self, lun: &str) -> Option<&str> {
        self.children(lun)
            .into_iter()
            .find_map(|(_, node)| match node {
                Node::Link(target) => Some(target.as_str()),
                _ => None,
            })
    }

    /// How many TPG LUNs link to a device.
    fn export_count(&self, device: &str) -> usize {
        self.nodes
            .values()
            .filter(|node| matches!(node, Node::Link(t) if t == device))
            .count()
    }

    fn enabled(&self, device: &str) -> bool {
        self.control.get(device).is_some_and(|c| c.enabled)
    }

    fn mkdir(&mut self, path: &str) -> Result<()> {
        if self.nodes.contains_key(path) {
            return refuse(EEXIST, format!("{path} already exists"));
        }
        let (parent, name) = split(path);
        let parent_kind = match self.nodes.get(parent) {
            Some(Node::Dir { kind, .. }) => *kind,
            Some(_) => return refuse(ENOTDIR, format!("{parent} is not a directory")),
            None => return refuse(ENOENT, format!("{parent} does not exist")),
        };
        match parent_kind {
            Kind::Core => {
                if name
                    .strip_prefix("iblock_")
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_none()
                {
                    return refuse(
                        EINVAL,
                        format!("{name}: the simulator knows iblock_<n> HBAs only"),
                    );
                }
                self.dir(path, Kind::Hba, true);
                self.file(
                    &format!("{path}/hba_info"),
                    "HBA Index: 0 plugin: iblock version: v5.0\n",
                );
                self.file(&format!("{path}/hba_mode"), "0\n");
            }
            Kind::Hba => self.make_device(path),
            Kind::DevAlua => self.make_group(path, true, None),
            Kind::Iscsi => {
                let iqn_like = ["iqn.", "eui.", "naa."].iter().any(|p| name.starts_with(p));
                if !iqn_like || name.len() > 223 {
                    return refuse(EINVAL, format!("{name} is not an iSCSI name"));
                }
                self.dir(path, Kind::Target, true);
                self.dir(&format!("{path}/fabric_statistics"), Kind::Other, false);
            }
            Kind::Target => {
                if index(name, "tpgt_").filter(|t| *t > 0).is_none() {
                    return refuse(EINVAL, format!("{name}: a TPG is tpgt_<1..65535>"));
                }
                self.make_tpg(path);
            }
            Kind::TpgLuns => {
                if index(name, "lun_").is_none() {
                    return refuse(EINVAL, format!("{name}: a LUN is lun_<n>"));
                }
                self.dir(path, Kind::TpgLun, true);
                self.file(&format!("{path}/alua_tg_pt_gp"), "");
                self.file(&format!("{path}/alua_tg_pt_offline"), "0\n");
                self.file(&format!("{path}/alua_tg_pt_status"), "None\n");
                self.file(&format!("{path}/alua_tg_pt_write_md"), "0\n");
                self.dir(&format!("{path}/statistics"), Kind::Other, false);
            }
            Kind::Nps => {
                let Ok(addr) = name.parse::<SocketAddr>() else {
                    return refuse(EINVAL, format!("{name}: malformed ip/port"));
                };
                // The kernel checks every TPG of the target for the same address.
                let target = prefix(path, 2);
                for (tpg, _) in self.children(&target) {
                    let nps = format!("{target}/{tpg}/np");
                    for (np, _) in self.children(&nps) {
                        if np.parse::<SocketAddr>().ok() == Some(addr) {
                            return refuse(
                                EEXIST,
                                format!("Network Portal {name} already exists on {target}/{tpg}"),
                            );
                        }
                    }
                }
                self.dir(path, Kind::Portal, true);
                self.file(&format!("{path}/iser"), "0\n");
                self.file(&format!("{path}/cxgbit"), "0\n");
            }
            Kind::Acls => {
                if name.is_empty() || name.len() > 223 {
                    return refuse(EINVAL, format!("{name}: bad initiator name"));
                }
                self.make_acl(path);
            }
            Kind::Acl => {
                if index(name, "lun_").is_none() {
                    return refuse(EINVAL, format!("{name}: a mapped LUN is lun_<n>"));
                }
                self.dir(path, Kind::MappedLun, true);
                self.file(&format!("{path}/write_protect"), "0\n");
                self.dir(&format!("{path}/statistics"), Kind::Other, false);
            }
            _ => return refuse(EPERM, format!("{parent}: no objects can be created here")),
        }
        Ok(())
    }

    fn make_device(&mut self, path: &str) {
        self.dir(path, Kind::Device, true);
        for file in [
            "info",
            "control",
            "alias",
            "udev_path",
            "alua_lu_gp",
            "lba_map",
        ] {
            self.file(&format!("{path}/{file}"), "");
        }
        self.file(&format!("{path}/enable"), "0\n");
        self.dir(&format!("{path}/action"), Kind::Other, false);
        self.dir(&format!("{path}/pr"), Kind::Other, false);
        self.file(
            &format!("{path}/pr/res_type"),
            "SPC3_PERSISTENT_RESERVATIONS\n",
        );
        self.dir(&format!("{path}/statistics"), Kind::Other, false);
        self.dir(&format!("{path}/attrib"), Kind::DevAttrib, false);
        for (name, value) in DEVICE_ATTRIBUTE_DEFAULTS {
            self.file(&format!("{path}/attrib/{name}"), &format!("{value}\n"));
        }
        self.dir(&format!("{path}/wwn"), Kind::DevWwn, false);
        self.file(
            &format!("{path}/wwn/vpd_unit_serial"),
            "T10 VPD Unit Serial Number: \n",
        );
        self.file(&format!("{path}/wwn/vendor_id"), "LIO-ORG\n");
        self.file(&format!("{path}/wwn/product_id"), "IBLOCK\n");
        self.file(&format!("{path}/wwn/revision"), "4.0\n");
        self.file(&format!("{path}/wwn/company_id"), "0x001405\n");
        self.dir(&format!("{path}/alua"), Kind::DevAlua, false);
        self.make_group(
            &format!("{path}/alua/{}", model::DEFAULT_TG_PT_GP),
            false,
            Some(0),
        );
        self.control.insert(path.to_string(), Control::default());
    }

    fn make_group(&mut self, path: &str, user: bool, id: Option<u16>) {
        self.dir(path, Kind::TgPtGp, user);
        let id = id.map(|i| format!("{i}\n")).unwrap_or_default();
        self.file(&format!("{path}/tg_pt_gp_id"), &id);
        self.file(
            &format!("{path}/alua_access_type"),
            "Implicit and Explicit\n",
        );
        self.file(&format!("{path}/alua_access_state"), "0\n");
        self.file(&format!("{path}/alua_access_status"), "None\n");
        for bit in ALUA_SUPPORT {
            self.file(&format!("{path}/alua_support_{bit}"), "1\n");
        }
        self.file(&format!("{path}/alua_write_metadata"), "0\n");
        self.file(&format!("{path}/nonop_delay_msecs"), "100\n");
        self.file(&format!("{path}/trans_delay_msecs"), "0\n");
        self.file(&format!("{path}/implicit_trans_secs"), "0\n");
        self.file(&format!("{path}/preferred"), "0\n");
        self.file(&format!("{path}/members"), "");
    }

    fn make_tpg(&mut self, path: &str) {
        self.dir(path, Kind::Tpg, true);
        self.file(&format!("{path}/enable"), "0\n");
        self.file(&format!("{path}/dynamic_sessions"), "");
        if self.features.tpg_rtpi {
            self.file(&format!("{path}/rtpi"), "0\n");
        }
        self.dir(&format!("{path}/lun"), Kind::TpgLuns, false);
        self.dir(&format!("{path}/acls"), Kind::Acls, false);
        self.dir(&format!("{path}/np"), Kind::Nps, false);
        self.dir(&format!("{path}/attrib"), Kind::TpgAttrib, false);
        for (name, value) in TPG_ATTRIBUTE_DEFAULTS {
            self.file(&format!("{path}/attrib/{name}"), &format!("{value}\n"));
        }
        self.dir(&format!("{path}/param"), Kind::TpgParam, false);
        for (name, value) in [
            ("HeaderDigest", "CRC32C,None"),
            ("DataDigest", "CRC32C,None"),
            ("MaxConnections", "1"),
        ] {
            self.file(&format!("{path}/param/{name}"), &format!("{value}\n"));
        }
        self.dir(&format!("{path}/auth"), Kind::Other, false);
        self.dir(&format!("{path}/fabric_statistics"), Kind::Other, false);
    }

    fn make_acl(&mut self, path: &str) {
        // A new ACL starts with its TPG's default_cmdsn_depth.
        let tpg = prefix(path, 3);
        let depth = self
            .text(&format!("{tpg}/attrib/default_cmdsn_depth"))
            .to_string();
        self.dir(path, Kind::Acl, true);
        self.file(&format!("{path}/info"), "No active iSCSI Session\n");
        self.file(&format!("{path}/cmdsn_depth"), &depth);
        self.file(&format!("{path}/tag"), "");
        self.dir(&format!("{path}/attrib"), Kind::AclAttrib, false);
        for (name, value) in ACL_ATTRIBUTE_DEFAULTS {
            self.file(&format!("{path}/attrib/{name}"), &format!("{value}\n"));
        }
        if self.features.acl_authentication {
            self.file(&format!("{path}/attrib/authentication"), "-1\n");
        }
        self.dir(&format!("{path}/auth"), Kind::AclAuth, false);
        for name in ["userid", "password", "userid_mutual", "password_mutual"] {
            self.file(&format!("{path}/auth/{name}"), "\n");
        }
        self.file(&format!("{path}/auth/authenticate_target"), "0\n");
        self.dir(&format!("{path}/param"), Kind::Other, false);
        self.dir(&format!("{path}/fabric_statistics"), Kind::Other, false);
    }

    fn rmdir(&mut self, path: &str) -> Result<()> {
        let kind = match self.nodes.get(path) {
            None => return refuse(ENOENT, format!("{path} does not exist")),
            Some(Node::Dir { user: false, .. }) => {
                let what = if split(path).1 == model::DEFAULT_TG_PT_GP {
                    "the kernel's default_tg_pt_gp cannot be removed"
                } else {
                    "a default group cannot be removed"
                };
                return refuse(EPERM, format!("{path}: {what}"));
            }
            Some(Node::Dir { kind, .. }) => *kind,
            Some(_) => return refuse(ENOTDIR, format!("{path} is not a directory")),
        };
        let below = format!("{path}/");
        let busy_child = self
            .nodes
            .range(below.clone()..)
            .take_while(|(k, _)| k.starts_with(&below))
            .find(|(_, node)| matches!(node, Node::Dir { user: true, .. } | Node::Link(_)));
        if let Some((child, _)) = busy_child {
            return refuse(ENOTEMPTY, format!("{path} still holds {child}"));
        }
        let pointing = self
            .nodes
            .iter()
            .find(|(_, node)| matches!(node, Node::Link(t) if t == path || t.starts_with(&below)));
        if let Some((link, _)) = pointing {
            return refuse(EBUSY, format!("{path} is linked from {link}"));
        }
        if kind == Kind::Tpg && self.text(&format!("{path}/enable")).trim() == "1" {
            return refuse(EBUSY, format!("{path} is enabled: disable it first"));
        }
        let doomed: Vec<String> = self
            .nodes
            .range(path.to_string()..)
            .take_while(|(k, _)| *k == path || k.starts_with(&below))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.nodes.remove(&key);
        }
        self.control.remove(path);
        if kind == Kind::TgPtGp {
            // Its ports fall back to the device's default group.
            let device = prefix(path, 3);
            let group = split(path).1.to_string();
            let members: Vec<String> = self
                .groups
                .iter()
                .filter(|(lun, g)| **g == group && self.lun_device(lun) == Some(device.as_str()))
                .map(|(lun, _)| lun.clone())
                .collect();
            for lun in members {
                self.groups.insert(lun, model::DEFAULT_TG_PT_GP.to_string());
            }
        }
        Ok(())
    }

    fn symlink(&mut self, link: &str, target: &str) -> Result<()> {
        if self.nodes.contains_key(link) {
            return refuse(EEXIST, format!("{link} already exists"));
        }
        let (parent, _) = split(link);
        let Some(parent_kind) = self.kind(parent) else {
            return refuse(ENOENT, format!("{parent} does not exist"));
        };
        let Some(target_kind) = self.kind(target) else {
            return refuse(ENOENT, format!("symlink target {target} does not exist"));
        };
        match parent_kind {
            Kind::TpgLun => {
                if target_kind != Kind::Device {
                    return refuse(EINVAL, format!("{target} is not a backstore"));
                }
                if self.lun_device(parent).is_some() {
                    return refuse(EEXIST, format!("{parent}: Port Symlink already exists"));
                }
                if !self.enabled(target) {
                    return refuse(ENODEV, format!("{target} is not configured (enable) yet"));
                }
                self.groups
                    .insert(parent.to_string(), model::DEFAULT_TG_PT_GP.to_string());
            }
            Kind::MappedLun => {
                if target_kind != Kind::TpgLun {
                    return refuse(EINVAL, format!("{target} is not a TPG LUN"));
                }
                if prefix(parent, 3) != prefix(target, 3) {
                    return refuse(EINVAL, format!("{target} is outside {}", prefix(parent, 3)));
                }
                if self.lun_device(target).is_none() {
                    return refuse(
                        EINVAL,
                        format!("{target}: se_lun->lun_se_dev does not exist"),
                    );
                }
                if self
                    .children(parent)
                    .iter()
                    .any(|(_, n)| matches!(n, Node::Link(_)))
                {
                    return refuse(EEXIST, format!("{parent} already has a link"));
                }
            }
            _ => return refuse(EPERM, format!("{parent}: no links can be made here")),
        }
        self.nodes
            .insert(link.to_string(), Node::Link(target.to_string()));
        Ok(())
    }

    fn unlink(&mut self, path: &str) -> Result<()> {
        match self.nodes.get(path) {
            Some(Node::Link(_)) => {}
            Some(Node::Dir { .. }) => return refuse(EISDIR, format!("{path} is a directory")),
            Some(Node::File(_)) => return refuse(EPERM, format!("{path} is an attribute")),
            None => return refuse(ENOENT, format!("{path} does not exist")),
        }
        let (parent, _) = split(path);
        if self.kind(parent) == Some(Kind::TpgLun) {
            let used = self
                .nodes
                .iter()
                .find(|(_, node)| matches!(node, Node::Link(t) if t == parent));
            if let Some((mapped, _)) = used {
                return refuse(EBUSY, format!("{parent} is still mapped by {mapped}"));
            }
            self.groups.remove(parent);
        }
        self.nodes.remove(path);
        Ok(())
    }

    fn write(&mut self, path: &str, value: &str) -> Result<()> {
        match self.nodes.get(path) {
            Some(Node::File(_)) => {}
            Some(Node::Dir { .. }) => return refuse(EISDIR, format!("{path} is a directory")),
            Some(Node::Link(_)) => return refuse(EINVAL, format!("{path} is a link")),
            None => return refuse(ENOENT, format!("{path} does not exist")),
        }
        let (parent, name) = split(path);
        let kind = self.kind(parent).unwrap_or(Kind::Other);
        let stored = match kind {
            Kind::Root => self.write_root(name, value)?,
            Kind::Device => self.write_device(parent, name, value)?,
            Kind::DevAttrib => self.write_device_attribute(parent, name, value)?,
            Kind::DevWwn => self.write_wwn(parent, name, value)?,
            Kind::TgPtGp => self.write_group(parent, name, value)?,
            Kind::Tpg => self.write_tpg(parent, name, value)?,
            Kind::TpgAttrib => self.write_tpg_attribute(parent, name, value)?,
            Kind::TpgLun => self.write_tpg_lun(parent, name, value)?,
            Kind::Acl => match name {
                "cmdsn_depth" => match number(value).filter(|d| (1..=512).contains(d)) {
                    Some(d) => Some(format!("{d}\n")),
                    None => return refuse(EINVAL, format!("{path}: {value:?}")),
                },
                _ => return refuse(EACCES, format!("{path} is read-only")),
            },
            Kind::AclAttrib => {
                if name == "authentication" {
                    match value.trim().parse::<i32>() {
                        Ok(v @ -1..=1) => Some(format!("{v}\n")),
                        _ => return refuse(EINVAL, format!("{path}: -1, 0 or 1, not {value:?}")),
                    }
                } else {
                    match number(value) {
                        Some(v) => Some(format!("{v}\n")),
                        None => return refuse(EINVAL, format!("{path}: {value:?}")),
                    }
                }
            }
            Kind::AclAuth => {
                if name == "authenticate_target" {
                    return refuse(EACCES, format!("{path} is read-only"));
                }
                if value.ends_with('\n') {
                    return refuse(
                        EINVAL,
                        format!("{path}: CHAP values are written without a newline (it would be part of the secret)"),
                    );
                }
                if value.len() >= 256 {
                    return refuse(EINVAL, format!("{path}: too long"));
                }
                Some(format!("{value}\n"))
            }
            Kind::MappedLun | Kind::Portal => match number(value) {
                Some(v @ 0..=1) => Some(format!("{v}\n")),
                _ => return refuse(EINVAL, format!("{path}: 0 or 1, not {value:?}")),
            },
            _ => Some(format!("{}\n", value.trim_end_matches('\n'))),
        };
        if let Some(text) = stored {
            self.file(path, &text);
        }
        Ok(())
    }

    fn write_root(&mut self, name: &str, value: &str) -> Result<Option<String>> {
        if name != "dbroot" {
            return refuse(EACCES, format!("{name} is read-only"));
        }
        if !self.control.is_empty() {
            return refuse(EINVAL, "db_root: cannot be changed because it's in use");
        }
        let value = value.trim_end_matches('\n');
        if value.is_empty() {
            return refuse(EINVAL, "db_root: empty");
        }
        Ok(Some(format!("{value}\n")))
    }

    fn write_device(&mut self, dev: &str, name: &str, value: &str) -> Result<Option<String>> {
        match name {
            "udev_path" => {
                if self.export_count(dev) > 0 {
                    return refuse(EINVAL, format!("{dev}: udev_path while exported"));
                }
                Ok(Some(format!("{}\n", value.trim_end_matches('\n'))))
            }
            "control" => {
                let control = self.control.get(dev).cloned().unwrap_or_default();
                let mut next = control.clone();
                for token in value.split([',', '\n']).filter(|t| !t.is_empty()) {
                    if let Some(path) = token.strip_prefix("udev_path=") {
                        if control.enabled {
                            return refuse(
                                EEXIST,
                                format!(
                                    "{dev}: Unable to set udev_path= while ib_dev->ibd_bd exists"
                                ),
                            );
                        }
                        next.udev_path = Some(path.to_string());
                    } else if let Some(flag) = token.strip_prefix("readonly=") {
                        if control.enabled {
                            return refuse(
                                EINVAL,
                                format!("{dev}: readonly= after enable has no effect"),
                            );
                        }
                        next.readonly = match number(flag) {
                            Some(0) => false,
                            Some(1) => true,
                            _ => return refuse(EINVAL, format!("{dev}: readonly={flag}")),
                        };
                    } else {
                        return refuse(EINVAL, format!("{dev}: control token {token:?}"));
                    }
                }
                self.control.insert(dev.to_string(), next);
                Ok(None)
            }
            "enable" => {
                if !value.contains('1') {
                    return refuse(EINVAL, "For dev_enable ops, only valid value is \"1\"");
                }
                let control = self.control.entry(dev.to_string()).or_default();
                if control.enabled {
                    return refuse(EEXIST, format!("{dev} is already enabled"));
                }
                if control.udev_path.is_none() {
                    return refuse(EINVAL, format!("{dev}: Missing udev_path= parameter"));
                }
                control.enabled = true;
                Ok(Some("1\n".to_string()))
            }
            "alias" | "alua_lu_gp" | "lba_map" => Ok(Some(format!("{value}\n"))),
            _ => refuse(EACCES, format!("{dev}/{name} is read-only")),
        }
    }

    fn write_device_attribute(
        &mut self,
        attrib: &str,
        name: &str,
        value: &str,
    ) -> Result<Option<String>> {
        let dev = split(attrib).0;
        if name.starts_with("hw_") {
            return refuse(EACCES, format!("{attrib}/{name} is read-only"));
        }
        let Some(v) = number(value) else {
            return refuse(EINVAL, format!("{attrib}/{name}: {value:?}"));
        };
        let exports = self.export_count(dev);
        if model::EXPORT_SENSITIVE_ATTRIBUTES.contains(&name) && exports > 0 {
            return refuse(
                EINVAL,
                format!("{dev}: Unable to change {name} while export_count is {exports}"),
            );
        }
        if name.starts_with("emulate_") || name == "is_nonrot" {
            if v > 1 {
                return refuse(EINVAL, format!("{attrib}/{name}: 0 or 1"));
            }
            if name == "emulate_write_cache" && v == 1 {
                return refuse(EINVAL, "emulate_write_cache not supported for this device");
            }
            if matches!(name, "emulate_tpu" | "emulate_tpws") && v == 1 && !self.enabled(dev) {
                return refuse(
                    ENODEV,
                    format!("{dev}: Generic Block Discard setup requires device to be configured"),
                );
            }
        }
        Ok(Some(format!("{v}\n")))
    }

    fn write_wwn(&mut self, wwn: &str, name: &str, value: &str) -> Result<Option<String>> {
        let dev = split(wwn).0;
        let exports = self.export_count(dev);
        if exports > 0 {
            return refuse(
                EINVAL,
                format!("{dev}: Unable to set {name} while {exports} exports exist"),
            );
        }
        let v = value.trim();
        let max = match name {
            "vpd_unit_serial" => 253,
            "vendor_id" => 8,
            "product_id" => 16,
            "revision" => 4,
            "company_id" => {
                return match number(v) {
                    Some(id) if id < 0x100_0000 => Ok(Some(format!("{id:#08x}\n"))),
                    Some(_) => refuse(EOVERFLOW, "company_id is 24 bits"),
                    None => refuse(EINVAL, format!("company_id {v:?}")),
                };
            }
            _ => return refuse(EACCES, format!("{wwn}/{name} is read-only")),
        };
        if v.len() > max {
            return refuse(EOVERFLOW, format!("{wwn}/{name}: at most {max} characters"));
        }
        if !v.chars().all(|c| (' '..='~').contains(&c)) {
            return refuse(
                EINVAL,
                "Emulated T10 Inquiry Data contains non-ASCII-printable characters",
            );
        }
        if name == "vpd_unit_serial" {
            Ok(Some(format!("T10 VPD Unit Serial Number: {v}\n")))
        } else {
            Ok(Some(format!("{v}\n")))
        }
    }

    fn write_group(&mut self, group: &str, name: &str, value: &str) -> Result<Option<String>> {
        let dev = prefix(group, 3);
        let valid_id = !self.text(&format!("{group}/tg_pt_gp_id")).trim().is_empty();
        let v = number(value);
        let need_id = || {
            refuse(
                EINVAL,
                format!("{group}: Unable to set {name} on invalid tg_pt_gp ID"),
            )
        };
        match name {
            "tg_pt_gp_id" => {
                if valid_id {
                    return refuse(EINVAL, format!("{group}: the ID may only be set once"));
                }
                let Some(id) = v.filter(|id| *id <= 0xffff) else {
                    return refuse(EINVAL, format!("{group}: tg_pt_gp_id {value:?}"));
                };
                let alua = format!("{dev}/alua");
                for (other, _) in self.children(&alua) {
                    let other_id = self.text(&format!("{alua}/{other}/tg_pt_gp_id")).trim();
                    if number(other_id) == Some(id) && !other_id.is_empty() {
                        return refuse(
                            EINVAL,
                            format!("{group}: tg_pt_gp_id {id} already exists ({other})"),
                        );
                    }
                }
                Ok(Some(format!("{id}\n")))
            }
            "alua_access_type" => {
                if !valid_id {
                    return need_id();
                }
                let words = ["None", "Implicit", "Explicit", "Implicit and Explicit"];
                match v.filter(|t| *t <= 3) {
                    Some(t) => Ok(Some(format!("{}\n", words[t as usize]))),
                    None => refuse(EINVAL, format!("{group}: access type {value:?}")),
                }
            }
            "alua_access_state" => {
                if !valid_id {
                    return need_id();
                }
                if !self.enabled(&dev) {
                    return refuse(
                        ENODEV,
                        format!(
                            "{dev}: Unable to set alua_access_state while device is not configured"
                        ),
                    );
                }
                let Some(code) = v else {
                    return refuse(EINVAL, format!("{group}: state {value:?}"));
                };
                if code == 14 || code == 15 {
                    return refuse(EINVAL, format!("{group}: STAR never writes state {code} (Offline is per LUN, Transitioning is the kernel's)"));
                }
                let Some(state) = u8::try_from(code).ok().and_then(AluaState::from_code) else {
                    return refuse(EINVAL, format!("{group}: unknown state {code}"));
                };
                let access_type = self.text(&format!("{group}/alua_access_type")).trim();
                if !access_type.starts_with("Implicit") {
                    return refuse(
                        EINVAL,
                        format!("{group}: implicit ALUA is off ({access_type})"),
                    );
                }
                let bit = match state {
                    AluaState::ActiveOptimized => "active_optimized",
                    AluaState::ActiveNonOptimized => "active_nonoptimized",
                    AluaState::Standby => "standby",
                    AluaState::Unavailable => "unavailable",
                    AluaState::LbaDependent => "lba_dependent",
                    AluaState::Offline => "offline",
                    AluaState::Transitioning => "transitioning",
                };
                if self.text(&format!("{group}/alua_support_{bit}")).trim() != "1" {
                    return refuse(
                        EINVAL,
                        format!("{group}: {state} is not supported by the group"),
                    );
                }
                Ok(Some(format!("{code}\n")))
            }
            "alua_access_status" => {
                if !valid_id {
                    return need_id();
                }
                Ok(Some(format!("{}\n", value.trim())))
            }
            _ if name.starts_with("alua_support_") => {
                if !valid_id {
                    return need_id();
                }
                match v.filter(|b| *b <= 1) {
                    Some(b) => Ok(Some(format!("{b}\n"))),
                    None => refuse(EINVAL, format!("{group}/{name}: 0 or 1")),
                }
            }
            "nonop_delay_msecs"
            | "trans_delay_msecs"
            | "implicit_trans_secs"
            | "preferred"
            | "alua_write_metadata" => {
                let max = match name {
                    "nonop_delay_msecs" => 10_000,
                    "trans_delay_msecs" => 30_000,
                    "implicit_trans_secs" => 255,
                    _ => 1,
                };
                match v.filter(|n| *n <= max) {
                    Some(n) => Ok(Some(format!("{n}\n"))),
                    None => refuse(EINVAL, format!("{group}/{name}: at most {max}")),
                }
            }
            _ => refuse(EACCES, format!("{group}/{name} is read-only")),
        }
    }

    fn write_tpg(&mut self, tpg: &str, name: &str, value: &str) -> Result<Option<String>> {
        let enabled = self.text(&format!("{tpg}/enable")).trim() == "1";
        match name {
            "enable" => {
                let on = match number(value) {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return refuse(EINVAL, format!("{tpg}/enable: 0 or 1")),
                };
                if on && !enabled && self.features.tpg_rtpi {
                    // RTPIs of enabled TPGs live in one kernel-wide xarray.
                    let in_use: Vec<u64> = self
                        .nodes
                        .keys()
                        .filter(|k| k.ends_with("/enable") && k.starts_with("iscsi/"))
                        .filter(|k| k.split('/').count() == 4 && self.text(k).trim() == "1")
                        .filter_map(|k| number(self.text(&k.replace("/enable", "/rtpi"))))
                        .collect();
                    let rtpi = number(self.text(&format!("{tpg}/rtpi"))).unwrap_or(0);
                    if rtpi == 0 {
                        let free = (1..).find(|r| !in_use.contains(r)).unwrap_or(1);
                        self.file(&format!("{tpg}/rtpi"), &format!("{free:#x}\n"));
                    } else if in_use.contains(&rtpi) {
                        return refuse(
                            EINVAL,
                            format!("{tpg}: Can not set RTPI {rtpi:#x}, it is already busy"),
                        );
                    }
                }
                Ok(Some(format!("{}\n", u8::from(on))))
            }
            "rtpi" => {
                let Some(rtpi) = number(value).filter(|r| *r > 0 && *r <= 0xffff) else {
                    return refuse(EINVAL, format!("{tpg}/rtpi: {value:?}"));
                };
                if enabled {
                    return refuse(EINVAL, format!("{tpg}: Can not change RTPI on enabled TPG"));
                }
                Ok(Some(format!("{rtpi:#x}\n")))
            }
            _ => refuse(EACCES, format!("{tpg}/{name} is read-only")),
        }
    }

    fn write_tpg_attribute(
        &mut self,
        attrib: &str,
        name: &str,
        value: &str,
    ) -> Result<Option<String>> {
        let Some(v) = number(value) else {
            return refuse(EINVAL, format!("{attrib}/{name}: {value:?}"));
        };
        let flags = [
            "authentication",
            "cache_dynamic_acls",
            "demo_mode_discovery",
            "demo_mode_write_protect",
            "generate_node_acls",
            "prod_mode_write_protect",
            "t10_pi",
            "tpg_enabled_sendtargets",
        ];
        if flags.contains(&name) && v > 1 {
            return refuse(EINVAL, format!("{attrib}/{name}: 0 or 1"));
        }
        if name == "default_cmdsn_depth" && !(1..=512).contains(&v) {
            return refuse(EINVAL, format!("{attrib}/{name}: 1 to 512"));
        }
        let generate = self.text(&format!("{attrib}/generate_node_acls")).trim() == "1";
        if name == "cache_dynamic_acls" && v == 0 && generate {
            // "Skipping cache_dynamic_acls=0 when generate_node_acls=1"
            return Ok(None);
        }
        if name == "generate_node_acls" && v == 1 {
            self.file(&format!("{attrib}/cache_dynamic_acls"), "1\n");
        }
        Ok(Some(format!("{v}\n")))
    }

    fn write_tpg_lun(&mut self, lun: &str, name: &str, value: &str) -> Result<Option<String>> {
        if name != "alua_tg_pt_gp" {
            return Ok(Some(format!("{}\n", value.trim())));
        }
        let Some(dev) = self.lun_device(lun).map(str::to_string) else {
            return refuse(ENODEV, format!("{lun} is not linked to a device"));
        };
        let group = value.trim();
        let path = format!("{dev}/alua/{group}");
        let valid = self.kind(&path) == Some(Kind::TgPtGp)
            && !self.text(&format!("{path}/tg_pt_gp_id")).trim().is_empty();
        if !valid {
            return refuse(
                ENODEV,
                format!("{dev} has no ALUA group {group:?} with an ID"),
            );
        }
        self.groups.insert(lun.to_string(), group.to_string());
        Ok(None)
    }

    /// No device may show two Active/Optimized groups with ports in them: a host would
    /// then send writes through both controllers.
    fn check_invariants(&self) -> Result<()> {
        for dev in self.control.keys() {
            let alua = format!("{dev}/alua");
            let mut active = Vec::new();
            for (group, _) in self.children(&alua) {
                if self
                    .text(&format!("{alua}/{group}/alua_access_state"))
                    .trim()
                    != "0"
                {
                    continue;
                }
                let members = self
                    .groups
                    .iter()
                    .filter(|(lun, g)| *g == group && self.lun_device(lun) == Some(dev.as_str()))
                    .count();
                if members > 0 {
                    active.push(group);
                }
            }
            if active.len() > 1 {
                return Err(SimError::Invariant(format!(
                    "{dev}: groups {} are all Active/Optimized with ports in them",
                    active.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// iblock's `info`, as `transport_dump_dev_state` and `iblock_show_configfs_dev_params`
    /// print it.
    fn info(&self, dev: &str) -> String {
        let control = self.control.get(dev).cloned().unwrap_or_default();
        let status = if control.enabled {
            "ACTIVATED"
        } else {
            "DEACTIVATED"
        };
        let mut text = format!(
            "Status: {status}  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 1024\n        "
        );
        if control.enabled {
            text.push_str("iBlock device: sim0");
        }
        if let Some(path) = &control.udev_path {
            text.push_str(&format!("  UDEV PATH: {path}"));
        }
        text.push_str(&format!("  readonly: {}\n", u8::from(control.readonly)));
        text.push_str("        Major: 254 Minor: 0  CLAIMED: IBLOCK\n");
        text
    }
}

impl ConfigfsTree for Sim {
    fn list(&self, dir: &str) -> io::Result<Vec<(String, EntryKind)>> {
        match self.nodes.get(dir) {
            Some(Node::Dir { .. }) => {}
            Some(_) => return Err(io_error(ENOTDIR)),
            None => return Err(io_error(ENOENT)),
        }
        Ok(self
            .children(dir)
            .into_iter()
            .map(|(name, node)| {
                let kind = match node {
                    Node::Dir { .. } => EntryKind::Dir,
                    Node::File(_) => EntryKind::File,
                    Node::Link(_) => EntryKind::Link,
                };
                (name.to_string(), kind)
            })
            .collect())
    }

    fn read(&self, file: &str) -> io::Result<String> {
        let text = match self.nodes.get(file) {
            Some(Node::File(text)) => text,
            Some(Node::Dir { .. }) => return Err(io_error(EISDIR)),
            Some(Node::Link(_)) => return Err(io_error(EINVAL)),
            None => return Err(io_error(ENOENT)),
        };
        let (parent, name) = split(file);
        match (self.kind(parent), name) {
            (Some(Kind::Device), "info") => Ok(self.info(parent)),
            (Some(Kind::Device), "control") => Err(io_error(EACCES)),
            (Some(Kind::TpgLun), "alua_tg_pt_gp") => {
                let group = self.groups.get(parent).ok_or_else(|| io_error(ENODEV))?;
                let dev = self.lun_device(parent).unwrap_or_default();
                let gp = format!("{dev}/alua/{group}");
                let state = number(self.text(&format!("{gp}/alua_access_state")))
                    .and_then(|c| u8::try_from(c).ok())
                    .and_then(AluaState::from_code)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                Ok(format!(
                    "TG Port Alias: {group}\nTG Port Group ID: {}\nTG Port Primary Access State: {state}\n",
                    self.text(&format!("{gp}/tg_pt_gp_id")).trim()
                ))
            }
            _ => Ok(text.clone()),
        }
    }

    fn read_link(&self, link: &str) -> io::Result<String> {
        match self.nodes.get(link) {
            Some(Node::Link(target)) => Ok(target.clone()),
            Some(_) => Err(io_error(EINVAL)),
            None => Err(io_error(ENOENT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IQN: &str = "iqn.2026-11.org.star-array:t";
    const DEV: &str = "core/iblock_0/d0";

    fn features() -> Features {
        Features {
            tpg_rtpi: true,
            acl_authentication: true,
            discard: true,
        }
    }

    fn w(path: &str, value: &str) -> Op {
        Op::Write {
            path: path.to_string(),
            value: value.to_string(),
        }
    }

    fn mk(path: &str) -> Op {
        Op::Mkdir(path.to_string())
    }

    fn ok(sim: &mut Sim, ops: &[Op]) {
        if let Err((i, e)) = sim.apply_all(ops) {
            panic!("{:?} failed: {e}", ops[i]);
        }
    }

    fn refused(sim: &mut Sim, op: Op) -> i32 {
        match sim.apply(&op) {
            Err(SimError::Refused { errno, .. }) => errno,
            other => panic!("{op:?} was not refused: {other:?}"),
        }
    }

    /// An enabled device with group ctrl_1 (ID 1), exported as lun_0 of tpgt_1.
    fn exported() -> Sim {
        let mut sim = Sim::new(features());
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        ok(
            &mut sim,
            &[
                mk("core/iblock_0"),
                mk(DEV),
                w(&format!("{DEV}/control"), "udev_path=/dev/vdb2"),
                w(&format!("{DEV}/enable"), "1"),
                mk(&format!("{DEV}/alua/ctrl_1")),
                w(&format!("{DEV}/alua/ctrl_1/tg_pt_gp_id"), "1"),
                mk(&format!("iscsi/{IQN}")),
                mk(&tpg),
                mk(&format!("{tpg}/lun/lun_0")),
                Op::Symlink {
                    link: format!("{tpg}/lun/lun_0/d0"),
                    target: DEV.into(),
                },
                w(&format!("{tpg}/lun/lun_0/alua_tg_pt_gp"), "ctrl_1"),
            ],
        );
        sim
    }

    #[test]
    fn rmdir_with_children_is_enotempty() {
        let mut sim = exported();
        assert_eq!(
            refused(&mut sim, Op::Rmdir(format!("iscsi/{IQN}/tpgt_1/lun/lun_0"))),
            ENOTEMPTY
        );
        assert_eq!(
            refused(&mut sim, Op::Rmdir(format!("iscsi/{IQN}"))),
            ENOTEMPTY
        );
        // A device with a custom ALUA group is not empty either.
        let mut sim = Sim::new(features());
        ok(
            &mut sim,
            &[mk("core/iblock_0"), mk(DEV), mk(&format!("{DEV}/alua/g"))],
        );
        assert_eq!(refused(&mut sim, Op::Rmdir(DEV.into())), ENOTEMPTY);
        ok(
            &mut sim,
            &[Op::Rmdir(format!("{DEV}/alua/g")), Op::Rmdir(DEV.into())],
        );
    }

    #[test]
    fn symlink_to_missing_object_is_enoent() {
        let mut sim = exported();
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        ok(&mut sim, &[mk(&format!("{tpg}/lun/lun_1"))]);
        let op = Op::Symlink {
            link: format!("{tpg}/lun/lun_1/x"),
            target: "core/iblock_0/missing".into(),
        };
        assert_eq!(refused(&mut sim, op), ENOENT);
    }

    #[test]
    fn links_need_an_enabled_device_and_one_per_lun() {
        let mut sim = exported();
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        ok(
            &mut sim,
            &[mk("core/iblock_0/d1"), mk(&format!("{tpg}/lun/lun_1"))],
        );
        let op = Op::Symlink {
            link: format!("{tpg}/lun/lun_1/d1"),
            target: "core/iblock_0/d1".into(),
        };
        assert_eq!(refused(&mut sim, op), ENODEV);
        let op = Op::Symlink {
            link: format!("{tpg}/lun/lun_0/again"),
            target: DEV.into(),
        };
        assert_eq!(refused(&mut sim, op), EEXIST);
    }

    #[test]
    fn wwn_write_while_exported_is_einval() {
        let mut sim = exported();
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/wwn/vpd_unit_serial"), "abc")),
            EINVAL
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/wwn/vendor_id"), "STAR")),
            EINVAL
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/attrib/emulate_tas"), "0")),
            EINVAL
        );
        // A live-changeable attribute is fine.
        ok(&mut sim, &[w(&format!("{DEV}/attrib/emulate_3pc"), "1")]);
        let lun = format!("iscsi/{IQN}/tpgt_1/lun/lun_0");
        ok(
            &mut sim,
            &[
                Op::Unlink(format!("{lun}/d0")),
                w(&format!("{DEV}/wwn/vpd_unit_serial"), "abc"),
            ],
        );
        assert_eq!(
            sim.read(&format!("{DEV}/wwn/vpd_unit_serial")).unwrap(),
            "T10 VPD Unit Serial Number: abc\n"
        );
    }

    #[test]
    fn rtpi_write_on_enabled_tpg_is_einval() {
        let mut sim = exported();
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        ok(
            &mut sim,
            &[
                w(&format!("{tpg}/rtpi"), "1"),
                w(&format!("{tpg}/enable"), "1"),
            ],
        );
        assert_eq!(refused(&mut sim, w(&format!("{tpg}/rtpi"), "2")), EINVAL);
        ok(
            &mut sim,
            &[
                w(&format!("{tpg}/enable"), "0"),
                w(&format!("{tpg}/rtpi"), "2"),
                w(&format!("{tpg}/enable"), "1"),
            ],
        );
        assert_eq!(sim.read(&format!("{tpg}/rtpi")).unwrap(), "0x2\n");
        // Without the feature there is no file at all.
        let mut old = Sim::new(Features::default());
        ok(&mut old, &[mk(&format!("iscsi/{IQN}")), mk(&tpg)]);
        assert_eq!(refused(&mut old, w(&format!("{tpg}/rtpi"), "1")), ENOENT);
    }

    #[test]
    fn alua_state_before_id_is_einval() {
        let mut sim = Sim::new(features());
        let g = format!("{DEV}/alua/ctrl_1");
        ok(
            &mut sim,
            &[
                mk("core/iblock_0"),
                mk(DEV),
                w(&format!("{DEV}/control"), "udev_path=/dev/vdb2"),
                w(&format!("{DEV}/enable"), "1"),
                mk(&g),
            ],
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{g}/alua_access_state"), "2")),
            EINVAL
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{g}/alua_access_type"), "1")),
            EINVAL
        );
        ok(
            &mut sim,
            &[
                w(&format!("{g}/tg_pt_gp_id"), "1"),
                w(&format!("{g}/alua_access_state"), "2"),
            ],
        );
        // Set once; unique per device (the default group holds 0).
        assert_eq!(
            refused(&mut sim, w(&format!("{g}/tg_pt_gp_id"), "3")),
            EINVAL
        );
        ok(&mut sim, &[mk(&format!("{DEV}/alua/other"))]);
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/alua/other/tg_pt_gp_id"), "1")),
            EINVAL
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/alua/other/tg_pt_gp_id"), "0")),
            EINVAL
        );
        // A state whose support bit is off, or explicit-only ALUA, is refused.
        ok(
            &mut sim,
            &[w(&format!("{g}/alua_support_active_nonoptimized"), "0")],
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{g}/alua_access_state"), "1")),
            EINVAL
        );
        ok(&mut sim, &[w(&format!("{g}/alua_access_type"), "2")]);
        assert_eq!(
            refused(&mut sim, w(&format!("{g}/alua_access_state"), "0")),
            EINVAL
        );
    }

    #[test]
    fn transitioning_and_offline_are_refused() {
        let mut sim = exported();
        let g = format!("{DEV}/alua/ctrl_1/alua_access_state");
        assert_eq!(refused(&mut sim, w(&g, "15")), EINVAL);
        assert_eq!(refused(&mut sim, w(&g, "14")), EINVAL);
    }

    #[test]
    fn mkdir_existing_is_eexist() {
        let mut sim = exported();
        assert_eq!(refused(&mut sim, mk(DEV)), EEXIST);
        assert_eq!(
            refused(&mut sim, mk(&format!("{DEV}/alua/default_tg_pt_gp"))),
            EEXIST
        );
        assert_eq!(
            refused(&mut sim, mk(&format!("iscsi/{IQN}/tpgt_x"))),
            EINVAL
        );
        assert_eq!(refused(&mut sim, mk(&format!("{DEV}/attrib/x"))), EPERM);
        // The same portal on another TPG of the target.
        ok(
            &mut sim,
            &[
                mk(&format!("iscsi/{IQN}/tpgt_1/np/10.0.0.1:3260")),
                mk(&format!("iscsi/{IQN}/tpgt_2")),
            ],
        );
        assert_eq!(
            refused(
                &mut sim,
                mk(&format!("iscsi/{IQN}/tpgt_2/np/10.0.0.1:3260"))
            ),
            EEXIST
        );
        ok(
            &mut sim,
            &[mk(&format!("iscsi/{IQN}/tpgt_2/np/10.0.0.2:3260"))],
        );
    }

    #[test]
    fn dbroot_change_with_devices_is_einval() {
        let mut sim = Sim::new(features());
        ok(
            &mut sim,
            &[w("dbroot", "/etc/target"), mk("core/iblock_0"), mk(DEV)],
        );
        assert_eq!(refused(&mut sim, w("dbroot", "/var/target")), EINVAL);
        assert_eq!(sim.state().unwrap().dbroot, "/etc/target");
    }

    #[test]
    fn default_tg_pt_gp_cannot_be_removed() {
        let mut sim = exported();
        assert_eq!(
            refused(&mut sim, Op::Rmdir(format!("{DEV}/alua/default_tg_pt_gp"))),
            EPERM
        );
        assert_eq!(refused(&mut sim, Op::Rmdir(format!("{DEV}/attrib"))), EPERM);
    }

    #[test]
    fn removed_group_sends_its_ports_to_the_default_group() {
        let mut sim = exported();
        ok(&mut sim, &[Op::Rmdir(format!("{DEV}/alua/ctrl_1"))]);
        let text = sim
            .read(&format!("iscsi/{IQN}/tpgt_1/lun/lun_0/alua_tg_pt_gp"))
            .unwrap();
        assert!(
            text.starts_with("TG Port Alias: default_tg_pt_gp\n"),
            "{text}"
        );
    }

    #[test]
    fn two_active_optimized_groups_are_flagged() {
        let mut sim = exported();
        let tpg2 = format!("iscsi/{IQN}/tpgt_2");
        ok(
            &mut sim,
            &[
                w(
                    &format!("{DEV}/alua/default_tg_pt_gp/alua_access_state"),
                    "2",
                ),
                mk(&format!("{DEV}/alua/ctrl_2")),
                w(&format!("{DEV}/alua/ctrl_2/tg_pt_gp_id"), "2"),
                mk(&tpg2),
                mk(&format!("{tpg2}/lun/lun_0")),
                Op::Symlink {
                    link: format!("{tpg2}/lun/lun_0/d0"),
                    target: DEV.into(),
                },
            ],
        );
        // ctrl_2 was created Active/Optimized (the kernel's default) and now gets a port.
        let op = w(&format!("{tpg2}/lun/lun_0/alua_tg_pt_gp"), "ctrl_2");
        assert!(matches!(sim.apply(&op), Err(SimError::Invariant(_))));
    }

    #[test]
    fn dependants_go_first() {
        let mut sim = exported();
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        let acl = format!("{tpg}/acls/iqn.2026-11.example.lab:h");
        ok(
            &mut sim,
            &[
                mk(&acl),
                mk(&format!("{acl}/lun_0")),
                Op::Symlink {
                    link: format!("{acl}/lun_0/d0"),
                    target: format!("{tpg}/lun/lun_0"),
                },
                w(&format!("{tpg}/enable"), "1"),
            ],
        );
        assert_eq!(
            refused(&mut sim, Op::Unlink(format!("{tpg}/lun/lun_0/d0"))),
            EBUSY
        );
        assert_eq!(
            refused(&mut sim, Op::Rmdir(format!("{acl}/lun_0"))),
            ENOTEMPTY
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{acl}/cmdsn_depth"), "0")),
            EINVAL
        );
        ok(
            &mut sim,
            &[
                Op::Unlink(format!("{acl}/lun_0/d0")),
                Op::Rmdir(format!("{acl}/lun_0")),
                Op::Rmdir(acl.clone()),
                Op::Unlink(format!("{tpg}/lun/lun_0/d0")),
                Op::Rmdir(format!("{tpg}/lun/lun_0")),
            ],
        );
        assert_eq!(refused(&mut sim, Op::Rmdir(tpg.clone())), EBUSY);
        ok(
            &mut sim,
            &[w(&format!("{tpg}/enable"), "0"), Op::Rmdir(tpg)],
        );
    }

    #[test]
    fn chap_with_newline_is_refused() {
        let mut sim = exported();
        let acl = format!("iscsi/{IQN}/tpgt_1/acls/iqn.2026-11.example.lab:h");
        ok(
            &mut sim,
            &[
                mk(&acl),
                w(&format!("{acl}/auth/password"), "secret-123456"),
            ],
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{acl}/auth/userid"), "h\n")),
            EINVAL
        );
        assert_eq!(
            sim.read(&format!("{acl}/auth/password")).unwrap(),
            "secret-123456\n"
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{acl}/attrib/authentication"), "2")),
            EINVAL
        );
    }

    #[test]
    fn control_is_fixed_once_enabled() {
        let mut sim = exported();
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/control"), "udev_path=/dev/vdc")),
            EEXIST
        );
        assert_eq!(
            refused(&mut sim, w(&format!("{DEV}/control"), "readonly=1")),
            EINVAL
        );
        assert_eq!(refused(&mut sim, w(&format!("{DEV}/enable"), "1")), EEXIST);
        let info = sim.read(&format!("{DEV}/info")).unwrap();
        assert!(info.contains("UDEV PATH: /dev/vdb2  readonly: 0"), "{info}");
    }
}
