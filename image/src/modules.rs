//! The kernel modules an image carries: the board's list and everything it depends on.
//!
//! Debian's kernel package ships no modules.dep (depmod writes it when the package is
//! installed), and depmod itself may not be on the build host. The dependencies are in
//! each module's own `.modinfo` section (`depends=a,b`), so the builder reads them there
//! and writes a modules.dep for exactly the modules it includes, in depmod's format, which
//! star-init's loader then reads at boot.

use object::{Object, ObjectSection};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// modprobe treats '-' and '_' alike.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".ko")?;
    Some(normalize(stem))
}

/// Every `.ko` under `modules_root` (lib/modules/<release>), by module name, as paths
/// relative to `modules_root`.
pub fn index(modules_root: &Path) -> Result<HashMap<String, PathBuf>, String> {
    let mut found = HashMap::new();
    let mut stack = vec![modules_root.join("kernel")];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            } else if let Some(name) = entry.file_name().to_str().and_then(module_name) {
                let rel = path
                    .strip_prefix(modules_root)
                    .unwrap_or(&path)
                    .to_path_buf();
                found.insert(name, rel);
            }
        }
    }
    Ok(found)
}

/// The `depends=` of a module file's .modinfo section.
pub fn depends_of(module: &[u8]) -> Result<Vec<String>, String> {
    let file = object::File::parse(module).map_err(|e| format!("not an ELF module: {e}"))?;
    let Some(section) = file.section_by_name(".modinfo") else {
        return Ok(Vec::new());
    };
    let data = section.data().map_err(|e| e.to_string())?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|d| !d.is_empty())
                .map(normalize)
                .collect::<Vec<_>>()
        })
        .collect())
}

/// Names of the built-in modules, from modules.builtin.
pub fn builtins(modules_root: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(modules_root.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next().and_then(module_name))
        .collect()
}

/// The modules to include: `wanted` and their dependencies, by name, with their files and
/// their direct dependencies. Built-in modules are left out; an unknown name is an error.
pub fn closure(
    modules_root: &Path,
    wanted: &[String],
) -> Result<BTreeMap<String, (PathBuf, Vec<String>)>, String> {
    let files = index(modules_root)?;
    let builtin = builtins(modules_root);
    let mut chosen: BTreeMap<String, (PathBuf, Vec<String>)> = BTreeMap::new();
    let mut todo: Vec<String> = wanted.iter().map(|w| normalize(w)).collect();
    while let Some(name) = todo.pop() {
        if chosen.contains_key(&name) || builtin.contains(&name) {
            continue;
        }
        let rel = files.get(&name).ok_or_else(|| {
            format!(
                "kernel module {name:?} is neither a module nor built into this kernel ({})",
                modules_root.display()
            )
        })?;
        let bytes =
            std::fs::read(modules_root.join(rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
        let deps = depends_of(&bytes).map_err(|e| format!("{}: {e}", rel.display()))?;
        let deps: Vec<String> = deps.into_iter().filter(|d| !builtin.contains(d)).collect();
        todo.extend(deps.iter().cloned());
        chosen.insert(name, (rel.clone(), deps));
    }
    Ok(chosen)
}

/// modules.dep for the chosen modules: each line lists the module's full transitive
/// dependencies the way depmod writes them, in the order that lets modprobe (kmod's, or
/// the rescue shell's busybox) load them from the last to the first: every module comes
/// before the modules it needs.
pub fn modules_dep(chosen: &BTreeMap<String, (PathBuf, Vec<String>)>) -> String {
    let mut out = String::new();
    for (rel, _) in chosen.values() {
        let name = module_name(&rel.file_name().unwrap().to_string_lossy()).unwrap();
        let mut load_order = Vec::new();
        let mut seen = BTreeSet::new();
        collect_deps(&name, chosen, &mut load_order, &mut seen);
        out.push_str(&rel.to_string_lossy());
        out.push(':');
        for dep in load_order.iter().rev() {
            out.push(' ');
            out.push_str(&chosen[dep].0.to_string_lossy());
        }
        out.push('\n');
    }
    out
}

/// The dependencies of `name`, each after everything it needs itself (a load order).
fn collect_deps(
    name: &str,
    chosen: &BTreeMap<String, (PathBuf, Vec<String>)>,
    out: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) {
    for dep in &chosen[name].1 {
        if seen.insert(dep.clone()) {
            collect_deps(dep, chosen, out, seen);
            out.push(dep.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(deps: &[(&str, &[&str])]) -> BTreeMap<String, (PathBuf, Vec<String>)> {
        deps.iter()
            .map(|(n, d)| {
                (
                    n.to_string(),
                    (
                        PathBuf::from(format!("kernel/x/{n}.ko")),
                        d.iter().map(|s| s.to_string()).collect(),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn modules_dep_lists_transitive_dependencies_and_init_can_read_it() {
        let chosen = fake(&[
            ("iscsi_target_mod", &["target_core_mod"]),
            ("target_core_mod", &["configfs"]),
            ("configfs", &[]),
        ]);
        let text = modules_dep(&chosen);
        assert!(text.contains(
            "kernel/x/iscsi_target_mod.ko: kernel/x/target_core_mod.ko kernel/x/configfs.ko\n"
        ));
        // virtio_pci's own order of needs puts virtio_ring before virtio, which needs
        // virtio_ring too: modprobe, loading from the end, must meet virtio_ring first.
        let virtio = modules_dep(&fake(&[
            ("virtio_pci", &["virtio_ring", "virtio"]),
            ("virtio", &["virtio_ring"]),
            ("virtio_ring", &[]),
        ]));
        assert!(
            virtio.contains("kernel/x/virtio_pci.ko: kernel/x/virtio.ko kernel/x/virtio_ring.ko\n"),
            "{virtio}"
        );
        let index = star_init::kmod::ModuleIndex::parse(&text, "").unwrap();
        let order: Vec<String> = index
            .load_order(&["iscsi_target_mod".to_string()])
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(
            order,
            vec!["configfs", "target_core_mod", "iscsi_target_mod"]
        );
    }

    #[test]
    fn names_normalize_dashes() {
        assert_eq!(module_name("snd-hda.ko").as_deref(), Some("snd_hda"));
        assert_eq!(module_name("x.ko.xz"), None);
    }
}
