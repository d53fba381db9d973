//! Hosts (initiators) allowed to see LUNs, and their CHAP credentials: changes to the
//! array config alone, each one read-modify-write under the config generation.

use crate::array::{open_for_change, read_config, Changed};
use crate::config_store;
use crate::error::Error;
use crate::luns::check_storable;
use star_core::array_config::{ArrayConfig, Chap, Host};
use std::path::Path;

fn host_mut<'a>(config: &'a mut ArrayConfig, name: &str) -> Result<&'a mut Host, Error> {
    config
        .hosts
        .iter_mut()
        .find(|h| h.name == name)
        .ok_or_else(|| Error::Invalid(format!("no host named {name:?}")))
}

/// Adds `host` (its name, IQN, the LUNs it may see, and optionally CHAP).
pub fn plan_add(config: &ArrayConfig, host: Host) -> Result<ArrayConfig, Error> {
    if config.host(&host.name).is_some() {
        return Err(Error::Invalid(format!(
            "a host named {:?} already exists",
            host.name
        )));
    }
    let mut next = config.clone();
    next.hosts.push(host);
    check_storable(&next)?;
    Ok(next)
}

pub fn plan_remove(config: &ArrayConfig, name: &str) -> Result<ArrayConfig, Error> {
    if config.host(name).is_none() {
        return Err(Error::Invalid(format!("no host named {name:?}")));
    }
    let mut next = config.clone();
    next.hosts.retain(|h| h.name != name);
    check_storable(&next)?;
    Ok(next)
}

/// Lets host `name` see `luns` as well as what it saw.
pub fn plan_map(config: &ArrayConfig, name: &str, luns: &[String]) -> Result<ArrayConfig, Error> {
    let mut next = config.clone();
    let host = host_mut(&mut next, name)?;
    for lun in luns {
        if !host.luns.contains(lun) {
            host.luns.push(lun.clone());
        }
    }
    check_storable(&next)?;
    Ok(next)
}

/// Hides `luns` from host `name`.
pub fn plan_unmap(config: &ArrayConfig, name: &str, luns: &[String]) -> Result<ArrayConfig, Error> {
    let mut next = config.clone();
    let host = host_mut(&mut next, name)?;
    if let Some(lun) = luns.iter().find(|l| !host.luns.contains(l)) {
        return Err(Error::Invalid(format!(
            "host {name:?} does not see LUN {lun:?}"
        )));
    }
    host.luns.retain(|l| !luns.contains(l));
    check_storable(&next)?;
    Ok(next)
}

/// Sets host `name`'s CHAP: one-way (user and secret) or mutual (plus the target's).
pub fn plan_chap_set(config: &ArrayConfig, name: &str, chap: Chap) -> Result<ArrayConfig, Error> {
    let mut next = config.clone();
    host_mut(&mut next, name)?.chap = Some(chap);
    check_storable(&next)?;
    Ok(next)
}

pub fn plan_chap_clear(config: &ArrayConfig, name: &str) -> Result<ArrayConfig, Error> {
    let mut next = config.clone();
    host_mut(&mut next, name)?.chap = None;
    check_storable(&next)?;
    Ok(next)
}

/// Applies a config-only change to the disk at `path`.
pub(crate) fn apply(
    path: &Path,
    plan: impl FnOnce(&ArrayConfig) -> Result<ArrayConfig, Error>,
) -> Result<Changed<ArrayConfig>, Error> {
    let (array, stored) = open_for_change(path)?;
    let next = plan(&stored.config)?;
    let generation = config_store::write(&array.disk, &next, stored.generation)?;
    Ok(Changed {
        value: next,
        generation,
        warnings: Vec::new(),
    })
}

pub fn add(path: &Path, host: Host) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_add(c, host))
}

pub fn remove(path: &Path, name: &str) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_remove(c, name))
}

pub fn map(path: &Path, name: &str, luns: &[String]) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_map(c, name, luns))
}

pub fn unmap(path: &Path, name: &str, luns: &[String]) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_unmap(c, name, luns))
}

