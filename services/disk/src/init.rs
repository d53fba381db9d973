//! Initializing a disk for an array: the GPT, the superblock and config generation 1.
//!
//! Everything is planned and checked in memory first (names, sizes, IQNs, CHAP, that
//! the LUNs fit, that the records fit their blocks), then the disk is probed, and only
//! then written. A refused init writes nothing at all.

use crate::array::check_disk_size;
use crate::buf::Blocks;
use crate::config_store::{encode_copy, ConfigCopy};
use crate::entropy::{Entropy, OsEntropy};
use crate::error::Error;
use crate::gpt::{Gpt, Partition};
use crate::io::{Access, Disk};
use crate::layout::{
    human_size, ALIGN, BLOCK, CONFIG_COPY_A, META_CLEARED_BYTES, META_NAME, META_PARTITION,
    META_SIZE, META_START, META_TYPE, MIN_DISK_BYTES, SECTOR,
};
use crate::luns::{check_storable, plan_create};
use crate::probe::{probe, Found};
use crate::superblock::{self, Superblock};
use star_core::array_config::{ArrayConfig, Host, Portal};
use std::path::Path;

/// A LUN to create at init: the rest (number, serial, partition) is chosen here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSeed {
    pub name: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRequest {
    pub array_name: String,
    /// `None`: derived from the array name.
    pub target_iqn: Option<String>,
    pub portals: Vec<Portal>,
    pub luns: Vec<LunSeed>,
    /// Hosts may map the seed LUNs by name.
    pub hosts: Vec<Host>,
    /// The controller (1 or 2) doing the init, and the time (Unix seconds): recorded in
    /// the superblock.
    pub node: u8,
    pub now_unix: u64,
    /// Wipe whatever the disk holds.
    pub force: bool,
}

impl InitRequest {
    pub fn new(array_name: &str, node: u8, now_unix: u64) -> InitRequest {
        InitRequest {
            array_name: array_name.to_string(),
            target_iqn: None,
            portals: Vec::new(),
            luns: Vec::new(),
            hosts: Vec::new(),
            node,
            now_unix,
            force: false,
        }
    }
}

/// What init will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPlan {
    pub gpt: Gpt,
    pub superblock: Superblock,
    pub config: ArrayConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initialized {
    pub superblock: Superblock,
    pub config: ArrayConfig,
    pub generation: u64,
    /// What `force` wiped, if the disk was not blank.
    pub wiped: Option<String>,
    pub warnings: Vec<String>,
}

pub fn plan(
    disk_bytes: u64,
    req: &InitRequest,
    entropy: &mut dyn Entropy,
) -> Result<InitPlan, Error> {
    if req.node != 1 && req.node != 2 {
        return Err(Error::Invalid(format!(
            "node {} is not controller 1 or 2",
            req.node
        )));
    }
    if disk_bytes < MIN_DISK_BYTES {
        return Err(Error::Invalid(format!(
            "the disk is {}; STAR needs at least {} (GPT, metadata partition, backup GPT)",
            human_size(disk_bytes),
            human_size(MIN_DISK_BYTES)
        )));
    }
    let mut config = ArrayConfig::new(&req.array_name);
    if let Some(iqn) = &req.target_iqn {
        config.target_iqn = iqn.clone();
    }
    config.portals = req.portals.clone();
    // Check the array itself before the LUNs, so a bad array name is named as such.
    config.validate().map_err(Error::Invalid)?;

    let mut gpt = Gpt::new(entropy.guid()?, disk_bytes / SECTOR);
    gpt.insert(Partition {
        number: META_PARTITION,
        name: META_NAME.into(),
        type_guid: META_TYPE,
        unique_guid: entropy.guid()?,
        first_lba: META_START / SECTOR,
        last_lba: (META_START + META_SIZE) / SECTOR - 1,
        attributes: 0,
    })
    .map_err(Error::Invalid)?;
    for seed in &req.luns {
        let (g, c, _) = plan_create(&gpt, &config, &seed.name, seed.size_bytes, entropy)?;
        (gpt, config) = (g, c);
    }
    config.hosts = req.hosts.clone();
    check_storable(&config)?;
    let superblock = Superblock::new(entropy.guid()?, &req.array_name, req.node, req.now_unix);
    superblock.encode()?;
    Ok(InitPlan {
        gpt,
        superblock,
        config,
    })
}

