//! The JSON bodies of the witness protocol and their signature.
//!
//! A request body names the array, the node, the operation (so that a signed claim cannot
//! be replayed as a release), the term, the sender's incarnation and sequence, and its wall
//! clock. The header [`SIGNATURE_HEADER`] carries the hex HMAC-SHA256 of the exact body
//! bytes under the array's cluster key. Replies to authenticated requests are signed the
//! same way and echo the node, incarnation and sequence, so a controller can tell the
//! witness's answer to *this* request from a forged or replayed one.

use serde::{Deserialize, Serialize};
use star_core::cluster_auth;

/// The header that carries the signature, in requests and in replies.
pub const SIGNATURE_HEADER: &str = "x-star-signature";

/// Largest body either side accepts; a request is about 150 bytes.
pub const MAX_BODY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Claim,
    Release,
}

impl Op {
    pub fn path(self) -> &'static str {
        match self {
            Op::Claim => "/v1/claim",
            Op::Release => "/v1/release",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub array: String,
    pub op: Op,
    /// 1 or 2.
    pub node: u8,
    /// For a claim, the highest term the node knows of (the one it holds, or the disk's
    /// ownership record); for a release, the term it gives up.
    pub term: u64,
    /// Random, chosen at each start of the sender's daemon.
    pub incarnation: u64,
    /// Grows with every request of one incarnation.
    pub seq: u64,
    /// The sender's wall clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// Why a body is not a request; the server answers 400 with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl Request {
    /// Decodes and checks the shape of an untrusted body (not its signature).
    pub fn decode(body: &[u8]) -> Result<Request, Malformed> {
        if body.len() > MAX_BODY {
            return Err(Malformed(format!("body over {MAX_BODY} bytes")));
        }
        let r: Request =
            serde_json::from_slice(body).map_err(|e| Malformed(format!("bad JSON: {e}")))?;
        if !(1..=2).contains(&r.node) {
            return Err(Malformed(format!("node must be 1 or 2, not {}", r.node)));
        }
        if r.array.is_empty() || r.array.len() > 64 {
            return Err(Malformed("array must be 1 to 64 characters".into()));
        }
        Ok(r)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request always serializes")
    }
}

/// The witness's reply to an authenticated claim or release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub array: String,
    pub node: u8,
    pub incarnation: u64,
    pub seq: u64,
    pub granted: bool,
    /// The term the owner holds now (the released term for a release).
    pub term: u64,
    pub owner: Option<u8>,
    /// The owner's lease left, on the witness's clock. The owner must count its own lease
    /// from when it sent the claim, which makes it end first.
    pub lease_ms: u64,
    pub reason: String,
}

/// The reply to a request that was not let through (4xx, 5xx); never signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

/// `GET /v1/status?array=NAME`: public, so it holds nothing a claim could use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub array: String,
    pub highest_term: u64,
    pub owner: Option<u8>,
    pub owner_term: Option<u64>,
    pub lease_ms: u64,
    pub last_refused: Option<crate::grant::Refusal>,
}

/// The signature header's value for `body`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    cluster_auth::to_hex(&cluster_auth::sign(key, body))
}

/// Whether `header` (hex, either case) is `body`'s signature under `key`.
pub fn verify(key: &[u8], body: &[u8], header: &str) -> bool {
    match cluster_auth::from_hex(&header.trim().to_ascii_lowercase()) {
        Some(tag) => cluster_auth::verify(key, body, &tag),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            array: "star-lab".into(),
            op: Op::Claim,
            node: 1,
            term: 3,
            incarnation: 0xdead_beef,
            seq: 9,
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_request_round_trips() {
        let r = request();
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let good = String::from_utf8(request().encode()).unwrap();
        for bad in [
            String::new(),
            "{".into(),
            "[]".into(),
            good.replace("\"node\":1", "\"node\":3"),
            good.replace("\"node\":1", "\"node\":0"),
            good.replace("\"node\":1", "\"node\":-1"),
            good.replace("\"node\":1", "\"node\":\"1\""),
            good.replace("\"op\":\"claim\"", "\"op\":\"steal\""),
            good.replace("\"term\":3", "\"term\":18446744073709551616"),
            good.replace("\"array\":\"star-lab\"", "\"array\":\"\""),
            good.replace('}', ",\"extra\":1}"),
            good.replace(",\"seq\":9", ""),
            format!("{good} trailing"),
            format!("{{\"array\":\"{}\"}}", "a".repeat(MAX_BODY)),
        ] {
            assert!(Request::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signature_covers_every_byte() {
        let key = [5u8; 32];
        let body = request().encode();
        let sig = sign(&key, &body);
        assert_eq!(sig.len(), 64);
        assert!(verify(&key, &body, &sig));
        assert!(verify(&key, &body, &sig.to_ascii_uppercase()));
        assert!(!verify(&[6u8; 32], &body, &sig), "another array's key");
        let mut altered = body.clone();
        let i = altered.iter().position(|&b| b == b'3').unwrap();
        altered[i] = b'4';
        assert!(!verify(&key, &altered, &sig), "term changed");
        assert!(!verify(&key, &body, &sig[..62]));
        assert!(!verify(&key, &body, ""));
        assert!(!verify(&key, &body, "not hex at all"));
    }
}
