//! star-disk on real files: init, the config store, LUN and host changes and `check`,
//! judged by reading the file back, and by util-linux's sfdisk as an independent reader
//! (and writer) of the GPT.

use star_core::array_config::{ArrayConfig, Chap, Host};
use star_disk::config_store::{self, ConfigCopy};
use star_disk::gpt::{Gpt, Partition};
use star_disk::guid::Guid;
use star_disk::init::{init, InitRequest, Initialized, LunSeed};
use star_disk::io::{Access, Disk};
use star_disk::layout::{ALIGN, BLOCK_U64, LUN_AREA_START, LUN_TYPE, META_START, META_TYPE};
use star_disk::{check, hosts, luns, Error};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const MIB: u64 = ALIGN;

/// A sparse disk image under the temp dir, removed when dropped.
struct TempDisk(PathBuf);

impl TempDisk {
    fn new(tag: &str, mib: u64) -> TempDisk {
        TempDisk::in_dir(&std::env::temp_dir(), tag, mib)
    }

    fn in_dir(dir: &Path, tag: &str, mib: u64) -> TempDisk {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "star-disk-test-{}-{}-{tag}.img",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(mib * MIB).unwrap();
        TempDisk(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.0)
            .unwrap();
        f.write_all_at(bytes, offset).unwrap();
    }

