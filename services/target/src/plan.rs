//! The smallest ordered list of configfs operations that turns one [`LioState`] into
//! another.
//!
//! [`plan`] compares a desired state with the actual one and emits [`Op`]s in an order
//! the kernel accepts (research notes §1 for creation, §4 for teardown) and that never
//! disturbs what does not change:
//!
//! 1. Disable the TPGs that must be disabled: those that go away (TPG.delete does it
//!    first: it drops the sessions cleanly), those that should be disabled, and those
//!    whose `rtpi` changes (the kernel refuses `rtpi` on an enabled TPG).
//! 2. Tear down, per TPG: mapped LUNs (unlink, rmdir), ACLs, TPG LUNs (unlink, rmdir),
//!    portals, the TPG; then targets; then backstores (custom ALUA groups, the device,
//!    the HBA). `default_tg_pt_gp` is the kernel's and is never removed.
//! 3. `dbroot`, which the kernel takes only while no device exists: a dbroot change with
//!    devices present replaces every backstore (they are removed in step 2 and re-created
//!    in step 4).
//! 4. Backstores: mkdir, `udev_path`, `control` (udev_path, readonly), `enable`, `wwn/*`,
//!    attributes, ALUA groups (`tg_pt_gp_id` first, then type and support bits, then
//!    the state).
//! 5. Targets and TPGs: mkdir, attributes, parameters, `rtpi` (the TPG is disabled here).
//! 6. TPG LUNs: mkdir, symlink to the backstore, `alua_tg_pt_gp`. All TPGs' LUNs come
//!    before any ACL, so a host never sees a LUN whose ports are not in their groups yet.
//! 7. Portals. 8. ACLs: mkdir, `attrib/authentication`, CHAP, `cmdsn_depth`, attributes,
//!    mapped LUNs. 9. `enable` last.
//!
//! The kernel's rules shape what a change costs:
//!
//! - `wwn/*` and the [`EXPORT_SENSITIVE_ATTRIBUTES`] cannot change while a device is
//!   linked into a TPG. Such a change unexports that one device (its mapped LUNs and TPG
//!   LUNs are removed in step 2), writes the change in step 4 and re-exports it in steps 6
//!   and 8. Other LUNs and their sessions are untouched.
//! - `control` (udev_path, readonly) is fixed once the device is enabled, and `enable`
//!   cannot be undone: such a change replaces the backstore (unexport, rmdir, create,
//!   re-export), again for that device only.
//! - An ALUA state change is one write to `alua_access_state` per group and device, and a
//!   group leaving Active/Optimized is written before the group entering it, so no moment
//!   shows two Active/Optimized groups. A promotion or demotion is nothing but those
//!   writes.
//! - A TPG is only disabled when its `rtpi` changes or it should be disabled: adding or
//!   removing LUNs, hosts or portals never drops other hosts' sessions.

use crate::model::{
    is_secret, paths, AluaState, Backstore, LioState, MappedLun, TpgLun, ACL_ATTRIBUTES,
    DEFAULT_TG_PT_GP, DEVICE_ATTRIBUTES, EXPORT_SENSITIVE_ATTRIBUTES, TPG_ATTRIBUTES,
    TPG_PARAMETERS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One configfs operation. Paths are relative to the configfs target root
/// (`/sys/kernel/config/target`).
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Mkdir(String),
    Rmdir(String),
    /// One `write()` of `value` on a fresh open of `path`. Values carry no trailing
    /// newline: the kernel's numeric parsers accept either, and CHAP secrets must not
    /// have one (it would become part of the secret).
    Write {
        path: String,
        value: String,
    },
    /// `link` → `target` (the object linked to, also relative to the root).
    Symlink {
        link: String,
        target: String,
    },
    Unlink(String),
}

impl Op {
    /// The path the operation changes (for a symlink, the link).
    pub fn path(&self) -> &str {
        match self {
            Op::Mkdir(p) | Op::Rmdir(p) | Op::Unlink(p) => p,
            Op::Write { path, .. } => path,
            Op::Symlink { link, .. } => link,
        }
    }
}

/// A shell line that does the same thing from within the configfs target root, so a
/// printed plan (`--dry-run`) can be read, and replayed, by a person. CHAP secrets are
/// masked.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Mkdir(p) => write!(f, "mkdir {}", shell_word(p)),
            Op::Rmdir(p) => write!(f, "rmdir {}", shell_word(p)),
            Op::Write { path, value } => {
                let value = if is_secret(path) {
                    "'********'".to_string()
                } else {
                    shell_word(value)
                };
                write!(f, "echo -n {value} > {}", shell_word(path))
            }
            Op::Symlink { link, target } => {
                write!(f, "ln -s {} {}", shell_word(target), shell_word(link))
            }
            Op::Unlink(p) => write!(f, "rm {}", shell_word(p)),
        }
    }
}

/// Same as `Display`, so that test failures and logs never show a secret either.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=,@+%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The operations that turn `actual` into `desired`; empty when they are equal.
pub fn plan(desired: &LioState, actual: &LioState) -> Vec<Op> {
    let mut p = Planner::new(desired, actual);
    p.disable_tpgs();
    p.teardown();
    p.dbroot();
    p.backstores();
    p.tpgs();
    p.tpg_luns();
    p.portals();
    p.acls();
    p.enable_tpgs();
    p.ops
}

/// What happens to a backstore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Create,
    /// Only live-changeable settings differ (attributes, ALUA).
    Keep,
    /// Identity or an export-sensitive attribute differs: unexport, change, re-export.
    Reidentify,
    /// `control` differs or the device is not enabled: remove and create again.
    Replace,
    Remove,
}

type DevKey<'a> = (&'a str, &'a str);
type LunKey<'a> = (&'a str, u16, u16);

