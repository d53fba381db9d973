//! star.toml: one node's configuration (who it is, its networks, the floating address, the
//! witness, the key, the administrator, the array's first LUNs and hosts, the timeouts).
//!
//! As with the services file, the text is read into "raw" structs that keep every value's
//! position, then validated; every mistake is reported with file, line, column, key and
//! what is allowed, and a file with any mistake is refused whole. Examples for every board
//! and for the lab are in `examples/` and are tested.

use crate::config_error::{ConfigError, ConfigErrors, Locator};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// The only version this code reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub version: u32,
    pub array_name: String,
    pub node: Node,
    pub interfaces: Vec<Interface>,
    pub floating: Option<Floating>,
    pub witness: Option<Witness>,
    /// Authenticates heartbeats and witness messages: the same on all three machines.
    pub cluster_key: Vec<u8>,
    /// The console's administrator: `None` when star.toml has no `[admin]` password, and
    /// then every console login is refused (there is no default password).
    pub admin_password_hash: Option<String>,
    /// A console session with no command for this long is logged out; `None`: never.
    pub console_idle_timeout: Option<Duration>,
    pub luns: Vec<Lun>,
    pub hosts: Vec<Host>,
    pub timeouts: Timeouts,
    pub ntp_server: Option<String>,
    /// `[aws]`: other endpoints than AWS's public ones (VPC endpoints, tests).
    pub aws: AwsEndpoints,
    /// `[fencing]`: how a controller that takes over powers its peer off as well.
    pub fencing: Option<Fencing>,
}

/// Power fencing, on top of the poison pill and the peer's watchdog: it also stops a
/// peer whose hypervisor paused it, which no watchdog inside it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fencing {
    /// EC2 StopInstances with Force on the peer, confirmed through DescribeInstances.
    AwsStopInstance { peer_instance_id: String },
}

