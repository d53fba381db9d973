//! `star config show` and `star config validate`: the star.toml in force, and the same
//! checks as boot for a file an operator is about to use.

use star_core::node_config::{NodeConfig, Role, TakeoverMethod};
use std::path::{Path, PathBuf};

/// Where star-config leaves the validated star.toml.
pub const CONFIG_IN_FORCE: &str = "/run/star/star.toml";

pub fn config_path() -> PathBuf {
    std::env::var_os("STAR_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONFIG_IN_FORCE))
}

/// The keys whose values are secrets: shown as `(hidden)` so that a screen or a pasted
/// support log does not give the cluster key or a CHAP secret away.
const SECRET_KEYS: &[&str] = &[
    "key",
    "password_hash",
    "chap_secret",
    "mutual_secret",
    "secret",
];

/// star.toml's text with every secret value replaced, comments and layout kept.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let key = trimmed
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|_| !trimmed.starts_with('#'));
        match key {
            Some(k) if SECRET_KEYS.contains(&k) => {
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!("{indent}{k} = \"(hidden)\""));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One line on a valid configuration: what it makes of this node.
pub fn summary(c: &NodeConfig) -> String {
    let mut t = format!(
        "array {}, node {} ({} {}), {} interface(s)",
        c.array_name,
        c.node.name,
        match c.node.role {
            Role::Controller => "controller",
            Role::Witness => "witness",
        },
        c.node.id,
        c.interfaces.len()
    );
    if let Some(f) = &c.floating {
        t.push_str(&format!(
            ", floating {}/{} by {}",
            f.address,
            f.prefix_len,
            match &f.method {
                TakeoverMethod::Arp => "arp",
                TakeoverMethod::AwsSecondaryIp => "aws-secondary-ip",
                TakeoverMethod::AwsRouteTable { .. } => "aws-route-table",
                TakeoverMethod::AwsRoute53 { .. } => "aws-route53",
            }
        ));
    }
    t.push_str(match &c.admin_password_hash {
        Some(_) => ", console login enabled",
        None => ", no [admin] password_hash: console login refused",
    });
    t
}

/// Runs `config show` / `config validate [FILE]`; the error carries the exit status.
pub fn run(args: &[&str], json: bool) -> Result<String, (String, u8)> {
    match args {
        ["show"] => {
            let path = config_path();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                (
                    format!(
                        "{}: {e}: no star.toml is in force (`star logs config` says why)",
                        path.display()
                    ),
                    1,
                )
            })?;
            if json {
                let value: toml::Value = toml::from_str(&redact(&text))
                    .map_err(|e| (format!("{}: {e}", path.display()), 1))?;
                return Ok(serde_json::to_string_pretty(&value).unwrap_or_default() + "\n");
            }
            Ok(format!("# {}\n{}", path.display(), redact(&text)))
        }
        ["validate"] => validate(&config_path(), json),
        ["validate", file] => validate(Path::new(file), json),
        _ => Err(("config show | config validate [FILE]".into(), 2)),
    }
}

fn validate(path: &Path, json: bool) -> Result<String, (String, u8)> {
    match NodeConfig::load(path) {
        Ok(c) if json => Ok(serde_json::json!({
            "file": path.display().to_string(), "valid": true, "summary": summary(&c)
        })
        .to_string()
            + "\n"),
        Ok(c) => Ok(format!("{}: valid: {}\n", path.display(), summary(&c))),
        Err(errors) if json => Err((
            serde_json::json!({
                "file": path.display().to_string(), "valid": false,
                "errors": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            })
            .to_string()
                + "\n",
            1,
        )),
        Err(errors) => Err((format!("{errors}\n{}: refused", path.display()), 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_ctl1() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/examples/lab-ctl1.star.toml"),
        )
        .unwrap()
    }

    #[test]
    fn secrets_are_hidden_and_everything_else_kept() {
        let text = lab_ctl1();
        let shown = redact(&text);
        assert!(!shown.contains("5f0c3a1e9b7d"), "the cluster key leaked");
        assert!(!shown.contains("$6$starlab"), "the password hash leaked");
        assert!(shown.contains("key = \"(hidden)\""));
        assert!(shown.contains("password_hash = \"(hidden)\""));
        assert_eq!(shown.lines().count(), text.lines().count());
        assert!(shown.contains("name = \"ctl1\""));
        // Still TOML, still star.toml's shape.
        let _: toml::Value = toml::from_str(&shown).unwrap();
        assert_eq!(
            redact("  chap_secret = \"abcdefabcdef\"\n# key = 1\n"),
            "  chap_secret = \"(hidden)\"\n# key = 1\n"
        );
    }

    #[test]
    fn validate_says_what_it_made_of_a_good_file_and_why_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("star-config-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, lab_ctl1()).unwrap();
        let ok = validate(&good, false).unwrap();
        assert!(
            ok.contains("valid: array star-lab, node ctl1 (controller 1)"),
            "{ok}"
        );
        assert!(ok.contains("console login enabled"), "{ok}");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, lab_ctl1().replace("id = 1", "id = 7")).unwrap();
        let (e, code) = validate(&bad, false).unwrap_err();
        assert_eq!(code, 1);
        assert!(
            e.contains("bad.toml:") && e.contains("node.id") && e.ends_with("refused"),
            "{e}"
        );
        let (e, _) = validate(&bad, true).unwrap_err();
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(run(&["frob"], false).unwrap_err().1, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
