//! Unified Kernel Images: systemd-boot's EFI stub with the kernel, initrd,
//! command line and os-release appended as PE sections, using GNU objcopy
//! (the "objcopy method" of systemd-stub(7)).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile};
use object::{LittleEndian as LE, Object, ObjectSection};

/// Where Debian's systemd-boot-efi package installs the x86-64 stub.
pub const SYSTEMD_STUB_X64: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

#[derive(Debug, Clone, Copy)]
pub struct UkiInputs<'a> {
    pub stub: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    pub os_release: &'a str,
    pub uname: Option<&'a str>,
}

/// Writes the UKI to `out` (atomically, via a temporary file beside it).
///
/// Sections follow ukify's order: `.osrel`, `.cmdline`, `.uname`, `.initrd`,
/// then `.linux` last so that nothing sits behind the kernel in memory.
/// Each is placed right after the previous one (and the first right after
/// the stub's image), aligned to the stub's SectionAlignment, so the layout
/// holds whatever the sizes of the stub and the inputs.
pub fn build_uki(inputs: &UkiInputs, out: &Path) -> Result<(), String> {
    build_with(OsStr::new("objcopy"), inputs, out)
}

/// Section names, virtual addresses (image base included, as objdump shows
/// them) and virtual sizes of a PE file.
pub fn sections(pe: &Path) -> Result<Vec<(String, u64, u64)>, String> {
    let data = fs::read(pe).map_err(|e| format!("{}: {e}", pe.display()))?;
    let file = object::File::parse(&*data)
        .map_err(|e| format!("{}: not a PE image: {e}", pe.display()))?;
    file.sections()
        .map(|s| {
            let name = s
                .name()
                .map_err(|e| format!("{}: bad section name: {e}", pe.display()))?;
            Ok((name.to_string(), s.address(), s.size()))
        })
        .collect()
}

enum Source<'a> {
    Text(&'a str),
    File(&'a Path),
}

struct Planned<'a> {
    name: &'static str,
    source: Source<'a>,
    size: u64,
    vma: u64,
}

/// Where the stub ends in memory, and what is already in it.
struct StubLayout {
    image_base: u64,
    section_alignment: u64,
    /// First free, aligned address after every stub section.
    end: u64,
    names: Vec<String>,
}

/// Removes the temporary files on every exit path, including errors.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

