//! The heartbeat slot and mailbox records on the shared disk: small JSON payloads inside
//! star-disk's 4 KiB records (magic, version, sequence, CRC32C), so that
//! `dd if=DISK bs=4096 skip=257 count=1 | strings` shows a slot without our code.
//!
//! ```text
//! heartbeat slot  magic STARHBT1, sequence = seq
//!   {"node":1,"incarnation":1767225600000,"seq":42,"role":"active","term":3,
//!    "addr":"198.51.100.11:7401",
//!    "conns":[{"local":"192.0.2.100:3260","remote":"192.0.2.50:51234"}]}
//!   (addr: where the writer takes UDP heartbeats, so that star.toml need not name the
//!   peer's address, which DHCP may choose; conns: the writer's client connections to
//!   the floating address, which the node taking over resets with tickle ACKs)
//! mailbox         magic STARMBX1, sequence = the term the message is about (0 for empty)
//!   {"mail":"empty"}  {"mail":"poison_pill","term":4}
//!   {"mail":"hand_over_request","term":3}  {"mail":"hand_over_ack","term":3}
//! ```
//!
//! A block that does not decode (torn, a flipped bit, another kind, a slot whose JSON
//! disagrees with its header) is never trusted: a slot reads as missing, a mailbox as
//! empty, and the reason is returned for the log.

use crate::role::{Mail, Role, Slot};
use serde::{Deserialize, Serialize};
use star_core::heartbeat_status::TcpConnection;
use star_disk::buf::Block;
use star_disk::record::{self, RecordError, HEARTBEAT, MAILBOX};
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Starting,
    Standby,
    Promoting,
    Active,
    Demoting,
    Fenced,
    Maintenance,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> RoleName {
        match r {
            Role::Starting => RoleName::Starting,
            Role::Standby => RoleName::Standby,
            Role::Promoting => RoleName::Promoting,
            Role::Active => RoleName::Active,
            Role::Demoting => RoleName::Demoting,
            Role::Fenced => RoleName::Fenced,
            Role::Maintenance => RoleName::Maintenance,
        }
    }
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Starting => Role::Starting,
            RoleName::Standby => Role::Standby,
            RoleName::Promoting => Role::Promoting,
            RoleName::Active => Role::Active,
            RoleName::Demoting => Role::Demoting,
            RoleName::Fenced => Role::Fenced,
            RoleName::Maintenance => Role::Maintenance,
        }
    }
}

/// The inverse of [`Role::code`], for the UDP datagram's role byte.
pub fn role_from_code(code: u8) -> Option<Role> {
    [
        Role::Starting,
        Role::Standby,
        Role::Promoting,
        Role::Active,
        Role::Demoting,
        Role::Fenced,
        Role::Maintenance,
    ]
    .into_iter()
    .find(|r| r.code() == code)
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Starting => "starting",
        Role::Standby => "standby",
        Role::Promoting => "promoting",
        Role::Active => "active",
        Role::Demoting => "demoting",
        Role::Fenced => "fenced",
        Role::Maintenance => "maintenance",
    }
}

/// Unknown fields are ignored rather than refused: a peer running newer firmware may
/// add some, and its slot must not read as corrupt (which would look like a dead peer).
/// Damage is the CRC's to catch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SlotJson {
    node: u8,
    incarnation: u64,
    seq: u64,
    role: RoleName,
    term: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addr: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    conns: Vec<TcpConnection>,
}

/// At most this many client connections go into a slot: with IPv6 addresses they still
/// fit its 4 KiB record with room to spare.
pub const MAX_SLOT_CONNECTIONS: usize = 24;

/// What a slot carries besides the heartbeat itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotExtras {
    /// Where the writer takes UDP heartbeats.
    pub addr: Option<SocketAddr>,
    /// The writer's client connections to the floating address, for the node that takes
    /// over from it to reset (star-takeover's tickle ACKs).
    pub conns: Vec<TcpConnection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mail", rename_all = "snake_case", deny_unknown_fields)]
