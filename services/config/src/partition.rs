//! star.toml on the STAR-CONFIG partition of the boot disk: found by its GPT name in sysfs
//! and read straight from the block device as FAT, so nothing is mounted (and no vfat
//! module is needed).

use std::io::Read;
use std::path::{Path, PathBuf};

pub const PARTITION_NAME: &str = "STAR-CONFIG";
pub const FILE_NAME: &str = "star.toml";

/// The device node of the partition named `name`, from `sys`'s `class/block/*/uevent`
/// (`PARTNAME=` is the GPT partition name).
pub fn find_partition(sys: &Path, dev: &Path, name: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(sys.join("class/block"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let uevent = std::fs::read_to_string(e.path().join("uevent")).ok()?;
            uevent
                .lines()
                .any(|l| l == format!("PARTNAME={name}"))
                .then(|| dev.join(e.file_name()))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// As `find_partition`, but waits up to `wait` for it to appear: disk drivers probe and
/// partitions are scanned while the first services already run.
pub fn wait_for_partition(
    sys: &Path,
    dev: &Path,
    name: &str,
    wait: std::time::Duration,
) -> Option<PathBuf> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(found) = find_partition(sys, dev, name).filter(|d| d.exists()) {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `Ok(None)` when the file system has no star.toml.
pub fn read_star_toml(device: &Path) -> Result<Option<String>, String> {
    let file = std::fs::File::open(device).map_err(|e| format!("{}: {e}", device.display()))?;
    let fs = fatfs::FileSystem::new(file, fatfs::FsOptions::new())
        .map_err(|e| format!("{}: not a FAT file system: {e}", device.display()))?;
    let mut f = match fs.root_dir().open_file(FILE_NAME) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {FILE_NAME}: {e}", device.display())),
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| format!("{}: {FILE_NAME}: {e}", device.display()))?;
    Ok(Some(text))
}
