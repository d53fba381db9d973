//! The array config on the shared disk, kept twice (copies A and B) under a generation
//! number that only grows.
//!
//! Each copy is a header block followed by the payload, the config as pretty-printed
//! JSON (`dd if=DISK bs=1M skip=2 count=1` shows copy A to a person):
//!
//! ```text
//! header (a record, see crate::record; magic "STARCFG1", sequence = generation)
//!   record payload: u32 payload length, u32 CRC32C of the payload (little-endian)
//!   record CRC32C: the header's own checksum
//! payload blocks: the JSON text, zero-padded to a whole block
//! ```
//!
//! A write goes to the copy that is *not* the newest valid one: payload first, a barrier,
//! then the header, another barrier. Until the header lands the old header describes the
//! old payload, whose CRC no longer matches, so a torn write shows as a corrupt copy, and
//! the other copy (the previous generation, untouched) is what readers use.

use crate::buf::{Block, Blocks};
use crate::error::Error;
use crate::io::Disk;
use crate::layout::{
    BLOCK, BLOCK_U64, CONFIG_COPY_A, CONFIG_COPY_B, CONFIG_MAX_PAYLOAD, META_START,
};
use crate::record::{self, RecordError, CONFIG_HEADER, CRC32C};
use star_core::array_config::ArrayConfig;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigCopy {
    A,
    B,
}

impl ConfigCopy {
    /// Absolute byte offset of the copy's header block on the disk.
    pub fn offset(self) -> u64 {
        META_START
            + match self {
                ConfigCopy::A => CONFIG_COPY_A,
                ConfigCopy::B => CONFIG_COPY_B,
            }
    }

    pub fn other(self) -> ConfigCopy {
        match self {
            ConfigCopy::A => ConfigCopy::B,
            ConfigCopy::B => ConfigCopy::A,
        }
    }
}

impl fmt::Display for ConfigCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigCopy::A => "A",
            ConfigCopy::B => "B",
        })
    }
}

/// The config a reader should use, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub config: ArrayConfig,
    pub generation: u64,
    pub copy: ConfigCopy,
    /// What is wrong with the other copy, if it is torn or corrupt. An older but valid
    /// copy, or one never written, is not a problem.
    pub other_copy_problem: Option<String>,
}

/// What one copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyState {
    Valid {
        generation: u64,
        config: ArrayConfig,
    },
    NeverWritten,
    Invalid {
        problem: String,
        /// The generation the header claims, when the header itself is whole.
        header_generation: Option<u64>,
    },
}

impl CopyState {
    pub fn generation(&self) -> Option<u64> {
        match self {
            CopyState::Valid { generation, .. } => Some(*generation),
            _ => None,
        }
    }

    /// `None` for a valid copy; otherwise what to tell a person.
    pub fn problem(&self) -> Option<String> {
        match self {
            CopyState::Valid { .. } => None,
            CopyState::NeverWritten => Some(RecordError::NeverWritten.to_string()),
            CopyState::Invalid { problem, .. } => Some(problem.clone()),
        }
    }
}

/// The blocks of a copy holding `config` at `generation`: header first.
pub fn encode_copy(config: &ArrayConfig, generation: u64) -> Result<Blocks, Error> {
    let payload = config.to_json();
    if payload.len() > CONFIG_MAX_PAYLOAD {
        return Err(Error::Invalid(format!(
            "the array config is {} bytes of JSON; a copy on the disk holds {CONFIG_MAX_PAYLOAD}",
            payload.len()
        )));
    }
    let mut fields = [0u8; 8];
    fields[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    fields[4..8].copy_from_slice(&CRC32C.checksum(payload.as_bytes()).to_le_bytes());
    let header = record::encode(&CONFIG_HEADER, generation, &fields).expect("8 bytes fit");
    let mut blocks = Blocks::zeroed(1 + payload.len().div_ceil(BLOCK));
    blocks.as_bytes_mut()[..BLOCK].copy_from_slice(&header.0);
    blocks.as_bytes_mut()[BLOCK..BLOCK + payload.len()].copy_from_slice(payload.as_bytes());
    Ok(blocks)
}

struct Header {
    generation: u64,
    length: usize,
    crc: u32,
}

/// Why a header is not usable: what [`CopyState`] says of the copy, without its config.
enum HeaderFault {
    NeverWritten,
    Invalid {
        problem: String,
        header_generation: Option<u64>,
    },
}

impl From<HeaderFault> for CopyState {
    fn from(f: HeaderFault) -> CopyState {
        match f {
            HeaderFault::NeverWritten => CopyState::NeverWritten,
            HeaderFault::Invalid {
                problem,
                header_generation,
            } => CopyState::Invalid {
                problem,
                header_generation,
            },
        }
    }
}

fn decode_header(block: &Block) -> Result<Header, HeaderFault> {
    let rec = match record::decode(&CONFIG_HEADER, &block.0) {
        Ok(r) => r,
        Err(RecordError::NeverWritten) => return Err(HeaderFault::NeverWritten),
        Err(e) => {
            return Err(HeaderFault::Invalid {
                problem: format!("header: {e}"),
                header_generation: None,
            })
        }
    };
    let invalid = |problem: String| HeaderFault::Invalid {
        problem,
        header_generation: Some(rec.sequence),
    };
    if rec.payload.len() != 8 {
        return Err(invalid(format!(
            "header: {} bytes of fields where 8 were expected",
            rec.payload.len()
        )));
    }
    let length = u32::from_le_bytes(rec.payload[0..4].try_into().expect("4 bytes")) as usize;
    if length > CONFIG_MAX_PAYLOAD {
        return Err(invalid(format!(
            "generation {}: payload length {length} is out of range (at most {CONFIG_MAX_PAYLOAD})",
            rec.sequence
        )));
    }
    Ok(Header {
        generation: rec.sequence,
        length,
        crc: u32::from_le_bytes(rec.payload[4..8].try_into().expect("4 bytes")),
    })
}

fn decode_payload(h: &Header, payload: &[u8]) -> CopyState {
    let invalid = |problem: String| CopyState::Invalid {
        problem: format!("generation {}: {problem}", h.generation),
        header_generation: Some(h.generation),
    };
    let payload = &payload[..h.length];
    let computed = CRC32C.checksum(payload);
    if computed != h.crc {
        return invalid(format!(
            "payload CRC32C mismatch (header says {:#010x}, computed {computed:#010x}): torn or corrupt",
            h.crc
        ));
    }
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t,
        Err(e) => return invalid(format!("payload is not UTF-8: {e}")),
    };
    match ArrayConfig::from_json(text) {
        Ok(config) => CopyState::Valid {
            generation: h.generation,
            config,
        },
        Err(e) => invalid(e),
    }
}

