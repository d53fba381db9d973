//! star-login and the star shell on a real terminal (a pseudo-terminal pair): what an
//! operator sees on the serial console, minus the machine. The services' sockets are
//! absent here, so the commands that need them must say so.

use nix::pty::{openpty, OpenptyResult};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../board/examples")
            .join(name),
    )
    .unwrap()
}

struct Console {
    child: Child,
    master: std::fs::File,
    seen: Arc<Mutex<String>>,
}

impl Console {
    /// star-login on a new pty, as init starts it on a console.
    fn login(config: &Path) -> Console {
        Console::spawn(
            env!("CARGO_BIN_EXE_star-login"),
            &[
                "--config",
                config.to_str().unwrap(),
                "--shell",
                env!("CARGO_BIN_EXE_star"),
            ],
            &[],
        )
    }

    /// `program` on the slave side of a new pty, its session's controlling terminal.
    fn spawn(program: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Console {
        let OpenptyResult { master, slave } = openpty(None, None).unwrap();
        let slave_fd = |s: &OwnedFd| Stdio::from(s.try_clone().unwrap());
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(slave_fd(&slave))
            .stdout(slave_fd(&slave))
            .stderr(slave_fd(&slave))
            // No services here: every socket points nowhere.
            .env("STAR_INIT_SOCKET", "/nonexistent/init.sock")
            .env("STAR_HEARTBEAT_SOCKET", "/nonexistent/heartbeat.sock")
            .env("STAR_TARGET_SOCKET", "/nonexistent/target.sock")
            .env("STAR_TAKEOVER_SOCKET", "/nonexistent/takeover.sock")
            .env("TERM", "vt220");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        // The pty becomes the controlling terminal of a new session, as on a console.
        let slave_raw = slave.as_raw_fd();
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(slave_raw, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(master);
        let seen = Arc::new(Mutex::new(String::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Console {
            child,
            master,
            seen,
        }
    }

    fn seen(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    fn wait_for_count(&self, needle: &str, count: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.seen().matches(needle).count() >= count {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no {needle:?} (x{count}) within {limit:?}:\n{}",
            self.seen()
        );
    }

    fn wait_for(&self, needle: &str, limit: Duration) -> Duration {
        self.wait_for_count(needle, 1, limit)
    }

    fn type_line(&mut self, line: &str) {
        self.master
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("star-console-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_wrong_password_waits_and_is_refused_the_right_one_gets_the_shell() {
    let dir = scratch("login");
    let config = dir.join("star.toml");
    std::fs::write(&config, example("lab-ctl1.star.toml")).unwrap();
    let mut c = Console::login(&config);
    c.wait_for("login: ", LIMIT);
    assert!(c.seen().contains("of array star-lab"), "{}", c.seen());
    c.type_line("admin");
    c.wait_for("Password: ", LIMIT);
    c.type_line("not-the-password");
    c.wait_for("Login incorrect", LIMIT);
    // The password is never echoed.
    assert!(!c.seen().contains("not-the-password"), "{}", c.seen());
    // A second failure in a row costs 2 s before the answer.
    c.wait_for_count("login: ", 2, LIMIT);
    c.type_line("root");
    c.wait_for_count("Password: ", 2, LIMIT);
    let typed = Instant::now();
    c.type_line("star");
    c.wait_for_count("Login incorrect", 2, LIMIT);
    assert!(
        typed.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        typed.elapsed()
    );

    c.wait_for_count("login: ", 3, LIMIT);
    c.type_line("admin");
    c.wait_for_count("Password: ", 3, LIMIT);
    c.type_line("star");
    c.wait_for("`help` lists the commands", LIMIT);
    c.wait_for("> ", LIMIT);
    c.type_line("help lun");
    c.wait_for("lun create NAME SIZE", LIMIT);
    c.type_line("config validate");
    c.wait_for("valid: array star-lab, node ctl1 (controller 1)", LIMIT);
    // A command whose service is not there says which one and where to look.
    c.type_line("services");
    c.wait_for("is star-init running?", LIMIT);
    c.type_line("lun list");
    c.wait_for("no shared disk found", LIMIT);
    c.type_line("logout");
    c.wait_for("logged out", LIMIT);
    let status = c.child.wait().unwrap();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_password_in_star_toml_login_is_refused_and_the_banner_says_how() {
    let dir = scratch("nopass");
    let lab = example("lab-ctl1.star.toml");
    let start = lab.find("[admin]").unwrap();
    let end = start + lab[start..].find("\n\n").unwrap();
    let config = dir.join("star.toml");
    std::fs::write(&config, format!("{}{}", &lab[..start], &lab[end..])).unwrap();
    let mut c = Console::login(&config);
    c.wait_for(
        "LOGIN DISABLED: no administrator password is configured",
        LIMIT,
    );
    assert!(c.seen().contains("mkpasswd"), "{}", c.seen());
    c.type_line("admin");
    c.wait_for("Password: ", LIMIT);
    c.type_line("star");
    c.wait_for("Login refused", LIMIT);
    assert!(
        !c.seen().contains("`help` lists the commands"),
        "{}",
        c.seen()
    );
    // The password set while the prompt is up counts at the next attempt.
    std::fs::write(&config, &lab).unwrap();
    c.wait_for_count("login: ", 2, LIMIT);
    c.type_line("admin");
    c.wait_for_count("Password: ", 2, LIMIT);
    c.type_line("star");
    c.wait_for("`help` lists the commands", LIMIT);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_idle_session_is_logged_out() {
    // The shell as star-login starts it, with the timeout star-login passes from
    // star.toml's idle_timeout_min (in seconds, so that the test need not wait minutes).
    let mut c = Console::spawn(
        env!("CARGO_BIN_EXE_star"),
        &["shell"],
        &[("STAR_IDLE_TIMEOUT_SEC", "2")],
    );
    c.wait_for("`help` lists the commands", LIMIT);
    c.wait_for("> ", LIMIT);
    let since = Instant::now();
    c.type_line("help status");
    c.wait_for("the array at a glance", LIMIT);
    c.wait_for("idle for 2.0 s: logged out", LIMIT);
    // Counted from the last command, not from the start of the session.
    assert!(
        since.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        since.elapsed()
    );
    let status = c.child.wait().unwrap();
    assert!(status.success(), "{status}");
}
