//! The one block format of the metadata partition: a 4 KiB record.
//!
//! ```text
//! offset  size  field
//!      0     8  magic: which kind of record (ASCII, so `dd | hexdump -C` shows it)
//!      8     4  format version of this kind (little-endian, as every field)
//!     12     4  payload length
//!     16     8  sequence: a heartbeat counter, a term, a generation, per kind
//!     24     4  CRC32C (Castagnoli) of the whole block with this field zeroed
//!     28     4  reserved, zero
//!     32  4064  payload, zero-padded
//! ```
//!
//! The CRC covers the padding too, so a block torn between an old and a new write, or
//! with any bit flipped, never decodes: a record is either whole or refused.

use crate::buf::Block;
use crate::layout::BLOCK;
use std::fmt;

pub const HEADER_LEN: usize = 32;
pub const MAX_PAYLOAD: usize = BLOCK - HEADER_LEN;
const CRC_AT: std::ops::Range<usize> = 24..28;

/// CRC32C: the checksum iSCSI, ext4 and btrfs use for their metadata.
pub const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A record's payload: at most what fits in the block, without a heap allocation.
pub type Payload = heapless::Vec<u8, MAX_PAYLOAD>;

/// A kind of record: its magic and the format version this firmware writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub magic: [u8; 8],
    pub version: u32,
}

pub const SUPERBLOCK: Kind = Kind {
    name: "superblock",
    magic: *b"STARSUPR",
    version: 1,
};
pub const HEARTBEAT: Kind = Kind {
    name: "heartbeat",
    magic: *b"STARHBT1",
    version: 1,
};
pub const MAILBOX: Kind = Kind {
    name: "mailbox",
    magic: *b"STARMBX1",
    version: 1,
};
pub const OWNERSHIP: Kind = Kind {
    name: "ownership",
    magic: *b"STAROWN1",
    version: 1,
};
/// The header block of an array config copy (see `config_store`).
pub const CONFIG_HEADER: Kind = Kind {
    name: "array config header",
    magic: *b"STARCFG1",
    version: 1,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence: u64,
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The block is all zeroes: nothing was ever written there.
    NeverWritten,
    WrongMagic {
        expected: [u8; 8],
        found: [u8; 8],
    },
    UnsupportedVersion {
        kind: &'static str,
        found: u32,
        supported: u32,
    },
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    LengthOutOfRange {
        length: u32,
        max: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NeverWritten => f.write_str("never written (all zeroes)"),
            RecordError::WrongMagic { expected, found } => write!(
                f,
                "wrong magic: expected \"{}\", found \"{}\"",
                expected.escape_ascii(),
                found.escape_ascii()
            ),
            RecordError::UnsupportedVersion {
                kind,
                found,
                supported,
            } => write!(
                f,
                "{kind} format version {found} is not supported (this firmware reads version {supported})"
            ),
            RecordError::CrcMismatch { stored, computed } => write!(
                f,
                "CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x}): torn or corrupt"
            ),
            RecordError::LengthOutOfRange { length, max } => {
                write!(f, "payload length {length} is out of range (at most {max})")
            }
        }
    }
}

impl std::error::Error for RecordError {}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn crc_of(block: &[u8; BLOCK]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&block[..CRC_AT.start]);
    digest.update(&[0; 4]);
    digest.update(&block[CRC_AT.end..]);
    digest.finalize()
}

