//! The GUID Partition Table (UEFI 2.x, chapter 5) for 512-byte sectors, read and written
//! as plain bytes so that the rest of the crate decides when and how they reach the disk.
//!
//! Partition numbers are entry indexes plus one and are kept as they are: a deleted
//! partition leaves its entry empty rather than shifting the others down, because the
//! array config and the kernel (BLKPG) both name LUN partitions by number.
//!
//! We always write the usual geometry: protective MBR at LBA 0, primary header at LBA 1,
//! 128 entries of 128 bytes at LBA 2..=33, and the same table mirrored in the last 33
//! sectors (entries, then the backup header in the very last sector).

use crate::guid::Guid;
use crate::layout::{ALIGN_SECTORS, GPT_ENTRIES, GPT_ENTRY_SIZE, SECTOR};

const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION_1_0: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
const NAME_UNITS: usize = 36;
const SECTOR_USIZE: usize = SECTOR as usize;
const ENTRIES_BYTES: usize = GPT_ENTRIES * GPT_ENTRY_SIZE;
const ENTRIES_SECTORS: u64 = (ENTRIES_BYTES / SECTOR_USIZE) as u64;
/// Protective MBR, header and entry array: the first usable LBA.
pub const PRIMARY_SECTORS: u64 = 2 + ENTRIES_SECTORS;
/// Entry array and header at the end of the disk.
pub const BACKUP_SECTORS: u64 = 1 + ENTRIES_SECTORS;

/// The GPT's own checksum is the IEEE CRC32 (as zlib), not STAR's CRC32C.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based: entry index + 1, as the kernel numbers partitions.
    pub number: u32,
    pub name: String,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub attributes: u64,
}

impl Partition {
    pub fn start_bytes(&self) -> u64 {
        self.first_lba * SECTOR
    }

    pub fn size_bytes(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// A free, aligned stretch of the disk, in sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub first_lba: u64,
    pub sectors: u64,
}

impl Extent {
    pub fn bytes(&self) -> u64 {
        self.sectors * SECTOR
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub disk_guid: Guid,
    /// The size of the disk this table is for, in sectors.
    pub total_sectors: u64,
    /// Used entries only, sorted by number.
    pub partitions: Vec<Partition>,
}

/// A table read from a disk, with what was wrong with the copy that was not used (or
/// with the two copies' agreement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadGpt {
    pub gpt: Gpt,
    pub problems: Vec<String>,
}

/// The fields of a header that reading needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    alternate_lba: u64,
    disk_guid: Guid,
    entries_lba: u64,
    entry_count: usize,
    entry_size: usize,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks a partition name fits an entry: 36 UTF-16 units, no NUL (readers stop there).
pub fn check_name(name: &str) -> Result<(), String> {
    let units = name.encode_utf16().count();
    if units > NAME_UNITS {
        return Err(format!(
            "partition name {name:?} is {units} UTF-16 units long; a GPT entry holds {NAME_UNITS}"
        ));
    }
    if name.contains('\0') {
        return Err(format!("partition name {name:?} contains a NUL character"));
    }
    Ok(())
}

impl Gpt {
    pub fn new(disk_guid: Guid, total_sectors: u64) -> Gpt {
        Gpt {
            disk_guid,
            total_sectors,
            partitions: Vec::new(),
        }
    }

    pub fn first_usable_lba(&self) -> u64 {
        PRIMARY_SECTORS
    }

    pub fn last_usable_lba(&self) -> u64 {
        self.total_sectors.saturating_sub(BACKUP_SECTORS + 1)
    }

    pub fn disk_bytes(&self) -> u64 {
        self.total_sectors * SECTOR
    }

    /// The end (exclusive LBA) of the space partitions may use, on a 1 MiB boundary.
    /// Everything from there to the disk's end is the backup table's, with slack.
    pub fn usable_end_aligned(&self) -> u64 {
        (self.last_usable_lba() + 1) / ALIGN_SECTORS * ALIGN_SECTORS
    }

