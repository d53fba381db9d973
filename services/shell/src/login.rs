//! The console login's decisions, apart from the terminal: who may log in (the one
//! administrator, `admin`, with star.toml's password hash), how long to wait after a
//! failure, and what the banner says. There is no default password: without one in
//! star.toml every login is refused and the banner says how to set one.

use star_core::node_config::NodeConfig;
use std::path::Path;
use std::time::Duration;

/// The one account of the appliance.
pub const ADMIN: &str = "admin";

/// What the login knows from the star.toml in force, read again at every attempt (the
/// configuration may arrive after the prompt is shown).
#[derive(Debug, Clone, PartialEq)]
pub enum Setup {
    Ready {
        hash: String,
        idle_timeout: Option<Duration>,
        array: String,
    },
    /// Logins are refused; the text says why and what to do.
    Refused(String),
}

const HOW_TO_SET: &str =
    "set [admin] password_hash in star.toml (make one with `mkpasswd -m yescrypt`), \
or boot with star.rescue on the kernel command line for a recovery shell";

pub fn setup_from(path: &Path) -> Setup {
    if !path.exists() {
        return Setup::Refused(format!(
            "no configuration is in force ({} is missing: star-config has not finished, or \
             refused star.toml; its messages are above on this console). Logins are refused: {HOW_TO_SET}.",
            path.display()
        ));
    }
    match NodeConfig::load(path) {
        Ok(c) => match c.admin_password_hash {
            Some(hash) => Setup::Ready {
                hash,
                idle_timeout: c.console_idle_timeout,
                array: c.array_name,
            },
            None => Setup::Refused(format!(
                "no administrator password is configured, and there is no default. To log in, {HOW_TO_SET}."
            )),
        },
        Err(e) => Setup::Refused(format!("{}: {e}. Logins are refused: {HOW_TO_SET}.", path.display())),
    }
}

/// The text above the prompt.
pub fn banner(host: &str, setup: &Setup) -> String {
    let mut t = format!(
        "\nSTAR see-through array {} - {host}",
        env!("CARGO_PKG_VERSION")
    );
    match setup {
        Setup::Ready { array, .. } => {
            t.push_str(&format!(" of array {array}\nLog in as {ADMIN}.\n"))
        }
        Setup::Refused(why) => t.push_str(&format!("\nLOGIN DISABLED: {why}\n")),
    }
    t
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Granted,
    /// The user or the password is wrong (which one is not said).
    Incorrect,
    /// No login is possible; the text says why.
    Disabled(String),
}

pub fn check(user: &str, password: &str, setup: &Setup) -> Verdict {
    match setup {
        Setup::Refused(why) => Verdict::Disabled(why.clone()),
        Setup::Ready { hash, .. } => {
            // The hash is computed for a wrong user too, so that timing does not tell
            // which of the two was wrong.
            let matches = star_core::password::verify(password, hash);
            match matches {
                Ok(true) if user == ADMIN => Verdict::Granted,
                Ok(_) => Verdict::Incorrect,
                Err(e) => Verdict::Disabled(format!("{e}: {HOW_TO_SET}")),
            }
        }
    }
}

/// The pause after the `failures`-th failure in a row: 1, 2, 4, 8, 16, then 30 s each,
/// so that guessing over a serial line takes years, while one typo costs a second.
pub fn failure_delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_secs((1u64 << (n - 1).min(5)).min(30)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAR: &str = "$6$starlab$vr5IPH4KPUmQIjEGGSfpaxG92vwT0DYW1Ekf8oL83OiUZnczRV7LHUaFdp0GAmwkZdgEGXEAPhRMF.Sgg2XAs/";

    fn ready() -> Setup {
        Setup::Ready {
            hash: STAR.into(),
            idle_timeout: Some(Duration::from_secs(900)),
            array: "star-lab".into(),
        }
    }

    #[test]
    fn only_admin_with_the_right_password_gets_in() {
        assert_eq!(check("admin", "star", &ready()), Verdict::Granted);
        assert_eq!(check("admin", "Star", &ready()), Verdict::Incorrect);
        assert_eq!(check("root", "star", &ready()), Verdict::Incorrect);
        assert_eq!(check("admin", "", &ready()), Verdict::Incorrect);
    }

    #[test]
    fn without_a_password_nobody_gets_in_and_the_banner_says_how() {
        let dir = std::env::temp_dir().join(format!("star-login-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = setup_from(&dir.join("star.toml"));
        assert!(matches!(&missing, Setup::Refused(w) if w.contains("is missing")));
        let lab = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/examples/lab-ctl1.star.toml"),
        )
        .unwrap();
        let start = lab.find("[admin]").unwrap();
        let end = start + lab[start..].find("\n\n").unwrap();
        let path = dir.join("star.toml");
        std::fs::write(&path, format!("{}{}", &lab[..start], &lab[end..])).unwrap();
        let setup = setup_from(&path);
        assert_eq!(
            check("admin", "star", &setup),
            Verdict::Disabled(match &setup {
                Setup::Refused(w) => w.clone(),
                _ => unreachable!(),
            })
        );
        let b = banner("ctl1", &setup);
        assert!(
            b.contains("LOGIN DISABLED: no administrator password is configured"),
            "{b}"
        );
        assert!(b.contains("mkpasswd") && b.contains("star.rescue"), "{b}");
        std::fs::write(&path, &lab).unwrap();
        let setup = setup_from(&path);
        assert_eq!(check("admin", "star", &setup), Verdict::Granted);
        assert!(banner("ctl1", &setup).contains("ctl1 of array star-lab"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_cost_more_and_more_time() {
        let delays: Vec<u64> = (0..9).map(|n| failure_delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(failure_delay(u32::MAX), Duration::from_secs(30));
    }
}
