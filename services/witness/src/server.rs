//! The witness service: requests in, grant decisions out, the state made durable in
//! between. `Witness::handle` is the whole protocol on one parsed request at a given
//! time; `serve` only moves bytes (a thread per connection, bounded in number and time).

use crate::config::Config;
use crate::freshness::{self, ReplayGuard};
use crate::grant::{Grants, Now, Outcome, Reason};
use crate::http::{self, Method, Response};
use crate::message::{self, Answer, ErrorReply, Op, Request, Status};
use crate::store::Store;
use std::collections::BTreeMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections served at once; more are answered 503 at once. Two controllers per array
/// each have at most one request outstanding, so this leaves room for 30 arrays' worth.
pub const MAX_CONNECTIONS: usize = 64;
/// The whole request must arrive within this (a slow sender cannot hold a thread).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct ArrayLive {
    key: Vec<u8>,
    grants: Grants,
    /// Per node (index node - 1).
    guards: [ReplayGuard; 2],
    /// With volatile state and no state file at start: no grant before this (mono ms).
    quiet_until_ms: u64,
}

pub struct Witness {
    lease_ms: u64,
    max_skew_ms: u64,
    arrays: BTreeMap<String, Mutex<ArrayLive>>,
    store: Store,
    started: Instant,
}

/// A reply and what to log about it (nothing for a routine renewal).
#[derive(Debug)]
pub struct Handled {
    pub response: Response,
    pub log: Option<String>,
}

fn error(status: u16, why: impl Into<String>) -> Handled {
    let why = why.into();
    let body = serde_json::to_vec(&ErrorReply { error: why.clone() }).expect("serializes");
    Handled {
        response: Response::json(status, body),
        log: Some(format!("refused {status}: {why}")),
    }
}

impl Witness {
    /// Opens the state directory and reads every array's state. After this, a persisted
    /// owner's lease counts as running for a full lease from `now` (see `Grants::restored`).
    pub fn open(config: &Config, now: Now) -> Result<Witness, String> {
        let store = Store::open(&config.state_dir)?;
        let lease_ms = config.lease.as_millis() as u64;
        let mut arrays = BTreeMap::new();
        for a in &config.arrays {
            let (grants, quiet_until_ms) = match store.load(&a.name)? {
                Some(d) => (Grants::restored(d, now, lease_ms), 0),
                None if config.volatile_state => {
                    (Grants::fresh(), now.mono_ms.saturating_add(lease_ms))
                }
                None => (Grants::fresh(), 0),
            };
            arrays.insert(
                a.name.clone(),
                Mutex::new(ArrayLive {
                    key: a.key.clone(),
                    grants,
                    guards: Default::default(),
                    quiet_until_ms,
                }),
            );
        }
        Ok(Witness {
            lease_ms,
            max_skew_ms: config.max_skew.as_millis() as u64,
            arrays,
            store,
            started: Instant::now(),
        })
    }

