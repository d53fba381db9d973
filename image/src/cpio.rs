//! Reproducible initramfs archives: cpio "newc" (magic `070701`) as the
//! kernel's initramfs unpacker reads it, optionally gzip-compressed.
//!
//! Everything that would normally leak from the build host (owners, times,
//! inode numbers, directory order) is fixed, so the same entries always give
//! the same bytes and the same UKI hash.

use std::collections::BTreeMap;
use std::io::Write;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const PERMISSION_BITS: u32 = 0o7777;
const IMPLIED_DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Vec<u8>),
    /// Target, stored verbatim (absolute or relative).
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, without a leading `/`, e.g. `dev/console`.
    pub path: String,
    /// Permission bits only (`0o7777` at most), e.g. `0o755`.
    pub mode: u32,
    pub kind: EntryKind,
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Self {
        Entry {
            path: path.to_string(),
            mode,
            kind: EntryKind::Dir,
        }
    }

    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.to_string(),
            mode,
            kind: EntryKind::File(data.into()),
        }
    }

    pub fn symlink(path: &str, target: &str) -> Self {
        Entry {
            path: path.to_string(),
            mode: 0o777,
            kind: EntryKind::Symlink(target.to_string()),
        }
    }

    pub fn char_device(path: &str, mode: u32, major: u32, minor: u32) -> Self {
        Entry {
            path: path.to_string(),
            mode,
            kind: EntryKind::CharDevice { major, minor },
        }
    }
}

/// A set of entries keyed by path; the order of `add` calls never shows in
/// the output.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    // `String`'s ordering is byte-wise, which is exactly the output order.
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Rejects anything the kernel would unpack somewhere other than where
    /// the path says, or that would make the archive depend on add order:
    /// duplicates, `..`/`.`/empty components, absolute paths, and entries
    /// nested under a non-directory.
    pub fn add(&mut self, entry: Entry) -> Result<(), String> {
        validate_path(&entry.path)?;
        let path = &entry.path;
        if entry.mode & !PERMISSION_BITS != 0 {
            return Err(format!(
                "{path}: mode {:o} has bits beyond the permission bits (0o7777)",
                entry.mode
            ));
        }
        match &entry.kind {
            EntryKind::File(data) if u32::try_from(data.len()).is_err() => {
                return Err(format!(
                    "{path}: {} bytes do not fit a newc size field",
                    data.len()
                ));
            }
            EntryKind::Symlink(target) if target.is_empty() || target.contains('\0') => {
                return Err(format!(
                    "{path}: symlink target {target:?} is empty or has a NUL"
                ));
            }
            _ => {}
        }
        if self.entries.contains_key(path) {
            return Err(format!("{path}: duplicate path in initramfs"));
        }
        for parent in ancestors(path) {
            if let Some(existing) = self.entries.get(parent) {
                if existing.kind != EntryKind::Dir {
                    return Err(format!("{path}: parent {parent} is not a directory"));
                }
            }
        }
        if entry.kind != EntryKind::Dir {
            let prefix = format!("{path}/");
            if let Some((child, _)) = self.entries.range(prefix.clone()..).next() {
                if child.starts_with(&prefix) {
                    return Err(format!(
                        "{path}: cannot be a non-directory, {child} is inside it"
                    ));
                }
            }
        }
        self.entries.insert(path.clone(), entry);
        Ok(())
    }

    /// Serialises the archive with every field that could vary between hosts
    /// fixed: uid/gid 0, `mtime = epoch`, inodes numbered 1.. in output order.
    /// Missing parent directories are added with mode 0o755.
    pub fn to_bytes(&self, epoch: u32) -> Vec<u8> {
        // `None` marks a parent directory that was never added explicitly.
        let mut all: BTreeMap<&str, Option<&Entry>> = BTreeMap::new();
        for (path, entry) in &self.entries {
            for parent in ancestors(path) {
                all.entry(parent).or_insert(None);
            }
            all.insert(path, Some(entry));
        }

        let mut out = Vec::new();
        for (ino, (path, entry)) in (1u32..).zip(all) {
            let (mode, kind) = match entry {
                Some(e) => (e.mode, &e.kind),
                None => (IMPLIED_DIR_MODE, &EntryKind::Dir),
            };
            let (type_bits, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match kind {
                EntryKind::Dir => (S_IFDIR, 2, &[], (0, 0)),
                EntryKind::File(data) => (S_IFREG, 1, data, (0, 0)),
                EntryKind::Symlink(target) => (S_IFLNK, 1, target.as_bytes(), (0, 0)),
                EntryKind::CharDevice { major, minor } => (S_IFCHR, 1, &[], (*major, *minor)),
            };
            let header = Header {
                ino,
                mode: type_bits | mode,
                nlink,
                mtime: epoch,
                rdev,
            };
            write_entry(&mut out, &header, path, data);
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            mtime: 0,
            rdev: (0, 0),
        };
        write_entry(&mut out, &trailer, TRAILER, &[]);
        out
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
}

fn write_entry(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    // Sizes were bounded in `add`, and names are far below 4 GiB.
    let filesize = u32::try_from(data.len()).expect("entry size checked in add");
    let namesize = u32::try_from(name.len() + 1).expect("name length fits u32");
    // newc order: ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
    // devminor, rdevmajor, rdevminor, namesize, check (used by 070702 only).
    let fields = [
        h.ino, h.mode, 0, 0, h.nlink, h.mtime, filesize, 0, 0, h.rdev.0, h.rdev.1, namesize, 0,
    ];
    let start = out.len();
    out.extend_from_slice(MAGIC.as_bytes());
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    debug_assert_eq!(out.len() - start, HEADER_LEN);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Every entry starts 4-aligned, so aligning the whole buffer aligns the
/// name and data as newc requires.
fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path in initramfs".to_string());
    }
    if path.starts_with('/') {
        return Err(format!("{path}: initramfs paths must be relative"));
    }
    if path.contains('\0') {
        return Err(format!("{path:?}: NUL in initramfs path"));
    }
    if path == TRAILER {
        return Err(format!("{path}: reserved as the cpio end marker"));
    }
    for component in path.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(format!(
                "{path}: empty, '.' or '..' component in initramfs path"
            ));
        }
    }
    Ok(())
}

