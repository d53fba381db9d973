//! The file systems PID 1 mounts at boot and unmounts at shutdown.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// (source, target, type, flags, options), in mount order: /dev before /dev/pts.
const API_FILESYSTEMS: &[(&str, &str, &str, u64, &str)] = &[
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, ""),
    ("devtmpfs", "/dev", "devtmpfs", NOSUID, "mode=0755"),
    (
        "devpts",
        "/dev/pts",
        "devpts",
        NOSUID_NOEXEC,
        "mode=0620,ptmxmode=0666",
    ),
    ("tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", NOSUID_NODEV, "mode=0755"),
];

/// configfs is a module in Debian's kernels: it is mounted after the modules are loaded.
const CONFIGFS: (&str, &str, &str, u64, &str) = (
    "configfs",
    "/sys/kernel/config",
    "configfs",
    NOSUID_NODEV_NOEXEC,
    "",
);
const NOSUID: u64 = libc::MS_NOSUID;
const NOSUID_NODEV: u64 = libc::MS_NOSUID | libc::MS_NODEV;
const NOSUID_NOEXEC: u64 = libc::MS_NOSUID | libc::MS_NOEXEC;
const NOSUID_NODEV_NOEXEC: u64 = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// File systems with nothing to write back: left mounted at shutdown.
const VIRTUAL_TYPES: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "rootfs",
    "configfs",
    "securityfs",
    "debugfs",
    "tracefs",
    "cgroup",
    "cgroup2",
    "pstore",
    "efivarfs",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
}

/// /proc/self/mountinfo, in mount order (parents before children).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = unescape(left.split(' ').nth(4)?);
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_string();
            let source = unescape(right.next().unwrap_or(""));
            Some(MountEntry {
                mount_point: PathBuf::from(mount_point),
                fs_type,
                source,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as \040 \011 \012 \134.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &field[i + 1..i + 4];
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to unmount at shutdown, children first: everything that could hold data, never "/".
pub fn unmount_order(entries: &[MountEntry]) -> Vec<MountEntry> {
    entries
        .iter()
        .rev()
        .filter(|e| e.mount_point != Path::new("/") && !VIRTUAL_TYPES.contains(&e.fs_type.as_str()))
        .cloned()
        .collect()
}

fn mounted_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            parse_mountinfo(&t)
                .into_iter()
                .map(|e| e.mount_point)
                .collect()
        })
        .unwrap_or_default()
}

/// Mounts /proc, /sys, /dev, /dev/pts, /dev/shm and /run, skipping any that is already
/// there. Returns one message per failure; boot goes on without that mount.
pub fn mount_api_filesystems() -> Vec<String> {
    mount_each(API_FILESYSTEMS)
}

/// Mounts /proc when nothing is there yet (the first thing PID 1 of a machine does);
/// returns what went wrong, if anything.
pub fn mount_proc_if_missing() -> Option<String> {
    if Path::new("/proc/self").exists() {
        return None;
    }
    mount_each(&API_FILESYSTEMS[..1]).into_iter().next()
}

/// Mounts configfs on /sys/kernel/config (LIO's interface), once its module is loaded.
pub fn mount_configfs() -> Vec<String> {
    mount_each(&[CONFIGFS])
}

fn mount_each(table: &[(&str, &str, &str, u64, &str)]) -> Vec<String> {
    let mut failures = Vec::new();
    for &(source, target, fstype, flags, data) in table {
        // Re-read each time: /proc itself is the first mount.
        if mounted_points().iter().any(|p| p == Path::new(target)) {
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(target) {
            failures.push(format!("mkdir {target}: {e}"));
            continue;
        }
        let data = (!data.is_empty()).then_some(data);
        if let Err(e) = mount(
            Some(source),
            target,
            Some(fstype),
            MsFlags::from_bits_truncate(flags),
            data,
        ) {
            failures.push(format!("mount {fstype} on {target}: {e}"));
        }
    }
    failures
}

/// Unmounts every disk-backed file system, children first; one that is busy is remounted
/// read-only instead, so its data is on disk before the reset. Returns what happened.
pub fn unmount_all() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut report = Vec::new();
    for entry in unmount_order(&parse_mountinfo(&text)) {
        let target = &entry.mount_point;
        match umount2(target, MntFlags::empty()) {
            Ok(()) => report.push(format!("unmounted {}", target.display())),
            Err(e) => {
                let ro = mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                );
                report.push(match ro {
                    Ok(()) => format!("{} busy ({e}): remounted read-only", target.display()),
                    Err(e2) => format!(
                        "{} busy ({e}) and cannot be remounted read-only ({e2})",
                        target.display()
                    ),
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime - rootfs rootfs rw
23 22 0:22 / /proc rw,nosuid - proc proc rw
24 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4096k
25 24 0:23 / /dev/pts rw - devpts devpts rw
30 22 8:2 / /mnt/star\\040config rw - vfat /dev/vda2 rw
31 30 8:3 / /mnt/star\\040config/sub rw - ext4 /dev/vda3 rw
";

    #[test]
    fn mountinfo_is_parsed_with_escapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 6);
        assert_eq!(m[4].mount_point, PathBuf::from("/mnt/star config"));
        assert_eq!(m[4].fs_type, "vfat");
        assert_eq!(m[4].source, "/dev/vda2");
    }

    #[test]
    fn only_disk_backed_mounts_are_unmounted_children_first() {
        let order: Vec<PathBuf> = unmount_order(&parse_mountinfo(SAMPLE))
            .into_iter()
            .map(|e| e.mount_point)
            .collect();
        assert_eq!(
            order,
            vec![
                PathBuf::from("/mnt/star config/sub"),
                PathBuf::from("/mnt/star config")
            ]
        );
    }

    #[test]
    fn the_running_systems_mountinfo_parses() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let entries = parse_mountinfo(&text);
        assert_eq!(entries.len(), text.lines().count());
        assert!(entries.iter().any(|e| e.mount_point == Path::new("/proc")));
    }
}
