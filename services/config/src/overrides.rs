//! `star.SECTION.KEY=VALUE` on the kernel command line overrides one value of star.toml,
//! e.g. `star.node.name=ctl2 star.node.id=2`: one image, two controllers.
//!
//! init's own options (`star.rescue`, `star.config`, `star.hostname`, `star.debug`) are
//! not star.toml's and are left alone.

/// Options init reads itself.
const INIT_OPTIONS: &[&str] = &["star.rescue", "star.config", "star.hostname", "star.debug"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `node.id`
    pub key: String,
    /// As written: `2`, `ctl2`, `true`.
    pub value: String,
}

/// The overrides among the kernel's command-line words.
pub fn from_cmdline(cmdline: &str) -> Vec<Override> {
    cmdline
        .split_whitespace()
        .filter_map(|word| {
            let (key, value) = word.split_once('=')?;
            if INIT_OPTIONS.contains(&key) {
                return None;
            }
            let key = key.strip_prefix("star.")?;
            key.contains('.').then(|| Override {
                key: key.to_string(),
                value: value.trim_matches('"').to_string(),
            })
        })
        .collect()
}

/// A TOML value for what was typed: a number or boolean when it reads as one, a string
/// otherwise (so `star.node.name=ctl2` needs no quotes).
fn value_of(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_)))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// star.toml's text with the overrides applied. Only keys of plain tables can be set
/// (`node.id`, `timeouts.peer_dead_ms`); a key inside a list of tables (`interface`,
/// `lun`) cannot, and is an error naming it.
pub fn apply(text: &str, overrides: &[Override]) -> Result<String, String> {
    if overrides.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for o in overrides {
        let parts: Vec<&str> = o.key.split('.').collect();
        let (last, path) = parts.split_last().expect("contains a dot");
        let mut table = &mut doc;
        for part in path {
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(format!(
                        "kernel command line: star.{}: [{part}] is a list of tables; only single \
                         values can be set there (like star.node.id=2)",
                        o.key
                    ))
                }
            };
        }
        table.insert(last.to_string(), value_of(&o.value));
    }
    toml::to_string(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_star_toml_keys_and_leaves_init_options() {
        let o = from_cmdline("console=ttyS0 star.rescue star.config=/x star.node.name=ctl2 star.node.id=2 star.debug=1");
        assert_eq!(
            o,
            vec![
                Override {
                    key: "node.name".into(),
                    value: "ctl2".into()
                },
                Override {
                    key: "node.id".into(),
                    value: "2".into()
                },
            ]
        );
    }

    #[test]
    fn values_keep_their_types() {
        let text = "version = 1\n[node]\nname = \"ctl1\"\nid = 1\n";
        let out = apply(
            text,
            &from_cmdline("star.node.name=ctl2 star.node.id=2 star.time.ntp_server=10.0.0.1"),
        )
        .unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(t["node"]["name"].as_str(), Some("ctl2"));
        assert_eq!(t["node"]["id"].as_integer(), Some(2));
        assert_eq!(t["time"]["ntp_server"].as_str(), Some("10.0.0.1"));
        assert_eq!(t["version"].as_integer(), Some(1));
    }

    #[test]
    fn lists_of_tables_cannot_be_overridden() {
        let text = "[[interface]]\nname = \"eth0\"\n";
        let e = apply(text, &from_cmdline("star.interface.name=eth1")).unwrap_err();
        assert!(e.contains("[interface] is a list of tables"), "{e}");
    }
}
