//! The real I/O: reading the LIO state out of configfs and applying a plan to it.
//!
//! Reading is written once, against the [`ConfigfsTree`] trait, and used both on the
//! kernel's tree ([`read_actual`]) and on the simulator ([`crate::sim::Sim`]), so the
//! tests exercise the same parser that runs on the appliance. It reads what the model
//! holds, including objects STAR did not create: STAR owns the target subsystem on the
//! appliance, so a foreign target, ACL or backstore is part of the actual state and the
//! next plan removes it.
//!
//! Formats follow the kernel's show functions (drivers/target/): numbers with a newline;
//! `wwn/vpd_unit_serial` as `T10 VPD Unit Serial Number: <serial>`; `alua_access_type`
//! as words (`Implicit`); `alua_tg_pt_gp` as `TG Port Alias: <group>` and more lines;
//! `rtpi` in hex (`0x1`); the iblock `info` text for the opened device and `readonly`;
//! CHAP values as given, an unset one empty or "NULL". The parsers also take the plain
//! values a write leaves in an ordinary directory, which is what the tests without a
//! kernel use.

use crate::model::{
    self, paths, Acl, AclAuth, AluaGroup, AluaState, AluaSupport, Backstore, Features, Hba,
    LioState, LunLink, MappedLink, MappedLun, Target, Tpg, TpgLun, Wwn,
};
use crate::plan::Op;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// Where configfs puts the target subsystem.
pub const ROOT: &str = "/sys/kernel/config/target";

/// Entries of `iscsi/` that are not targets (rtslib's `excludes_list`; rtslib-fb#195
/// crashed on `cpus_allowed_list`, a file since ~6.3).
pub const ISCSI_NON_TARGETS: &[&str] = &[
    "discovery_auth",
    "lio_version",
    "version",
    "cpus_allowed_list",
];

/// The throwaway names [`probe_features`] creates when nothing exists yet to look at.
pub const PROBE_IQN: &str = "iqn.2026-11.org.star-array:feature-probe";
pub const PROBE_INITIATOR: &str = "iqn.2026-11.org.star-array:feature-probe-initiator";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Link,
}

/// A configfs-shaped tree, with paths relative to the target root.
pub trait ConfigfsTree {
    /// The entries of a directory, by name.
    fn list(&self, dir: &str) -> io::Result<Vec<(String, EntryKind)>>;
    /// The text of an attribute file.
    fn read(&self, file: &str) -> io::Result<String>;
    /// What a symlink points at, relative to the target root.
    fn read_link(&self, link: &str) -> io::Result<String>;
}

/// A reading failure, naming the path.
#[derive(Debug)]
pub struct ReadError {
    pub path: String,
    pub error: io::Error,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reading configfs {}: {}", self.path, self.error)
    }
}

impl std::error::Error for ReadError {}

/// For callers whose errors are operator messages.
impl From<ReadError> for String {
    fn from(e: ReadError) -> String {
        e.to_string()
    }
}

fn err(path: &str, error: io::Error) -> ReadError {
    ReadError {
        path: path.to_string(),
        error,
    }
}

fn invalid(path: &str, what: impl fmt::Display) -> ReadError {
    err(
        path,
        io::Error::new(io::ErrorKind::InvalidData, what.to_string()),
    )
}

/// The kernel's tree under a configfs target root (or a directory shaped like it).
pub struct FsTree {
    root: PathBuf,
}

impl FsTree {
    pub fn new(root: &Path) -> io::Result<FsTree> {
        Ok(FsTree {
            root: normalize(&std::path::absolute(root)?),
        })
    }
}

/// `.` and `..` resolved lexically: configfs links are relative paths that climb up to
/// the configfs mount and down again ("../../../../../../target/core/iblock_0/data0").
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl ConfigfsTree for FsTree {
    fn list(&self, dir: &str) -> io::Result<Vec<(String, EntryKind)>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(self.root.join(dir))? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let kind = if file_type.is_symlink() {
                EntryKind::Link
            } else if file_type.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    fn read(&self, file: &str) -> io::Result<String> {
        fs::read_to_string(self.root.join(file))
    }

    fn read_link(&self, link: &str) -> io::Result<String> {
        let path = self.root.join(link);
        let target = fs::read_link(&path)?;
        let resolved = match path.parent() {
            Some(dir) if target.is_relative() => normalize(&dir.join(&target)),
            _ => normalize(&target),
        };
        let relative = resolved.strip_prefix(&self.root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("points outside the target root: {}", target.display()),
            )
        })?;
        Ok(relative.to_string_lossy().into_owned())
    }
}

/// Reads the LIO state under a configfs target root (normally [`ROOT`]).
pub fn read_actual(root: &Path) -> Result<LioState, ReadError> {
    let tree = FsTree::new(root).map_err(|e| err(&root.display().to_string(), e))?;
    read_state(&tree)
}

fn read(tree: &impl ConfigfsTree, path: &str) -> Result<String, ReadError> {
    tree.read(path).map_err(|e| err(path, e))
}

/// A file that may be missing (a feature the kernel lacks).
fn read_opt(tree: &impl ConfigfsTree, path: &str) -> Result<Option<String>, ReadError> {
    match tree.read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path, e)),
    }
}