    fn flip_byte(&self, offset: u64) {
        let b = self.bytes()[offset as usize];
        self.write_at(offset, &[b ^ 0xff]);
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// sfdisk lives in /usr/sbin, which is not on every user's PATH. Its messages are matched
/// in English, and partition names are not all ASCII.
fn sfdisk() -> Command {
    let path = ["/usr/sbin/sfdisk", "/sbin/sfdisk"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("sfdisk");
    let mut cmd = Command::new(path);
    cmd.env("LC_ALL", "C.UTF-8");
    cmd
}

fn sfdisk_json(disk: &TempDisk) -> serde_json::Value {
    let out = sfdisk().arg("--json").arg(disk.path()).output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "sfdisk complained"
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["partitiontable"].clone()
}

/// util-linux's own consistency check of both tables.
fn sfdisk_verify(disk: &TempDisk) {
    let out = sfdisk().arg("--verify").arg(disk.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("No errors detected"),
        "{text}"
    );
}

fn sfdisk_write(disk: &TempDisk, args: &[&str], script: &str) {
    use std::io::Write;
    let mut child = sfdisk()
        .args(args)
        .arg(disk.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn names(table: &serde_json::Value) -> Vec<String> {
    table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn host(name: &str, luns: &[&str]) -> Host {
    Host {
        name: name.into(),
        iqn: format!("iqn.2026-01.example.lab:{name}"),
        luns: luns.iter().map(|l| l.to_string()).collect(),
        chap: None,
    }
}

/// A lab array: LUNs data0 (16 MiB) and logs (8 MiB), host client1 seeing data0.
fn init_lab(disk: &TempDisk) -> Initialized {
    let mut req = InitRequest::new("lab", 1, 1_800_000_000);
    req.luns = vec![
        LunSeed {
            name: "data0".into(),
            size_bytes: 16 * MIB,
        },
        LunSeed {
            name: "logs".into(),
            size_bytes: 8 * MIB,
        },
    ];
    req.hosts = vec![host("client1", &["data0"])];
    init(disk.path(), &req).unwrap()
}

fn read_config(disk: &TempDisk) -> config_store::Stored {
    config_store::read(&Disk::open(disk.path(), Access::ReadOnly).unwrap()).unwrap()
}

fn copy_offset(copy: ConfigCopy) -> u64 {
    copy.offset()
}

#[test]
fn init_on_a_zeroed_file_shows_the_array_to_sfdisk() {
    let disk = TempDisk::new("init", 128);
    let done = init_lab(&disk);
    assert_eq!(done.generation, 1);
    assert_eq!(done.wiped, None);
    assert_eq!(done.superblock.array_name, "lab");

    let table = sfdisk_json(&disk);
    assert_eq!(table["label"], "gpt");
    assert_eq!(
        names(&table),
        ["STAR-META", "star-lun-data0", "star-lun-logs"]
    );
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts[0]["start"], META_START / 512);
    assert_eq!(parts[0]["size"], 64 * MIB / 512);
    assert_eq!(parts[0]["type"], META_TYPE.to_string().to_uppercase());
    assert_eq!(parts[1]["start"], LUN_AREA_START / 512);
    assert_eq!(parts[2]["start"], (LUN_AREA_START + 16 * MIB) / 512);
    assert_eq!(parts[1]["type"], LUN_TYPE.to_string().to_uppercase());
    sfdisk_verify(&disk);

    let stored = read_config(&disk);
    assert_eq!(
        (stored.generation, stored.copy, stored.other_copy_problem),
        (1, ConfigCopy::A, None)
    );
    let c = &stored.config;
    assert_eq!(c, &done.config);
    assert_eq!(c.target_iqn, "iqn.2026-11.org.star-array:lab");
    let data0 = c.lun("data0").unwrap();
    assert_eq!(
        (data0.id, data0.partition, data0.size_bytes),
        (0, 2, 16 * MIB)
    );
    assert_eq!(parts[1]["uuid"], data0.partuuid.to_uppercase());
    assert_eq!(c.lun("logs").unwrap().id, 1);
    assert_ne!(data0.serial, c.lun("logs").unwrap().serial);

    let report = check::check(disk.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.in_use, Some((ConfigCopy::A, 1)));
}

/// A table using every field of an entry: attribute bits, a name of exactly 36 UTF-16
/// units with one outside ASCII, the usual type GUIDs, GUIDs derived from names.
fn every_field_gpt(disk_mib: u64) -> Gpt {
    let mut g = Gpt::new(Guid::derived("test", "disk"), disk_mib * MIB / 512);
    let parts = [
        ("EFI system", Guid::ESP, "esp", 1, 100, 1),
        (
            "star-root-a",
            Guid::LINUX_DATA,
            "root-a",
            101,
            1025,
            (1 << 63) | (1 << 2),
        ),
        (
            "données-0123456789abcdefghijklmnopqr",
            Guid::LINUX_DATA,
            "data",
            1126,
            1,
            0,
        ),
    ];
    for (number, (name, type_guid, id, first_mib, mib, attributes)) in (1..).zip(parts) {
        g.insert(Partition {
            number,
            name: name.into(),
            type_guid,
            unique_guid: Guid::derived("test", id),
            first_lba: first_mib * MIB / 512,
            last_lba: (first_mib + mib) * MIB / 512 - 1,
            attributes,
        })
        .unwrap();
    }
    g
}

fn write_gpt(disk: &TempDisk, gpt: &Gpt) {
    disk.write_at(0, &gpt.primary_bytes());
    let (offset, backup) = gpt.backup_bytes();
    disk.write_at(offset, &backup);
}

#[test]
fn sfdisk_reads_every_field_as_written() {
    let disk = TempDisk::new("fields", 1128);
    let g = every_field_gpt(1128);
    write_gpt(&disk, &g);

    let t = sfdisk_json(&disk);
    assert_eq!(t["label"], "gpt");
    assert_eq!(t["id"], g.disk_guid.to_string().to_uppercase());
    assert_eq!(t["sectorsize"], 512);
    assert_eq!(t["firstlba"], 34);
    assert_eq!(t["lastlba"], g.total_sectors - 34);
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), g.partitions.len());
    for (got, want) in parts.iter().zip(&g.partitions) {
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

    let out = sfdisk().arg("--verify").arg(disk.path()).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "sfdisk --verify complained"
    );
    sfdisk_verify(&disk);
}

#[test]
fn sfdisk_notices_a_broken_table() {
    // Guards the test above: a damaged table must not pass as clean.
    let disk = TempDisk::new("broken", 1128);
    write_gpt(&disk, &every_field_gpt(1128));
    disk.write_at(512 + 48, &[0x55]);
    let out = sfdisk().arg("--verify").arg(disk.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("primary GPT table is corrupt"), "{err}");
}

#[test]
fn the_config_is_readable_text_on_the_disk() {
    let disk = TempDisk::new("text", 128);
    init_lab(&disk);
    let bytes = disk.bytes();
    let at = (copy_offset(ConfigCopy::A) + BLOCK_U64) as usize;
    let text = String::from_utf8_lossy(&bytes[at..at + 4096]);
    assert!(
        text.starts_with("{\n  \"version\": 1,\n  \"array_name\": \"lab\","),
        "{text}"
    );
    let sb = String::from_utf8_lossy(&bytes[META_START as usize..META_START as usize + 4096]);
    assert!(
        sb.starts_with("STARSUPR") && sb.contains("\"array_name\":\"lab\""),
        "{sb}"
    );
}

#[test]
fn init_refuses_an_ext4_file_system_and_writes_nothing() {
    let disk = TempDisk::new("ext4", 128);
    disk.write_at(1080, &[0x53, 0xEF]);
    disk.write_at(1024 + 0x60, &[0x40]); // extents: ext4
    let before = disk.bytes();
    let mut req = InitRequest::new("lab", 1, 0);
    req.luns = vec![LunSeed {
        name: "data0".into(),
        size_bytes: MIB,
    }];
    let err = init(disk.path(), &req).unwrap_err();
    assert!(matches!(err, Error::NotEmpty(_)), "{err}");
    assert!(
        err.to_string().contains("an ext4 file system; use --force"),
        "{err}"
    );
    assert!(disk.bytes() == before, "a refused init changed the disk");
}

#[test]
fn init_refuses_an_mbr_and_writes_nothing() {
    let disk = TempDisk::new("mbr", 128);
    sfdisk_write(&disk, &[], "label: dos\n2048,20480,83\n");
    let before = disk.bytes();
    let err = init(disk.path(), &InitRequest::new("lab", 1, 0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("an MBR partition table: 1 (type 0x83, 10 MiB at sector 2048)"),
        "{err}"
    );
    assert!(disk.bytes() == before, "a refused init changed the disk");
}

#[test]
fn init_refuses_a_foreign_gpt_and_writes_nothing() {
    let disk = TempDisk::new("gpt", 128);
    sfdisk_write(
        &disk,
        &[],
        "label: gpt\nsize=10MiB, type=L, name=home\nsize=4MiB, type=S\n",
    );
    let before = disk.bytes();
    let err = init(disk.path(), &InitRequest::new("lab", 1, 0)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("a GPT partition table with 2 partition(s)"),
        "{msg}"
    );
    assert!(
        msg.contains("1 \"home\" (Linux filesystem, 10 MiB at byte 1048576)"),
        "{msg}"
    );
    assert!(msg.contains("2 \"\" (Linux swap, 4 MiB"), "{msg}");
    assert!(disk.bytes() == before, "a refused init changed the disk");
}

#[test]
fn init_refuses_a_disk_already_ours_and_force_wipes_it() {
    let disk = TempDisk::new("ours", 128);
    init_lab(&disk);
    hosts::add(disk.path(), host("client2", &[])).unwrap();
    let before = disk.bytes();
    let err = init(disk.path(), &InitRequest::new("other", 2, 0)).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("already initialized for array lab (generation 2); use --force to wipe it"),
        "{err}"
    );
    assert!(disk.bytes() == before, "a refused init changed the disk");

    let mut req = InitRequest::new("other", 2, 5);
    req.force = true;
    let done = init(disk.path(), &req).unwrap();
    assert_eq!(done.wiped.as_deref(), Some("STAR array lab"));
    // The old array's generation 2 in copy B must not outlive the wipe.
    let stored = read_config(&disk);
    assert_eq!(
        (stored.generation, stored.config.array_name.as_str()),
        (1, "other")
    );
    assert!(stored.config.luns.is_empty() && stored.config.hosts.is_empty());
    assert_eq!(names(&sfdisk_json(&disk)), ["STAR-META"]);
}

#[test]
fn init_with_bad_input_writes_nothing() {
    let disk = TempDisk::new("badinit", 128);
    let before = disk.bytes();
    let mut req = InitRequest::new("lab", 1, 0);
    req.hosts = vec![Host {
        iqn: "iqn.bad".into(),
        ..host("client1", &[])
    }];
    assert!(init(disk.path(), &req)
        .unwrap_err()
        .to_string()
        .contains("is not an iSCSI name"));

    let mut req = InitRequest::new("lab", 1, 0);
    req.luns = vec![LunSeed {
        name: "huge".into(),
        size_bytes: 100 * MIB,
    }];
    let err = init(disk.path(), &req).unwrap_err().to_string();
    assert!(
        err.contains("needs 100 MiB") && err.contains("62 MiB"),
        "{err}"
    );

    let mut req = InitRequest::new("lab", 1, 0);
    let mut h = host("client1", &[]);
    h.chap = Some(Chap {
        userid: "client1".into(),
        secret: "short".into(),
        mutual_userid: None,
        mutual_secret: None,
    });
    req.hosts = vec![h];
    assert!(init(disk.path(), &req)
        .unwrap_err()
        .to_string()
        .contains("CHAP secret"));
    assert!(disk.bytes() == before, "a refused init changed the disk");
}

#[test]
fn the_config_round_trips_and_alternates_copies() {
    let disk = TempDisk::new("roundtrip", 128);
    init_lab(&disk);
    let d = Disk::open(disk.path(), Access::ReadWrite).unwrap();
    let mut c = read_config(&disk).config;
    c.hosts.push(host("client2", &["logs"]));
    assert_eq!(config_store::write(&d, &c, 1).unwrap(), 2);
    let s = config_store::read(&d).unwrap();
    assert_eq!((s.generation, s.copy, &s.config), (2, ConfigCopy::B, &c));
    c.hosts.pop();
    assert_eq!(config_store::write(&d, &c, 2).unwrap(), 3);
    let s = config_store::read(&d).unwrap();
    assert_eq!((s.generation, s.copy, &s.config), (3, ConfigCopy::A, &c));
}

#[test]
fn a_torn_newest_copy_falls_back_to_the_older_one() {
    let disk = TempDisk::new("torn", 128);
    init_lab(&disk);
    hosts::add(disk.path(), host("client2", &[])).unwrap(); // generation 2, copy B
                                                            // A byte of copy B's payload changes: as if the header had landed over a torn payload.
    disk.flip_byte(copy_offset(ConfigCopy::B) + BLOCK_U64 + 20);
    let s = read_config(&disk);
    assert_eq!((s.generation, s.copy), (1, ConfigCopy::A));
    assert!(s.config.host("client2").is_none());
    let problem = s.other_copy_problem.unwrap();
    assert!(
        problem.starts_with("copy B: generation 2: payload CRC32C mismatch"),
        "{problem}"
    );
    let report = check::check(disk.path()).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .to_string()
            .contains("config copy B: BAD: generation 2"),
        "{report}"
    );

    // The next change overwrites the bad copy, past the generation it claimed.
    let changed = hosts::add(disk.path(), host("client3", &[])).unwrap();
    assert_eq!(changed.generation, 3);
    let s = read_config(&disk);
    assert_eq!(
        (s.generation, s.copy, s.other_copy_problem),
        (3, ConfigCopy::B, None)
    );
}

#[test]
fn both_copies_corrupt_is_an_error_naming_both() {
    let disk = TempDisk::new("bothbad", 128);
    init_lab(&disk);
    hosts::add(disk.path(), host("client2", &[])).unwrap();
    disk.flip_byte(copy_offset(ConfigCopy::A) + 30); // inside A's header
    disk.flip_byte(copy_offset(ConfigCopy::B) + BLOCK_U64 + 20);
    let d = Disk::open(disk.path(), Access::ReadOnly).unwrap();
    match config_store::read(&d).unwrap_err() {
        Error::NoValidConfig { copy_a, copy_b } => {
            assert!(copy_a.starts_with("header: CRC32C mismatch"), "{copy_a}");
            assert!(
                copy_b.starts_with("generation 2: payload CRC32C mismatch"),
                "{copy_b}"
            );
        }
        other => panic!("{other}"),
    }
    let before = disk.bytes();
    let err = luns::create(disk.path(), "new", MIB).unwrap_err();
    assert!(matches!(err, Error::NoValidConfig { .. }), "{err}");
    assert!(disk.bytes() == before, "a refused change wrote to the disk");
}

#[test]
fn a_stale_generation_is_refused() {
    let disk = TempDisk::new("stale", 128);
    init_lab(&disk);
    hosts::add(disk.path(), host("client2", &[])).unwrap();
    let before = disk.bytes();
    let d = Disk::open(disk.path(), Access::ReadWrite).unwrap();
    let err = config_store::write(&d, &ArrayConfig::new("lab"), 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::GenerationMismatch {
                expected: 1,
                found: 2
            }
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("another change was made meanwhile"));
    let mut invalid = ArrayConfig::new("lab");
    invalid.target_iqn = "nope".into();
    assert!(matches!(
        config_store::write(&d, &invalid, 2),
        Err(Error::Invalid(_))
    ));
    assert!(disk.bytes() == before, "a refused write changed the disk");
}

#[test]
fn luns_are_created_and_deleted_in_gpt_and_config() {
    let disk = TempDisk::new("luns", 128);
    init_lab(&disk);
    let made = luns::create(disk.path(), "scratch", 3 * MIB + 1).unwrap();
    assert_eq!(made.generation, 2);
    assert_eq!(made.warnings, Vec::<String>::new());
    let lun = made.value;
    assert_eq!((lun.id, lun.partition, lun.size_bytes), (2, 4, 4 * MIB));
    assert_eq!(lun.serial.len(), 32);
    let table = sfdisk_json(&disk);
    assert_eq!(
        names(&table),
        [
            "STAR-META",
            "star-lun-data0",
            "star-lun-logs",
            "star-lun-scratch"
        ]
    );
    assert_eq!(
        table["partitions"][3]["start"],
        (LUN_AREA_START + 24 * MIB) / 512
    );
    sfdisk_verify(&disk);

    // Deleting "logs" (partition 3) must not renumber "scratch" (partition 4).
    let gone = luns::delete(disk.path(), "logs", false).unwrap();
    assert_eq!(gone.generation, 3);
    assert_eq!(gone.value.lun.name, "logs");
    let table = sfdisk_json(&disk);
    assert_eq!(
        names(&table),
        ["STAR-META", "star-lun-data0", "star-lun-scratch"]
    );
    assert!(table["partitions"][2]["node"]
        .as_str()
        .unwrap()
        .ends_with("img4"));
    sfdisk_verify(&disk);
    let listed: Vec<String> = luns::list(disk.path())
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(listed, ["data0", "scratch"]);
    assert!(check::check(disk.path()).unwrap().is_clean());

    // The hole and the numbers are reused.
    let again = luns::create(disk.path(), "logs2", 8 * MIB).unwrap().value;
    assert_eq!((again.id, again.partition), (1, 3));
    assert_eq!(
        sfdisk_json(&disk)["partitions"][2]["start"],
        (LUN_AREA_START + 16 * MIB) / 512
    );
}

#[test]
fn a_lun_larger_than_the_free_space_is_refused_and_writes_nothing() {
    let disk = TempDisk::new("toobig", 128);
    init_lab(&disk);
    let before = disk.bytes();
    let err = luns::create(disk.path(), "huge", 100 * MIB).unwrap_err();
    // 128 MiB disk: 65 MiB before the LUN area, 24 MiB of LUNs, 1 MiB at the end.
    assert_eq!(
        err.to_string(),
        "LUN \"huge\" needs 100 MiB, larger than the largest free space on the disk, 38 MiB"
    );
    assert!(disk.bytes() == before, "a refused create changed the disk");
}

#[test]
fn a_duplicate_lun_name_is_refused_and_writes_nothing() {
    let disk = TempDisk::new("dup", 128);
    init_lab(&disk);
    let before = disk.bytes();
    let err = luns::create(disk.path(), "data0", MIB).unwrap_err();
    assert_eq!(err.to_string(), "a LUN named \"data0\" already exists");
    assert!(disk.bytes() == before, "a refused create changed the disk");
}

#[test]
fn a_mapped_lun_is_deleted_only_with_force() {
    let disk = TempDisk::new("mapped", 128);
    init_lab(&disk);
    let before = disk.bytes();
    let err = luns::delete(disk.path(), "data0", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "LUN \"data0\" is mapped to host(s) \"client1\"; unmap it first, or use --force to unmap and delete it"
    );
    assert!(disk.bytes() == before, "a refused delete changed the disk");
    let err = luns::delete(disk.path(), "nope", true).unwrap_err();
    assert_eq!(err.to_string(), "no LUN named \"nope\"");

    let gone = luns::delete(disk.path(), "data0", true).unwrap();
    assert_eq!(gone.value.unmapped_from, ["client1"]);
    let s = read_config(&disk);
    assert!(s.config.lun("data0").is_none());
    assert!(s.config.host("client1").unwrap().luns.is_empty());
    assert_eq!(names(&sfdisk_json(&disk)), ["STAR-META", "star-lun-logs"]);
}

#[test]
fn host_add_with_a_bad_iqn_is_refused_and_writes_nothing() {
    let disk = TempDisk::new("badiqn", 128);
    init_lab(&disk);
    let before = disk.bytes();
    let bad = Host {
        iqn: "IQN.2026-01.Example:Client2".into(),
        ..host("client2", &[])
    };
    let err = hosts::add(disk.path(), bad).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    assert!(
        err.to_string()
            .contains("\"IQN.2026-01.Example:Client2\" is not an iSCSI name"),
        "{err}"
    );
    let err = hosts::add(disk.path(), host("client2", &["nope"])).unwrap_err();
    assert_eq!(err.to_string(), "host \"client2\": no LUN named \"nope\"");
    assert!(
        disk.bytes() == before,
        "a refused host add changed the disk"
    );

    let added = hosts::add(disk.path(), host("client2", &["logs"])).unwrap();
    assert_eq!(added.generation, 2);
    let listed: Vec<String> = hosts::list(disk.path())
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(listed, ["client1", "client2"]);
    hosts::remove(disk.path(), "client1").unwrap();
    assert_eq!(hosts::list(disk.path()).unwrap().len(), 1);
}

#[test]
fn chap_with_an_8_character_secret_is_refused_and_writes_nothing() {
    let disk = TempDisk::new("chap", 128);
    init_lab(&disk);
    let before = disk.bytes();
    let chap = |secret: &str| Chap {
        userid: "client1".into(),
        secret: secret.into(),
        mutual_userid: None,
        mutual_secret: None,
    };
    let err = hosts::chap_set(disk.path(), "client1", chap("8-chars!")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "host \"client1\": CHAP secret must be 12 to 16 printable characters without spaces \
         (it has 8): initiators refuse other lengths"
    );
    let err = hosts::chap_set(disk.path(), "nobody", chap("twelve-chars")).unwrap_err();
    assert_eq!(err.to_string(), "no host named \"nobody\"");
    assert!(
        disk.bytes() == before,
        "a refused CHAP change wrote to the disk"
    );

    hosts::chap_set(disk.path(), "client1", chap("twelve-chars")).unwrap();
    let mut mutual = chap("twelve-chars");
    mutual.mutual_userid = Some("lab".into());
    mutual.mutual_secret = Some("target-secret".into());
    hosts::chap_set(disk.path(), "client1", mutual.clone()).unwrap();
    assert_eq!(
        read_config(&disk).config.host("client1").unwrap().chap,
        Some(mutual)
    );
    let cleared = hosts::chap_clear(disk.path(), "client1").unwrap();
    assert_eq!(cleared.generation, 4);
    assert_eq!(
        read_config(&disk).config.host("client1").unwrap().chap,
        None
    );
}

#[test]
fn check_reports_an_orphan_partition_and_create_avoids_it() {
    let disk = TempDisk::new("orphan", 128);
    init_lab(&disk);
    // Someone else's partition, added by another tool after the LUNs.
    sfdisk_write(&disk, &["--append"], ",5MiB\n");
    let report = check::check(disk.path()).unwrap();
    assert_eq!(
        report.mismatches,
        vec![check::Mismatch::Orphan {
            partition: 4,
            name: String::new(),
            size_bytes: 5 * MIB
        }]
    );
    assert!(
        report
            .to_string()
            .contains("problem: orphan partition 4 \"\" (5 MiB)"),
        "{report}"
    );

    // Free space and entry numbers skip what the orphan holds.
    let lun = luns::create(disk.path(), "after", MIB).unwrap().value;
    assert_eq!(lun.partition, 5);
    let table = sfdisk_json(&disk);
    assert_eq!(
        table["partitions"][4]["start"],
        (LUN_AREA_START + 29 * MIB) / 512
    );
    sfdisk_verify(&disk);
}

#[test]
fn a_disk_that_is_not_ours_is_refused_by_every_operation() {
    let disk = TempDisk::new("notours", 128);
    sfdisk_write(&disk, &[], "label: gpt\n,10MiB,L\n");
    let before = disk.bytes();
    let err = luns::create(disk.path(), "x", MIB).unwrap_err();
    assert!(matches!(err, Error::NotOurs(_)), "{err}");
    assert!(
        err.to_string()
            .contains("is not a STAR array disk: partition 1"),
        "{err}"
    );
    assert!(matches!(
        hosts::add(disk.path(), host("h", &[])),
        Err(Error::NotOurs(_))
    ));
    assert!(matches!(check::check(disk.path()), Err(Error::NotOurs(_))));
    let blank = TempDisk::new("blank", 128);
    let err = luns::list(blank.path()).unwrap_err().to_string();
    assert!(
        err.contains("is not a STAR array disk: primary GPT header: no \"EFI PART\""),
        "{err}"
    );
    assert!(disk.bytes() == before);
}

#[test]
fn a_disk_file_on_tmpfs_works() {
    // tmpfs refused O_DIRECT before Linux 6.6; either way the disk must work there (the
    // fallback itself is tested in the io module with an opener that refuses O_DIRECT).
    let shm = Path::new("/dev/shm");
    let is_tmpfs = nix::sys::statfs::statfs(shm)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false);
    assert!(is_tmpfs, "/dev/shm is not a tmpfs here");
    let disk = TempDisk::in_dir(shm, "tmpfs", 128);
    init_lab(&disk);
    luns::create(disk.path(), "more", MIB).unwrap();
    assert!(check::check(disk.path()).unwrap().is_clean());
    assert_eq!(names(&sfdisk_json(&disk)).len(), 4);
}

#[test]
fn host_map_unmap_and_portals_through_the_operators_changes() {
    use star_core::target_status::ArrayChange;
    let disk = TempDisk::new("mapportal", 128);
    init_lab(&disk);
    let apply = |c: ArrayChange| star_disk::changes::apply(disk.path(), &c);
    let (text, generation) = apply(ArrayChange::HostMap {
        name: "client1".into(),
        luns: vec!["logs".into()],
    })
    .unwrap();
    assert_eq!(
        text,
        "host client1 now sees logs (array config generation 2)"
    );
    assert_eq!(generation, 2);
    assert_eq!(read_config(&disk).config.hosts[0].luns, ["data0", "logs"]);

    // Refusals change nothing on the disk.
    let before = disk.bytes();
    let e = apply(ArrayChange::HostUnmap {
        name: "client1".into(),
        luns: vec!["nope".into()],
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "host \"client1\" does not see LUN \"nope\"");
    let e = apply(ArrayChange::HostMap {
        name: "client1".into(),
        luns: vec!["nope".into()],
    })
    .unwrap_err();
    assert!(e.to_string().contains("no LUN named \"nope\""), "{e}");
    let e = apply(ArrayChange::PortalSet {
        node: 3,
        address: "192.0.2.23".parse().unwrap(),
        port: 3260,
    })
    .unwrap_err();
    assert!(e.to_string().contains("controller 1 or 2"), "{e}");
    assert!(disk.bytes() == before, "a refused change wrote to the disk");

    apply(ArrayChange::HostUnmap {
        name: "client1".into(),
        luns: vec!["data0".into()],
    })
    .unwrap();
    assert_eq!(read_config(&disk).config.hosts[0].luns, ["logs"]);

    let (text, _) = apply(ArrayChange::PortalSet {
        node: 2,
        address: "fd00::22".parse().unwrap(),
        port: 3261,
    })
    .unwrap();
    assert!(
        text.starts_with("controller 2's portal is [fd00::22]:3261"),
        "{text}"
    );
    assert_eq!(read_config(&disk).config.portals.len(), 1);
    apply(ArrayChange::PortalClear { node: 2 }).unwrap();
    assert!(read_config(&disk).config.portals.is_empty());
}
