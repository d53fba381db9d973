//! The array configuration: what both controllers export, kept on the shared disk (the
//! metadata partition, double-buffered under a generation number) rather than in either
//! controller's star.toml. star.toml's `[[lun]]` and `[[host]]` only seed it when the
//! shared disk is initialized; after that this is the one truth, changed through the
//! active controller (`star lun ...`, `star host ...`).
//!
//! It is stored as pretty-printed JSON so that `dd` and a text editor are enough to read
//! it: nothing on the shared disk should need STAR's code to be understood.

use crate::node_config::valid_iqn;
use serde::{Deserialize, Serialize};

pub const ARRAY_CONFIG_VERSION: u32 = 1;

/// CHAP secrets outside 12..=16 characters are refused by the Microsoft initiator and by
/// several hardware initiators; open-iscsi accepts them. We refuse what any of them refuse.
pub const CHAP_SECRET_LEN: std::ops::RangeInclusive<usize> = 12..=16;

/// iSCSI LUN numbers we hand out: LIO accepts up to 65535, initiators commonly scan 0..255.
pub const MAX_LUN_ID: u16 = 255;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayConfig {
    pub version: u32,
    pub array_name: String,
    /// The one target IQN both controllers export (tpgt_1 on controller 1, tpgt_2 on 2).
    pub target_iqn: String,
    /// Where each controller's portal listens; a controller without an entry listens on
    /// its client interface's address.
    #[serde(default)]
    pub portals: Vec<Portal>,
    #[serde(default)]
    pub luns: Vec<Lun>,
    #[serde(default)]
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Portal {
    /// Controller 1 or 2.
    pub node: u8,
    pub address: std::net::IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    pub name: String,
    /// The SCSI LUN number hosts see.
    pub id: u16,
    pub size_bytes: u64,
    /// The unit serial (VPD 0x80), 32 lowercase hex digits. LIO builds the NAA identifier
    /// of VPD 0x83 from its hex digits, so both controllers, given the same serial, report
    /// the same device identity and multipath joins the two paths.
    pub serial: String,
    /// The GPT partition of the shared disk that holds the LUN's blocks.
    pub partition: u32,
    /// That partition's unique GUID (lowercase), so the LUN is found by
    /// /dev/disk/by-partuuid-style lookup whatever the disk's device name.
    pub partuuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub iqn: String,
    /// Names of the LUNs this host may see.
    #[serde(default)]
    pub luns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap: Option<Chap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chap {
    /// What the initiator proves: its user name and secret.
    pub userid: String,
    pub secret: String,
    /// Mutual CHAP: what the target proves back to the initiator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_secret: Option<String>,
}

impl ArrayConfig {
    /// A new, empty array named `array_name`; its IQN is derived from the name.
    pub fn new(array_name: &str) -> ArrayConfig {
        ArrayConfig {
            version: ARRAY_CONFIG_VERSION,
            array_name: array_name.to_string(),
            target_iqn: default_target_iqn(array_name),
            portals: Vec::new(),
            luns: Vec::new(),
            hosts: Vec::new(),
        }
    }

    pub fn lun(&self, name: &str) -> Option<&Lun> {
        self.luns.iter().find(|l| l.name == name)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The lowest LUN number not in use.
    pub fn free_lun_id(&self) -> Option<u16> {
        (0..=MAX_LUN_ID).find(|id| self.luns.iter().all(|l| l.id != *id))
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serializes");
        text.push('\n');
        text
    }

    /// Parses and validates; the error names the first thing wrong.
    pub fn from_json(text: &str) -> Result<ArrayConfig, String> {
        let config: ArrayConfig =
            serde_json::from_str(text).map_err(|e| format!("array config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Every rule the array config must keep; the message says which and where.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != ARRAY_CONFIG_VERSION {
            return Err(format!(
                "array config version {} is not supported (this firmware reads version {ARRAY_CONFIG_VERSION})",
                self.version
            ));
        }
        check_name("array name", &self.array_name)?;
        if !valid_iqn(&self.target_iqn) {
            return Err(invalid_iqn("target IQN", &self.target_iqn));
        }
        for p in &self.portals {
            if p.node != 1 && p.node != 2 {
                return Err(format!("portal {}: node must be 1 or 2", p.address));
            }
            if self.portals.iter().filter(|q| q.node == p.node).count() > 1 {
                return Err(format!("controller {} has more than one portal", p.node));
            }
        }
        for (i, lun) in self.luns.iter().enumerate() {
            check_name("LUN name", &lun.name)?;
            if self.luns[..i].iter().any(|l| l.name == lun.name) {
                return Err(format!("LUN {:?} is defined twice", lun.name));
            }
            if let Some(other) = self.luns[..i].iter().find(|l| l.id == lun.id) {
                return Err(format!(
                    "LUNs {:?} and {:?} both have LUN number {}",
                    other.name, lun.name, lun.id
                ));
            }
            if lun.id > MAX_LUN_ID {
                return Err(format!(
                    "LUN {:?}: number {} is above {MAX_LUN_ID}",
                    lun.name, lun.id
                ));
            }
            if !valid_serial(&lun.serial) {
                return Err(format!(
                    "LUN {:?}: serial {:?} must be 32 lowercase hex digits",
                    lun.name, lun.serial
                ));
            }
            if let Some(other) = self.luns[..i].iter().find(|l| l.serial == lun.serial) {
                return Err(format!(
                    "LUNs {:?} and {:?} have the same serial",
                    other.name, lun.name
                ));
            }
            if lun.size_bytes == 0 || lun.size_bytes % 512 != 0 {
                return Err(format!(
                    "LUN {:?}: size {} is not a positive multiple of 512 bytes",
                    lun.name, lun.size_bytes
                ));
            }
            if lun.partition < 2 {
                return Err(format!(
                    "LUN {:?}: partition {} (partition 1 is the metadata area)",
                    lun.name, lun.partition
                ));
            }
            if self.luns[..i].iter().any(|l| l.partition == lun.partition) {
                return Err(format!(
                    "LUN {:?}: partition {} is used twice",
                    lun.name, lun.partition
                ));
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            check_name("host name", &host.name)?;
            if self.hosts[..i].iter().any(|h| h.name == host.name) {
                return Err(format!("host {:?} is defined twice", host.name));
            }
            if !valid_iqn(&host.iqn) {
                return Err(invalid_iqn(&format!("host {:?}", host.name), &host.iqn));
            }
            if let Some(other) = self.hosts[..i].iter().find(|h| h.iqn == host.iqn) {
                return Err(format!(
                    "hosts {:?} and {:?} have the same IQN {}",
                    other.name, host.name, host.iqn
                ));
            }
            for name in &host.luns {
                if self.lun(name).is_none() {
                    return Err(format!("host {:?}: no LUN named {name:?}", host.name));
                }
            }
            if let Some(chap) = &host.chap {
                chap.validate(&host.name)?;
            }
        }
        Ok(())
    }
}

impl Chap {
    pub fn validate(&self, host: &str) -> Result<(), String> {
        check_chap_user(host, "CHAP user name", &self.userid)?;
        check_chap_secret(host, "CHAP secret", &self.secret)?;
        match (&self.mutual_userid, &self.mutual_secret) {
            (None, None) => Ok(()),
            (Some(user), Some(secret)) => {
                check_chap_user(host, "mutual CHAP user name", user)?;
                check_chap_secret(host, "mutual CHAP secret", secret)?;
                if *secret == self.secret {
                    // RFC 3720 §8.2.1: the two directions must not share a secret.
                    return Err(format!(
                        "host {host:?}: the mutual CHAP secret must differ from the initiator's"
                    ));
                }
                Ok(())
            }
            _ => Err(format!(
                "host {host:?}: mutual CHAP needs both a user name and a secret"
            )),
        }
    }
}

fn check_chap_user(host: &str, what: &str, user: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > 255 || !user.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "host {host:?}: {what} {user:?} must be 1 to 255 printable characters without spaces"
        ));
    }
    Ok(())
}

fn check_chap_secret(host: &str, what: &str, secret: &str) -> Result<(), String> {
    if !CHAP_SECRET_LEN.contains(&secret.len()) || !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "host {host:?}: {what} must be 12 to 16 printable characters without spaces (it has {}): initiators refuse other lengths",
            secret.chars().count()
        ));
    }
    Ok(())
}

