//! The UDP heartbeat between the controllers over the interconnect: one fixed-size
//! datagram per interval, authenticated with the cluster key and replay-proof.
//!
//! Layout (big-endian, 72 bytes):
//!
//! ```text
//! offset size  field
//!      0    4  magic "STHB"
//!      4    2  version (1)
//!      6    1  sender node id (1 or 2)
//!      7    1  sender role (Role as u8)
//!      8    8  incarnation: grows at every start of the sender's daemon
//!     16    8  sequence: grows with every datagram of one incarnation
//!     24    8  the term the sender knows
//!     32    1  the owner the sender knows (0 none)
//!     33    1  flags: 1 disk heartbeat ok, 2 client network ok, 4 maintenance
//!     34    6  zero
//!     40   32  HMAC-SHA256 of bytes 0..40 under the cluster key
//! ```
//!
//! Why the incarnation must grow rather than be random: a replayed datagram from an
//! earlier run would otherwise look like a fresh restart, and a dead peer could be kept
//! "alive" by someone replaying its old heartbeats. The receiver accepts only
//! (incarnation, sequence) pairs greater than the last one it accepted.

use crate::cluster_auth::{self, TAG_LEN};

pub const MAGIC: [u8; 4] = *b"STHB";
pub const VERSION: u16 = 1;
const BODY_LEN: usize = 40;
pub const PACKET_LEN: usize = BODY_LEN + TAG_LEN;

pub const FLAG_DISK_OK: u8 = 1;
pub const FLAG_CLIENT_NET_OK: u8 = 2;
pub const FLAG_MAINTENANCE: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: u8,
    pub role: u8,
    pub incarnation: u64,
    pub sequence: u64,
    pub term: u64,
    pub owner: u8,
    pub flags: u8,
}

/// Why a datagram was dropped; each is logged by the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Length(usize),
    Magic,
    Version(u16),
    /// The tag does not match: another array's key, or altered on the way.
    Signature,
    Node(u8),
    /// Not newer than the last accepted (incarnation, sequence): a replay or reordering.
    Replay {
        got: (u64, u64),
        last: (u64, u64),
    },
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Length(n) => write!(f, "{n} bytes, a heartbeat has {PACKET_LEN}"),
            Rejected::Magic => write!(f, "not a STAR heartbeat (magic)"),
            Rejected::Version(v) => write!(f, "heartbeat version {v}, this node speaks {VERSION}"),
            Rejected::Signature => write!(f, "bad signature (another cluster key, or altered)"),
            Rejected::Node(n) => write!(f, "sender node {n} is not the peer"),
            Rejected::Replay { got, last } => write!(
                f,
                "replayed or reordered: incarnation {} sequence {}, already had {} {}",
                got.0, got.1, last.0, last.1
            ),
        }
    }
}

impl Heartbeat {
    pub fn encode(&self, key: &[u8]) -> [u8; PACKET_LEN] {
        let mut p = [0u8; PACKET_LEN];
        p[0..4].copy_from_slice(&MAGIC);
        p[4..6].copy_from_slice(&VERSION.to_be_bytes());
        p[6] = self.node;
        p[7] = self.role;
        p[8..16].copy_from_slice(&self.incarnation.to_be_bytes());
        p[16..24].copy_from_slice(&self.sequence.to_be_bytes());
        p[24..32].copy_from_slice(&self.term.to_be_bytes());
        p[32] = self.owner;
        p[33] = self.flags;
        let tag = cluster_auth::sign(key, &p[..BODY_LEN]);
        p[BODY_LEN..].copy_from_slice(&tag);
        p
    }

    /// Checks length, magic, version and signature, in that order; the signature before
    /// any field is believed.
    pub fn decode(bytes: &[u8], key: &[u8]) -> Result<Heartbeat, Rejected> {
        if bytes.len() != PACKET_LEN {
            return Err(Rejected::Length(bytes.len()));
        }
        if bytes[0..4] != MAGIC {
            return Err(Rejected::Magic);
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(Rejected::Version(version));
        }
        if !cluster_auth::verify(key, &bytes[..BODY_LEN], &bytes[BODY_LEN..]) {
            return Err(Rejected::Signature);
        }
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap());
        Ok(Heartbeat {
            node: bytes[6],
            role: bytes[7],
            incarnation: u64_at(8),
            sequence: u64_at(16),
            term: u64_at(24),
            owner: bytes[32],
            flags: bytes[33],
        })
    }
}

