//! GUIDs as the GPT stores them: canonical text, the mixed-endian on-disk form, random
//! (version 4) ones, and ones derived from a name so that rebuilding a disk image from
//! the same inputs gives the same disk and partition GUIDs.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A GUID, held in the byte order of its canonical text form (RFC 4122 / big-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 16]);

enum DecodeError {
    Length(usize),
    Hyphen(usize),
    Hex(usize),
}

/// Offsets of the hyphens in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
const fn is_hyphen_pos(i: usize) -> bool {
    i == 8 || i == 13 || i == 18 || i == 23
}

const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// A const fn so that constant GUIDs are written as text (easy to check against the spec)
// and still checked at compile time.
const fn decode(text: &[u8]) -> Result<[u8; 16], DecodeError> {
    if text.len() != 36 {
        return Err(DecodeError::Length(text.len()));
    }
    let mut out = [0u8; 16];
    let (mut i, mut nibble) = (0, 0);
    while i < 36 {
        let c = text[i];
        if is_hyphen_pos(i) {
            if c != b'-' {
                return Err(DecodeError::Hyphen(i));
            }
        } else {
            let v = match hex_value(c) {
                Some(v) => v,
                None => return Err(DecodeError::Hex(i)),
            };
            if nibble % 2 == 0 {
                out[nibble / 2] = v << 4;
            } else {
                out[nibble / 2] |= v;
            }
            nibble += 1;
        }
        i += 1;
    }
    Ok(out)
}

impl Guid {
    pub const NIL: Guid = Guid([0; 16]);
    /// Partition type: EFI System Partition.
    pub const ESP: Guid = Guid::parse_const("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    /// Partition type: Linux filesystem data.
    pub const LINUX_DATA: Guid = Guid::parse_const("0fc63daf-8483-4772-8e79-3d69d8477de4");
    /// Partition type: Microsoft basic data, what other systems expect of a FAT data
    /// partition.
    pub const BASIC_DATA: Guid = Guid::parse_const("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");

    /// For constants: written as text so they can be checked by eye, and checked at
    /// compile time.
    pub const fn parse_const(text: &str) -> Guid {
        match decode(text.as_bytes()) {
            Ok(b) => Guid(b),
            Err(_) => panic!("malformed GUID constant"),
        }
    }

    /// Parses the canonical `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, either case, no braces.
    pub fn parse(text: &str) -> Result<Guid, String> {
        decode(text.as_bytes()).map(Guid).map_err(|e| {
            let why = match e {
                DecodeError::Length(n) => format!("is {n} characters, not 36"),
                DecodeError::Hyphen(i) => format!("needs '-' at offset {i}"),
                DecodeError::Hex(i) => format!("has a non-hex character at offset {i}"),
            };
            format!("GUID {text:?} {why} (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
        })
    }

    /// A version 4 (random) GUID from 16 random bytes.
    pub fn v4_from(mut bytes: [u8; 16]) -> Guid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
    }

    /// A stable GUID for `name` within `seed` (e.g. an image's build id and a partition's
    /// role): the first 16 bytes of SHA-256(seed, 0, name). The 0 byte keeps ("ab", "c")
    /// and ("a", "bc") apart. Marked as version 4, so that tools which inspect the
    /// version and variant bits accept it.
    pub fn derived(seed: &str, name: &str) -> Guid {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update([0u8]);
        h.update(name.as_bytes());
        let digest = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        Guid::v4_from(b)
    }

    /// The GPT on-disk form: the first three fields little-endian, the rest as is.
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        let b = self.0;
        let mut out = b;
        out[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        out[4..6].copy_from_slice(&[b[5], b[4]]);
        out[6..8].copy_from_slice(&[b[7], b[6]]);
        out
    }

    /// Inverse of [`Guid::to_gpt_bytes`] (the swap is its own inverse).
    pub fn from_gpt_bytes(bytes: [u8; 16]) -> Guid {
        Guid(Guid(bytes).to_gpt_bytes())
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Guid {
    type Err = String;
    fn from_str(s: &str) -> Result<Guid, String> {
        Guid::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_in_lowercase() {
        for text in [
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "0fc63daf-8483-4772-8e79-3d69d8477de4",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            let g = Guid::parse(text).unwrap();
            assert_eq!(g.to_string(), text);
            assert_eq!(text.parse::<Guid>().unwrap(), g);
        }
        let upper = Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(upper, Guid::ESP);
        assert_eq!(upper.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(format!("{upper:?}"), upper.to_string());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "c12a7328f81f11d2ba4b00a0c93ec93b",
            "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
            "c12a7328-f81f-11d2-ba4b_00a0c93ec93b",
            "g12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93g",
            "c12a7328-f81f-11d2-ba4b-00a0c93ec9é",
        ] {
            let err = Guid::parse(bad).unwrap_err();
            assert!(err.contains("GUID"), "{err}");
        }
        assert!(Guid::parse("c12a7328-f81f-11d2-ba4b_00a0c93ec93b")
            .unwrap_err()
            .contains("offset 23"));
    }

    #[test]
    fn gpt_bytes_are_mixed_endian() {
        // The type GUIDs as they appear in every GPT entry array.
        let esp = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(Guid::ESP.to_gpt_bytes(), esp);
        assert_eq!(Guid::from_gpt_bytes(esp), Guid::ESP);
        assert_eq!(
            Guid::LINUX_DATA.to_gpt_bytes(),
            [
                0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
                0x7d, 0xe4
            ]
        );
    }

    #[test]
    fn v4_sets_version_and_variant() {
        let g = Guid::v4_from([0xff; 16]).to_string();
        assert_eq!(&g[14..15], "4");
        assert_eq!(&g[19..20], "b");
        let g = Guid::v4_from([0; 16]).to_string();
        assert_eq!(g, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn derived_is_stable_and_distinct() {
        let a = Guid::derived("build-1", "esp");
        assert_eq!(a, Guid::derived("build-1", "esp"));
        assert_ne!(a, Guid::derived("build-1", "root"));
        assert_ne!(a, Guid::derived("build-2", "esp"));
        // The separator keeps the split between seed and name significant.
        assert_ne!(Guid::derived("ab", "c"), Guid::derived("a", "bc"));
        for g in [a, Guid::derived("x", ""), Guid::derived("", "")] {
            assert_eq!(g.0[6] >> 4, 4, "version nibble of {g}");
            assert_eq!(g.0[8] >> 6, 0b10, "variant bits of {g}");
            assert_eq!(g.to_string().as_bytes()[14], b'4');
        }
        // Pinned: images are reproducible only while the derivation stays as it is.
        let mut h = Sha256::new();
        h.update(b"build-1\0esp");
        let d = h.finalize();
        assert_eq!(a.0[..6], d[..6]);
        assert_eq!(a.0[9..], d[9..16]);
        assert_eq!(a.to_string(), "1945a060-8f90-4ace-ab30-613443cc8989");
    }
}