fn build_with(objcopy: &OsStr, inputs: &UkiInputs, out: &Path) -> Result<(), String> {
    let timestamp = timestamp_from(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())?;
    let stub = fs::read(inputs.stub).map_err(|e| {
        format!(
            "{}: {e} (the systemd-boot EFI stub comes with the Debian package systemd-boot-efi)",
            inputs.stub.display()
        )
    })?;
    let layout = stub_layout(&stub).map_err(|e| format!("{}: {e}", inputs.stub.display()))?;

    let file_size = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut plan = vec![
        (".osrel", Source::Text(inputs.os_release)),
        (".cmdline", Source::Text(inputs.cmdline)),
    ];
    if let Some(uname) = inputs.uname {
        plan.push((".uname", Source::Text(uname)));
    }
    plan.push((".initrd", Source::File(inputs.initrd)));
    plan.push((".linux", Source::File(inputs.kernel)));

    let mut vma = layout.end;
    let mut planned = Vec::new();
    for (name, source) in plan {
        if layout.names.iter().any(|n| n == name) {
            return Err(format!(
                "{}: already has a {name} section; is it a UKI rather than a stub?",
                inputs.stub.display()
            ));
        }
        let size = match &source {
            Source::Text(text) => text.len() as u64,
            Source::File(path) => file_size(path)?,
        };
        // objcopy silently drops empty sections, which for .cmdline would
        // change how the stub treats the boot loader's command line.
        if size == 0 {
            return Err(format!("UKI section {name} would be empty"));
        }
        planned.push(Planned {
            name,
            source,
            size,
            vma,
        });
        vma = align_up(vma + size, layout.section_alignment);
    }
    if vma - layout.image_base > u64::from(u32::MAX) {
        return Err("UKI would exceed the 4 GiB a PE image can map".to_string());
    }

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = out
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let temp = |suffix: &str| dir.join(format!(".{base}.{}.{suffix}", std::process::id()));
    let mut temps = TempFiles(Vec::new());

    let mut args: Vec<OsString> = Vec::new();
    for p in &planned {
        let path = match &p.source {
            Source::File(path) => path.to_path_buf(),
            Source::Text(text) => {
                let path = temp(p.name.trim_start_matches('.'));
                temps.0.push(path.clone());
                fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                path
            }
        };
        let mut add = OsString::from(format!("{}=", p.name));
        add.push(&path);
        args.extend([
            "--add-section".into(),
            add,
            "--change-section-vma".into(),
            format!("{}={:#x}", p.name, p.vma).into(),
            "--set-section-flags".into(),
            format!("{}=data,readonly", p.name).into(),
        ]);
    }
    let unpatched = temp("tmp");
    temps.0.push(unpatched.clone());
    args.push(inputs.stub.into());
    args.push(unpatched.clone().into());

    let output = Command::new(objcopy).args(&args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{} not found: install the Debian package binutils",
                objcopy.to_string_lossy()
            )
        } else {
            format!("cannot run {}: {e}", objcopy.to_string_lossy())
        }
    })?;
    if !output.status.success() {
        return Err(format!(
            "objcopy failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }

    let mut image = fs::read(&unpatched).map_err(|e| format!("{}: {e}", unpatched.display()))?;
    make_reproducible(&mut image, timestamp)?;
    check_layout(&image, &planned)?;
    fs::write(&unpatched, &image).map_err(|e| format!("{}: {e}", unpatched.display()))?;
    fs::rename(&unpatched, out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

fn stub_layout(data: &[u8]) -> Result<StubLayout, String> {
    match object::FileKind::parse(data).map_err(|e| e.to_string())? {
        object::FileKind::Pe32 => layout_of::<object::pe::ImageNtHeaders32>(data),
        object::FileKind::Pe64 => layout_of::<object::pe::ImageNtHeaders64>(data),
        kind => Err(format!("not a PE image but {kind:?}")),
    }
}

fn layout_of<Pe: ImageNtHeaders>(data: &[u8]) -> Result<StubLayout, String> {
    let file = PeFile::<Pe>::parse(data).map_err(|e| e.to_string())?;
    let opt = file.nt_headers().optional_header();
    let image_base = opt.image_base();
    let section_alignment = u64::from(opt.section_alignment());
    if !section_alignment.is_power_of_two() {
        return Err(format!("invalid SectionAlignment {section_alignment:#x}"));
    }
    // A section's memory may extend past its VirtualSize up to its raw size
    // (and SizeOfImage covers both), so the largest of these is the end.
    let mut end = u64::from(opt.size_of_image());
    for s in file.section_table().iter() {
        let va = u64::from(s.virtual_address.get(LE));
        let len = s.virtual_size.get(LE).max(s.size_of_raw_data.get(LE));
        end = end.max(va + u64::from(len));
    }
    let names = file
        .sections()
        .map(|s| s.name().map(str::to_string).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    Ok(StubLayout {
        image_base,
        section_alignment,
        end: image_base + align_up(end, section_alignment),
        names,
    })
}

fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

/// PE TimeDateStamp written into the UKI: SOURCE_DATE_EPOCH when set, else 0.
fn timestamp_from(source_date_epoch: Option<&str>) -> Result<u32, String> {
    match source_date_epoch {
        None => Ok(0),
        Some(s) => s.trim().parse::<u32>().map_err(|_| {
            format!("SOURCE_DATE_EPOCH={s:?} is not a PE timestamp (seconds, 0..=4294967295)")
        }),
    }
}

/// File offsets of the COFF TimeDateStamp and the optional header's CheckSum.
fn header_offsets(image: &[u8]) -> Result<(usize, usize), String> {
    let dos = object::pe::ImageDosHeader::parse(image).map_err(|e| e.to_string())?;
    let nt = dos.nt_headers_offset() as usize;
    if image.get(nt..nt + 4) != Some(b"PE\0\0") {
        return Err("no PE signature".to_string());
    }
    // Signature (4) + Machine (2) + NumberOfSections (2), then TimeDateStamp;
    // CheckSum sits 64 bytes into the optional header in PE32 and PE32+ alike.
    let timestamp = nt + 8;
    let checksum = nt + 4 + 20 + 64;
    if image.len() < checksum + 4 {
        return Err("truncated PE header".to_string());
    }
    Ok((timestamp, checksum))
}

/// binutils 2.40's objcopy stamps the PE header with the current time (it
/// ignores SOURCE_DATE_EPOCH and has no --no-insert-timestamp), then computes
/// the CheckSum over that; two builds a second apart therefore differ in
/// exactly these two fields. Pin the stamp and redo the checksum. The
/// checksum is only recomputed when one is present, so a tool that leaves it
/// 0 keeps it 0.
fn make_reproducible(image: &mut [u8], timestamp: u32) -> Result<(), String> {
    let (ts_off, sum_off) = header_offsets(image)?;
    image[ts_off..ts_off + 4].copy_from_slice(&timestamp.to_le_bytes());
    let had_checksum = image[sum_off..sum_off + 4] != [0; 4];
    image[sum_off..sum_off + 4].fill(0);
    if had_checksum {
        let sum = pe_checksum(image);
        image[sum_off..sum_off + 4].copy_from_slice(&sum.to_le_bytes());
    }
    Ok(())
}

/// The PE image checksum (as ImageHlp's CheckSumMappedFile computes it):
/// a folded 16-bit sum of the file plus its length. The CheckSum field must
/// be zero in `image`.
fn pe_checksum(image: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for chunk in image.chunks(2) {
        let word = u16::from_le_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum.wrapping_add(image.len() as u32)
}

/// objcopy can adjust a requested address and still exit 0 with only a
/// warning, and the stub trusts the section table blindly: verify that every
/// section landed exactly where it was planned.
fn check_layout(image: &[u8], planned: &[Planned]) -> Result<(), String> {
    let file = object::File::parse(image).map_err(|e| format!("objcopy output: {e}"))?;
    for p in planned {
        let found = file
            .sections()
            .find(|s| s.name().ok() == Some(p.name))
            .map(|s| (s.address(), s.size()));
        if found != Some((p.vma, p.size)) {
            return Err(format!(
                "objcopy placed {} at {found:x?}, expected address {:#x} size {:#x}",
                p.name, p.vma, p.size
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> &'static Path {
        let stub = Path::new(SYSTEMD_STUB_X64);
        assert!(
            stub.exists(),
            "{SYSTEMD_STUB_X64} missing: install the Debian package systemd-boot-efi"
        );
        stub
    }

    fn require_tool(tool: &str) {
        let found = Command::new(tool).arg("--version").output().is_ok();
        assert!(found, "{tool} missing: install the Debian package binutils");
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("star-uki-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Deterministic filler: incompressible enough to look like a kernel.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    const OS_RELEASE: &str = "ID=star\nNAME=\"STAR\"\nVERSION_ID=1\n";
    const CMDLINE: &str = "console=ttyS0,115200 quiet";
    const UNAME: &str = "6.1.0-star";

    struct Fixture {
        dir: PathBuf,
        kernel: Vec<u8>,
        initrd: Vec<u8>,
    }

    impl Fixture {
        fn new(name: &str) -> Self {
            let dir = scratch_dir(name);
            // Odd sizes, so that alignment padding is exercised.
            let kernel = noise(300_001, 1);
            let initrd = noise(70_003, 2);
            fs::write(dir.join("vmlinuz"), &kernel).unwrap();
            fs::write(dir.join("initrd"), &initrd).unwrap();
            Fixture {
                dir,
                kernel,
                initrd,
            }
        }

        fn build(&self, out: &str, uname: Option<&str>) -> Result<PathBuf, String> {
            let kernel = self.dir.join("vmlinuz");
            let initrd = self.dir.join("initrd");
            let inputs = UkiInputs {
                stub: stub(),
                kernel: &kernel,
                initrd: &initrd,
                cmdline: CMDLINE,
                os_release: OS_RELEASE,
                uname,
            };
            let out = self.dir.join(out);
            build_uki(&inputs, &out)?;
            Ok(out)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// `objdump -h` rows: name → (size, vma, flags line).
    fn objdump_sections(pe: &Path) -> Vec<(String, u64, u64, String)> {
        require_tool("objdump");
        let out = Command::new("objdump").arg("-h").arg(pe).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut rows = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 7 && f[0].parse::<u32>().is_ok() {
                let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
                let flags = lines.get(i + 1).unwrap_or(&"").trim().to_string();
                rows.push((f[1].to_string(), hex(f[2]), hex(f[3]), flags));
            }
        }
        rows
    }

    fn section_data(pe: &[u8], name: &str) -> Vec<u8> {
        let file = object::File::parse(pe).unwrap();
        let section = file.section_by_name(name).unwrap();
        section.data().unwrap().to_vec()
    }

    fn expected_timestamp() -> u32 {
        timestamp_from(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref()).unwrap()
    }

    #[test]
    fn builds_a_well_formed_uki() {
        require_tool("objcopy");
        let fx = Fixture::new("layout");
        let uki = fx.build("star.efi", Some(UNAME)).unwrap();
        let bytes = fs::read(&uki).unwrap();

        let secs = sections(&uki).unwrap();
        let stub_secs = sections(stub()).unwrap();
        assert_eq!(
            &secs[..stub_secs.len()],
            &stub_secs[..],
            "stub sections kept"
        );
        let added: Vec<(&str, u64)> = secs[stub_secs.len()..]
            .iter()
            .map(|(n, _, s)| (n.as_str(), *s))
            .collect();
        assert_eq!(
            added,
            [
                (".osrel", OS_RELEASE.len() as u64),
                (".cmdline", CMDLINE.len() as u64),
                (".uname", UNAME.len() as u64),
                (".initrd", fx.initrd.len() as u64),
                (".linux", fx.kernel.len() as u64),
            ]
        );

        let layout = stub_layout(&fs::read(stub()).unwrap()).unwrap();
        let mut ranges: Vec<(u64, u64, &str)> = secs
            .iter()
            .map(|(n, vma, size)| (*vma, vma + size.max(&1), n.as_str()))
            .collect();
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "{} overlaps {}", w[0].2, w[1].2);
        }
        for (name, vma, _) in &secs[stub_secs.len()..] {
            assert!(*vma >= layout.end, "{name} inside the stub image");
            assert_eq!(vma % layout.section_alignment, 0, "{name} unaligned");
        }

        let dumped = objdump_sections(&uki);
        let dumped_plain: Vec<(String, u64, u64)> = dumped
            .iter()
            .map(|(n, size, vma, _)| (n.clone(), *vma, *size))
            .collect();
        assert_eq!(dumped_plain, secs, "objdump -h disagrees with sections()");
        for (name, _, _, flags) in &dumped[stub_secs.len()..] {
            assert_eq!(flags, "CONTENTS, ALLOC, LOAD, READONLY, DATA", "{name}");
        }

        assert_eq!(section_data(&bytes, ".osrel"), OS_RELEASE.as_bytes());
        assert_eq!(section_data(&bytes, ".cmdline"), CMDLINE.as_bytes());
        assert_eq!(section_data(&bytes, ".uname"), UNAME.as_bytes());
        assert_eq!(section_data(&bytes, ".initrd"), fx.initrd);
        assert_eq!(section_data(&bytes, ".linux"), fx.kernel);

        let (ts_off, sum_off) = header_offsets(&bytes).unwrap();
        let field = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        assert_eq!(field(ts_off), expected_timestamp());
        let mut zeroed = bytes.clone();
        zeroed[sum_off..sum_off + 4].fill(0);
        assert_eq!(field(sum_off), pe_checksum(&zeroed), "stale PE checksum");

        let leftovers: Vec<_> = fs::read_dir(&fx.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn uname_is_optional() {
        require_tool("objcopy");
        let fx = Fixture::new("nouname");
        let uki = fx.build("star.efi", None).unwrap();
        let names: Vec<String> = sections(&uki).unwrap().into_iter().map(|s| s.0).collect();
        assert!(!names.iter().any(|n| n == ".uname"));
        assert_eq!(names[names.len() - 2..], [".initrd", ".linux"]);
    }

    #[test]
    fn builds_are_byte_identical() {
        require_tool("objcopy");
        let fx = Fixture::new("repro");
        let a = fs::read(fx.build("a.efi", Some(UNAME)).unwrap()).unwrap();
        // objcopy's own timestamp has one-second resolution: make sure it
        // would differ if it leaked through.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = fs::read(fx.build("b.efi", Some(UNAME)).unwrap()).unwrap();
        assert!(a == b, "two UKI builds from the same inputs differ");
    }

    /// Validates `pe_checksum` against binutils: objcopy's output always,
    /// and the linker that built the stub when it stored a checksum.
    #[test]
    fn checksum_matches_binutils() {
        require_tool("objcopy");
        let check = |bytes: &[u8]| {
            let (_, off) = header_offsets(bytes).unwrap();
            let stored = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
            let mut zeroed = bytes.to_vec();
            zeroed[off..off + 4].fill(0);
            (stored, pe_checksum(&zeroed))
        };
        let (stored, computed) = check(&fs::read(stub()).unwrap());
        if stored != 0 {
            assert_eq!(stored, computed, "stub's own checksum");
        }

        let fx = Fixture::new("checksum");
        let raw = fx.dir.join("raw.efi");
        let status = Command::new("objcopy")
            .arg(format!(
                "--add-section=.linux={}",
                fx.dir.join("vmlinuz").display()
            ))
            .args(["--change-section-vma", ".linux=0x1000000"])
            .arg(stub())
            .arg(&raw)
            .status()
            .unwrap();
        assert!(status.success());
        let (stored, computed) = check(&fs::read(&raw).unwrap());
        assert_eq!(stored, computed);
    }

    #[test]
    fn missing_objcopy_names_binutils() {
        let fx = Fixture::new("noobjcopy");
        let kernel = fx.dir.join("vmlinuz");
        let initrd = fx.dir.join("initrd");
        let inputs = UkiInputs {
            stub: stub(),
            kernel: &kernel,
            initrd: &initrd,
            cmdline: CMDLINE,
            os_release: OS_RELEASE,
            uname: None,
        };
        let err = build_with(
            OsStr::new("objcopy-that-does-not-exist"),
            &inputs,
            &fx.dir.join("x.efi"),
        )
        .unwrap_err();
        assert!(err.contains("binutils"), "{err}");
        assert!(!fx.dir.join("x.efi").exists());
    }

    #[test]
    fn objcopy_failure_reports_its_stderr() {
        require_tool("objcopy");
        let fx = Fixture::new("objcopyfails");
        // A directory passes the size check (it is not empty) but objcopy
        // cannot read it as section contents.
        let kernel = fx.dir.join("kernel-dir");
        fs::create_dir(&kernel).unwrap();
        fs::write(kernel.join("some-file"), b"x").unwrap();
        let initrd = fx.dir.join("initrd");
        let inputs = UkiInputs {
            stub: stub(),
            kernel: &kernel,
            initrd: &initrd,
            cmdline: CMDLINE,
            os_release: OS_RELEASE,
            uname: None,
        };
        let err = build_uki(&inputs, &fx.dir.join("x.efi")).unwrap_err();
        assert!(err.starts_with("objcopy failed"), "{err}");
        assert!(
            err.contains("kernel-dir"),
            "objcopy's stderr missing: {err}"
        );
        let mut left: Vec<String> = fs::read_dir(&fx.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["initrd", "kernel-dir", "vmlinuz"],
            "only the inputs remain"
        );
    }

    #[test]
    fn rejects_bad_inputs() {
        require_tool("objcopy");
        let fx = Fixture::new("bad");
        let kernel = fx.dir.join("vmlinuz");
        let initrd = fx.dir.join("initrd");
        let empty = fx.dir.join("empty");
        fs::write(&empty, b"").unwrap();
        let base = UkiInputs {
            stub: stub(),
            kernel: &kernel,
            initrd: &initrd,
            cmdline: CMDLINE,
            os_release: OS_RELEASE,
            uname: None,
        };
        let out = fx.dir.join("x.efi");
        let empty_cmdline = UkiInputs {
            cmdline: "",
            ..base
        };
        assert!(build_uki(&empty_cmdline, &out)
            .unwrap_err()
            .contains(".cmdline"));
        let empty_initrd = UkiInputs {
            initrd: &empty,
            ..base
        };
        assert!(build_uki(&empty_initrd, &out)
            .unwrap_err()
            .contains(".initrd"));
        let missing = fx.dir.join("missing");
        let missing_kernel = UkiInputs {
            kernel: &missing,
            ..base
        };
        assert!(build_uki(&missing_kernel, &out)
            .unwrap_err()
            .contains("missing"));

        // Feeding a finished UKI back in as the stub must not stack sections.
        build_uki(&base, &out).unwrap();
        let restub = UkiInputs { stub: &out, ..base };
        let err = build_uki(&restub, &fx.dir.join("y.efi")).unwrap_err();
        assert!(err.contains("already has"), "{err}");
    }

    #[test]
    fn source_date_epoch_parsing() {
        assert_eq!(timestamp_from(None), Ok(0));
        assert_eq!(timestamp_from(Some("1700000000")), Ok(1_700_000_000));
        assert!(timestamp_from(Some("yesterday")).is_err());
        assert!(timestamp_from(Some("-1")).is_err());
        assert!(timestamp_from(Some("4294967296")).is_err());
    }

    #[test]
    fn layout_follows_the_stub() {
        let layout = stub_layout(&fs::read(stub()).unwrap()).unwrap();
        for (name, vma, size) in sections(stub()).unwrap() {
            assert!(
                vma + size <= layout.end,
                "{name} ends past the computed end"
            );
        }
        assert_eq!(layout.end % layout.section_alignment, 0);
        assert!(stub_layout(b"not a PE file at all").is_err());
        assert!(sections(Path::new("/nonexistent.efi")).is_err());
    }
}
