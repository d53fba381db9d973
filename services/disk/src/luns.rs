//! Creating, deleting and listing LUNs: each is a GPT partition plus an entry of the
//! array config, and the two are changed in the order that keeps the config the truth.
//!
//! - Create: the partition first, then the config. A crash in between leaves a partition
//!   the config does not know: an orphan that `check` reports and that free-space search
//!   already avoids, never a LUN whose blocks are not reserved.
//! - Delete: the config first, then the partition, for the same reason.

use crate::array::{open_for_change, read_config, Changed};
use crate::config_store;
use crate::entropy::{Entropy, OsEntropy};
use crate::error::Error;
use crate::gpt::{Gpt, Partition};
use crate::layout::{
    human_size, lun_partition_name, round_up_to_align, FIRST_LUN_PARTITION, LUN_TYPE, MAX_LUN_NAME,
    SECTOR,
};
use star_core::array_config::{ArrayConfig, Lun, MAX_LUN_ID};
use std::path::Path;

/// Refuses a config that would not fit a copy, before anything is written.
pub(crate) fn check_storable(config: &ArrayConfig) -> Result<(), Error> {
    config.validate().map_err(Error::Invalid)?;
    config_store::encode_copy(config, 0).map(drop)
}

/// The new GPT and config with LUN `name` of at least `size_bytes` (rounded up to whole
/// MiB, so the next partition stays aligned), placed in the first free extent that holds
/// it, with the lowest free LUN number and GPT entry, a random serial and partition GUID.
pub fn plan_create(
    gpt: &Gpt,
    config: &ArrayConfig,
    name: &str,
    size_bytes: u64,
    entropy: &mut dyn Entropy,
) -> Result<(Gpt, ArrayConfig, Lun), Error> {
    if config.lun(name).is_some() {
        return Err(Error::Invalid(format!(
            "a LUN named {name:?} already exists"
        )));
    }
    if name.len() > MAX_LUN_NAME {
        return Err(Error::Invalid(format!(
            "LUN name {name:?} is {} characters; its partition name {:?} must fit the GPT's 36, \
             so LUN names are at most {MAX_LUN_NAME}",
            name.len(),
            lun_partition_name(name)
        )));
    }
    if size_bytes == 0 {
        return Err(Error::Invalid(format!(
            "LUN {name:?}: the size must be positive"
        )));
    }
    let size = round_up_to_align(size_bytes)
        .ok_or_else(|| Error::Invalid(format!("LUN {name:?}: size {size_bytes} is too large")))?;
    let id = config
        .free_lun_id()
        .ok_or_else(|| Error::Invalid(format!("every LUN number 0..={MAX_LUN_ID} is in use")))?;
    let number = gpt.free_number(FIRST_LUN_PARTITION).ok_or_else(|| {
        Error::Invalid("every entry of the GPT is in use (128 partitions)".into())
    })?;
    let free = gpt.free_extents();
    let Some(extent) = free.iter().find(|e| e.bytes() >= size) else {
        let largest = free.iter().map(|e| e.bytes()).max().unwrap_or(0);
        let rounded = if size == size_bytes {
            String::new()
        } else {
            " (rounded up to whole MiB)".into()
        };
        return Err(Error::Invalid(format!(
            "LUN {name:?} needs {}{rounded}, larger than the largest free space on the disk, {}",
            human_size(size),
            human_size(largest)
        )));
    };
    let partuuid = entropy.guid()?;
    let mut next_gpt = gpt.clone();
    next_gpt
        .insert(Partition {
            number,
            name: lun_partition_name(name),
            type_guid: LUN_TYPE,
            unique_guid: partuuid,
            first_lba: extent.first_lba,
            last_lba: extent.first_lba + size / SECTOR - 1,
            attributes: 0,
        })
        .map_err(Error::Invalid)?;
    let lun = Lun {
        name: name.to_string(),
        id,
        size_bytes: size,
        serial: entropy.serial()?,
        partition: number,
        partuuid: partuuid.to_string(),
    };
    let mut next_config = config.clone();
    next_config.luns.push(lun.clone());
    check_storable(&next_config)?;
    Ok((next_gpt, next_config, lun))
}

/// What deleting a LUN changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePlan {
    pub gpt: Gpt,
    pub config: ArrayConfig,
    pub lun: Lun,
    /// Hosts the LUN was unmapped from (only with `force`).
    pub unmapped_from: Vec<String>,
    /// The GPT entry removed, if the LUN's partition was there and was the LUN's.
    pub partition_removed: Option<u32>,
    pub warnings: Vec<String>,
}