fn list(tree: &impl ConfigfsTree, dir: &str) -> Result<Vec<(String, EntryKind)>, ReadError> {
    tree.list(dir).map_err(|e| err(dir, e))
}

fn list_opt(tree: &impl ConfigfsTree, dir: &str) -> Result<Vec<(String, EntryKind)>, ReadError> {
    match tree.list(dir) {
        Ok(entries) => Ok(entries),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(dir, e)),
    }
}

fn dirs(entries: Vec<(String, EntryKind)>) -> impl Iterator<Item = String> {
    entries
        .into_iter()
        .filter(|(_, kind)| *kind == EntryKind::Dir)
        .map(|(name, _)| name)
}

/// "lun_3" → 3, "tpgt_1" → 1.
fn index(name: &str, prefix: &str) -> Option<u16> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// A number as the kernel shows it: decimal, or hex with "0x".
fn parse_number(path: &str, text: &str) -> Result<u64, ReadError> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| invalid(path, format!("expected a number, found {t:?}")))
}

fn read_number(tree: &impl ConfigfsTree, path: &str) -> Result<u64, ReadError> {
    parse_number(path, &read(tree, path)?)
}

fn read_u16(tree: &impl ConfigfsTree, path: &str) -> Result<u16, ReadError> {
    let n = read_number(tree, path)?;
    u16::try_from(n).map_err(|_| invalid(path, format!("{n} is out of range")))
}

fn read_u32(tree: &impl ConfigfsTree, path: &str) -> Result<u32, ReadError> {
    let n = read_number(tree, path)?;
    u32::try_from(n).map_err(|_| invalid(path, format!("{n} is out of range")))
}

fn read_flag(tree: &impl ConfigfsTree, path: &str) -> Result<bool, ReadError> {
    Ok(read_number(tree, path)? != 0)
}

/// Managed attribute files of a directory that exist, trimmed.
fn read_attributes(
    tree: &impl ConfigfsTree,
    dir: &str,
    names: &[&str],
) -> Result<BTreeMap<String, String>, ReadError> {
    let mut out = BTreeMap::new();
    for name in names {
        if let Some(text) = read_opt(tree, &format!("{dir}/{name}"))? {
            out.insert(name.to_string(), text.trim().to_string());
        }
    }
    Ok(out)
}

/// Reads a [`LioState`] from any configfs-shaped tree.
pub fn read_state(tree: &impl ConfigfsTree) -> Result<LioState, ReadError> {
    let dbroot = read(tree, "dbroot")?.trim().to_string();
    let mut hbas = BTreeMap::new();
    // core/alua holds the global LU groups, which STAR does not use.
    for hba in dirs(list_opt(tree, "core")?).filter(|name| name != "alua") {
        let mut devices = BTreeMap::new();
        for name in dirs(list(tree, &paths::hba(&hba))?) {
            let device = read_backstore(tree, &hba, &name)?;
            devices.insert(name, device);
        }
        hbas.insert(hba, Hba { devices });
    }
    let mut targets = BTreeMap::new();
    for iqn in dirs(list_opt(tree, "iscsi")?) {
        if ISCSI_NON_TARGETS.contains(&iqn.as_str()) {
            continue;
        }
        let target = read_target(tree, &iqn)?;
        targets.insert(iqn, target);
    }
    Ok(LioState {
        dbroot,
        hbas,
        targets,
    })
}

