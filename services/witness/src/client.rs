//! The controllers' side: a small blocking client. One request per TCP connection, an
//! overall timeout, and only a reply signed with the array's key that echoes this
//! request's node, incarnation and sequence counts as the witness's answer — anything else
//! is an [`Error`], which the caller treats as "no witness" (never as a grant).
//!
//! The lease in an answer is the witness's; a caller must count its own lease from when it
//! *sent* the claim (`Answer::lease_ms` after the `sent` instant it recorded), which ends
//! before the witness's does.

use crate::http;
use crate::message::{self, Answer, ErrorReply, Op, Request};
use star_core::node_config::parse_witness_url;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub enum Error {
    /// The URL is not http://HOST:PORT or the host does not resolve.
    Url(String),
    /// No connection, or it broke, or the timeout passed.
    Network(String),
    /// The reply is not HTTP as the witness speaks it.
    Protocol(String),
    /// The witness refused the request itself (4xx/5xx): unsigned, so only for the log.
    Rejected { status: u16, error: String },
    /// The reply is not signed with the array's key, or answers another request.
    Forged(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Url(e) => write!(f, "witness address: {e}"),
            Error::Network(e) => write!(f, "witness unreachable: {e}"),
            Error::Protocol(e) => write!(f, "witness reply: {e}"),
            Error::Rejected { status, error } => {
                write!(f, "witness refused the request ({status}): {error}")
            }
            Error::Forged(e) => write!(f, "witness reply not authentic: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Which run of the sender's daemon and which of its requests this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub incarnation: u64,
    pub seq: u64,
}

/// Claims a term (or renews the one held): `term` is the highest term the node knows of.
pub fn claim(
    url: &str,
    array: &str,
    key: &[u8],
    node: u8,
    term: u64,
    stamp: Stamp,
    timeout: Duration,
) -> Result<Answer, Error> {
    send(
        url,
        key,
        &request(array, Op::Claim, node, term, stamp),
        timeout,
    )
}

/// Gives up `term`; the caller must have stopped serving.
pub fn release(
    url: &str,
    array: &str,
    key: &[u8],
    node: u8,
    term: u64,
    stamp: Stamp,
    timeout: Duration,
) -> Result<Answer, Error> {
    send(
        url,
        key,
        &request(array, Op::Release, node, term, stamp),
        timeout,
    )
}

fn request(array: &str, op: Op, node: u8, term: u64, stamp: Stamp) -> Request {
    Request {
        array: array.to_string(),
        op,
        node,
        term,
        incarnation: stamp.incarnation,
        seq: stamp.seq,
        time_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }
}

/// Sends a request as it is (the caller chose its time and stamp) and checks the answer.
pub fn send(url: &str, key: &[u8], req: &Request, timeout: Duration) -> Result<Answer, Error> {
    let until = Instant::now() + timeout;
    let witness = parse_witness_url(url).map_err(Error::Url)?;
    let addrs: Vec<SocketAddr> = (witness.host.as_str(), witness.port)
        .to_socket_addrs()
        .map_err(|e| Error::Url(format!("{}: {e}", witness.host)))?
        .collect();
    let mut last = String::from("no address");
    let mut stream = None;
    for addr in addrs {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    let stream = stream.ok_or(Error::Network(last))?;
    let net = |e: std::io::Error| Error::Network(e.to_string());
    let left = until.saturating_duration_since(Instant::now());
    stream
        .set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(net)?;
    let body = req.encode();
    let host = if witness.host.contains(':') {
        format!("[{}]:{}", witness.host, witness.port)
    } else {
        format!("{}:{}", witness.host, witness.port)
    };
    http::write_post(
        &mut &stream,
        &host,
        req.op.path(),
        &message::sign(key, &body),
        &body,
    )
    .map_err(net)?;
    let mut reader = http::Deadline {
        stream: &stream,
        until,
    };
    let reply = http::read_response(&mut reader).map_err(|e| match e {
        http::HttpError::Io(e) => Error::Network(e),
        other => Error::Protocol(other.to_string()),
    })?;
    check(key, req, &reply)
}

/// Whether `reply` is the witness's signed answer to `req`.
pub fn check(key: &[u8], req: &Request, reply: &http::Response) -> Result<Answer, Error> {
    if reply.status != 200 {
        let error = serde_json::from_slice::<ErrorReply>(&reply.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).into_owned());
        return Err(Error::Rejected {
            status: reply.status,
            error,
        });
    }
    let Some(sig) = &reply.signature else {
        return Err(Error::Forged("unsigned".into()));
    };
    if !message::verify(key, &reply.body, sig) {
        return Err(Error::Forged("bad signature".into()));
    }
    let answer: Answer =
        serde_json::from_slice(&reply.body).map_err(|e| Error::Protocol(e.to_string()))?;
    if (
        answer.array.as_str(),
        answer.node,
        answer.incarnation,
        answer.seq,
    ) != (req.array.as_str(), req.node, req.incarnation, req.seq)
    {
        return Err(Error::Forged(format!(
            "answers array {} node {} incarnation {:016x} sequence {}",
            answer.array, answer.node, answer.incarnation, answer.seq
        )));
    }
    Ok(answer)
}

/// A random incarnation for a daemon's start, from the kernel's generator.
pub fn random_incarnation() -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// One node's conversation with the witness: it keeps the incarnation and the sequence.
pub struct Client {
    pub url: String,
    pub array: String,
    key: Vec<u8>,
    pub node: u8,
    pub timeout: Duration,
    incarnation: u64,
    seq: u64,
}

impl Client {
    pub fn new(
        url: &str,
        array: &str,
        key: &[u8],
        node: u8,
        timeout: Duration,
    ) -> std::io::Result<Client> {
        Ok(Client {
            url: url.to_string(),
            array: array.to_string(),
            key: key.to_vec(),
            node,
            timeout,
            incarnation: random_incarnation()?,
            seq: 0,
        })
    }

    fn next(&mut self) -> Stamp {
        self.seq += 1;
        Stamp {
            incarnation: self.incarnation,
            seq: self.seq,
        }
    }

    pub fn claim(&mut self, term: u64) -> Result<Answer, Error> {
        let stamp = self.next();
        claim(
            &self.url,
            &self.array,
            &self.key,
            self.node,
            term,
            stamp,
            self.timeout,
        )
    }

    pub fn release(&mut self, term: u64) -> Result<Answer, Error> {
        let stamp = self.next();
        release(
            &self.url,
            &self.array,
            &self.key,
            self.node,
            term,
            stamp,
            self.timeout,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            array: "a".into(),
            op: Op::Claim,
            node: 1,
            term: 0,
            incarnation: 5,
            seq: 6,
            time_ms: 0,
        }
    }

    fn answer(seq: u64) -> Vec<u8> {
        serde_json::to_vec(&Answer {
            array: "a".into(),
            node: 1,
            incarnation: 5,
            seq,
            granted: true,
            term: 1,
            owner: Some(1),
            lease_ms: 10_000,
            reason: "granted".into(),
        })
        .unwrap()
    }

    #[test]
    fn only_a_signed_echo_of_this_request_counts() {
        let key = [1u8; 32];
        let ok = http::Response {
            status: 200,
            signature: Some(message::sign(&key, &answer(6))),
            body: answer(6),
        };
        assert!(check(&key, &req(), &ok).unwrap().granted);
        let unsigned = http::Response {
            signature: None,
            ..ok.clone()
        };
        assert!(matches!(
            check(&key, &req(), &unsigned),
            Err(Error::Forged(_))
        ));
        let other_key = http::Response {
            signature: Some(message::sign(&[2u8; 32], &answer(6))),
            ..ok.clone()
        };
        assert!(matches!(
            check(&key, &req(), &other_key),
            Err(Error::Forged(_))
        ));
        let old = http::Response {
            signature: Some(message::sign(&key, &answer(5))),
            body: answer(5),
            ..ok.clone()
        };
        assert!(
            matches!(check(&key, &req(), &old), Err(Error::Forged(_))),
            "a replayed answer"
        );
        let refused = http::Response::json(401, b"{\"error\":\"bad signature\"}".to_vec());
        assert!(matches!(
            check(&key, &req(), &refused),
            Err(Error::Rejected { status: 401, .. })
        ));
    }

    #[test]
    fn urls_and_unreachable_witnesses_are_errors() {
        let stamp = Stamp {
            incarnation: 1,
            seq: 1,
        };
        let e = claim(
            "udp://127.0.0.1:7400",
            "a",
            &[0; 32],
            1,
            0,
            stamp,
            Duration::from_secs(1),
        );
        assert!(matches!(e, Err(Error::Url(_))), "{e:?}");
        // A port nobody listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = claim(
            &format!("http://127.0.0.1:{port}"),
            "a",
            &[0; 32],
            1,
            0,
            stamp,
            Duration::from_secs(1),
        );
        assert!(matches!(e, Err(Error::Network(_))), "{e:?}");
    }

    #[test]
    fn a_silent_witness_times_out() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let started = Instant::now();
        let e = claim(
            &url,
            "a",
            &[0; 32],
            1,
            0,
            Stamp {
                incarnation: 1,
                seq: 1,
            },
            Duration::from_millis(300),
        );
        assert!(matches!(e, Err(Error::Network(_))), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(l);
    }

    #[test]
    fn incarnations_differ() {
        assert_ne!(random_incarnation().unwrap(), random_incarnation().unwrap());
    }
}
