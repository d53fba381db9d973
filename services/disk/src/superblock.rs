//! The superblock: block 0 of the metadata partition, saying which array this disk
//! belongs to. Its payload is JSON, so `dd` shows it to a person as it is.

use crate::buf::Block;
use crate::error::Error;
use crate::guid::Guid;
use crate::io::Disk;
use crate::layout::{meta_block_offset, META_SIZE, SUPERBLOCK_BLOCK};
use crate::record::{self, SUPERBLOCK};
use serde::{Deserialize, Serialize};

/// Version of the disk layout ([`crate::layout`]); a newer one is refused rather than
/// misread.
pub const LAYOUT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Superblock {
    /// Random, set once at init: tells two arrays of the same name apart.
    pub array_uuid: String,
    pub array_name: String,
    pub layout_version: u32,
    /// Size of the metadata partition, bytes.
    pub metadata_bytes: u64,
    /// The controller (1 or 2) that initialized the disk, and when (Unix seconds).
    pub initialized_by_node: u8,
    pub initialized_at: u64,
}

impl Superblock {
    pub fn new(array_uuid: Guid, array_name: &str, node: u8, now_unix: u64) -> Superblock {
        Superblock {
            array_uuid: array_uuid.to_string(),
            array_name: array_name.to_string(),
            layout_version: LAYOUT_VERSION,
            metadata_bytes: META_SIZE,
            initialized_by_node: node,
            initialized_at: now_unix,
        }
    }

    pub fn encode(&self) -> Result<Block, Error> {
        let json = serde_json::to_vec(self).expect("plain data serializes");
        // The record's sequence is unused: the superblock is written once, at init.
        record::encode(&SUPERBLOCK, 0, &json).ok_or_else(|| {
            Error::Invalid(format!(
                "the superblock is {} bytes of JSON; a record holds {}",
                json.len(),
                record::MAX_PAYLOAD
            ))
        })
    }

    /// Decodes and checks a superblock; the error says what is wrong with it.
    pub fn decode(block: &Block) -> Result<Superblock, String> {
        let rec = record::decode(&SUPERBLOCK, &block.0).map_err(|e| e.to_string())?;
        let sb: Superblock =
            serde_json::from_slice(&rec.payload).map_err(|e| format!("superblock JSON: {e}"))?;
        if sb.layout_version != LAYOUT_VERSION {
            return Err(format!(
                "disk layout version {} is not supported (this firmware knows version {LAYOUT_VERSION})",
                sb.layout_version
            ));
        }
        if sb.metadata_bytes != META_SIZE {
            return Err(format!(
                "the superblock gives a metadata area of {} bytes; this layout has {META_SIZE}",
                sb.metadata_bytes
            ));
        }
        Guid::parse(&sb.array_uuid).map_err(|e| format!("superblock array UUID: {e}"))?;
        Ok(sb)
    }
}

pub const OFFSET: u64 = meta_block_offset(SUPERBLOCK_BLOCK);

/// Reads the superblock; an unreadable one is an `Err(problem)` inside the `Ok`, an I/O
/// failure the outer error.
pub fn read(disk: &Disk) -> Result<Result<Superblock, String>, Error> {
    Ok(Superblock::decode(&disk.read_block(OFFSET)?))
}

pub fn write(disk: &Disk, sb: &Superblock) -> Result<(), Error> {
    disk.write_block(OFFSET, &sb.encode()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock::new(Guid::v4_from([3; 16]), "star-lab", 1, 1_800_000_000)
    }

    #[test]
    fn round_trips_and_is_readable_text() {
        let sb = sample();
        let block = sb.encode().unwrap();
        assert_eq!(Superblock::decode(&block), Ok(sb));
        let text = String::from_utf8_lossy(&block.0);
        assert!(text.contains("\"array_name\":\"star-lab\""), "{text}");
    }

    #[test]
    fn other_layouts_are_refused() {
        let mut sb = sample();
        sb.layout_version = 2;
        let err = Superblock::decode(&sb.encode().unwrap()).unwrap_err();
        assert!(err.contains("layout version 2 is not supported"), "{err}");

        let mut block = sample().encode().unwrap();
        block.0[100] ^= 1;
        assert!(Superblock::decode(&block)
            .unwrap_err()
            .contains("CRC32C mismatch"));
        assert_eq!(
            Superblock::decode(&Block::zeroed()).unwrap_err(),
            "never written (all zeroes)"
        );
    }
}
