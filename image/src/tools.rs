//! Host tools the build runs, and the Debian package each comes from, so that a missing
//! one is reported as what to install.

use std::path::PathBuf;

/// (command, Debian package)
pub const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("dpkg-deb", "dpkg"),
    ("objcopy", "binutils"),
    ("qemu-img", "qemu-utils"),
];

/// The command's full path from PATH (or from `STAR_IMAGE_PATH`, which tests use to hide
/// tools), or an error naming the package to install.
pub fn require(command: &str) -> Result<PathBuf, String> {
    let package = TOOLS
        .iter()
        .find(|(c, _)| *c == command)
        .map_or("?", |(_, p)| p);
    let path = std::env::var_os("STAR_IMAGE_PATH")
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{command} is not installed: apt-get install {package}"))
}

/// Checks every tool at once, so one run lists everything that is missing.
pub fn require_all(commands: &[&str]) -> Result<(), String> {
    let missing: Vec<String> = commands.iter().filter_map(|c| require(c).err()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_name_their_package() {
        std::env::set_var("STAR_IMAGE_PATH", "/nonexistent");
        let e = require_all(&["qemu-img", "objcopy"]).unwrap_err();
        std::env::remove_var("STAR_IMAGE_PATH");
        assert_eq!(
            e,
            "qemu-img is not installed: apt-get install qemu-utils\n\
             objcopy is not installed: apt-get install binutils"
        );
    }
}