/// Decodes a copy from its bytes (the header block and at least its payload's blocks).
pub fn decode_copy(bytes: &[u8]) -> CopyState {
    let mut header = Block::zeroed();
    header.0.copy_from_slice(&bytes[..BLOCK]);
    match decode_header(&header) {
        Err(fault) => fault.into(),
        Ok(h) if bytes.len() < BLOCK + h.length => CopyState::Invalid {
            problem: format!("generation {}: payload cut short", h.generation),
            header_generation: Some(h.generation),
        },
        Ok(h) => decode_payload(&h, &bytes[BLOCK..]),
    }
}

/// Reads one copy: the header, then only as many payload blocks as it announces.
pub fn read_copy(disk: &Disk, copy: ConfigCopy) -> Result<CopyState, Error> {
    let header = disk.read_block(copy.offset())?;
    Ok(match decode_header(&header) {
        Err(fault) => fault.into(),
        Ok(h) => {
            let payload = disk.read_blocks(copy.offset() + BLOCK_U64, h.length.div_ceil(BLOCK))?;
            decode_payload(&h, payload.as_bytes())
        }
    })
}

/// The valid copy with the highest generation (A on a tie, which a correct writer never
/// leaves), with the other's problem if it has one.
pub fn choose(a: CopyState, b: CopyState) -> Result<Stored, Error> {
    let use_b = match (a.generation(), b.generation()) {
        (Some(ga), Some(gb)) => gb > ga,
        (Some(_), None) => false,
        (None, Some(_)) => true,
        (None, None) => {
            return Err(Error::NoValidConfig {
                copy_a: a.problem().unwrap_or_default(),
                copy_b: b.problem().unwrap_or_default(),
            })
        }
    };
    let (chosen, other, copy) = if use_b {
        (b, a, ConfigCopy::B)
    } else {
        (a, b, ConfigCopy::A)
    };
    let other_copy_problem = match &other {
        CopyState::Invalid { problem, .. } => Some(format!("copy {}: {problem}", copy.other())),
        _ => None,
    };
    match chosen {
        CopyState::Valid { generation, config } => Ok(Stored {
            config,
            generation,
            copy,
            other_copy_problem,
        }),
        _ => unreachable!("the chosen copy has a generation, so it is valid"),
    }
}

pub fn read(disk: &Disk) -> Result<Stored, Error> {
    choose(
        read_copy(disk, ConfigCopy::A)?,
        read_copy(disk, ConfigCopy::B)?,
    )
}

/// Where the next write goes and the generation it gets, given both copies and the
/// generation the caller's change was based on.
pub fn plan_write(
    a: &CopyState,
    b: &CopyState,
    expected_generation: u64,
) -> Result<(ConfigCopy, u64), Error> {
    let current = choose(a.clone(), b.clone())?;
    if current.generation != expected_generation {
        return Err(Error::GenerationMismatch {
            expected: expected_generation,
            found: current.generation,
        });
    }
    let target = current.copy.other();
    let overwritten = if target == ConfigCopy::A { a } else { b };
    // Even a copy that is corrupt may carry a higher generation in a whole header; step
    // past it too, so no generation number is ever reused for different contents.
    let floor = match overwritten {
        CopyState::Invalid {
            header_generation: Some(g),
            ..
        } => current.generation.max(*g),
        _ => current.generation,
    };
    let next = floor
        .checked_add(1)
        .ok_or_else(|| Error::Invalid("the config generation cannot grow further".into()))?;
    Ok((target, next))
}

