//! The service: star-takeover's control socket (/run/star/takeover.sock), one JSON line in,
//! one out (star-core's `TakeoverRequest` and `TakeoverReply`), one request at a time, so
//! an acquire and a release never overlap.
//!
//! It changes nothing on its own: at start it only looks (for STATUS=), and then does what
//! star-heartbeat (or an operator) asks. What an acquire leaves for later runs on a thread
//! of its own, guarded by an epoch that every acquire and release advances: a release
//! stops the second burst of the acquire before it, even one already under way.

use crate::announce::Guard;
use crate::method::{FloatingMethod, Later};
use star_core::heartbeat_status::{TakeoverAction, TakeoverReply, TakeoverRequest, TakeoverStatus};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A client has this long to send its line and take the reply: one that stalls must not
/// keep star-heartbeat's acquire waiting.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

fn log(text: &str) {
    println!("star-takeover: {text}");
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves plain data behind, still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The number of the latest acquire or release.
#[derive(Default)]
pub struct Epoch(Mutex<u64>);

impl Epoch {
    /// A new action begins: whatever an older one left to do stops at its next packet.
    pub fn begin(&self) -> u64 {
        let mut n = lock(&self.0);
        *n += 1;
        *n
    }
}

/// The guard of the work left by action `mine`.
pub struct EpochGuard {
    epoch: Arc<Epoch>,
    mine: u64,
}

impl EpochGuard {
    pub fn new(epoch: Arc<Epoch>, mine: u64) -> EpochGuard {
        EpochGuard { epoch, mine }
    }
}

impl Guard for EpochGuard {
    fn run_if_current(&self, step: &mut dyn FnMut()) -> bool {
        // Held while the step runs: `begin` waits for a packet under way, and no packet
        // starts after it.
        let n = lock(&self.epoch.0);
        if *n != self.mine {
            return false;
        }
        step();
        true
    }
}

/// The announcements of the latest acquire, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcements {
    pub epoch: u64,
    pub first: String,
    pub second: Second,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Second {
    /// garp_repeat_after_ms = 0.
    Off,
    Due {
        at: Instant,
        what: String,
    },
    Done(Result<String, String>),
    Cancelled(String),
}

impl Announcements {
    pub fn describe(&self, now: Instant) -> String {
        let second = match &self.second {
            Second::Off => "no second burst".to_string(),
            Second::Due { at, what } => format!(
                "{what} due in {} ms",
                at.saturating_duration_since(now).as_millis()
            ),
            Second::Done(Ok(r)) => format!("second burst: {r}"),
            Second::Done(Err(e)) => format!("second burst failed: {e}"),
            Second::Cancelled(why) => format!("second burst cancelled: {why}"),
        };
        format!("first burst: {}; {second}", self.first)
    }
}

struct Last {
    action: &'static str,
    result: Result<String, String>,
    took: Duration,
    at: Instant,
}

pub struct Service {
    method: Box<dyn FloatingMethod>,
    listener: UnixListener,
    epoch: Arc<Epoch>,
    announcements: Arc<Mutex<Option<Announcements>>>,
    last: Option<Last>,
    /// star.toml, for `fence_peer`; `None`: this service fences nobody.
    node: Option<star_core::node_config::NodeConfig>,
}

impl Service {
    /// Answers `fence_peer` by `node`'s `[fencing]`.
    pub fn with_fencing(mut self, node: star_core::node_config::NodeConfig) -> Service {
        self.node = Some(node);
        self
    }

    /// Binds the socket (replacing a stale one).
    pub fn new(method: Box<dyn FloatingMethod>, socket: &Path) -> Result<Service, String> {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(socket);
        let listener =
            UnixListener::bind(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
        Ok(Service {
            method,
            listener,
            epoch: Arc::new(Epoch::default()),
            announcements: Arc::new(Mutex::new(None)),
            last: None,
            node: None,
        })
    }

    /// Tells init it is ready, then answers requests until killed.
    pub fn run(&mut self, socket: &Path) -> ! {
        let summary = self.summary();
        log(&format!("listening on {}: {summary}", socket.display()));
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Status(&summary),
            sd_notify::NotifyState::Ready,
        ]);
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.serve(stream),
                // A client that went away before it was accepted, or no descriptor left
                // for now: a moment's pause keeps a lasting failure from spinning.
                Err(e) => {
                    log(&format!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// "arp 192.0.2.100/24: held on eth0", for STATUS=.
    fn summary(&mut self) -> String {
        let head = format!("{} {}", self.method.name(), self.method.address());
        match self.method.status() {
            Ok(o) if o.held => format!("{head}: held ({})", o.observed),
            Ok(o) => format!("{head}: not held ({})", o.observed),
            Err(e) => format!("{head}: {e}"),
        }
    }

    fn serve(&mut self, stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
        let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
        let mut line = String::new();
        let limit = star_core::control::MAX_REQUEST_BYTES as u64;
        let read = BufReader::new((&stream).take(limit)).read_line(&mut line);
        let reply = match read {
            Err(e) => TakeoverReply::Error {
                message: format!("bad request: {e}"),
            },
            Ok(_) => match serde_json::from_str::<TakeoverRequest>(&line) {
                Ok(request) => self.answer(request),
                Err(e) => TakeoverReply::Error {
                    message: format!(
                        "bad request {:?}: {e} (requests: {{\"cmd\":\"acquire\"}}, \
                         {{\"cmd\":\"release\"}}, {{\"cmd\":\"status\"}})",
                        line.trim()
                    ),
                },
            },
        };
        let mut text = serde_json::to_string(&reply).unwrap_or_default();
        text.push('\n');
        let _ = (&stream).write_all(text.as_bytes());
    }

    pub fn answer(&mut self, request: TakeoverRequest) -> TakeoverReply {
        match request {
            TakeoverRequest::Acquire => self.acquire(),
            TakeoverRequest::Release => self.release(),
            TakeoverRequest::FencePeer => {
                let result = match &self.node {
                    Some(node) => crate::fence::fence_peer(node),
                    None => Err("this service fences nobody".into()),
                };
                match result {
                    Ok(message) => TakeoverReply::Done { message },
                    Err(message) => TakeoverReply::Error { message },
                }
            }
            TakeoverRequest::ResetConnections { connections } => {
                let floating = self
                    .node
                    .as_ref()
                    .and_then(|n| n.floating.as_ref())
                    .map(|f| f.address);
                let result = match floating {
                    None => Err("this service has no floating address".to_string()),
                    Some(address) => match self.method.status() {
                        Ok(o) if o.held => crate::tickle::send(&connections, address),
                        Ok(_) => Err(format!(
                            "{address} is not held here: the previous holder's clients are not this node's to reset"
                        )),
                        Err(e) => Err(format!("status: {e}")),
                    },
                };
                match result {
                    Ok(message) => {
                        log(&message);
                        TakeoverReply::Done { message }
                    }
                    Err(e) => {
                        log(&format!("reset connections: {e}"));
                        TakeoverReply::Error {
                            message: format!("reset connections: {e}"),
                        }
                    }
                }
            }
            TakeoverRequest::Status => match self.method.status() {
                Ok(o) => TakeoverReply::Status {
                    status: Box::new(self.status(o.held, o.observed)),
                },
                Err(e) => TakeoverReply::Error {
                    message: format!("status: {e}"),
                },
            },
        }
    }

    fn acquire(&mut self) -> TakeoverReply {
        let epoch = self.epoch.begin();
        let started = Instant::now();
        let result = self.method.acquire();
        let took = started.elapsed();
        let reply = match result {
            Ok(acquired) => {
                let second = match &acquired.later {
                    None => Second::Off,
                    Some(later) => Second::Due {
                        at: Instant::now() + later.after,
                        what: later.what.clone(),
                    },
                };
                // Recorded before the later work starts, which records its outcome here.
                *lock(&self.announcements) = acquired.announce.map(|first| Announcements {
                    epoch,
                    first,
                    second,
                });
                if let Some(later) = acquired.later {
                    self.schedule(epoch, later);
                }
                Ok(acquired.message)
            }
            Err(e) => {
                *lock(&self.announcements) = None;
                Err(e)
            }
        };
        self.record("acquire", reply, took)
    }

    fn release(&mut self) -> TakeoverReply {
        self.epoch.begin();
        if let Some(a) = lock(&self.announcements).as_mut() {
            if matches!(a.second, Second::Due { .. }) {
                a.second = Second::Cancelled("released".into());
            }
        }
        let started = Instant::now();
        let result = self.method.release();
        self.record("release", result, started.elapsed())
    }

    fn record(
        &mut self,
        action: &'static str,
        result: Result<String, String>,
        took: Duration,
    ) -> TakeoverReply {
        match &result {
            Ok(m) => log(&format!("{action}: {m} ({} ms)", took.as_millis())),
            Err(e) => log(&format!("{action} failed: {e} ({} ms)", took.as_millis())),
        }
        self.last = Some(Last {
            action,
            result: result.clone(),
            took,
            at: Instant::now(),
        });
        let summary = self.summary();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&summary)]);
        match result {
            Ok(message) => TakeoverReply::Done { message },
            Err(e) => TakeoverReply::Error {
                message: format!("{action}: {e}"),
            },
        }
    }

    fn schedule(&self, epoch: u64, later: Later) {
        let guard = EpochGuard::new(self.epoch.clone(), epoch);
        let announcements = self.announcements.clone();
        let spawned = std::thread::Builder::new()
            .name("later".into())
            .spawn(move || {
                std::thread::sleep(later.after);
                let what = later.what.clone();
                let result = (later.run)(&guard);
                match &result {
                    Ok(r) => log(&format!("{what}: {r}")),
                    Err(e) => log(&format!("{what} failed: {e}")),
                }
                if let Some(a) = lock(&announcements).as_mut() {
                    if a.epoch == epoch && matches!(a.second, Second::Due { .. }) {
                        a.second = Second::Done(result);
                    }
                }
            });
        if let Err(e) = spawned {
            log(&format!("the second burst could not be scheduled: {e}"));
        }
    }

    fn status(&self, held: bool, observed: String) -> TakeoverStatus {
        let now = Instant::now();
        TakeoverStatus {
            method: self.method.name().into(),
            address: self.method.address(),
            interface: self.method.interface(),
            held,
            observed,
            last_action: self.last.as_ref().map(|l| TakeoverAction {
                action: l.action.into(),
                ok: l.result.is_ok(),
                message: match &l.result {
                    Ok(m) => m.clone(),
                    Err(e) => e.clone(),
                },
                took_ms: l.took.as_millis() as u64,
                ago_ms: now.saturating_duration_since(l.at).as_millis() as u64,
            }),
            announce: lock(&self.announcements).as_ref().map(|a| a.describe(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Acquired, Observation};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A method that holds or not in memory, and counts the packets of its later work.
    struct Fake {
        held: bool,
        fail_acquire: bool,
        repeat: Option<Duration>,
        sent: Arc<AtomicU32>,
    }

    impl FloatingMethod for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn address(&self) -> String {
            "192.0.2.100/24".into()
        }
        fn interface(&self) -> Option<String> {
            Some("eth0".into())
        }
        fn acquire(&mut self) -> Result<Acquired, String> {
            if self.fail_acquire {
                return Err("eth0 is down".into());
            }
            self.held = true;
            let sent = self.sent.clone();
            Ok(Acquired {
                message: "held".into(),
                announce: Some("3 sent".into()),
                later: self.repeat.map(|after| Later {
                    after,
                    what: "second burst".into(),
                    run: Box::new(move |guard: &dyn Guard| {
                        for _ in 0..3 {
                            if !guard.run_if_current(&mut || {
                                sent.fetch_add(1, Ordering::SeqCst);
                            }) {
                                return Ok("stopped".into());
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Ok("3 sent".into())
                    }),
                }),
            })
        }
        fn release(&mut self) -> Result<String, String> {
            self.held = false;
            Ok("released".into())
        }
        fn status(&mut self) -> Result<Observation, String> {
            Ok(Observation {
                held: self.held,
                observed: if self.held { "here" } else { "nowhere" }.into(),
            })
        }
    }

    fn service(fake: Fake) -> (Service, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let s = Service::new(Box::new(fake), &dir.path.join("takeover.sock")).unwrap();
        (s, dir)
    }

    /// A directory of its own under the system's temporary directory, removed after.
    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "star-takeover-unit-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    fn fake(repeat: Option<Duration>) -> (Fake, Arc<AtomicU32>) {
        let sent = Arc::new(AtomicU32::new(0));
        (
            Fake {
                held: false,
                fail_acquire: false,
                repeat,
                sent: sent.clone(),
            },
            sent,
        )
    }

    fn status(s: &mut Service) -> TakeoverStatus {
        match s.answer(TakeoverRequest::Status) {
            TakeoverReply::Status { status } => *status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_reports_the_last_action_and_the_announcements() {
        let (f, sent) = fake(Some(Duration::from_millis(10)));
        let (mut s, _dir) = service(f);
        let st = status(&mut s);
        assert!(!st.held);
        assert_eq!(st.last_action, None);
        assert_eq!(st.announce, None);
        assert_eq!(
            s.answer(TakeoverRequest::Acquire),
            TakeoverReply::Done {
                message: "held".into()
            }
        );
        let st = status(&mut s);
        assert!(st.held);
        assert_eq!(
            (st.method.as_str(), st.address.as_str()),
            ("fake", "192.0.2.100/24")
        );
        let last = st.last_action.unwrap();
        assert_eq!((last.action.as_str(), last.ok), ("acquire", true));
        // The second burst runs on its own and its outcome shows up.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let announce = status(&mut s).announce.unwrap();
            if announce == "first burst: 3 sent; second burst: 3 sent" {
                break;
            }
            assert!(Instant::now() < deadline, "{announce}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sent.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_release_cancels_the_second_burst() {
        let (f, sent) = fake(Some(Duration::from_millis(200)));
        let (mut s, _dir) = service(f);
        s.answer(TakeoverRequest::Acquire);
        assert!(status(&mut s)
            .announce
            .unwrap()
            .starts_with("first burst: 3 sent; second burst due in "));
        s.answer(TakeoverRequest::Release);
        assert_eq!(
            status(&mut s).announce.unwrap(),
            "first burst: 3 sent; second burst cancelled: released"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            sent.load(Ordering::SeqCst),
            0,
            "no packet after the release"
        );
        assert_eq!(
            status(&mut s).announce.unwrap(),
            "first burst: 3 sent; second burst cancelled: released",
            "the stopped burst does not overwrite the cancellation"
        );
    }

    #[test]
    fn a_guard_stops_work_under_way() {
        let epoch = Arc::new(Epoch::default());
        let guard = EpochGuard::new(epoch.clone(), epoch.begin());
        let mut ran = 0;
        assert!(guard.run_if_current(&mut || ran += 1));
        epoch.begin();
        assert!(!guard.run_if_current(&mut || ran += 1));
        assert_eq!(ran, 1);
    }

    #[test]
    fn a_failed_acquire_is_an_error_reply_and_recorded() {
        let (mut f, _) = fake(None);
        f.fail_acquire = true;
        let (mut s, _dir) = service(f);
        assert_eq!(
            s.answer(TakeoverRequest::Acquire),
            TakeoverReply::Error {
                message: "acquire: eth0 is down".into()
            }
        );
        let st = status(&mut s);
        let last = st.last_action.unwrap();
        assert!(!last.ok);
        assert_eq!(last.message, "eth0 is down");
        assert_eq!(st.announce, None);
    }

    #[test]
    fn the_socket_answers_lines_and_refuses_nonsense() {
        let (f, _) = fake(None);
        let (mut s, dir) = service(f);
        let path = dir.path.join("takeover.sock");
        let client = std::thread::spawn(move || {
            let ask = |line: &str| {
                let stream = UnixStream::connect(&path).unwrap();
                (&stream).write_all(line.as_bytes()).unwrap();
                let mut reply = String::new();
                BufReader::new(&stream).read_line(&mut reply).unwrap();
                reply
            };
            vec![
                ask("{\"cmd\":\"acquire\"}\n"),
                ask("{\"cmd\":\"explode\"}\n"),
                ask("{\"cmd\":\"status\"}\n"),
            ]
        });
        for _ in 0..3 {
            let (stream, _) = s.listener.accept().unwrap();
            s.serve(stream);
        }
        let replies = client.join().unwrap();
        assert_eq!(replies[0], "{\"reply\":\"done\",\"message\":\"held\"}\n");
        assert!(
            replies[1].starts_with("{\"reply\":\"error\",\"message\":\"bad request"),
            "{}",
            replies[1]
        );
        let status: TakeoverReply = serde_json::from_str(&replies[2]).unwrap();
        assert!(
            matches!(status, TakeoverReply::Status { ref status } if status.held),
            "{status:?}"
        );
    }

    #[test]
    fn announcements_in_words() {
        let now = Instant::now();
        let a = Announcements {
            epoch: 1,
            first: "5 gratuitous ARP sent at 200 ms intervals".into(),
            second: Second::Due {
                at: now + Duration::from_millis(4200),
                what: "second burst of 5 gratuitous ARP".into(),
            },
        };
        assert_eq!(
            a.describe(now),
            "first burst: 5 gratuitous ARP sent at 200 ms intervals; second burst of 5 \
             gratuitous ARP due in 4200 ms"
        );
        let off = Announcements {
            second: Second::Off,
            ..a.clone()
        };
        assert!(off.describe(now).ends_with("; no second burst"));
        let failed = Announcements {
            second: Second::Done(Err("0 of 5 sent".into())),
            ..a
        };
        assert!(failed
            .describe(now)
            .ends_with("; second burst failed: 0 of 5 sent"));
    }
}