enum MailJson {
    Empty,
    PoisonPill { term: u64 },
    HandOverRequest { term: u64 },
    HandOverAck { term: u64 },
}

/// `addr`: where this node takes UDP heartbeats, for the peer to send them to.
pub fn encode_slot(node: u8, s: &Slot, addr: Option<SocketAddr>) -> Block {
    encode_slot_with(
        node,
        s,
        &SlotExtras {
            addr,
            conns: Vec::new(),
        },
    )
}

/// A slot with its extras; connections beyond [`MAX_SLOT_CONNECTIONS`] are left out.
pub fn encode_slot_with(node: u8, s: &Slot, extras: &SlotExtras) -> Block {
    let json = serde_json::to_vec(&SlotJson {
        node,
        incarnation: s.incarnation,
        seq: s.seq,
        role: s.role.into(),
        term: s.term,
        addr: extras.addr,
        conns: extras
            .conns
            .iter()
            .take(MAX_SLOT_CONNECTIONS)
            .copied()
            .collect(),
    })
    .expect("plain data serializes");
    record::encode(&HEARTBEAT, s.seq, &json).expect("a slot fits a record")
}

/// `Ok(None)`: never written. `Err`: present but not to be trusted, with the reason.
pub fn decode_slot(node: u8, block: &Block) -> Result<Option<Slot>, String> {
    decode_slot_and_address(node, block).map(|s| s.map(|(slot, _)| slot))
}

/// A slot with the heartbeat address its writer gave, if any.
pub fn decode_slot_and_address(
    node: u8,
    block: &Block,
) -> Result<Option<(Slot, Option<SocketAddr>)>, String> {
    decode_slot_with(node, block).map(|s| s.map(|(slot, extras)| (slot, extras.addr)))
}

/// A slot with everything its writer put in it.
pub fn decode_slot_with(node: u8, block: &Block) -> Result<Option<(Slot, SlotExtras)>, String> {
    let rec = match record::decode(&HEARTBEAT, &block.0) {
        Err(RecordError::NeverWritten) => return Ok(None),
        Err(e) => return Err(format!("heartbeat slot of node {node}: {e}")),
        Ok(rec) => rec,
    };
    let j: SlotJson = serde_json::from_slice(&rec.payload)
        .map_err(|e| format!("heartbeat slot of node {node}: payload: {e}"))?;
    if j.node != node || j.seq != rec.sequence {
        return Err(format!(
            "heartbeat slot of node {node}: inconsistent (node {} seq {} in a record of sequence {})",
            j.node, j.seq, rec.sequence
        ));
    }
    Ok(Some((
        Slot {
            incarnation: j.incarnation,
            seq: j.seq,
            role: j.role.into(),
            term: j.term,
        },
        SlotExtras {
            addr: j.addr,
            conns: j.conns,
        },
    )))
}

pub fn encode_mail(mail: Mail) -> Block {
    let (j, seq) = match mail {
        Mail::Empty => (MailJson::Empty, 0),
        Mail::PoisonPill { term } => (MailJson::PoisonPill { term }, term),
        Mail::HandOverRequest { term } => (MailJson::HandOverRequest { term }, term),
        Mail::HandOverAck { term } => (MailJson::HandOverAck { term }, term),
    };
    let json = serde_json::to_vec(&j).expect("plain data serializes");
    record::encode(&MAILBOX, seq, &json).expect("a message fits a record")
}

