//! GUIDs as the GPT stores them: canonical text, the mixed-endian on-disk form, and
//! random (version 4) ones.

use std::fmt;

/// A GUID, held in the byte order of its canonical text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 16]);

const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const fn decode(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let (mut i, mut nibble) = (0, 0);
    while i < 36 {
        let c = text[i];
        if i == 8 || i == 13 || i == 18 || i == 23 {
            if c != b'-' {
                return None;
            }
        } else {
            let v = match hex_value(c) {
                Some(v) => v,
                None => return None,
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
    Some(out)
}

impl Guid {
    pub const NIL: Guid = Guid([0; 16]);

    /// For constants: written as text so they can be checked by eye, and checked at
    /// compile time.
    pub const fn parse_const(text: &str) -> Guid {
        match decode(text.as_bytes()) {
            Some(b) => Guid(b),
            None => panic!("malformed GUID constant"),
        }
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, either case.
    pub fn parse(text: &str) -> Result<Guid, String> {
        decode(text.as_bytes())
            .map(Guid)
            .ok_or_else(|| format!("{text:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"))
    }

    /// A version 4 (random) GUID from 16 random bytes.
    pub fn v4_from(mut bytes: [u8; 16]) -> Guid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Guid(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_in_lowercase() {
        let text = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
        let g = Guid::parse(text).unwrap();
        assert_eq!(g.to_string(), text.to_ascii_lowercase());
        assert!(Guid::parse("c12a7328f81f11d2ba4b00a0c93ec93b").is_err());
        assert!(Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93g").is_err());
    }

    #[test]
    fn gpt_bytes_are_mixed_endian() {
        // The EFI System Partition's type GUID as it appears in every GPT entry array.
        let esp = Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap();
        let disk = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(esp.to_gpt_bytes(), disk);
        assert_eq!(Guid::from_gpt_bytes(disk), esp);
    }

    #[test]
    fn v4_sets_version_and_variant() {
        let g = Guid::v4_from([0xff; 16]).to_string();
        assert_eq!(&g[14..15], "4");
        assert_eq!(&g[19..20], "b");
        let g = Guid::v4_from([0; 16]).to_string();
        assert_eq!(g, "00000000-0000-4000-8000-000000000000");
    }
}
