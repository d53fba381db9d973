//! Where everything is on the shared disk.
//!
//! ```text
//! disk                                   metadata partition (partition 1, 64 MiB)
//! LBA 0        protective MBR            block 0        superblock
//! LBA 1..=33   primary GPT               block 1, 2     heartbeat slot of node 1, 2
//! 1 MiB        partition 1 "STAR-META"   block 3, 4     mailbox of node 1, 2
//! 65 MiB ...   partitions 2..N           block 5        ownership record (term, owner)
//!              "star-lun-<name>"         blocks 6, 7    spare
//! last 33 LBAs backup GPT                blocks 8..=15  reserved for ALUA/PR state
//!                                        1 MiB          array config, copy A (≤ 1 MiB)
//!                                        2 MiB          array config, copy B (≤ 1 MiB)
//! ```
//!
//! Every metadata record sits alone in its own 4 KiB block: a block is the unit a
//! 4K-sector disk writes atomically at best, and the unit O_DIRECT I/O is aligned to, so
//! one node's torn write can never damage a neighbour's record. The heartbeat slots,
//! mailboxes and ownership record are laid out here for star-heartbeat; this crate writes
//! only the superblock and the config copies.

use crate::guid::Guid;

/// GPT logical block size. A disk whose kernel sector size differs is refused: the GPT
/// would be written at the wrong offsets.
pub const SECTOR: u64 = 512;
/// Partitions start and end on 1 MiB boundaries, as partitioning tools do: aligned to
/// any erase block, stripe or 4K physical sector a disk is likely to have.
pub const ALIGN: u64 = 1 << 20;
pub const ALIGN_SECTORS: u64 = ALIGN / SECTOR;
/// The unit of every metadata record and of all I/O this crate does.
pub const BLOCK: usize = 4096;
pub const BLOCK_U64: u64 = BLOCK as u64;

/// Entries in each GPT partition array (the usual 128, so 16 KiB per array).
pub const GPT_ENTRIES: usize = 128;
pub const GPT_ENTRY_SIZE: usize = 128;

/// Partition 1: the metadata area. 64 MiB is far more than the records need; the slack
/// keeps room for later records without a layout change.
pub const META_PARTITION: u32 = 1;
pub const META_START: u64 = ALIGN;
pub const META_SIZE: u64 = 64 << 20;
pub const META_NAME: &str = "STAR-META";
/// Partition type of the metadata area. Both type GUIDs are fixed, randomly generated
/// (version 4) GUIDs belonging to STAR; no other software claims them.
pub const META_TYPE: Guid = Guid::parse_const("8355e9d3-f35f-4394-ba1d-20831f79052f");
/// Partition type of every LUN.
pub const LUN_TYPE: Guid = Guid::parse_const("3ca1a661-7eb6-4b5e-8f70-485a48e85bf6");
/// LUN partitions are named `star-lun-<lun name>`.
pub const LUN_NAME_PREFIX: &str = "star-lun-";
/// A GPT partition name holds 36 UTF-16 units; the prefix takes 9 of them, so LUN names
/// on the disk are limited to 27 characters (the array config alone would allow 32).
pub const MAX_LUN_NAME: usize = 36 - LUN_NAME_PREFIX.len();
pub const FIRST_LUN_PARTITION: u32 = 2;
/// Where LUN space begins: right after the metadata partition.
pub const LUN_AREA_START: u64 = META_START + META_SIZE;
/// The smallest disk worth initializing: the GPT, the metadata partition, and the 1 MiB
/// at the end that holds the backup GPT (no room for a LUN yet).
pub const MIN_DISK_BYTES: u64 = LUN_AREA_START + ALIGN;

/// Blocks of the metadata partition.
pub const SUPERBLOCK_BLOCK: u64 = 0;
pub const OWNERSHIP_BLOCK: u64 = 5;
pub const ALUA_PR_BLOCKS: std::ops::RangeInclusive<u64> = 8..=15;

