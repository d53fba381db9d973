//! Kernel module loading for PID 1.
//!
//! The appliance image ships no modprobe, so PID 1 resolves the modules it
//! needs from depmod's text output (`modules.dep`, `modules.builtin`) and
//! inserts them itself with `finit_module(2)`. Parsing and dependency ordering
//! are pure functions of the file contents, kept apart from the system calls
//! so they can be tested without privileges or a module tree.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::kmod::{finit_module, ModuleInitFlags};
use nix::sys::stat::Mode;

const MODULES_DEP: &str = "modules.dep";
const MODULES_BUILTIN: &str = "modules.builtin";

/// From include/uapi/linux/module.h; neither nix 0.31 nor libc 0.2 export it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// File suffixes depmod indexes, and whether the kernel must decompress them.
const MODULE_SUFFIXES: [(&str, bool); 4] = [
    (".ko", false),
    (".ko.xz", true),
    (".ko.zst", true),
    (".ko.gz", true),
];

/// Parsed /lib/modules/<release>/modules.dep plus modules.builtin.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    /// In modules.dep order, so that indices are stable and errors can cite lines.
    modules: Vec<Module>,
    by_name: HashMap<String, usize>,
    builtin: HashSet<String>,
}

#[derive(Debug, Clone)]
struct Module {
    name: String,
    path: PathBuf,
    compressed: bool,
    /// Indices into `ModuleIndex::modules`, in the order modules.dep lists them.
    deps: Vec<usize>,
}

/// One module file to insert, as returned by [`ModuleIndex::load_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    /// Normalised module name ('_' rather than '-'), as the kernel reports it.
    pub name: String,
    /// Path as written in modules.dep, relative to the modules directory.
    pub relative_path: PathBuf,
    /// The file is .ko.xz, .ko.zst or .ko.gz and needs in-kernel decompression.
    pub compressed: bool,
}

/// What happened to one module in [`load_modules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// `finit_module(2)` inserted it.
    Loaded,
    /// The kernel already had it (`EEXIST`).
    AlreadyLoaded,
    /// It is compiled into the kernel; nothing was inserted.
    Builtin,
}