struct Planner<'a> {
    d: &'a LioState,
    a: &'a LioState,
    ops: Vec<Op>,
    fates: BTreeMap<DevKey<'a>, Fate>,
    /// TPG LUNs of the actual state that are removed (and created again if desired).
    dropped_luns: BTreeSet<LunKey<'a>>,
    /// ALUA groups (hba, device, group) that are removed and created again because their
    /// ID changes (the kernel sets an ID only once); their member LUNs must be put back.
    regrouped: BTreeSet<(&'a str, &'a str, &'a str)>,
    /// TPGs this plan disables in step 1.
    disabled: BTreeSet<(&'a str, u16)>,
}

impl<'a> Planner<'a> {
    fn new(d: &'a LioState, a: &'a LioState) -> Planner<'a> {
        let mut p = Planner {
            d,
            a,
            ops: Vec::new(),
            fates: BTreeMap::new(),
            dropped_luns: BTreeSet::new(),
            regrouped: BTreeSet::new(),
            disabled: BTreeSet::new(),
        };
        p.classify();
        p
    }

    fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    fn write(&mut self, path: String, value: impl Into<String>) {
        self.ops.push(Op::Write {
            path,
            value: value.into(),
        });
    }

    fn fate(&self, hba: &str, name: &str) -> Fate {
        self.fates.get(&(hba, name)).copied().unwrap_or(Fate::Keep)
    }

    /// Devices whose TPG LUNs must go before the change.
    fn unexported(&self, hba: &str, name: &str) -> bool {
        matches!(
            self.fates.get(&(hba, name)),
            Some(Fate::Reidentify | Fate::Replace | Fate::Remove)
        )
    }

    fn classify(&mut self) {
        let (d, a) = (self.d, self.a);
        let replace_all = d.dbroot != a.dbroot && a.devices().next().is_some();
        for (hba, name, ad) in a.devices() {
            let fate = match d.device(hba, name) {
                None => Fate::Remove,
                Some(dd) => {
                    if replace_all
                        || dd.udev_path != ad.udev_path
                        || dd.readonly != ad.readonly
                        || (dd.enabled && !ad.enabled)
                    {
                        Fate::Replace
                    } else if !wwn_changes(dd, ad).is_empty()
                        || changed(&dd.attributes, Some(&ad.attributes), DEVICE_ATTRIBUTES)
                            .iter()
                            .any(|(k, _)| EXPORT_SENSITIVE_ATTRIBUTES.contains(k))
                    {
                        Fate::Reidentify
                    } else {
                        Fate::Keep
                    }
                }
            };
            self.fates.insert((hba, name), fate);
        }
        for (hba, name, _) in d.devices() {
            self.fates.entry((hba, name)).or_insert(Fate::Create);
        }

        for (iqn, tag, at) in a.tpgs() {
            let dt = d.tpg(iqn, tag);
            for (index, al) in &at.luns {
                let drop = match dt.and_then(|t| t.luns.get(index)) {
                    None => true,
                    Some(dl) => {
                        dl.link != al.link
                            || al
                                .link
                                .as_ref()
                                .is_some_and(|l| self.unexported(&l.hba, &l.device))
                    }
                };
                if drop {
                    self.dropped_luns.insert((iqn, tag, *index));
                }
            }
        }

        for (hba, name, dd) in d.devices() {
            let Some(ad) = a.device(hba, name) else {
                continue;
            };
            if self.fate(hba, name) == Fate::Replace {
                continue;
            }
            for (group, dg) in &dd.alua_groups {
                if let Some(ag) = ad.alua_groups.get(group) {
                    if dg.id.is_some() && ag.id.is_some() && dg.id != ag.id {
                        self.regrouped.insert((hba, name, group.as_str()));
                    }
                }
            }
        }
    }

    /// Whether a mapped LUN of the actual state goes away (to come back if desired).
    fn mapped_dropped(&self, iqn: &str, tag: u16, dm: Option<&MappedLun>, am: &MappedLun) -> bool {
        match dm {
            None => true,
            Some(dm) => {
                dm.link != am.link
                    || am
                        .link
                        .as_ref()
                        .is_some_and(|l| self.dropped_luns.contains(&(iqn, tag, l.tpg_lun)))
            }
        }
    }

    /// Step 1.
    fn disable_tpgs(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, tag, at) in a.tpgs() {
            if !at.enabled {
                continue;
            }
            let disable = match d.tpg(iqn, tag) {
                None => true,
                Some(dt) => !dt.enabled || (dt.rtpi.is_some() && dt.rtpi != at.rtpi),
            };
            if disable {
                self.write(format!("{}/enable", paths::tpg(iqn, tag)), "0");
                self.disabled.insert((iqn, tag));
            }
        }
    }

    /// Step 2, in the order of research notes §4.
    fn teardown(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, atarget) in &a.targets {
            let dtarget = d.targets.get(iqn);
            for (tag, at) in &atarget.tpgs {
                let tag = *tag;
                let dt = dtarget.and_then(|t| t.tpgs.get(&tag));
                for (initiator, aacl) in &at.acls {
                    let dacl = dt.and_then(|t| t.acls.get(initiator));
                    for (index, am) in &aacl.mapped_luns {
                        let dm = dacl.and_then(|x| x.mapped_luns.get(index));
                        if self.mapped_dropped(iqn, tag, dm, am) {
                            let path = paths::mapped_lun(iqn, tag, initiator, *index);
                            if let Some(link) = &am.link {
                                self.push(Op::Unlink(format!("{path}/{}", link.name)));
                            }
                            self.push(Op::Rmdir(path));
                        }
                    }
                    if dacl.is_none() {
                        self.push(Op::Rmdir(paths::acl(iqn, tag, initiator)));
                    }
                }
                for (index, al) in &at.luns {
                    if self.dropped_luns.contains(&(iqn.as_str(), tag, *index)) {
                        let path = paths::tpg_lun(iqn, tag, *index);
                        if let Some(link) = &al.link {
                            self.push(Op::Unlink(format!("{path}/{}", link.name)));
                        }
                        self.push(Op::Rmdir(path));
                    }
                }
                for portal in &at.portals {
                    if !dt.is_some_and(|t| t.portals.contains(portal)) {
                        self.push(Op::Rmdir(paths::portal(iqn, tag, portal)));
                    }
                }
                if dt.is_none() {
                    self.push(Op::Rmdir(paths::tpg(iqn, tag)));
                }
            }
            if dtarget.is_none() {
                self.push(Op::Rmdir(paths::target(iqn)));
            }
        }
        for (hba, ah) in &a.hbas {
            for (name, ad) in &ah.devices {
                if matches!(self.fate(hba, name), Fate::Remove | Fate::Replace) {
                    for group in ad.alua_groups.keys() {
                        self.push(Op::Rmdir(paths::alua_group(hba, name, group)));
                    }
                    self.push(Op::Rmdir(paths::device(hba, name)));
                }
            }
            if !d.hbas.contains_key(hba) {
                self.push(Op::Rmdir(paths::hba(hba)));
            }
        }
    }

    /// Step 3: by now no device is left if any was present (see `classify`).
    fn dbroot(&mut self) {
        if self.d.dbroot != self.a.dbroot {
            self.write("dbroot".to_string(), self.d.dbroot.clone());
        }
    }

    /// Step 4.
    fn backstores(&mut self) {
        let (d, a) = (self.d, self.a);
        for (hba, dh) in &d.hbas {
            if !a.hbas.contains_key(hba) {
                self.push(Op::Mkdir(paths::hba(hba)));
            }
            for (name, dd) in &dh.devices {
                match self.fate(hba, name) {
                    Fate::Create | Fate::Replace => self.create_device(hba, name, dd),
                    Fate::Keep | Fate::Reidentify => {
                        let ad = a.device(hba, name).expect("kept device exists");
                        self.update_device(hba, name, dd, ad);
                    }
                    Fate::Remove => unreachable!("desired devices are not removed"),
                }
            }
        }
    }

    fn create_device(&mut self, hba: &'a str, name: &'a str, dd: &'a Backstore) {
        let dev = paths::device(hba, name);
        self.push(Op::Mkdir(dev.clone()));
        if !dd.udev_path.is_empty() {
            // The `udev_path` file is informational (what `targetcli` shows); `control`
            // is what the kernel opens at `enable`.
            self.write(format!("{dev}/udev_path"), dd.udev_path.clone());
            self.write(
                format!("{dev}/control"),
                format!("udev_path={}", dd.udev_path),
            );
        }
        let readonly = if dd.readonly { "1" } else { "0" };
        self.write(format!("{dev}/control"), format!("readonly={readonly}"));
        if dd.enabled {
            self.write(format!("{dev}/enable"), "1");
        }
        // Identity right after enable and before anything can link the device.
        for (file, value) in dd.wwn.fields() {
            if !value.is_empty() {
                self.write(format!("{dev}/wwn/{file}"), value);
            }
        }
        for (key, value) in changed(&dd.attributes, None, DEVICE_ATTRIBUTES) {
            self.write(format!("{dev}/attrib/{key}"), value);
        }
        self.alua(hba, name, dd, None);
    }

    fn update_device(&mut self, hba: &'a str, name: &'a str, dd: &'a Backstore, ad: &'a Backstore) {
        let dev = paths::device(hba, name);
        // Only non-empty for a Reidentify device, which step 2 has unexported.
        for (file, value) in wwn_changes(dd, ad) {
            self.write(format!("{dev}/wwn/{file}"), value);
        }
        for (key, value) in changed(&dd.attributes, Some(&ad.attributes), DEVICE_ATTRIBUTES) {
            self.write(format!("{dev}/attrib/{key}"), value);
        }
        self.alua(hba, name, dd, Some(ad));
    }

    /// The ALUA groups of one device, `ad` being its actual state if it is kept.
    fn alua(&mut self, hba: &'a str, name: &'a str, dd: &'a Backstore, ad: Option<&'a Backstore>) {
        const AO: AluaState = AluaState::ActiveOptimized;
        // (group, desired state, actual state if the group is kept, the group has a valid
        // ID and can take a state write before anything else)
        let mut states: Vec<(&str, AluaState, Option<AluaState>, bool)> = Vec::new();
        let actual_default = ad.map(|x| x.default_group_state);
        if actual_default != Some(dd.default_group_state) {
            states.push((
                DEFAULT_TG_PT_GP,
                dd.default_group_state,
                actual_default,
                true,
            ));
        }
        for (group, dg) in &dd.alua_groups {
            let kept = ad
                .and_then(|x| x.alua_groups.get(group))
                .filter(|_| !self.regrouped.contains(&(hba, name, group.as_str())));
            let actual = kept.map(|g| g.state);
            if actual != Some(dg.state) {
                states.push((
                    group,
                    dg.state,
                    actual,
                    kept.is_some_and(|g| g.id.is_some()),
                ));
            }
        }
        let base = paths::device(hba, name);
        let state_path = |group: &str| format!("{base}/alua/{group}/alua_access_state");

        // Groups leaving Active/Optimized first, before any other group can enter it and
        // before obsolete groups go (their member LUNs fall back to default_tg_pt_gp).
        let leaving = |(_, to, from, ready): &(&str, AluaState, Option<AluaState>, bool)| {
            *ready && *from == Some(AO) && *to != AO
        };
        for entry in states.iter().filter(|e| leaving(e)) {
            self.write(state_path(entry.0), entry.1.code().to_string());
        }
        if let Some(ad) = ad {
            for group in ad.alua_groups.keys() {
                let obsolete = !dd.alua_groups.contains_key(group);
                if obsolete || self.regrouped.contains(&(hba, name, group.as_str())) {
                    self.push(Op::Rmdir(paths::alua_group(hba, name, group)));
                }
            }
        }
        for (group, dg) in &dd.alua_groups {
            let path = paths::alua_group(hba, name, group);
            let kept = ad
                .and_then(|x| x.alua_groups.get(group))
                .filter(|_| !self.regrouped.contains(&(hba, name, group.as_str())));
            match kept {
                None => {
                    self.push(Op::Mkdir(path.clone()));
                    // The ID first: the kernel refuses every other setting without one.
                    if let Some(id) = dg.id {
                        self.write(format!("{path}/tg_pt_gp_id"), id.to_string());
                    }
                    for (file, value) in dg.settings() {
                        self.write(format!("{path}/{file}"), value);
                    }
                }
                Some(ag) => {
                    if ag.id.is_none() {
                        if let Some(id) = dg.id {
                            self.write(format!("{path}/tg_pt_gp_id"), id.to_string());
                        }
                    }
                    for ((file, value), (_, actual)) in dg.settings().into_iter().zip(ag.settings())
                    {
                        if value != actual {
                            self.write(format!("{path}/{file}"), value);
                        }
                    }
                }
            }
        }
        // Then every other state change, the group entering Active/Optimized last.
        for entry in states.iter().filter(|e| !leaving(e) && e.1 != AO) {
            self.write(state_path(entry.0), entry.1.code().to_string());
        }
        for entry in states.iter().filter(|e| !leaving(e) && e.1 == AO) {
            self.write(state_path(entry.0), entry.1.code().to_string());
        }
    }

    /// Step 5.
    fn tpgs(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, dtarget) in &d.targets {
            let atarget = a.targets.get(iqn);
            if atarget.is_none() {
                self.push(Op::Mkdir(paths::target(iqn)));
            }
            for (tag, dt) in &dtarget.tpgs {
                let at = atarget.and_then(|t| t.tpgs.get(tag));
                let tpg = paths::tpg(iqn, *tag);
                if at.is_none() {
                    self.push(Op::Mkdir(tpg.clone()));
                }
                for (key, value) in
                    changed(&dt.attributes, at.map(|t| &t.attributes), TPG_ATTRIBUTES)
                {
                    self.write(format!("{tpg}/attrib/{key}"), value);
                }
                for (key, value) in changed(&dt.params, at.map(|t| &t.params), TPG_PARAMETERS) {
                    self.write(format!("{tpg}/param/{key}"), value);
                }
                // The TPG is disabled here: new, or disabled in step 1 for this very write.
                if let Some(rtpi) = dt.rtpi {
                    if at.map(|t| t.rtpi) != Some(Some(rtpi)) {
                        self.write(format!("{tpg}/rtpi"), rtpi.to_string());
                    }
                }
            }
        }
    }

    /// Step 6.
    fn tpg_luns(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, tag, dt) in d.tpgs() {
            let at = a.tpg(iqn, tag);
            for (index, dl) in &dt.luns {
                let al = at.and_then(|t| t.luns.get(index));
                let path = paths::tpg_lun(iqn, tag, *index);
                let fresh = al.is_none() || self.dropped_luns.contains(&(iqn, tag, *index));
                if fresh {
                    self.push(Op::Mkdir(path.clone()));
                    if let Some(link) = &dl.link {
                        self.push(Op::Symlink {
                            link: format!("{path}/{}", link.name),
                            target: paths::device(&link.hba, &link.device),
                        });
                    }
                    if !dl.alua_group.is_empty() {
                        self.write(format!("{path}/alua_tg_pt_gp"), dl.alua_group.clone());
                    }
                } else if let Some(al) = al {
                    if !dl.alua_group.is_empty()
                        && (dl.alua_group != al.alua_group || self.group_recreated(al))
                    {
                        self.write(format!("{path}/alua_tg_pt_gp"), dl.alua_group.clone());
                    }
                }
            }
        }
    }

    /// Whether the group a kept TPG LUN is in was removed and created again (the kernel
    /// moved the LUN to `default_tg_pt_gp` meanwhile).
    fn group_recreated(&self, al: &TpgLun) -> bool {
        al.link.as_ref().is_some_and(|l| {
            self.regrouped
                .contains(&(l.hba.as_str(), l.device.as_str(), al.alua_group.as_str()))
        })
    }

    /// Step 7.
    fn portals(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, tag, dt) in d.tpgs() {
            let at = a.tpg(iqn, tag);
            for portal in &dt.portals {
                if !at.is_some_and(|t| t.portals.contains(portal)) {
                    self.push(Op::Mkdir(paths::portal(iqn, tag, portal)));
                }
            }
        }
    }

    /// Step 8.
    fn acls(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, tag, dt) in d.tpgs() {
            let at = a.tpg(iqn, tag);
            for (initiator, dacl) in &dt.acls {
                let aacl = at.and_then(|t| t.acls.get(initiator));
                let path = paths::acl(iqn, tag, initiator);
                if aacl.is_none() {
                    self.push(Op::Mkdir(path.clone()));
                }
                let attributes = changed(
                    &dacl.attributes,
                    aacl.map(|x| &x.attributes),
                    ACL_ATTRIBUTES,
                );
                // Whether CHAP is required, before the credentials and before any LUN.
                for (key, value) in attributes.iter().filter(|(k, _)| *k == "authentication") {
                    self.write(format!("{path}/attrib/{key}"), *value);
                }
                let actual_auth = aacl.map(|x| x.auth.fields());
                for (i, (file, value)) in dacl.auth.fields().into_iter().enumerate() {
                    let actual = actual_auth.map(|f| f[i].1);
                    if actual == Some(value) || (actual.is_none() && value.is_none()) {
                        continue;
                    }
                    // "NULL" is how the kernel clears a credential.
                    let value = value.clone().unwrap_or_else(|| "NULL".to_string());
                    self.write(format!("{path}/auth/{file}"), value);
                }
                // A change on a live ACL makes the kernel reinstate that host's session:
                // written only when it differs.
                if aacl.map(|x| x.cmdsn_depth) != Some(dacl.cmdsn_depth) {
                    self.write(format!("{path}/cmdsn_depth"), dacl.cmdsn_depth.to_string());
                }
                for (key, value) in attributes.iter().filter(|(k, _)| *k != "authentication") {
                    self.write(format!("{path}/attrib/{key}"), *value);
                }
                for (index, dm) in &dacl.mapped_luns {
                    let am = aacl.and_then(|x| x.mapped_luns.get(index));
                    let mpath = paths::mapped_lun(iqn, tag, initiator, *index);
                    let fresh = match am {
                        None => true,
                        Some(am) => self.mapped_dropped(iqn, tag, Some(dm), am),
                    };
                    let write_protect = if dm.write_protect { "1" } else { "0" };
                    if fresh {
                        self.push(Op::Mkdir(mpath.clone()));
                        if let Some(link) = &dm.link {
                            self.push(Op::Symlink {
                                link: format!("{mpath}/{}", link.name),
                                target: paths::tpg_lun(iqn, tag, link.tpg_lun),
                            });
                        }
                        self.write(format!("{mpath}/write_protect"), write_protect);
                    } else if am.is_some_and(|am| am.write_protect != dm.write_protect) {
                        self.write(format!("{mpath}/write_protect"), write_protect);
                    }
                }
            }
        }
    }

    /// Step 9.
    fn enable_tpgs(&mut self) {
        let (d, a) = (self.d, self.a);
        for (iqn, tag, dt) in d.tpgs() {
            if !dt.enabled {
                continue;
            }
            let was_enabled = a.tpg(iqn, tag).is_some_and(|t| t.enabled);
            if !was_enabled || self.disabled.contains(&(iqn, tag)) {
                self.write(format!("{}/enable", paths::tpg(iqn, tag)), "1");
            }
        }
    }
}

