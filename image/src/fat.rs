//! FAT volumes (the EFI System Partition) built in memory, byte-for-byte
//! reproducible: every timestamp comes from SOURCE_DATE_EPOCH, never the clock.
//!
//! FAT type: FAT32 whenever the volume has room for FAT32's minimum of 65525
//! clusters (33 MiB and up, with 512-byte clusters), else FAT16, and FAT12 only
//! for volumes too small even for FAT16 (2 MiB and less). Firmware must read all
//! three, but the UEFI spec names FAT32 for system partitions and FAT12/16 for
//! removable media, and some firmware and OS tools only accept a FAT32 ESP;
//! left alone, fatfs would pick FAT16 up to 512 MiB. Below the FAT32 minimum
//! there is no choice, so a small ESP sized to its content gets FAT16: give
//! `size_for` a `min_bytes` of 33 MiB or more to always get FAT32.

use fatfs::{Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::{Mutex, OnceLock};

const SECTOR: u64 = 512;
const MIB: u64 = 1024 * 1024;
const DIR_ENTRY: u64 = 32;
/// Characters of a long file name per LFN directory entry.
const LFN_CHARS: u64 = 13;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatFile {
    /// '/'-separated, relative (e.g. "EFI/BOOT/BOOTX64.EFI"); directories are
    /// created as needed.
    pub path: String,
    pub data: Vec<u8>,
}

/// Stands in for the clock inside fatfs.
#[derive(Debug)]
struct FixedClock(DateTime);

impl fatfs::TimeProvider for FixedClock {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// 1980-01-01T00:00:00Z and 2107-12-31T23:59:58Z, the range a DOS timestamp holds.
const DOS_MIN_EPOCH: i64 = 315_532_800;
const DOS_MAX_EPOCH: i64 = 4_354_819_198;

/// fatfs wants a `&'static` time provider, so there is one per distinct epoch
/// for the life of the process: a few bytes each, and a build uses one.
fn clock(epoch: i64) -> &'static FixedClock {
    static CLOCKS: OnceLock<Mutex<HashMap<i64, &'static FixedClock>>> = OnceLock::new();
    let epoch = epoch.clamp(DOS_MIN_EPOCH, DOS_MAX_EPOCH);
    let mut clocks = CLOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    clocks
        .entry(epoch)
        .or_insert_with(|| Box::leak(Box::new(FixedClock(dos_date_time(epoch)))))
}

/// UTC civil time of a Unix time, clamped to what FAT can store (so
/// SOURCE_DATE_EPOCH=0 or 1, common in reproducible builds, becomes 1980-01-01).
fn dos_date_time(epoch: i64) -> DateTime {
    let epoch = epoch.clamp(DOS_MIN_EPOCH, DOS_MAX_EPOCH);
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    // Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    DateTime {
        date: Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: Time {
            hour: (secs / 3600) as u16,
            min: (secs / 60 % 60) as u16,
            sec: (secs % 60) as u16,
            millis: 0,
        },
    }
}

fn dos_encode(dt: &DateTime) -> (u16, u16) {
    let d = &dt.date;
    let t = &dt.time;
    (
        ((d.year - 1980) << 9) | (d.month << 5) | d.day,
        (t.hour << 11) | (t.min << 5) | (t.sec / 2),
    )
}

