//! The services file of star-init (`/etc/star/init.toml` in the image).
//!
//! The file is parsed into "raw" serde structs that keep the position of every value
//! (`toml::Spanned`), then validated into the plain types below. Every mistake becomes a
//! [`ConfigError`] that names the file, the line, the column and the key, so an operator
//! can go straight to it; nothing is started from a file with any error in it.
//!
//! ```toml
//! [init]
//! hostname = "star"
//! modules = ["target_core_iblock", "iscsi_target_mod", "softdog"]
//!
//! [watchdog]
//! device = "/dev/watchdog"
//! timeout_sec = 30
//!
//! [[service]]
//! name = "heartbeat"
//! exec = ["/bin/star-heartbeat"]
//! env = { RUST_LOG = "info" }
//! after = ["target"]
//! restart = "always"
//! notify = true
//! watchdog_sec = 5
//! critical = true
//! stop_timeout_sec = 10
//! ```

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

use crate::config_error::Locator;
pub use crate::config_error::{ConfigError, ConfigErrors};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/star/init.toml";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/star/init.sock";
pub const DEFAULT_NOTIFY_SOCKET: &str = "/run/star/notify.sock";

/// Everything star-init needs to know, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct InitConfig {
    pub init: InitSettings,
    pub watchdog: Option<HardwareWatchdog>,
    pub services: Vec<ServiceSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InitSettings {
    /// Set by PID 1 only; a plain supervisor leaves the host's name alone.
    pub hostname: Option<String>,
    /// Kernel modules PID 1 loads (with their dependencies) before any service starts.
    pub modules: Vec<String>,
    /// Where the modules live; `None` means /lib/modules/<running kernel release>.
    pub modules_dir: Option<PathBuf>,
    /// Once every module is in, PID 1 deletes the module files if they sit in the RAM
    /// root: there they hold memory for as long as the machine runs, and nothing reads
    /// them again (star-init is the only loader; the image has no modprobe).
    pub free_module_files: bool,
    pub control_socket: PathBuf,
    pub notify_socket: PathBuf,
    /// After every service has stopped: how long the processes left over get between
    /// SIGTERM and SIGKILL.
    pub shutdown_grace: Duration,
    /// Bytes of output kept per service for `star logs`.
    pub log_buffer_bytes: usize,
    /// What `star.rescue` on the kernel command line runs on the console instead of the
    /// services.
    pub rescue_shell: Vec<String>,
}

/// The hardware watchdog: fed every `timeout / 3` while init and every critical service
/// are healthy.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareWatchdog {
    pub device: PathBuf,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub exec: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Services that must be ready before this one starts (and that stop after it).
    pub after: Vec<String>,
    pub restart: RestartPolicy,
    /// Ready only when it sends READY=1 on NOTIFY_SOCKET; otherwise ready once started.
    pub notify: bool,
    /// It must send WATCHDOG=1 at least this often or it is killed and restarted.
    pub watchdog: Option<Duration>,
    /// If it gives up or starves its watchdog, the appliance resets.
    pub critical: bool,
    /// Between SIGTERM and SIGKILL when it is stopped.
    pub stop_timeout: Duration,
    /// First restart delay; doubles for each quick failure in a row, up to `restart_delay_max`.
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    /// More than `start_limit_burst` deaths within `start_limit_interval`: give up (`failed`).
    pub start_limit_burst: u32,
    pub start_limit_interval: Duration,
    /// A notify service not ready within this is killed and counted as a failure.
    pub start_timeout: Option<Duration>,
    /// Run on this terminal (stdin, stdout, stderr and controlling tty) instead of having its
    /// output captured; for consoles and shells.
    pub tty: Option<PathBuf>,
    pub working_directory: Option<PathBuf>,
}

