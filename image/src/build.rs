//! The pipeline, start to finish:
//!
//! Debian kernel package → module closure → initramfs (sorted cpio newc, SOURCE_DATE_EPOCH,
//! gzip) → UKI (systemd-boot's stub + .osrel .cmdline .uname .linux .initrd) → FAT ESP with
//! \EFI\BOOT\BOOTX64.EFI → FAT config partition STAR-CONFIG → GPT raw disk with GUIDs from
//! the seed → the board's other formats and scripts → manifest.json.
//!
//! Nothing here needs root: partitions are built as bytes and written into the raw file
//! at their offsets; no loop device, no mount.

use crate::board::{self, Board, Output};
use crate::cpio::{Archive, Entry, EntryKind};
use crate::fat::{self, FatFile};
use crate::{debs, gpt, modules, scripts, tools, uki};
use serde::Serialize;
use sha2::{Digest, Sha256};
use star_core::init_config::InitConfig;
use star_disk::gpt::Gpt;
use star_disk::guid::Guid;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG_PARTITION_BYTES: u64 = 8 << 20;
const ESP_MIN_BYTES: u64 = 16 << 20;

pub struct BuildOptions {
    pub board: String,
    /// The source tree: board/ is read from here; cargo builds here.
    pub root: PathBuf,
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// A kernel .deb to use instead of downloading the board's.
    pub kernel_deb: Option<PathBuf>,
    /// star.toml to put on the config partition.
    pub config: Option<PathBuf>,
    /// Prebuilt static star-init and star; otherwise they are built with cargo.
    pub bin_dir: Option<PathBuf>,
    pub source_date_epoch: u64,
    pub source_revision: String,
    /// Every GUID and volume id is derived from this.
    pub seed: String,
}

#[derive(Debug, Serialize)]
pub struct Artifact {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub board: String,
    pub kernel_package: String,
    pub kernel_version: String,
    pub kernel_release: String,
    pub modules: Vec<String>,
    pub cmdline: String,
    pub source_revision: String,
    pub source_date_epoch: u64,
    pub seed: String,
    pub artifacts: Vec<Artifact>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).map_err(io_err(path))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The host tools this board's build runs.
fn tools_for(board: &Board) -> Vec<&'static str> {
    let mut t = vec!["dpkg-deb", "objcopy"];
    if board
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Vdi | Output::Vmdk))
    {
        t.push("qemu-img");
    }
    t
}

