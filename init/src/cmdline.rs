//! The kernel command line: the `star.*` options PID 1 obeys.
//!
//! | option             | meaning                                                      |
//! |--------------------|--------------------------------------------------------------|
//! | `star.rescue`      | start no services; run the rescue shell on the console        |
//! | `star.config=PATH` | the services file (default /etc/star/init.toml)               |
//! | `star.hostname=H`  | the host name, over the services file's                       |
//! | `star.debug`       | log init's own debug messages on the console                  |
//! | `star.mask=A,B`    | do not start these services (they count as finished)          |
//!
//! A flag may also be written `star.rescue=1` (or `=0`/`=no` to switch it off). Options
//! with dots are not passed to init as arguments or environment by the kernel, which is
//! why init reads /proc/cmdline itself.

use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelOptions {
    pub rescue: bool,
    pub config: Option<PathBuf>,
    pub hostname: Option<String>,
    pub debug: bool,
    /// Services not to start: a controller kept from taking part while it is repaired, or
    /// a test that drives star-target by hand.
    pub mask: Vec<String>,
    /// `star.*` options this init does not know, so they can be reported (not obeyed).
    pub unknown: Vec<String>,
}

/// Words as the kernel splits them: on spaces, with double quotes grouping.
pub fn split_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn flag(value: Option<&str>) -> bool {
    !matches!(value, Some("0" | "no" | "false" | "off"))
}

pub fn parse(cmdline: &str) -> KernelOptions {
    let mut opts = KernelOptions::default();
    for word in split_words(cmdline) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        if !key.starts_with("star.") {
            continue;
        }
        match (key.as_str(), value) {
            ("star.rescue", v) => opts.rescue = flag(v.as_deref()),
            ("star.debug", v) => opts.debug = flag(v.as_deref()),
            ("star.config", Some(v)) if !v.is_empty() => opts.config = Some(PathBuf::from(v)),
            ("star.hostname", Some(v)) if !v.is_empty() => opts.hostname = Some(v),
            ("star.mask", Some(v)) if !v.is_empty() => opts
                .mask
                .extend(v.split(',').filter(|n| !n.is_empty()).map(String::from)),
            _ => opts.unknown.push(word),
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_star_options_among_others() {
        let o = parse(
            "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 star.rescue quiet star.config=/etc/x.toml \
             star.hostname=ctl2 star.debug=0 star.mask=heartbeat,takeover star.mask=witness\n",
        );
        assert_eq!(o.mask, vec!["heartbeat", "takeover", "witness"]);
        assert!(o.rescue);
        assert!(!o.debug);
        assert_eq!(o.config, Some(PathBuf::from("/etc/x.toml")));
        assert_eq!(o.hostname.as_deref(), Some("ctl2"));
        assert!(o.unknown.is_empty());
    }

    #[test]
    fn flags_can_be_switched_off_and_unknown_options_are_kept() {
        let o = parse("star.rescue=no star.frobnicate=1 star.config=");
        assert!(!o.rescue);
        assert_eq!(o.unknown, vec!["star.frobnicate=1", "star.config="]);
    }

    #[test]
    fn quotes_group_words_like_the_kernel_does() {
        assert_eq!(
            split_words(r#"a "b c" star.hostname="x""#),
            vec!["a", "b c", "star.hostname=x"]
        );
        assert!(split_words("  \n").is_empty());
    }
}
