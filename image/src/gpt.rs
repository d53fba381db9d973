//! GUID Partition Table for 512-byte sectors, as plain bytes (UEFI 2.x, chapter 5),
//! so that a disk image can be assembled in an ordinary file without loop devices.

use crate::guid::Guid;
use std::io::{Seek, SeekFrom, Write};

pub const SECTOR: u64 = 512;
/// Partitions start and end on 1 MiB boundaries: what partitioning tools do, and
/// what keeps them aligned to any erase block or RAID stripe a disk is likely to have.
pub const ALIGN: u64 = 1024 * 1024;
const ALIGN_SECTORS: u64 = ALIGN / SECTOR;

const ENTRY_COUNT: usize = 128;
const ENTRY_SIZE: usize = 128;
const ENTRIES_SECTORS: u64 = (ENTRY_COUNT * ENTRY_SIZE) as u64 / SECTOR;
/// Entry array plus header, at each end of the disk.
const TABLE_SECTORS: u64 = ENTRIES_SECTORS + 1;
/// Protective MBR, header, entry array.
const PRIMARY_SECTORS: u64 = 1 + TABLE_SECTORS;
const HEADER_SIZE: u32 = 92;
const REVISION_1_0: u32 = 0x0001_0000;
const SIGNATURE: &[u8; 8] = b"EFI PART";
const NAME_UNITS: usize = 36;
/// The smallest disk that holds both tables and one usable sector.
const MIN_SECTORS: u64 = 2 * TABLE_SECTORS + 2;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// Stored as UTF-16LE, at most 36 code units.
    pub name: String,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub attributes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptLayout {
    pub disk_guid: Guid,
    pub total_sectors: u64,
    pub partitions: Vec<GptPartition>,
}

fn check_name(name: &str) -> Result<(), String> {
    let units = name.encode_utf16().count();
    if units > NAME_UNITS {
        return Err(format!(
            "partition name {name:?} is {units} UTF-16 units; GPT holds at most {NAME_UNITS}"
        ));
    }
    // Readers stop at the first NUL, so one inside would silently cut the name.
    if name.contains('\0') {
        return Err(format!("partition name {name:?} contains a NUL character"));
    }
    Ok(())
}

impl GptLayout {
    /// Lays out partitions of the given sizes (bytes, rounded up to 1 MiB) one
    /// after another starting at 1 MiB, all 1 MiB aligned, and sizes the disk to
    /// end after the last partition + the 33 backup sectors, rounded up to 1 MiB.
    /// Each part is (name, type GUID, unique GUID, size in bytes, attributes).
    pub fn sequential(
        disk_guid: Guid,
        parts: &[(String, Guid, Guid, u64, u64)],
    ) -> Result<GptLayout, String> {
        let overflow = || "partition sizes overflow a 64-bit byte count".to_string();
        let mut next = ALIGN_SECTORS;
        let mut partitions = Vec::with_capacity(parts.len());
        for (name, type_guid, unique_guid, size, attributes) in parts {
            check_name(name)?;
            if *size == 0 {
                return Err(format!("partition {name:?} has size 0"));
            }
            let sectors = size
                .div_ceil(ALIGN)
                .checked_mul(ALIGN_SECTORS)
                .ok_or_else(overflow)?;
            let last = next.checked_add(sectors - 1).ok_or_else(overflow)?;
            partitions.push(GptPartition {
                name: name.clone(),
                type_guid: *type_guid,
                unique_guid: *unique_guid,
                first_lba: next,
                last_lba: last,
                attributes: *attributes,
            });
            next = last + 1;
        }
        let total_sectors = next
            .checked_add(TABLE_SECTORS)
            .and_then(|s| s.div_ceil(ALIGN_SECTORS).checked_mul(ALIGN_SECTORS))
            .filter(|s| s.checked_mul(SECTOR).is_some())
            .ok_or_else(overflow)?;
        let layout = GptLayout {
            disk_guid,
            total_sectors,
            partitions,
        };
        layout.validate()?;
        Ok(layout)
    }