pub fn chap_set(path: &Path, name: &str, chap: Chap) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_chap_set(c, name, chap))
}

pub fn chap_clear(path: &Path, name: &str) -> Result<Changed<ArrayConfig>, Error> {
    apply(path, |c| plan_chap_clear(c, name))
}

pub fn list(path: &Path) -> Result<Vec<Host>, Error> {
    Ok(read_config(path)?.config.hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use star_core::array_config::Lun;

    fn config() -> ArrayConfig {
        let mut c = ArrayConfig::new("lab");
        c.luns.push(Lun {
            name: "data0".into(),
            id: 0,
            size_bytes: 1 << 20,
            serial: "0123456789abcdef0123456789abcdef".into(),
            partition: 2,
            partuuid: "6c7f4e1a-0000-4000-8000-000000000002".into(),
        });
        c
    }

    fn host(name: &str, iqn: &str) -> Host {
        Host {
            name: name.into(),
            iqn: iqn.into(),
            luns: vec!["data0".into()],
            chap: None,
        }
    }

    fn chap(secret: &str) -> Chap {
        Chap {
            userid: "client1".into(),
            secret: secret.into(),
            mutual_userid: None,
            mutual_secret: None,
        }
    }

    #[test]
    fn hosts_are_added_mapped_and_removed() {
        let c = plan_add(&config(), host("h1", "iqn.2026-01.lab:h1")).unwrap();
        assert_eq!(c.host("h1").unwrap().luns, vec!["data0"]);
        let c = plan_unmap(&c, "h1", &["data0".into()]).unwrap();
        assert!(c.host("h1").unwrap().luns.is_empty());
        let c = plan_map(&c, "h1", &["data0".into()]).unwrap();
        assert_eq!(c.host("h1").unwrap().luns, vec!["data0"]);
        let c = plan_remove(&c, "h1").unwrap();
        assert!(c.hosts.is_empty());
    }

    #[test]
    fn refusals_name_the_problem() {
        let c = plan_add(&config(), host("h1", "iqn.2026-01.lab:h1")).unwrap();
        assert_eq!(
            plan_add(&c, host("h1", "iqn.2026-01.lab:h2"))
                .unwrap_err()
                .to_string(),
            "a host named \"h1\" already exists"
        );
        assert!(plan_add(&c, host("h2", "IQN.Bad"))
            .unwrap_err()
            .to_string()
            .contains("\"IQN.Bad\" is not an iSCSI name"));
        assert!(plan_add(&c, host("h2", "iqn.2026-01.lab:h1"))
            .unwrap_err()
            .to_string()
            .contains("have the same IQN"));
        let mut unknown = host("h2", "iqn.2026-01.lab:h2");
        unknown.luns = vec!["nope".into()];
        assert!(plan_add(&c, unknown)
            .unwrap_err()
            .to_string()
            .contains("no LUN named \"nope\""));
        assert_eq!(
            plan_remove(&c, "h9").unwrap_err().to_string(),
            "no host named \"h9\""
        );
        assert!(plan_chap_set(&c, "h1", chap("12345678"))
            .unwrap_err()
            .to_string()
            .contains("12 to 16 printable characters"));
    }

    #[test]
    fn chap_is_set_one_way_or_mutual_and_cleared() {
        let c = plan_add(&config(), host("h1", "iqn.2026-01.lab:h1")).unwrap();
        let c = plan_chap_set(&c, "h1", chap("initiator-secret")).unwrap();
        assert_eq!(
            c.host("h1").unwrap().chap.as_ref().unwrap().secret,
            "initiator-secret"
        );
        let mut mutual = chap("initiator-secret");
        mutual.mutual_userid = Some("array".into());
        mutual.mutual_secret = Some("the-target-pass".into());
        let c = plan_chap_set(&c, "h1", mutual.clone()).unwrap();
        assert_eq!(c.host("h1").unwrap().chap, Some(mutual));
        let c = plan_chap_clear(&c, "h1").unwrap();
        assert_eq!(c.host("h1").unwrap().chap, None);
    }
}