/// Why modules could not be resolved or loaded.
#[derive(Debug)]
pub enum KmodError {
    /// A line of modules.dep or modules.builtin could not be understood.
    Parse {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    /// modules.dep or modules.builtin could not be read.
    Read { path: PathBuf, source: io::Error },
    /// The name matches nothing in modules.dep or modules.builtin.
    UnknownModule { name: String },
    /// modules.dep describes a dependency loop; the first name is repeated at the end.
    DependencyCycle { cycle: Vec<String> },
    /// A module file could not be opened.
    Open {
        module: String,
        path: PathBuf,
        errno: Errno,
    },
    /// `finit_module(2)` refused a module.
    Insert {
        module: String,
        path: PathBuf,
        compressed: bool,
        errno: Errno,
    },
}

impl fmt::Display for KmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmodError::Parse { file, line, reason } => {
                write!(f, "{}:{line}: {reason}", file.display())
            }
            KmodError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            KmodError::UnknownModule { name } => write!(
                f,
                "kernel module {name:?} is in neither {MODULES_DEP} nor {MODULES_BUILTIN}"
            ),
            KmodError::DependencyCycle { cycle } => {
                write!(
                    f,
                    "dependency cycle in {MODULES_DEP}: {}",
                    cycle.join(" -> ")
                )
            }
            KmodError::Open {
                module,
                path,
                errno,
            } => write!(
                f,
                "cannot open kernel module {module} at {}: {errno}",
                path.display()
            ),
            KmodError::Insert {
                module,
                path,
                compressed,
                errno,
            } => {
                write!(
                    f,
                    "finit_module failed for kernel module {module} at {}: {errno}",
                    path.display()
                )?;
                // Kernels before 5.17 reject the flag with EINVAL, and those
                // built without CONFIG_MODULE_DECOMPRESS answer EOPNOTSUPP;
                // neither errno alone points at the compression.
                if *compressed && matches!(errno, Errno::EINVAL | Errno::EOPNOTSUPP) {
                    write!(
                        f,
                        " (compressed modules need Linux 5.17+ with CONFIG_MODULE_DECOMPRESS)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for KmodError {}

/// modprobe treats '-' and '_' in module names as the same character, and
/// the kernel itself always reports '_'.
fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name and compression of a path from modules.dep or modules.builtin,
/// or `None` if the file is not a kernel module.
fn module_name(path: &str) -> Option<(String, bool)> {
    let file = path.rsplit('/').next().unwrap_or(path);
    MODULE_SUFFIXES.iter().find_map(|&(suffix, compressed)| {
        let stem = file.strip_suffix(suffix)?;
        (!stem.is_empty()).then(|| (normalize_name(stem), compressed))
    })
}

fn parse_error(file: &str, line: usize, reason: String) -> KmodError {
    KmodError::Parse {
        file: PathBuf::from(file),
        line,
        reason,
    }
}

fn not_a_module(path: &str) -> String {
    format!("{path:?} is not a kernel module file (.ko, .ko.xz, .ko.zst or .ko.gz)")
}

fn parse_builtin(text: &str) -> Result<HashSet<String>, KmodError> {
    let mut builtin = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let path = line.trim();
        if path.is_empty() {
            continue;
        }
        let err = |reason| parse_error(MODULES_BUILTIN, index + 1, reason);
        if path.contains(char::is_whitespace) {
            return Err(err(format!("expected one module path, found {path:?}")));
        }
        let (name, _) = module_name(path).ok_or_else(|| err(not_a_module(path)))?;
        builtin.insert(name);
    }
    Ok(builtin)
}

/// A modules.dep line whose dependency paths are not yet resolved to indices.
struct DepLine<'a> {
    number: usize,
    deps: Vec<(&'a str, String)>,
}

enum Step {
    Insert(usize),
    Builtin(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unvisited,
    InProgress,
    Done,
}

impl ModuleIndex {
    /// Parses the text of both files.
    ///
    /// `modules_dep` is the text of modules.dep, one module per line, e.g.
    /// `kernel/drivers/target/target_core_iblock.ko: kernel/drivers/target/target_core_mod.ko`;
    /// files may end `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`.
    /// `modules_builtin` is the text of modules.builtin: one path per line,
    /// possibly empty.
    ///
    /// # Errors
    ///
    /// [`KmodError::Parse`] with the file name and line number of the first
    /// line that is not a module path (plus dependencies), names a module a
    /// second time, or lists a dependency that has no line of its own.
    pub fn parse(modules_dep: &str, modules_builtin: &str) -> Result<ModuleIndex, KmodError> {
        let builtin = parse_builtin(modules_builtin)?;
        let mut modules = Vec::new();
        let mut lines: Vec<DepLine<'_>> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut by_path: HashMap<&str, usize> = HashMap::new();

        for (index, line) in modules_dep.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason| parse_error(MODULES_DEP, number, reason);
            let (target, dep_list) = line.split_once(':').ok_or_else(|| {
                err(format!(
                    "expected \"<module>: <dependencies>\", found {line:?}"
                ))
            })?;
            let target = target.trim();
            if target.is_empty() {
                return Err(err("missing module path before ':'".to_string()));
            }
            if target.contains(char::is_whitespace) {
                return Err(err(format!("expected one module path, found {target:?}")));
            }
            let (name, compressed) =
                module_name(target).ok_or_else(|| err(not_a_module(target)))?;
            let deps = dep_list
                .split_whitespace()
                .map(|dep| {
                    module_name(dep)
                        .map(|(dep_name, _)| (dep, dep_name))
                        .ok_or_else(|| err(not_a_module(dep)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Two files with one name leave no way to tell which the kernel
            // should get; depmod itself never writes that.
            if let Some(&first) = by_name.get(&name) {
                let first_line = &lines[first];
                return Err(err(format!(
                    "module {name} is listed again (first on line {})",
                    first_line.number
                )));
            }
            by_name.insert(name.clone(), modules.len());
            by_path.insert(target, modules.len());
            modules.push(Module {
                name,
                path: PathBuf::from(target),
                compressed,
                deps: Vec::new(),
            });
            lines.push(DepLine { number, deps });
        }

        for (module, line) in modules.iter_mut().zip(&lines) {
            for (dep, dep_name) in &line.deps {
                match by_path.get(dep) {
                    Some(&dep_index) => module.deps.push(dep_index),
                    // Already in the kernel image, so nothing to insert.
                    None if builtin.contains(dep_name) => {}
                    None => {
                        return Err(parse_error(
                            MODULES_DEP,
                            line.number,
                            format!("dependency {dep} has no line of its own"),
                        ))
                    }
                }
            }
        }

        Ok(ModuleIndex {
            modules,
            by_name,
            builtin,
        })
    }

    /// Reads modules.dep and modules.builtin from `dir`; a missing
    /// modules.builtin counts as empty.
    ///
    /// # Errors
    ///
    /// [`KmodError::Read`] if a file cannot be read, [`KmodError::Parse`]
    /// (with the full path of the file) if it cannot be parsed.
    pub fn load_from_dir(dir: &Path) -> Result<ModuleIndex, KmodError> {
        let dep_path = dir.join(MODULES_DEP);
        let builtin_path = dir.join(MODULES_BUILTIN);
        let modules_dep = std::fs::read_to_string(&dep_path).map_err(|source| KmodError::Read {
            path: dep_path.clone(),
            source,
        })?;
        // Kernels built without any builtin modules may not ship the file.
        let modules_builtin = match std::fs::read_to_string(&builtin_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(KmodError::Read {
                    path: builtin_path,
                    source,
                })
            }
        };
        ModuleIndex::parse(&modules_dep, &modules_builtin).map_err(|e| match e {
            // Callers need the full path to find the offending file.
            KmodError::Parse { file, line, reason } => KmodError::Parse {
                file: dir.join(file),
                line,
                reason,
            },
            other => other,
        })
    }

    /// Whether `name` ('-' and '_' equivalent) is compiled into the kernel.
    #[must_use]
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize_name(name))
    }

    /// The files to insert, dependencies first, each once, for the wanted
    /// module names.
    ///
    /// Names match modules the way modprobe does: '-' and '_' are
    /// equivalent, and a module's name is its file name without the `.ko*`
    /// suffix. Builtin modules are skipped, which is not an error.
    ///
    /// # Errors
    ///
    /// [`KmodError::UnknownModule`] naming the first wanted name that is in
    /// neither file, [`KmodError::DependencyCycle`] if modules.dep loops.
    pub fn load_order(&self, wanted: &[String]) -> Result<Vec<ModulePlan>, KmodError> {
        Ok(self
            .resolve(wanted)?
            .into_iter()
            .filter_map(|step| match step {
                Step::Insert(index) => Some(self.plan(index)),
                Step::Builtin(_) => None,
            })
            .collect())
    }

    fn plan(&self, index: usize) -> ModulePlan {
        let module = &self.modules[index];
        ModulePlan {
            name: module.name.clone(),
            relative_path: module.path.clone(),
            compressed: module.compressed,
        }
    }

    /// Every wanted module as either a builtin or a run of inserts, in the
    /// order they must happen, so that callers can report builtins too.
    fn resolve(&self, wanted: &[String]) -> Result<Vec<Step>, KmodError> {
        let mut marks = vec![Mark::Unvisited; self.modules.len()];
        let mut chain = Vec::new();
        let mut steps = Vec::new();
        let mut builtin_seen = HashSet::new();
        for requested in wanted {
            let name = normalize_name(requested);
            // Checked first: the code is already in the kernel, so inserting a
            // file of the same name could only fail.
            if self.builtin.contains(&name) {
                if builtin_seen.insert(name.clone()) {
                    steps.push(Step::Builtin(name));
                }
                continue;
            }
            let &index = self
                .by_name
                .get(&name)
                .ok_or_else(|| KmodError::UnknownModule {
                    name: requested.clone(),
                })?;
            self.visit(index, &mut marks, &mut chain, &mut steps)?;
        }
        Ok(steps)
    }

    /// Depth-first post-order walk; `chain` holds the modules currently being
    /// expanded so that a loop can be reported instead of recursing forever.
    fn visit(
        &self,
        index: usize,
        marks: &mut [Mark],
        chain: &mut Vec<usize>,
        steps: &mut Vec<Step>,
    ) -> Result<(), KmodError> {
        match marks[index] {
            Mark::Done => return Ok(()),
            Mark::InProgress => {
                let start = chain.iter().position(|&i| i == index).unwrap_or(0);
                let cycle = chain[start..]
                    .iter()
                    .chain(std::iter::once(&index))
                    .map(|&i| self.modules[i].name.clone())
                    .collect();
                return Err(KmodError::DependencyCycle { cycle });
            }
            Mark::Unvisited => {}
        }
        marks[index] = Mark::InProgress;
        chain.push(index);
        // depmod lists the dependency to load first last, and libkmod walks
        // the list backwards; doing the same gives modprobe's exact order.
        for &dep in self.modules[index].deps.iter().rev() {
            self.visit(dep, marks, chain, steps)?;
        }
        chain.pop();
        marks[index] = Mark::Done;
        steps.push(Step::Insert(index));
        Ok(())
    }
}

/// Loads the index from `dir` (`/lib/modules/<release>`) and inserts the
/// wanted modules and their dependencies in order with `finit_module(2)`.
///
/// Compressed files are passed with `MODULE_INIT_COMPRESSED_FILE`, which the
/// kernel decompresses itself since 5.17; others with no flags. No module
/// parameters are given. `EEXIST` counts as [`LoadOutcome::AlreadyLoaded`],
/// and builtin modules in `wanted` are reported as [`LoadOutcome::Builtin`].
///
/// # Errors
///
/// Anything [`ModuleIndex::load_from_dir`] or [`ModuleIndex::load_order`]
/// reports; otherwise stops at the first module that cannot be opened
/// ([`KmodError::Open`]) or inserted ([`KmodError::Insert`]), naming the
/// module, its path and the errno.
pub fn load_modules(
    dir: &Path,
    wanted: &[String],
) -> Result<Vec<(String, LoadOutcome)>, KmodError> {
    let index = ModuleIndex::load_from_dir(dir)?;
    let steps = index.resolve(wanted)?;
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Builtin(name) => {
                tracing::debug!(module = %name, "kernel module is builtin");
                outcomes.push((name, LoadOutcome::Builtin));
            }
            Step::Insert(module_index) => {
                let plan = index.plan(module_index);
                let outcome = insert_module(dir, &plan)?;
                outcomes.push((plan.name, outcome));
            }
        }
    }
    Ok(outcomes)
}

/// `ramfs`, which the kernel may use for the initramfs instead of tmpfs (linux/magic.h;
/// neither nix nor libc names it).
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Deletes the module tree `dir` if it lives in RAM (the initramfs, tmpfs or ramfs), and
/// returns the bytes of files freed. Modules in RAM hold that memory for as long as the
/// machine runs though nothing reads them once loaded; modules on a disk cost nothing
/// and belong to whoever installed them, so those are refused.
///
/// # Errors
///
/// Why nothing (or not everything) was deleted, naming the directory.
pub fn free_module_files(dir: &Path) -> Result<u64, String> {
    let fs = nix::sys::statfs::statfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kind = fs.filesystem_type();
    let in_ram = kind == nix::sys::statfs::TMPFS_MAGIC || kind.0 == RAMFS_MAGIC;
    if !in_ram {
        return Err(format!(
            "{} is not in RAM (file system type {:#x}): left in place",
            dir.display(),
            kind.0
        ));
    }
    remove_tree(dir).map_err(|e| format!("deleting {}: {e}", dir.display()))
}

/// Deletes `dir` and everything under it (symbolic links, not what they point to) in one
/// walk, and returns the sizes of the regular files it held, added up.
fn remove_tree(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += remove_tree(&entry.path())?;
        } else {
            if meta.is_file() {
                total += meta.len();
            }
            std::fs::remove_file(entry.path())?;
        }
    }
    std::fs::remove_dir(dir)?;
    Ok(total)
}