    /// Checks what the spec requires of a table: names that fit, partitions
    /// inside the usable area and apart, distinct non-nil GUIDs, at most 128.
    /// `sequential` layouts always pass; hand-built ones should be checked.
    pub fn validate(&self) -> Result<(), String> {
        if self.total_sectors < MIN_SECTORS {
            return Err(format!(
                "disk of {} sectors is too small for GPT (needs at least {MIN_SECTORS})",
                self.total_sectors
            ));
        }
        if self.total_sectors.checked_mul(SECTOR).is_none() {
            return Err(format!(
                "disk of {} sectors is too large to address in bytes",
                self.total_sectors
            ));
        }
        if self.partitions.len() > ENTRY_COUNT {
            return Err(format!(
                "{} partitions; the entry array holds {ENTRY_COUNT}",
                self.partitions.len()
            ));
        }
        if self.disk_guid == Guid::NIL {
            return Err("disk GUID is nil".into());
        }
        let (first_usable, last_usable) = (self.first_usable_lba(), self.last_usable_lba());
        let mut sorted: Vec<&GptPartition> = self.partitions.iter().collect();
        sorted.sort_by_key(|p| p.first_lba);
        for (i, p) in self.partitions.iter().enumerate() {
            check_name(&p.name)?;
            // A nil type GUID marks an unused entry: the partition would vanish.
            if p.type_guid == Guid::NIL {
                return Err(format!("partition {:?} has a nil type GUID", p.name));
            }
            if p.unique_guid == Guid::NIL {
                return Err(format!("partition {:?} has a nil unique GUID", p.name));
            }
            if self.partitions[..i]
                .iter()
                .any(|q| q.unique_guid == p.unique_guid)
                || p.unique_guid == self.disk_guid
            {
                return Err(format!(
                    "partition {:?}: unique GUID {} is used twice",
                    p.name, p.unique_guid
                ));
            }
            if p.first_lba > p.last_lba || p.first_lba < first_usable || p.last_lba > last_usable {
                return Err(format!(
                    "partition {:?} spans LBA {}..={}, outside the usable {first_usable}..={last_usable}",
                    p.name, p.first_lba, p.last_lba
                ));
            }
        }
        for pair in sorted.windows(2) {
            if pair[1].first_lba <= pair[0].last_lba {
                return Err(format!(
                    "partitions {:?} and {:?} overlap",
                    pair[0].name, pair[1].name
                ));
            }
        }
        Ok(())
    }

    pub fn byte_offset(&self, index: usize) -> u64 {
        self.partitions[index].first_lba * SECTOR
    }

    pub fn byte_len(&self, index: usize) -> u64 {
        let p = &self.partitions[index];
        (p.last_lba - p.first_lba + 1) * SECTOR
    }

    pub fn disk_bytes(&self) -> u64 {
        self.total_sectors * SECTOR
    }

    pub fn first_usable_lba(&self) -> u64 {
        PRIMARY_SECTORS
    }

    pub fn last_usable_lba(&self) -> u64 {
        self.total_sectors - PRIMARY_SECTORS
    }

    fn backup_header_lba(&self) -> u64 {
        self.total_sectors - 1
    }

    fn backup_entries_lba(&self) -> u64 {
        self.total_sectors - TABLE_SECTORS
    }

    fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; ENTRY_COUNT * ENTRY_SIZE];
        for (p, e) in self.partitions.iter().zip(out.chunks_exact_mut(ENTRY_SIZE)) {
            e[0..16].copy_from_slice(&p.type_guid.to_gpt_bytes());
            e[16..32].copy_from_slice(&p.unique_guid.to_gpt_bytes());
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
            // Over-long names are refused by validate(); here the field can only hold 36.
            for (unit, slot) in p.name.encode_utf16().zip(e[56..128].chunks_exact_mut(2)) {
                slot.copy_from_slice(&unit.to_le_bytes());
            }
        }
        out
    }

    fn header(&self, my_lba: u64, alternate_lba: u64, entries_lba: u64, entries: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&REVISION_1_0.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        // 16..20 CRC, filled in last; 20..24 reserved, zero.
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable_lba().to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable_lba().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.to_gpt_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRY_COUNT as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&CRC32.checksum(entries).to_le_bytes());
        let crc = CRC32.checksum(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn protective_mbr(&self) -> Vec<u8> {
        let mut m = vec![0u8; SECTOR as usize];
        let last_lba = (self.total_sectors - 1).min(u64::from(u32::MAX));
        let e = &mut m[446..462];
        e[0] = 0x00; // not bootable: firmware must not treat it as a legacy MBR disk
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        e[4] = 0xEE;
        e[5..8].copy_from_slice(&chs(last_lba));
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        e[12..16].copy_from_slice(&(last_lba as u32).to_le_bytes());
        m[510] = 0x55;
        m[511] = 0xAA;
        m
    }

    /// The protective MBR + primary header + 128-entry array (LBA 0..=33) as bytes.
    pub fn primary_bytes(&self) -> Vec<u8> {
        let entries = self.entries();
        let mut out = self.protective_mbr();
        out.extend(self.header(1, self.backup_header_lba(), 2, &entries));
        out.extend(&entries);
        out
    }

    /// The backup entry array + backup header (the last 33 sectors), and the
    /// byte offset where they go.
    pub fn backup_bytes(&self) -> (u64, Vec<u8>) {
        let entries = self.entries();
        let header = self.header(
            self.backup_header_lba(),
            1,
            self.backup_entries_lba(),
            &entries,
        );
        let mut out = entries;
        out.extend(header);
        (self.backup_entries_lba() * SECTOR, out)
    }

    /// Writes primary and backup structures into an already-sized file (does
    /// not touch partition contents). The file must be exactly `disk_bytes()`
    /// long: the backup header belongs in the last sector, and a file of
    /// another size would put it somewhere else.
    pub fn write_to(&self, file: &mut std::fs::File) -> std::io::Result<()> {
        use std::io::{Error, ErrorKind};
        self.validate()
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        let len = file.metadata()?.len();
        if len != self.disk_bytes() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "disk file is {len} bytes but the GPT layout is for {} bytes",
                    self.disk_bytes()
                ),
            ));
        }
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&self.primary_bytes())?;
        let (offset, backup) = self.backup_bytes();
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&backup)?;
        Ok(())
    }
}

/// CHS of `lba` in the conventional 255-head, 63-sector geometry, or the
/// "too large" marker 0xFFFFFF the spec asks for past cylinder 1023.
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

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Checks one header sector and the entry array it describes; `entries_at`
/// maps the header's entry LBA to the slice that holds it.
fn check_header<'a>(
    which: &str,
    header: &[u8],
    my_lba: u64,
    entries_at: impl Fn(u64) -> Option<&'a [u8]>,
) -> Result<(), String> {
    if &header[0..8] != SIGNATURE {
        return Err(format!("{which} GPT header: no \"EFI PART\" signature"));
    }
    let revision = le32(header, 8);
    if revision != REVISION_1_0 {
        return Err(format!("{which} GPT header: revision {revision:#010x}"));
    }
    let size = le32(header, 12) as usize;
    if !(HEADER_SIZE as usize..=SECTOR as usize).contains(&size) {
        return Err(format!("{which} GPT header: header size {size}"));
    }
    let mut copy = header[..size].to_vec();
    copy[16..20].fill(0);
    let (stored, computed) = (le32(header, 16), CRC32.checksum(&copy));
    if stored != computed {
        return Err(format!(
            "{which} GPT header: CRC32 {stored:#010x}, computed {computed:#010x}"
        ));
    }
    if le32(header, 20) != 0 {
        return Err(format!("{which} GPT header: reserved field is not zero"));
    }
    if le64(header, 24) != my_lba {
        return Err(format!(
            "{which} GPT header: MyLBA {} where {my_lba} was expected",
            le64(header, 24)
        ));
    }
    if le64(header, 40) > le64(header, 48) {
        return Err(format!(
            "{which} GPT header: first usable LBA after last usable LBA"
        ));
    }
    let (count, entry_size) = (le32(header, 80) as usize, le32(header, 84) as usize);
    if entry_size < ENTRY_SIZE || !entry_size.is_power_of_two() || count == 0 {
        return Err(format!(
            "{which} GPT header: {count} entries of {entry_size} bytes"
        ));
    }
    let entries_lba = le64(header, 72);
    let array = entries_at(entries_lba)
        .and_then(|a| a.get(..count * entry_size))
        .ok_or_else(|| {
            format!(
                "{which} GPT header: entry array at LBA {entries_lba} is not in the bytes given"
            )
        })?;
    let (stored, computed) = (le32(header, 88), CRC32.checksum(array));
    if stored != computed {
        return Err(format!(
            "{which} GPT entry array: CRC32 {stored:#010x}, computed {computed:#010x}"
        ));
    }
    Ok(())
}