pub fn build(opts: &BuildOptions) -> Result<Manifest, String> {
    let board = board::load(&opts.root.join("board"), &opts.board)?;
    if let Some(cfg) = &opts.config {
        // A star.toml that would stop the appliance at boot is better refused now.
        star_core::node_config::NodeConfig::load(cfg).map_err(|e| format!("--config: {e}"))?;
    }
    tools::require_all(&tools_for(&board))?;
    let debs_dir = opts.cache_dir.join("debs");

    // Packages.
    let (kernel_deb, kernel_package) = match &opts.kernel_deb {
        Some(deb) => (deb.clone(), deb.display().to_string()),
        None => {
            let versioned = debs::resolve_kernel_package(&board.kernel_package)?;
            (debs::fetch(&debs_dir, &versioned)?, versioned)
        }
    };
    let kernel_tree = debs::unpack(&debs_dir, &kernel_deb)?;
    let stub_tree = debs::unpack(&debs_dir, &debs::fetch(&debs_dir, "systemd-boot-efi")?)?;
    let busybox_tree = debs::unpack(&debs_dir, &debs::fetch(&debs_dir, "busybox-static")?)?;
    let stub = stub_tree.join("usr/lib/systemd/boot/efi/linuxx64.efi.stub");
    let busybox = busybox_tree.join("bin/busybox");

    let release = kernel_release(&kernel_tree)?;
    let modules_root = kernel_tree.join("lib/modules").join(&release);
    let vmlinuz = kernel_tree.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.exists() {
        return Err(format!("{}: no kernel in the package", vmlinuz.display()));
    }

    // What goes in.
    let chosen = modules::closure(&modules_root, &board.modules)?;
    let services = services_file(&opts.root, &board)?;
    let bins = match &opts.bin_dir {
        Some(dir) => dir.clone(),
        None => build_static_binaries(&opts.root)?,
    };

    std::fs::create_dir_all(&opts.out_dir).map_err(io_err(&opts.out_dir))?;
    let work = opts.out_dir.join(".work");
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;

    // initramfs
    let mut archive = Archive::new();
    add_initramfs_files(
        &mut archive,
        &bins,
        &busybox,
        &services,
        &modules_root,
        &release,
        &chosen,
        &board,
    )?;
    let initrd = work.join("initrd.img");
    let cpio = archive.to_bytes(opts.source_date_epoch as u32);
    std::fs::write(&initrd, crate::cpio::gzip(&cpio)).map_err(io_err(&initrd))?;

    // UKI
    let os_release = format!(
        "NAME=\"STAR\"\nID=star\nPRETTY_NAME=\"STAR see-through array ({board} board)\"\n\
         VERSION_ID=\"{version}\"\nBUILD_ID=\"{rev}\"\nVARIANT_ID={board}\n",
        board = board.name,
        version = env!("CARGO_PKG_VERSION"),
        rev = opts.source_revision,
    );
    let uki_path = work.join("BOOTX64.EFI");
    uki::build_uki(
        &uki::UkiInputs {
            stub: &stub,
            kernel: &vmlinuz,
            initrd: &initrd,
            cmdline: &board.cmdline,
            os_release: &os_release,
            uname: Some(&release),
        },
        &uki_path,
    )?;

    // Partitions
    let epoch = opts.source_date_epoch as i64;
    let esp_files = vec![FatFile {
        path: "EFI/BOOT/BOOTX64.EFI".into(),
        data: std::fs::read(&uki_path).map_err(io_err(&uki_path))?,
    }];
    let esp_size = fat::size_for(&esp_files, ESP_MIN_BYTES);
    let esp = fat::build_fat(
        esp_size,
        "STAR-ESP",
        volume_id(&opts.seed, "esp"),
        epoch,
        &esp_files,
    )?;
    let mut config_files = vec![FatFile {
        path: "README.TXT".into(),
        data: CONFIG_README.as_bytes().to_vec(),
    }];
    if let Some(cfg) = &opts.config {
        config_files.push(FatFile {
            path: "star.toml".into(),
            data: std::fs::read(cfg).map_err(io_err(cfg))?,
        });
    }
    let config_part = fat::build_fat(
        CONFIG_PARTITION_BYTES,
        "STAR-CONFIG",
        volume_id(&opts.seed, "config"),
        epoch,
        &config_files,
    )?;
    let layout = gpt::sequential(
        Guid::derived(&opts.seed, "disk"),
        &[
            (
                "STAR-ESP".to_string(),
                Guid::ESP,
                Guid::derived(&opts.seed, "esp"),
                esp.len() as u64,
                0,
            ),
            (
                "STAR-CONFIG".to_string(),
                // Microsoft basic data: the type other systems expect of a FAT data
                // partition, so the config partition can be opened anywhere to edit
                // star.toml.
                Guid::BASIC_DATA,
                Guid::derived(&opts.seed, "config"),
                config_part.len() as u64,
                0,
            ),
        ],
    )?;

    // The raw disk: the one source of truth, everything else converts it.
    let name = format!("star-{}", board.name);
    let raw = opts.out_dir.join(format!("{name}.raw"));
    write_raw(&raw, &layout, &[&esp, &config_part])?;
    let mut artifacts = vec![raw.clone()];
    for output in &board.outputs {
        match output {
            Output::Raw => {}
            Output::Vdi => {
                let vdi = opts.out_dir.join(format!("{name}.vdi"));
                convert(&raw, &vdi, &["-O", "vdi"])?;
                artifacts.push(vdi);
            }
            Output::Vmdk => {
                let vmdk = opts.out_dir.join(format!("{name}.vmdk"));
                convert(
                    &raw,
                    &vmdk,
                    &["-O", "vmdk", "-o", "subformat=streamOptimized"],
                )?;
                artifacts.push(vmdk);
            }
            Output::VboxLab => {
                let script = opts.out_dir.join("vbox-lab.sh");
                write_executable(&script, &scripts::vbox_lab(&format!("{name}.vdi")))?;
                artifacts.push(script);
            }
            Output::AwsImport => {
                let json = opts.out_dir.join("register-image.json");
                std::fs::write(
                    &json,
                    scripts::register_image_json(&board.name, &opts.source_revision),
                )
                .map_err(io_err(&json))?;
                let script = opts.out_dir.join("aws-import.sh");
                write_executable(&script, &scripts::aws_import(&format!("{name}.vmdk")))?;
                artifacts.extend([json, script]);
            }
        }
    }
    // The kernel, initramfs and command line stay next to the disk, for QEMU's direct
    // kernel boot (-kernel/-initrd/-append), which skips the firmware.
    let boot = opts.out_dir.join("boot");
    std::fs::create_dir_all(&boot).map_err(io_err(&boot))?;
    std::fs::copy(&vmlinuz, boot.join("vmlinuz")).map_err(io_err(&vmlinuz))?;
    std::fs::rename(&initrd, boot.join("initrd.img")).map_err(io_err(&initrd))?;
    std::fs::write(boot.join("cmdline"), format!("{}\n", board.cmdline)).map_err(io_err(&boot))?;
    let _ = std::fs::remove_dir_all(&work);

    let manifest = Manifest {
        board: board.name.clone(),
        kernel_package,
        kernel_version: debs::version_of(&kernel_deb),
        kernel_release: release,
        modules: chosen.keys().cloned().collect(),
        cmdline: board.cmdline.clone(),
        source_revision: opts.source_revision.clone(),
        source_date_epoch: opts.source_date_epoch,
        seed: opts.seed.clone(),
        artifacts: artifacts
            .iter()
            .map(|p| {
                Ok(Artifact {
                    file: p.file_name().unwrap().to_string_lossy().into_owned(),
                    size: std::fs::metadata(p).map_err(io_err(p))?.len(),
                    sha256: sha256_file(p)?,
                })
            })
            .collect::<Result<_, String>>()?,
    };
    let path = opts.out_dir.join("manifest.json");
    let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    text.push('\n');
    std::fs::write(&path, text).map_err(io_err(&path))?;
    Ok(manifest)
}