/// The 11 bytes of a volume label, space padded; None for no label.
fn label_bytes(label: &str) -> Result<Option<[u8; 11]>, String> {
    if label.len() > 11 {
        return Err(format!(
            "volume label {label:?} is {} bytes; FAT holds 11",
            label.len()
        ));
    }
    // Short-name characters only: anything else (lowercase included) is
    // shown differently, or refused, by some systems.
    if let Some(c) = label.chars().find(|&c| {
        !(c.is_ascii_uppercase() || c.is_ascii_digit() || " !#$%&'()-@^_`{}~".contains(c))
    }) {
        return Err(format!(
            "volume label {label:?} has {c:?}; use A-Z, 0-9, space and !#$%&'()-@^_`{{}}~"
        ));
    }
    if label.starts_with(' ') {
        return Err(format!("volume label {label:?} starts with a space"));
    }
    if label.is_empty() {
        return Ok(None);
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(Some(out))
}

/// Splits and checks a path; names must be valid FAT long names as Windows
/// would also accept them, so the ESP reads the same everywhere.
fn components(path: &str) -> Result<Vec<&str>, String> {
    let bad = |why: &str| Err(format!("bad path {path:?}: {why}"));
    if path.is_empty() {
        return bad("empty");
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        if part.is_empty() {
            return bad("empty component (leading, trailing or double '/')");
        }
        if *part == "." || *part == ".." {
            return bad("'.' and '..' are not allowed");
        }
        if let Some(c) = part
            .chars()
            .find(|&c| c < ' ' || "\"*:<>?\\|\x7f".contains(c))
        {
            return bad(&format!("{c:?} is not allowed in FAT names"));
        }
        if part.ends_with('.') || part.ends_with(' ') {
            return bad("a name may not end with '.' or ' '");
        }
        if part.encode_utf16().count() > 255 {
            return bad("a name is longer than 255 UTF-16 units");
        }
    }
    Ok(parts)
}

/// The directory tree the files imply, keyed case-insensitively as FAT
/// compares names, after refusing duplicates and file/directory clashes.
#[derive(Default)]
struct Tree {
    /// Directory (upper-cased path, "" for the root) -> names of its entries.
    dirs: BTreeMap<String, BTreeSet<String>>,
}

fn tree(files: &[FatFile]) -> Result<Tree, String> {
    let mut t = Tree::default();
    t.dirs.insert(String::new(), BTreeSet::new());
    let mut file_keys: HashMap<String, &str> = HashMap::new();
    for f in files {
        let parts = components(&f.path)?;
        let key = f.path.to_uppercase();
        if let Some(other) = file_keys.insert(key.clone(), &f.path) {
            return Err(format!(
                "path {:?} given twice (FAT names ignore case: {other:?})",
                f.path
            ));
        }
        let mut dir = String::new();
        for (i, part) in parts.iter().enumerate() {
            t.dirs.get_mut(&dir).unwrap().insert(part.to_uppercase());
            if i + 1 < parts.len() {
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(&part.to_uppercase());
                if let Some(file) = file_keys.get(&dir) {
                    return Err(format!(
                        "{file:?} is a file and also a directory in {:?}",
                        f.path
                    ));
                }
                t.dirs.entry(dir.clone()).or_default();
            }
        }
    }
    // A file named like an earlier directory.
    for f in files {
        if t.dirs.contains_key(&f.path.to_uppercase()) {
            return Err(format!("{:?} is a file and also a directory", f.path));
        }
    }
    Ok(t)
}

/// Directory entries a name takes: its long-name entries plus the short one.
/// fatfs may skip the long entries for a plain 8.3 name; counting them anyway
/// errs on the large side.
fn entries_for(name: &str) -> u64 {
    1 + (name.encode_utf16().count() as u64).div_ceil(LFN_CHARS)
}

struct Geometry {
    fat_type: FatType,
    cluster: u64,
    free_clusters: u64,
    /// Fixed root directory capacity on FAT12/16; FAT32's root grows.
    root_entries: Option<u64>,
}

/// Clusters the files and their directories take on a volume of `g`'s shape,
/// or None if the FAT12/16 root directory cannot hold the root's entries.
fn clusters_needed(files: &[FatFile], t: &Tree, g: &Geometry) -> Option<u64> {
    let mut n: u64 = files
        .iter()
        .map(|f| (f.data.len() as u64).div_ceil(g.cluster))
        .sum();
    for (dir, names) in &t.dirs {
        let mut entries: u64 = names.iter().map(|s| entries_for(s)).sum();
        if dir.is_empty() {
            entries += 1; // the volume label
            match g.root_entries {
                Some(cap) if entries > cap => return None,
                Some(_) => {}
                // Formatting already gave the FAT32 root its first cluster.
                None => n += (entries * DIR_ENTRY).div_ceil(g.cluster).saturating_sub(1),
            }
        } else {
            entries += 2; // "." and ".."
            n += (entries * DIR_ENTRY).div_ceil(g.cluster).max(1);
        }
    }
    Some(n)
}

fn format_options(label: Option<[u8; 11]>, volume_id: u32) -> FormatVolumeOptions {
    // Asking for FAT32 makes fatfs choose FAT32's cluster sizes (512 bytes up
    // to 260 MB), which is what lets FAT32 start at ~33 MiB; its geometry
    // search then falls back to FAT16 and FAT12 on its own where FAT32 cannot fit.
    let options = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .volume_id(volume_id);
    // With a label fatfs also puts a (timeless) label entry in the root
    // directory; without one the boot sector says "NO NAME" and the root has none.
    match label {
        Some(label) => options.volume_label(label),
        None => options,
    }
}

fn check_size(size_bytes: u64) -> Result<(), String> {
    if size_bytes & (SECTOR - 1) != 0 {
        return Err(format!(
            "FAT volume size {size_bytes} is not a multiple of {SECTOR}"
        ));
    }
    if size_bytes / SECTOR > u64::from(u32::MAX) {
        return Err(format!(
            "FAT volume size {size_bytes} is over FAT's 2 TiB limit"
        ));
    }
    if usize::try_from(size_bytes).is_err() {
        return Err(format!(
            "FAT volume size {size_bytes} does not fit in memory"
        ));
    }
    Ok(())
}

/// Rewrites the label entry fatfs puts in the root directory (its first
/// slot) so that it, too, carries the build's timestamp instead of zeros,
/// which are not even a valid DOS date.
fn write_root_label(image: &mut [u8], label: &[u8; 11], when: &DateTime) {
    let raw = RawFat::parse(image);
    let at = match &raw.root_region {
        Some(r) => r.start,
        None => raw.cluster_start(raw.root_cluster),
    };
    let e = &mut image[at..at + DIR_ENTRY as usize];
    let (date, time) = dos_encode(when);
    e.fill(0);
    e[0..11].copy_from_slice(label);
    e[11] = 0x08; // ATTR_VOLUME_ID
    e[14..16].copy_from_slice(&time.to_le_bytes()); // created
    e[16..18].copy_from_slice(&date.to_le_bytes());
    e[18..20].copy_from_slice(&date.to_le_bytes()); // accessed
    e[22..24].copy_from_slice(&time.to_le_bytes()); // modified
    e[24..26].copy_from_slice(&date.to_le_bytes());
}

/// Just enough of a volume's layout to walk its directories.
struct RawFat {
    bytes_per_sector: usize,
    sectors_per_cluster: usize,
    fat_offset: usize,
    /// 12, 16 or 32.
    fat_bits: u32,
    first_data: usize,
    /// FAT12/16: the fixed root directory region; FAT32: None.
    root_region: Option<Range<usize>>,
    root_cluster: u32,
    clusters: u32,
}

const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";
const ATTR_LFN: u8 = 0x0F;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;

impl RawFat {
    fn parse(b: &[u8]) -> RawFat {
        let le16 = |at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
        let le32 = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let bytes_per_sector = le16(11);
        let sectors_per_cluster = usize::from(b[13]);
        let reserved = le16(14);
        let fats = usize::from(b[16]);
        let root_entries = le16(17);
        let total = match le16(19) {
            0 => le32(32) as usize,
            n => n,
        };
        let fat_sectors = match le16(22) {
            0 => le32(36) as usize,
            n => n,
        };
        let root_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
        let root_start = reserved + fats * fat_sectors;
        let first_data = root_start + root_sectors;
        // The cluster count alone decides the FAT type (Microsoft's FAT spec).
        let clusters = ((total - first_data) / sectors_per_cluster) as u32;
        let fat_bits = match clusters {
            0..=4084 => 12,
            4085..=65524 => 16,
            _ => 32,
        };
        RawFat {
            bytes_per_sector,
            sectors_per_cluster,
            fat_offset: reserved * bytes_per_sector,
            fat_bits,
            first_data,
            root_region: (fat_bits != 32)
                .then(|| root_start * bytes_per_sector..first_data * bytes_per_sector),
            root_cluster: if fat_bits == 32 { le32(44) } else { 0 },
            clusters,
        }
    }

    fn next(&self, img: &[u8], cluster: u32) -> Option<u32> {
        let c = cluster as usize;
        let (value, end) = match self.fat_bits {
            12 => {
                let at = self.fat_offset + c + c / 2;
                let v = u16::from_le_bytes([img[at], img[at + 1]]);
                (
                    u32::from(if c & 1 == 0 { v & 0xFFF } else { v >> 4 }),
                    0xFF8,
                )
            }
            16 => {
                let at = self.fat_offset + 2 * c;
                (
                    u32::from(u16::from_le_bytes([img[at], img[at + 1]])),
                    0xFFF8,
                )
            }
            _ => {
                let at = self.fat_offset + 4 * c;
                let v = u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
                (v & 0x0FFF_FFFF, 0x0FFF_FFF8)
            }
        };
        (2..self.clusters + 2)
            .contains(&value)
            .then_some(value)
            .filter(|_| value < end)
    }

    fn cluster_start(&self, cluster: u32) -> usize {
        (self.first_data + (cluster as usize - 2) * self.sectors_per_cluster)
            * self.bytes_per_sector
    }

    /// The byte ranges of a cluster chain, cut short on a loop or a bad link.
    fn chain(&self, img: &[u8], first: u32) -> Vec<Range<usize>> {
        let size = self.sectors_per_cluster * self.bytes_per_sector;
        let mut out = Vec::new();
        let mut c = Some(first).filter(|c| (2..self.clusters + 2).contains(c));
        while let Some(cluster) = c {
            if out.len() > self.clusters as usize {
                break;
            }
            let start = self.cluster_start(cluster);
            out.push(start..start + size);
            c = self.next(img, cluster);
        }
        out
    }
}

fn entry_cluster(e: &[u8]) -> u32 {
    u32::from(u16::from_le_bytes([e[20], e[21]])) << 16
        | u32::from(u16::from_le_bytes([e[26], e[27]]))
}

fn set_entry_cluster(e: &mut [u8], cluster: u32) {
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
}

/// fatfs 0.3 writes each new directory as [LFN("."), ".", LFN(".."), ".."],
/// but the FAT spec puts "." and ".." in the first two slots (fsck.fat and
/// Microsoft's checkers "repair" anything else), and on FAT32 it points ".."
/// of a top-level directory at the root's cluster where the spec says 0
/// (rafalh/rust-fatfs#100, #117). This drops the two long-name entries, moves
/// the rest up, and sets both links, in every directory of the finished image.
fn fix_dot_entries(img: &mut [u8]) -> Result<(), String> {
    let raw = RawFat::parse(img);
    let root: Vec<Range<usize>> = match &raw.root_region {
        Some(r) => vec![r.clone()],
        None => raw.chain(img, raw.root_cluster),
    };
    // (a directory's bytes, its cluster, its parent's cluster or None for the root)
    let mut todo = vec![(root, 0u32, None::<u32>)];
    let mut seen = HashSet::new();
    while let Some((regions, this, parent)) = todo.pop() {
        let mut records: Vec<[u8; 32]> = regions
            .iter()
            .flat_map(|r| img[r.clone()].chunks_exact(32))
            .map(|e| e.try_into().unwrap())
            .collect();
        if let Some(parent) = parent {
            if records.len() >= 4
                && records[0][11] == ATTR_LFN
                && &records[1][..11] == DOT
                && records[2][11] == ATTR_LFN
                && &records[3][..11] == DOTDOT
            {
                records.remove(2);
                records.remove(0);
                records.extend([[0u8; 32]; 2]);
            }
            if records.len() < 2 || &records[0][..11] != DOT || &records[1][..11] != DOTDOT {
                return Err(format!(
                    "directory at cluster {this} does not start with '.' and '..'"
                ));
            }
            set_entry_cluster(&mut records[0], this);
            set_entry_cluster(&mut records[1], parent);
            let mut flat = records.iter().flatten().copied();
            for r in &regions {
                for (dst, src) in img[r.clone()].iter_mut().zip(&mut flat) {
                    *dst = src;
                }
            }
        }
        for e in records.iter().skip(if parent.is_some() { 2 } else { 0 }) {
            if e[0] == 0 {
                break;
            }
            let is_subdir = e[0] != 0xE5
                && e[11] != ATTR_LFN
                && e[11] & ATTR_VOLUME == 0
                && e[11] & ATTR_DIR != 0;
            if is_subdir {
                let cluster = entry_cluster(e);
                if !seen.insert(cluster) {
                    return Err(format!("directory cluster {cluster} is linked twice"));
                }
                todo.push((raw.chain(img, cluster), cluster, Some(this)));
            }
        }
    }
    Ok(())
}

/// Formats a FAT volume of `size_bytes` with the given label (up to 11 of
/// A-Z 0-9 space !#$%&'()-@^_`{}~; empty for none) and volume id, writes the
/// files in the order given, and returns the image bytes. Every timestamp
/// (created/modified/accessed, and the label's) is `epoch` (Unix time, UTC,
/// clamped to FAT's 1980..2107), so equal inputs give identical bytes.
pub fn build_fat(
    size_bytes: u64,
    label: &str,
    volume_id: u32,
    epoch: i64,
    files: &[FatFile],
) -> Result<Vec<u8>, String> {
    check_size(size_bytes)?;
    let label = label_bytes(label)?;
    tree(files)?;
    let clock = clock(epoch);

    let mut image = vec![0u8; size_bytes as usize];
    fatfs::format_volume(
        Cursor::new(&mut image[..]),
        format_options(label, volume_id),
    )
    .map_err(|e| format!("cannot format a FAT volume of {size_bytes} bytes: {e}"))?;
    if let Some(label) = &label {
        write_root_label(&mut image, label, &clock.0);
    }

    let options = FsOptions::new()
        .time_provider(clock)
        .update_accessed_date(false);
    let fs = FileSystem::new(Cursor::new(&mut image[..]), options)
        .map_err(|e| format!("cannot open the new FAT volume: {e}"))?;
    let free_bytes = |fs: &FileSystem<_>| -> io::Result<u64> {
        let s = fs.stats()?;
        Ok(u64::from(s.free_clusters()) * u64::from(s.cluster_size()))
    };
    for f in files {
        let free = free_bytes(&fs).map_err(|e| format!("cannot read the FAT volume: {e}"))?;
        write_file(&fs, f).map_err(|e| {
            format!(
                "{} ({} bytes): {e}; the {size_bytes}-byte FAT volume had {free} bytes free",
                f.path,
                f.data.len()
            )
        })?;
    }
    // Counting free space fills in FAT32's FSInfo summary, which format_volume
    // leaves "unknown" and fsck.fat reports.
    free_bytes(&fs).map_err(|e| format!("cannot read the FAT volume: {e}"))?;
    fs.unmount()
        .map_err(|e| format!("cannot finish the FAT volume: {e}"))?;
    fix_dot_entries(&mut image)?;
    Ok(image)
}

fn write_file<T: fatfs::ReadWriteSeek>(fs: &FileSystem<T>, f: &FatFile) -> io::Result<()> {
    let mut parts: Vec<&str> = f.path.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    let mut dir = fs.root_dir();
    for part in parts {
        dir = dir.create_dir(part)?;
    }
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    file.write_all(&f.data)?;
    // Dropping would flush too, but would swallow the error.
    file.flush()
}

/// A disk of `len` zero bytes that only stores what is written, so probing
/// the geometry of a large volume costs only its FATs.
struct SparseDisk {
    data: Vec<u8>,
    len: u64,
    pos: u64,
}

impl Read for SparseDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.len.saturating_sub(self.pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.data.get((self.pos as usize) + i).copied().unwrap_or(0);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SparseDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.pos + buf.len() as u64;
        if end > self.len {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "past the end"));
        }
        let (start, end) = (self.pos as usize, end as usize);
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(buf);
        self.pos = end as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SparseDisk {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad seek"))?;
        Ok(self.pos)
    }
}

