//! Where this node's star.toml comes from, in order:
//!
//! 1. on the aws-ec2 board, the instance's user-data (IMDSv2);
//! 2. otherwise, or when the instance has no user-data, star.toml on the STAR-CONFIG
//!    partition of the boot disk;
//! 3. then `star.SECTION.KEY=VALUE` words on the kernel command line override single
//!    values.
//!
//! The result is validated as a whole; every mistake is reported with where it came from.

use crate::{bootstrap, imds, overrides, partition};
use star_core::node_config::NodeConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Sources<'a> {
    /// The board the image was built for (os-release's VARIANT_ID).
    pub board: &'a str,
    pub sys: &'a Path,
    pub dev: &'a Path,
    pub imds: &'a str,
    pub imds_timeout: Duration,
    /// Bring the primary interface up with DHCP for the fetch (the real instance; a
    /// test's responder on the host needs no network of the appliance's own).
    pub bootstrap_network: bool,
    /// How long to wait for the STAR-CONFIG partition to appear.
    pub partition_wait: Duration,
    pub cmdline: &'a str,
}

#[derive(Debug)]
pub struct Resolved {
    pub config: NodeConfig,
    /// star.toml as used, overrides applied: what /run/star/star.toml gets.
    pub text: String,
    /// Where it came from, in words.
    pub origin: String,
}

/// Finds, merges and validates; the error is the lines to print.
pub fn resolve(src: &Sources) -> Result<Resolved, Vec<String>> {
    let mut tried = Vec::new();
    let mut found: Option<(String, String)> = None;
    if src.board == "aws-ec2" {
        let mut network = None;
        if src.bootstrap_network {
            match bootstrap::Bootstrap::start() {
                Ok(b) => {
                    println!(
                        "star-config: {} has {}/{} from DHCP for the instance metadata service",
                        b.interface, b.lease.address, b.lease.prefix_len
                    );
                    network = Some(b);
                }
                Err(e) => tried.push(format!("EC2 user-data: {e}")),
            }
        }
        if network.is_some() || !src.bootstrap_network {
            match imds::user_data(src.imds, src.imds_timeout) {
                Ok(imds::UserData::Found(text)) => found = Some((text, "EC2 user-data".into())),
                Ok(imds::UserData::None) => {
                    tried.push("this instance has no EC2 user-data".to_string())
                }
                Err(e) => tried.push(e),
            }
        }
        if let Some(mut b) = network {
            b.release();
        }
    }
    if found.is_none() {
        let name = partition::PARTITION_NAME;
        match partition::wait_for_partition(src.sys, src.dev, name, src.partition_wait) {
            None => tried.push(format!(
                "no partition named {name} on any disk (waited {} s for one)",
                src.partition_wait.as_secs()
            )),
            Some(device) => match partition::read_star_toml(&device) {
                Ok(Some(text)) => {
                    found = Some((
                        text,
                        format!("{}:{}", device.display(), partition::FILE_NAME),
                    ))
                }
                Ok(None) => tried.push(format!(
                    "the {} partition ({}) has no {}",
                    partition::PARTITION_NAME,
                    device.display(),
                    partition::FILE_NAME
                )),
                Err(e) => tried.push(e),
            },
        }
    }
    let Some((text, origin)) = found else {
        let mut lines = vec!["no star.toml found:".to_string()];
        lines.extend(tried.iter().map(|t| format!("  {t}")));
        lines.push(match src.board {
            "aws-ec2" => "give the instance its star.toml as user-data (see board/examples/aws-ec2.star.toml)".into(),
            _ => format!(
                "put star.toml on the {} partition (star-image build --config FILE, or from any machine: it is FAT)",
                partition::PARTITION_NAME
            ),
        });
        return Err(lines);
    };

    let wanted = overrides::from_cmdline(src.cmdline);
    let merged = overrides::apply(&text, &wanted).map_err(|e| vec![e])?;
    match NodeConfig::from_toml(&merged, Path::new(&origin)) {
        Ok(config) => {
            let origin = if wanted.is_empty() {
                origin
            } else {
                let words: Vec<String> = wanted
                    .iter()
                    .map(|o| format!("star.{}={}", o.key, o.value))
                    .collect();
                format!(
                    "{origin}, with {} from the kernel command line",
                    words.join(" ")
                )
            };
            Ok(Resolved {
                config,
                text: merged,
                origin,
            })
        }
        // With overrides the merged text is not what anyone wrote, so its line numbers
        // would mislead: if the file alone is fine, the overrides are at fault.
        Err(errors)
            if !wanted.is_empty() && NodeConfig::from_toml(&text, Path::new(&origin)).is_ok() =>
        {
            Err(errors
                .0
                .iter()
                .map(|e| {
                    format!(
                        "kernel command line: {}: {}",
                        e.key.as_deref().unwrap_or("?"),
                        e.message
                    )
                })
                .collect())
        }
        Err(errors) => Err(errors.0.iter().map(|e| e.to_string()).collect()),
    }
}

/// The board the running image was built for, from os-release's VARIANT_ID.
pub fn board_of(os_release: &Path) -> String {
    std::fs::read_to_string(os_release)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VARIANT_ID="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Writes `text` to `path` whole or not at all.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp: PathBuf = path.with_extension("toml.partial");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