const CONFIG_README: &str = "\
STAR config partition.\r\n\
\r\n\
Put this controller's star.toml here. The partition is FAT so that it can be edited from\r\n\
any machine; STAR finds it by its label, STAR-CONFIG.\r\n";

fn kernel_release(tree: &Path) -> Result<String, String> {
    let dir = tree.join("lib/modules");
    let mut releases: Vec<String> = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
        .collect();
    releases.sort();
    match releases.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "{}: the package has no modules directory",
            dir.display()
        )),
        many => Err(format!(
            "{}: several kernel releases: {}",
            dir.display(),
            many.join(", ")
        )),
    }
}

fn volume_id(seed: &str, name: &str) -> u32 {
    let g = Guid::derived(seed, name).to_gpt_bytes();
    u32::from_le_bytes([g[0], g[1], g[2], g[3]])
}

/// The image's services file: an [init] table from the board, then board/services.toml,
/// validated exactly as star-init will read it.
pub fn services_file(root: &Path, board: &Board) -> Result<String, String> {
    let path = root.join("board/services.toml");
    let body = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let modules: Vec<String> = board.modules.iter().map(|m| format!("{m:?}")).collect();
    let mut text = format!(
        "# Written by star-image for the {} board.\n[init]\nhostname = \"star\"\nmodules = [{}]\n\
         # The root is in RAM: once loaded, the modules' files only take memory.\n\
         free_module_files = true\n\n{body}",
        board.name,
        modules.join(", ")
    );
    for console in &board.consoles {
        text.push_str(&login_service(console));
    }
    InitConfig::from_toml(&text, Path::new("/etc/star/init.toml")).map_err(|e| {
        format!(
            "the image's services file (from {}) is refused:\n{e}",
            path.display()
        )
    })?;
    Ok(text)
}