/// Where the AWS methods send their requests; `None`: AWS's own endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsEndpoints {
    /// The instance metadata service (default http://169.254.169.254).
    pub imds: Option<String>,
    /// EC2 (default https://ec2.REGION.amazonaws.com).
    pub ec2: Option<String>,
    /// Route 53 (default https://route53.amazonaws.com).
    pub route53: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Controller,
    Witness,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// 1 or 2 for controllers (it is also the ALUA target port group id); 3 for the witness.
    pub id: u8,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Where iSCSI initiators connect, and where the floating address lives.
    Client,
    /// Between the controllers (and the witness): heartbeats.
    Interconnect,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Addressing {
    Dhcp,
    Static {
        address: IpAddr,
        prefix_len: u8,
        gateway: Option<IpAddr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    /// The kernel's name (eth0, ens5).
    pub name: String,
    pub purpose: Purpose,
    pub addressing: Addressing,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TakeoverMethod {
    /// Same L2 network: add the address, send gratuitous ARP.
    Arp,
    /// AWS, one subnet: move a secondary private IP between the controllers' ENIs.
    AwsSecondaryIp,
    /// AWS: point route-table entries for the address at the active controller.
    AwsRouteTable { route_table_ids: Vec<String> },
    /// AWS, across zones: UPSERT an A record.
    AwsRoute53 {
        hosted_zone_id: String,
        record_name: String,
        ttl: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Floating {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub method: TakeoverMethod,
    /// How method "arp" announces the address; the defaults for the other methods.
    pub garp: Garp,
}

/// The announcements of method "arp" after it adds the address: gratuitous ARP requests
/// for IPv4, unsolicited neighbour advertisements for IPv6. Like keepalived
/// (`vrrp_garp_master_repeat` 5, `vrrp_garp_master_delay` 5 s) and IPaddr2 (5 at
/// 200 ms): a first burst that acquire waits for, and a second one later for the
/// neighbours and switches that missed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garp {
    /// Packets in each burst (`garp_count`).
    pub count: u32,
    /// Between the packets of a burst (`garp_interval_ms`).
    pub interval: Duration,
    /// The second burst starts this long after acquire returned; `None` for no second
    /// burst (`garp_repeat_after_ms = 0`).
    pub repeat_after: Option<Duration>,
}

impl Default for Garp {
    fn default() -> Garp {
        Garp {
            count: 5,
            interval: Duration::from_millis(200),
            repeat_after: Some(Duration::from_secs(5)),
        }
    }
}

impl Garp {
    /// The first burst, which acquire waits for, may take at most this long: star-heartbeat
    /// gives acquire 15 s, and most of that belongs to netlink or the AWS APIs.
    pub const MAX_BURST: Duration = Duration::from_secs(5);

    /// From the first packet of a burst to its last.
    pub fn burst(&self) -> Duration {
        self.interval * self.count.saturating_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Witness {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lun {
    pub name: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub iqn: String,
    pub luns: Vec<String>,
    pub chap_user: Option<String>,
    pub chap_secret: Option<String>,
}

/// The failover timing. Defaults are safe for EBS and a loaded VM; see `derive` for how
/// they relate.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// How often a controller writes its heartbeat slot and sends a UDP heartbeat.
    pub heartbeat_interval: Duration,
    /// A heartbeat write not done within this means this node cannot be trusted to serve.
    pub io_timeout: Duration,
    /// The peer's heartbeat unchanged for this long: the peer is presumed dead.
    pub peer_dead: Duration,
    /// The hardware watchdog's timeout on the controllers.
    pub watchdog: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            heartbeat_interval: Duration::from_millis(500),
            io_timeout: Duration::from_secs(3),
            peer_dead: Duration::from_secs(10),
            watchdog: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// SBD's rule: before taking over, a standby waits at least twice the peer's watchdog
    /// timeout after poisoning it, so the peer has certainly reset.
    pub fn msgwait(&self) -> Duration {
        self.watchdog * 2
    }

    /// The worst-case time from the active's death to the standby serving.
    pub fn worst_case_takeover(&self) -> Duration {
        self.peer_dead + self.msgwait()
    }
}

// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<u32>,
    array: RawArray,
    node: RawNode,
    #[serde(default)]
    interface: Vec<Spanned<RawInterface>>,
    floating: Option<Spanned<RawFloating>>,
    witness: Option<RawWitness>,
    cluster: RawCluster,
    admin: Option<RawAdmin>,
    #[serde(default)]
    lun: Vec<RawLun>,
    #[serde(default)]
    host: Vec<RawHost>,
    #[serde(default)]
    timeouts: RawTimeouts,
    time: Option<RawTime>,
    #[serde(default)]
    aws: RawAws,
    fencing: Option<RawFencing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFencing {
    method: Spanned<String>,
    peer_instance_id: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAws {
    imds_endpoint: Option<Spanned<String>>,
    ec2_endpoint: Option<Spanned<String>>,
    route53_endpoint: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArray {
    name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    id: Spanned<u8>,
    role: Spanned<Role>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: Spanned<String>,
    purpose: Purpose,
    #[serde(default)]
    dhcp: bool,
    address: Option<Spanned<String>>,
    gateway: Option<Spanned<String>>,
    mtu: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFloating {
    address: Spanned<String>,
    method: Spanned<String>,
    #[serde(default)]
    route_table_ids: Vec<Spanned<String>>,
    hosted_zone_id: Option<Spanned<String>>,
    record_name: Option<Spanned<String>>,
    ttl: Option<Spanned<u32>>,
    garp_count: Option<Spanned<u32>>,
    garp_interval_ms: Option<Spanned<u64>>,
    garp_repeat_after_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWitness {
    url: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    password_hash: Option<Spanned<String>>,
    idle_timeout_min: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLun {
    name: Spanned<String>,
    size: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    iqn: Spanned<String>,
    #[serde(default)]
    luns: Vec<Spanned<String>>,
    chap_user: Option<Spanned<String>>,
    chap_secret: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    heartbeat_interval_ms: Option<Spanned<u64>>,
    io_timeout_ms: Option<Spanned<u64>>,
    peer_dead_ms: Option<Spanned<u64>>,
    watchdog_sec: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTime {
    ntp_server: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------

/// `a.b.c.d/nn` or an IPv6 address with a prefix.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} needs a prefix length, like 10.0.1.11/24"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("prefix length must be 0 to {max}, not {prefix:?}"))?;
    Ok((addr, prefix))
}

/// `10G`, `512MiB`, `1TiB`, or a number of bytes; binary units, whole MiB at least.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let num: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 10GiB or 512MiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        other if other.contains(|c: char| c.is_ascii_digit() || c == '.') => {
            return Err(format!(
                "{text:?} is not a size: a whole number and a unit, like 10GiB or 512MiB"
            ))
        }
        other => return Err(format!("unknown size unit {other:?} (use MiB, GiB or TiB)")),
    };
    let bytes = num
        .checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes < 1 << 20 || !bytes.is_multiple_of(1 << 20) {
        return Err(format!(
            "{text:?}: a LUN is a whole number of MiB, at least 1 MiB"
        ));
    }
    Ok(bytes)
}

/// iqn.YYYY-MM.reversed.domain[:anything], lowercase, as RFC 3720 §3.2.6.3.1 has it.
pub fn valid_iqn(iqn: &str) -> bool {
    let Some(rest) = iqn.strip_prefix("iqn.") else {
        return false;
    };
    let bytes = rest.as_bytes();
    let date_ok = bytes.len() > 8
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[5..7].iter().all(u8::is_ascii_digit)
        && bytes[7] == b'.';
    date_ok
        && iqn.len() <= 223
        && iqn
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=32).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

const NAME_RULE: &str =
    "lowercase letters, digits and '-', starting with a letter, at most 32 characters";

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigErrors> {
        let text = crate::config_error::read_config_file(path, "star.toml")?;
        NodeConfig::from_toml(&text, path)
    }

    /// Validates star.toml's text; `file` names it in errors (a path, or "EC2 user-data").
    pub fn from_toml(text: &str, file: &Path) -> Result<NodeConfig, ConfigErrors> {
        let at = Locator { file, text };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![at.toml_error(&e)]))?;
        let mut errors = Vec::new();
        let cfg = validate(&at, raw, &mut errors);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn interface(&self, purpose: Purpose) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.purpose == purpose)
    }
}

struct Check<'a> {
    at: &'a Locator<'a>,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    fn fail(&mut self, span: std::ops::Range<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(self.at.error(span, key, message));
    }

    fn milliseconds(
        &mut self,
        value: &Option<Spanned<u64>>,
        key: &str,
        default: Duration,
        range: (u64, u64),
    ) -> Duration {
        let Some(v) = value else { return default };
        let ms = *v.get_ref();
        if !(range.0..=range.1).contains(&ms) {
            self.fail(
                v.span(),
                key,
                format!("must be between {} and {}", range.0, range.1),
            );
            return default;
        }
        Duration::from_millis(ms)
    }
}

fn validate(at: &Locator, raw: RawFile, errors: &mut Vec<ConfigError>) -> NodeConfig {
    let mut c = Check {
        at,
        errors: Vec::new(),
    };
    if *raw.version.get_ref() != VERSION {
        let v = *raw.version.get_ref();
        c.fail(
            raw.version.span(),
            "version",
            format!("this STAR reads star.toml version {VERSION}, not {v}"),
        );
    }
    let array_name = raw.array.name.get_ref().clone();
    if !valid_name(&array_name) {
        c.fail(
            raw.array.name.span(),
            "array.name",
            format!("{array_name:?}: {NAME_RULE}"),
        );
    }
    let node_name = raw.node.name.get_ref().clone();
    if !valid_name(&node_name) {
        c.fail(
            raw.node.name.span(),
            "node.name",
            format!("{node_name:?}: {NAME_RULE}"),
        );
    }
    let role = *raw.node.role.get_ref();
    let id = *raw.node.id.get_ref();
    match role {
        Role::Controller if !(1..=2).contains(&id) => c.fail(
            raw.node.id.span(),
            "node.id",
            format!("a controller is node 1 or 2, not {id}"),
        ),
        Role::Witness if id != 3 => c.fail(
            raw.node.id.span(),
            "node.id",
            format!("the witness is node 3, not {id}"),
        ),
        _ => {}
    }

    let interfaces = validate_interfaces(&mut c, &raw.interface);
    if interfaces.is_empty() {
        c.fail(0..0, "interface", "at least one [[interface]] is needed");
    }
    if role == Role::Controller {
        for (purpose, word) in [
            (Purpose::Client, "client"),
            (Purpose::Interconnect, "interconnect"),
        ] {
            if !interfaces.iter().any(|i| i.purpose == purpose) {
                c.fail(
                    0..0,
                    "interface.purpose",
                    format!("a controller needs an interface with purpose = \"{word}\""),
                );
            }
        }
    }

    let floating = raw
        .floating
        .as_ref()
        .and_then(|f| validate_floating(&mut c, f, &interfaces));
    match (role, &raw.floating) {
        (Role::Controller, None) => c.fail(
            0..0,
            "floating",
            "a controller needs [floating]: the address clients connect to",
        ),
        (Role::Witness, Some(f)) => {
            c.fail(f.span(), "floating", "the witness has no floating address")
        }
        _ => {}
    }

    let witness = raw.witness.as_ref().and_then(|w| {
        let url = w.url.get_ref();
        match parse_witness_url(url) {
            Ok(w) => Some(w),
            Err(e) => {
                c.fail(w.url.span(), "witness.url", e);
                None
            }
        }
    });
    if role == Role::Controller && raw.witness.is_none() {
        c.fail(
            0..0,
            "witness",
            "a controller needs [witness] url = \"http://HOST:PORT\"",
        );
    }

    let key_text = raw.cluster.key.get_ref();
    let cluster_key = match decode_hex(key_text) {
        Some(k) if k.len() >= 32 => k,
        _ => {
            c.fail(raw.cluster.key.span(), "cluster.key", "must be at least 32 bytes as hex (64 hex digits): make one with `head -c 32 /dev/urandom | xxd -p -c 64`");
            Vec::new()
        }
    };

    let hash = raw
        .admin
        .as_ref()
        .and_then(|a| a.password_hash.as_ref())
        .and_then(|h| match crate::password::check_hash(h.get_ref()) {
            Ok(()) => Some(h.get_ref().clone()),
            Err(e) => {
                c.fail(
                    h.span(),
                    "admin.password_hash",
                    format!("{e}; {}", crate::password::HOW_TO_MAKE),
                );
                None
            }
        });
    // Fifteen minutes, as a serial console left logged in is an open door.
    let console_idle_timeout = match raw.admin.as_ref().and_then(|a| a.idle_timeout_min.as_ref()) {
        None => Some(Duration::from_secs(15 * 60)),
        Some(m) if *m.get_ref() == 0 => None,
        Some(m) if *m.get_ref() > 24 * 60 => {
            c.fail(
                m.span(),
                "admin.idle_timeout_min",
                "must be 0 (never) to 1440 minutes (a day)",
            );
            None
        }
        Some(m) => Some(Duration::from_secs(u64::from(*m.get_ref()) * 60)),
    };

    let mut luns = Vec::new();
    let mut lun_names = BTreeSet::new();
    for l in &raw.lun {
        let name = l.name.get_ref().clone();
        if !valid_name(&name) {
            c.fail(l.name.span(), "lun.name", format!("{name:?}: {NAME_RULE}"));
        } else if !lun_names.insert(name.clone()) {
            c.fail(
                l.name.span(),
                "lun.name",
                format!("LUN {name:?} is defined twice"),
            );
        }
        match parse_size(l.size.get_ref()) {
            Ok(size_bytes) => luns.push(Lun { name, size_bytes }),
            Err(e) => c.fail(l.size.span(), "lun.size", e),
        }
    }
    let mut hosts = Vec::new();
    for h in &raw.host {
        let name = h.name.get_ref().clone();
        if !valid_name(&name) {
            c.fail(h.name.span(), "host.name", format!("{name:?}: {NAME_RULE}"));
        }
        let iqn = h.iqn.get_ref().clone();
        if !valid_iqn(&iqn) {
            c.fail(
                h.iqn.span(),
                "host.iqn",
                format!(
                    "{iqn:?} is not an iSCSI name: iqn.YYYY-MM.reversed.domain[:name], lowercase"
                ),
            );
        }
        for l in &h.luns {
            if !lun_names.contains(l.get_ref()) {
                let known: Vec<&str> = lun_names.iter().map(String::as_str).collect();
                c.fail(
                    l.span(),
                    "host.luns",
                    format!(
                        "no LUN named {:?} (LUNs: {})",
                        l.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
        match (&h.chap_user, &h.chap_secret) {
            (Some(_), None) | (None, Some(_)) => c.fail(
                h.name.span(),
                "host.chap_secret",
                "chap_user and chap_secret go together",
            ),
            (_, Some(s)) if !(12..=16).contains(&s.get_ref().len()) => {
                // LIO and most initiators take 12 to 16 characters (RFC 3720 wants at least 96 bits).
                c.fail(s.span(), "host.chap_secret", "must be 12 to 16 characters")
            }
            _ => {}
        }
        hosts.push(Host {
            name,
            iqn,
            luns: h.luns.iter().map(|l| l.get_ref().clone()).collect(),
            chap_user: h.chap_user.as_ref().map(|u| u.get_ref().clone()),
            chap_secret: h.chap_secret.as_ref().map(|s| s.get_ref().clone()),
        });
    }
    if role == Role::Witness && !(raw.lun.is_empty() && raw.host.is_empty()) {
        c.fail(0..0, "lun", "the witness serves no LUNs or hosts");
    }

    let d = Timeouts::default();
    let t = &raw.timeouts;
    let timeouts = Timeouts {
        heartbeat_interval: c.milliseconds(
            &t.heartbeat_interval_ms,
            "timeouts.heartbeat_interval_ms",
            d.heartbeat_interval,
            (50, 10_000),
        ),
        io_timeout: c.milliseconds(
            &t.io_timeout_ms,
            "timeouts.io_timeout_ms",
            d.io_timeout,
            (100, 120_000),
        ),
        peer_dead: c.milliseconds(
            &t.peer_dead_ms,
            "timeouts.peer_dead_ms",
            d.peer_dead,
            (500, 600_000),
        ),
        // 1 s is the smallest timeout the kernel's watchdog drivers take (softdog,
        // i6300esb); whether a controller can keep a 1 s watchdog fed is what the rules
        // below and the fault suite decide, not a floor picked here.
        watchdog: match &t.watchdog_sec {
            Some(w) if !(1..=300).contains(w.get_ref()) => {
                c.fail(
                    w.span(),
                    "timeouts.watchdog_sec",
                    "must be between 1 and 300",
                );
                d.watchdog
            }
            Some(w) => Duration::from_secs(*w.get_ref()),
            None => d.watchdog,
        },
    };
    // A peer is only presumed dead after several missed beats, and a node must give up its
    // own I/O before the peer could presume it dead.
    if timeouts.peer_dead < timeouts.heartbeat_interval * 4 {
        let span = t.peer_dead_ms.as_ref().map_or(0..0, |v| v.span());
        c.fail(
            span,
            "timeouts.peer_dead_ms",
            format!(
                "must be at least 4 heartbeat intervals ({} ms)",
                (timeouts.heartbeat_interval * 4).as_millis()
            ),
        );
    }
    // A node gives up serving when its own heartbeat write is not done within
    // io_timeout, and writes one every interval: it has stopped by interval + io_timeout
    // after its last write, which must come before the peer may presume it dead.
    let own_deadline = timeouts.heartbeat_interval + timeouts.io_timeout;
    if own_deadline >= timeouts.peer_dead {
        let span = t.io_timeout_ms.as_ref().map_or(0..0, |v| v.span());
        c.fail(
            span,
            "timeouts.io_timeout_ms",
            format!(
                "heartbeat_interval_ms + io_timeout_ms ({} ms) must be shorter than \
                 peer_dead_ms ({} ms): a node must stop serving before its peer may presume \
                 it dead",
                own_deadline.as_millis(),
                timeouts.peer_dead.as_millis()
            ),
        );
    }
    // SBD's rule, msgwait = 2 × watchdog, fences a poisoned peer only if the peer reads
    // its pill, or notices its own late write, within one watchdog timeout: that takes up
    // to interval + io_timeout, so the watchdog must be at least twice that.
    if timeouts.watchdog < own_deadline * 2 {
        let span = t.watchdog_sec.as_ref().map_or(0..0, |v| v.span());
        c.fail(
            span,
            "timeouts.watchdog_sec",
            format!(
                "must be at least 2 × (heartbeat_interval_ms + io_timeout_ms) = {} ms: a \
                 takeover waits 2 × watchdog after poisoning the peer, and the peer needs up \
                 to interval + io_timeout to stop before its watchdog counts",
                (own_deadline * 2).as_millis()
            ),
        );
    }

    let ntp_server = raw
        .time
        .as_ref()
        .and_then(|t| t.ntp_server.as_ref())
        .map(|s| {
            let v = s.get_ref().clone();
            if v.is_empty() || v.contains(char::is_whitespace) {
                c.fail(
                    s.span(),
                    "time.ntp_server",
                    "must be a host name or an IP address",
                );
            }
            v
        });

    let mut endpoint = |v: &Option<Spanned<String>>, key: &str| {
        v.as_ref().map(|s| {
            let url = s.get_ref().trim_end_matches('/').to_string();
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                c.fail(
                    s.span(),
                    key,
                    format!(
                        "{url:?} is not an endpoint: http://HOST[:PORT] or https://HOST[:PORT]"
                    ),
                );
            }
            url
        })
    };
    let aws = AwsEndpoints {
        imds: endpoint(&raw.aws.imds_endpoint, "aws.imds_endpoint"),
        ec2: endpoint(&raw.aws.ec2_endpoint, "aws.ec2_endpoint"),
        route53: endpoint(&raw.aws.route53_endpoint, "aws.route53_endpoint"),
    };

    let fencing = raw.fencing.as_ref().and_then(|f| {
        if role == Role::Witness {
            c.fail(f.method.span(), "fencing", "the witness fences nobody");
            return None;
        }
        if f.method.get_ref() != "aws-stop-instance" {
            c.fail(
                f.method.span(),
                "fencing.method",
                format!(
                    "{:?} is not a fencing method: use \"aws-stop-instance\"",
                    f.method.get_ref()
                ),
            );
            return None;
        }
        let Some(id) = &f.peer_instance_id else {
            c.fail(
                f.method.span(),
                "fencing.peer_instance_id",
                "method = \"aws-stop-instance\" needs the peer's instance id (i-0123456789abcdef0)",
            );
            return None;
        };
        let v = id.get_ref();
        let ok = v.strip_prefix("i-").is_some_and(|h| {
            (8..=17).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            c.fail(
                id.span(),
                "fencing.peer_instance_id",
                format!("{v:?} is not an EC2 instance id (i-0123456789abcdef0)"),
            );
            return None;
        }
        Some(Fencing::AwsStopInstance {
            peer_instance_id: v.clone(),
        })
    });

    errors.append(&mut c.errors);
    NodeConfig {
        version: *raw.version.get_ref(),
        array_name,
        node: Node {
            name: node_name,
            id,
            role,
        },
        interfaces,
        floating,
        witness,
        cluster_key,
        admin_password_hash: hash,
        console_idle_timeout,
        luns,
        hosts,
        timeouts,
        ntp_server,
        aws,
        fencing,
    }
}

fn validate_interfaces(c: &mut Check, raw: &[Spanned<RawInterface>]) -> Vec<Interface> {
    let mut interfaces = Vec::new();
    let mut names = BTreeSet::new();
    let mut purposes = Vec::new();
    for spanned in raw {
        let i = spanned.get_ref();
        let name = i.name.get_ref().clone();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            c.fail(
                i.name.span(),
                "interface.name",
                format!("{name:?} is not a network interface name (at most 15 characters)"),
            );
        } else if !names.insert(name.clone()) {
            c.fail(
                i.name.span(),
                "interface.name",
                format!("{name:?} is configured twice"),
            );
        }
        if purposes.contains(&i.purpose) {
            c.fail(
                i.name.span(),
                "interface.purpose",
                "only one interface may have each purpose (client, interconnect)",
            );
        }
        purposes.push(i.purpose);
        let addressing = match (i.dhcp, &i.address) {
            (true, Some(a)) => {
                c.fail(
                    a.span(),
                    "interface.address",
                    "either dhcp = true or a static address, not both",
                );
                Addressing::Dhcp
            }
            (true, None) => {
                if let Some(g) = &i.gateway {
                    c.fail(
                        g.span(),
                        "interface.gateway",
                        "with dhcp = true the gateway comes from the lease",
                    );
                }
                Addressing::Dhcp
            }
            (false, None) => {
                c.fail(
                    i.name.span(),
                    "interface.address",
                    format!("interface {name:?} needs dhcp = true or address = \"a.b.c.d/nn\""),
                );
                Addressing::Dhcp
            }
            (false, Some(a)) => match parse_cidr(a.get_ref()) {
                Ok((address, prefix_len)) => {
                    let gateway = match &i.gateway {
                        None => None,
                        Some(g) => match g.get_ref().parse::<IpAddr>() {
                            Ok(ip) => Some(ip),
                            Err(_) => {
                                c.fail(
                                    g.span(),
                                    "interface.gateway",
                                    format!("{:?} is not an IP address", g.get_ref()),
                                );
                                None
                            }
                        },
                    };
                    Addressing::Static {
                        address,
                        prefix_len,
                        gateway,
                    }
                }
                Err(e) => {
                    c.fail(a.span(), "interface.address", e);
                    Addressing::Dhcp
                }
            },
        };
        if let Some(mtu) = &i.mtu {
            if !(576..=9216).contains(mtu.get_ref()) {
                c.fail(mtu.span(), "interface.mtu", "must be between 576 and 9216");
            }
        }
        interfaces.push(Interface {
            name,
            purpose: i.purpose,
            addressing,
            mtu: i.mtu.as_ref().map(|m| *m.get_ref()),
        });
    }
    interfaces
}

const METHODS: &str = "\"arp\", \"aws-secondary-ip\", \"aws-route-table\" or \"aws-route53\"";

/// Why `address/prefix_len` cannot be a floating address, if it cannot: it must be one
/// unicast host address, because acquire puts it on an interface and release takes it off.
pub fn floating_address_problem(address: IpAddr, prefix_len: u8) -> Option<String> {
    if address.is_unspecified() || address.is_loopback() || address.is_multicast() {
        return Some(format!("{address} is not a unicast host address"));
    }
    if let IpAddr::V4(v4) = address {
        if v4.is_broadcast() {
            return Some(format!("{address} is not a unicast host address"));
        }
        // /31 and /32 have no network or broadcast address (RFC 3021).
        if prefix_len <= 30 {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
            let host = u32::from(v4) & host_bits;
            if host == 0 || host == host_bits {
                return Some(format!(
                    "{address} is the network or broadcast address of {address}/{prefix_len}"
                ));
            }
        }
    }
    None
}

fn validate_floating(
    c: &mut Check,
    raw: &Spanned<RawFloating>,
    interfaces: &[Interface],
) -> Option<Floating> {
    let f = raw.get_ref();
    let (address, prefix_len) = match parse_cidr(f.address.get_ref()) {
        Ok(a) => a,
        Err(e) => {
            c.fail(f.address.span(), "floating.address", e);
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        }
    };
    if parse_cidr(f.address.get_ref()).is_ok() {
        if let Some(problem) = floating_address_problem(address, prefix_len) {
            c.fail(f.address.span(), "floating.address", problem);
        }
        // Release takes the floating address off the node: were it an interface's own,
        // the node would lose that address.
        for i in interfaces {
            if let Addressing::Static { address: own, .. } = i.addressing {
                if own == address {
                    c.fail(
                        f.address.span(),
                        "floating.address",
                        format!(
                            "{address} is interface {}'s own address: the floating address \
                             must be one that no interface has, since release removes it",
                            i.name
                        ),
                    );
                }
            }
        }
    }
    let needs = |c: &mut Check, v: &Option<Spanned<String>>, key: &str, method: &str| -> String {
        match v {
            Some(s) if !s.get_ref().is_empty() => s.get_ref().clone(),
            _ => {
                c.fail(
                    f.method.span(),
                    key,
                    format!("method = \"{method}\" needs {key}"),
                );
                String::new()
            }
        }
    };
    let method = match f.method.get_ref().as_str() {
        "arp" => TakeoverMethod::Arp,
        "aws-secondary-ip" => TakeoverMethod::AwsSecondaryIp,
        "aws-route-table" => {
            if f.route_table_ids.is_empty() {
                c.fail(
                    f.method.span(),
                    "floating.route_table_ids",
                    "method = \"aws-route-table\" needs route_table_ids = [\"rtb-...\"]",
                );
            }
            for r in &f.route_table_ids {
                if !r.get_ref().starts_with("rtb-") {
                    c.fail(
                        r.span(),
                        "floating.route_table_ids",
                        format!("{:?} is not a route table id (rtb-...)", r.get_ref()),
                    );
                }
            }
            TakeoverMethod::AwsRouteTable {
                route_table_ids: f
                    .route_table_ids
                    .iter()
                    .map(|r| r.get_ref().clone())
                    .collect(),
            }
        }
        "aws-route53" => TakeoverMethod::AwsRoute53 {
            hosted_zone_id: needs(
                c,
                &f.hosted_zone_id,
                "floating.hosted_zone_id",
                "aws-route53",
            ),
            record_name: needs(c, &f.record_name, "floating.record_name", "aws-route53"),
            ttl: f.ttl.as_ref().map_or(10, |t| *t.get_ref()),
        },
        other => {
            c.fail(
                f.method.span(),
                "floating.method",
                format!("{other:?} is not a takeover method: use {METHODS}"),
            );
            return None;
        }
    };
    let garp = validate_garp(c, f, &method);
    // EC2's private addresses, route-table targets for them and A records are IPv4.
    if address.is_ipv6() && method != TakeoverMethod::Arp {
        c.fail(
            f.address.span(),
            "floating.address",
            format!(
                "method = {:?} moves an IPv4 address; {} is IPv6 (use method = \"arp\")",
                f.method.get_ref(),
                address
            ),
        );
    }
    Some(Floating {
        address,
        prefix_len,
        method,
        garp,
    })
}

fn validate_garp(c: &mut Check, f: &RawFloating, method: &TakeoverMethod) -> Garp {
    let d = Garp::default();
    if *method != TakeoverMethod::Arp {
        let spans = [
            f.garp_count.as_ref().map(|v| v.span()),
            f.garp_interval_ms.as_ref().map(|v| v.span()),
            f.garp_repeat_after_ms.as_ref().map(|v| v.span()),
        ];
        if let Some(span) = spans.into_iter().flatten().next() {
            c.fail(
                span,
                "floating.garp",
                "garp_count, garp_interval_ms and garp_repeat_after_ms apply to method = \"arp\" \
                 only: a cloud network does not forward gratuitous ARP",
            );
        }
        return d;
    }
    let count = match &f.garp_count {
        Some(v) if !(1..=100).contains(v.get_ref()) => {
            c.fail(v.span(), "floating.garp_count", "must be between 1 and 100");
            d.count
        }
        Some(v) => *v.get_ref(),
        None => d.count,
    };
    let interval = c.milliseconds(
        &f.garp_interval_ms,
        "floating.garp_interval_ms",
        d.interval,
        (0, 5_000),
    );
    let repeat_after = match &f.garp_repeat_after_ms {
        None => d.repeat_after,
        Some(v) => match *v.get_ref() {
            0 => None,
            ms @ 100..=600_000 => Some(Duration::from_millis(ms)),
            _ => {
                c.fail(
                    v.span(),
                    "floating.garp_repeat_after_ms",
                    "must be 0 (no second burst) or between 100 and 600000",
                );
                d.repeat_after
            }
        },
    };
    let garp = Garp {
        count,
        interval,
        repeat_after,
    };
    if garp.burst() > Garp::MAX_BURST {
        let span = f
            .garp_interval_ms
            .as_ref()
            .map(|v| v.span())
            .or_else(|| f.garp_count.as_ref().map(|v| v.span()))
            .unwrap_or(0..0);
        c.fail(
            span,
            "floating.garp_interval_ms",
            format!(
                "the first burst, (garp_count - 1) × garp_interval_ms = {} ms, must fit in {} ms: \
                 acquire waits for it, and star-heartbeat waits 15 s for acquire",
                garp.burst().as_millis(),
                Garp::MAX_BURST.as_millis()
            ),
        );
    }
    garp
}

/// `http://HOST:PORT`: star-witness speaks HTTP/1.1 (docs/witness.md).
pub fn parse_witness_url(url: &str) -> Result<Witness, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: the witness is reached as http://HOST:PORT"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?} has no port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{url:?}: the port must be 1 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(Witness {
        host: host.to_string(),
        port,
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board/examples")
    }

    fn example(name: &str) -> String {
        std::fs::read_to_string(examples().join(name)).unwrap()
    }

    /// Every message for `text`, as printed.
    fn refused(text: &str) -> Vec<String> {
        NodeConfig::from_toml(text, Path::new("star.toml"))
            .expect_err("must be refused")
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    /// The lab's ctl1 with one line replaced.
    fn ctl1_with(from: &str, to: &str) -> String {
        let text = example("lab-ctl1.star.toml");
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    }

    #[test]
    fn every_example_is_valid() {
        let mut seen = 0;
        for entry in std::fs::read_dir(examples()).unwrap() {
            let path = entry.unwrap().path();
            let cfg = NodeConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cfg.version, VERSION);
            seen += 1;
        }
        assert_eq!(seen, 6, "qemu, virtualbox, aws-ec2 and the lab's three");
    }

    #[test]
    fn the_lab_pair_agrees_and_differs_where_it_must() {
        let c1 = NodeConfig::from_toml(&example("lab-ctl1.star.toml"), Path::new("c1")).unwrap();
        let c2 = NodeConfig::from_toml(&example("lab-ctl2.star.toml"), Path::new("c2")).unwrap();
        let w = NodeConfig::from_toml(&example("lab-witness.star.toml"), Path::new("w")).unwrap();
        assert_eq!((c1.node.id, c2.node.id, w.node.id), (1, 2, 3));
        assert_eq!(c1.cluster_key, c2.cluster_key);
        assert_eq!(c1.cluster_key, w.cluster_key);
        assert_eq!(c1.floating, c2.floating);
        assert_eq!(c1.array_name, w.array_name);
        assert_ne!(
            c1.interface(Purpose::Interconnect).unwrap().addressing,
            c2.interface(Purpose::Interconnect).unwrap().addressing
        );
        assert_eq!(c1.timeouts, c2.timeouts);
        // The lab's timing: under 5 s from a death to the survivor's promotion steps.
        assert_eq!(c1.timeouts.msgwait(), Duration::from_secs(2));
        assert_eq!(c1.timeouts.worst_case_takeover(), Duration::from_secs(3));
        assert_eq!(c1.luns[0].size_bytes, 512 << 20);
        assert_eq!(w.node.role, Role::Witness);
    }

    #[test]
    fn aws_example_uses_the_secondary_ip_and_time_sync() {
        let c = NodeConfig::from_toml(&example("aws-ec2.star.toml"), Path::new("u")).unwrap();
        assert_eq!(c.floating.unwrap().method, TakeoverMethod::AwsSecondaryIp);
        assert_eq!(c.ntp_server.as_deref(), Some("169.254.169.123"));
        assert!(c
            .interfaces
            .iter()
            .all(|i| i.addressing == Addressing::Dhcp));
    }

    #[test]
    fn unknown_key() {
        assert_eq!(
            refused(&ctl1_with("[array]\n", "[array]\ncolour = \"blue\"\n")),
            vec!["star.toml:6:1: colour: unknown field `colour`, expected `name`"]
        );
    }

    #[test]
    fn wrong_version() {
        assert_eq!(
            refused(&ctl1_with("version = 1", "version = 2")),
            vec!["star.toml:3:11: version: this STAR reads star.toml version 1, not 2"]
        );
    }

    #[test]
    fn controller_id_and_role() {
        assert_eq!(
            refused(&ctl1_with("id = 1 ", "id = 3 ")),
            vec!["star.toml:10:6: node.id: a controller is node 1 or 2, not 3"]
        );
        let e = refused(&ctl1_with("role = \"controller\"", "role = \"boss\""));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "star.toml:11:8: role: unknown variant `boss`, expected `controller` or `witness`"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn bad_addresses() {
        assert_eq!(
            refused(&ctl1_with("192.0.2.11/24", "192.0.2.11")),
            vec!["star.toml:17:11: interface.address: \"192.0.2.11\" needs a prefix length, like 10.0.1.11/24"]
        );
        assert_eq!(
            refused(&ctl1_with("192.0.2.11/24", "192.0.2.311/24")),
            vec!["star.toml:17:11: interface.address: \"192.0.2.311\" is not an IP address"]
        );
        assert_eq!(
            refused(&ctl1_with("address = \"192.0.2.11/24\"", "dhcp = true\naddress = \"192.0.2.11/24\"")),
            vec!["star.toml:18:11: interface.address: either dhcp = true or a static address, not both"]
        );
    }

    #[test]
    fn missing_interconnect_and_floating() {
        let text = ctl1_with("purpose = \"interconnect\"", "purpose = \"client\"");
        assert_eq!(
            refused(&text),
            vec![
                "star.toml:22:8: interface.purpose: only one interface may have each purpose (client, interconnect)",
                "star.toml:1:1: interface.purpose: a controller needs an interface with purpose = \"interconnect\"",
            ]
        );
    }

    #[test]
    fn bad_takeover_method_lists_the_methods() {
        assert_eq!(
            refused(&ctl1_with("method = \"arp\"", "method = \"bgp\"")),
            vec!["star.toml:28:10: floating.method: \"bgp\" is not a takeover method: use \"arp\", \"aws-secondary-ip\", \"aws-route-table\" or \"aws-route53\""]
        );
        let e = refused(&ctl1_with("method = \"arp\"", "method = \"aws-route53\""));
        assert_eq!(
            e,
            vec![
                "star.toml:28:10: floating.hosted_zone_id: method = \"aws-route53\" needs floating.hosted_zone_id",
                "star.toml:28:10: floating.record_name: method = \"aws-route53\" needs floating.record_name",
            ]
        );
    }

    #[test]
    fn garp_defaults_and_keys() {
        let c = NodeConfig::from_toml(&example("lab-ctl1.star.toml"), Path::new("c1")).unwrap();
        let garp = c.floating.unwrap().garp;
        assert_eq!(garp, Garp::default());
        assert_eq!(
            (garp.count, garp.interval, garp.repeat_after),
            (5, Duration::from_millis(200), Some(Duration::from_secs(5))),
            "keepalived's and IPaddr2's numbers"
        );
        assert_eq!(garp.burst(), Duration::from_millis(800));

        let text = ctl1_with(
            "method = \"arp\"",
            "method = \"arp\"\ngarp_count = 3\ngarp_interval_ms = 50\ngarp_repeat_after_ms = 0",
        );
        let c = NodeConfig::from_toml(&text, Path::new("c1")).unwrap();
        assert_eq!(
            c.floating.unwrap().garp,
            Garp {
                count: 3,
                interval: Duration::from_millis(50),
                repeat_after: None,
            }
        );
    }

    #[test]
    fn garp_keys_are_checked() {
        let with = |keys: &str| {
            refused(&ctl1_with(
                "method = \"arp\"",
                &format!("method = \"arp\"\n{keys}"),
            ))
        };
        assert_eq!(
            with("garp_count = 0"),
            vec!["star.toml:29:14: floating.garp_count: must be between 1 and 100"]
        );
        assert_eq!(
            with("garp_interval_ms = 6000"),
            vec!["star.toml:29:20: floating.garp_interval_ms: must be between 0 and 5000"]
        );
        assert_eq!(
            with("garp_repeat_after_ms = 50"),
            vec!["star.toml:29:24: floating.garp_repeat_after_ms: must be 0 (no second burst) or between 100 and 600000"]
        );
        assert_eq!(
            with("garp_count = 30\ngarp_interval_ms = 200"),
            vec!["star.toml:30:20: floating.garp_interval_ms: the first burst, (garp_count - 1) × garp_interval_ms = 5800 ms, must fit in 5000 ms: acquire waits for it, and star-heartbeat waits 15 s for acquire"]
        );
        assert_eq!(
            refused(&ctl1_with(
                "method = \"arp\"",
                "method = \"aws-secondary-ip\"\ngarp_count = 3"
            )),
            vec!["star.toml:29:14: floating.garp: garp_count, garp_interval_ms and garp_repeat_after_ms apply to method = \"arp\" only: a cloud network does not forward gratuitous ARP"]
        );
    }

    #[test]
    fn the_floating_address_is_nobody_elses() {
        assert_eq!(
            refused(&ctl1_with("192.0.2.100/24", "192.0.2.11/24")),
            vec!["star.toml:27:11: floating.address: 192.0.2.11 is interface eth0's own address: the floating address must be one that no interface has, since release removes it"]
        );
        assert_eq!(
            refused(&ctl1_with("192.0.2.100/24", "192.0.2.255/24")),
            vec!["star.toml:27:11: floating.address: 192.0.2.255 is the network or broadcast address of 192.0.2.255/24"]
        );
        assert_eq!(
            refused(&ctl1_with("192.0.2.100/24", "224.0.0.18/24")),
            vec!["star.toml:27:11: floating.address: 224.0.0.18 is not a unicast host address"]
        );
        assert_eq!(
            floating_address_problem("192.0.2.0".parse().unwrap(), 31),
            None
        );
        assert_eq!(
            floating_address_problem("192.0.2.255".parse().unwrap(), 32),
            None
        );
        assert!(floating_address_problem("192.0.2.0".parse().unwrap(), 24).is_some());
        assert!(floating_address_problem("::".parse().unwrap(), 64).is_some());
        assert!(floating_address_problem("ff02::1".parse().unwrap(), 64).is_some());
        assert_eq!(
            floating_address_problem("2001:db8::100".parse().unwrap(), 64),
            None
        );
    }

    #[test]
    fn key_hash_witness_and_luns() {
        assert_eq!(
            refused(&ctl1_with("key = \"5f0c", "key = \"zz0c")),
            vec!["star.toml:36:7: cluster.key: must be at least 32 bytes as hex (64 hex digits): make one with `head -c 32 /dev/urandom | xxd -p -c 64`"]
        );
        assert_eq!(
            refused(&ctl1_with("password_hash = \"$6$", "password_hash = \"plain")),
            vec!["star.toml:40:17: admin.password_hash: is not a crypt(3) hash: expected $6$ (SHA-512-crypt), $5$ (SHA-256-crypt) or $y$ (yescrypt); make one with `mkpasswd -m sha-512` or `mkpasswd -m yescrypt`"]
        );
        assert_eq!(
            refused(&ctl1_with("password_hash = \"$6$starlab$vr5", "password_hash = \"$6$starlab$vr")),
            vec!["star.toml:40:17: admin.password_hash: $6$ hash: the digest must be 86 characters of [./0-9A-Za-z] (it has 85): the hash was cut or mistyped; make one with `mkpasswd -m sha-512` or `mkpasswd -m yescrypt`"]
        );
        assert_eq!(
            refused(&ctl1_with("[admin]\n", "[admin]\nidle_timeout_min = 2000\n")),
            vec!["star.toml:39:20: admin.idle_timeout_min: must be 0 (never) to 1440 minutes (a day)"]
        );
        // No [admin] at all: valid, and no login will be accepted.
        let text = example("lab-ctl1.star.toml");
        let start = text.find("[admin]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        let c = NodeConfig::from_toml(
            &format!("{}{}", &text[..start], &text[end..]),
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.admin_password_hash, None);
        assert_eq!(c.console_idle_timeout, Some(Duration::from_secs(900)));
        let c = NodeConfig::from_toml(
            &ctl1_with("[admin]\n", "[admin]\nidle_timeout_min = 0\n"),
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.console_idle_timeout, None);
        assert!(
            crate::password::verify("star", c.admin_password_hash.as_deref().unwrap()).unwrap()
        );
        assert_eq!(
            refused(&ctl1_with("http://198.51.100.3:7400", "udp://198.51.100.3:7400")),
            vec!["star.toml:31:7: witness.url: \"udp://198.51.100.3:7400\": the witness is reached as http://HOST:PORT"]
        );
        assert_eq!(
            refused(&ctl1_with("luns = [\"data0\", ", "luns = [\"data9\", ")),
            vec!["star.toml:59:9: host.luns: no LUN named \"data9\" (LUNs: data0, data1, data2)"]
        );
        assert_eq!(
            refused(&ctl1_with("size = \"512MiB\"", "size = \"1.5GB\"")),
            vec!["star.toml:46:8: lun.size: \"1.5GB\" is not a size: a whole number and a unit, like 10GiB or 512MiB"]
        );
    }

    #[test]
    fn fencing_names_the_peer_instance() {
        let text = example("aws-ec2.star.toml")
            + "\n[fencing]\nmethod = \"aws-stop-instance\"\npeer_instance_id = \"i-0123456789abcdef0\"\n";
        let c = NodeConfig::from_toml(&text, Path::new("star.toml")).unwrap();
        assert_eq!(
            c.fencing,
            Some(Fencing::AwsStopInstance {
                peer_instance_id: "i-0123456789abcdef0".into()
            })
        );
        let e = refused(
            &(example("aws-ec2.star.toml")
                + "\n[fencing]\nmethod = \"aws-stop-instance\"\npeer_instance_id = \"ctl2\"\n"),
        );
        assert!(e[0].ends_with("fencing.peer_instance_id: \"ctl2\" is not an EC2 instance id (i-0123456789abcdef0)"), "{e:?}");
        let e = refused(&(example("aws-ec2.star.toml") + "\n[fencing]\nmethod = \"ipmi\"\n"));
        assert!(
            e[0].ends_with(
                "fencing.method: \"ipmi\" is not a fencing method: use \"aws-stop-instance\""
            ),
            "{e:?}"
        );
    }

    #[test]
    fn aws_endpoints_are_urls() {
        let text = example("aws-ec2.star.toml")
            + "\n[aws]\nec2_endpoint = \"https://vpce-0a1b.ec2.eu-west-1.vpce.amazonaws.com/\"\n\
               imds_endpoint = \"http://127.0.0.1:8080\"\n";
        let c = NodeConfig::from_toml(&text, Path::new("star.toml")).unwrap();
        assert_eq!(
            c.aws.ec2.as_deref(),
            Some("https://vpce-0a1b.ec2.eu-west-1.vpce.amazonaws.com")
        );
        assert_eq!(c.aws.imds.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(c.aws.route53, None);
        let v6 = example("aws-ec2.star.toml").replace("10.0.1.100/24", "fd00::100/64");
        let e = refused(&v6);
        assert!(
            e.iter().any(|l| l.ends_with(
                "floating.address: method = \"aws-secondary-ip\" moves an IPv4 address; fd00::100 is IPv6 (use method = \"arp\")"
            )),
            "{e:?}"
        );
        let bad = example("aws-ec2.star.toml") + "\n[aws]\nroute53_endpoint = \"route53.local\"\n";
        let e = refused(&bad);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].ends_with("aws.route53_endpoint: \"route53.local\" is not an endpoint: http://HOST[:PORT] or https://HOST[:PORT]"),
            "{e:?}"
        );
    }

    #[test]
    fn timeouts_must_hang_together() {
        const STOP: &str = "a node must stop serving before its peer may presume it dead";
        const FENCE: &str = "a takeover waits 2 × watchdog after poisoning the peer, and the \
                             peer needs up to interval + io_timeout to stop before its \
                             watchdog counts";
        assert_eq!(
            refused(&ctl1_with("io_timeout_ms = 400", "io_timeout_ms = 900")),
            vec![
                format!("star.toml:65:17: timeouts.io_timeout_ms: heartbeat_interval_ms + io_timeout_ms (1000 ms) must be shorter than peer_dead_ms (1000 ms): {STOP}"),
                format!("star.toml:67:16: timeouts.watchdog_sec: must be at least 2 × (heartbeat_interval_ms + io_timeout_ms) = 2000 ms: {FENCE}"),
            ]
        );
        assert_eq!(
            refused(&ctl1_with("peer_dead_ms = 1000", "peer_dead_ms = 500")),
            vec![format!("star.toml:65:17: timeouts.io_timeout_ms: heartbeat_interval_ms + io_timeout_ms (500 ms) must be shorter than peer_dead_ms (500 ms): {STOP}")]
        );
        assert_eq!(
            refused(&ctl1_with("heartbeat_interval_ms = 100", "heartbeat_interval_ms = 300")),
            vec![
                "star.toml:66:16: timeouts.peer_dead_ms: must be at least 4 heartbeat intervals (1200 ms)".to_string(),
                format!("star.toml:67:16: timeouts.watchdog_sec: must be at least 2 × (heartbeat_interval_ms + io_timeout_ms) = 1400 ms: {FENCE}"),
            ]
        );
        assert_eq!(
            refused(&ctl1_with("watchdog_sec = 1 ", "watchdog_sec = 0 ")),
            vec!["star.toml:67:16: timeouts.watchdog_sec: must be between 1 and 300"]
        );
    }

    #[test]
    fn the_witness_serves_nothing() {
        let text = example("lab-witness.star.toml")
            + "\n[floating]\naddress = \"192.0.2.100/24\"\nmethod = \"arp\"\n";
        let e = refused(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].ends_with("floating: the witness has no floating address"),
            "{e:?}"
        );
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("100").is_err(), "less than a MiB");
        assert!(valid_iqn("iqn.2026-11.example.lab:client1"));
        assert!(!valid_iqn("iqn.26-11.example"));
        assert!(!valid_iqn("IQN.2026-11.example"));
        assert_eq!(
            parse_witness_url("http://[fd00::3]:7400").unwrap(),
            Witness {
                host: "fd00::3".into(),
                port: 7400
            }
        );
    }
}