fn read_backstore(tree: &impl ConfigfsTree, hba: &str, name: &str) -> Result<Backstore, ReadError> {
    let base = paths::device(hba, name);
    // iblock's part of `info`: "iBlock device: vdb2  UDEV PATH: /dev/...  readonly: 0".
    let info = read_opt(tree, &format!("{base}/info"))?.unwrap_or_default();
    let info_udev = info
        .split("UDEV PATH: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string);
    let readonly = info
        .split("readonly: ")
        .nth(1)
        .is_some_and(|rest| rest.starts_with('1'));
    let udev_path = match info_udev {
        Some(path) => path,
        None => read_opt(tree, &format!("{base}/udev_path"))?
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    let enabled = read_opt(tree, &format!("{base}/enable"))?.is_some_and(|text| text.trim() == "1");
    let wwn_file = |file: &str| -> Result<String, ReadError> {
        let text = read_opt(tree, &format!("{base}/wwn/{file}"))?.unwrap_or_default();
        let text = text.trim();
        let text = text
            .strip_prefix("T10 VPD Unit Serial Number:")
            .unwrap_or(text);
        Ok(text.trim().to_string())
    };
    let wwn = Wwn {
        vpd_unit_serial: wwn_file("vpd_unit_serial")?,
        vendor_id: wwn_file("vendor_id")?,
        product_id: wwn_file("product_id")?,
        revision: wwn_file("revision")?,
    };
    let attributes = read_attributes(tree, &format!("{base}/attrib"), model::DEVICE_ATTRIBUTES)?;
    let mut default_group_state = AluaState::ActiveOptimized;
    let mut alua_groups = BTreeMap::new();
    for group in dirs(list_opt(tree, &format!("{base}/alua"))?) {
        let path = paths::alua_group(hba, name, &group);
        if group == model::DEFAULT_TG_PT_GP {
            default_group_state = read_alua_state(tree, &format!("{path}/alua_access_state"))?;
        } else {
            alua_groups.insert(group, read_alua_group(tree, &path)?);
        }
    }
    Ok(Backstore {
        udev_path,
        readonly,
        enabled,
        wwn,
        attributes,
        default_group_state,
        alua_groups,
    })
}

fn read_alua_state(tree: &impl ConfigfsTree, path: &str) -> Result<AluaState, ReadError> {
    let code = read_number(tree, path)?;
    u8::try_from(code)
        .ok()
        .and_then(AluaState::from_code)
        .ok_or_else(|| invalid(path, format!("unknown ALUA state {code}")))
}

fn read_alua_group(tree: &impl ConfigfsTree, path: &str) -> Result<AluaGroup, ReadError> {
    let id_path = format!("{path}/tg_pt_gp_id");
    let id_text = read(tree, &id_path)?;
    let id = if id_text.trim().is_empty() {
        None
    } else {
        Some(read_u16(tree, &id_path)?)
    };
    let type_path = format!("{path}/alua_access_type");
    let type_text = read(tree, &type_path)?;
    let access_type = match type_text.trim() {
        "Implicit and Explicit" => 3,
        "Explicit" => 2,
        "Implicit" => 1,
        "None" => 0,
        other => u8::try_from(parse_number(&type_path, other)?)
            .map_err(|_| invalid(&type_path, format!("unknown access type {other:?}")))?,
    };
    let flag = |file: &str| read_flag(tree, &format!("{path}/{file}"));
    Ok(AluaGroup {
        id,
        access_type,
        support: AluaSupport {
            active_optimized: flag("alua_support_active_optimized")?,
            active_nonoptimized: flag("alua_support_active_nonoptimized")?,
            standby: flag("alua_support_standby")?,
            unavailable: flag("alua_support_unavailable")?,
            transitioning: flag("alua_support_transitioning")?,
            offline: flag("alua_support_offline")?,
        },
        nonop_delay_msecs: read_u32(tree, &format!("{path}/nonop_delay_msecs"))?,
        trans_delay_msecs: read_u32(tree, &format!("{path}/trans_delay_msecs"))?,
        write_metadata: flag("alua_write_metadata")?,
        preferred: flag("preferred")?,
        state: read_alua_state(tree, &format!("{path}/alua_access_state"))?,
    })
}

fn read_target(tree: &impl ConfigfsTree, iqn: &str) -> Result<Target, ReadError> {
    let mut tpgs = BTreeMap::new();
    // Besides tpgt_N, a target holds its fabric_statistics group.
    for name in dirs(list(tree, &paths::target(iqn))?) {
        if let Some(tag) = index(&name, "tpgt_") {
            tpgs.insert(tag, read_tpg(tree, iqn, tag)?);
        }
    }
    Ok(Target { tpgs })
}

fn read_tpg(tree: &impl ConfigfsTree, iqn: &str, tag: u16) -> Result<Tpg, ReadError> {
    let base = paths::tpg(iqn, tag);
    let enabled = read_flag(tree, &format!("{base}/enable"))?;
    let rtpi_path = format!("{base}/rtpi");
    let rtpi = match read_opt(tree, &rtpi_path)? {
        Some(text) => {
            let n = parse_number(&rtpi_path, &text)?;
            Some(u16::try_from(n).map_err(|_| invalid(&rtpi_path, "out of range"))?)
        }
        None => None,
    };
    let attributes = read_attributes(tree, &format!("{base}/attrib"), model::TPG_ATTRIBUTES)?;
    let params = read_attributes(tree, &format!("{base}/param"), model::TPG_PARAMETERS)?;

    let mut luns = BTreeMap::new();
    for name in dirs(list_opt(tree, &format!("{base}/lun"))?) {
        let Some(index) = index(&name, "lun_") else {
            continue;
        };
        let path = paths::tpg_lun(iqn, tag, index);
        let mut link = None;
        for (entry, kind) in list(tree, &path)? {
            if kind != EntryKind::Link {
                continue;
            }
            let link_path = format!("{path}/{entry}");
            let target = tree.read_link(&link_path).map_err(|e| err(&link_path, e))?;
            let parts: Vec<&str> = target.split('/').collect();
            let ["core", hba, device] = parts[..] else {
                return Err(invalid(&link_path, format!("not a backstore: {target}")));
            };
            link = Some(LunLink {
                name: entry,
                hba: hba.to_string(),
                device: device.to_string(),
            });
            break;
        }
        // An unlinked LUN has no group (the kernel answers ENODEV): read as none.
        let alua_group = tree
            .read(&format!("{path}/alua_tg_pt_gp"))
            .ok()
            .and_then(|text| parse_tg_port_alias(&text))
            .unwrap_or_default();
        luns.insert(index, TpgLun { link, alua_group });
    }

    let portals: BTreeSet<String> = dirs(list_opt(tree, &format!("{base}/np"))?).collect();

    let mut acls = BTreeMap::new();
    for initiator in dirs(list_opt(tree, &format!("{base}/acls"))?) {
        let acl = read_acl(tree, iqn, tag, &initiator)?;
        acls.insert(initiator, acl);
    }

    Ok(Tpg {
        enabled,
        rtpi,
        attributes,
        params,
        luns,
        portals,
        acls,
    })
}

/// The group name out of `alua_tg_pt_gp` ("TG Port Alias: ctrl_1\nTG Port Group ID: 1..."),
/// or the bare name an ordinary file holds.
pub fn parse_tg_port_alias(text: &str) -> Option<String> {
    let first = text.lines().next()?.trim();
    let name = match first.strip_prefix("TG Port Alias:") {
        Some(rest) => rest.trim(),
        None => first,
    };
    (!name.is_empty()).then(|| name.to_string())
}

fn read_acl(
    tree: &impl ConfigfsTree,
    iqn: &str,
    tag: u16,
    initiator: &str,
) -> Result<Acl, ReadError> {
    let base = paths::acl(iqn, tag, initiator);
    let cmdsn_depth = read_u32(tree, &format!("{base}/cmdsn_depth"))?;
    let credential = |file: &str| -> Result<Option<String>, ReadError> {
        let text = read_opt(tree, &format!("{base}/auth/{file}"))?.unwrap_or_default();
        // Shown with one newline added; a secret has no whitespace to trim.
        let value = text.strip_suffix('\n').unwrap_or(&text);
        Ok((!value.is_empty() && value != "NULL").then(|| value.to_string()))
    };
    let auth = AclAuth {
        userid: credential("userid")?,
        password: credential("password")?,
        userid_mutual: credential("userid_mutual")?,
        password_mutual: credential("password_mutual")?,
    };
    let attributes = read_attributes(tree, &format!("{base}/attrib"), model::ACL_ATTRIBUTES)?;
    let mut mapped_luns = BTreeMap::new();
    for name in dirs(list(tree, &base)?) {
        let Some(index) = index(&name, "lun_") else {
            continue;
        };
        let path = paths::mapped_lun(iqn, tag, initiator, index);
        let mut link = None;
        for (entry, kind) in list(tree, &path)? {
            if kind != EntryKind::Link {
                continue;
            }
            let link_path = format!("{path}/{entry}");
            let target = tree.read_link(&link_path).map_err(|e| err(&link_path, e))?;
            let tpg_lun = target
                .rsplit('/')
                .next()
                .and_then(|last| self::index(last, "lun_"))
                .filter(|_| target.contains("/lun/"))
                .ok_or_else(|| invalid(&link_path, format!("not a TPG LUN: {target}")))?;
            link = Some(MappedLink {
                name: entry,
                tpg_lun,
            });
            break;
        }
        let write_protect = read_flag(tree, &format!("{path}/write_protect"))?;
        mapped_luns.insert(
            index,
            MappedLun {
                link,
                write_protect,
            },
        );
    }
    Ok(Acl {
        cmdsn_depth,
        auth,
        attributes,
        mapped_luns,
    })
}

/// An operation the kernel refused. `errno` is the raw error (0 if there was none, e.g.
/// a short write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    /// The position of the failed operation in the plan (0-based); the ones before it
    /// were applied.
    pub op_index: usize,
    pub op: Op,
    pub errno: i32,
    pub message: String,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configfs step {} ({}) failed: {}",
            self.op_index + 1,
            self.op,
            self.message
        )
    }
}