    /// The time now on the witness's clocks.
    pub fn now(&self) -> Now {
        Now {
            mono_ms: self.started.elapsed().as_millis() as u64,
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// One line per array for the log at start.
    pub fn summary(&self, now: Now) -> Vec<String> {
        self.arrays
            .iter()
            .map(|(name, a)| {
                let a = a.lock().unwrap_or_else(|p| p.into_inner());
                let d = &a.grants.durable;
                if a.quiet_until_ms > now.mono_ms {
                    return format!(
                        "array {name}: no saved state (the state directory does not survive \
                         a restart): no grant for {} ms, until any earlier lease has run out",
                        a.quiet_until_ms - now.mono_ms
                    );
                }
                match d.owner {
                    Some(o) => format!(
                        "array {name}: term {} held by node {}; no grant to the other node for {} ms (a full lease from start)",
                        o.term,
                        o.node,
                        a.grants.lease_left(now)
                    ),
                    None => format!("array {name}: highest term {}, no owner", d.highest_term),
                }
            })
            .collect()
    }

    pub fn handle(&self, req: &http::Request, now: Now) -> Handled {
        match (req.method, req.path.as_str()) {
            (Method::Post, "/v1/claim") => self.signed(req, Op::Claim, now),
            (Method::Post, "/v1/release") => self.signed(req, Op::Release, now),
            (Method::Get, "/v1/status") => self.status(req, now),
            (_, "/v1/claim" | "/v1/release" | "/v1/status") => {
                error(405, format!("{:?} not allowed on {}", req.method, req.path))
            }
            _ => error(404, format!("no such endpoint {:?}", req.path)),
        }
    }

    fn signed(&self, req: &http::Request, op: Op, now: Now) -> Handled {
        let Some(signature) = &req.signature else {
            return error(401, "unsigned: no X-Star-Signature header");
        };
        let body = match Request::decode(&req.body) {
            Ok(b) => b,
            Err(e) => return error(400, e.0),
        };
        let who = format!("array {} node {}", body.array, body.node);
        if body.op != op {
            return error(400, format!("{who}: op {:?} sent to {}", body.op, req.path));
        }
        let Some(array) = self.arrays.get(&body.array) else {
            return error(404, format!("{who}: unknown array"));
        };
        // One request of an array at a time, from the decision until the state is on
        // disk: when both nodes race, the second sees the first's grant.
        let mut a = array.lock().unwrap_or_else(|p| p.into_inner());
        if !message::verify(&a.key, &req.body, signature) {
            return error(
                401,
                format!("{who}: bad signature (another key, or altered)"),
            );
        }
        if let Err(e) = freshness::check_clock(body.time_ms, now.unix_ms, self.max_skew_ms) {
            return error(403, format!("{who}: {e}"));
        }
        let guard = &mut a.guards[body.node as usize - 1];
        if let Err(e) = guard.check(body.incarnation, body.seq) {
            return error(409, format!("{who}: {e}"));
        }
        guard.accept(
            body.incarnation,
            body.seq,
            now.mono_ms,
            2 * self.max_skew_ms,
        );
        if now.mono_ms < a.quiet_until_ms {
            // Answered like an unreachable witness: the controllers keep their roles.
            return error(
                503,
                format!(
                    "{who}: no saved state since this witness started: no grant for {} ms, \
                     until any lease granted before has run out",
                    a.quiet_until_ms - now.mono_ms
                ),
            );
        }
        let outcome: Outcome = match op {
            Op::Claim => a.grants.claim(body.node, body.term, now, self.lease_ms),
            Op::Release => a.grants.release(body.node, body.term, now),
        };
        if outcome.durable_changed {
            if let Err(e) = self.store.save(&body.array, &outcome.next.durable) {
                // Nothing is granted that is not on disk.
                return error(503, format!("{who}: cannot make the state durable: {e}"));
            }
        }
        let v = outcome.verdict;
        let log = (outcome.durable_changed || v.reason != Reason::Renewed).then(|| {
            format!(
                "{who}: {:?} term {} -> {} (owner {}, lease {} ms)",
                op,
                body.term,
                v.reason.as_str(),
                v.owner.map_or("none".to_string(), |n| n.to_string()),
                v.lease_ms
            )
        });
        // A repeated refusal changes nothing on disk but its time in memory.
        a.grants = outcome.next;
        let answer = Answer {
            array: body.array.clone(),
            node: body.node,
            incarnation: body.incarnation,
            seq: body.seq,
            granted: v.granted,
            term: v.term,
            owner: v.owner,
            lease_ms: v.lease_ms,
            reason: v.reason.as_str().to_string(),
        };
        let reply = serde_json::to_vec(&answer).expect("serializes");
        Handled {
            response: Response {
                status: 200,
                signature: Some(message::sign(&a.key, &reply)),
                body: reply,
            },
            log,
        }
    }

    /// Public on purpose: an operator checks it with curl during an incident without the
    /// cluster key, and nothing in it (term, owner, lease left, last refusal) helps anyone
    /// claim — claims need the key, and both controllers already show the same in
    /// `star status`. It tells whether an array name is served; names are not secret.
    fn status(&self, req: &http::Request, now: Now) -> Handled {
        let name = req
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("array="));
        let Some(name) = name else {
            return error(400, "status needs ?array=NAME");
        };
        let Some(array) = self.arrays.get(name) else {
            return error(404, format!("unknown array {name:?}"));
        };
        let a = array.lock().unwrap_or_else(|p| p.into_inner());
        let d = &a.grants.durable;
        let status = Status {
            array: name.to_string(),
            highest_term: d.highest_term,
            owner: d.owner.map(|o| o.node),
            owner_term: d.owner.map(|o| o.term),
            lease_ms: a.grants.lease_left(now),
            last_refused: d.last_refused.clone(),
        };
        Handled {
            response: Response::json(200, serde_json::to_vec(&status).expect("serializes")),
            log: None,
        }
    }
}

fn log(line: &str) {
    eprintln!("star-witness: {line}");
}

fn connection(witness: &Witness, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or("?".to_string(), |a| a.to_string());
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut reader = http::Deadline {
        stream: &stream,
        until: Instant::now() + REQUEST_TIMEOUT,
    };
    let handled = match http::read_request(&mut reader) {
        Ok(req) => witness.handle(&req, witness.now()),
        Err(e) => match e.status() {
            Some(status) => error(status, e.to_string()),
            None => {
                log(&format!("{peer}: {e}"));
                return;
            }
        },
    };
    if let Some(line) = &handled.log {
        log(&format!("{peer}: {line}"));
    }
    if let Err(e) = handled.response.write_to(&mut &stream) {
        log(&format!("{peer}: cannot answer: {e}"));
    }
}

/// Serves until the listener fails.
pub fn serve(witness: Arc<Witness>, listener: TcpListener) -> io::Result<()> {
    let busy = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                log(&format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            busy.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = error(503, "too many connections")
                .response
                .write_to(&mut &stream);
            continue;
        }
        let witness = witness.clone();
        let done = busy.clone();
        let spawned = std::thread::Builder::new()
            .name("connection".into())
            .spawn(move || {
                connection(&witness, stream);
                done.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            busy.fetch_sub(1, Ordering::SeqCst);
            log(&format!("cannot start a thread: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Array;
    use std::path::PathBuf;

    const A: [u8; 32] = [0xa1; 32];
    const B: [u8; 32] = [0xb2; 32];
    const T0: u64 = 1_700_000_000_000;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("star-witness-server-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn config(dir: &std::path::Path) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.to_path_buf(),
            lease: Duration::from_secs(10),
            max_skew: Duration::from_secs(30),
            volatile_state: false,
            arrays: vec![
                Array {
                    name: "alpha".into(),
                    key: A.to_vec(),
                },
                Array {
                    name: "beta".into(),
                    key: B.to_vec(),
                },
            ],
        }
    }

    fn at(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            unix_ms: T0 + ms,
        }
    }

    fn body(array: &str, op: Op, node: u8, term: u64, seq: u64, time_ms: u64) -> Request {
        Request {
            array: array.into(),
            op,
            node,
            term,
            incarnation: 77,
            seq,
            time_ms,
        }
    }

    fn post(req: &Request, key: Option<&[u8]>) -> http::Request {
        let body = req.encode();
        http::Request {
            method: Method::Post,
            path: req.op.path().into(),
            query: None,
            signature: key.map(|k| message::sign(k, &body)),
            body,
        }
    }

    fn status(w: &Witness, array: &str, now: Now) -> Status {
        let h = w.handle(
            &http::Request {
                method: Method::Get,
                path: "/v1/status".into(),
                query: Some(format!("array={array}")),
                signature: None,
                body: Vec::new(),
            },
            now,
        );
        assert_eq!(h.response.status, 200);
        serde_json::from_slice(&h.response.body).unwrap()
    }

    fn answer(h: &Handled, key: &[u8]) -> Answer {
        assert_eq!(
            h.response.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&h.response.body)
        );
        let sig = h.response.signature.as_deref().expect("signed");
        assert!(message::verify(key, &h.response.body, sig));
        serde_json::from_slice(&h.response.body).unwrap()
    }

    #[test]
    fn volatile_state_lost_means_no_grant_for_a_lease() {
        let dir = scratch("volatile");
        let mut c = config(&dir);
        c.volatile_state = true;
        let w = Witness::open(&c, at(0)).unwrap();
        assert!(w.summary(at(0))[0].contains("no grant for 10000 ms"));
        let h = w.handle(
            &post(&body("alpha", Op::Claim, 1, 0, 1, T0), Some(&A)),
            at(9_999),
        );
        assert_eq!(h.response.status, 503);
        assert!(h.log.unwrap().contains("no saved state"));
        assert!(
            !dir.join("alpha.json").exists(),
            "nothing granted, nothing saved"
        );
        let a = answer(
            &w.handle(
                &post(&body("alpha", Op::Claim, 1, 0, 2, T0), Some(&A)),
                at(10_000),
            ),
            &A,
        );
        assert!(a.granted);
        // Its state is on disk now: a restart of the process (not of the machine) has
        // no quiet period.
        drop(w);
        let w = Witness::open(&c, at(0)).unwrap();
        assert!(!w.summary(at(0))[0].contains("no saved state"));
    }

    #[test]
    fn a_signed_claim_is_granted_and_written_before_the_reply() {
        let dir = scratch("grant");
        let w = Witness::open(&config(&dir), at(0)).unwrap();
        let a = answer(
            &w.handle(
                &post(&body("alpha", Op::Claim, 1, 0, 1, T0), Some(&A)),
                at(0),
            ),
            &A,
        );
        assert_eq!((a.granted, a.term, a.owner, a.seq), (true, 1, Some(1), 1));
        let on_disk = std::fs::read_to_string(dir.join("alpha.json")).unwrap();
        assert!(on_disk.contains("\"highest_term\": 1"), "{on_disk}");
        // The other array is untouched and keyed separately.
        assert_eq!(status(&w, "beta", at(0)).highest_term, 0);
        let b = answer(
            &w.handle(
                &post(&body("beta", Op::Claim, 2, 0, 1, T0), Some(&B)),
                at(0),
            ),
            &B,
        );
        assert_eq!((b.granted, b.term, b.owner), (true, 1, Some(2)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_bad_request_is_refused_and_changes_nothing() {
        let dir = scratch("refuse");
        let w = Witness::open(&config(&dir), at(0)).unwrap();
        let good = body("alpha", Op::Claim, 1, 0, 5, T0);
        let mut altered = post(&good, Some(&A));
        let i = altered.body.iter().position(|&b| b == b'5').unwrap();
        altered.body[i] = b'6';
        let mut wrong_path = post(&good, Some(&A));
        wrong_path.path = "/v1/release".into();
        let cases: Vec<(&str, http::Request, u16)> = vec![
            ("unsigned", post(&good, None), 401),
            ("another array's key", post(&good, Some(&B)), 401),
            ("altered body", altered, 401),
            (
                "unknown array",
                post(&body("gamma", Op::Claim, 1, 0, 5, T0), Some(&A)),
                404,
            ),
            (
                "stale, behind",
                post(&body("alpha", Op::Claim, 1, 0, 5, T0 - 30_001), Some(&A)),
                403,
            ),
            (
                "stale, ahead",
                post(&body("alpha", Op::Claim, 1, 0, 5, T0 + 30_001), Some(&A)),
                403,
            ),
            ("claim sent as a release", wrong_path, 400),
            (
                "node 3",
                post(&body("alpha", Op::Claim, 3, 0, 5, T0), Some(&A)),
                400,
            ),
        ];
        for (what, req, code) in cases {
            let h = w.handle(&req, at(0));
            assert_eq!(h.response.status, code, "{what}");
            assert!(h.response.signature.is_none(), "{what}");
            assert!(h.log.is_some(), "{what} is logged");
            assert_eq!(status(&w, "alpha", at(0)).highest_term, 0, "{what}");
            assert!(!dir.join("alpha.json").exists(), "{what}");
        }
        // None of them used up the sequence number: the genuine request still goes through.
        let a = answer(&w.handle(&post(&good, Some(&A)), at(0)), &A);
        assert!(a.granted);
        // Now the same request again is a replay.
        let h = w.handle(&post(&good, Some(&A)), at(1));
        assert_eq!(h.response.status, 409);
        let older = body("alpha", Op::Claim, 1, 0, 4, T0);
        assert_eq!(
            w.handle(&post(&older, Some(&A)), at(1)).response.status,
            409
        );
        let s = status(&w, "alpha", at(1));
        assert_eq!((s.highest_term, s.owner), (1, Some(1)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoints_and_methods() {
        let dir = scratch("routes");
        let w = Witness::open(&config(&dir), at(0)).unwrap();
        let get = |path: &str, query: Option<&str>| http::Request {
            method: Method::Get,
            path: path.into(),
            query: query.map(str::to_string),
            signature: None,
            body: Vec::new(),
        };
        assert_eq!(w.handle(&get("/", None), at(0)).response.status, 404);
        assert_eq!(
            w.handle(&get("/v1/claim", None), at(0)).response.status,
            405
        );
        assert_eq!(
            w.handle(&get("/v1/status", None), at(0)).response.status,
            400
        );
        assert_eq!(
            w.handle(&get("/v1/status", Some("array=zz")), at(0))
                .response
                .status,
            404
        );
        let s = w.handle(&get("/v1/status", Some("x=1&array=alpha")), at(0));
        assert_eq!(s.response.status, 200);
        let text = String::from_utf8(s.response.body).unwrap();
        assert!(!text.contains("a1a1"), "no key in status: {text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_then_the_other_node_and_restart_keeps_the_term() {
        let dir = scratch("restart");
        let w = Witness::open(&config(&dir), at(0)).unwrap();
        answer(
            &w.handle(
                &post(&body("alpha", Op::Claim, 1, 0, 1, T0), Some(&A)),
                at(0),
            ),
            &A,
        );
        let r = answer(
            &w.handle(
                &post(&body("alpha", Op::Release, 1, 1, 2, T0), Some(&A)),
                at(1),
            ),
            &A,
        );
        assert_eq!((r.granted, r.reason.as_str()), (true, "released"));
        let g = answer(
            &w.handle(
                &post(&body("alpha", Op::Claim, 2, 1, 1, T0), Some(&A)),
                at(2),
            ),
            &A,
        );
        assert_eq!((g.granted, g.term), (true, 2));
        drop(w);
        // Restarted long after the lease would have run out: it still waits a full lease.
        let w = Witness::open(&config(&dir), at(0)).unwrap();
        let s = status(&w, "alpha", at(0));
        assert_eq!((s.highest_term, s.owner, s.lease_ms), (2, Some(2), 10_000));
        let n = answer(
            &w.handle(
                &post(&body("alpha", Op::Claim, 1, 2, 3, T0), Some(&A)),
                at(9_999),
            ),
            &A,
        );
        assert!(!n.granted);
        let n = answer(
            &w.handle(
                &post(&body("alpha", Op::Claim, 1, 2, 4, T0 + 10_000), Some(&A)),
                at(10_000),
            ),
            &A,
        );
        assert_eq!((n.granted, n.term), (true, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
