//! Finding the shared disk and its LUN partitions on a running controller, from sysfs:
//! the disk is the one with a partition named STAR-META (`PARTNAME=` in the partition's
//! uevent), whatever the board calls it (/dev/vdb in QEMU, /dev/nvme1n1 on EC2, /dev/sdb
//! in VirtualBox).

use crate::layout::META_NAME;
use std::path::{Path, PathBuf};

/// The whole-disk device node of the shared disk.
pub fn shared_disk(sys: &Path, dev: &Path) -> Option<PathBuf> {
    let mut found: Vec<String> = std::fs::read_dir(sys.join("class/block"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let uevent = std::fs::read_to_string(e.path().join("uevent")).ok()?;
            if !uevent.lines().any(|l| l == format!("PARTNAME={META_NAME}")) {
                return None;
            }
            // class/block/vdb1 links to .../block/vdb/vdb1: the parent is the disk.
            let real = std::fs::canonicalize(e.path()).ok()?;
            Some(real.parent()?.file_name()?.to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    found.dedup();
    found.first().map(|name| dev.join(name))
}

/// The device node of partition `number` of `disk` (vdb + 2 → vdb2, nvme1n1 + 2 →
/// nvme1n1p2), found in sysfs rather than guessed from the naming rules.
pub fn partition_device(sys: &Path, dev: &Path, disk: &Path, number: u32) -> Option<PathBuf> {
    let name = disk.file_name()?.to_string_lossy().into_owned();
    let dir = sys.join("class/block").join(&name);
    let real = std::fs::canonicalize(dir).ok()?;
    std::fs::read_dir(&real).ok()?.find_map(|e| {
        let e = e.ok()?;
        let n = std::fs::read_to_string(e.path().join("partition")).ok()?;
        (n.trim() == number.to_string()).then(|| dev.join(e.file_name()))
    })
}