impl std::error::Error for ApplyError {}

/// What to look at next, by errno; the kernel logs its exact reason to dmesg.
fn hint(errno: i32) -> &'static str {
    match errno {
        1 | 13 => "configfs needs root (CAP_SYS_ADMIN)",
        2 => "the object is missing: another program changed configfs, or a kernel module (target_core_iblock, iscsi_target_mod) is not loaded",
        16 => "the object is in use: look for leftover links to it",
        17 => "it already exists (an object of that name, or the same portal on another TPG)",
        19 => "the device is not enabled, or the ALUA group does not exist",
        22 => "the kernel refused the value or its order; dmesg shows the target driver's reason",
        39 => "the directory still has children (mapped LUNs, links, groups)",
        _ => "dmesg may show the target driver's reason",
    }
}

/// Applies `ops` in order under a configfs target root, stopping at the first failure.
/// Reading the state again and planning again resumes from wherever it stopped.
pub fn apply(root: &Path, ops: &[Op]) -> Result<(), ApplyError> {
    for (op_index, op) in ops.iter().enumerate() {
        apply_one(root, op).map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(0);
            ApplyError {
                op_index,
                op: op.clone(),
                errno,
                message: format!("{}: {e} ({})", root.join(op.path()).display(), hint(errno)),
            }
        })?;
    }
    Ok(())
}

fn apply_one(root: &Path, op: &Op) -> io::Result<()> {
    match op {
        Op::Mkdir(path) => fs::create_dir(root.join(path)),
        Op::Rmdir(path) => fs::remove_dir(root.join(path)),
        Op::Write { path, value } => {
            // No O_CREAT: a missing attribute is an error, never a new file. One write()
            // of the whole value: configfs hands each write to the kernel's store
            // function as a unit.
            let mut file = fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(root.join(path))?;
            let written = file.write(value.as_bytes())?;
            if written != value.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short write: {written} of {} bytes", value.len()),
                ));
            }
            Ok(())
        }
        Op::Symlink { link, target } => {
            std::os::unix::fs::symlink(root.join(target), root.join(link))
        }
        Op::Unlink(path) => fs::remove_file(root.join(path)),
    }
}