fn probe(size_bytes: u64) -> Option<Geometry> {
    check_size(size_bytes).ok()?;
    let mut disk = SparseDisk {
        data: Vec::new(),
        len: size_bytes,
        pos: 0,
    };
    fatfs::format_volume(&mut disk, format_options(None, 0)).ok()?;
    disk.pos = 0;
    let boot = disk.data[..SECTOR as usize].to_vec();
    let fs = FileSystem::new(&mut disk, FsOptions::new().time_provider(clock(0))).ok()?;
    let stats = fs.stats().ok()?;
    let fat_type = fs.fat_type();
    let root_entries = match fat_type {
        FatType::Fat32 => None,
        _ => Some(u64::from(u16::from_le_bytes([boot[17], boot[18]]))),
    };
    Some(Geometry {
        fat_type,
        cluster: u64::from(stats.cluster_size()),
        free_clusters: u64::from(stats.free_clusters()),
        root_entries,
    })
}

/// The FAT type a volume of `size_bytes` gets from `build_fat` (see the
/// module comment), or None for a size it cannot format.
pub fn fat_type_for(size_bytes: u64) -> Option<FatType> {
    probe(size_bytes).map(|g| g.fat_type)
}

/// The smallest size (a multiple of 1 MiB, at least `min_bytes`) that holds
/// the files with room to spare: 10% of what they take on disk plus 1 MiB, so
/// a later, slightly larger boot file still fits. Paths are not checked here;
/// `build_fat` reports bad ones.
pub fn size_for(files: &[FatFile], min_bytes: u64) -> u64 {
    let t = tree(files).unwrap_or_default();
    let data: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    // A first guess a little under the final answer; the loop corrects it.
    let mut size = (data + data / 10 + MIB)
        .max(min_bytes)
        .max(MIB)
        .div_ceil(MIB)
        * MIB;
    loop {
        match probe(size) {
            Some(g) => match clusters_needed(files, &t, &g) {
                Some(n) => {
                    let need = n * g.cluster;
                    let want = need + need / 10 + MIB;
                    let have = g.free_clusters * g.cluster;
                    if have >= want {
                        return size;
                    }
                    size += (want - have).div_ceil(MIB) * MIB;
                }
                None => size += MIB,
            },
            // Only past FAT's 2 TiB limit: let build_fat say so.
            None if check_size(size).is_err() => return size,
            None => size += MIB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    const EPOCH: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    fn sample_files() -> Vec<FatFile> {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        vec![
            FatFile {
                path: "EFI/BOOT/BOOTX64.EFI".into(),
                data: big,
            },
            FatFile {
                path: "EFI/star/cmdline.txt".into(),
                data: b"console=ttyS0,115200n8 quiet\n".to_vec(),
            },
            FatFile {
                path: "loader/entries/A Long Name With Spaces.conf".into(),
                data: b"title STAR\n".to_vec(),
            },
            FatFile {
                path: "empty".into(),
                data: Vec::new(),
            },
        ]
    }

    fn open(image: &mut [u8]) -> FileSystem<Cursor<&mut [u8]>> {
        FileSystem::new(Cursor::new(image), FsOptions::new()).unwrap()
    }

    fn read_all<T: fatfs::ReadWriteSeek>(fs: &FileSystem<T>, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        fs.root_dir()
            .open_file(path)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn epoch_to_dos_time() {
        let dt = dos_date_time(EPOCH);
        assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2023, 11, 14));
        assert_eq!((dt.time.hour, dt.time.min, dt.time.sec), (22, 13, 20));
        let leap = dos_date_time(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(
            (leap.date.year, leap.date.month, leap.date.day),
            (2000, 2, 29)
        );
        let floor = dos_date_time(0);
        assert_eq!(
            (floor.date.year, floor.date.month, floor.date.day),
            (1980, 1, 1)
        );
        let ceil = dos_date_time(i64::MAX);
        assert_eq!(
            (ceil.date.year, ceil.date.month, ceil.date.day),
            (2107, 12, 31)
        );
        assert_eq!((ceil.time.hour, ceil.time.min, ceil.time.sec), (23, 59, 58));
        assert_eq!(dos_encode(&floor), (0x21, 0));
    }

    #[test]
    fn identical_bytes_for_identical_input() {
        let files = sample_files();
        let a = build_fat(64 * MIB, "STAR-ESP", 0x5354_4152, EPOCH, &files).unwrap();
        let b = build_fat(64 * MIB, "STAR-ESP", 0x5354_4152, EPOCH, &files).unwrap();
        assert!(a == b, "two builds differ");
        let c = build_fat(64 * MIB, "STAR-ESP", 0x5354_4152, EPOCH + 2, &files).unwrap();
        assert!(a != c, "the epoch does not reach the image");
    }

    #[test]
    fn fat_type_by_size() {
        for (mib, want) in [
            (1, FatType::Fat12),
            (2, FatType::Fat12),
            (3, FatType::Fat16),
            (32, FatType::Fat16),
            (33, FatType::Fat32),
            (300, FatType::Fat32),
            (1024, FatType::Fat32),
        ] {
            assert_eq!(fat_type_for(mib * MIB), Some(want), "{mib} MiB");
        }
        assert_eq!(fat_type_for(MIB + 1), None);
    }

    #[test]
    fn reads_back_with_fatfs() {
        let files = sample_files();
        for (size, want) in [
            (64 * MIB, FatType::Fat32),
            (16 * MIB, FatType::Fat16),
            (2 * MIB, FatType::Fat12),
        ] {
            let small: Vec<FatFile> = if size < 4 * MIB {
                files[1..].to_vec()
            } else {
                files.clone()
            };
            let mut image = build_fat(size, "STAR-ESP", 0xCAFE_F00D, EPOCH, &small).unwrap();
            assert_eq!(image.len() as u64, size);
            assert_eq!(fat_type_for(size), Some(want));
            let fs = open(&mut image);
            assert_eq!(fs.fat_type(), want, "{size}");
            assert_eq!(fs.volume_label(), "STAR-ESP");
            assert_eq!(
                fs.read_volume_label_from_root_dir().unwrap().as_deref(),
                Some("STAR-ESP")
            );
            assert_eq!(fs.volume_id(), 0xCAFE_F00D);
            for f in &small {
                assert_eq!(read_all(&fs, &f.path), f.data, "{}", f.path);
            }
            let names: Vec<String> = fs
                .root_dir()
                .open_dir("EFI")
                .unwrap()
                .iter()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(names.contains(&"star".to_string()), "{names:?}");
            let when = dos_date_time(EPOCH);
            for path in ["EFI/star/cmdline.txt", "empty"] {
                let dir = match path.rsplit_once('/') {
                    Some((d, _)) => fs.root_dir().open_dir(d).unwrap(),
                    None => fs.root_dir(),
                };
                let name = path.rsplit('/').next().unwrap();
                let e = dir
                    .iter()
                    .map(|e| e.unwrap())
                    .find(|e| e.file_name() == name)
                    .unwrap();
                assert_eq!(e.created(), when);
                assert_eq!(e.modified(), when);
                assert_eq!(e.accessed(), when.date);
            }
        }
    }

    /// Every short directory entry in the image, "." and ".." and the label included.
    fn all_entries(image: &[u8]) -> Vec<[u8; 32]> {
        let raw = RawFat::parse(image);
        let bytes = |regions: Vec<Range<usize>>| -> Vec<u8> {
            regions
                .into_iter()
                .flat_map(|r| image[r].to_vec())
                .collect()
        };
        let mut todo = vec![match &raw.root_region {
            Some(r) => image[r.clone()].to_vec(),
            None => bytes(raw.chain(image, raw.root_cluster)),
        }];
        let mut out = Vec::new();
        while let Some(dir) = todo.pop() {
            for e in dir.chunks_exact(32) {
                if e[0] == 0 {
                    break;
                }
                if e[11] == ATTR_LFN {
                    continue;
                }
                if e[11] & ATTR_DIR != 0 && e[0] != b'.' {
                    todo.push(bytes(raw.chain(image, entry_cluster(e))));
                }
                out.push(e.try_into().unwrap());
            }
        }
        out
    }

    #[test]
    fn every_timestamp_is_the_epoch() {
        let (date, time) = dos_encode(&dos_date_time(EPOCH));
        for size in [64 * MIB, 16 * MIB] {
            let image = build_fat(size, "STAR-ESP", 1, EPOCH, &sample_files()).unwrap();
            let entries = all_entries(&image);
            // label, 3 files + empty, EFI BOOT star loader entries, 5 x ("." + "..")
            assert_eq!(entries.len(), 1 + 4 + 5 + 10);
            assert_eq!(entries[0][..11], *b"STAR-ESP   ");
            for e in entries {
                let name = String::from_utf8_lossy(&e[..11]).into_owned();
                let le16 = |at: usize| u16::from_le_bytes([e[at], e[at + 1]]);
                assert_eq!((le16(14), le16(16)), (time, date), "created {name}");
                assert_eq!(le16(18), date, "accessed {name}");
                assert_eq!((le16(22), le16(24)), (time, date), "modified {name}");
            }
        }
    }

    #[test]
    fn dot_entries_lead_every_directory() {
        let files = sample_files();
        for size in [64 * MIB, 16 * MIB] {
            let image = build_fat(size, "STAR-ESP", 1, EPOCH, &files).unwrap();
            let raw = RawFat::parse(&image);
            let root: Vec<u8> = match &raw.root_region {
                Some(r) => image[r.clone()].to_vec(),
                None => raw
                    .chain(&image, raw.root_cluster)
                    .into_iter()
                    .flat_map(|r| image[r].to_vec())
                    .collect(),
            };
            let find = |dir: &[u8], name: &[u8; 11]| -> u32 {
                let e = dir
                    .chunks_exact(32)
                    .find(|e| &e[..11] == name)
                    .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(name)));
                entry_cluster(e)
            };
            let efi = find(&root, b"EFI        ");
            let efi_dir: Vec<u8> = raw
                .chain(&image, efi)
                .into_iter()
                .flat_map(|r| image[r].to_vec())
                .collect();
            assert_eq!(&efi_dir[..11], DOT);
            assert_eq!(&efi_dir[32..43], DOTDOT);
            assert_eq!(entry_cluster(&efi_dir[..32]), efi);
            assert_eq!(
                entry_cluster(&efi_dir[32..64]),
                0,
                "'..' of a top-level dir"
            );
            let boot = find(&efi_dir, b"BOOT       ");
            let boot_dir = image[raw.chain(&image, boot)[0].clone()].to_vec();
            assert_eq!(&boot_dir[..11], DOT);
            assert_eq!(&boot_dir[32..43], DOTDOT);
            assert_eq!(entry_cluster(&boot_dir[32..64]), efi);
        }
    }

    #[test]
    fn no_label() {
        let mut image = build_fat(8 * MIB, "", 1, EPOCH, &sample_files()[1..2]).unwrap();
        let fs = open(&mut image);
        assert_eq!(fs.volume_label(), "NO NAME");
        assert_eq!(fs.read_volume_label_from_root_dir().unwrap(), None);
    }

    #[test]
    fn errors_name_the_problem() {
        let f = |path: &str, len: usize| FatFile {
            path: path.into(),
            data: vec![1; len],
        };
        let err = build_fat(
            4 * MIB,
            "ESP",
            1,
            EPOCH,
            &[f("EFI/BOOT/BIG.EFI", 5_000_000)],
        )
        .unwrap_err();
        assert!(
            err.contains("EFI/BOOT/BIG.EFI") && err.contains("5000000 bytes"),
            "{err}"
        );
        for (path, what) in [
            ("/EFI/x", "empty component"),
            ("EFI//x", "empty component"),
            ("EFI/x/", "empty component"),
            ("EFI/../x", "'..'"),
            ("EFI/a:b", "':'"),
            ("EFI/a\\b", "'\\\\'"),
            ("EFI/trailing.", "end with"),
            ("", "empty"),
        ] {
            let err = build_fat(4 * MIB, "ESP", 1, EPOCH, &[f(path, 1)]).unwrap_err();
            assert!(
                err.contains(&format!("{path:?}")) && err.contains(what),
                "{path}: {err}"
            );
        }
        let err = build_fat(
            4 * MIB,
            "ESP",
            1,
            EPOCH,
            &[f("A/b.efi", 1), f("a/B.EFI", 1)],
        )
        .unwrap_err();
        assert!(err.contains("given twice"), "{err}");
        let err = build_fat(4 * MIB, "ESP", 1, EPOCH, &[f("EFI", 1), f("efi/x", 1)]).unwrap_err();
        assert!(err.contains("file and also a directory"), "{err}");
        let err = build_fat(4 * MIB, "ESP", 1, EPOCH, &[f("efi/x", 1), f("EFI", 1)]).unwrap_err();
        assert!(err.contains("file and also a directory"), "{err}");
        assert!(build_fat(4 * MIB, "esp", 1, EPOCH, &[])
            .unwrap_err()
            .contains("'e'"));
        assert!(build_fat(4 * MIB, "TWELVE CHARS", 1, EPOCH, &[])
            .unwrap_err()
            .contains("11"));
        assert!(build_fat(4 * MIB + 1, "ESP", 1, EPOCH, &[])
            .unwrap_err()
            .contains("multiple of 512"));
        assert!(build_fat(16 * 1024, "ESP", 1, EPOCH, &[])
            .unwrap_err()
            .contains("cannot format"));
    }

    #[test]
    fn size_for_fits_with_room() {
        let files = sample_files();
        let size = size_for(&files, 0);
        assert_eq!(size % MIB, 0);
        // 3 MB of content: 10% + 1 MiB of spare lands on a few MiB.
        assert!((4 * MIB..=6 * MIB).contains(&size), "{size}");
        let mut image = build_fat(size, "ESP", 1, EPOCH, &files).unwrap();
        let fs = open(&mut image);
        let s = fs.stats().unwrap();
        let free = u64::from(s.free_clusters()) * u64::from(s.cluster_size());
        assert!(free >= MIB + 300_000, "only {free} bytes free");
        // One MiB less must not meet the same promise.
        let g = probe(size - MIB).unwrap();
        let n = clusters_needed(&files, &tree(&files).unwrap(), &g).unwrap();
        assert!(g.free_clusters * g.cluster < n * g.cluster * 11 / 10 + MIB);

        assert_eq!(size_for(&files, 100 * MIB), 100 * MIB);
        assert_eq!(size_for(&files, 100 * MIB + 1), 101 * MIB);
        assert_eq!(size_for(&[], 0), 2 * MIB);
        // Many small files: directory entries and per-file clusters dominate.
        let many: Vec<FatFile> = (0..700)
            .map(|i| FatFile {
                path: format!("d{}/a rather long file name number {i}.txt", i % 7),
                data: vec![0; 10],
            })
            .collect();
        let size = size_for(&many, 0);
        build_fat(size, "ESP", 1, EPOCH, &many).unwrap();
        // Past a FAT16 root directory's 512 entries, straight in the root.
        let flat: Vec<FatFile> = (0..600)
            .map(|i| FatFile {
                path: format!("F{i}"),
                data: vec![1],
            })
            .collect();
        let size = size_for(&flat, 0);
        assert_eq!(fat_type_for(size), Some(FatType::Fat32), "{size}");
        build_fat(size, "ESP", 1, EPOCH, &flat).unwrap();
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn write(tag: &str, bytes: &[u8]) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("star-image-fat-{}-{tag}.img", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs a host tool; None when it is not installed.
    fn run(cmd: &str, args: &[&str]) -> Option<(bool, Vec<u8>, String)> {
        let out = Command::new(cmd)
            .args(args)
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("LC_ALL", "C")
            .output()
            .ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some((out.status.success(), out.stdout, text))
    }

    fn sizes_to_check() -> [(u64, &'static str); 3] {
        [(64 * MIB, "fat32"), (16 * MIB, "fat16"), (2 * MIB, "fat12")]
    }

    #[test]
    fn fsck_fat_finds_nothing_to_fix() {
        let files = sample_files();
        for (size, tag) in sizes_to_check() {
            let subset = if size < 4 * MIB {
                &files[1..]
            } else {
                &files[..]
            };
            let image = build_fat(size, "STAR-ESP", 0x1234_5678, EPOCH, subset).unwrap();
            let tmp = TempFile::write(tag, &image);
            let p = tmp.0.to_str().unwrap();
            let (ok, _, text) = run("fsck.fat", &["-n", "-V", p])
                .expect("fsck.fat is needed for this test: apt-get install dosfstools");
            assert!(ok, "fsck.fat -n on {tag}:\n{text}");
            // fsck.fat exits 0 for findings it only reports, so any line
            // beyond the banner, the two passes and the summary is a finding.
            let findings: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !(l.starts_with("fsck.fat ")
                        || l.starts_with("Starting ")
                        || l.is_empty()
                        || (l.starts_with(p) && l.contains(" files, ")))
                })
                .collect();
            assert!(findings.is_empty(), "fsck.fat on {tag}:\n{text}");
        }
    }

    #[test]
    fn mtools_read_the_image() {
        let files = sample_files();
        for (size, tag) in sizes_to_check() {
            let subset = if size < 4 * MIB {
                &files[1..]
            } else {
                &files[..]
            };
            let image = build_fat(size, "STAR-ESP", 0x1234_5678, EPOCH, subset).unwrap();
            let tmp = TempFile::write(&format!("m{tag}"), &image);
            let p = tmp.0.to_str().unwrap();
            let (ok, _, listing) = run("mdir", &["-i", p, "-/", "::/"])
                .expect("mdir is needed for this test: apt-get install mtools");
            assert!(ok, "mdir on {tag}:\n{listing}");
            assert!(listing.contains("STAR-ESP"), "{listing}");
            for f in subset {
                let name = f.path.rsplit('/').next().unwrap();
                assert!(
                    listing.contains(name),
                    "{name} missing on {tag}:\n{listing}"
                );
            }
            for f in subset {
                let (ok, data, text) = run("mtype", &["-i", p, &format!("::/{}", f.path)]).unwrap();
                assert!(ok, "mtype {} on {tag}: {text}", f.path);
                assert!(data == f.data, "mtype {} on {tag}: contents differ", f.path);
            }
        }
    }
}