/// Proper ancestors of a validated path, outermost first: "a/b/c" → "a", "a/b".
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// gzip with a fixed header (no file name, mtime 0, OS "Unix") and a fixed
/// level, so the output depends only on `data` and the pinned flate2 version.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(data)
        .expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    #[derive(Debug, PartialEq)]
    struct Parsed {
        name: String,
        ino: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        nlink: u32,
        mtime: u32,
        dev: (u32, u32),
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// Independent newc reader: checks alignment and the trailer strictly.
    fn parse(buf: &[u8]) -> Vec<Parsed> {
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            assert_eq!(pos % 4, 0, "entry not 4-aligned");
            let hdr = &buf[pos..pos + HEADER_LEN];
            assert_eq!(&hdr[..6], b"070701", "bad magic at {pos}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&hdr[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let namesize = field(11) as usize;
            let filesize = field(6) as usize;
            assert_eq!(field(12), 0, "check field");
            let name_start = pos + HEADER_LEN;
            let name_bytes = &buf[name_start..name_start + namesize];
            assert_eq!(name_bytes.last(), Some(&0), "name not NUL-terminated");
            let name = std::str::from_utf8(&name_bytes[..namesize - 1])
                .unwrap()
                .to_string();
            let data_start = (name_start + namesize).next_multiple_of(4);
            assert!(buf[name_start + namesize..data_start]
                .iter()
                .all(|&b| b == 0));
            let data = buf[data_start..data_start + filesize].to_vec();
            pos = (data_start + filesize).next_multiple_of(4);
            assert!(buf[data_start + filesize..pos].iter().all(|&b| b == 0));
            if name == TRAILER {
                assert_eq!(pos, buf.len(), "bytes after the trailer");
                return out;
            }
            out.push(Parsed {
                name,
                ino: field(0),
                mode: field(1),
                uid: field(2),
                gid: field(3),
                nlink: field(4),
                mtime: field(5),
                dev: (field(7), field(8)),
                rdev: (field(9), field(10)),
                data,
            });
        }
    }

    const EPOCH: u32 = 1_700_000_000;

    fn sample_entries() -> Vec<Entry> {
        vec![
            Entry::dir("dev", 0o755),
            Entry::char_device("dev/console", 0o600, 5, 1),
            Entry::file("etc/hostname", 0o644, b"star\n".to_vec()),
            Entry::file("init", 0o755, b"#!/bin/sh\nexec /sbin/init\n".to_vec()),
            Entry::file("etc/empty", 0o600, Vec::new()),
            Entry::symlink("sbin/init", "/usr/bin/star-init"),
            Entry::dir("tmp", 0o1777),
            Entry::file(
                "usr/bin/star-init",
                0o755,
                (0..=255u8).cycle().take(1001).collect::<Vec<_>>(),
            ),
        ]
    }

    fn sample() -> Archive {
        let mut a = Archive::new();
        for e in sample_entries() {
            a.add(e).unwrap();
        }
        a
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("star-cpio-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs host `cpio` on `archive`, failing loudly (not skipping) when the
    /// tool is missing.
    fn host_cpio(args: &[&str], archive: &Path) -> String {
        let input = std::fs::File::open(archive).unwrap();
        let out = Command::new("cpio")
            .args(args)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(input)
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cpio ({e}); install the Debian package cpio"));
        assert!(
            out.status.success(),
            "cpio {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn layout_matches_newc() {
        let bytes = sample().to_bytes(EPOCH);
        let parsed = parse(&bytes);
        let names: Vec<&str> = parsed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "etc",
                "etc/empty",
                "etc/hostname",
                "init",
                "sbin",
                "sbin/init",
                "tmp",
                "usr",
                "usr/bin",
                "usr/bin/star-init",
            ]
        );
        for (i, p) in parsed.iter().enumerate() {
            assert_eq!(p.ino, i as u32 + 1, "{}", p.name);
            assert_eq!((p.uid, p.gid), (0, 0), "{}", p.name);
            assert_eq!(p.mtime, EPOCH, "{}", p.name);
            assert_eq!(p.dev, (0, 0), "{}", p.name);
            let is_dir = p.mode & 0o170_000 == S_IFDIR;
            assert_eq!(p.nlink, if is_dir { 2 } else { 1 }, "{}", p.name);
        }
        let by = |n: &str| parsed.iter().find(|p| p.name == n).unwrap();
        assert_eq!(by("dev/console").mode, S_IFCHR | 0o600);
        assert_eq!(by("dev/console").rdev, (5, 1));
        assert!(by("dev/console").data.is_empty());
        assert_eq!(by("etc").mode, S_IFDIR | 0o755, "implied parent");
        assert_eq!(by("usr/bin").mode, S_IFDIR | 0o755, "implied parent");
        assert_eq!(by("tmp").mode, S_IFDIR | 0o1777);
        assert_eq!(by("sbin/init").mode, S_IFLNK | 0o777);
        assert_eq!(by("sbin/init").data, b"/usr/bin/star-init");
        assert_eq!(by("etc/hostname").mode, S_IFREG | 0o644);
        assert_eq!(by("etc/hostname").data, b"star\n");
        assert!(by("etc/empty").data.is_empty());
        assert_eq!(by("usr/bin/star-init").data.len(), 1001);
        assert_eq!(by("etc/hostname").rdev, (0, 0));
    }

    #[test]
    fn reproducible_and_order_independent() {
        let a = sample().to_bytes(EPOCH);
        assert_eq!(a, sample().to_bytes(EPOCH));

        let mut reversed = Archive::new();
        for e in sample_entries().into_iter().rev() {
            reversed.add(e).unwrap();
        }
        assert_eq!(a, reversed.to_bytes(EPOCH));

        assert_ne!(a, sample().to_bytes(EPOCH + 1), "epoch must reach mtime");
    }

    #[test]
    fn sorting_is_by_bytes_and_keeps_parents_first() {
        let mut a = Archive::new();
        a.add(Entry::file("a/b", 0o644, b"x".to_vec())).unwrap();
        a.add(Entry::file("a-b", 0o644, b"y".to_vec())).unwrap();
        a.add(Entry::file("B", 0o644, Vec::new())).unwrap();
        let names: Vec<String> = parse(&a.to_bytes(0)).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["B", "a", "a-b", "a/b"]);
    }

    #[test]
    fn empty_archive_is_just_the_trailer() {
        let bytes = Archive::new().to_bytes(0);
        assert!(parse(&bytes).is_empty());
        assert_eq!(bytes.len(), 124);
    }

    #[test]
    fn rejects_bad_entries() {
        let mut a = Archive::new();
        a.add(Entry::file("etc/hostname", 0o644, b"a".to_vec()))
            .unwrap();
        for bad in [
            Entry::file("etc/hostname", 0o644, b"b".to_vec()),
            Entry::file("", 0o644, Vec::new()),
            Entry::file("/etc/passwd", 0o644, Vec::new()),
            Entry::file("../escape", 0o644, Vec::new()),
            Entry::file("etc/../escape", 0o644, Vec::new()),
            Entry::file("etc/./x", 0o644, Vec::new()),
            Entry::file("etc//x", 0o644, Vec::new()),
            Entry::file("etc/", 0o644, Vec::new()),
            Entry::file("x\0y", 0o644, Vec::new()),
            Entry::file(TRAILER, 0o644, Vec::new()),
            Entry::file("x", 0o100_644, Vec::new()),
            Entry::symlink("l", ""),
            // A file where a directory is needed, either way round.
            Entry::file("etc/hostname/x", 0o644, Vec::new()),
            Entry::file("etc", 0o644, Vec::new()),
        ] {
            let shown = format!("{:?}", bad.path);
            assert!(a.add(bad).is_err(), "{shown} accepted");
        }
        // An explicit directory may still be added after its children.
        a.add(Entry::dir("etc", 0o700)).unwrap();
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn host_cpio_reads_it() {
        let dir = scratch_dir("host");
        let path = dir.join("initramfs.cpio");
        std::fs::write(&path, sample().to_bytes(EPOCH)).unwrap();

        let listing = host_cpio(&["-itv", "--quiet"], &path);
        let lines: Vec<String> = listing
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let date = "Nov 14 2023"; // EPOCH in UTC
        let expected: Vec<String> = [
            "drwxr-xr-x 2 root root 0 DATE dev",
            "crw------- 1 root root 5, 1 DATE dev/console",
            "drwxr-xr-x 2 root root 0 DATE etc",
            "-rw------- 1 root root 0 DATE etc/empty",
            "-rw-r--r-- 1 root root 5 DATE etc/hostname",
            "-rwxr-xr-x 1 root root 26 DATE init",
            "drwxr-xr-x 2 root root 0 DATE sbin",
            "lrwxrwxrwx 1 root root 18 DATE sbin/init -> /usr/bin/star-init",
            "drwxrwxrwt 2 root root 0 DATE tmp",
            "drwxr-xr-x 2 root root 0 DATE usr",
            "drwxr-xr-x 2 root root 0 DATE usr/bin",
            "-rwxr-xr-x 1 root root 1001 DATE usr/bin/star-init",
        ]
        .iter()
        .map(|l| l.replace("DATE", date))
        .collect();
        assert_eq!(lines, expected);

        for entry in sample_entries() {
            if let EntryKind::File(data) = &entry.kind {
                let got = Command::new("cpio")
                    .args(["-i", "--to-stdout", "--quiet", &entry.path])
                    .stdin(std::fs::File::open(&path).unwrap())
                    .output()
                    .expect("cpio ran above");
                assert!(got.status.success(), "{}", entry.path);
                assert_eq!(&got.stdout, data, "{}", entry.path);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gzip_is_reproducible_and_round_trips() {
        let data = sample().to_bytes(EPOCH);
        let gz = gzip(&data);
        assert_eq!(gz, gzip(&data));
        assert_eq!(
            &gz[..4],
            &[0x1f, 0x8b, 8, 0],
            "deflate, no FNAME/FEXTRA flags"
        );
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(gz[9], 3);

        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);

        let dir = scratch_dir("gzip");
        let path = dir.join("initramfs.cpio.gz");
        std::fs::write(&path, &gz).unwrap();
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run gzip ({e}); install the Debian package gzip"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