/// Checks that the configfs target root is there (configfs mounted, target_core_mod
/// loaded) and makes sure `iscsi/` exists; the message says what is missing.
pub fn ensure_root(root: &Path) -> Result<(), String> {
    if !root.is_dir() {
        return Err(format!(
            "{}: no LIO target in configfs: is configfs mounted at /sys/kernel/config and target_core_mod loaded?",
            root.display()
        ));
    }
    ensure_iscsi(root).map_err(|e| {
        format!(
            "{}: cannot create the iSCSI fabric ({e}): is iscsi_target_mod available?",
            root.join("iscsi").display()
        )
    })
}

/// The kernel features of [`probe_features`], `discard` off, and all off when probing
/// fails (the conservative answer: no RTPI pinning, CHAP for all hosts or none). Set
/// `discard` from [`discard_supported`] to offer UNMAP.
pub fn features(root: &Path) -> Features {
    probe_features(root, false).unwrap_or_default()
}

/// Makes sure `iscsi/` exists: the mkdir loads iscsi_target_mod if needed.
pub fn ensure_iscsi(root: &Path) -> io::Result<()> {
    match fs::create_dir(root.join("iscsi")) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// What this kernel supports, from the files its configfs objects have: `tpgt_N/rtpi`
/// and `acls/<iqn>/attrib/authentication`. Existing objects are looked at first; when
/// none exist yet, a throwaway target ([`PROBE_IQN`], disabled, no portal, one ACL) is
/// created and removed again. `discard` is passed through (see [`discard_supported`]).
pub fn probe_features(root: &Path, discard: bool) -> io::Result<Features> {
    let exists = |p: &Path| p.symlink_metadata().is_ok();
    let mut rtpi = None;
    let mut acl_auth = None;
    if let Ok(targets) = fs::read_dir(root.join("iscsi")) {
        for target in targets.flatten() {
            let Ok(tpgs) = fs::read_dir(target.path()) else {
                continue;
            };
            for tpg in tpgs.flatten() {
                if !tpg.file_name().to_string_lossy().starts_with("tpgt_") {
                    continue;
                }
                rtpi = Some(exists(&tpg.path().join("rtpi")));
                if let Some(acl) = fs::read_dir(tpg.path().join("acls"))
                    .ok()
                    .and_then(|mut a| a.next())
                {
                    acl_auth = Some(exists(&acl?.path().join("attrib/authentication")));
                }
            }
        }
    }
    if let (Some(tpg_rtpi), Some(acl_authentication)) = (rtpi, acl_auth) {
        return Ok(Features {
            tpg_rtpi,
            acl_authentication,
            discard,
        });
    }
    ensure_iscsi(root)?;
    let target = root.join("iscsi").join(PROBE_IQN);
    let tpg = target.join("tpgt_1");
    let acl = tpg.join("acls").join(PROBE_INITIATOR);
    for dir in [&target, &tpg, &acl] {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // No acls/ group: not a kernel TPG (an ordinary directory); nothing to find.
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir == &acl => {}
            Err(e) => {
                let _ = remove_probe(&target, &tpg, &acl);
                return Err(e);
            }
        }
    }
    let features = Features {
        tpg_rtpi: exists(&tpg.join("rtpi")),
        acl_authentication: exists(&acl.join("attrib/authentication")),
        discard,
    };
    remove_probe(&target, &tpg, &acl)?;
    Ok(features)
}

