//! What a disk holds, judged from its first and last MiB: blank, a STAR array, or
//! something else, named as precisely as the signatures allow. Init refuses anything
//! but blank unless told to wipe it, so a mistyped device name cannot destroy data.

use crate::array::{is_star_gpt, read_edges, Edges};
use crate::config_store;
use crate::error::Error;
use crate::gpt::{self, Gpt};
use crate::io::Disk;
use crate::layout::{human_size, SECTOR};
use crate::superblock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Both ends are all zeroes.
    Blank,
    /// STAR's GPT and a valid superblock.
    Star {
        array_name: String,
        /// The config's generation, or why it cannot be read.
        generation: Result<u64, String>,
    },
    /// Anything else, described for a person.
    Other(String),
}

impl Found {
    /// Why init refuses this disk without `force`; `None` for a blank disk.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Found::Blank => None,
            Found::Star {
                array_name,
                generation: Ok(g),
            } => Some(format!(
                "already initialized for array {array_name} (generation {g}); use --force to wipe it"
            )),
            Found::Star {
                array_name,
                generation: Err(e),
            } => Some(format!(
                "already initialized for array {array_name} (config unreadable: {e}); use --force to wipe it"
            )),
            Found::Other(what) => Some(format!("the disk holds {what}; use --force to wipe it")),
        }
    }
}

pub fn probe(disk: &Disk) -> Result<Found, Error> {
    let edges = read_edges(disk)?;
    let (head, tail) = (edges.head.as_bytes(), edges.tail.as_bytes());
    if head.iter().chain(tail).all(|b| *b == 0) {
        return Ok(Found::Blank);
    }
    let sectors = disk.size() / SECTOR;
    let backup_header = tail
        .get(tail.len().saturating_sub(SECTOR as usize)..)
        .unwrap_or(&[]);
    if gpt::has_signature(head.get(512..1024).unwrap_or(&[])) || gpt::has_signature(backup_header) {
        return Ok(match Gpt::read(head, tail, sectors) {
            Ok(read) if is_star_gpt(&read.gpt).is_ok() => match superblock::read(disk)? {
                Ok(sb) => Found::Star {
                    array_name: sb.array_name,
                    generation: match config_store::read(disk) {
                        Ok(stored) => Ok(stored.generation),
                        Err(e) => Err(e.to_string()),
                    },
                },
                Err(e) => Found::Other(format!(
                    "STAR's partition table without a valid superblock ({e}): an interrupted init?"
                )),
            },
            Ok(read) => Found::Other(describe_gpt(&read.gpt)),
            Err(e) => Found::Other(format!("a damaged GPT ({e})")),
        });
    }
    Ok(Found::Other(describe_other(&edges)))
}

fn describe_gpt(gpt: &Gpt) -> String {
    if gpt.partitions.is_empty() {
        return "a GPT partition table with no partitions".into();
    }
    let parts: Vec<String> = gpt
        .partitions
        .iter()
        .map(|p| {
            let kind = gpt::type_name(p.type_guid)
                .map(str::to_string)
                .unwrap_or_else(|| format!("type {}", p.type_guid));
            format!(
                "{} {:?} ({kind}, {} at byte {})",
                p.number,
                p.name,
                human_size(p.size_bytes()),
                p.start_bytes()
            )
        })
        .collect();
    format!(
        "a GPT partition table with {} partition(s): {}",
        parts.len(),
        parts.join(", ")
    )
}