pub fn plan_delete(
    gpt: &Gpt,
    config: &ArrayConfig,
    name: &str,
    force: bool,
) -> Result<DeletePlan, Error> {
    let lun = config
        .lun(name)
        .cloned()
        .ok_or_else(|| Error::Invalid(format!("no LUN named {name:?}")))?;
    let mapped: Vec<String> = config
        .hosts
        .iter()
        .filter(|h| h.luns.iter().any(|l| l == name))
        .map(|h| h.name.clone())
        .collect();
    if !mapped.is_empty() && !force {
        let names: Vec<String> = mapped.iter().map(|h| format!("{h:?}")).collect();
        return Err(Error::Invalid(format!(
            "LUN {name:?} is mapped to host(s) {}; unmap it first, or use --force to unmap and delete it",
            names.join(", ")
        )));
    }
    let mut next_config = config.clone();
    next_config.luns.retain(|l| l.name != name);
    for h in &mut next_config.hosts {
        h.luns.retain(|l| l != name);
    }
    check_storable(&next_config)?;

    let mut next_gpt = gpt.clone();
    let mut warnings = Vec::new();
    let partition_removed = match gpt.partition(lun.partition) {
        Some(p) if p.unique_guid.to_string() == lun.partuuid => {
            next_gpt.remove(lun.partition);
            Some(lun.partition)
        }
        Some(p) => {
            warnings.push(format!(
                "partition {} is {:?} with GUID {}, not LUN {name:?}'s {}: left as it is",
                p.number, p.name, p.unique_guid, lun.partuuid
            ));
            None
        }
        None => {
            warnings.push(format!(
                "LUN {name:?}'s partition {} was already missing from the GPT",
                lun.partition
            ));
            None
        }
    };
    Ok(DeletePlan {
        gpt: next_gpt,
        config: next_config,
        lun,
        unmapped_from: mapped,
        partition_removed,
        warnings,
    })
}

/// Creates LUN `name` of `size_bytes` (rounded up to whole MiB) on the disk at `path`.
pub fn create(path: &Path, name: &str, size_bytes: u64) -> Result<Changed<Lun>, Error> {
    let (mut array, stored) = open_for_change(path)?;
    let (gpt, config, lun) =
        plan_create(&array.gpt, &stored.config, name, size_bytes, &mut OsEntropy)?;
    array.write_gpt(&gpt)?;
    let mut warnings = Vec::new();
    let p = gpt.partition(lun.partition).expect("just planned");
    if let Err(e) = array
        .disk
        .kernel_add_partition(p.number, p.start_bytes(), p.size_bytes())
    {
        warnings.push(format!(
            "the kernel was not told about the new partition: {e}"
        ));
    }
    let generation = config_store::write(&array.disk, &config, stored.generation).map_err(|e| {
        Error::Partial(format!(
            "partition {} {:?} was added to the GPT, but the array config was not changed: {e}; \
             `check` reports the partition as an orphan",
            p.number, p.name
        ))
    })?;
    Ok(Changed {
        value: lun,
        generation,
        warnings,
    })
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub lun: Lun,
    pub unmapped_from: Vec<String>,
}

/// Deletes LUN `name`; refused while hosts map it unless `force`, which unmaps it.
pub fn delete(path: &Path, name: &str, force: bool) -> Result<Changed<Deleted>, Error> {
    let (mut array, stored) = open_for_change(path)?;
    let plan = plan_delete(&array.gpt, &stored.config, name, force)?;
    let generation = config_store::write(&array.disk, &plan.config, stored.generation)?;
    let mut warnings = plan.warnings;
    if let Some(number) = plan.partition_removed {
        array.write_gpt(&plan.gpt).map_err(|e| {
            Error::Partial(format!(
                "LUN {name:?} was removed from the array config (generation {generation}), but its \
                 partition {number} is still in the GPT: {e}; `check` reports it as an orphan"
            ))
        })?;
        if let Err(e) = array.disk.kernel_del_partition(number) {
            warnings.push(format!(
                "the kernel still shows partition {number} (it goes at the next re-read): {e}"
            ));
        }
    }
    Ok(Changed {
        value: Deleted {
            lun: plan.lun,
            unmapped_from: plan.unmapped_from,
        },
        generation,
        warnings,
    })
}