/// The login on one of the board's consoles. It reads star.toml at every attempt, so it
/// waits for nothing; every logout ends it and init starts it again at once, however
/// often that happens.
fn login_service(console: &str) -> String {
    format!(
        "\n# The console login on {console} (docs/shell.md): admin, star.toml's password, then the\n\
         # star shell.\n[[service]]\nname = \"login-{}\"\nexec = [\"/bin/star-login\"]\n\
         tty = \"/dev/{console}\"\nrestart = \"always\"\nrestart_sec = 0.2\nrestart_max_sec = 1\nstart_limit_burst = 1000\n",
        console.to_lowercase()
    )
}

#[allow(clippy::too_many_arguments)]
fn add_initramfs_files(
    archive: &mut Archive,
    bins: &Path,
    busybox: &Path,
    services: &str,
    modules_root: &Path,
    release: &str,
    chosen: &std::collections::BTreeMap<String, (PathBuf, Vec<String>)>,
    board: &Board,
) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(io_err(p));
    let file = |path: &str, mode: u32, data: Vec<u8>| Entry {
        path: path.to_string(),
        mode,
        kind: EntryKind::File(data),
    };
    let link = |path: &str, target: &str| Entry {
        path: path.to_string(),
        mode: 0o777,
        kind: EntryKind::Symlink(target.to_string()),
    };
    let dir = |path: &str, mode: u32| Entry {
        path: path.to_string(),
        mode,
        kind: EntryKind::Dir,
    };
    let chr = |path: &str, mode: u32, major: u32, minor: u32| Entry {
        path: path.to_string(),
        mode,
        kind: EntryKind::CharDevice { major, minor },
    };
    let mut entries = vec![
        // Every program is star-box under its own name: one copy of the code they share
        // in the RAM the root file system lives in.
        file("bin/star-box", 0o755, read(&bins.join("star-box"))?),
        link("init", "/bin/star-box"),
        link("sbin/init", "/bin/star-box"),
        link("bin/star", "star-box"),
        link("bin/star-login", "star-box"),
        link("bin/star-config", "star-box"),
        link("bin/star-net", "star-box"),
        link("bin/star-time", "star-box"),
        link("bin/star-target", "star-box"),
        link("bin/star-heartbeat", "star-box"),
        link("bin/star-witness", "star-box"),
        link("bin/star-takeover", "star-box"),
        // The kernel's orderly_poweroff and people's habits both call these.
        link("sbin/poweroff", "/bin/star-box"),
        link("sbin/reboot", "/bin/star-box"),
        file("bin/busybox", 0o755, read(busybox)?),
        file("etc/star/init.toml", 0o644, services.as_bytes().to_vec()),
        file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        ),
        file("etc/group", 0o644, b"root:x:0:\ntty:x:5:\n".to_vec()),
        file(
            "etc/os-release",
            0o644,
            format!("NAME=\"STAR\"\nID=star\nVARIANT_ID={}\n", board.name).into_bytes(),
        ),
        // The kernel opens /dev/console for init before devtmpfs is mounted.
        chr("dev/console", 0o600, 5, 1),
        chr("dev/null", 0o666, 1, 3),
        chr("dev/ttyS0", 0o600, 4, 64),
        dir("proc", 0o555),
        dir("sys", 0o555),
        dir("run", 0o755),
        dir("tmp", 0o1777),
        dir("root", 0o700),
        dir("mnt", 0o755),
        dir("var", 0o755),
    ];
    for applet in busybox_applets(busybox)? {
        entries.push(link(&format!("bin/{applet}"), "busybox"));
    }
    let mods = format!("lib/modules/{release}");
    let mut dep_lines = modules::modules_dep(chosen);
    if dep_lines.is_empty() {
        dep_lines.push('\n');
    }
    entries.push(file(
        &format!("{mods}/modules.dep"),
        0o644,
        dep_lines.into_bytes(),
    ));
    let builtin = modules_root.join("modules.builtin");
    entries.push(file(
        &format!("{mods}/modules.builtin"),
        0o644,
        read(&builtin)?,
    ));
    for (rel, _) in chosen.values() {
        entries.push(file(
            &format!("{mods}/{}", rel.display()),
            0o644,
            read(&modules_root.join(rel))?,
        ));
    }
    for e in entries {
        archive.add(e)?;
    }
    Ok(())
}

