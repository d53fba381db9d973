//! The ownership record: which controller owns the array, in which term. Terms only
//! grow; the owner is the one controller whose port group may be Active/Optimized. Both
//! controllers read it, so that each reports the same ALUA states to hosts.
//!
//! For now `star target promote` writes it. The heartbeat service, which fences the peer
//! before it takes a term, becomes its only writer.

use crate::buf::Block;
use crate::error::Error;
use crate::io::Disk;
use crate::layout::{meta_block_offset, OWNERSHIP_BLOCK};
use crate::record::{self, RecordError, OWNERSHIP};
use serde::{Deserialize, Serialize};

pub const OFFSET: u64 = meta_block_offset(OWNERSHIP_BLOCK);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ownership {
    pub term: u64,
    /// Controller 1 or 2; 0 while nobody owns the array.
    pub owner: u8,
    /// Whether the owner found its peer alive when it took the term.
    pub peer_healthy: bool,
}

impl Ownership {
    pub fn encode(&self) -> Block {
        let json = serde_json::to_vec(self).expect("plain data serializes");
        record::encode(&OWNERSHIP, self.term, &json).expect("a few bytes fit a record")
    }

    pub fn decode(block: &Block) -> Result<Option<Ownership>, String> {
        match record::decode(&OWNERSHIP, &block.0) {
            Err(RecordError::NeverWritten) => Ok(None),
            Err(e) => Err(format!("ownership record: {e}")),
            Ok(rec) => {
                let o: Ownership = serde_json::from_slice(&rec.payload)
                    .map_err(|e| format!("ownership record: {e}"))?;
                if o.term != rec.sequence || o.owner > 2 {
                    return Err(format!(
                        "ownership record: inconsistent (term {} in a record of sequence {}, owner {})",
                        o.term, rec.sequence, o.owner
                    ));
                }
                Ok(Some(o))
            }
        }
    }
}

/// The record, or None on a disk where nobody has owned the array yet.
pub fn read(disk: &Disk) -> Result<Option<Ownership>, Error> {
    let block = disk.read_block(OFFSET)?;
    Ownership::decode(&block).map_err(Error::Invalid)
}

/// Takes the next term for `owner`: the term read now, plus one.
pub fn take(disk: &Disk, owner: u8, peer_healthy: bool) -> Result<Ownership, Error> {
    let current = read(disk)?.map_or(0, |o| o.term);
    let next = Ownership {
        term: current + 1,
        owner,
        peer_healthy,
    };
    disk.write_block(OFFSET, &next.encode())?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let o = Ownership {
            term: 7,
            owner: 2,
            peer_healthy: true,
        };
        let mut block = o.encode();
        assert_eq!(Ownership::decode(&block), Ok(Some(o)));
        assert_eq!(Ownership::decode(&Block([0; 4096])), Ok(None));
        block.0[100] ^= 1;
        assert!(Ownership::decode(&block)
            .unwrap_err()
            .contains("ownership record"));
    }
}
