//! Where random values come from. The plans of every change take an [`Entropy`] so that
//! tests can make them deterministic; the operations use the kernel's generator.

use crate::error::Error;
use crate::guid::Guid;

pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error>;

    fn guid(&mut self) -> Result<Guid, Error> {
        let mut b = [0u8; 16];
        self.fill(&mut b)?;
        Ok(Guid::v4_from(b))
    }

    /// A LUN serial: 32 lowercase hex digits (128 random bits), unique in practice, so
    /// two LUNs, even of two arrays, never share a SCSI identity.
    fn serial(&mut self) -> Result<String, Error> {
        let mut b = [0u8; 16];
        self.fill(&mut b)?;
        Ok(b.iter().map(|x| format!("{x:02x}")).collect())
    }
}

/// The kernel's random generator (getrandom(2)).
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(buf)
            .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))
    }
}

/// A predictable sequence for tests: each call returns the next counter value's bytes.
#[derive(Default)]
pub struct CountingEntropy(pub u64);

impl Entropy for CountingEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.0 += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0.to_le_bytes()[i % 8] ^ (i as u8);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_entropy_gives_distinct_guids_and_serials() {
        let mut e = OsEntropy;
        assert_ne!(e.guid().unwrap(), e.guid().unwrap());
        let s = e.serial().unwrap();
        assert_eq!(s.len(), 32);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