/// Checks bytes laid out like `primary_bytes()` (LBA 0 onwards): the protective
/// MBR, the header's fields and CRC, and the entry array's CRC.
pub fn verify_primary(bytes: &[u8]) -> Result<(), String> {
    let need = (PRIMARY_SECTORS * SECTOR) as usize;
    if bytes.len() < need {
        return Err(format!(
            "{} bytes; the primary GPT needs {need}",
            bytes.len()
        ));
    }
    if bytes[510..512] != [0x55, 0xAA] {
        return Err("protective MBR: no 0x55AA signature".into());
    }
    let e = &bytes[446..462];
    if e[4] != 0xEE || le32(e, 8) != 1 {
        return Err("protective MBR: first entry is not type 0xEE from LBA 1".into());
    }
    let s = SECTOR as usize;
    check_header("primary", &bytes[s..2 * s], 1, |lba| {
        bytes.get(usize::try_from(lba).ok()?.checked_mul(s)?..)
    })
}

/// Checks bytes laid out like `backup_bytes().1` for a disk of `total_sectors`.
pub fn verify_backup(bytes: &[u8], total_sectors: u64) -> Result<(), String> {
    let need = (TABLE_SECTORS * SECTOR) as usize;
    if bytes.len() != need || total_sectors < MIN_SECTORS {
        return Err(format!(
            "{} bytes; the backup GPT is {need} bytes at the end of the disk",
            bytes.len()
        ));
    }
    let s = SECTOR as usize;
    let base = total_sectors - TABLE_SECTORS;
    check_header("backup", &bytes[need - s..], total_sectors - 1, |lba| {
        let rel = usize::try_from(lba.checked_sub(base)?).ok()?;
        bytes.get(rel.checked_mul(s)?..need - s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::{ESP, LINUX_DATA};
    use std::path::PathBuf;
    use std::process::Command;

    const MIB: u64 = 1024 * 1024;

    fn sample() -> GptLayout {
        GptLayout::sequential(
            Guid::derived("test", "disk"),
            &[
                (
                    "EFI system".into(),
                    ESP,
                    Guid::derived("test", "esp"),
                    100 * MIB,
                    1,
                ),
                (
                    "star-root-a".into(),
                    LINUX_DATA,
                    Guid::derived("test", "root-a"),
                    1024 * MIB + 1,
                    (1 << 63) | (1 << 2),
                ),
                (
                    // Exactly 36 UTF-16 units, one of them outside ASCII.
                    "données-0123456789abcdefghijklmnopqr".into(),
                    LINUX_DATA,
                    Guid::derived("test", "data"),
                    1,
                    0,
                ),
            ],
        )
        .unwrap()
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("star-image-gpt-{}-{tag}.raw", std::process::id()));
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn have_sfdisk() -> bool {
        Command::new("sfdisk").arg("--version").output().is_ok()
    }

    #[test]
    fn sequential_layout_math() {
        let l = sample();
        let p = &l.partitions;
        assert_eq!(
            (p[0].first_lba, p[0].last_lba),
            (2048, 2048 + 100 * 2048 - 1)
        );
        assert_eq!(p[1].first_lba, p[0].last_lba + 1);
        // 1 GiB + 1 byte rounds up to 1025 MiB.
        assert_eq!(l.byte_len(1), 1025 * MIB);
        assert_eq!(l.byte_len(2), MIB);
        assert_eq!(l.byte_offset(0), MIB);
        assert_eq!(l.byte_offset(2), (1 + 100 + 1025) * MIB);
        let end = l.byte_offset(2) + l.byte_len(2);
        // The 33 backup sectors push the disk to the next MiB.
        assert_eq!(l.disk_bytes(), end + MIB);
        assert_eq!(l.disk_bytes() % MIB, 0);
        assert!(p[2].last_lba <= l.last_usable_lba());
        assert_eq!(l.primary_bytes().len(), 34 * 512);
        let (offset, backup) = l.backup_bytes();
        assert_eq!(backup.len(), 33 * 512);
        assert_eq!(offset + backup.len() as u64, l.disk_bytes());
    }

    #[test]
    fn sequential_rejects_bad_input() {
        let g = Guid::derived("t", "u");
        let err = GptLayout::sequential(g, &[("x".repeat(37), ESP, ESP, MIB, 0)]).unwrap_err();
        assert!(err.contains("37 UTF-16 units"), "{err}");
        let err = GptLayout::sequential(g, &[("esp".into(), ESP, ESP, 0, 0)]).unwrap_err();
        assert!(err.contains("\"esp\" has size 0"), "{err}");
        let err = GptLayout::sequential(g, &[("big".into(), ESP, ESP, u64::MAX, 0)]).unwrap_err();
        assert!(err.contains("overflow"), "{err}");
        let dup = Guid::derived("t", "dup");
        let err = GptLayout::sequential(
            g,
            &[
                ("a".into(), ESP, dup, MIB, 0),
                ("b".into(), ESP, dup, MIB, 0),
            ],
        )
        .unwrap_err();
        assert!(err.contains("used twice"), "{err}");
        // Astral-plane characters take two UTF-16 units each.
        let err = GptLayout::sequential(g, &[("🦀".repeat(19), ESP, dup, MIB, 0)]).unwrap_err();
        assert!(err.contains("38 UTF-16 units"), "{err}");
    }

    #[test]
    fn validate_catches_hand_built_mistakes() {
        let mut l = sample();
        l.partitions[1].first_lba = l.partitions[0].last_lba;
        assert!(l.validate().unwrap_err().contains("overlap"));
        let mut l = sample();
        l.partitions[2].last_lba = l.total_sectors - 1;
        assert!(l.validate().unwrap_err().contains("outside the usable"));
        let mut l = sample();
        l.partitions[0].first_lba = 33;
        assert!(l.validate().unwrap_err().contains("outside the usable"));
    }

    #[test]
    fn header_fields() {
        let l = sample();
        let b = l.primary_bytes();
        let mbr = &b[..512];
        assert_eq!(&mbr[446..451], &[0, 0x00, 0x02, 0x00, 0xEE]);
        assert_eq!(mbr[451..454], chs(l.total_sectors - 1));
        assert_eq!(le32(mbr, 446 + 12) as u64, l.total_sectors - 1);
        let h = &b[512..1024];
        assert_eq!(&h[..8], b"EFI PART");
        assert_eq!(&h[8..16], &[0, 0, 1, 0, 92, 0, 0, 0]);
        assert_eq!(le64(h, 24), 1);
        assert_eq!(le64(h, 32), l.total_sectors - 1);
        assert_eq!(le64(h, 40), 34);
        assert_eq!(le64(h, 48), l.total_sectors - 34);
        assert_eq!(le64(h, 72), 2);
        assert_eq!((le32(h, 80), le32(h, 84)), (128, 128));
        assert!(h[92..].iter().all(|&x| x == 0));
        let e = &b[1024..1024 + 128];
        assert_eq!(&e[..16], &ESP.to_gpt_bytes());
        assert_eq!(&e[56..60], &[b'E', 0, b'F', 0]);
        verify_primary(&b).unwrap();

        let (offset, backup) = l.backup_bytes();
        let bh = &backup[backup.len() - 512..];
        assert_eq!(le64(bh, 24), l.total_sectors - 1);
        assert_eq!(le64(bh, 32), 1);
        assert_eq!(le64(bh, 72), offset / 512);
        assert_eq!(backup[..16384], b[1024..]);
        verify_backup(&backup, l.total_sectors).unwrap();
    }

    #[test]
    fn protective_mbr_small_disk_chs_and_size_cap() {
        let mut l = GptLayout::sequential(
            Guid::derived("t", "disk"),
            &[("p".into(), ESP, Guid::derived("t", "p"), MIB, 0)],
        )
        .unwrap();
        // 3 MiB: the last sector, 6143, is C/H/S 0/97/33.
        assert_eq!(l.total_sectors, 6144);
        assert_eq!(&l.primary_bytes()[446 + 5..446 + 8], &[97, 33, 0]);
        l.total_sectors = 1 << 33;
        let b = l.primary_bytes();
        assert_eq!(le32(&b, 446 + 12), u32::MAX);
        assert_eq!(&b[446 + 5..446 + 8], &[0xFF; 3]);
    }

    #[test]
    fn verify_detects_corruption() {
        let good = sample().primary_bytes();
        verify_primary(&good).unwrap();

        let mut bad = good.clone();
        bad[512 + 40] ^= 1; // first usable LBA
        let err = verify_primary(&bad).unwrap_err();
        assert!(err.contains("primary GPT header: CRC32"), "{err}");

        let mut bad = good.clone();
        bad[1024 + 60] ^= 0x20; // a letter of the first name
        let err = verify_primary(&bad).unwrap_err();
        assert!(err.contains("entry array: CRC32"), "{err}");

        let mut bad = good.clone();
        bad[511] = 0;
        assert!(verify_primary(&bad).unwrap_err().contains("0x55AA"));

        assert!(verify_primary(&good[..33 * 512]).is_err());

        let l = sample();
        let (_, mut backup) = l.backup_bytes();
        let n = backup.len();
        backup[n - 512 + 24] ^= 1; // MyLBA
        assert!(verify_backup(&backup, l.total_sectors)
            .unwrap_err()
            .contains("backup GPT header: CRC32"));
    }

    #[test]
    fn write_to_refuses_wrong_size_file() {
        let l = sample();
        let tmp = TempFile::new("size");
        let mut f = std::fs::File::create(&tmp.0).unwrap();
        f.set_len(l.disk_bytes() - 512).unwrap();
        let err = l.write_to(&mut f).unwrap_err();
        assert!(err.to_string().contains("GPT layout is for"), "{err}");
    }

    fn sfdisk(args: &[&str], path: &std::path::Path) -> (bool, String, String) {
        let out = Command::new("sfdisk")
            .args(args)
            .arg(path)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn sfdisk_reads_back_what_was_written() {
        assert!(
            have_sfdisk(),
            "sfdisk is needed for this test: apt-get install fdisk"
        );
        let l = sample();
        let tmp = TempFile::new("sfdisk");
        let mut f = std::fs::File::create(&tmp.0).unwrap();
        f.set_len(l.disk_bytes()).unwrap();
        l.write_to(&mut f).unwrap();
        drop(f);

        let (ok, out, err) = sfdisk(&["--json"], &tmp.0);
        assert!(ok, "sfdisk --json failed: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let t = &v["partitiontable"];
        assert_eq!(t["label"], "gpt");
        assert_eq!(t["id"], l.disk_guid.to_string().to_uppercase());
        assert_eq!(t["sectorsize"], 512);
        assert_eq!(t["firstlba"], 34);
        assert_eq!(t["lastlba"], l.total_sectors - 34);
        let parts = t["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), l.partitions.len());
        for (got, want) in parts.iter().zip(&l.partitions) {
            assert_eq!(got["start"], want.first_lba);
            assert_eq!(got["size"], want.last_lba - want.first_lba + 1);
            assert_eq!(got["type"], want.type_guid.to_string().to_uppercase());
            assert_eq!(got["uuid"], want.unique_guid.to_string().to_uppercase());
            assert_eq!(got["name"], want.name.as_str());
        }
        assert!(parts[0]["attrs"]
            .as_str()
            .unwrap()
            .contains("RequiredPartition"));
        let attrs1 = parts[1]["attrs"].as_str().unwrap();
        assert!(
            attrs1.contains("LegacyBIOSBootable") && attrs1.contains("GUID:63"),
            "{attrs1}"
        );
        assert!(parts[2].get("attrs").is_none());

        let (ok, out, err) = sfdisk(&["--verify"], &tmp.0);
        assert!(ok, "sfdisk --verify failed: {out}{err}");
        assert!(out.contains("No errors detected."), "{out}{err}");
        assert!(err.trim().is_empty(), "sfdisk --verify complained: {err}");
    }

    #[test]
    fn sfdisk_notices_a_broken_table() {
        assert!(
            have_sfdisk(),
            "sfdisk is needed for this test: apt-get install fdisk"
        );
        // Guards the test above: a damaged table must not pass as clean.
        let l = sample();
        let tmp = TempFile::new("broken");
        let mut f = std::fs::File::create(&tmp.0).unwrap();
        f.set_len(l.disk_bytes()).unwrap();
        l.write_to(&mut f).unwrap();
        f.seek(SeekFrom::Start(512 + 48)).unwrap();
        f.write_all(&[0x55]).unwrap();
        drop(f);
        let (_, out, err) = sfdisk(&["--verify"], &tmp.0);
        assert!(err.contains("primary GPT table is corrupt"), "{out}{err}");
    }
}
