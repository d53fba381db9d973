//! `check`: everything on the disk a person needs to judge its health, and every
//! disagreement between the GPT and the array config.

use crate::array::Array;
use crate::config_store::{read_copy, ConfigCopy, CopyState};
use crate::error::Error;
use crate::gpt::Gpt;
use crate::io::Access;
use crate::layout::{human_size, lun_partition_name, META_PARTITION};
use crate::superblock::Superblock;
use star_core::array_config::ArrayConfig;
use std::fmt;
use std::path::{Path, PathBuf};

/// A disagreement between the GPT and the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A partition no LUN of the config owns: a create interrupted after the GPT write,
    /// a delete interrupted before it, or someone else's partition. Its space stays used.
    Orphan {
        partition: u32,
        name: String,
        size_bytes: u64,
    },
    /// A LUN whose partition is not in the GPT.
    Missing { lun: String, partition: u32 },
    /// A LUN whose partition exists but differs from what the config says.
    Differs {
        lun: String,
        partition: u32,
        what: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Orphan {
                partition,
                name,
                size_bytes,
            } => write!(
                f,
                "orphan partition {partition} {name:?} ({}): no LUN of the config owns it",
                human_size(*size_bytes)
            ),
            Mismatch::Missing { lun, partition } => {
                write!(
                    f,
                    "LUN {lun:?}: its partition {partition} is missing from the GPT"
                )
            }
            Mismatch::Differs {
                lun,
                partition,
                what,
            } => {
                write!(f, "LUN {lun:?}: partition {partition} {what}")
            }
        }
    }
}

/// Compares the GPT's partitions with the config's LUNs (pure).
pub fn compare(gpt: &Gpt, config: &ArrayConfig) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for p in gpt.partitions.iter().filter(|p| p.number != META_PARTITION) {
        if !config.luns.iter().any(|l| l.partition == p.number) {
            out.push(Mismatch::Orphan {
                partition: p.number,
                name: p.name.clone(),
                size_bytes: p.size_bytes(),
            });
        }
    }
    for lun in &config.luns {
        let Some(p) = gpt.partition(lun.partition) else {
            out.push(Mismatch::Missing {
                lun: lun.name.clone(),
                partition: lun.partition,
            });
            continue;
        };
        let mut what = Vec::new();
        if p.unique_guid.to_string() != lun.partuuid {
            what.push(format!(
                "has GUID {}, the config says {}",
                p.unique_guid, lun.partuuid
            ));
        }
        if p.size_bytes() != lun.size_bytes {
            what.push(format!(
                "is {} bytes, the config says {}",
                p.size_bytes(),
                lun.size_bytes
            ));
        }
        if p.name != lun_partition_name(&lun.name) {
            what.push(format!("is named {:?}", p.name));
        }
        if !what.is_empty() {
            out.push(Mismatch::Differs {
                lun: lun.name.clone(),
                partition: lun.partition,
                what: what.join("; "),
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub path: PathBuf,
    pub disk_bytes: u64,
    /// Whether the disk could be opened with O_DIRECT.
    pub direct_io: bool,
    pub gpt_problems: Vec<String>,
    pub superblock: Result<Superblock, String>,
    pub copy_a: CopyState,
    pub copy_b: CopyState,
    /// The copy readers use and its generation, if either is valid.
    pub in_use: Option<(ConfigCopy, u64)>,
    pub mismatches: Vec<Mismatch>,
}

impl CheckReport {
    /// Everything that needs a person's attention. A copy never written is not one: the
    /// second copy stays empty until the first change after init.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.gpt_problems.clone();
        if let Err(e) = &self.superblock {
            out.push(format!("superblock: {e}"));
        }
        for (name, copy) in [("A", &self.copy_a), ("B", &self.copy_b)] {
            if let CopyState::Invalid { problem, .. } = copy {
                out.push(format!("config copy {name}: {problem}"));
            }
        }
        if self.in_use.is_none() {
            out.push("no valid array config".into());
        }
        out.extend(self.mismatches.iter().map(|m| m.to_string()));
        out
    }

    pub fn is_clean(&self) -> bool {
        self.problems().is_empty()
    }
}

fn copy_line(copy: &CopyState) -> String {
    match copy {
        CopyState::Valid { generation, .. } => format!("generation {generation}, ok"),
        CopyState::NeverWritten => "never written".into(),
        CopyState::Invalid { problem, .. } => format!("BAD: {problem}"),
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "disk {}: {}{}",
            self.path.display(),
            human_size(self.disk_bytes),
            if self.direct_io { "" } else { " (no O_DIRECT)" }
        )?;
        match &self.superblock {
            Ok(sb) => writeln!(
                f,
                "superblock: array {} ({}), initialized by node {} at {}",
                sb.array_name, sb.array_uuid, sb.initialized_by_node, sb.initialized_at
            )?,
            Err(e) => writeln!(f, "superblock: BAD: {e}")?,
        }
        writeln!(f, "config copy A: {}", copy_line(&self.copy_a))?;
        writeln!(f, "config copy B: {}", copy_line(&self.copy_b))?;
        if let Some((copy, generation)) = self.in_use {
            writeln!(f, "in use: copy {copy}, generation {generation}")?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            writeln!(f, "no problems")
        } else {
            problems
                .iter()
                .try_for_each(|p| writeln!(f, "problem: {p}"))
        }
    }
}

/// Reads everything and reports; fails only if the disk cannot be read or is not STAR's.
pub fn check(path: &Path) -> Result<CheckReport, Error> {
    let array = Array::open(path, Access::ReadOnly)?;
    let copy_a = read_copy(&array.disk, ConfigCopy::A)?;
    let copy_b = read_copy(&array.disk, ConfigCopy::B)?;
    let chosen = crate::config_store::choose(copy_a.clone(), copy_b.clone()).ok();
    let mismatches = chosen
        .as_ref()
        .map(|s| compare(&array.gpt, &s.config))
        .unwrap_or_default();
    Ok(CheckReport {
        path: path.to_path_buf(),
        disk_bytes: array.disk.size(),
        direct_io: array.disk.is_direct(),
        gpt_problems: array.gpt_problems,
        superblock: array.superblock,
        copy_a,
        copy_b,
        in_use: chosen.map(|s| (s.copy, s.generation)),
        mismatches,
    })
}