/// Initializes the disk at `path` (a block device or a regular file) for an array.
pub fn init(path: &Path, req: &InitRequest) -> Result<Initialized, Error> {
    let disk = Disk::open(path, Access::Exclusive)?;
    check_disk_size(&disk)?;
    let plan = plan(disk.size(), req, &mut OsEntropy)?;
    let found = probe(&disk)?;
    let wiped = match found.refusal() {
        None => None,
        Some(why) if !req.force => {
            return Err(Error::NotEmpty(format!("{}: {why}", path.display())));
        }
        Some(_) => Some(match found {
            Found::Other(what) => what,
            Found::Star { array_name, .. } => format!("STAR array {array_name}"),
            Found::Blank => unreachable!("a blank disk is never refused"),
        }),
    };
    write(&disk, &plan)?;
    let mut warnings = Vec::new();
    if let Err(e) = disk.kernel_reread_partitions() {
        warnings.push(format!(
            "the kernel did not re-read the partition table: {e}"
        ));
    }
    Ok(Initialized {
        superblock: plan.superblock,
        config: plan.config,
        generation: 1,
        wiped,
        warnings,
    })
}

/// The writes, in an order that leaves a recognisable state at every step: the GPT (a
/// disk with STAR's GPT and no superblock reads as an interrupted init), then the
/// metadata area with config copy A and everything else cleared, the superblock last.
fn write(disk: &Disk, plan: &InitPlan) -> Result<(), Error> {
    let gpt = &plan.gpt;
    // The first MiB: protective MBR, primary GPT, and zeroes over any older boot code
    // or signature.
    let mut head = Blocks::zeroed(ALIGN as usize / BLOCK);
    let primary = gpt.primary_bytes();
    head.as_bytes_mut()[..primary.len()].copy_from_slice(&primary);
    disk.write_blocks(0, &head)?;
    // From the end of the partitionable space to the end of the disk: zeroes and the
    // backup GPT.
    let tail_start = gpt.usable_end_aligned() * SECTOR;
    let (backup_at, backup) = gpt.backup_bytes();
    let mut tail = Blocks::zeroed(((disk.size() - tail_start) as usize).div_ceil(BLOCK));
    let at = (backup_at - tail_start) as usize;
    tail.as_bytes_mut()[at..at + backup.len()].copy_from_slice(&backup);
    disk.write_blocks(tail_start, &tail)?;
    disk.flush()?;

    let mut meta = Blocks::zeroed(META_CLEARED_BYTES as usize / BLOCK);
    let copy = encode_copy(&plan.config, 1)?;
    let at = CONFIG_COPY_A as usize;
    meta.as_bytes_mut()[at..at + copy.as_bytes().len()].copy_from_slice(copy.as_bytes());
    debug_assert_eq!(ConfigCopy::A.offset(), META_START + CONFIG_COPY_A);
    disk.write_blocks(META_START, &meta)?;
    disk.flush()?;
    superblock::write(disk, &plan.superblock)?;
    disk.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::CountingEntropy;
    use crate::layout::LUN_AREA_START;

    fn seed(name: &str, mib: u64) -> LunSeed {
        LunSeed {
            name: name.into(),
            size_bytes: mib * ALIGN,
        }
    }

    #[test]
    fn plans_seed_luns_one_after_another() {
        let mut req = InitRequest::new("lab", 1, 1_800_000_000);
        req.luns = vec![seed("a", 10), seed("b", 20)];
        let p = plan(200 * ALIGN, &req, &mut CountingEntropy::default()).unwrap();
        let names: Vec<_> = p.gpt.partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["STAR-META", "star-lun-a", "star-lun-b"]);
        assert_eq!(
            p.gpt.partition(3).unwrap().start_bytes(),
            LUN_AREA_START + 10 * ALIGN
        );
        assert_eq!(p.config.luns[1].id, 1);
        assert_eq!(p.superblock.initialized_by_node, 1);
    }

    #[test]
    fn bad_requests_are_refused_whole() {
        let mut e = CountingEntropy::default();
        let req = InitRequest::new("lab", 3, 0);
        assert!(plan(200 * ALIGN, &req, &mut e)
            .unwrap_err()
            .to_string()
            .contains("node 3"));
        let req = InitRequest::new("bad name", 1, 0);
        assert!(plan(200 * ALIGN, &req, &mut e)
            .unwrap_err()
            .to_string()
            .contains("array name"));
        let req = InitRequest::new("lab", 1, 0);
        assert!(plan(10 * ALIGN, &req, &mut e)
            .unwrap_err()
            .to_string()
            .contains("at least 66 MiB"));
        let mut req = InitRequest::new("lab", 1, 0);
        req.luns = vec![seed("a", 100), seed("b", 100)];
        assert!(plan(200 * ALIGN, &req, &mut e)
            .unwrap_err()
            .to_string()
            .contains("LUN \"b\" needs 100 MiB"));
    }
}