fn insert_module(dir: &Path, plan: &ModulePlan) -> Result<LoadOutcome, KmodError> {
    let path = dir.join(&plan.relative_path);
    let fd: OwnedFd =
        open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|errno| {
            KmodError::Open {
                module: plan.name.clone(),
                path: path.clone(),
                errno,
            }
        })?;
    let flags = if plan.compressed {
        // nix passes the bits through to the syscall untouched, so the flag it
        // lacks can be carried without dropping to a raw libc::syscall.
        ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
    } else {
        ModuleInitFlags::empty()
    };
    match finit_module(&fd, c"", flags) {
        Ok(()) => {
            tracing::debug!(module = %plan.name, path = %path.display(), "loaded kernel module");
            Ok(LoadOutcome::Loaded)
        }
        Err(Errno::EEXIST) => {
            tracing::debug!(module = %plan.name, "kernel module already loaded");
            Ok(LoadOutcome::AlreadyLoaded)
        }
        Err(errno) => Err(KmodError::Insert {
            module: plan.name.clone(),
            path,
            compressed: plan.compressed,
            errno,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET_DEP: &str = "\
kernel/drivers/target/target_core_mod.ko:
kernel/drivers/target/target_core_iblock.ko: kernel/drivers/target/target_core_mod.ko
kernel/drivers/target/iscsi/iscsi_target_mod.ko: kernel/drivers/target/target_core_mod.ko
kernel/drivers/watchdog/softdog.ko:
";

    fn names(plans: &[ModulePlan]) -> Vec<&str> {
        plans.iter().map(|p| p.name.as_str()).collect()
    }

    fn wanted(names: &[&str]) -> Vec<String> {
        names.iter().map(|&s| String::from(s)).collect()
    }

    fn parse_err(dep: &str, builtin: &str) -> (String, usize, String) {
        match ModuleIndex::parse(dep, builtin) {
            Err(KmodError::Parse { file, line, reason }) => {
                (file.display().to_string(), line, reason)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn dependencies_come_first() {
        let index = ModuleIndex::parse(TARGET_DEP, "").unwrap();
        let plans = index.load_order(&wanted(&["target_core_iblock"])).unwrap();
        assert_eq!(
            plans,
            vec![
                ModulePlan {
                    name: "target_core_mod".into(),
                    relative_path: "kernel/drivers/target/target_core_mod.ko".into(),
                    compressed: false,
                },
                ModulePlan {
                    name: "target_core_iblock".into(),
                    relative_path: "kernel/drivers/target/target_core_iblock.ko".into(),
                    compressed: false,
                },
            ]
        );
    }

    #[test]
    fn transitive_dependencies_in_depmod_order() {
        // depmod writes the full closure with the first-to-load last.
        let dep = "\
a.ko: b.ko c.ko d.ko
b.ko: c.ko d.ko
c.ko: d.ko
d.ko:
";
        let index = ModuleIndex::parse(dep, "").unwrap();
        let plans = index.load_order(&wanted(&["a"])).unwrap();
        assert_eq!(names(&plans), ["d", "c", "b", "a"]);
    }

    #[test]
    fn transitive_dependencies_when_only_direct_ones_are_listed() {
        let dep = "\
top.ko: mid.ko
mid.ko: low.ko
low.ko: base.ko
base.ko:
";
        let index = ModuleIndex::parse(dep, "").unwrap();
        let plans = index.load_order(&wanted(&["top"])).unwrap();
        assert_eq!(names(&plans), ["base", "low", "mid", "top"]);
    }

    #[test]
    fn shared_dependencies_are_planned_once() {
        let index = ModuleIndex::parse(TARGET_DEP, "").unwrap();
        let plans = index
            .load_order(&wanted(&[
                "target_core_mod",
                "iscsi_target_mod",
                "target_core_iblock",
                "softdog",
                "iscsi_target_mod",
            ]))
            .unwrap();
        assert_eq!(
            names(&plans),
            [
                "target_core_mod",
                "iscsi_target_mod",
                "target_core_iblock",
                "softdog"
            ]
        );
    }

    #[test]
    fn dash_and_underscore_are_equivalent() {
        let dep = "\
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-thin-pool.ko: kernel/drivers/md/dm-mod.ko
";
        let index = ModuleIndex::parse(dep, "").unwrap();
        let plans = index.load_order(&wanted(&["dm_thin-pool"])).unwrap();
        assert_eq!(names(&plans), ["dm_mod", "dm_thin_pool"]);
        assert_eq!(
            plans[1].relative_path,
            PathBuf::from("kernel/drivers/md/dm-thin-pool.ko")
        );

        let index = ModuleIndex::parse(TARGET_DEP, "").unwrap();
        let plans = index.load_order(&wanted(&["iscsi-target-mod"])).unwrap();
        assert_eq!(names(&plans), ["target_core_mod", "iscsi_target_mod"]);
    }

    #[test]
    fn builtin_modules_are_skipped() {
        let dep = "\
kernel/drivers/target/target_core_mod.ko: kernel/lib/configfs.ko
kernel/drivers/watchdog/softdog.ko:
";
        let builtin = "kernel/fs/configfs/configfs.ko\nkernel/drivers/block/loop.ko\n\n";
        let index = ModuleIndex::parse(dep, builtin).unwrap();
        assert!(index.is_builtin("loop"));
        assert!(index.is_builtin("configfs"));
        assert!(!index.is_builtin("softdog"));

        let plans = index
            .load_order(&wanted(&["loop", "target_core_mod", "configfs"]))
            .unwrap();
        assert_eq!(names(&plans), ["target_core_mod"]);

        let steps = index
            .resolve(&wanted(&["loop", "softdog", "loop"]))
            .unwrap();
        let described: Vec<String> = steps
            .iter()
            .map(|step| match step {
                Step::Builtin(name) => format!("builtin {name}"),
                Step::Insert(i) => format!("insert {}", index.modules[*i].name),
            })
            .collect();
        assert_eq!(described, ["builtin loop", "insert softdog"]);
    }

    #[test]
    fn unknown_module_is_named() {
        let index = ModuleIndex::parse(TARGET_DEP, "").unwrap();
        let err = index
            .load_order(&wanted(&["softdog", "no-such-mod"]))
            .unwrap_err();
        assert!(matches!(&err, KmodError::UnknownModule { name } if name == "no-such-mod"));
        assert!(err.to_string().contains("\"no-such-mod\""), "{err}");
    }

    #[test]
    fn malformed_lines_report_file_and_line() {
        let (file, line, reason) = parse_err("a.ko:\n\nb.ko c.ko\n", "");
        assert_eq!((file.as_str(), line), ("modules.dep", 3));
        assert!(reason.contains("b.ko c.ko"), "{reason}");

        let (_, line, reason) = parse_err("a.ko:\nnotes.txt:\n", "");
        assert_eq!(line, 2);
        assert!(reason.contains("notes.txt"), "{reason}");

        let (_, line, reason) = parse_err("a.ko: b.ko.bz2\n", "");
        assert_eq!(line, 1);
        assert!(reason.contains("b.ko.bz2"), "{reason}");

        let (_, line, _) = parse_err("a.ko:\n: a.ko\n", "");
        assert_eq!(line, 2);

        let (_, line, reason) = parse_err("a.ko:\nb.ko: missing.ko\n", "");
        assert_eq!(line, 2);
        assert!(reason.contains("missing.ko"), "{reason}");

        let (_, line, reason) = parse_err("x/a.ko:\ny/a-b.ko:\nz/a.ko.xz:\n", "");
        assert_eq!(line, 3);
        assert!(reason.contains("line 1"), "{reason}");

        let (file, line, _) = parse_err("a.ko:\n", "x.ko\n\nnot a module\n");
        assert_eq!((file.as_str(), line), ("modules.builtin", 3));

        let err = ModuleIndex::parse("a.ko:\nbogus\n", "").unwrap_err();
        assert!(err.to_string().starts_with("modules.dep:2: "), "{err}");
    }

    #[test]
    fn compressed_suffixes() {
        let dep = "\
kernel/a.ko.xz:
kernel/b.ko.zst: kernel/a.ko.xz
kernel/c.ko.gz: kernel/b.ko.zst
kernel/d.ko: kernel/c.ko.gz
";
        let index = ModuleIndex::parse(dep, "").unwrap();
        let plans = index.load_order(&wanted(&["d"])).unwrap();
        let summary: Vec<(&str, &Path, bool)> = plans
            .iter()
            .map(|p| (p.name.as_str(), p.relative_path.as_path(), p.compressed))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", Path::new("kernel/a.ko.xz"), true),
                ("b", Path::new("kernel/b.ko.zst"), true),
                ("c", Path::new("kernel/c.ko.gz"), true),
                ("d", Path::new("kernel/d.ko"), false),
            ]
        );
    }

    #[test]
    fn dependency_cycles_are_reported() {
        let dep = "a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\nd.ko: d.ko\n";
        let index = ModuleIndex::parse(dep, "").unwrap();
        match index.load_order(&wanted(&["a"])) {
            Err(KmodError::DependencyCycle { cycle }) => assert_eq!(cycle, ["a", "b", "c", "a"]),
            other => panic!("expected a cycle, got {other:?}"),
        }
        match index.load_order(&wanted(&["d"])) {
            Err(KmodError::DependencyCycle { cycle }) => assert_eq!(cycle, ["d", "d"]),
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn insert_error_mentions_decompression_support() {
        let err = KmodError::Insert {
            module: "softdog".into(),
            path: "/lib/modules/6.1/kernel/softdog.ko.zst".into(),
            compressed: true,
            errno: Errno::EINVAL,
        };
        let text = err.to_string();
        assert!(text.contains("softdog"), "{text}");
        assert!(
            text.contains("/lib/modules/6.1/kernel/softdog.ko.zst"),
            "{text}"
        );
        assert!(text.contains("EINVAL"), "{text}");
        assert!(text.contains("5.17"), "{text}");
    }

    /// A directory under the system temp dir, removed on drop.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new(tag: &str) -> ScratchDir {
            let path = std::env::temp_dir().join(format!(
                "star-init-kmod-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            ScratchDir(path)
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn load_from_dir_tolerates_missing_builtin_file() {
        let dir = ScratchDir::new("nobuiltin");
        std::fs::write(dir.0.join(MODULES_DEP), TARGET_DEP).unwrap();
        let index = ModuleIndex::load_from_dir(&dir.0).unwrap();
        let plans = index.load_order(&wanted(&["softdog"])).unwrap();
        assert_eq!(names(&plans), ["softdog"]);
    }

    #[test]
    fn load_from_dir_reports_paths() {
        let dir = ScratchDir::new("paths");
        let err = ModuleIndex::load_from_dir(&dir.0).unwrap_err();
        assert!(matches!(&err, KmodError::Read { path, .. } if path == &dir.0.join(MODULES_DEP)));
        assert!(err.to_string().contains("os error 2"), "{err}");

        std::fs::write(dir.0.join(MODULES_DEP), "a.ko:\nbroken\n").unwrap();
        match ModuleIndex::load_from_dir(&dir.0) {
            Err(KmodError::Parse { file, line, .. }) => {
                assert_eq!(file, dir.0.join(MODULES_DEP));
                assert_eq!(line, 2);
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn load_modules_reports_builtins_and_missing_files() {
        let dir = ScratchDir::new("load");
        std::fs::write(dir.0.join(MODULES_DEP), TARGET_DEP).unwrap();
        std::fs::write(
            dir.0.join(MODULES_BUILTIN),
            "kernel/drivers/block/loop.ko\n",
        )
        .unwrap();

        let outcomes = load_modules(&dir.0, &wanted(&["loop"])).unwrap();
        assert_eq!(outcomes, [("loop".to_string(), LoadOutcome::Builtin)]);

        // The file is absent, so this fails at open(2) before any finit_module call.
        match load_modules(&dir.0, &wanted(&["loop", "target-core-iblock"])) {
            Err(KmodError::Open {
                module,
                path,
                errno,
            }) => {
                assert_eq!(module, "target_core_mod");
                assert_eq!(path, dir.0.join("kernel/drivers/target/target_core_mod.ko"));
                assert_eq!(errno, Errno::ENOENT);
            }
            other => panic!("expected an open error, got {other:?}"),
        }
    }

    fn module_tree(root: &Path) {
        std::fs::create_dir_all(root.join("kernel/drivers/target")).unwrap();
        std::fs::write(root.join(MODULES_DEP), TARGET_DEP).unwrap();
        std::fs::write(
            root.join("kernel/drivers/target/target_core_mod.ko"),
            [0u8; 3000],
        )
        .unwrap();
        std::os::unix::fs::symlink("kernel", root.join("link")).unwrap();
    }

    #[test]
    fn module_files_in_ram_are_deleted_and_counted() {
        // /dev/shm is the tmpfs every Linux system has; the appliance's root is one too.
        let shm = nix::sys::statfs::statfs("/dev/shm").expect("/dev/shm");
        assert_eq!(
            shm.filesystem_type(),
            nix::sys::statfs::TMPFS_MAGIC,
            "this test needs /dev/shm to be a tmpfs"
        );
        let root = PathBuf::from(format!(
            "/dev/shm/star-init-kmod-free-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        module_tree(&root);
        let freed = free_module_files(&root).unwrap();
        assert_eq!(freed, 3000 + TARGET_DEP.len() as u64);
        assert!(!root.exists());
    }

    #[test]
    fn module_files_on_a_disk_are_left_alone() {
        // Beside the sources, on the build machine's disk (not a tmpfs, as /tmp may be).
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!(".kmod-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        module_tree(&root);
        let err = free_module_files(&root).unwrap_err();
        assert!(err.contains("is not in RAM"), "{err}");
        assert!(root
            .join("kernel/drivers/target/target_core_mod.ko")
            .exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