/// Builds the block for a record of `kind`. Returns `None` if the payload does not fit.
pub fn encode(kind: &Kind, sequence: u64, payload: &[u8]) -> Option<Block> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let mut block = Block::zeroed();
    let b = &mut block.0;
    b[0..8].copy_from_slice(&kind.magic);
    b[8..12].copy_from_slice(&kind.version.to_le_bytes());
    b[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    b[16..24].copy_from_slice(&sequence.to_le_bytes());
    b[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    let crc = crc_of(b);
    b[CRC_AT].copy_from_slice(&crc.to_le_bytes());
    Some(block)
}

/// Decodes a record of `kind`. The checks run in the order that makes each error
/// meaningful: a block of another kind is named as such before its CRC is judged, and
/// the version and length are believed only once the CRC says the block is whole.
pub fn decode(kind: &Kind, block: &[u8; BLOCK]) -> Result<Record, RecordError> {
    if block.iter().all(|b| *b == 0) {
        return Err(RecordError::NeverWritten);
    }
    let found: [u8; 8] = block[0..8].try_into().expect("8 bytes");
    if found != kind.magic {
        return Err(RecordError::WrongMagic {
            expected: kind.magic,
            found,
        });
    }
    let (stored, computed) = (le32(block, CRC_AT.start), crc_of(block));
    if stored != computed {
        return Err(RecordError::CrcMismatch { stored, computed });
    }
    let version = le32(block, 8);
    if version != kind.version {
        return Err(RecordError::UnsupportedVersion {
            kind: kind.name,
            found: version,
            supported: kind.version,
        });
    }
    let length = le32(block, 12);
    if length as usize > MAX_PAYLOAD {
        return Err(RecordError::LengthOutOfRange {
            length,
            max: MAX_PAYLOAD,
        });
    }
    let payload = Payload::from_slice(&block[HEADER_LEN..HEADER_LEN + length as usize])
        .expect("length checked against the capacity");
    Ok(Record {
        sequence: le64(block, 16),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rewrites the CRC so that a deliberately altered field is judged on its own.
    fn reseal(block: &mut Block) {
        let crc = crc_of(&block.0);
        block.0[CRC_AT].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn round_trips() {
        let block = encode(&HEARTBEAT, 42, b"node 1 alive").unwrap();
        assert_eq!(&block.0[0..8], b"STARHBT1");
        let r = decode(&HEARTBEAT, &block.0).unwrap();
        assert_eq!(r.sequence, 42);
        assert_eq!(&r.payload[..], b"node 1 alive");

        let full = [0xa5u8; MAX_PAYLOAD];
        let r = decode(&MAILBOX, &encode(&MAILBOX, u64::MAX, &full).unwrap().0).unwrap();
        assert_eq!((r.sequence, &r.payload[..]), (u64::MAX, &full[..]));

        let r = decode(&OWNERSHIP, &encode(&OWNERSHIP, 0, b"").unwrap().0).unwrap();
        assert!(r.payload.is_empty());
    }

    #[test]
    fn an_oversized_payload_is_not_encoded() {
        assert!(encode(&HEARTBEAT, 1, &[0; MAX_PAYLOAD + 1]).is_none());
    }

    #[test]
    fn all_zeroes_is_never_written() {
        assert_eq!(
            decode(&SUPERBLOCK, &[0; BLOCK]),
            Err(RecordError::NeverWritten)
        );
        assert_eq!(
            RecordError::NeverWritten.to_string(),
            "never written (all zeroes)"
        );
    }

    #[test]
    fn wrong_magic_names_both() {
        let block = encode(&HEARTBEAT, 1, b"x").unwrap();
        let err = decode(&SUPERBLOCK, &block.0).unwrap_err();
        assert_eq!(
            err,
            RecordError::WrongMagic {
                expected: *b"STARSUPR",
                found: *b"STARHBT1"
            }
        );
        assert_eq!(
            err.to_string(),
            "wrong magic: expected \"STARSUPR\", found \"STARHBT1\""
        );
    }

    #[test]
    fn any_flipped_bit_is_a_crc_mismatch() {
        let good = encode(&HEARTBEAT, 7, b"payload").unwrap();
        // A bit in the sequence, the payload, the padding and the last byte.
        for at in [16, HEADER_LEN + 3, 2000, BLOCK - 1] {
            let mut bad = good.clone();
            bad.0[at] ^= 0x10;
            match decode(&HEARTBEAT, &bad.0) {
                Err(RecordError::CrcMismatch { stored, computed }) => assert_ne!(stored, computed),
                other => panic!("byte {at}: {other:?}"),
            }
        }
        // A torn write: the first sector of a new record over the rest of an old one.
        let older = encode(&HEARTBEAT, 7, &[1; 1000]).unwrap();
        let newer = encode(&HEARTBEAT, 8, &[2; 1000]).unwrap();
        let mut torn = older.clone();
        torn.0[..512].copy_from_slice(&newer.0[..512]);
        assert!(matches!(
            decode(&HEARTBEAT, &torn.0),
            Err(RecordError::CrcMismatch { .. })
        ));
        assert!(decode(&HEARTBEAT, &torn.0)
            .unwrap_err()
            .to_string()
            .contains("torn or corrupt"));
    }

    #[test]
    fn a_newer_version_is_refused() {
        let mut block = encode(&SUPERBLOCK, 1, b"{}").unwrap();
        block.0[8..12].copy_from_slice(&2u32.to_le_bytes());
        reseal(&mut block);
        let err = decode(&SUPERBLOCK, &block.0).unwrap_err();
        assert_eq!(
            err,
            RecordError::UnsupportedVersion {
                kind: "superblock",
                found: 2,
                supported: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "superblock format version 2 is not supported (this firmware reads version 1)"
        );
    }

    #[test]
    fn a_length_past_the_block_is_refused() {
        let mut block = encode(&SUPERBLOCK, 1, b"{}").unwrap();
        block.0[12..16].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        reseal(&mut block);
        assert_eq!(
            decode(&SUPERBLOCK, &block.0),
            Err(RecordError::LengthOutOfRange {
                length: MAX_PAYLOAD as u32 + 1,
                max: MAX_PAYLOAD
            })
        );
    }

    #[test]
    fn the_crc_is_castagnoli() {
        // The check value of CRC-32C for "123456789" (RFC 3720, appendix B.4).
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
    }
}
