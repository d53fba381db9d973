//! The real star-witness binary on 127.0.0.1, driven through the library's client: two
//! arrays at once, a grant, a refusal while the owner renews, a grant after the lease ran
//! out, every kind of bad request refused with the state unchanged, and a kill -9 and
//! restart on the same state directory.

use star_witness::client::{self, Error, Stamp};
use star_witness::http;
use star_witness::message::{Op, Request, Status};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STAR_WITNESS: &str = env!("CARGO_BIN_EXE_star-witness");
const ALPHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const BETA: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const LEASE: Duration = Duration::from_millis(1500);
const TIMEOUT: Duration = Duration::from_secs(5);

fn key(hex: &str) -> Vec<u8> {
    star_core::cluster_auth::from_hex(hex).unwrap()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Running {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Running {
    fn start(config: &Path, log: &Path) -> Running {
        let mut child = Command::new(STAR_WITNESS)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("star-witness: listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "{line:?}; log: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            });
        Running {
            child,
            url: format!("http://{addr}"),
            log: log.to_path_buf(),
        }
    }

    fn kill_9(mut self) {
        // Child::kill is SIGKILL: no chance to write anything on the way out.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn status(&self, array: &str) -> Status {
        let addr = self.url.strip_prefix("http://").unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /v1/status?array={array} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        )
        .unwrap();
        let r = http::read_response(&mut s).unwrap();
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).unwrap()
    }

    fn raw(&self, request: &[u8]) -> http::Response {
        let mut s = TcpStream::connect(self.url.strip_prefix("http://").unwrap()).unwrap();
        s.write_all(request).unwrap();
        http::read_response(&mut s).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- star-witness log\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// One node of one array: its key, incarnation and sequence.
struct Node {
    array: &'static str,
    key: Vec<u8>,
    node: u8,
    incarnation: u64,
    seq: u64,
}

impl Node {
    fn new(array: &'static str, key_hex: &str, node: u8) -> Node {
        Node {
            array,
            key: key(key_hex),
            node,
            incarnation: client::random_incarnation().unwrap(),
            seq: 0,
        }
    }

    fn request(&mut self, op: Op, term: u64) -> Request {
        self.seq += 1;
        Request {
            array: self.array.into(),
            op,
            node: self.node,
            term,
            incarnation: self.incarnation,
            seq: self.seq,
            time_ms: unix_ms(),
        }
    }

    fn claim(&mut self, w: &Running, term: u64) -> star_witness::message::Answer {
        self.seq += 1;
        let stamp = Stamp {
            incarnation: self.incarnation,
            seq: self.seq,
        };
        client::claim(
            &w.url, self.array, &self.key, self.node, term, stamp, TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("node {} claim: {e}", self.node))
    }
}

fn rejected(r: Result<star_witness::message::Answer, Error>) -> u16 {
    match r {
        Err(Error::Rejected { status, .. }) => status,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn the_witness_grants_refuses_and_survives_kill_9() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("witness-process-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("witness.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nlease_ms = {}\n\n[[array]]\nname = \"alpha\"\nkey = \"{ALPHA}\"\n\n[[array]]\nname = \"beta\"\nkey = \"{BETA}\"\n",
            dir.join("state").display(),
            LEASE.as_millis()
        ),
    )
    .unwrap();
    let log = dir.join("witness.log");
    let w = Running::start(&config, &log);

    // A second witness on the same state is refused.
    let second = Command::new(STAR_WITNESS)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another star-witness"));

    // Two arrays at once, each its own terms.
    let mut a1 = Node::new("alpha", ALPHA, 1);
    let mut a2 = Node::new("alpha", ALPHA, 2);
    let mut b2 = Node::new("beta", BETA, 2);
    let g = a1.claim(&w, 0);
    assert_eq!(
        (g.granted, g.term, g.owner, g.reason.as_str()),
        (true, 1, Some(1), "granted")
    );
    let g = b2.claim(&w, 0);
    assert_eq!((g.granted, g.term, g.owner), (true, 1, Some(2)));

    // Node 2 is refused as long as node 1 renews, for well over one lease.
    let started = Instant::now();
    while started.elapsed() < LEASE * 2 {
        let r = a2.claim(&w, 0);
        assert_eq!(
            (r.granted, r.owner, r.reason.as_str()),
            (false, Some(1), "held_by_other")
        );
        let k = a1.claim(&w, 1);
        assert_eq!((k.granted, k.term, k.reason.as_str()), (true, 1, "renewed"));
        sleep(LEASE / 5);
    }

    // Bad requests: refused, logged, nothing changes.
    let before = w.status("alpha");
    assert_eq!((before.highest_term, before.owner), (1, Some(1)));
    let req = a2.request(Op::Claim, 5);
    assert_eq!(
        rejected(client::send(&w.url, &key(BETA), &req, TIMEOUT)),
        401,
        "badly signed"
    );
    let body = a2.request(Op::Claim, 5).encode();
    let mut unsigned = format!(
        "POST /v1/claim HTTP/1.1\r\nHost: w\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    unsigned.extend_from_slice(&body);
    assert_eq!(w.raw(&unsigned).status, 401, "unsigned");
    let mut stale = a2.request(Op::Claim, 5);
    stale.time_ms -= 60_000;
    assert_eq!(
        rejected(client::send(&w.url, &a2.key, &stale, TIMEOUT)),
        403,
        "stale"
    );
    let accepted = a1.request(Op::Claim, 1);
    assert!(
        client::send(&w.url, &a1.key, &accepted, TIMEOUT)
            .unwrap()
            .granted
    );
    assert_eq!(
        rejected(client::send(&w.url, &a1.key, &accepted, TIMEOUT)),
        409,
        "replayed"
    );
    let after = w.status("alpha");
    assert_eq!(
        (after.highest_term, after.owner, after.owner_term),
        (1, Some(1), Some(1))
    );
    assert_eq!(w.status("beta").highest_term, 1);
    let logged = std::fs::read_to_string(&log).unwrap();
    for why in ["bad signature", "unsigned", "stale", "replayed"] {
        assert!(logged.contains(why), "{why} not logged:\n{logged}");
    }

    // Node 1 goes quiet: once its lease has run out, node 2 gets term 2.
    sleep(LEASE + Duration::from_millis(200));
    let g = a2.claim(&w, 1);
    assert_eq!((g.granted, g.term, g.owner), (true, 2, Some(2)));
    let r = a1.claim(&w, 1);
    assert_eq!((r.granted, r.term, r.owner), (false, 2, Some(2)));

    // Node 2's lease runs out too; then the witness is killed and started again.
    sleep(LEASE + Duration::from_millis(200));
    w.kill_9();
    let w = Running::start(&config, &log);
    // The witness cannot know the lease had run out: it gives node 2 a full lease.
    let s = w.status("alpha");
    assert_eq!(
        (s.highest_term, s.owner, s.owner_term),
        (2, Some(2), Some(2))
    );
    assert!(s.lease_ms > LEASE.as_millis() as u64 / 2, "{s:?}");
    let r = a1.claim(&w, 2);
    assert_eq!(
        (r.granted, r.owner, r.reason.as_str()),
        (false, Some(2), "held_by_other")
    );
    sleep(LEASE + Duration::from_millis(200));
    let g = a1.claim(&w, 2);
    assert_eq!(
        (g.granted, g.term, g.owner),
        (true, 3, Some(1)),
        "never term 2 again"
    );
    assert_eq!(w.status("beta").highest_term, 1);
    drop(w);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The appliance's way: the witness of node 3 from its star.toml, and nothing on a
/// controller.
#[test]
fn as_the_appliance_runs_it_from_star_toml() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("witness-node-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/examples");

    let controller = Command::new(STAR_WITNESS)
        .arg("--node-config")
        .arg(examples.join("lab-ctl1.star.toml"))
        .output()
        .unwrap();
    assert!(controller.status.success());
    assert!(String::from_utf8_lossy(&controller.stderr).contains("this node is controller 1"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(examples.join("lab-witness.star.toml"))
        .unwrap()
        .replace(
            "url = \"http://0.0.0.0:7400\"",
            &format!("url = \"http://127.0.0.1:{port}\""),
        );
    assert!(text.contains(&format!("127.0.0.1:{port}")));
    let star_toml = dir.join("star.toml");
    std::fs::write(&star_toml, text).unwrap();
    let log = dir.join("witness.log");
    let mut child = Command::new(STAR_WITNESS)
        .arg("--node-config")
        .arg(&star_toml)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let w = Running {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log: log.clone(),
    };
    assert_eq!(
        line.trim(),
        format!("star-witness: listening on 127.0.0.1:{port}")
    );
    // The lab's key from star.toml signs; its state is new, so nothing is granted until
    // a lease (10 s by default) has passed: it answers like a witness that is down.
    let lab_key = "5f0c3a1e9b7d2c4a6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809";
    let mut n = Node::new("star-lab", lab_key, 1);
    n.seq += 1;
    let stamp = Stamp {
        incarnation: n.incarnation,
        seq: n.seq,
    };
    assert_eq!(
        rejected(client::claim(
            &w.url, "star-lab", &n.key, 1, 1, stamp, TIMEOUT
        )),
        503
    );
    assert_eq!(w.status("star-lab").highest_term, 0);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("no saved state"));
}
