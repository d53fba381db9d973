//! Board profiles: board/<name>.toml, one per kind of machine the image boots on.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// The raw GPT disk, star-<board>.raw.
    Raw,
    /// VirtualBox's VDI.
    Vdi,
    /// A stream-optimized VMDK, what EC2 import-snapshot takes.
    Vmdk,
    /// vbox-lab.sh: creates the two-controller lab in VirtualBox.
    VboxLab,
    /// register-image.json and aws-import.sh.
    AwsImport,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    /// The Debian package (usually a metapackage) whose kernel the image boots.
    pub kernel_package: String,
    /// Kernel modules star-init loads at boot; the builder adds their dependencies.
    pub modules: Vec<String>,
    pub cmdline: String,
    /// Terminals for logins on the console.
    pub consoles: Vec<String>,
    pub outputs: Vec<Output>,
}

/// The boards there are: every board/*.toml.
pub fn known_boards(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name().to_str()?.to_string();
                let stem = name.strip_suffix(".toml")?;
                (stem != "services").then(|| stem.to_string())
            })
            .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn board_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.toml"))
}

/// Reads board `name` from `dir`; an unknown name lists the known ones.
pub fn load(dir: &Path, name: &str) -> Result<Board, String> {
    let known = known_boards(dir);
    if !known.iter().any(|k| k == name) {
        return Err(format!(
            "unknown board {name:?}; known boards: {}",
            known.join(", ")
        ));
    }
    let path = board_path(dir, name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut board: Board = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .unwrap_or(0);
        format!("{}:{line}: {}", path.display(), e.message())
    })?;
    board.name = name.to_string();
    if !board.cmdline.contains("console=ttyS0,115200") {
        return Err(format!(
            "{}: cmdline must put the console on ttyS0 at 115200 (console=ttyS0,115200n8)",
            path.display()
        ));
    }
    Ok(board)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boards_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../board")
    }

    #[test]
    fn the_three_boards_load() {
        assert_eq!(
            known_boards(&boards_dir()),
            vec!["aws-ec2", "qemu", "virtualbox"]
        );
        for name in ["aws-ec2", "qemu", "virtualbox"] {
            let b = load(&boards_dir(), name).unwrap();
            assert!(
                b.modules.contains(&"button".to_string()),
                "{name}: power button"
            );
            assert!(b.modules.contains(&"iscsi_target_mod".to_string()));
        }
        let aws = load(&boards_dir(), "aws-ec2").unwrap();
        assert!(aws.cmdline.contains("nvme_core.io_timeout=4294967295"));
        assert_eq!(aws.kernel_package, "linux-image-cloud-amd64");
        let vbox = load(&boards_dir(), "virtualbox").unwrap();
        assert_eq!(vbox.kernel_package, "linux-image-amd64");
        assert!(
            vbox.modules.contains(&"ahci".to_string())
                && vbox.modules.contains(&"e1000".to_string())
        );
    }

    #[test]
    fn an_unknown_board_lists_the_known_ones() {
        let e = load(&boards_dir(), "raspberry").unwrap_err();
        assert_eq!(
            e,
            "unknown board \"raspberry\"; known boards: aws-ec2, qemu, virtualbox"
        );
    }
}