/// Names of LUNs, hosts and the array: they become configfs directory and GPT partition
/// names, so they stay short and plain.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 32 || !name.chars().all(plain) {
        return Err(format!(
            "{what} {name:?} must be 1 to 32 letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

fn invalid_iqn(what: &str, iqn: &str) -> String {
    format!("{what}: {iqn:?} is not an iSCSI name: iqn.YYYY-MM.reversed.domain[:name], lowercase")
}

fn valid_serial(serial: &str) -> bool {
    serial.len() == 32
        && serial
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The target IQN of an array: STAR's naming authority and the array's name.
pub fn default_target_iqn(array_name: &str) -> String {
    format!(
        "iqn.2026-11.org.star-array:{}",
        array_name.to_ascii_lowercase().replace('_', "-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ArrayConfig {
        let mut c = ArrayConfig::new("star-lab");
        c.luns.push(Lun {
            name: "data0".into(),
            id: 0,
            size_bytes: 1 << 30,
            serial: "0123456789abcdef0123456789abcdef".into(),
            partition: 2,
            partuuid: "6c7f4e1a-0000-4000-8000-000000000002".into(),
        });
        c.hosts.push(Host {
            name: "client1".into(),
            iqn: "iqn.2026-11.example.lab:client1".into(),
            luns: vec!["data0".into()],
            chap: Some(Chap {
                userid: "client1".into(),
                secret: "secret-123456".into(),
                mutual_userid: None,
                mutual_secret: None,
            }),
        });
        c
    }

    #[test]
    fn round_trips_through_json() {
        let c = sample();
        assert_eq!(ArrayConfig::from_json(&c.to_json()), Ok(c));
    }

    #[test]
    fn default_iqn_is_valid() {
        assert!(valid_iqn(&default_target_iqn("Star_Lab")));
        assert_eq!(
            default_target_iqn("star-lab"),
            "iqn.2026-11.org.star-array:star-lab"
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let mut c = sample();
        c.hosts[0].iqn = "IQN.bad".into();
        assert_eq!(
            c.validate(),
            Err("host \"client1\": \"IQN.bad\" is not an iSCSI name: iqn.YYYY-MM.reversed.domain[:name], lowercase".into())
        );

        let mut c = sample();
        let mut twin = c.luns[0].clone();
        twin.id = 1;
        twin.partition = 3;
        twin.serial = "f".repeat(32);
        c.luns.push(twin);
        assert_eq!(c.validate(), Err("LUN \"data0\" is defined twice".into()));

        let mut c = sample();
        c.hosts[0].chap.as_mut().unwrap().secret = "short".into();
        assert_eq!(
            c.validate(),
            Err("host \"client1\": CHAP secret must be 12 to 16 printable characters without spaces (it has 5): initiators refuse other lengths".into())
        );

        let mut c = sample();
        c.hosts[0].luns = vec!["nope".into()];
        assert_eq!(
            c.validate(),
            Err("host \"client1\": no LUN named \"nope\"".into())
        );

        let mut c = sample();
        c.luns[0].serial = "XYZ".into();
        assert!(c
            .validate()
            .unwrap_err()
            .contains("32 lowercase hex digits"));

        let mut c = sample();
        let chap = c.hosts[0].chap.as_mut().unwrap();
        chap.mutual_userid = Some("array".into());
        chap.mutual_secret = Some(chap.secret.clone());
        assert!(c.validate().unwrap_err().contains("must differ"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = sample().to_json().replace("\"luns\"", "\"lunz\"");
        assert!(ArrayConfig::from_json(&text)
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn free_lun_ids_fill_gaps() {
        let mut c = sample();
        assert_eq!(c.free_lun_id(), Some(1));
        c.luns[0].id = 3;
        assert_eq!(c.free_lun_id(), Some(0));
    }
}
