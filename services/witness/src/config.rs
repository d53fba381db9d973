//! The witness's own configuration file (witness.toml): where it listens, where it keeps
//! its state, the lease, and the arrays it serves with their cluster keys. Every mistake
//! is reported with file, line, column and key, and a file with any mistake is refused
//! whole, like star.toml.

use serde::Deserialize;
use star_core::config_error::{read_config_file, ConfigError, ConfigErrors};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Why 10 s: the lease is how long a dead owner keeps the witness from granting to the
/// other node. It must run out well before the standby would take over anyway (star.toml's
/// peer_dead + 2 × watchdog, 30 s by default), so the witness never lengthens a failover;
/// and it must outlast several renewals (a controller renews every heartbeat interval,
/// 0.5 s) so that a loaded or briefly paused owner does not lose its term to a hiccup.
/// corosync-qdevice uses the same 10 s for its witness timeout.
pub const DEFAULT_LEASE_MS: u64 = 10_000;
/// Why 30 s: controllers keep time with SNTP, which holds them within a second; 30 s is
/// wide enough for a node whose time is not yet synchronized after boot, and narrow
/// enough that a captured request is useless half a minute later.
pub const DEFAULT_MAX_SKEW_MS: u64 = 30_000;

/// Bytes of a cluster key at least, as star.toml requires (`head -c 32 /dev/urandom`).
pub const MIN_KEY_LEN: usize = 32;
/// And at most: anything longer is a paste gone wrong.
pub const MAX_KEY_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub lease: Duration,
    pub max_skew: Duration,
    pub arrays: Vec<Array>,
    /// The state directory does not survive a restart (the appliance's RAM root): a
    /// missing state file then means lost state, not a first start, and no term is
    /// granted until a lease has passed, so that any lease granted before has run out.
    pub volatile_state: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Array {
    pub name: String,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Array {
    // Keys stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("name", &self.name)
            .field("key", &"<secret>")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Spanned<String>,
    state_dir: Spanned<String>,
    lease_ms: Option<Spanned<u64>>,
    max_skew_ms: Option<Spanned<u64>>,
    #[serde(default)]
    volatile_state: bool,
    #[serde(default)]
    array: Vec<RawArray>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArray {
    name: Spanned<String>,
    key: Spanned<String>,
}

/// Same rule as star.toml's array.name, so any array's name fits.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=32).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

struct At<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl At<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, column)
    }

    fn fail(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: Some(key.to_string()),
            message: message.into(),
        });
    }

    fn millis(
        &mut self,
        v: &Option<Spanned<u64>>,
        key: &str,
        default: u64,
        range: Range<u64>,
    ) -> Duration {
        let Some(v) = v else {
            return Duration::from_millis(default);
        };
        if !range.contains(v.get_ref()) {
            self.fail(
                v.span(),
                key,
                format!("must be between {} and {}", range.start, range.end - 1),
            );
        }
        Duration::from_millis(*v.get_ref())
    }
}