/// The LUNs of the array, in config order.
pub fn list(path: &Path) -> Result<Vec<Lun>, Error> {
    Ok(read_config(path)?.config.luns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::CountingEntropy;
    use crate::guid::Guid;
    use crate::layout::{ALIGN, LUN_AREA_START, META_NAME, META_SIZE, META_START, META_TYPE};
    use star_core::array_config::Host;

    fn disk(mib: u64) -> Gpt {
        let mut g = Gpt::new(Guid::v4_from([1; 16]), mib * ALIGN / SECTOR);
        g.insert(Partition {
            number: 1,
            name: META_NAME.into(),
            type_guid: META_TYPE,
            unique_guid: Guid::v4_from([2; 16]),
            first_lba: META_START / SECTOR,
            last_lba: (META_START + META_SIZE) / SECTOR - 1,
            attributes: 0,
        })
        .unwrap();
        g
    }

    #[test]
    fn creates_fill_the_first_gap_with_the_lowest_numbers() {
        let mut e = CountingEntropy::default();
        let c = ArrayConfig::new("lab");
        let (g, c, a) = plan_create(&disk(200), &c, "a", 10 * ALIGN, &mut e).unwrap();
        let (g, c, b) = plan_create(&g, &c, "b", 10 * ALIGN, &mut e).unwrap();
        assert_eq!((a.id, a.partition, b.id, b.partition), (0, 2, 1, 3));
        assert_eq!(g.partition(2).unwrap().start_bytes(), LUN_AREA_START);
        assert_eq!(
            g.partition(3).unwrap().start_bytes(),
            LUN_AREA_START + 10 * ALIGN
        );
        assert_ne!(a.serial, b.serial);
        assert_eq!(a.partuuid, g.partition(2).unwrap().unique_guid.to_string());

        let plan = plan_delete(&g, &c, "a", false).unwrap();
        assert_eq!(plan.partition_removed, Some(2));
        // A smaller LUN reuses the hole and its numbers; the size is rounded up to MiB.
        let (g, _, c2) =
            plan_create(&plan.gpt, &plan.config, "c", 5 * ALIGN - 512, &mut e).unwrap();
        assert_eq!((c2.id, c2.partition, c2.size_bytes), (0, 2, 5 * ALIGN));
        assert_eq!(g.partition(2).unwrap().start_bytes(), LUN_AREA_START);
    }

    #[test]
    fn refusals_name_the_problem() {
        let mut e = CountingEntropy::default();
        let c = ArrayConfig::new("lab");
        let g = disk(100);
        let err = plan_create(&g, &c, "big", 40 * ALIGN, &mut e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LUN \"big\" needs 40 MiB, larger than the largest free space on the disk, 34 MiB"
        );
        let (g2, c2, _) = plan_create(&g, &c, "a", ALIGN, &mut e).unwrap();
        assert_eq!(
            plan_create(&g2, &c2, "a", ALIGN, &mut e)
                .unwrap_err()
                .to_string(),
            "a LUN named \"a\" already exists"
        );
        assert!(plan_create(&g, &c, &"x".repeat(28), ALIGN, &mut e)
            .unwrap_err()
            .to_string()
            .contains("at most 27"));
        assert!(plan_create(&g, &c, "bad name", ALIGN, &mut e)
            .unwrap_err()
            .to_string()
            .contains("letters, digits"));
    }

    #[test]
    fn a_mapped_lun_is_deleted_only_with_force() {
        let mut e = CountingEntropy::default();
        let (g, mut c, _) =
            plan_create(&disk(100), &ArrayConfig::new("lab"), "a", ALIGN, &mut e).unwrap();
        for (i, h) in ["h1", "h2"].iter().enumerate() {
            c.hosts.push(Host {
                name: h.to_string(),
                iqn: format!("iqn.2026-01.lab:{i}"),
                luns: vec!["a".into()],
                chap: None,
            });
        }
        assert_eq!(
            plan_delete(&g, &c, "a", false).unwrap_err().to_string(),
            "LUN \"a\" is mapped to host(s) \"h1\", \"h2\"; unmap it first, or use --force to unmap and delete it"
        );
        let plan = plan_delete(&g, &c, "a", true).unwrap();
        assert_eq!(plan.unmapped_from, vec!["h1", "h2"]);
        assert!(plan.config.hosts.iter().all(|h| h.luns.is_empty()));
        assert!(plan.gpt.partition(2).is_none());
    }
}