/// `wwn/*` files whose desired (non-empty) value differs from the actual one.
fn wwn_changes<'x>(dd: &'x Backstore, ad: &'x Backstore) -> Vec<(&'static str, &'x str)> {
    dd.wwn
        .fields()
        .into_iter()
        .zip(ad.wwn.fields())
        .filter(|((_, want), (_, have))| !want.is_empty() && want != have)
        .map(|((file, want), _)| (file, want))
        .collect()
}

/// Desired attributes whose value is not the actual one, the keys named in `order` first
/// (in that order), then the others by name.
fn changed<'x>(
    desired: &'x BTreeMap<String, String>,
    actual: Option<&BTreeMap<String, String>>,
    order: &[&str],
) -> Vec<(&'x str, &'x str)> {
    let mut keys: Vec<&'x String> = order
        .iter()
        .filter_map(|k| desired.get_key_value(*k).map(|(k, _)| k))
        .collect();
    keys.extend(desired.keys().filter(|k| !order.contains(&k.as_str())));
    keys.into_iter()
        .filter(|k| actual.and_then(|a| a.get(*k)) != Some(&desired[*k]))
        .map(|k| (k.as_str(), desired[k].as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired_state, AluaRoles};
    use crate::model::{Features, HBA};
    use star_core::array_config::{ArrayConfig, Chap, Host, Lun};
    use std::net::SocketAddr;

    const IQN: &str = "iqn.2026-11.org.star-array:star-lab";
    const FEATURES: Features = Features {
        tpg_rtpi: true,
        acl_authentication: true,
        discard: true,
    };

    fn lun(name: &str, id: u16) -> Lun {
        Lun {
            name: name.into(),
            id,
            size_bytes: 1 << 30,
            serial: format!("{:032x}", id + 1),
            partition: u32::from(id) + 2,
            partuuid: format!("6c7f4e1a-0000-4000-8000-{:012}", id),
        }
    }

    fn host(name: &str, luns: &[&str], chap: bool) -> Host {
        Host {
            name: name.into(),
            iqn: format!("iqn.2026-11.example.lab:{name}"),
            luns: luns.iter().map(|s| s.to_string()).collect(),
            chap: chap.then(|| Chap {
                userid: name.into(),
                secret: "secret-123456".into(),
                mutual_userid: None,
                mutual_secret: None,
            }),
        }
    }

    fn config() -> ArrayConfig {
        let mut c = ArrayConfig::new("star-lab");
        c.luns = vec![lun("data0", 0), lun("data1", 1)];
        c.hosts = vec![
            host("client1", &["data0", "data1"], true),
            host("client2", &["data1"], false),
        ];
        c
    }

    fn roles(active: Option<u8>) -> AluaRoles {
        AluaRoles {
            active,
            peer_healthy: true,
        }
    }

    fn state_with(
        config: &ArrayConfig,
        node: u8,
        roles: AluaRoles,
        features: &Features,
    ) -> LioState {
        let a: SocketAddr = "10.0.0.1:3260".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:3260".parse().unwrap();
        let (local, peer) = if node == 1 { (a, b) } else { (b, a) };
        desired_state(config, node, local, Some(peer), roles, features, |l| {
            format!("/dev/disk/by-partuuid/{}", l.partuuid)
        })
    }

    fn state(config: &ArrayConfig) -> LioState {
        state_with(config, 1, roles(Some(1)), &FEATURES)
    }

    fn position(ops: &[Op], pred: impl Fn(&Op) -> bool) -> usize {
        ops.iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no such op in {ops:#?}"))
    }

    #[test]
    fn plan_of_same_state_is_empty() {
        let s = state(&config());
        assert_eq!(plan(&s, &s), vec![]);
        let empty = LioState::default();
        assert_eq!(plan(&empty, &empty), vec![]);
    }

    #[test]
    fn fresh_plan_follows_the_recipe_order() {
        let ops = plan(&state(&config()), &LioState::default());
        let at = |s: &str| position(&ops, |op| op.to_string() == s);
        let dev = "core/iblock_0/data0";
        let grp = format!("{dev}/alua/ctrl_1");
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        let acl = format!("{tpg}/acls/iqn.2026-11.example.lab:client1");
        let order = [
            at("mkdir core/iblock_0"),
            at(&format!("mkdir {dev}")),
            at(&format!(
                "echo -n udev_path=/dev/disk/by-partuuid/6c7f4e1a-0000-4000-8000-000000000000 > {dev}/control"
            )),
            at(&format!("echo -n readonly=0 > {dev}/control")),
            at(&format!("echo -n 1 > {dev}/enable")),
            at(&format!("echo -n {:032x} > {dev}/wwn/vpd_unit_serial", 1)),
            at(&format!("echo -n STAR > {dev}/wwn/vendor_id")),
            at(&format!("echo -n 1 > {dev}/attrib/emulate_tpu")),
            at(&format!("mkdir {grp}")),
            at(&format!("echo -n 1 > {grp}/tg_pt_gp_id")),
            at(&format!("echo -n 1 > {grp}/alua_access_type")),
            at(&format!("echo -n 0 > {grp}/alua_support_active_nonoptimized")),
            at(&format!("echo -n 0 > {grp}/alua_access_state")),
            at(&format!("mkdir iscsi/{IQN}")),
            at(&format!("mkdir {tpg}")),
            at(&format!("echo -n 0 > {tpg}/attrib/generate_node_acls")),
            at(&format!("echo -n 0 > {tpg}/attrib/cache_dynamic_acls")),
            at(&format!("echo -n 1 > {tpg}/rtpi")),
            at(&format!("mkdir {tpg}/lun/lun_0")),
            at(&format!("ln -s {dev} {tpg}/lun/lun_0/data0")),
            at(&format!("echo -n ctrl_1 > {tpg}/lun/lun_0/alua_tg_pt_gp")),
            at(&format!("mkdir iscsi/{IQN}/tpgt_2/lun/lun_1")),
            at(&format!("mkdir {tpg}/np/10.0.0.1:3260")),
            at(&format!("mkdir {acl}")),
            at(&format!("echo -n 1 > {acl}/attrib/authentication")),
            at(&format!("echo -n client1 > {acl}/auth/userid")),
            at(&format!("echo -n '********' > {acl}/auth/password")),
            at(&format!("echo -n 64 > {acl}/cmdsn_depth")),
            at(&format!("echo -n 5 > {acl}/attrib/nopin_timeout")),
            at(&format!("mkdir {acl}/lun_0")),
            at(&format!("ln -s {tpg}/lun/lun_0 {acl}/lun_0/data0")),
            at(&format!("echo -n 0 > {acl}/lun_0/write_protect")),
            at(&format!("echo -n 1 > {tpg}/enable")),
        ];
        for pair in order.windows(2) {
            assert!(
                pair[0] < pair[1],
                "out of order: {:?} then {:?}",
                ops[pair[0]],
                ops[pair[1]]
            );
        }
        // The secret is written as is, without a newline; only printing masks it.
        assert!(ops.contains(&Op::Write {
            path: format!("{acl}/auth/password"),
            value: "secret-123456".into()
        }));
        // The remote TPG is never enabled, nor is `enable` written for it.
        assert!(!ops
            .iter()
            .any(|op| op.path() == format!("iscsi/{IQN}/tpgt_2/enable")));
        // Never a Transitioning or Offline write.
        assert!(!ops.iter().any(|op| matches!(op, Op::Write { path, value }
            if path.ends_with("alua_access_state") && (value == "14" || value == "15"))));
    }

    /// Whether every op (and symlink target) is under one of `prefixes`.
    fn touches_only(ops: &[Op], prefixes: &[String]) -> bool {
        let under = |p: &str| {
            prefixes
                .iter()
                .any(|x| p == x || p.starts_with(&format!("{x}/")))
        };
        ops.iter().all(|op| {
            under(op.path())
                && match op {
                    Op::Symlink { target, .. } => under(target),
                    _ => true,
                }
        })
    }

    #[test]
    fn adding_a_lun_touches_only_that_lun() {
        let before = config();
        let mut after = before.clone();
        after.luns.push(lun("data7", 7));
        after.hosts[0].luns.push("data7".into());
        let ops = plan(&state(&after), &state(&before));
        assert!(!ops.is_empty());
        let mut prefixes = vec!["core/iblock_0/data7".to_string()];
        for tag in [1, 2] {
            prefixes.push(format!("iscsi/{IQN}/tpgt_{tag}/lun/lun_7"));
            prefixes.push(format!(
                "iscsi/{IQN}/tpgt_{tag}/acls/iqn.2026-11.example.lab:client1/lun_7"
            ));
        }
        assert!(touches_only(&ops, &prefixes), "{ops:#?}");
        assert!(!ops
            .iter()
            .any(|op| op.path().ends_with("/enable") && op.path().contains("tpgt")));
    }

    #[test]
    fn removing_a_host_touches_only_its_acls() {
        let before = config();
        let mut after = before.clone();
        after.hosts.remove(1);
        let ops = plan(&state(&after), &state(&before));
        let prefixes: Vec<String> = [1, 2]
            .iter()
            .map(|tag| format!("iscsi/{IQN}/tpgt_{tag}/acls/iqn.2026-11.example.lab:client2"))
            .collect();
        assert!(touches_only(&ops, &prefixes), "{ops:#?}");
        assert_eq!(
            ops.len(),
            2 * 3,
            "unlink, rmdir mapped LUN, rmdir ACL per TPG"
        );
        // On an older kernel too, as long as the CHAP mix does not change.
        let old = Features::default();
        let mut before = config();
        before.hosts[1].chap = before.hosts[0].chap.clone();
        let mut after = before.clone();
        after.hosts.remove(1);
        let ops = plan(
            &state_with(&after, 1, roles(Some(1)), &old),
            &state_with(&before, 1, roles(Some(1)), &old),
        );
        assert!(touches_only(&ops, &prefixes), "{ops:#?}");
    }

    #[test]
    fn full_teardown_order() {
        let s = state(&config());
        let ops = plan(&LioState::default(), &s);
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        let acl = format!("{tpg}/acls/iqn.2026-11.example.lab:client1");
        let at = |s: &str| position(&ops, |op| op.to_string() == s);
        assert_eq!(ops[0].to_string(), format!("echo -n 0 > {tpg}/enable"));
        let order = [
            at(&format!("rm {acl}/lun_0/data0")),
            at(&format!("rmdir {acl}/lun_0")),
            at(&format!("rmdir {acl}")),
            at(&format!("rm {tpg}/lun/lun_0/data0")),
            at(&format!("rmdir {tpg}/lun/lun_0")),
            at(&format!("rmdir {tpg}/np/10.0.0.1:3260")),
            at(&format!("rmdir {tpg}")),
            at(&format!("rmdir iscsi/{IQN}/tpgt_2")),
            at(&format!("rmdir iscsi/{IQN}")),
            at("rmdir core/iblock_0/data0/alua/ctrl_1"),
            at("rmdir core/iblock_0/data0"),
            at("rmdir core/iblock_0"),
        ];
        for pair in order.windows(2) {
            assert!(
                pair[0] < pair[1],
                "out of order: {:?} then {:?}",
                ops[pair[0]],
                ops[pair[1]]
            );
        }
        assert!(!ops.iter().any(|op| op.path().contains(DEFAULT_TG_PT_GP)));
        // Only the enabled TPG needed disabling.
        assert_eq!(
            ops.iter()
                .filter(|op| op.path().ends_with("/enable"))
                .count(),
            1
        );
    }

    fn state_writes(ops: &[Op]) -> Vec<(String, String)> {
        ops.iter()
            .map(|op| match op {
                Op::Write { path, value } if path.ends_with("/alua_access_state") => {
                    let group = path.rsplit('/').nth(1).unwrap().to_string();
                    let dev = path.split('/').nth(2).unwrap();
                    (format!("{dev}/{group}"), value.clone())
                }
                other => panic!("not a state write: {other}"),
            })
            .collect()
    }

    #[test]
    fn promote_and_demote_are_single_state_writes() {
        let c = config();
        for node in [1, 2] {
            let standby = state_with(&c, node, roles(None), &FEATURES);
            let one = state_with(&c, node, roles(Some(1)), &FEATURES);
            let two = state_with(&c, node, roles(Some(2)), &FEATURES);
            let dead = state_with(
                &c,
                node,
                AluaRoles {
                    active: Some(node),
                    peer_healthy: false,
                },
                &FEATURES,
            );
            // Promote from both Standby: one write per device.
            let ops = plan(&one, &standby);
            assert_eq!(
                state_writes(&ops),
                [
                    ("data0/ctrl_1".into(), "0".into()),
                    ("data1/ctrl_1".into(), "0".into())
                ]
            );
            // Switchover: the group leaving Active/Optimized first, per device.
            let ops = plan(&two, &one);
            assert_eq!(
                state_writes(&ops),
                [
                    ("data0/ctrl_1".to_string(), "2".to_string()),
                    ("data0/ctrl_2".into(), "0".into()),
                    ("data1/ctrl_1".into(), "2".into()),
                    ("data1/ctrl_2".into(), "0".into()),
                ]
            );
            let ops = plan(&standby, &two);
            assert_eq!(state_writes(&ops).len(), 2);
            let ops = plan(&dead, &standby);
            assert_eq!(state_writes(&ops).len(), 4);
        }
    }

    #[test]
    fn serial_change_unexports_only_that_lun() {
        let before = config();
        let mut after = before.clone();
        after.luns[1].serial = "f".repeat(32);
        let ops = plan(&state(&after), &state(&before));
        let mut prefixes = vec!["core/iblock_0/data1".to_string()];
        for tag in [1, 2] {
            prefixes.push(format!("iscsi/{IQN}/tpgt_{tag}/lun/lun_1"));
            for client in ["client1", "client2"] {
                prefixes.push(format!(
                    "iscsi/{IQN}/tpgt_{tag}/acls/iqn.2026-11.example.lab:{client}/lun_1"
                ));
            }
        }
        assert!(touches_only(&ops, &prefixes), "{ops:#?}");
        let core: Vec<_> = ops
            .iter()
            .filter(|op| op.path().starts_with("core/"))
            .collect();
        assert_eq!(
            core,
            [&Op::Write {
                path: "core/iblock_0/data1/wwn/vpd_unit_serial".into(),
                value: "f".repeat(32)
            }]
        );
        let serial = position(&ops, |op| op.path().ends_with("vpd_unit_serial"));
        let last_unlink = ops
            .iter()
            .rposition(|op| matches!(op, Op::Unlink(_)))
            .unwrap();
        let first_link = position(&ops, |op| matches!(op, Op::Symlink { .. }));
        assert!(last_unlink < serial && serial < first_link);
        assert!(!ops
            .iter()
            .any(|op| matches!(op, Op::Rmdir(p) if p.starts_with("core/"))));
    }

    #[test]
    fn device_path_change_replaces_only_that_backstore() {
        let c = config();
        let before = state(&c);
        let mut after = before.clone();
        after
            .hbas
            .get_mut(HBA)
            .unwrap()
            .devices
            .get_mut("data0")
            .unwrap()
            .udev_path = "/dev/vdb2".into();
        let ops = plan(&after, &before);
        assert!(ops.contains(&Op::Rmdir("core/iblock_0/data0".into())));
        assert!(ops.contains(&Op::Write {
            path: "core/iblock_0/data0/control".into(),
            value: "udev_path=/dev/vdb2".into()
        }));
        assert!(!ops
            .iter()
            .any(|op| op.path().contains("data1") || op.path().contains("lun_1")));
        assert!(!ops
            .iter()
            .any(|op| op.path().contains("alua/default_tg_pt_gp/") && matches!(op, Op::Rmdir(_))));
    }

    #[test]
    fn rtpi_change_disables_and_reenables() {
        let s = state(&config());
        let mut actual = s.clone();
        actual
            .targets
            .get_mut(IQN)
            .unwrap()
            .tpgs
            .get_mut(&1)
            .unwrap()
            .rtpi = Some(7);
        let ops = plan(&s, &actual);
        let tpg = format!("iscsi/{IQN}/tpgt_1");
        assert_eq!(
            ops,
            vec![
                Op::Write {
                    path: format!("{tpg}/enable"),
                    value: "0".into()
                },
                Op::Write {
                    path: format!("{tpg}/rtpi"),
                    value: "1".into()
                },
                Op::Write {
                    path: format!("{tpg}/enable"),
                    value: "1".into()
                },
            ]
        );
        // The disabled remote TPG needs no dance.
        let mut actual = s.clone();
        actual
            .targets
            .get_mut(IQN)
            .unwrap()
            .tpgs
            .get_mut(&2)
            .unwrap()
            .rtpi = Some(0);
        let ops = plan(&s, &actual);
        assert_eq!(
            ops,
            vec![Op::Write {
                path: format!("iscsi/{IQN}/tpgt_2/rtpi"),
                value: "2".into()
            }]
        );
    }

    #[test]
    fn dbroot_is_set_before_any_device_exists() {
        let mut s = state(&config());
        s.dbroot = "/var/lib/star/target".into();
        let ops = plan(&s, &LioState::default());
        let dbroot = position(&ops, |op| op.path() == "dbroot");
        let first_mkdir = position(&ops, |op| matches!(op, Op::Mkdir(_)));
        assert!(dbroot < first_mkdir);
        // With devices present, they all go first and come back.
        let mut moved = s.clone();
        moved.dbroot = "/etc/target".into();
        let ops = plan(&moved, &s);
        let dbroot = position(&ops, |op| op.path() == "dbroot");
        for dev in ["data0", "data1"] {
            let gone = position(&ops, |op| *op == Op::Rmdir(format!("core/iblock_0/{dev}")));
            let back = position(&ops, |op| *op == Op::Mkdir(format!("core/iblock_0/{dev}")));
            assert!(gone < dbroot && dbroot < back);
        }
        assert!(!ops.iter().any(|op| op.path().ends_with("tpgt_1/enable")));
    }

    #[test]
    fn chap_changes_write_null_and_authentication_first() {
        let before = config();
        let mut after = before.clone();
        after.hosts[0].chap = None;
        let ops = plan(&state(&after), &state(&before));
        let acl = format!("iscsi/{IQN}/tpgt_1/acls/iqn.2026-11.example.lab:client1");
        assert_eq!(
            ops[..3],
            [
                Op::Write {
                    path: format!("{acl}/attrib/authentication"),
                    value: "0".into()
                },
                Op::Write {
                    path: format!("{acl}/auth/userid"),
                    value: "NULL".into()
                },
                Op::Write {
                    path: format!("{acl}/auth/password"),
                    value: "NULL".into()
                },
            ]
        );
        let ops = plan(&state(&before), &state(&after));
        assert_eq!(
            ops[0],
            Op::Write {
                path: format!("{acl}/attrib/authentication"),
                value: "1".into()
            }
        );
    }

    #[test]
    fn obsolete_groups_go_after_their_members_left_active() {
        let s = state(&config());
        let mut actual = s.clone();
        for dev in actual.hbas.get_mut(HBA).unwrap().devices.values_mut() {
            let g = dev.alua_groups.remove("ctrl_1").unwrap();
            dev.alua_groups.insert("old_a".into(), g);
        }
        for lun in actual
            .targets
            .get_mut(IQN)
            .unwrap()
            .tpgs
            .get_mut(&1)
            .unwrap()
            .luns
            .values_mut()
        {
            lun.alua_group = "old_a".into();
        }
        let ops = plan(&s, &actual);
        let dev = "core/iblock_0/data0";
        let at = |op: Op| position(&ops, |x| *x == op);
        let rm = at(Op::Rmdir(format!("{dev}/alua/old_a")));
        let mk = at(Op::Mkdir(format!("{dev}/alua/ctrl_1")));
        let ao = at(Op::Write {
            path: format!("{dev}/alua/ctrl_1/alua_access_state"),
            value: "0".into(),
        });
        let moved = at(Op::Write {
            path: format!("iscsi/{IQN}/tpgt_1/lun/lun_0/alua_tg_pt_gp"),
            value: "ctrl_1".into(),
        });
        // The old group is removed, not written: its ports fall back to the Standby
        // default group until they join ctrl_1, so two Active/Optimized groups never
        // show, and the new group can take the old one's ID.
        assert!(rm < mk && mk < ao && ao < moved, "{ops:#?}");
        assert!(!ops
            .iter()
            .any(|op| op.path().ends_with("old_a/alua_access_state")));
    }

    #[test]
    fn op_display_masks_secrets_and_quotes() {
        let op = Op::Write {
            path: "iscsi/iqn.a/tpgt_1/acls/iqn.b/auth/password_mutual".into(),
            value: "s3cret'$x".into(),
        };
        assert_eq!(
            op.to_string(),
            "echo -n '********' > iscsi/iqn.a/tpgt_1/acls/iqn.b/auth/password_mutual"
        );
        assert!(!format!("{op:?}").contains("s3cret"));
        let op = Op::Write {
            path: "x/auth/userid".into(),
            value: "it's".into(),
        };
        assert_eq!(op.to_string(), "echo -n 'it'\\''s' > x/auth/userid");
        let op = Op::Mkdir("iscsi/iqn.a/tpgt_1/np/[fd00::1]:3260".into());
        assert_eq!(
            op.to_string(),
            "mkdir 'iscsi/iqn.a/tpgt_1/np/[fd00::1]:3260'"
        );
    }
}
