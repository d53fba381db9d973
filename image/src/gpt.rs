//! The image's partition table: its partitions one after another from 1 MiB, and a
//! disk just large enough for them. The table itself is star-disk's, so that the image
//! and the shared disk are written, and read back, by the same code.

use star_disk::gpt::{check_name, Gpt, Partition, BACKUP_SECTORS};
use star_disk::guid::Guid;
use star_disk::layout::{ALIGN, ALIGN_SECTORS, SECTOR};
use std::io::{Seek, SeekFrom, Write};

/// Lays out partitions of the given sizes (bytes, rounded up to 1 MiB) one after another
/// starting at 1 MiB, all 1 MiB aligned, numbered from 1 in the order given, and sizes the
/// disk to end after the last partition + the 33 backup sectors, rounded up to 1 MiB.
/// Each part is (name, type GUID, unique GUID, size in bytes, attributes).
pub fn sequential(
    disk_guid: Guid,
    parts: &[(String, Guid, Guid, u64, u64)],
) -> Result<Gpt, String> {
    let overflow = || "partition sizes overflow a 64-bit byte count".to_string();
    let mut next = ALIGN_SECTORS;
    let mut partitions = Vec::with_capacity(parts.len());
    for (number, (name, type_guid, unique_guid, size, attributes)) in (1..).zip(parts) {
        check_name(name)?;
        if *size == 0 {
            return Err(format!("partition {name:?} has size 0"));
        }
        let sectors = size
            .div_ceil(ALIGN)
            .checked_mul(ALIGN_SECTORS)
            .ok_or_else(overflow)?;
        let last = next.checked_add(sectors - 1).ok_or_else(overflow)?;
        partitions.push(Partition {
            number,
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
        .checked_add(BACKUP_SECTORS)
        .and_then(|s| s.div_ceil(ALIGN_SECTORS).checked_mul(ALIGN_SECTORS))
        .filter(|s| s.checked_mul(SECTOR).is_some())
        .ok_or_else(overflow)?;
    let gpt = Gpt {
        disk_guid,
        total_sectors,
        partitions,
    };
    gpt.validate()?;
    Ok(gpt)
}

/// Writes the primary and backup tables into an already-sized file (partition contents
/// are left alone). The file must be exactly `disk_bytes()` long: the backup header
/// belongs in the last sector, and a file of another size would put it somewhere else.
pub fn write_to(gpt: &Gpt, file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    gpt.validate()
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    let len = file.metadata()?.len();
    if len != gpt.disk_bytes() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "disk file is {len} bytes but the GPT layout is for {} bytes",
                gpt.disk_bytes()
            ),
        ));
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&gpt.primary_bytes())?;
    let (offset, backup) = gpt.backup_bytes();
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&backup)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const MIB: u64 = 1024 * 1024;

    fn sample() -> Gpt {
        sequential(
            Guid::derived("test", "disk"),
            &[
                (
                    "EFI system".into(),
                    Guid::ESP,
                    Guid::derived("test", "esp"),
                    100 * MIB,
                    1,
                ),
                (
                    "star-root-a".into(),
                    Guid::LINUX_DATA,
                    Guid::derived("test", "root-a"),
                    1024 * MIB + 1,
                    (1 << 63) | (1 << 2),
                ),
                (
                    // Exactly 36 UTF-16 units, one of them outside ASCII.
                    "données-0123456789abcdefghijklmnopqr".into(),
                    Guid::LINUX_DATA,
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

    /// Both tables of a written disk file, as star-disk reads them.
    fn read_back(path: &std::path::Path, total_sectors: u64) -> Gpt {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path).unwrap();
        let mut head = vec![0u8; MIB as usize];
        let mut tail = vec![0u8; MIB as usize];
        f.read_exact_at(&mut head, 0).unwrap();
        f.read_exact_at(&mut tail, total_sectors * SECTOR - MIB)
            .unwrap();
        let read = Gpt::read(&head, &tail, total_sectors).unwrap();
        assert_eq!(read.problems, Vec::<String>::new());
        read.gpt
    }

    #[test]
    fn sequential_layout_math() {
        let l = sample();
        let p = &l.partitions;
        assert_eq!(
            p.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2, 3],
            "numbered in the order given"
        );
        assert_eq!(
            (p[0].first_lba, p[0].last_lba),
            (2048, 2048 + 100 * 2048 - 1)
        );
        assert_eq!(p[1].first_lba, p[0].last_lba + 1);
        // 1 GiB + 1 byte rounds up to 1025 MiB.
        assert_eq!(p[1].size_bytes(), 1025 * MIB);
        assert_eq!(p[2].size_bytes(), MIB);
        assert_eq!(p[0].start_bytes(), MIB);
        assert_eq!(p[2].start_bytes(), (1 + 100 + 1025) * MIB);
        let end = p[2].start_bytes() + p[2].size_bytes();
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
        let esp = Guid::ESP;
        let err = sequential(g, &[("x".repeat(37), esp, esp, MIB, 0)]).unwrap_err();
        assert!(err.contains("37 UTF-16 units"), "{err}");
        let err = sequential(g, &[("esp".into(), esp, esp, 0, 0)]).unwrap_err();
        assert!(err.contains("\"esp\" has size 0"), "{err}");
        let err = sequential(g, &[("big".into(), esp, esp, u64::MAX, 0)]).unwrap_err();
        assert!(err.contains("overflow"), "{err}");
        // Each fits; together they pass what a byte offset can hold.
        let half = u64::MAX / 2;
        let err = sequential(
            g,
            &[
                ("a".into(), esp, esp, half, 0),
                ("b".into(), esp, esp, half, 0),
            ],
        )
        .unwrap_err();
        assert!(err.contains("overflow"), "{err}");
        let dup = Guid::derived("t", "dup");
        let err = sequential(
            g,
            &[
                ("a".into(), esp, dup, MIB, 0),
                ("b".into(), esp, dup, MIB, 0),
            ],
        )
        .unwrap_err();
        assert!(err.contains("used twice"), "{err}");
        let err = sequential(g, &[("a".into(), esp, g, MIB, 0)]).unwrap_err();
        assert!(err.contains("used twice"), "{err}");
    }

    #[test]
    fn smallest_disk_is_three_mib() {
        let l = sequential(
            Guid::derived("t", "disk"),
            &[("p".into(), Guid::ESP, Guid::derived("t", "p"), MIB, 0)],
        )
        .unwrap();
        assert_eq!(l.total_sectors, 6144);
    }

    #[test]
    fn written_file_reads_back_as_laid_out() {
        let l = sample();
        let tmp = TempFile::new("read");
        let mut f = std::fs::File::create(&tmp.0).unwrap();
        f.set_len(l.disk_bytes()).unwrap();
        write_to(&l, &mut f).unwrap();
        drop(f);
        assert_eq!(read_back(&tmp.0, l.total_sectors), l);
    }

    #[test]
    fn write_to_refuses_wrong_size_file() {
        let l = sample();
        let tmp = TempFile::new("size");
        let mut f = std::fs::File::create(&tmp.0).unwrap();
        f.set_len(l.disk_bytes() - 512).unwrap();
        let err = write_to(&l, &mut f).unwrap_err();
        assert!(err.to_string().contains("GPT layout is for"), "{err}");
    }
}