/// Writes `config` into `copy` at `generation`: payload, barrier, header, barrier.
pub fn write_copy(
    disk: &Disk,
    copy: ConfigCopy,
    config: &ArrayConfig,
    generation: u64,
) -> Result<(), Error> {
    let blocks = encode_copy(config, generation)?;
    let bytes = blocks.as_bytes();
    disk.write_blocks(
        copy.offset() + BLOCK_U64,
        &Blocks::from_bytes(&bytes[BLOCK..]),
    )?;
    disk.flush()?;
    disk.write_block(copy.offset(), blocks.block(0))?;
    disk.flush()
}

/// Stores a new config. Refused (nothing written) if it is invalid or if the disk's
/// newest generation is not `expected_generation`. Returns the new generation.
pub fn write(disk: &Disk, config: &ArrayConfig, expected_generation: u64) -> Result<u64, Error> {
    config.validate().map_err(Error::Invalid)?;
    // Refuse an oversized config before looking at the disk.
    encode_copy(config, 0)?;
    let a = read_copy(disk, ConfigCopy::A)?;
    let b = read_copy(disk, ConfigCopy::B)?;
    let (copy, generation) = plan_write(&a, &b, expected_generation)?;
    write_copy(disk, copy, config, generation)?;
    Ok(generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> ArrayConfig {
        ArrayConfig::new(name)
    }

    fn valid(g: u64, name: &str) -> CopyState {
        CopyState::Valid {
            generation: g,
            config: config(name),
        }
    }

    #[test]
    fn a_copy_round_trips_and_is_readable_text() {
        let c = config("star-lab");
        let blocks = encode_copy(&c, 9).unwrap();
        assert_eq!(&blocks.as_bytes()[..8], b"STARCFG1");
        let text = String::from_utf8_lossy(&blocks.as_bytes()[BLOCK..]);
        assert!(text.starts_with("{\n  \"version\": 1,"), "{text}");
        assert_eq!(
            decode_copy(blocks.as_bytes()),
            CopyState::Valid {
                generation: 9,
                config: c
            }
        );
    }

    #[test]
    fn a_torn_payload_is_detected() {
        let old = encode_copy(&config("old-name"), 3).unwrap();
        let new = encode_copy(&config("new-name"), 4).unwrap();
        // The new payload landed, the header did not: the old header over the new payload.
        let mut torn = old.clone();
        torn.as_bytes_mut()[BLOCK..2 * BLOCK].copy_from_slice(&new.as_bytes()[BLOCK..2 * BLOCK]);
        match decode_copy(torn.as_bytes()) {
            CopyState::Invalid {
                problem,
                header_generation,
            } => {
                assert_eq!(header_generation, Some(3));
                assert!(
                    problem.starts_with("generation 3: payload CRC32C mismatch"),
                    "{problem}"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut bad_header = new.clone();
        bad_header.as_bytes_mut()[40] ^= 1;
        assert!(matches!(
            decode_copy(bad_header.as_bytes()),
            CopyState::Invalid {
                header_generation: None,
                ..
            }
        ));
        assert_eq!(decode_copy(&[0; 2 * BLOCK]), CopyState::NeverWritten);
    }

    #[test]
    fn the_newest_valid_copy_wins() {
        let s = choose(valid(4, "a"), valid(5, "b")).unwrap();
        assert_eq!(
            (s.copy, s.generation, s.other_copy_problem),
            (ConfigCopy::B, 5, None)
        );
        let broken = CopyState::Invalid {
            problem: "generation 6: payload CRC32C mismatch".into(),
            header_generation: Some(6),
        };
        let s = choose(broken.clone(), valid(5, "b")).unwrap();
        assert_eq!(s.copy, ConfigCopy::B);
        assert_eq!(
            s.other_copy_problem.as_deref(),
            Some("copy A: generation 6: payload CRC32C mismatch")
        );
        let s = choose(valid(1, "a"), CopyState::NeverWritten).unwrap();
        assert_eq!((s.copy, s.other_copy_problem), (ConfigCopy::A, None));

        let err = choose(broken, CopyState::NeverWritten).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no valid array config on disk: copy A: generation 6: payload CRC32C mismatch; \
             copy B: never written (all zeroes)"
        );
    }

    #[test]
    fn writes_go_to_the_other_copy_with_a_growing_generation() {
        assert_eq!(
            plan_write(&valid(1, "a"), &CopyState::NeverWritten, 1).unwrap(),
            (ConfigCopy::B, 2)
        );
        assert_eq!(
            plan_write(&valid(7, "a"), &valid(8, "b"), 8).unwrap(),
            (ConfigCopy::A, 9)
        );
        let torn_higher = CopyState::Invalid {
            problem: "torn".into(),
            header_generation: Some(12),
        };
        assert_eq!(
            plan_write(&valid(7, "a"), &torn_higher, 7).unwrap(),
            (ConfigCopy::B, 13)
        );
        match plan_write(&valid(7, "a"), &valid(8, "b"), 7) {
            Err(Error::GenerationMismatch {
                expected: 7,
                found: 8,
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
