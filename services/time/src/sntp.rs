//! SNTPv4 (RFC 4330) on the wire: one 48-byte request, one 48-byte reply, four timestamps.
//!
//! Pure: the caller supplies the times, so the arithmetic is tested without a network.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP's era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// An NTP timestamp: seconds since 1900 and a 32-bit binary fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpTime(pub u64);

impl NtpTime {
    pub fn from_system(t: SystemTime) -> NtpTime {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime((secs << 32) | frac)
    }

    /// Seconds since the Unix epoch, with the fraction.
    pub fn unix_seconds(self) -> f64 {
        let secs = (self.0 >> 32) as f64 - NTP_UNIX_OFFSET as f64;
        secs + (self.0 & 0xffff_ffff) as f64 / 4_294_967_296.0
    }
}

/// A client request whose transmit timestamp is `t1`; the reply echoes it back.
pub fn request(t1: NtpTime) -> [u8; 48] {
    let mut p = [0u8; 48];
    // LI 0, version 4, mode 3 (client).
    p[0] = 0b00_100_011;
    p[40..48].copy_from_slice(&t1.0.to_be_bytes());
    p
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// How far the local clock is behind the server (add it to be right), seconds.
    pub offset: f64,
    /// Round trip through the network, seconds.
    pub delay: f64,
    pub stratum: u8,
}

/// Checks a reply to the request sent at `t1` and received at `t4`.
pub fn parse_reply(reply: &[u8], t1: NtpTime, t4: NtpTime) -> Result<Sample, String> {
    if reply.len() < 48 {
        return Err(format!(
            "reply of {} bytes; an NTP packet has 48",
            reply.len()
        ));
    }
    let leap = reply[0] >> 6;
    let mode = reply[0] & 0b111;
    let stratum = reply[1];
    let ts = |at: usize| NtpTime(u64::from_be_bytes(reply[at..at + 8].try_into().unwrap()));
    if mode != 4 {
        return Err(format!("reply in mode {mode}, not 4 (server)"));
    }
    if stratum == 0 {
        let code = String::from_utf8_lossy(&reply[12..16]).into_owned();
        return Err(format!("the server refused (kiss code {code:?})"));
    }
    if leap == 3 {
        return Err("the server's own clock is not synchronized".into());
    }
    // The originate timestamp must be ours: anything else is a stale or forged reply.
    if ts(24) != t1 {
        return Err("reply does not answer our request (originate timestamp differs)".into());
    }
    let (t1, t2, t3, t4) = (
        t1.unix_seconds(),
        ts(32).unix_seconds(),
        ts(40).unix_seconds(),
        t4.unix_seconds(),
    );
    Ok(Sample {
        offset: ((t2 - t1) + (t3 - t4)) / 2.0,
        delay: (t4 - t1) - (t3 - t2),
        stratum,
    })
}

/// How the clock is corrected: a small error is slewed (time never jumps back under a
/// running service), a large one is stepped.
pub fn should_step(offset: f64) -> bool {
    offset.abs() > 0.5
}

pub fn duration_of(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(t1: NtpTime, t2: f64, t3: f64, stratum: u8, leap: u8) -> [u8; 48] {
        let mut p = [0u8; 48];
        p[0] = (leap << 6) | (4 << 3) | 4;
        p[1] = stratum;
        let at = |s: f64| {
            NtpTime::from_system(UNIX_EPOCH + Duration::from_secs_f64(s))
                .0
                .to_be_bytes()
        };
        p[24..32].copy_from_slice(&t1.0.to_be_bytes());
        p[32..40].copy_from_slice(&at(t2));
        p[40..48].copy_from_slice(&at(t3));
        p
    }

    fn t(s: f64) -> NtpTime {
        NtpTime::from_system(UNIX_EPOCH + Duration::from_secs_f64(s))
    }

    #[test]
    fn offset_and_delay_follow_rfc_4330() {
        // Client 10 s behind, 0.2 s each way, 0.1 s in the server.
        let t1 = t(1_000_000.0);
        let r = reply(t1, 1_000_010.2, 1_000_010.3, 2, 0);
        let s = parse_reply(&r, t1, t(1_000_000.5)).unwrap();
        assert!((s.offset - 10.0).abs() < 1e-6, "{s:?}");
        assert!((s.delay - 0.4).abs() < 1e-6, "{s:?}");
        assert!(should_step(s.offset));
        assert!(!should_step(0.1));
    }

    #[test]
    fn bad_replies_are_refused() {
        let t1 = t(2_000_000.0);
        let t4 = t(2_000_000.1);
        let kiss = reply(t1, 2_000_000.0, 2_000_000.0, 0, 0);
        assert!(parse_reply(&kiss, t1, t4).unwrap_err().contains("refused"));
        let unsynced = reply(t1, 2_000_000.0, 2_000_000.0, 3, 3);
        assert!(parse_reply(&unsynced, t1, t4)
            .unwrap_err()
            .contains("not synchronized"));
        let other = reply(t(5.0), 2_000_000.0, 2_000_000.0, 3, 0);
        assert!(parse_reply(&other, t1, t4)
            .unwrap_err()
            .contains("originate"));
        assert!(parse_reply(&[0u8; 10], t1, t4).is_err());
    }

    #[test]
    fn requests_carry_the_transmit_time() {
        let t1 = t(1_234_567.25);
        let p = request(t1);
        assert_eq!(p[0], 0x23);
        assert_eq!(u64::from_be_bytes(p[40..48].try_into().unwrap()), t1.0);
        assert!((t1.unix_seconds() - 1_234_567.25).abs() < 1e-6);
    }
}