/// busybox's applets, from the (static, x86-64) binary itself, without those STAR
/// provides: init, and poweroff/reboot/halt, which must go through star-init.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("{} --list: {e}", busybox.display()))?;
    let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| {
            !a.is_empty()
                && !["init", "linuxrc", "poweroff", "reboot", "halt", "busybox"].contains(a)
        })
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    Ok(applets)
}

/// `cargo build --release` of every program the image carries, as static executables.
pub fn build_static_binaries(root: &Path) -> Result<PathBuf, String> {
    let target = "x86_64-unknown-linux-gnu";
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            target,
            "-p",
            "star-init",
            "-p",
            "star-shell",
            "-p",
            "star-config",
            "-p",
            "star-net",
            "-p",
            "star-time",
            "-p",
            "star-target",
            "-p",
            "star-heartbeat",
            "-p",
            "star-witness",
            "-p",
            "star-takeover",
            "-p",
            "star-box",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build of the static binaries failed ({status})"
        ));
    }
    Ok(root.join("target").join(target).join("release"))
}

fn write_raw(raw: &Path, layout: &Gpt, partitions: &[&Vec<u8>]) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    let tmp = raw.with_extension("raw.partial");
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    // Sparse: only the partitions' contents and the GPT are ever written.
    f.set_len(layout.disk_bytes()).map_err(io_err(&tmp))?;
    for (p, data) in layout.partitions.iter().zip(partitions) {
        f.seek(SeekFrom::Start(p.start_bytes()))
            .map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
    }
    gpt::write_to(layout, &mut f).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, raw).map_err(io_err(raw))
}

fn convert(raw: &Path, out: &Path, format_args: &[&str]) -> Result<(), String> {
    let qemu_img = tools::require("qemu-img")?;
    let o = Command::new(qemu_img)
        .args(["convert", "-f", "raw"])
        .args(format_args)
        .arg(raw)
        .arg(out)
        .output()
        .map_err(|e| format!("qemu-img: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "qemu-img convert to {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_gets_a_login_on_each_of_its_consoles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let boards = crate::board::known_boards(&root.join("board"));
        assert!(!boards.is_empty());
        for name in boards {
            let board = crate::board::load(&root.join("board"), &name).unwrap();
            let text = services_file(&root, &board).unwrap();
            let config = InitConfig::from_toml(&text, Path::new("init.toml")).unwrap();
            // The image's root is its initramfs, in RAM.
            assert!(config.init.free_module_files, "{name}");
            for console in &board.consoles {
                let login = config
                    .services
                    .iter()
                    .find(|s| s.tty.as_deref() == Some(Path::new(&format!("/dev/{console}"))))
                    .unwrap_or_else(|| panic!("{name}: no login on {console}"));
                assert_eq!(login.exec, ["/bin/star-login"], "{name}");
                // A logout ends the service: it must come back at once, every time.
                assert_eq!(login.restart, star_core::init_config::RestartPolicy::Always);
                assert!(login.restart_delay_max <= std::time::Duration::from_secs(1));
                assert!(login.start_limit_burst >= 1000);
            }
        }
    }
}