impl ServiceSpec {
    /// A service with every optional key at its default, for code that builds services
    /// rather than reading them (the rescue shell, tests).
    pub fn new(name: &str, exec: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
            exec: exec.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            after: Vec::new(),
            restart: RestartPolicy::OnFailure,
            notify: false,
            watchdog: None,
            critical: false,
            stop_timeout: Duration::from_secs(10),
            restart_delay: Duration::from_secs(1),
            restart_delay_max: Duration::from_secs(30),
            start_limit_burst: 5,
            start_limit_interval: Duration::from_secs(60),
            start_timeout: None,
            tty: None,
            working_directory: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw file layout

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    init: Option<RawInit>,
    watchdog: Option<Spanned<RawWatchdog>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInit {
    hostname: Option<Spanned<String>>,
    #[serde(default)]
    modules: Vec<Spanned<String>>,
    modules_dir: Option<String>,
    #[serde(default)]
    free_module_files: bool,
    control_socket: Option<Spanned<String>>,
    notify_socket: Option<Spanned<String>>,
    shutdown_grace_sec: Option<Spanned<f64>>,
    log_buffer_kib: Option<Spanned<u32>>,
    rescue_shell: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatchdog {
    device: Spanned<String>,
    timeout_sec: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    exec: Spanned<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    restart: Option<RestartPolicy>,
    #[serde(default)]
    notify: bool,
    watchdog_sec: Option<Spanned<f64>>,
    #[serde(default)]
    critical: bool,
    stop_timeout_sec: Option<Spanned<f64>>,
    restart_sec: Option<Spanned<f64>>,
    restart_max_sec: Option<Spanned<f64>>,
    start_limit_burst: Option<Spanned<u32>>,
    start_limit_interval_sec: Option<Spanned<f64>>,
    start_timeout_sec: Option<Spanned<f64>>,
    tty: Option<Spanned<String>>,
    working_directory: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------
// Validation

impl InitConfig {
    /// Reads and validates a services file.
    pub fn load(path: &Path) -> Result<InitConfig, ConfigErrors> {
        let text = crate::config_error::read_config_file(path, "the services file")?;
        InitConfig::from_toml(&text, path)
    }

    /// Validates the text of a services file; `file` is only used in error messages.
    pub fn from_toml(text: &str, file: &Path) -> Result<InitConfig, ConfigErrors> {
        let at = Locator { file, text };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![at.toml_error(&e)]))?;
        let mut errors = Vec::new();
        let init = validate_init(&at, raw.init, &mut errors);
        let watchdog = raw.watchdog.map(|w| validate_watchdog(&at, w, &mut errors));
        let services: Vec<ServiceSpec> = raw
            .service
            .iter()
            .map(|s| validate_service(&at, s, &mut errors))
            .collect();
        check_names_and_dependencies(&at, &raw.service, &mut errors);
        if errors.is_empty() {
            Ok(InitConfig {
                init,
                watchdog,
                services,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }
}

fn seconds(
    at: &Locator,
    value: &Option<Spanned<f64>>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    let value = value.as_ref()?;
    let secs = *value.get_ref();
    // A zero timeout would mean "already expired" and a day-long one is a typo in
    // milliseconds; both are refused rather than silently obeyed.
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        errors.push(at.error(
            value.span(),
            key,
            format!("must be a number of seconds greater than 0 and at most 86400, not {secs}"),
        ));
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

fn absolute_path(
    at: &Locator,
    value: &Spanned<String>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> PathBuf {
    let path = PathBuf::from(value.get_ref());
    if !path.is_absolute() {
        errors.push(at.error(
            value.span(),
            key,
            format!("must be an absolute path, not {:?}", value.get_ref()),
        ));
    }
    path
}

fn validate_init(
    at: &Locator,
    raw: Option<RawInit>,
    errors: &mut Vec<ConfigError>,
) -> InitSettings {
    let Some(raw) = raw else {
        return InitSettings {
            hostname: None,
            modules: Vec::new(),
            modules_dir: None,
            free_module_files: false,
            control_socket: DEFAULT_CONTROL_SOCKET.into(),
            notify_socket: DEFAULT_NOTIFY_SOCKET.into(),
            shutdown_grace: Duration::from_secs(5),
            log_buffer_bytes: 64 * 1024,
            rescue_shell: vec!["/bin/sh".into()],
        };
    };
    if let Some(host) = &raw.hostname {
        let h = host.get_ref();
        let valid = !h.is_empty()
            && h.len() <= 64
            && h.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            errors.push(at.error(
                host.span(),
                "init.hostname",
                format!(
                    "{h:?} is not a valid host name (letters, digits, '-' and '.', at most 64)"
                ),
            ));
        }
    }
    for module in &raw.modules {
        let m = module.get_ref();
        if m.is_empty() || m.contains('/') || m.contains(char::is_whitespace) {
            errors.push(at.error(
                module.span(),
                "init.modules",
                format!("{m:?} is not a module name"),
            ));
        }
    }
    let control_socket = raw
        .control_socket
        .as_ref()
        .map(|p| absolute_path(at, p, "init.control_socket", errors))
        .unwrap_or_else(|| DEFAULT_CONTROL_SOCKET.into());
    let notify_socket = raw
        .notify_socket
        .as_ref()
        .map(|p| absolute_path(at, p, "init.notify_socket", errors))
        .unwrap_or_else(|| DEFAULT_NOTIFY_SOCKET.into());
    let log_buffer_bytes = match &raw.log_buffer_kib {
        Some(kib) if !(1..=16 * 1024).contains(kib.get_ref()) => {
            errors.push(at.error(
                kib.span(),
                "init.log_buffer_kib",
                "must be between 1 and 16384",
            ));
            0
        }
        Some(kib) => *kib.get_ref() as usize * 1024,
        None => 64 * 1024,
    };
    let rescue_shell = match &raw.rescue_shell {
        Some(shell) if shell.get_ref().is_empty() => {
            errors.push(at.error(shell.span(), "init.rescue_shell", "must name a program"));
            Vec::new()
        }
        Some(shell) => shell.get_ref().clone(),
        None => vec!["/bin/sh".into()],
    };
    InitSettings {
        hostname: raw.hostname.map(|h| h.into_inner()),
        modules: raw.modules.into_iter().map(|m| m.into_inner()).collect(),
        modules_dir: raw.modules_dir.map(PathBuf::from),
        free_module_files: raw.free_module_files,
        control_socket,
        notify_socket,
        shutdown_grace: seconds(
            at,
            &raw.shutdown_grace_sec,
            "init.shutdown_grace_sec",
            errors,
        )
        .unwrap_or(Duration::from_secs(5)),
        log_buffer_bytes,
        rescue_shell,
    }
}

fn validate_watchdog(
    at: &Locator,
    raw: Spanned<RawWatchdog>,
    errors: &mut Vec<ConfigError>,
) -> HardwareWatchdog {
    let raw = raw.into_inner();
    let device = absolute_path(at, &raw.device, "watchdog.device", errors);
    let timeout = match &raw.timeout_sec {
        // Fed every timeout/3: below 3 s the feed would be sub-second and the margin for a
        // busy PID 1 too thin; above an hour the watchdog protects nothing.
        Some(t) if !(3..=3600).contains(t.get_ref()) => {
            errors.push(at.error(
                t.span(),
                "watchdog.timeout_sec",
                "must be between 3 and 3600",
            ));
            Duration::from_secs(30)
        }
        Some(t) => Duration::from_secs(u64::from(*t.get_ref())),
        None => Duration::from_secs(30),
    };
    HardwareWatchdog { device, timeout }
}

fn valid_service_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn validate_service(
    at: &Locator,
    raw: &Spanned<RawService>,
    errors: &mut Vec<ConfigError>,
) -> ServiceSpec {
    let s = raw.get_ref();
    let name = s.name.get_ref().clone();
    if !valid_service_name(&name) {
        errors.push(at.error(
            s.name.span(),
            "service.name",
            format!(
                "{name:?} is not a service name (lowercase letters, digits, '-', '_' and '.', \
                 starting with a letter or digit, at most 64)"
            ),
        ));
    }
    let exec = s.exec.get_ref().clone();
    if exec.first().is_none_or(|program| program.is_empty()) {
        errors.push(at.error(
            s.exec.span(),
            "service.exec",
            format!("service {name:?}: must list the program and its arguments"),
        ));
    }
    if exec.iter().any(|arg| arg.contains('\0')) {
        errors.push(at.error(s.exec.span(), "service.exec", "contains a NUL byte"));
    }
    let mut env = BTreeMap::new();
    for (key, value) in &s.env {
        let k = key.get_ref();
        if k.is_empty() || k.contains('=') || k.contains('\0') || value.contains('\0') {
            errors.push(at.error(
                key.span(),
                "service.env",
                format!("{k:?} is not a usable environment variable"),
            ));
        }
        env.insert(k.clone(), value.clone());
    }
    let defaults = ServiceSpec::new(&name, &[]);
    let restart_delay = seconds(at, &s.restart_sec, "service.restart_sec", errors)
        .unwrap_or(defaults.restart_delay);
    let restart_delay_max = seconds(at, &s.restart_max_sec, "service.restart_max_sec", errors)
        .unwrap_or(defaults.restart_delay_max.max(restart_delay));
    if restart_delay_max < restart_delay {
        errors.push(at.error(
            s.restart_max_sec.as_ref().map_or(raw.span(), |v| v.span()),
            "service.restart_max_sec",
            "must not be smaller than restart_sec",
        ));
    }
    let start_limit_burst = match &s.start_limit_burst {
        Some(b) if *b.get_ref() == 0 => {
            errors.push(at.error(b.span(), "service.start_limit_burst", "must be at least 1"));
            1
        }
        Some(b) => *b.get_ref(),
        None => defaults.start_limit_burst,
    };
    ServiceSpec {
        name,
        exec,
        env,
        after: s.after.iter().map(|a| a.get_ref().clone()).collect(),
        restart: s.restart.unwrap_or(defaults.restart),
        notify: s.notify,
        watchdog: seconds(at, &s.watchdog_sec, "service.watchdog_sec", errors),
        critical: s.critical,
        stop_timeout: seconds(at, &s.stop_timeout_sec, "service.stop_timeout_sec", errors)
            .unwrap_or(defaults.stop_timeout),
        restart_delay,
        restart_delay_max,
        start_limit_burst,
        start_limit_interval: seconds(
            at,
            &s.start_limit_interval_sec,
            "service.start_limit_interval_sec",
            errors,
        )
        .unwrap_or(defaults.start_limit_interval),
        start_timeout: seconds(
            at,
            &s.start_timeout_sec,
            "service.start_timeout_sec",
            errors,
        ),
        tty: s
            .tty
            .as_ref()
            .map(|p| absolute_path(at, p, "service.tty", errors)),
        working_directory: s
            .working_directory
            .as_ref()
            .map(|p| absolute_path(at, p, "service.working_directory", errors)),
    }
}

/// Unique names, known dependencies, no cycles.
fn check_names_and_dependencies(
    at: &Locator,
    services: &[Spanned<RawService>],
    errors: &mut Vec<ConfigError>,
) {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        let name = s.get_ref().name.get_ref().as_str();
        if let Some(&first) = first_seen.get(name) {
            let (line, _) = at.position(services[first].get_ref().name.span().start);
            errors.push(at.error(
                s.get_ref().name.span(),
                "service.name",
                format!("{name:?} is already the name of the service on line {line}"),
            ));
        } else {
            first_seen.insert(name, i);
        }
    }
    let mut graph_ok = true;
    for s in services {
        let s = s.get_ref();
        for dep in &s.after {
            let d = dep.get_ref().as_str();
            if d == s.name.get_ref() {
                errors.push(at.error(
                    dep.span(),
                    "service.after",
                    format!("service {d:?} cannot wait for itself"),
                ));
                graph_ok = false;
            } else if !first_seen.contains_key(d) {
                let mut known: Vec<&str> = first_seen.keys().copied().collect();
                known.sort_unstable();
                errors.push(at.error(
                    dep.span(),
                    "service.after",
                    format!(
                        "service {:?} waits for {d:?}, which is not defined (services: {})",
                        s.name.get_ref(),
                        known.join(", ")
                    ),
                ));
                graph_ok = false;
            }
        }
    }
    if !graph_ok {
        return;
    }
    let after: Vec<Vec<usize>> = services
        .iter()
        .map(|s| {
            s.get_ref()
                .after
                .iter()
                .map(|d| first_seen[d.get_ref().as_str()])
                .collect()
        })
        .collect();
    if let Some(cycle) = find_cycle(&after) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| services[i].get_ref().name.get_ref().as_str())
            .collect();
        // Point at the `after` entry that closes the loop: the first edge of the cycle.
        let from = services[cycle[0]].get_ref();
        let edge = from
            .after
            .iter()
            .find(|d| d.get_ref() == names[1])
            .expect("cycle edges come from `after` lists");
        errors.push(at.error(
            edge.span(),
            "service.after",
            format!("dependency cycle: {}", names.join(" -> ")),
        ));
    }
}

/// A cycle in the "after" graph as a list of nodes whose first and last are the same.
pub fn find_cycle(after: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        n: usize,
        after: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[n] = Mark::OnPath;
        path.push(n);
        for &d in &after[n] {
            match marks[d] {
                Mark::OnPath => {
                    let start = path.iter().position(|&p| p == d).expect("on path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(d);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, after, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[n] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; after.len()];
    for n in 0..after.len() {
        if marks[n] == Mark::New {
            if let Some(c) = visit(n, after, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<InitConfig, ConfigErrors> {
        InitConfig::from_toml(text, Path::new("/etc/star/init.toml"))
    }

    fn single_error(text: &str) -> ConfigError {
        let errs = parse(text).expect_err("must be refused");
        assert_eq!(errs.0.len(), 1, "{errs}");
        errs.0[0].clone()
    }

    #[test]
    fn module_files_are_kept_unless_the_file_says_otherwise() {
        // A distribution's /lib/modules is not ours to delete.
        let cfg = parse("[init]\nmodules = [\"softdog\"]\n").unwrap();
        assert!(!cfg.init.free_module_files);
        assert!(!parse("").unwrap().init.free_module_files);
    }

    #[test]
    fn full_service_is_read_with_every_key() {
        let cfg = parse(
            r#"
[init]
hostname = "ctl1"
modules = ["softdog"]
free_module_files = true
[watchdog]
device = "/dev/watchdog"
timeout_sec = 12
[[service]]
name = "a"
exec = ["/bin/a", "--x"]
[[service]]
name = "b"
exec = ["/bin/b"]
env = { RUST_LOG = "debug" }
after = ["a"]
restart = "always"
notify = true
watchdog_sec = 2.5
critical = true
stop_timeout_sec = 3
"#,
        )
        .unwrap();
        assert_eq!(cfg.init.hostname.as_deref(), Some("ctl1"));
        assert!(cfg.init.free_module_files);
        assert_eq!(
            cfg.watchdog.as_ref().unwrap().timeout,
            Duration::from_secs(12)
        );
        let b = cfg.service("b").unwrap();
        assert_eq!(b.after, vec!["a".to_string()]);
        assert_eq!(b.restart, RestartPolicy::Always);
        assert!(b.notify && b.critical);
        assert_eq!(b.watchdog, Some(Duration::from_millis(2500)));
        assert_eq!(b.stop_timeout, Duration::from_secs(3));
        assert_eq!(b.env["RUST_LOG"], "debug");
        let a = cfg.service("a").unwrap();
        assert_eq!(a.restart, RestartPolicy::OnFailure);
        assert_eq!(a.exec, vec!["/bin/a", "--x"]);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e =
            single_error("[[service]]\nname = \"a\"\nexec = [\"/bin/a\"]\nrestrat = \"always\"\n");
        assert_eq!(e.line, 4, "{e}");
        assert_eq!(e.key.as_deref(), Some("restrat"));
        assert!(e.to_string().starts_with("/etc/star/init.toml:4:"), "{e}");
    }

    #[test]
    fn missing_exec_names_the_service_table_line() {
        let e = single_error(
            "[[service]]\nname = \"a\"\nexec = [\"/a\"]\n\n[[service]]\nname = \"b\"\n",
        );
        assert_eq!(e.key.as_deref(), Some("exec"), "{e}");
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = single_error("[[service]]\nname = \"a\"\nexec = [\"/bin/a\"]\nnotify = \"yes\"\n");
        assert_eq!(e.line, 4, "{e}");
        assert_eq!(e.key.as_deref(), Some("notify"), "{e}");
    }

    #[test]
    fn bad_restart_value_is_refused() {
        let e = single_error(
            "[[service]]\nname = \"a\"\nexec = [\"/bin/a\"]\nrestart = \"sometimes\"\n",
        );
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("on-failure"), "{e}");
    }

    #[test]
    fn unknown_dependency_is_refused_with_its_line() {
        let e =
            single_error("[[service]]\nname = \"a\"\nexec = [\"/bin/a\"]\nafter = [\"nope\"]\n");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (4, Some("service.after")),
            "{e}"
        );
        assert!(e.message.contains("\"nope\""), "{e}");
    }

    #[test]
    fn dependency_cycle_is_refused_and_spelled_out() {
        let e = single_error(
            "[[service]]\nname = \"a\"\nexec = [\"/a\"]\nafter = [\"c\"]\n\
             [[service]]\nname = \"b\"\nexec = [\"/b\"]\nafter = [\"a\"]\n\
             [[service]]\nname = \"c\"\nexec = [\"/c\"]\nafter = [\"b\"]\n",
        );
        assert!(
            e.message.contains("dependency cycle: a -> c -> b -> a"),
            "{e}"
        );
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn self_dependency_and_duplicate_names_are_refused() {
        let errs = parse(
            "[[service]]\nname = \"a\"\nexec = [\"/a\"]\nafter = [\"a\"]\n\
             [[service]]\nname = \"a\"\nexec = [\"/b\"]\n",
        )
        .unwrap_err();
        let text = errs.to_string();
        assert!(text.contains("cannot wait for itself"), "{text}");
        assert!(
            text.contains("already the name of the service on line 2"),
            "{text}"
        );
    }

    #[test]
    fn empty_exec_and_bad_durations_are_all_reported() {
        let errs = parse(
            "[[service]]\nname = \"a\"\nexec = []\nwatchdog_sec = 0\nstop_timeout_sec = -1\n",
        )
        .unwrap_err();
        assert_eq!(errs.0.len(), 3, "{errs}");
        assert_eq!(errs.0[0].key.as_deref(), Some("service.exec"));
        assert_eq!(errs.0[1].line, 4);
        assert_eq!(errs.0[2].line, 5);
    }

    #[test]
    fn relative_socket_paths_and_bad_names_are_refused() {
        let errs = parse(
            "[init]\ncontrol_socket = \"init.sock\"\nhostname = \"bad host\"\n\
             [[service]]\nname = \"Bad Name\"\nexec = [\"/a\"]\n",
        )
        .unwrap_err();
        assert_eq!(errs.0.len(), 3, "{errs}");
    }

    #[test]
    fn syntax_error_has_a_position() {
        let e = single_error("[[service]]\nname = \"a\nexec = [\"/a\"]\n");
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn cycle_finder_handles_diamonds() {
        // a -> b, a -> c, b -> d, c -> d: no cycle.
        assert_eq!(find_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
        assert_eq!(find_cycle(&[vec![1], vec![0]]), Some(vec![0, 1, 0]));
    }
}
