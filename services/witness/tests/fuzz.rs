//! Arbitrary bytes at every layer a network peer can reach: the HTTP reader, the JSON
//! decoder, and the whole service. Nothing panics, and nothing without the key is granted.

use proptest::prelude::*;
use star_witness::config::{Array, Config};
use star_witness::grant::Now;
use star_witness::http::{self, Method};
use star_witness::message::{self, Op, Request};
use star_witness::server::Witness;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const KEY: [u8; 32] = [0x42; 32];
const T0: u64 = 1_700_000_000_000;

fn now() -> Now {
    Now {
        mono_ms: 1,
        unix_ms: T0,
    }
}

/// One witness for the whole run (the state directory is locked by its owner).
fn witness() -> &'static Witness {
    static W: OnceLock<Witness> = OnceLock::new();
    W.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("witness-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir,
            lease: Duration::from_secs(10),
            max_skew: Duration::from_secs(30),
            volatile_state: false,
            arrays: vec![Array {
                name: "star-lab".into(),
                key: KEY.to_vec(),
            }],
        };
        Witness::open(&config, now()).unwrap()
    })
}

fn highest_term() -> u64 {
    let h = witness().handle(
        &http::Request {
            method: Method::Get,
            path: "/v1/status".into(),
            query: Some("array=star-lab".into()),
            signature: None,
            body: Vec::new(),
        },
        now(),
    );
    let s: message::Status = serde_json::from_slice(&h.response.body).unwrap();
    s.highest_term
}

fn assert_not_granted(h: &star_witness::server::Handled) {
    assert_ne!(h.response.status, 200, "granted without the key");
    assert!(h.response.signature.is_none());
    assert_eq!(highest_term(), 0);
}

/// A request that would be granted if it were signed with the key.
fn plausible() -> impl Strategy<Value = Request> {
    (
        prop_oneof![Just(Op::Claim), Just(Op::Release)],
        1u8..=2,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        (T0 - 1000)..(T0 + 1000),
    )
        .prop_map(|(op, node, term, incarnation, seq, time_ms)| Request {
            array: "star-lab".into(),
            op,
            node,
            term: term % 4,
            incarnation,
            seq,
            time_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_http_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..10_000)) {
        let _ = http::read_request(&mut Cursor::new(bytes.clone()));
        let _ = http::read_response(&mut Cursor::new(bytes));
    }

    #[test]
    fn near_miss_heads_never_panic(
        method in "(GET|POST|PUT|get| )",
        target in "[/a-z?=&%. -]{0,20}",
        headers in proptest::collection::vec(("[A-Za-z-]{0,16}", "[ -~\t]{0,20}"), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut text = format!("{method} {target} HTTP/1.1\r\n");
        for (n, v) in &headers {
            text.push_str(&format!("{n}:{v}\r\n"));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        if let Ok(r) = http::read_request(&mut Cursor::new(bytes)) {
            assert!(r.body.len() <= message::MAX_BODY);
            assert_not_granted(&witness().handle(&r, now()));
        }
    }

    #[test]
    fn the_json_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = Request::decode(&bytes) {
            assert!((1..=2).contains(&r.node));
        }
    }

    #[test]
    fn arbitrary_bytes_to_the_service_never_grant(
        path in prop_oneof![Just("/v1/claim"), Just("/v1/release"), Just("/v1/status")],
        body in proptest::collection::vec(any::<u8>(), 0..512),
        signature in proptest::option::of("[0-9a-fA-F]{0,70}"),
    ) {
        let mut wire = format!(
            "POST {path} HTTP/1.1\r\nContent-Length: {}\r\n", body.len()
        ).into_bytes();
        if let Some(s) = &signature {
            wire.extend_from_slice(format!("X-Star-Signature: {s}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&body);
        let r = http::read_request(&mut Cursor::new(wire)).unwrap();
        assert_not_granted(&witness().handle(&r, now()));
    }

    #[test]
    fn well_formed_requests_without_the_key_never_grant(
        req in plausible(),
        signature in proptest::option::of("[0-9a-f]{64}"),
        wrong_key in any::<[u8; 32]>(),
    ) {
        prop_assume!(wrong_key != KEY);
        let body = req.encode();
        for sig in [signature, Some(message::sign(&wrong_key, &body))] {
            let r = http::Request {
                method: Method::Post,
                path: req.op.path().into(),
                query: None,
                signature: sig,
                body: body.clone(),
            };
            assert_not_granted(&witness().handle(&r, now()));
        }
    }
}