/// The receiving side's memory of one peer: accepts each datagram at most once, and only
/// newer ones.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    peer: u8,
    last: Option<(u64, u64)>,
}

impl Receiver {
    pub fn new(peer: u8) -> Receiver {
        Receiver { peer, last: None }
    }

    /// The last accepted (incarnation, sequence).
    pub fn last(&self) -> Option<(u64, u64)> {
        self.last
    }

    pub fn accept(&mut self, bytes: &[u8], key: &[u8]) -> Result<Heartbeat, Rejected> {
        let hb = Heartbeat::decode(bytes, key)?;
        if hb.node != self.peer {
            return Err(Rejected::Node(hb.node));
        }
        let got = (hb.incarnation, hb.sequence);
        if let Some(last) = self.last {
            if got <= last {
                return Err(Rejected::Replay { got, last });
            }
        }
        self.last = Some(got);
        Ok(hb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [0x5a; 32];

    fn hb(incarnation: u64, sequence: u64) -> Heartbeat {
        Heartbeat {
            node: 2,
            role: 3,
            incarnation,
            sequence,
            term: 7,
            owner: 2,
            flags: FLAG_DISK_OK | FLAG_CLIENT_NET_OK,
        }
    }

    #[test]
    fn round_trip_and_fixed_layout() {
        let p = hb(4, 9).encode(&KEY);
        assert_eq!(p.len(), 72);
        assert_eq!(&p[0..4], b"STHB");
        assert_eq!(&p[8..16], &4u64.to_be_bytes());
        assert_eq!(&p[16..24], &9u64.to_be_bytes());
        assert_eq!(p[34..40], [0; 6]);
        assert_eq!(Heartbeat::decode(&p, &KEY), Ok(hb(4, 9)));
    }

    #[test]
    fn forged_altered_and_foreign_datagrams_are_dropped() {
        let p = hb(1, 1).encode(&KEY);
        assert_eq!(Heartbeat::decode(&p, &[0x5b; 32]), Err(Rejected::Signature));
        let mut altered = p;
        altered[24] ^= 1; // a different term
        assert_eq!(Heartbeat::decode(&altered, &KEY), Err(Rejected::Signature));
        assert_eq!(Heartbeat::decode(&p[..71], &KEY), Err(Rejected::Length(71)));
        let mut magic = p;
        magic[0] = b'X';
        assert_eq!(Heartbeat::decode(&magic, &KEY), Err(Rejected::Magic));
        // Our own datagram reflected back is not the peer's.
        let mut r = Receiver::new(1);
        assert_eq!(r.accept(&p, &KEY), Err(Rejected::Node(2)));
        assert_eq!(r.last(), None);
    }

    #[test]
    fn replays_and_old_incarnations_are_refused() {
        let mut r = Receiver::new(2);
        assert!(r.accept(&hb(5, 1).encode(&KEY), &KEY).is_ok());
        assert!(r.accept(&hb(5, 2).encode(&KEY), &KEY).is_ok());
        // The same datagram again, an older one, and one of an earlier run.
        for (i, s) in [(5, 2), (5, 1), (4, 99)] {
            assert!(matches!(
                r.accept(&hb(i, s).encode(&KEY), &KEY),
                Err(Rejected::Replay { .. })
            ));
        }
        // A restart of the peer: a higher incarnation starts its sequence again.
        assert!(r.accept(&hb(6, 1).encode(&KEY), &KEY).is_ok());
        assert_eq!(r.last(), Some((6, 1)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_pass(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut r = Receiver::new(2);
            prop_assert!(r.accept(&bytes, &KEY).is_err());
        }

        #[test]
        fn any_single_bit_flip_is_detected(i in 0usize..PACKET_LEN, bit in 0u8..8) {
            let mut p = hb(3, 3).encode(&KEY);
            p[i] ^= 1 << bit;
            prop_assert!(Heartbeat::decode(&p, &KEY).is_err());
        }
    }
}
