//! The cluster key at work: HMAC-SHA256 over a message, so the two controllers and the
//! witness know a heartbeat or a claim came from a member of this array and was not
//! altered. Freshness (incarnation, sequence, time) is the message's business; this only
//! says who could have written it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a tag.
pub const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; the config requires 32 bytes anyway.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(message);
    m
}

/// The tag of `message` under `key`.
pub fn sign(key: &[u8], message: &[u8]) -> [u8; TAG_LEN] {
    mac(key, message).finalize().into_bytes().into()
}

/// Whether `tag` is `message`'s tag under `key`, compared in constant time so that the
/// time taken says nothing about how much of a forged tag was right.
pub fn verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    mac(key, message).verify_slice(tag).is_ok()
}

/// Lower-case hex, for tags carried in text (HTTP headers, logs).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex back to bytes; `None` for odd length or a non-hex digit.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let tag = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            to_hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_changed_message_key_or_tag_does_not_verify() {
        let key = [7u8; 32];
        let tag = sign(&key, b"term 4 owner 1");
        assert!(verify(&key, b"term 4 owner 1", &tag));
        assert!(!verify(&key, b"term 5 owner 1", &tag));
        assert!(!verify(&[8u8; 32], b"term 4 owner 1", &tag));
        let mut bad = tag;
        bad[31] ^= 1;
        assert!(!verify(&key, b"term 4 owner 1", &bad));
        assert!(!verify(&key, b"term 4 owner 1", &tag[..16]));
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
    }
}