fn text_field(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn labelled(what: &str, label: String) -> String {
    if label.is_empty() {
        what.to_string()
    } else {
        format!("{what} labelled {label:?}")
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Recognises the signatures of what people put on whole disks, at their documented
/// offsets, in the order that avoids false matches; else points at the first non-zero
/// byte.
pub fn describe_other(edges: &Edges) -> String {
    let head = edges.head.as_bytes();
    let at = |offset: usize, len: usize| head.get(offset..offset + len).unwrap_or(&[]);
    // ext2/3/4: the superblock at byte 1024, magic 0xEF53 at offset 56 within it.
    if at(1080, 2) == [0x53, 0xEF] {
        let compat = le32(head, 1024 + 0x5C);
        let incompat = le32(head, 1024 + 0x60);
        // Extents, 64-bit or flex_bg are ext4's; a journal alone is ext3.
        let kind = if incompat & (0x40 | 0x80 | 0x200) != 0 {
            "an ext4 file system"
        } else if compat & 0x4 != 0 {
            "an ext3 file system"
        } else {
            "an ext2 file system"
        };
        return labelled(kind, text_field(at(1024 + 0x78, 16)));
    }
    if at(0, 4) == b"XFSB" {
        return labelled("an XFS file system", text_field(at(108, 12)));
    }
    // LVM2: a label in one of the first four sectors.
    for sector in 0..4 {
        if at(sector * 512, 8) == b"LABELONE" && at(sector * 512 + 24, 8) == b"LVM2 001" {
            return format!("an LVM2 physical volume (label in sector {sector})");
        }
    }
    // Linux RAID (md) superblock 1.1 at byte 0, 1.2 at byte 4096.
    for offset in [0, 4096] {
        if at(offset, 4) == 0xa92b_4efc_u32.to_le_bytes() {
            return format!("a Linux RAID (md) member (superblock at byte {offset})");
        }
    }
    // Swap: the signature ends the first page, whatever the page size was.
    for page in [4096usize, 8192, 16384, 65536] {
        let sig = at(page - 10, 10);
        if sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE" {
            return labelled("Linux swap", text_field(at(1024 + 28, 16)));
        }
    }
    if at(510, 2) == [0x55, 0xAA] {
        return describe_mbr(head);
    }
    let first_nonzero = head
        .iter()
        .position(|b| *b != 0)
        .map(|i| i as u64)
        .or_else(|| {
            let tail = edges.tail.as_bytes();
            tail.iter()
                .position(|b| *b != 0)
                .map(|i| edges.tail_offset + i as u64)
        });
    match first_nonzero {
        Some(offset) => format!("non-zero data at byte offset {offset}"),
        None => "nothing recognisable".into(),
    }
}

fn describe_mbr(head: &[u8]) -> String {
    let mut parts = Vec::new();
    for i in 0..4 {
        let e = &head[446 + 16 * i..462 + 16 * i];
        let (status, kind) = (e[0], e[4]);
        let (start, sectors) = (le32(e, 8), le32(e, 12));
        if kind == 0 || sectors == 0 {
            continue;
        }
        if status != 0 && status != 0x80 {
            // Not a partition entry: this is a boot sector of something else.
            return "a boot sector (0x55AA at byte 510) that is not a partition table".into();
        }
        if kind == 0xEE {
            return "a protective MBR whose GPT is missing".into();
        }
        parts.push(format!(
            "{} (type {kind:#04x}, {} at sector {start})",
            i + 1,
            human_size(u64::from(sectors) * SECTOR)
        ));
    }
    if parts.is_empty() {
        "an MBR boot sector with no partitions".into()
    } else {
        format!("an MBR partition table: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::Blocks;

    fn edges(head: &[u8]) -> Edges {
        Edges {
            head: Blocks::from_bytes(head),
            tail: Blocks::zeroed(1),
            tail_offset: 1 << 30,
        }
    }

    #[test]
    fn file_systems_are_named_by_their_magic() {
        let mut h = vec![0u8; 1 << 16];
        h[1080..1082].copy_from_slice(&[0x53, 0xEF]);
        h[1024 + 0x60] = 0x40;
        h[1024 + 0x78..1024 + 0x7c].copy_from_slice(b"home");
        assert_eq!(
            describe_other(&edges(&h)),
            "an ext4 file system labelled \"home\""
        );
        h[1024 + 0x60] = 0;
        h[1024 + 0x5C] = 0x4;
        h[1024 + 0x78] = 0;
        assert_eq!(describe_other(&edges(&h)), "an ext3 file system");

        let mut h = vec![0u8; 1 << 16];
        h[0..4].copy_from_slice(b"XFSB");
        assert_eq!(describe_other(&edges(&h)), "an XFS file system");

        let mut h = vec![0u8; 1 << 16];
        h[512..520].copy_from_slice(b"LABELONE");
        h[536..544].copy_from_slice(b"LVM2 001");
        assert_eq!(
            describe_other(&edges(&h)),
            "an LVM2 physical volume (label in sector 1)"
        );

        let mut h = vec![0u8; 1 << 16];
        h[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(describe_other(&edges(&h)), "Linux swap");
    }

    #[test]
    fn mbr_partitions_are_listed() {
        let mut h = vec![0u8; 4096];
        h[510..512].copy_from_slice(&[0x55, 0xAA]);
        let e = &mut h[446..462];
        e[4] = 0x83;
        e[8..12].copy_from_slice(&2048u32.to_le_bytes());
        e[12..16].copy_from_slice(&204800u32.to_le_bytes());
        assert_eq!(
            describe_other(&edges(&h)),
            "an MBR partition table: 1 (type 0x83, 100 MiB at sector 2048)"
        );
    }

    #[test]
    fn anything_else_is_located() {
        let mut h = vec![0u8; 8192];
        h[5000] = 1;
        assert_eq!(
            describe_other(&edges(&h)),
            "non-zero data at byte offset 5000"
        );
        let mut e = edges(&[0u8; 4096]);
        e.tail.as_bytes_mut()[10] = 1;
        assert_eq!(
            describe_other(&e),
            format!("non-zero data at byte offset {}", (1u64 << 30) + 10)
        );
    }
}