impl Config {
    /// The witness as the appliance runs it, on node 3: the one array of its star.toml,
    /// listening where its `[witness] url` says, its state in `state_dir` on the RAM root.
    pub fn from_node_config(
        node: &star_core::node_config::NodeConfig,
        state_dir: &Path,
    ) -> Result<Config, String> {
        let w = node
            .witness
            .as_ref()
            .ok_or("star.toml has no [witness] url: where should the witness listen?")?;
        let ip: std::net::IpAddr = w.host.parse().map_err(|_| {
            format!(
                "witness.url: the witness listens on an address, not a name ({:?})",
                w.host
            )
        })?;
        Ok(Config {
            listen: SocketAddr::new(ip, w.port),
            state_dir: state_dir.to_path_buf(),
            lease: Duration::from_millis(DEFAULT_LEASE_MS),
            max_skew: Duration::from_millis(DEFAULT_MAX_SKEW_MS),
            arrays: vec![Array {
                name: node.array_name.clone(),
                key: node.cluster_key.clone(),
            }],
            volatile_state: true,
        })
    }

    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = read_config_file(path, "the witness configuration")?;
        Config::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
        let mut at = At {
            file,
            text,
            errors: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let message = e.message().trim().to_string();
                let key = ["unknown field `", "missing field `", "duplicate key `"]
                    .iter()
                    .find_map(|p| message.strip_prefix(p))
                    .and_then(|rest| rest.split('`').next())
                    .unwrap_or("witness.toml")
                    .to_string();
                at.fail(span, &key, message);
                return Err(ConfigErrors(at.errors));
            }
        };
        let listen = match raw.listen.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                at.fail(
                    raw.listen.span(),
                    "listen",
                    format!(
                        "{:?} is not an address and port, like \"0.0.0.0:7400\" or \"[::]:7400\"",
                        raw.listen.get_ref()
                    ),
                );
                SocketAddr::from(([0, 0, 0, 0], 0))
            }
        };
        let state_dir = PathBuf::from(raw.state_dir.get_ref());
        if !state_dir.is_absolute() {
            at.fail(
                raw.state_dir.span(),
                "state_dir",
                "must be an absolute path, like \"/var/lib/star-witness\"",
            );
        }
        // At least 200 ms so the witness can answer a renewal in time; at most 10 min
        // because a longer lease only delays a failover through the witness.
        let lease = at.millis(&raw.lease_ms, "lease_ms", DEFAULT_LEASE_MS, 200..600_001);
        let max_skew = at.millis(
            &raw.max_skew_ms,
            "max_skew_ms",
            DEFAULT_MAX_SKEW_MS,
            1_000..300_001,
        );
        let mut arrays = Vec::new();
        let mut names = BTreeSet::new();
        if raw.array.is_empty() {
            at.fail(
                0..0,
                "array",
                "at least one [[array]] with name and key is needed",
            );
        }
        for a in &raw.array {
            let name = a.name.get_ref().clone();
            if !valid_name(&name) {
                at.fail(
                    a.name.span(),
                    "array.name",
                    format!("{name:?}: lowercase letters, digits and '-', starting with a letter, at most 32 characters (star.toml's array.name)"),
                );
            } else if !names.insert(name.clone()) {
                at.fail(
                    a.name.span(),
                    "array.name",
                    format!("array {name:?} is listed twice"),
                );
            }
            let key = star_core::cluster_auth::from_hex(a.key.get_ref().trim())
                .filter(|k| (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&k.len()));
            match key {
                Some(key) => arrays.push(Array { name, key }),
                None => at.fail(
                    a.key.span(),
                    "array.key",
                    "must be the array's cluster.key from its star.toml: 64 hex digits (32 bytes), or up to 128",
                ),
            }
        }
        if at.errors.is_empty() {
            Ok(Config {
                listen,
                state_dir,
                lease,
                max_skew,
                arrays,
                volatile_state: raw.volatile_state,
            })
        } else {
            Err(ConfigErrors(at.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "5f0c3a1e9b7d2c4a6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809";

    fn example() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("witness.example.toml"))
            .unwrap()
    }

    fn refused(text: &str) -> Vec<String> {
        Config::from_toml(text, Path::new("witness.toml"))
            .expect_err("must be refused")
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn minimal() -> String {
        format!("listen = \"127.0.0.1:0\"\nstate_dir = \"/tmp/w\"\n\n[[array]]\nname = \"a\"\nkey = \"{KEY}\"\n")
    }

    #[test]
    fn the_example_is_valid() {
        let c = Config::from_toml(&example(), Path::new("witness.example.toml")).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7400".parse().unwrap());
        assert_eq!(c.lease, Duration::from_millis(DEFAULT_LEASE_MS));
        assert_eq!(c.arrays.len(), 2);
        assert_eq!(c.arrays[0].name, "star-lab");
        assert!(
            !format!("{c:?}").contains("5f0c"),
            "the key is never printed"
        );
    }

    #[test]
    fn the_unit_keeps_the_state_where_the_example_says_and_is_hardened() {
        let unit = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("star-witness.service"),
        )
        .unwrap();
        let c = Config::from_toml(&example(), Path::new("witness.example.toml")).unwrap();
        let dir = c
            .state_dir
            .strip_prefix("/var/lib")
            .unwrap()
            .display()
            .to_string();
        assert!(unit.contains(&format!("\nStateDirectory={dir}\n")), "{dir}");
        for line in [
            "Type=notify",
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
            "PrivateDevices=yes",
            "Restart=always",
        ] {
            assert!(unit.contains(line), "{line}");
        }
    }

    #[test]
    fn defaults() {
        let c = Config::from_toml(&minimal(), Path::new("w")).unwrap();
        assert_eq!(c.lease, Duration::from_secs(10));
        assert_eq!(c.max_skew, Duration::from_secs(30));
        assert_eq!(c.arrays[0].key[0], 0x5f);
    }

    #[test]
    fn mistakes_name_line_and_key() {
        assert_eq!(
            refused(&minimal().replace(KEY, &KEY[2..])),
            vec!["witness.toml:6:7: array.key: must be the array's cluster.key from its star.toml: 64 hex digits (32 bytes), or up to 128"]
        );
        assert_eq!(
            refused(&minimal().replace("127.0.0.1:0", "localhost")),
            vec!["witness.toml:1:10: listen: \"localhost\" is not an address and port, like \"0.0.0.0:7400\" or \"[::]:7400\""]
        );
        assert_eq!(
            refused(&minimal().replace("/tmp/w", "var/w")),
            vec!["witness.toml:2:13: state_dir: must be an absolute path, like \"/var/lib/star-witness\""]
        );
        assert_eq!(
            refused(&format!("lease_ms = 50\n{}", minimal())),
            vec!["witness.toml:1:12: lease_ms: must be between 200 and 600000"]
        );
        assert_eq!(
            refused(&format!(
                "{}\n[[array]]\nname = \"a\"\nkey = \"{KEY}\"\n",
                minimal()
            )),
            vec!["witness.toml:9:8: array.name: array \"a\" is listed twice"]
        );
        assert_eq!(
            refused(&minimal().replace("name = \"a\"", "name = \"Big\"")),
            vec!["witness.toml:5:8: array.name: \"Big\": lowercase letters, digits and '-', starting with a letter, at most 32 characters (star.toml's array.name)"]
        );
        let e = refused(&format!("colour = 1\n{}", minimal()));
        assert!(
            e[0].starts_with("witness.toml:1:1: colour: unknown field `colour`"),
            "{e:?}"
        );
        let e = refused("listen = \"127.0.0.1:1\"\n");
        assert!(
            e[0].contains("state_dir: missing field `state_dir`"),
            "{e:?}"
        );
        assert_eq!(
            refused("listen = \"127.0.0.1:1\"\nstate_dir = \"/w\"\n"),
            vec!["witness.toml:1:1: array: at least one [[array]] with name and key is needed"]
        );
    }
}