fn remove_probe(target: &Path, tpg: &Path, acl: &Path) -> io::Result<()> {
    for dir in [acl, tpg, target] {
        match fs::remove_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a block device (a partition of the shared disk, by any path) supports
/// discard, from `/sys/class/block`.
pub fn discard_supported(device: &Path) -> io::Result<bool> {
    let real = fs::canonicalize(device)?;
    let name = real
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no device name"))?;
    discard_supported_in(Path::new("/sys/class/block"), &name.to_string_lossy())
}

/// [`discard_supported`] against a given `/sys/class/block`: a partition has no `queue/`
/// of its own, its disk's (the parent directory in sysfs) applies.
pub fn discard_supported_in(class_block: &Path, name: &str) -> io::Result<bool> {
    let dev = fs::canonicalize(class_block.join(name))?;
    let own = dev.join("queue/discard_max_bytes");
    let file = if own.exists() {
        own
    } else {
        dev.parent()
            .map(|disk| disk.join("queue/discard_max_bytes"))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no queue for device"))?
    };
    let text = fs::read_to_string(&file)?;
    Ok(text.trim().parse::<u64>().unwrap_or(0) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_state, AluaRoles};
    use star_core::array_config::{ArrayConfig, Chap, Host, Lun};
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "star-target-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn put(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }

    fn mkdir(root: &Path, path: &str) {
        fs::create_dir_all(root.join(path)).unwrap();
    }

    /// A symlink the way configfs makes it: relative, climbing to the configfs mount.
    fn link(root: &Path, link: &str, target: &str) {
        let depth = link.split('/').count();
        let up = "../".repeat(depth);
        symlink(format!("{up}target/{target}"), root.join(link)).unwrap();
    }

    /// Writes `state` the way the kernel shows it, under `<dir>/config/target`.
    fn fake_configfs(dir: &Path, state: &LioState) -> PathBuf {
        let root = dir.join("config/target");
        put(&root, "dbroot", &format!("{}\n", state.dbroot));
        put(
            &root,
            "version",
            "Target Engine Core ConfigFS Infrastructure v5.0\n",
        );
        mkdir(&root, "core/alua/lu_gps/default_lu_gp");
        put(
            &root,
            "iscsi/lio_version",
            "Datera Inc. iSCSI Target v4.1.0\n",
        );
        put(&root, "iscsi/cpus_allowed_list", "0-1\n");
        put(&root, "iscsi/discovery_auth/enforce_discovery_auth", "0\n");
        for (hba, name, dev) in state.devices() {
            let base = paths::device(hba, name);
            put(
                &root,
                &format!("{}/hba_info", paths::hba(hba)),
                "HBA Index: 1\n",
            );
            put(
                &root,
                &format!("{base}/info"),
                &format!(
                    "Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 1024\n        iBlock device: vdb2  UDEV PATH: {}  readonly: {}\n        Major: 254 Minor: 18  CLAIMED: IBLOCK\n",
                    dev.udev_path,
                    u8::from(dev.readonly)
                ),
            );
            put(
                &root,
                &format!("{base}/udev_path"),
                &format!("{}\n", dev.udev_path),
            );
            put(
                &root,
                &format!("{base}/enable"),
                if dev.enabled { "1\n" } else { "0\n" },
            );
            put(
                &root,
                &format!("{base}/wwn/vpd_unit_serial"),
                &format!("T10 VPD Unit Serial Number: {}\n", dev.wwn.vpd_unit_serial),
            );
            put(
                &root,
                &format!("{base}/wwn/vendor_id"),
                &format!("{}\n", dev.wwn.vendor_id),
            );
            put(
                &root,
                &format!("{base}/wwn/product_id"),
                &format!("{}\n", dev.wwn.product_id),
            );
            put(
                &root,
                &format!("{base}/wwn/revision"),
                &format!("{}\n", dev.wwn.revision),
            );
            put(&root, &format!("{base}/attrib/hw_block_size"), "512\n");
            for (k, v) in &dev.attributes {
                put(&root, &format!("{base}/attrib/{k}"), &format!("{v}\n"));
            }
            let mut groups: Vec<(String, AluaGroup)> = dev
                .alua_groups
                .iter()
                .map(|(n, g)| (n.clone(), g.clone()))
                .collect();
            let mut default = dev.alua_groups.values().next().cloned().unwrap();
            default.id = Some(0);
            default.state = dev.default_group_state;
            groups.push((model::DEFAULT_TG_PT_GP.to_string(), default));
            for (group, g) in groups {
                let gp = paths::alua_group(hba, name, &group);
                let id = g.id.map(|i| format!("{i}\n")).unwrap_or_default();
                put(&root, &format!("{gp}/tg_pt_gp_id"), &id);
                let words = ["None", "Implicit", "Explicit", "Implicit and Explicit"];
                put(
                    &root,
                    &format!("{gp}/alua_access_type"),
                    &format!("{}\n", words[g.access_type as usize]),
                );
                for (file, value) in g.settings().into_iter().skip(1) {
                    put(&root, &format!("{gp}/{file}"), &format!("{value}\n"));
                }
                put(
                    &root,
                    &format!("{gp}/alua_access_state"),
                    &format!("{}\n", g.state.code()),
                );
                put(&root, &format!("{gp}/members"), "");
            }
        }
        for (iqn, tag, tpg) in state.tpgs() {
            let base = paths::tpg(iqn, tag);
            mkdir(&root, &format!("{}/fabric_statistics", paths::target(iqn)));
            put(
                &root,
                &format!("{base}/enable"),
                if tpg.enabled { "1\n" } else { "0\n" },
            );
            if let Some(rtpi) = tpg.rtpi {
                put(&root, &format!("{base}/rtpi"), &format!("{rtpi:#x}\n"));
            }
            for (k, v) in &tpg.attributes {
                put(&root, &format!("{base}/attrib/{k}"), &format!("{v}\n"));
            }
            put(&root, &format!("{base}/attrib/login_timeout"), "15\n");
            put(
                &root,
                &format!("{base}/param/HeaderDigest"),
                "CRC32C,None\n",
            );
            mkdir(&root, &format!("{base}/lun"));
            mkdir(&root, &format!("{base}/np"));
            mkdir(&root, &format!("{base}/acls"));
            for (index, lun) in &tpg.luns {
                let path = paths::tpg_lun(iqn, tag, *index);
                mkdir(&root, &format!("{path}/statistics"));
                if let Some(l) = &lun.link {
                    link(
                        &root,
                        &format!("{path}/{}", l.name),
                        &paths::device(&l.hba, &l.device),
                    );
                }
                put(
                    &root,
                    &format!("{path}/alua_tg_pt_gp"),
                    &format!(
                        "TG Port Alias: {}\nTG Port Group ID: 1\nTG Port Primary Access State: Active/Optimized\n",
                        lun.alua_group
                    ),
                );
            }
            for portal in &tpg.portals {
                put(
                    &root,
                    &format!("{}/iser", paths::portal(iqn, tag, portal)),
                    "0\n",
                );
            }
            for (initiator, acl) in &tpg.acls {
                let path = paths::acl(iqn, tag, initiator);
                put(
                    &root,
                    &format!("{path}/cmdsn_depth"),
                    &format!("{}\n", acl.cmdsn_depth),
                );
                put(&root, &format!("{path}/info"), "No active iSCSI Session\n");
                mkdir(&root, &format!("{path}/fabric_statistics"));
                for (file, value) in acl.auth.fields() {
                    let shown = value.clone().unwrap_or_default();
                    put(&root, &format!("{path}/auth/{file}"), &format!("{shown}\n"));
                }
                put(&root, &format!("{path}/auth/authenticate_target"), "0\n");
                for (k, v) in &acl.attributes {
                    put(&root, &format!("{path}/attrib/{k}"), &format!("{v}\n"));
                }
                for (index, mapped) in &acl.mapped_luns {
                    let mpath = paths::mapped_lun(iqn, tag, initiator, *index);
                    mkdir(&root, &format!("{mpath}/statistics"));
                    put(
                        &root,
                        &format!("{mpath}/write_protect"),
                        if mapped.write_protect { "1\n" } else { "0\n" },
                    );
                    if let Some(l) = &mapped.link {
                        link(
                            &root,
                            &format!("{mpath}/{}", l.name),
                            &paths::tpg_lun(iqn, tag, l.tpg_lun),
                        );
                    }
                }
            }
        }
        root
    }

    fn sample() -> LioState {
        let mut c = ArrayConfig::new("star-lab");
        c.luns.push(Lun {
            name: "data0".into(),
            id: 0,
            size_bytes: 1 << 30,
            serial: "0123456789abcdef0123456789abcdef".into(),
            partition: 2,
            partuuid: "6c7f4e1a-0000-4000-8000-000000000002".into(),
        });
        c.hosts.push(Host {
            name: "client1".into(),
            iqn: "iqn.2026-11.example.lab:client1".into(),
            luns: vec!["data0".into()],
            chap: Some(Chap {
                userid: "client1".into(),
                secret: "secret-123456".into(),
                mutual_userid: Some("array".into()),
                mutual_secret: Some("mutual-654321".into()),
            }),
        });
        c.hosts.push(Host {
            name: "client2".into(),
            iqn: "iqn.2026-11.example.lab:client2".into(),
            luns: vec![],
            chap: None,
        });
        let features = Features {
            tpg_rtpi: true,
            acl_authentication: true,
            discard: true,
        };
        desired_state(
            &c,
            1,
            "10.0.0.1:3260".parse().unwrap(),
            Some("[fd00::2]:3260".parse().unwrap()),
            AluaRoles {
                active: Some(1),
                peer_healthy: true,
            },
            &features,
            |lun| format!("/dev/disk/by-partuuid/{}", lun.partuuid),
        )
    }

    #[test]
    fn read_actual_parses_a_configfs_like_tree() {
        let dir = TempDir::new();
        let state = sample();
        let root = fake_configfs(&dir.0, &state);
        assert_eq!(read_actual(&root).unwrap(), state);
    }

    #[test]
    fn read_actual_skips_non_target_entries_and_keeps_foreign_objects() {
        let dir = TempDir::new();
        let mut state = sample();
        let root = fake_configfs(&dir.0, &state);
        // A target and a backstore STAR did not create are part of the actual state.
        put(
            &root,
            "iscsi/iqn.2003-01.org.linux-iscsi.other:x/tpgt_3/enable",
            "1\n",
        );
        mkdir(&root, "core/fileio_1");
        let actual = read_actual(&root).unwrap();
        assert!(!actual.targets.contains_key("discovery_auth"));
        assert!(!actual.targets.contains_key("cpus_allowed_list"));
        assert!(!actual.hbas.contains_key("alua"));
        let foreign = &actual.targets["iqn.2003-01.org.linux-iscsi.other:x"].tpgs[&3];
        assert!(foreign.enabled && foreign.luns.is_empty() && foreign.rtpi.is_none());
        assert!(actual.hbas["fileio_1"].devices.is_empty());
        state.targets.insert(
            "iqn.2003-01.org.linux-iscsi.other:x".into(),
            actual.targets["iqn.2003-01.org.linux-iscsi.other:x"].clone(),
        );
        state.hbas.insert("fileio_1".into(), Hba::default());
        assert_eq!(actual, state);
    }

    #[test]
    fn credentials_cleared_with_null_read_as_unset() {
        let dir = TempDir::new();
        let state = sample();
        let root = fake_configfs(&dir.0, &state);
        let acl =
            "iscsi/iqn.2026-11.org.star-array:star-lab/tpgt_1/acls/iqn.2026-11.example.lab:client1";
        put(&root, &format!("{acl}/auth/userid_mutual"), "NULL\n");
        put(&root, &format!("{acl}/auth/password_mutual"), "NULL\n");
        let actual = read_actual(&root).unwrap();
        let auth = &actual
            .tpg("iqn.2026-11.org.star-array:star-lab", 1)
            .unwrap()
            .acls["iqn.2026-11.example.lab:client1"]
            .auth;
        assert_eq!(auth.userid.as_deref(), Some("client1"));
        assert_eq!(auth.password.as_deref(), Some("secret-123456"));
        assert_eq!((&auth.userid_mutual, &auth.password_mutual), (&None, &None));
    }

    #[test]
    fn tg_port_alias_is_parsed() {
        assert_eq!(
            parse_tg_port_alias("TG Port Alias: ctrl_2\nTG Port Group ID: 2\n"),
            Some("ctrl_2".into())
        );
        assert_eq!(parse_tg_port_alias("ctrl_1"), Some("ctrl_1".into()));
        assert_eq!(parse_tg_port_alias(""), None);
        assert_eq!(parse_tg_port_alias("TG Port Alias: \n"), None);
    }

    #[test]
    fn links_outside_the_root_are_refused() {
        let dir = TempDir::new();
        let state = sample();
        let root = fake_configfs(&dir.0, &state);
        let lun = "iscsi/iqn.2026-11.org.star-array:star-lab/tpgt_1/lun/lun_0";
        fs::remove_file(root.join(format!("{lun}/data0"))).unwrap();
        symlink("/dev/null", root.join(format!("{lun}/data0"))).unwrap();
        let e = read_actual(&root).unwrap_err();
        assert!(e.path.ends_with("lun_0/data0"), "{e}");
    }

    #[test]
    fn apply_runs_ops_in_order() {
        let dir = TempDir::new();
        let root = dir.0.as_path();
        put(root, "core/iblock_0/data0/enable", "0\n");
        let ops = vec![
            Op::Mkdir("iscsi".into()),
            Op::Mkdir("iscsi/lun_0".into()),
            Op::Write {
                path: "core/iblock_0/data0/enable".into(),
                value: "1".into(),
            },
            Op::Symlink {
                link: "iscsi/lun_0/data0".into(),
                target: "core/iblock_0/data0".into(),
            },
        ];
        apply(root, &ops).unwrap();
        // One write, exactly the value: no newline, old content gone.
        assert_eq!(
            fs::read_to_string(root.join("core/iblock_0/data0/enable")).unwrap(),
            "1"
        );
        let tree = FsTree::new(root).unwrap();
        assert_eq!(
            tree.read_link("iscsi/lun_0/data0").unwrap(),
            "core/iblock_0/data0"
        );
        apply(
            root,
            &[
                Op::Unlink("iscsi/lun_0/data0".into()),
                Op::Rmdir("iscsi/lun_0".into()),
            ],
        )
        .unwrap();
        assert!(!root.join("iscsi/lun_0").exists());
    }

    #[test]
    fn apply_error_names_op_and_path() {
        let dir = TempDir::new();
        let root = dir.0.as_path();
        put(root, "core/iblock_0/data0/alua/ctrl_1/tg_pt_gp_id", "");
        let ops = vec![
            Op::Write {
                path: "core/iblock_0/data0/alua/ctrl_1/tg_pt_gp_id".into(),
                value: "1".into(),
            },
            // Missing file: never created by a write.
            Op::Write {
                path: "iscsi/iqn.a/tpgt_1/rtpi".into(),
                value: "1".into(),
            },
            Op::Mkdir("never".into()),
        ];
        let e = apply(root, &ops).unwrap_err();
        assert_eq!(e.op_index, 1);
        assert_eq!(e.op, ops[1]);
        assert_eq!(e.errno, 2);
        assert!(
            e.message.contains("iscsi/iqn.a/tpgt_1/rtpi"),
            "{}",
            e.message
        );
        assert!(e
            .to_string()
            .starts_with("configfs step 2 (echo -n 1 > iscsi/iqn.a/tpgt_1/rtpi) failed"));
        assert!(!root.join("never").exists());
        assert!(!root.join("iscsi/iqn.a/tpgt_1/rtpi").exists());

        let e = apply(root, &[Op::Rmdir("core/iblock_0".into())]).unwrap_err();
        assert_eq!(e.errno, 39);
        assert!(e.message.contains("still has children"));
    }

    #[test]
    fn features_come_from_existing_files() {
        let dir = TempDir::new();
        let root = dir.0.as_path();
        put(root, "iscsi/iqn.a/tpgt_1/rtpi", "0x1\n");
        put(
            root,
            "iscsi/iqn.a/tpgt_1/acls/iqn.h/attrib/nopin_timeout",
            "5\n",
        );
        let f = probe_features(root, true).unwrap();
        assert_eq!(
            f,
            Features {
                tpg_rtpi: true,
                acl_authentication: false,
                discard: true
            }
        );
        // Nothing to look at: a throwaway target is created and removed again. In an
        // ordinary directory it has no files, like a kernel without either feature.
        let dir = TempDir::new();
        let f = probe_features(&dir.0, false).unwrap();
        assert_eq!(f, Features::default());
        assert_eq!(fs::read_dir(dir.0.join("iscsi")).unwrap().count(), 0);
    }

    #[test]
    fn discard_is_read_from_the_disk_queue() {
        let dir = TempDir::new();
        let sys = dir.0.join("devices/virtio1/block/vdb");
        put(&sys, "queue/discard_max_bytes", "2147483136\n");
        mkdir(&sys, "vdb2");
        let class = dir.0.join("class");
        mkdir(&class, "");
        symlink(&sys, class.join("vdb")).unwrap();
        symlink(sys.join("vdb2"), class.join("vdb2")).unwrap();
        assert!(discard_supported_in(&class, "vdb2").unwrap());
        put(&sys, "queue/discard_max_bytes", "0\n");
        assert!(!discard_supported_in(&class, "vdb").unwrap());
    }
}
