//! Runs the real star-init binary as a plain supervisor (or as PID 1 of a PID namespace)
//! with real child processes, and talks to it the way an operator would.

#![allow(dead_code)]

use star_core::control::{request, Reply, Request, ServiceInfo};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const STAR_INIT: &str = env!("CARGO_BIN_EXE_star-init");

/// Long enough for a loaded CI machine; conditions are polled, never slept for.
pub const PATIENCE: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("star-init-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` until it is true or PATIENCE runs out.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

pub struct Running {
    pub child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub output: Arc<Mutex<String>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
}

/// The `[init]` table pointing the sockets into `dir`, plus `extra_init` lines.
pub fn init_table(dir: &Path, extra_init: &str) -> String {
    format!(
        "[init]\ncontrol_socket = \"{}/init.sock\"\nnotify_socket = \"{}/notify.sock\"\nshutdown_grace_sec = 2\n{extra_init}\n",
        dir.display(),
        dir.display()
    )
}

impl Running {
    /// Writes `services` (TOML, without [init]) and starts a plain supervisor on it.
    pub fn start(name: &str, services: &str) -> Running {
        Running::start_with(name, "", services)
    }

    pub fn start_with(name: &str, extra_init: &str, services: &str) -> Running {
        let dir = scratch(name);
        let services = services.replace("@DIR@", dir.to_str().unwrap());
        let config = dir.join("init.toml");
        std::fs::write(
            &config,
            format!("{}{services}", init_table(&dir, extra_init)),
        )
        .unwrap();
        let mut cmd = Command::new(STAR_INIT);
        cmd.arg("--config").arg(&config);
        Running::spawn(cmd, dir)
    }

    pub fn spawn(mut cmd: Command, dir: PathBuf) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("NOTIFY_SOCKET");
        let mut child = cmd.spawn().expect("star-init starts");
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), output.clone());
        collect(child.stderr.take().unwrap(), output.clone());
        let socket = dir.join("init.sock");
        Running {
            child,
            dir,
            socket,
            output,
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn wait_for_output(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {needle:?} in the output:\n{}", self.output());
    }

    pub fn request(&self, req: Request) -> Reply {
        eventually("the control socket", || self.socket.exists());
        request(&self.socket, &req, Duration::from_secs(10)).expect("control socket answers")
    }

    pub fn services(&self) -> Vec<ServiceInfo> {
        match self.request(Request::Services) {
            Reply::Services { services, .. } => services,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    pub fn service(&self, name: &str) -> ServiceInfo {
        self.services()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    pub fn wait_for_service(&self, name: &str, what: &str, cond: impl Fn(&ServiceInfo) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            let s = self.service(name);
            if cond(&s) {
                return;
            }
            last = Some(s);
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{name} never became {what}; last seen {last:?}\noutput:\n{}",
            self.output()
        );
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for star-init to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("star-init did not exit; output:\n{}", self.output());
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        (status, self.output())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The children of `pid` that are zombies, from /proc.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() > 1 && fields[1] == pid.to_string() && fields[0] == "Z" {
            zombies.push(child);
        }
    }
    zombies
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
        .unwrap_or(false)
}

pub fn python_has_sdnotify() {
    let ok = Command::new("python3")
        .args(["-c", "import sdnotify"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need Python's sdnotify: pip install sdnotify (.ci/run does)"
    );
}
