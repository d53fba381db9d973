//! Debian packages the image is made of (kernel, systemd-boot's EFI stub, busybox),
//! downloaded with `apt-get download` into a cache and unpacked with `dpkg-deb -x`:
//! neither needs root, and a warm cache needs no network.

use crate::tools;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A metapackage such as linux-image-cloud-amd64 names the versioned package it depends
/// on (linux-image-6.1.0-56-cloud-amd64); that one holds the kernel.
pub fn resolve_kernel_package(package: &str) -> Result<String, String> {
    let versioned = |p: &str| {
        p.strip_prefix("linux-image-")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    if versioned(package) {
        return Ok(package.to_string());
    }
    tools::require("apt-cache")?;
    let text = run(
        Command::new("apt-cache").args(["depends", package]),
        &format!("apt-cache depends {package}"),
    )?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| versioned(d))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{package} depends on no versioned linux-image package; \
                 is the package list current? (apt-get update)"
            )
        })
}

/// The cached .deb of `package`, downloading it first if needed.
pub fn fetch(cache: &Path, package: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    if let Some(found) = cached(cache, package) {
        return Ok(found);
    }
    tools::require("apt-get")?;
    run(
        Command::new("apt-get")
            .args(["download", package])
            .current_dir(cache),
        &format!("apt-get download {package} (is the package list current? apt-get update)"),
    )?;
    cached(cache, package).ok_or_else(|| format!("apt-get download {package} left no .deb"))
}

fn cached(cache: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Unpacks `deb` once into `cache/unpacked/<deb file stem>` and returns that directory.
pub fn unpack(cache: &Path, deb: &Path) -> Result<PathBuf, String> {
    let stem = deb
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("{}: not a .deb name", deb.display()))?;
    let dir = cache.join("unpacked").join(stem);
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    tools::require("dpkg-deb")?;
    let partial = cache.join("unpacked").join(format!("{stem}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
    run(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial),
        &format!("dpkg-deb -x {}", deb.display()),
    )?;
    std::fs::write(partial.join(".complete"), b"").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// The Debian version of a .deb, from its file name (package_version_arch.deb, with the
/// epoch's ':' written %3a).
pub fn version_of(deb: &Path) -> String {
    deb.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.split('_').nth(1))
        .unwrap_or("unknown")
        .replace("%3a", ":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_kernel_packages_need_no_lookup() {
        assert_eq!(
            resolve_kernel_package("linux-image-6.1.0-56-cloud-amd64").unwrap(),
            "linux-image-6.1.0-56-cloud-amd64"
        );
    }

    #[test]
    fn versions_come_from_file_names() {
        assert_eq!(
            version_of(Path::new(
                "/c/busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
            )),
            "1:1.35.0-4+deb12u1+b1"
        );
    }
}
