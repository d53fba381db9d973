//! An opened STAR array disk: its two ends (where the GPT lives) read once, the GPT, and
//! the superblock; and the read-modify-write cycle every change of the array uses.

use crate::buf::Blocks;
use crate::config_store::{self, Stored};
use crate::error::Error;
use crate::gpt::Gpt;
use crate::io::{Access, Disk};
use crate::layout::{
    ALIGN, BLOCK, BLOCK_U64, META_NAME, META_PARTITION, META_SIZE, META_START, META_TYPE, SECTOR,
};
use crate::superblock::{self, Superblock};
use std::path::Path;

/// The first and last bytes of the disk (1 MiB each, less on a smaller disk): where
/// partition tables, boot sectors and file system signatures live.
#[derive(Debug, Clone)]
pub struct Edges {
    pub head: Blocks,
    pub tail: Blocks,
    /// Byte offset of `tail` on the disk.
    pub tail_offset: u64,
}

pub fn check_disk_size(disk: &Disk) -> Result<(), Error> {
    if !disk.size().is_multiple_of(BLOCK_U64) {
        return Err(Error::Invalid(format!(
            "{} is {} bytes, not a whole number of 4 KiB blocks",
            disk.path().display(),
            disk.size()
        )));
    }
    Ok(())
}

pub fn read_edges(disk: &Disk) -> Result<Edges, Error> {
    check_disk_size(disk)?;
    let len = disk.size().min(ALIGN);
    let count = (len / BLOCK_U64) as usize;
    let tail_offset = disk.size() - len;
    Ok(Edges {
        head: disk.read_blocks(0, count)?,
        tail: disk.read_blocks(tail_offset, count)?,
        tail_offset,
    })
}

/// Whether a GPT is laid out as STAR lays it out: partition 1 is the metadata area.
pub fn is_star_gpt(gpt: &Gpt) -> Result<(), String> {
    let Some(meta) = gpt.partition(META_PARTITION) else {
        return Err("the GPT has no partition 1".into());
    };
    if meta.type_guid != META_TYPE || meta.name != META_NAME {
        return Err(format!(
            "partition 1 is {:?} of type {}, not STAR's metadata partition",
            meta.name, meta.type_guid
        ));
    }
    if meta.start_bytes() != META_START || meta.size_bytes() != META_SIZE {
        return Err(format!(
            "partition 1 {META_NAME} is {} bytes at byte {}; STAR's layout has {META_SIZE} at {META_START}",
            meta.size_bytes(),
            meta.start_bytes()
        ));
    }
    Ok(())
}

#[derive(Debug)]
pub struct Array {
    pub disk: Disk,
    pub edges: Edges,
    pub gpt: Gpt,
    /// What is wrong with the GPT copy that was not used, if anything.
    pub gpt_problems: Vec<String>,
    pub superblock: Result<Superblock, String>,
}

impl Array {
    /// Opens a disk that must carry STAR's GPT. The superblock may still be unreadable:
    /// [`Array::require_superblock`] is for those who need it.
    pub fn open(path: &Path, access: Access) -> Result<Array, Error> {
        let disk = Disk::open(path, access)?;
        let edges = read_edges(&disk)?;
        let not_ours = |why: String| {
            Error::NotOurs(format!(
                "{} is not a STAR array disk: {why}",
                path.display()
            ))
        };
        let read = Gpt::read(
            edges.head.as_bytes(),
            edges.tail.as_bytes(),
            disk.size() / SECTOR,
        )
        .map_err(not_ours)?;
        is_star_gpt(&read.gpt).map_err(not_ours)?;
        let superblock = superblock::read(&disk)?;
        Ok(Array {
            disk,
            edges,
            gpt: read.gpt,
            gpt_problems: read.problems,
            superblock,
        })
    }

    pub fn require_superblock(&self) -> Result<&Superblock, Error> {
        self.superblock.as_ref().map_err(|e| {
            Error::NotOurs(format!(
                "{}: STAR's partition table, but the superblock is unreadable: {e}",
                self.disk.path().display()
            ))
        })
    }

    /// Writes `gpt` over both tables: primary, barrier, backup, barrier. Only the blocks
    /// that hold the tables are written; the rest of each block is what was read.
    pub fn write_gpt(&mut self, gpt: &Gpt) -> Result<(), Error> {
        gpt.validate().map_err(Error::Invalid)?;
        let primary = gpt.primary_bytes();
        let n = primary.len().div_ceil(BLOCK) * BLOCK;
        self.edges.head.as_bytes_mut()[..primary.len()].copy_from_slice(&primary);
        self.disk
            .write_blocks(0, &Blocks::from_bytes(&self.edges.head.as_bytes()[..n]))?;
        self.disk.flush()?;

        let (offset, backup) = gpt.backup_bytes();
        let at = (offset - self.edges.tail_offset) as usize;
        self.edges.tail.as_bytes_mut()[at..at + backup.len()].copy_from_slice(&backup);
        let from = at / BLOCK * BLOCK;
        self.disk.write_blocks(
            self.edges.tail_offset + from as u64,
            &Blocks::from_bytes(&self.edges.tail.as_bytes()[from..]),
        )?;
        self.disk.flush()?;
        self.gpt = gpt.clone();
        self.gpt_problems.clear();
        Ok(())
    }
}

/// The outcome of a change: what it made or removed, the config generation it wrote,
/// and what went wrong after the change was safely on disk (the kernel not told, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed<T> {
    pub value: T,
    pub generation: u64,
    pub warnings: Vec<String>,
}

/// Opens a STAR disk for a change, with its superblock and current config.
pub fn open_for_change(path: &Path) -> Result<(Array, Stored), Error> {
    let array = Array::open(path, Access::ReadWrite)?;
    array.require_superblock()?;
    let stored = config_store::read(&array.disk)?;
    Ok((array, stored))
}

/// Opens a STAR disk read-only and returns its current config.
pub fn read_config(path: &Path) -> Result<Stored, Error> {
    let array = Array::open(path, Access::ReadOnly)?;
    array.require_superblock()?;
    config_store::read(&array.disk)
}