/// A never-written mailbox is empty; `Err` (read as empty by the caller) says why a
/// present one is not trusted.
pub fn decode_mail(block: &Block) -> Result<Mail, String> {
    let rec = match record::decode(&MAILBOX, &block.0) {
        Err(RecordError::NeverWritten) => return Ok(Mail::Empty),
        Err(e) => return Err(format!("mailbox: {e}")),
        Ok(rec) => rec,
    };
    let j: MailJson =
        serde_json::from_slice(&rec.payload).map_err(|e| format!("mailbox: payload: {e}"))?;
    let (mail, term) = match j {
        MailJson::Empty => (Mail::Empty, 0),
        MailJson::PoisonPill { term } => (Mail::PoisonPill { term }, term),
        MailJson::HandOverRequest { term } => (Mail::HandOverRequest { term }, term),
        MailJson::HandOverAck { term } => (Mail::HandOverAck { term }, term),
    };
    if term != rec.sequence {
        return Err(format!(
            "mailbox: inconsistent (term {term} in a record of sequence {})",
            rec.sequence
        ));
    }
    Ok(mail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_as_readable_json() {
        let s = Slot {
            incarnation: 1_767_225_600_000,
            seq: 42,
            role: Role::Active,
            term: 3,
        };
        let b = encode_slot(1, &s, None);
        let text = String::from_utf8_lossy(&b.0[32..120]);
        assert!(
            text.starts_with(
                r#"{"node":1,"incarnation":1767225600000,"seq":42,"role":"active","term":3}"#
            ),
            "{text}"
        );
        assert_eq!(decode_slot(1, &b), Ok(Some(s)));
        assert!(decode_slot(2, &b).unwrap_err().contains("inconsistent"));
        assert_eq!(decode_slot(1, &Block::zeroed()), Ok(None));
        let addr: SocketAddr = "198.51.100.11:7401".parse().unwrap();
        let b = encode_slot(1, &s, Some(addr));
        let text = String::from_utf8_lossy(&b.0[32..160]);
        assert!(
            text.contains(r#""term":3,"addr":"198.51.100.11:7401"}"#),
            "{text}"
        );
        assert_eq!(decode_slot_and_address(1, &b), Ok(Some((s, Some(addr)))));

        // Client connections ride along, as many as fit the cap, IPv6 ones too.
        let conns: Vec<TcpConnection> = (0..40u16)
            .map(|i| TcpConnection {
                local: "[2001:db8:ffff:ffff:ffff:ffff:ffff:100]:3260"
                    .parse()
                    .unwrap(),
                remote: format!("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:{}", 60000 + i)
                    .parse()
                    .unwrap(),
            })
            .collect();
        let extras = SlotExtras {
            addr: Some(addr),
            conns: conns.clone(),
        };
        let b = encode_slot_with(1, &s, &extras);
        let (slot, back) = decode_slot_with(1, &b).unwrap().unwrap();
        assert_eq!(slot, s);
        assert_eq!(back.conns, conns[..MAX_SLOT_CONNECTIONS]);
        // A field a newer writer adds is ignored, not taken for damage.
        let json = br#"{"node":1,"incarnation":5,"seq":7,"role":"standby","term":2,"later":true}"#;
        let b = Block(crate::records::tests::raw_slot(7, json));
        assert_eq!(decode_slot(1, &b).unwrap().unwrap().seq, 7);
    }

    /// A slot record around `json`, as a writer of any version would make it.
    pub(crate) fn raw_slot(seq: u64, json: &[u8]) -> [u8; 4096] {
        let b = record::encode(&HEARTBEAT, seq, json).unwrap();
        b.0
    }

    #[test]
    fn damaged_records_are_refused_with_a_reason() {
        let mut b = encode_mail(Mail::PoisonPill { term: 4 });
        assert_eq!(decode_mail(&b), Ok(Mail::PoisonPill { term: 4 }));
        b.0[40] ^= 0x20;
        assert!(decode_mail(&b).unwrap_err().contains("CRC32C"));
        let garbage = Block([0xa5; 4096]);
        assert!(decode_slot(1, &garbage)
            .unwrap_err()
            .contains("wrong magic"));
        for m in [
            Mail::Empty,
            Mail::HandOverRequest { term: 2 },
            Mail::HandOverAck { term: 9 },
        ] {
            assert_eq!(decode_mail(&encode_mail(m)), Ok(m));
        }
        for r in 0..7 {
            assert_eq!(role_from_code(r).map(|r| r.code()), Some(r));
        }
    }
}