/// Offsets of the two config copies inside the metadata partition, and their size.
pub const CONFIG_COPY_A: u64 = 1 << 20;
pub const CONFIG_COPY_B: u64 = 2 << 20;
pub const CONFIG_COPY_BYTES: u64 = 1 << 20;
/// One header block, then the payload.
pub const CONFIG_MAX_PAYLOAD: usize = CONFIG_COPY_BYTES as usize - BLOCK;

/// What init clears in the metadata partition so that no record of an earlier array
/// survives a forced re-init: every record block and both config copies.
pub const META_CLEARED_BYTES: u64 = CONFIG_COPY_B + CONFIG_COPY_BYTES;

// The cleared area stays inside the metadata partition.
const _: () = assert!(META_CLEARED_BYTES <= META_SIZE);

/// The heartbeat slot of controller `node` (1 or 2).
pub fn heartbeat_block(node: u8) -> Option<u64> {
    node_index(node).map(|i| 1 + i)
}

/// The mailbox of controller `node` (1 or 2): where the peer leaves it a poison pill or
/// a hand-over request.
pub fn mailbox_block(node: u8) -> Option<u64> {
    node_index(node).map(|i| 3 + i)
}

fn node_index(node: u8) -> Option<u64> {
    match node {
        1 | 2 => Some(u64::from(node) - 1),
        _ => None,
    }
}

/// Absolute byte offset on the disk of metadata block `block`.
pub const fn meta_block_offset(block: u64) -> u64 {
    META_START + block * BLOCK_U64
}

/// The GPT name of the partition that holds LUN `lun`.
pub fn lun_partition_name(lun: &str) -> String {
    format!("{LUN_NAME_PREFIX}{lun}")
}

/// The LUN name a partition name stands for, if it is a LUN partition's name.
pub fn lun_name_of_partition(partition_name: &str) -> Option<&str> {
    partition_name.strip_prefix(LUN_NAME_PREFIX)
}

/// `bytes` rounded up to whole MiB: a LUN's partition size.
pub fn round_up_to_align(bytes: u64) -> Option<u64> {
    bytes.div_ceil(ALIGN).checked_mul(ALIGN)
}

/// A size as people read it: exact units where they fit ("64 MiB"), two decimals where
/// they do not ("1.50 GiB"), bytes below 1 KiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut unit = 0;
    let mut scale = 1024u64;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        unit += 1;
        scale *= 1024;
    }
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!("{:.2} {}", bytes as f64 / scale as f64, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_do_not_overlap_and_fit_the_partition() {
        let mut blocks = vec![SUPERBLOCK_BLOCK, OWNERSHIP_BLOCK];
        for node in [1, 2] {
            blocks.push(heartbeat_block(node).unwrap());
            blocks.push(mailbox_block(node).unwrap());
        }
        blocks.extend(ALUA_PR_BLOCKS);
        let mut sorted = blocks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), blocks.len(), "two records share a block");
        assert!(*sorted.last().unwrap() * BLOCK_U64 < CONFIG_COPY_A);
        assert_eq!(CONFIG_COPY_A + CONFIG_COPY_BYTES, CONFIG_COPY_B);
        assert_eq!(heartbeat_block(0), None);
        assert_eq!(mailbox_block(3), None);
    }

    #[test]
    fn lun_names_map_to_partition_names_and_back() {
        let name = lun_partition_name("data0");
        assert_eq!(name, "star-lun-data0");
        assert_eq!(lun_name_of_partition(&name), Some("data0"));
        assert_eq!(lun_name_of_partition(META_NAME), None);
        assert_eq!(MAX_LUN_NAME, 27);
    }

    #[test]
    fn sizes_round_up_to_whole_mib() {
        assert_eq!(round_up_to_align(1), Some(ALIGN));
        assert_eq!(round_up_to_align(ALIGN), Some(ALIGN));
        assert_eq!(round_up_to_align(ALIGN + 512), Some(2 * ALIGN));
        assert_eq!(round_up_to_align(u64::MAX), None);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(3 << 29), "1.50 GiB");
        assert_eq!(human_size(1 << 40), "1 TiB");
    }
}