    pub fn partition(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// Adds a partition; refused if it would break the table (see [`Gpt::validate`]).
    pub fn insert(&mut self, partition: Partition) -> Result<(), String> {
        let mut next = self.clone();
        next.partitions.push(partition);
        next.partitions.sort_by_key(|p| p.number);
        next.validate()?;
        *self = next;
        Ok(())
    }

    pub fn remove(&mut self, number: u32) -> Option<Partition> {
        let i = self.partitions.iter().position(|p| p.number == number)?;
        Some(self.partitions.remove(i))
    }

    /// The lowest entry number at or above `from` that is not in use.
    pub fn free_number(&self, from: u32) -> Option<u32> {
        (from.max(1)..=GPT_ENTRIES as u32).find(|n| self.partition(*n).is_none())
    }

    /// The free stretches between partitions, each trimmed inward to 1 MiB boundaries,
    /// in disk order. A partition that is not aligned still blocks every sector it uses.
    pub fn free_extents(&self) -> Vec<Extent> {
        let start = self.first_usable_lba().next_multiple_of(ALIGN_SECTORS);
        let end = self.usable_end_aligned();
        let mut used: Vec<(u64, u64)> = self
            .partitions
            .iter()
            .map(|p| (p.first_lba, p.last_lba + 1))
            .collect();
        used.sort_unstable();
        let mut free = Vec::new();
        let mut cursor = start;
        for (first, past) in used.into_iter().chain([(end, end)]) {
            let gap_end = (first / ALIGN_SECTORS * ALIGN_SECTORS).min(end);
            if gap_end > cursor {
                free.push(Extent {
                    first_lba: cursor,
                    sectors: gap_end - cursor,
                });
            }
            cursor = cursor.max(past.next_multiple_of(ALIGN_SECTORS));
        }
        free
    }

    /// What the spec requires of a table: names that fit, partitions inside the usable
    /// area and apart, non-nil and distinct GUIDs, numbers within the entry array.
    pub fn validate(&self) -> Result<(), String> {
        if self.total_sectors < PRIMARY_SECTORS + BACKUP_SECTORS + 1 {
            return Err(format!(
                "a disk of {} sectors is too small for a GPT",
                self.total_sectors
            ));
        }
        if self.total_sectors.checked_mul(SECTOR).is_none() {
            return Err(format!(
                "a disk of {} sectors is too large to address in bytes",
                self.total_sectors
            ));
        }
        if self.disk_guid == Guid::NIL {
            return Err("the disk GUID is nil".into());
        }
        let (first, last) = (self.first_usable_lba(), self.last_usable_lba());
        for (i, p) in self.partitions.iter().enumerate() {
            check_name(&p.name)?;
            if p.number == 0 || p.number as usize > GPT_ENTRIES {
                return Err(format!(
                    "partition number {} is outside 1..={GPT_ENTRIES}",
                    p.number
                ));
            }
            if self.partitions[..i].iter().any(|q| q.number == p.number) {
                return Err(format!("partition number {} is used twice", p.number));
            }
            // A nil type GUID marks an unused entry: the partition would vanish.
            if p.type_guid == Guid::NIL || p.unique_guid == Guid::NIL {
                return Err(format!(
                    "partition {} {:?} has a nil GUID",
                    p.number, p.name
                ));
            }
            if self.partitions[..i]
                .iter()
                .any(|q| q.unique_guid == p.unique_guid)
                || p.unique_guid == self.disk_guid
            {
                return Err(format!(
                    "partition {}: unique GUID {} is used twice",
                    p.number, p.unique_guid
                ));
            }
            if p.first_lba > p.last_lba || p.first_lba < first || p.last_lba > last {
                return Err(format!(
                    "partition {} {:?} spans LBA {}..={}, outside the usable {first}..={last}",
                    p.number, p.name, p.first_lba, p.last_lba
                ));
            }
            if let Some(q) = self.partitions[..i]
                .iter()
                .find(|q| q.first_lba <= p.last_lba && p.first_lba <= q.last_lba)
            {
                return Err(format!(
                    "partitions {} {:?} and {} {:?} overlap",
                    q.number, q.name, p.number, p.name
                ));
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; ENTRIES_BYTES];
        for p in &self.partitions {
            let at = (p.number as usize - 1) * GPT_ENTRY_SIZE;
            let e = &mut out[at..at + GPT_ENTRY_SIZE];
            e[0..16].copy_from_slice(&p.type_guid.to_gpt_bytes());
            e[16..32].copy_from_slice(&p.unique_guid.to_gpt_bytes());
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
            for (unit, slot) in p.name.encode_utf16().zip(e[56..128].chunks_exact_mut(2)) {
                slot.copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }

    fn header(&self, my_lba: u64, alternate_lba: u64, entries_lba: u64, entries: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR_USIZE];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&REVISION_1_0.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable_lba().to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable_lba().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.to_gpt_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(GPT_ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(GPT_ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&CRC32.checksum(entries).to_le_bytes());
        let crc = CRC32.checksum(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// One partition of type 0xEE over the whole disk (capped at 2^32-1 sectors), so
    /// that MBR-only tools see the disk as in use rather than empty.
    fn protective_mbr(&self) -> Vec<u8> {
        let mut m = vec![0u8; SECTOR_USIZE];
        let last_lba = (self.total_sectors - 1).min(u64::from(u32::MAX));
        let e = &mut m[446..462];
        // Not bootable: firmware must not treat the disk as a legacy MBR disk.
        e[0] = 0x00;
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        e[4] = 0xEE;
        e[5..8].copy_from_slice(&chs(last_lba));
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        e[12..16].copy_from_slice(&(last_lba as u32).to_le_bytes());
        m[510] = 0x55;
        m[511] = 0xAA;
        m
    }

    /// LBA 0..=33: protective MBR, primary header, entry array.
    pub fn primary_bytes(&self) -> Vec<u8> {
        let entries = self.entries();
        let mut out = self.protective_mbr();
        out.extend(self.header(1, self.total_sectors - 1, 2, &entries));
        out.extend(&entries);
        out
    }

    /// The last 33 sectors (entry array, then backup header) and their byte offset.
    pub fn backup_bytes(&self) -> (u64, Vec<u8>) {
        let entries_lba = self.total_sectors - BACKUP_SECTORS;
        let entries = self.entries();
        let header = self.header(self.total_sectors - 1, 1, entries_lba, &entries);
        let mut out = entries;
        out.extend(header);
        (entries_lba * SECTOR, out)
    }

    /// Reads the table of a disk of `total_sectors` from the bytes at its start (`head`,
    /// from offset 0) and at its end (`tail`, ending at the disk's last byte). Either
    /// copy is enough; what is wrong with the other is returned as a problem.
    pub fn read(head: &[u8], tail: &[u8], total_sectors: u64) -> Result<ReadGpt, String> {
        let disk_bytes = total_sectors * SECTOR;
        let tail_offset = disk_bytes.saturating_sub(tail.len() as u64);
        let bytes_at = |lba: u64, len: usize| -> Option<&[u8]> {
            let start = lba.checked_mul(SECTOR)?;
            let end = start.checked_add(len as u64)?;
            if end <= head.len() as u64 {
                head.get(start as usize..end as usize)
            } else if start >= tail_offset && end <= disk_bytes {
                tail.get((start - tail_offset) as usize..(end - tail_offset) as usize)
            } else {
                None
            }
        };
        let copy = |which: &str, lba: u64| -> Result<(Header, Vec<Partition>), String> {
            let sector = bytes_at(lba, SECTOR_USIZE)
                .ok_or_else(|| format!("{which} GPT header: LBA {lba} is not on the disk"))?;
            let header = parse_header(which, sector, lba, total_sectors)?;
            let len = header.entry_count * header.entry_size;
            let array = bytes_at(header.entries_lba, len).ok_or_else(|| {
                format!(
                    "{which} GPT: entry array at LBA {} is outside the bytes read",
                    header.entries_lba
                )
            })?;
            let (stored, computed) = (le32(sector, 88), CRC32.checksum(array));
            if stored != computed {
                return Err(format!(
                    "{which} GPT entry array: CRC32 {stored:#010x}, computed {computed:#010x}"
                ));
            }
            let partitions = parse_entries(array, header.entry_size);
            Ok((header, partitions))
        };
        let primary = copy("primary", 1);
        let backup = match &primary {
            // The primary header says where its mirror is; trust it only if it is whole.
            Ok((h, _)) if h.alternate_lba != total_sectors - 1 => Err(format!(
                "backup GPT header: the primary points at LBA {}, not at the disk's last \
                 sector {} (was the disk resized?)",
                h.alternate_lba,
                total_sectors - 1
            )),
            _ => copy("backup", total_sectors - 1),
        };
        let mut problems = Vec::new();
        let (header, partitions) = match (primary, backup) {
            (Ok(p), Ok(b)) => {
                if p.1 != b.1 || p.0.disk_guid != b.0.disk_guid {
                    problems.push("the backup GPT differs from the primary".to_string());
                }
                p
            }
            (Ok(p), Err(e)) | (Err(e), Ok(p)) => {
                problems.push(e);
                p
            }
            (Err(p), Err(b)) => return Err(format!("{p}; {b}")),
        };
        Ok(ReadGpt {
            gpt: Gpt {
                disk_guid: header.disk_guid,
                total_sectors,
                partitions,
            },
            problems,
        })
    }
}

/// CHS of `lba` in the conventional 255-head, 63-sector geometry, or the "too large"
/// marker 0xFFFFFF the spec asks for past cylinder 1023.
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let cylinder = lba / (HEADS * SECTORS);
    if cylinder > 1023 {
        return [0xFF, 0xFF, 0xFF];
    }
    let head = (lba / SECTORS) % HEADS;
    let sector = lba % SECTORS + 1;
    [
        head as u8,
        (sector as u8) | (((cylinder >> 2) & 0xC0) as u8),
        (cylinder & 0xFF) as u8,
    ]
}

/// Whether `sector` starts with the GPT header signature, valid or not.
pub fn has_signature(sector: &[u8]) -> bool {
    sector.get(0..8) == Some(SIGNATURE)
}

fn parse_header(which: &str, h: &[u8], my_lba: u64, total_sectors: u64) -> Result<Header, String> {
    if !has_signature(h) {
        return Err(format!("{which} GPT header: no \"EFI PART\" signature"));
    }
    let revision = le32(h, 8);
    if revision >> 16 != 1 {
        return Err(format!("{which} GPT header: revision {revision:#010x}"));
    }
    let size = le32(h, 12) as usize;
    if !(HEADER_SIZE as usize..=SECTOR_USIZE).contains(&size) {
        return Err(format!("{which} GPT header: header size {size}"));
    }
    let mut copy = h[..size].to_vec();
    copy[16..20].fill(0);
    let (stored, computed) = (le32(h, 16), CRC32.checksum(&copy));
    if stored != computed {
        return Err(format!(
            "{which} GPT header: CRC32 {stored:#010x}, computed {computed:#010x}"
        ));
    }
    if le64(h, 24) != my_lba {
        return Err(format!(
            "{which} GPT header: it says it is at LBA {}, but was read from LBA {my_lba}",
            le64(h, 24)
        ));
    }
    let (first, last) = (le64(h, 40), le64(h, 48));
    if first > last || last >= total_sectors {
        return Err(format!(
            "{which} GPT header: usable LBAs {first}..={last} do not fit a disk of {total_sectors} sectors"
        ));
    }
    let (entry_count, entry_size) = (le32(h, 80) as usize, le32(h, 84) as usize);
    if entry_size < GPT_ENTRY_SIZE
        || !entry_size.is_power_of_two()
        || !(1..=4096).contains(&entry_count)
    {
        return Err(format!(
            "{which} GPT header: {entry_count} entries of {entry_size} bytes"
        ));
    }
    Ok(Header {
        alternate_lba: le64(h, 32),
        disk_guid: Guid::from_gpt_bytes(h[56..72].try_into().expect("16 bytes")),
        entries_lba: le64(h, 72),
        entry_count,
        entry_size,
    })
}

fn parse_entries(array: &[u8], entry_size: usize) -> Vec<Partition> {
    array
        .chunks_exact(entry_size)
        .enumerate()
        .filter_map(|(i, e)| {
            let type_guid = Guid::from_gpt_bytes(e[0..16].try_into().expect("16 bytes"));
            if type_guid == Guid::NIL {
                return None;
            }
            let units: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            Some(Partition {
                number: i as u32 + 1,
                name: String::from_utf16_lossy(&units),
                type_guid,
                unique_guid: Guid::from_gpt_bytes(e[16..32].try_into().expect("16 bytes")),
                first_lba: le64(e, 32),
                last_lba: le64(e, 40),
                attributes: le64(e, 48),
            })
        })
        .collect()
}

/// Names of the partition types a person is likely to meet, for messages.
pub fn type_name(t: Guid) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 9] = [
        ("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "EFI System"),
        ("0fc63daf-8483-4772-8e79-3d69d8477de4", "Linux filesystem"),
        ("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "Linux swap"),
        ("e6d6d379-f507-44c2-a23c-238f2a3df928", "Linux LVM"),
        ("a19d880f-05fc-4d3b-a006-743f0f84911e", "Linux RAID"),
        (
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            "Linux root (x86-64)",
        ),
        (
            "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
            "Microsoft basic data",
        ),
        ("e3c9e316-0b5c-4db8-817d-f92df00215ae", "Microsoft reserved"),
        ("21686148-6449-6e6f-744e-656564454649", "BIOS boot"),
    ];
    if t == crate::layout::META_TYPE {
        return Some("STAR metadata");
    }
    if t == crate::layout::LUN_TYPE {
        return Some("STAR LUN");
    }
    KNOWN
        .iter()
        .find(|(g, _)| Guid::parse(g).ok() == Some(t))
        .map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LUN_TYPE;

    const MIB: u64 = ALIGN_SECTORS;

    fn guid(n: u8) -> Guid {
        Guid::v4_from([n; 16])
    }

    fn part(number: u32, first_mib: u64, mib: u64) -> Partition {
        Partition {
            number,
            name: format!("p{number}"),
            type_guid: LUN_TYPE,
            unique_guid: guid(number as u8 + 100),
            first_lba: first_mib * MIB,
            last_lba: (first_mib + mib) * MIB - 1,
            attributes: 0,
        }
    }

    fn image(gpt: &Gpt) -> Vec<u8> {
        let mut disk = vec![0u8; (gpt.total_sectors * SECTOR) as usize];
        let primary = gpt.primary_bytes();
        disk[..primary.len()].copy_from_slice(&primary);
        let (at, backup) = gpt.backup_bytes();
        disk[at as usize..at as usize + backup.len()].copy_from_slice(&backup);
        disk
    }

    fn sample() -> Gpt {
        let mut g = Gpt::new(guid(1), 100 * MIB);
        g.insert(part(1, 1, 10)).unwrap();
        g.insert(part(3, 30, 5)).unwrap();
        g
    }

    #[test]
    fn written_tables_read_back_with_numbers_kept() {
        let g = sample();
        let disk = image(&g);
        let read = Gpt::read(
            &disk[..1 << 20],
            &disk[disk.len() - (1 << 20)..],
            g.total_sectors,
        )
        .unwrap();
        assert_eq!(read.problems, Vec::<String>::new());
        assert_eq!(read.gpt, g);
        assert_eq!(read.gpt.partition(3).unwrap().name, "p3");
        assert!(read.gpt.partition(2).is_none());
    }

    fn read_whole(disk: &[u8], total_sectors: u64) -> Result<ReadGpt, String> {
        Gpt::read(
            &disk[..1 << 20],
            &disk[disk.len() - (1 << 20)..],
            total_sectors,
        )
    }

    #[test]
    fn either_copy_is_enough_and_the_other_is_reported() {
        let g = sample();
        let mut disk = image(&g);
        disk[512 + 60] ^= 1; // the disk GUID, inside the primary header
        let n = disk.len();
        let read = Gpt::read(&disk[..1 << 20], &disk[n - (1 << 20)..], g.total_sectors).unwrap();
        assert_eq!(read.gpt, g);
        assert!(
            read.problems[0].starts_with("primary GPT header: CRC32"),
            "{:?}",
            read.problems
        );

        let mut disk = image(&g);
        disk[n - 600] ^= 1; // inside the backup entry array
        let read = Gpt::read(&disk[..1 << 20], &disk[n - (1 << 20)..], g.total_sectors).unwrap();
        assert_eq!(read.gpt, g);
        assert!(
            read.problems[0].starts_with("backup GPT entry array"),
            "{:?}",
            read.problems
        );

        disk[512 + 60] ^= 1;
        let err = Gpt::read(&disk[..1 << 20], &disk[n - (1 << 20)..], g.total_sectors).unwrap_err();
        assert!(
            err.contains("primary GPT header") && err.contains("backup GPT"),
            "{err}"
        );
    }

    #[test]
    fn each_checksum_and_field_is_checked() {
        let g = sample();
        let total = g.total_sectors;
        let good = image(&g);
        let n = good.len();
        let problems = |disk: &[u8]| read_whole(disk, total).unwrap().problems;

        let mut bad = good.clone();
        bad[512 + 40] ^= 1; // first usable LBA
        assert!(problems(&bad)[0].starts_with("primary GPT header: CRC32"));

        let mut bad = good.clone();
        bad[1024 + 56] ^= 0x20; // a letter of the first partition's name
        assert!(problems(&bad)[0].starts_with("primary GPT entry array: CRC32"));

        let mut bad = good.clone();
        bad[n - 512 + 24] ^= 1; // the backup's own LBA
        assert!(problems(&bad)[0].starts_with("backup GPT header: CRC32"));

        let mut bad = good.clone();
        bad[512] = b'X';
        assert!(problems(&bad)[0].contains("no \"EFI PART\" signature"));

        // Both copies whole, but not the same table.
        let mut other = g.clone();
        other.remove(3);
        let mut mixed = image(&other);
        mixed[n - (1 << 20)..].copy_from_slice(&good[n - (1 << 20)..]);
        let read = read_whole(&mixed, total).unwrap();
        assert_eq!(read.gpt, other);
        assert_eq!(read.problems, ["the backup GPT differs from the primary"]);

        // A primary cut short, and no backup to fall back on.
        assert!(Gpt::read(&good[..33 * 512], &[], total).is_err());
    }

    #[test]
    fn header_fields_are_where_the_spec_puts_them() {
        let mut g = sample();
        let mut p = part(2, 12, 1);
        p.type_guid = Guid::ESP;
        // Exactly 36 UTF-16 units, one of them outside ASCII.
        p.name = "données-0123456789abcdefghijklmnopqr".into();
        p.attributes = (1 << 63) | (1 << 2) | 1;
        g.insert(p).unwrap();
        let b = g.primary_bytes();
        let mbr = &b[..512];
        assert_eq!(&mbr[446..451], &[0, 0x00, 0x02, 0x00, 0xEE]);
        assert_eq!(mbr[451..454], chs(g.total_sectors - 1));
        assert_eq!(le32(mbr, 446 + 8), 1);
        assert_eq!(le32(mbr, 446 + 12) as u64, g.total_sectors - 1);
        assert!(mbr[462..510].iter().all(|&x| x == 0), "one MBR entry only");
        assert_eq!(&mbr[510..512], &[0x55, 0xAA]);

        let h = &b[512..1024];
        assert_eq!(&h[..8], b"EFI PART");
        assert_eq!(&h[8..16], &[0, 0, 1, 0, 92, 0, 0, 0]);
        assert_eq!(le32(h, 20), 0);
        assert_eq!(le64(h, 24), 1);
        assert_eq!(le64(h, 32), g.total_sectors - 1);
        assert_eq!(le64(h, 40), 34);
        assert_eq!(le64(h, 48), g.total_sectors - 34);
        assert_eq!(&h[56..72], &g.disk_guid.to_gpt_bytes());
        assert_eq!(le64(h, 72), 2);
        assert_eq!((le32(h, 80), le32(h, 84)), (128, 128));
        assert!(h[92..].iter().all(|&x| x == 0));

        // Entry 2 (partition 2) at its number's place, between partitions 1 and 3.
        let e = &b[1024 + 128..1024 + 256];
        assert_eq!(&e[..16], &Guid::ESP.to_gpt_bytes());
        assert_eq!(le64(e, 32), 12 * MIB);
        assert_eq!(le64(e, 40), 13 * MIB - 1);
        assert_eq!(le64(e, 48), (1 << 63) | (1 << 2) | 1);
        assert_eq!(&e[56..60], &[b'd', 0, b'o', 0]);
        assert_eq!(&e[64..66], &0xe9u16.to_le_bytes(), "é as one UTF-16 unit");
        assert_ne!(&e[126..128], &[0, 0], "the 36th unit fills the field");
        assert!(
            b[1024 + 3 * 128..].iter().all(|&x| x == 0),
            "unused entries"
        );

        let (offset, backup) = g.backup_bytes();
        let bh = &backup[backup.len() - 512..];
        assert_eq!(offset, (g.total_sectors - 33) * 512);
        assert_eq!(le64(bh, 24), g.total_sectors - 1);
        assert_eq!(le64(bh, 32), 1);
        assert_eq!(le64(bh, 72), offset / 512);
        assert_eq!(h[40..72], bh[40..72]);
        assert_eq!(h[80..92], bh[80..92]);
        assert_eq!(backup[..16384], b[1024..]);

        let read = read_whole(&image(&g), g.total_sectors).unwrap();
        assert_eq!(read.problems, Vec::<String>::new());
        assert_eq!(read.gpt, g);
    }

    #[test]
    fn protective_mbr_chs_and_size_cap() {
        // 3 MiB: the last sector, 6143, is C/H/S 0/97/33.
        let small = Gpt::new(guid(1), 6144);
        assert_eq!(&small.primary_bytes()[446 + 5..446 + 8], &[97, 33, 0]);
        // Cylinder 1023 is the last one CHS can name.
        assert_eq!(chs(1024 * 255 * 63 - 1), [254, 0xFF, 0xFF]);
        assert_eq!(chs(1024 * 255 * 63), [0xFF; 3]);
        let huge = Gpt::new(guid(1), 1 << 33);
        let b = huge.primary_bytes();
        assert_eq!(le32(&b, 446 + 12), u32::MAX);
        assert_eq!(&b[446 + 5..446 + 8], &[0xFF; 3]);
    }

    #[test]
    fn free_extents_are_aligned_gaps() {
        let g = sample();
        // Usable ends at the last whole MiB before the backup table: 99 MiB.
        assert_eq!(
            g.free_extents(),
            vec![
                Extent {
                    first_lba: 11 * MIB,
                    sectors: 19 * MIB
                },
                Extent {
                    first_lba: 35 * MIB,
                    sectors: 64 * MIB
                },
            ]
        );
        let mut odd = g.clone();
        let mut p = part(2, 12, 1);
        p.first_lba += 1;
        p.last_lba += 1;
        odd.insert(p).unwrap();
        assert_eq!(
            odd.free_extents()[0],
            Extent {
                first_lba: 11 * MIB,
                sectors: MIB
            }
        );
        assert_eq!(
            odd.free_extents()[1],
            Extent {
                first_lba: 14 * MIB,
                sectors: 16 * MIB
            }
        );
        assert_eq!(g.free_number(2), Some(2));
        assert_eq!(g.free_number(1), Some(2));
    }

    #[test]
    fn broken_tables_are_refused() {
        let mut g = sample();
        assert!(g.insert(part(4, 32, 1)).unwrap_err().contains("overlap"));
        assert!(g.insert(part(3, 50, 1)).unwrap_err().contains("used twice"));
        assert!(g
            .insert(part(4, 99, 1))
            .unwrap_err()
            .contains("outside the usable"));
        let mut early = part(4, 0, 1);
        early.first_lba = PRIMARY_SECTORS - 1;
        assert!(g.insert(early).unwrap_err().contains("outside the usable"));
        let mut long = part(4, 50, 1);
        long.name = "x".repeat(37);
        assert!(g.insert(long).unwrap_err().contains("37 UTF-16 units"));
        // Astral-plane characters take two UTF-16 units each.
        let mut astral = part(4, 50, 1);
        astral.name = "🦀".repeat(19);
        assert!(g.insert(astral).unwrap_err().contains("38 UTF-16 units"));
        let mut nul = part(4, 50, 1);
        nul.name = "a\0b".into();
        assert!(g.insert(nul).unwrap_err().contains("NUL"));
        let mut nil = part(4, 50, 1);
        nil.type_guid = Guid::NIL;
        assert!(g.insert(nil).unwrap_err().contains("nil GUID"));
        let mut same = part(4, 50, 1);
        same.unique_guid = g.partition(1).unwrap().unique_guid;
        assert!(g.insert(same).unwrap_err().contains("used twice"));
        let mut disk = part(4, 50, 1);
        disk.unique_guid = g.disk_guid;
        assert!(g.insert(disk).unwrap_err().contains("used twice"));
        assert!(g
            .insert(part(129, 50, 1))
            .unwrap_err()
            .contains("outside 1..=128"));
        assert_eq!(g, sample(), "a refused insert leaves the table as it was");

        assert!(Gpt::new(guid(1), 67)
            .validate()
            .unwrap_err()
            .contains("too small"));
        assert!(Gpt::new(guid(1), u64::MAX / 2)
            .validate()
            .unwrap_err()
            .contains("too large"));
        assert!(Gpt::new(Guid::NIL, 100 * MIB)
            .validate()
            .unwrap_err()
            .contains("nil"));
        Gpt::new(guid(1), 68).validate().unwrap();
    }

    #[test]
    fn protective_mbr_covers_the_disk() {
        let g = sample();
        let b = g.primary_bytes();
        assert_eq!(b.len() as u64, PRIMARY_SECTORS * SECTOR);
        assert_eq!(b[446 + 4], 0xEE);
        assert_eq!(le32(&b, 446 + 12) as u64, g.total_sectors - 1);
        assert_eq!(&b[510..512], &[0x55, 0xAA]);
        let (at, backup) = g.backup_bytes();
        assert_eq!(at + backup.len() as u64, g.total_sectors * SECTOR);
    }
}
