//! The target service: the shared disk's array config and ownership record, turned into
//! LIO state and kept that way.
//!
//! Once a second (or at once on a request) it reads the array config's generation and the
//! ownership record from the shared disk; when either changed, or when asked, it
//! reconciles: desired state from the config, actual state read back from configfs, the
//! plan between them applied in order. A standby controller thus follows the active's
//! changes without either copying files to the other.
//!
//! Control socket /run/star/target.sock (star-core's target_status protocol): status,
//! promote, demote, reconcile, and array changes (on the owner only).

use crate::configfs;
use crate::desired::{self, alua_group_name, AluaRoles};
use crate::model::{Features, LioState};
use crate::plan::plan;
use star_core::array_config::ArrayConfig;
use star_core::node_config::NodeConfig;
use star_core::target_status::{
    alua_state_name, AluaGroupStatus, ArrayChange, LunStatus, SessionStatus, TargetReply,
    TargetRequest, TargetStatus,
};
use star_disk::array::{read_config, Array};
use star_disk::io::Access;
use star_disk::locate::{partition_device, shared_disk};
use star_disk::ownership::{self, Ownership};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the shared disk is read for a new generation or owner.
pub const POLL: Duration = Duration::from_secs(1);

pub struct Paths {
    /// /sys/kernel/config/target
    pub configfs: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub socket: PathBuf,
    pub dbroot: PathBuf,
}

pub struct Service {
    node: NodeConfig,
    paths: Paths,
    listener: UnixListener,
    disk: Option<PathBuf>,
    config: Option<ArrayConfig>,
    generation: Option<u64>,
    ownership: Option<Ownership>,
    /// What was last applied: (generation, ownership). A change of either reconciles.
    applied: Option<(u64, Option<Ownership>)>,
    /// Demoted while the ownership record of this term (or older) still names us: our
    /// group stays Standby until a newer record names us again. star-heartbeat demotes
    /// when this controller must stop serving, whether or not it could write the record.
    demoted_at_term: Option<u64>,
    last_reconcile: Option<String>,
    problems: Vec<String>,
    announced: bool,
}

fn log(text: &str) {
    println!("star-target: {text}");
}

impl Service {
    pub fn new(node: NodeConfig, paths: Paths) -> Result<Service, String> {
        if let Some(dir) = paths.socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(&paths.socket);
        let listener = UnixListener::bind(&paths.socket)
            .map_err(|e| format!("{}: {e}", paths.socket.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Service {
            node,
            paths,
            listener,
            disk: None,
            config: None,
            generation: None,
            ownership: None,
            applied: None,
            demoted_at_term: None,
            last_reconcile: None,
            problems: Vec::new(),
            announced: false,
        })
    }

    pub fn run(&mut self) -> ! {
        let mut next_poll = Instant::now();
        loop {
            if Instant::now() >= next_poll {
                self.refresh(false);
                next_poll = Instant::now() + POLL;
                self.announce();
            }
            self.serve_requests();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads the shared disk; reconciles when something changed or `force`.
    fn refresh(&mut self, force: bool) {
        self.problems.clear();
        if self.disk.is_none() {
            self.disk = shared_disk(&self.paths.sys, &self.paths.dev);
            match &self.disk {
                Some(d) => log(&format!("shared disk {}", d.display())),
                None => {
                    self.problems.push(
                        "no shared disk: no disk has a STAR-META partition (star disk init)".into(),
                    );
                    return;
                }
            }
        }
        let disk = self.disk.clone().unwrap();
        match read_config(&disk) {
            Ok(stored) => {
                if let Some(p) = &stored.other_copy_problem {
                    self.problems.push(format!("array config: other copy: {p}"));
                }
                self.generation = Some(stored.generation);
                self.config = Some(stored.config);
            }
            Err(e) => {
                self.problems.push(format!("array config: {e}"));
                return;
            }
        }
        match Array::open(&disk, Access::ReadOnly).and_then(|a| ownership::read(&a.disk)) {
            Ok(o) => self.ownership = o,
            Err(e) => self.problems.push(format!("ownership record: {e}")),
        }
        let now = (self.generation.unwrap_or(0), self.ownership);
        if force || self.applied != Some(now) {
            self.reconcile();
            if self
                .last_reconcile
                .as_deref()
                .is_some_and(|r| !r.starts_with("failed"))
            {
                self.applied = Some(now);
            }
        }
    }

    fn roles(&self) -> AluaRoles {
        let demoted = |o: &Ownership| {
            o.owner == self.node.node.id && self.demoted_at_term.is_some_and(|t| o.term <= t)
        };
        match self.ownership {
            Some(o) if o.owner != 0 && !demoted(&o) => AluaRoles {
                active: Some(o.owner),
                peer_healthy: o.peer_healthy,
            },
            _ => AluaRoles {
                active: None,
                peer_healthy: true,
            },
        }
    }

    fn local_portal(&self) -> SocketAddr {
        self.config
            .as_ref()
            .and_then(|c| c.portals.iter().find(|p| p.node == self.node.node.id))
            .map(|p| SocketAddr::new(p.address, p.port))
            // Every address of this controller: the client network's, and the floating
            // address once it is here.
            .unwrap_or_else(|| "0.0.0.0:3260".parse().unwrap())
    }

    fn peer_portal(&self) -> Option<SocketAddr> {
        let peer = 3 - self.node.node.id;
        self.config
            .as_ref()
            .and_then(|c| c.portals.iter().find(|p| p.node == peer))
            .map(|p| SocketAddr::new(p.address, p.port))
    }

    /// The LUN partitions the kernel must know: the active created them on its side; on
    /// this side the kernel learns them from the GPT (BLKPG, while the others stay in use).
    fn ensure_partitions(&mut self, disk: &Path, config: &ArrayConfig) {
        let missing: Vec<u32> = config
            .luns
            .iter()
            .filter(|l| {
                partition_device(&self.paths.sys, &self.paths.dev, disk, l.partition).is_none()
            })
            .map(|l| l.partition)
            .collect();
        if missing.is_empty() {
            return;
        }
        match Array::open(disk, Access::ReadOnly) {
            Err(e) => self.problems.push(format!("{}: {e}", disk.display())),
            Ok(array) => {
                for number in missing {
                    let Some(p) = array.gpt.partition(number) else {
                        self.problems.push(format!(
                            "partition {number} is in the array config but not in the GPT"
                        ));
                        continue;
                    };
                    match array
                        .disk
                        .kernel_add_partition(number, p.start_bytes(), p.size_bytes())
                    {
                        Ok(()) => log(&format!(
                            "partition {number} ({}) made known to the kernel",
                            p.name
                        )),
                        Err(e) => self.problems.push(format!("partition {number}: {e}")),
                    }
                }
                // The device node appears when devtmpfs hears of the partition.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn reconcile(&mut self) {
        let (Some(disk), Some(config)) = (self.disk.clone(), self.config.clone()) else {
            return;
        };
        self.ensure_partitions(&disk, &config);
        let result = (|| -> Result<usize, String> {
            configfs::ensure_root(&self.paths.configfs)?;
            let features: Features = configfs::features(&self.paths.configfs);
            desired::check_config(&config, &features)?;
            let local = self.local_portal();
            let peer = self.peer_portal();
            desired::check_portals(local, peer)?;
            let (sys, dev) = (self.paths.sys.clone(), self.paths.dev.clone());
            let want: LioState = desired::desired_state(
                &config,
                self.node.node.id,
                local,
                peer,
                self.roles(),
                &features,
                |lun| {
                    partition_device(&sys, &dev, &disk, lun.partition)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| format!("{}-part{}", disk.display(), lun.partition))
                },
            );
            let mut want = want;
            want.dbroot = self.paths.dbroot.display().to_string();
            let _ = std::fs::create_dir_all(self.paths.dbroot.join("pr"));
            let _ = std::fs::create_dir_all(self.paths.dbroot.join("alua"));
            let have = configfs::read_actual(&self.paths.configfs)?;
            let ops = plan(&want, &have);
            configfs::apply(&self.paths.configfs, &ops).map_err(|e| e.to_string())?;
            Ok(ops.len())
        })();
        self.last_reconcile = Some(match result {
            Ok(0) => "no changes needed".to_string(),
            Ok(n) => {
                log(&format!(
                    "generation {}: {n} configfs changes applied; {}",
                    self.generation.unwrap_or(0),
                    self.alua_summary()
                ));
                format!("{n} configfs changes applied")
            }
            Err(e) => {
                log(&format!("reconcile failed: {e}"));
                format!("failed: {e}")
            }
        });
        if !self
            .last_reconcile
            .as_deref()
            .unwrap_or("")
            .starts_with("failed")
        {
            log(&format!(
                "exporting {} ({} LUNs, {} hosts) on {}",
                config.target_iqn,
                config.luns.len(),
                config.hosts.len(),
                self.local_portal()
            ));
        }
    }

    /// Ready after the first look at the disk, whatever it found: the control socket
    /// answers, and `star target status` says what is missing. An appliance without its
    /// shared disk yet is still one an operator must be able to reach.
    fn announce(&mut self) {
        let summary = match (&self.disk, &self.last_reconcile) {
            (None, _) => "waiting for the shared disk".to_string(),
            (Some(d), Some(r)) => format!("{}: {r}", d.display()),
            (Some(d), None) => format!("{}: {}", d.display(), self.problems.join("; ")),
        };
        if !self.announced {
            self.announced = true;
            log(&format!("ready: {summary}"));
            let _ = sd_notify::notify(&[
                sd_notify::NotifyState::Status(&summary),
                sd_notify::NotifyState::Ready,
            ]);
        }
    }

    fn alua_summary(&self) -> String {
        let roles = self.roles();
        (1..=2u8)
            .map(|g| {
                format!(
                    "{} {}",
                    alua_group_name(g),
                    alua_state_name(roles.state_of(g, self.node.node.id).code())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn serve_requests(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let reply = match serde_json::from_str::<TargetRequest>(&line) {
                Ok(req) => self.answer(req),
                Err(e) => TargetReply::Error {
                    message: format!("bad request {:?}: {e}", line.trim()),
                },
            };
            let mut text = serde_json::to_string(&reply).unwrap_or_default();
            text.push('\n');
            let _ = (&stream).write_all(text.as_bytes());
        }
    }

    fn answer(&mut self, req: TargetRequest) -> TargetReply {
        match req {
            TargetRequest::Status => TargetReply::Status {
                status: Box::new(self.status()),
            },
            TargetRequest::Reconcile => {
                self.refresh(true);
                self.done_or_failed("reconciled")
            }
            // The ownership record has one writer, star-heartbeat, which writes it before
            // it orders promote; the target only follows it (by hand, with the heartbeat
            // masked: `star target promote --disk`).
            TargetRequest::Promote { .. } => self.promote(),
            TargetRequest::Demote => self.demote(),
            TargetRequest::Array { change } => self.change(change),
        }
    }

    fn done_or_failed(&self, what: &str) -> TargetReply {
        match &self.last_reconcile {
            Some(r) if r.starts_with("failed") => TargetReply::Error { message: r.clone() },
            _ if !self.problems.is_empty() => TargetReply::Error {
                message: self.problems.join("; "),
            },
            r => TargetReply::Done {
                message: format!("{what}: {}", r.as_deref().unwrap_or("nothing to do")),
            },
        }
    }

    /// Reads the ownership record now and serves Active/Optimized if it names us.
    fn promote(&mut self) -> TargetReply {
        let me = self.node.node.id;
        if self.disk.is_none() {
            return TargetReply::Error {
                message: "no shared disk".into(),
            };
        }
        self.refresh(false);
        let Some(o) = self.ownership.filter(|o| o.owner == me) else {
            return TargetReply::Error {
                message: format!(
                    "the ownership record ({}) does not name controller {me}: it is written \
                     before promote is ordered (by star-heartbeat, or by hand with \
                     `star target promote --disk`)",
                    match self.ownership {
                        Some(o) => format!("term {}, owner {}", o.term, o.owner),
                        None => "none".into(),
                    }
                ),
            };
        };
        if self.demoted_at_term.is_some_and(|t| o.term <= t) {
            return TargetReply::Error {
                message: format!(
                    "demoted at term {}: only a newer ownership record brings this \
                     controller back",
                    o.term
                ),
            };
        }
        self.demoted_at_term = None;
        log(&format!("term {}: promoted", o.term));
        self.refresh(true);
        match self.done_or_failed("ALUA") {
            TargetReply::Done { .. } => TargetReply::Done {
                message: format!("term {}: {}", o.term, self.alua_summary()),
            },
            other => other,
        }
    }

    /// Stops serving now: our group Standby until a newer record names us again.
    fn demote(&mut self) -> TargetReply {
        self.refresh(false);
        let term = self.ownership.map_or(0, |o| o.term);
        self.demoted_at_term = Some(term);
        log(&format!("term {term}: demoted"));
        self.refresh(true);
        match self.done_or_failed("ALUA") {
            TargetReply::Done { .. } => TargetReply::Done {
                message: format!("term {term}: {}", self.alua_summary()),
            },
            other => other,
        }
    }

    fn change(&mut self, change: ArrayChange) -> TargetReply {
        let me = self.node.node.id;
        if self.ownership.map(|o| o.owner) != Some(me) {
            return TargetReply::Error {
                message: format!(
                    "controller {me} is not the active controller: array changes go through {}",
                    match self.ownership.map(|o| o.owner) {
                        Some(o @ 1..=2) => format!("controller {o}"),
                        _ => "the active controller (none is active: star target promote)".into(),
                    }
                ),
            };
        }
        let Some(disk) = self.disk.clone() else {
            return TargetReply::Error {
                message: "no shared disk".into(),
            };
        };
        match star_disk::changes::apply(&disk, &change) {
            Err(e) => TargetReply::Error {
                message: e.to_string(),
            },
            Ok((text, _)) => {
                log(&text);
                self.refresh(true);
                match self.done_or_failed("") {
                    TargetReply::Done { .. } => TargetReply::Done { message: text },
                    other => other,
                }
            }
        }
    }

    pub fn status(&self) -> TargetStatus {
        let me = self.node.node.id;
        let roles = self.roles();
        let role = match (&self.disk, roles.active) {
            (None, _) => "waiting",
            (_, Some(a)) if a == me => "active",
            _ => "standby",
        };
        let actual = configfs::read_actual(&self.paths.configfs).ok();
        let luns = self
            .config
            .iter()
            .flat_map(|c| c.luns.iter())
            .map(|l| {
                let stats = crate::observe::lun_statistics(&self.paths.configfs, &l.name);
                LunStatus {
                    name: l.name.clone(),
                    id: l.id,
                    size_bytes: l.size_bytes,
                    serial: l.serial.clone(),
                    device: actual
                        .as_ref()
                        .and_then(|a| {
                            a.devices()
                                .find(|d| d.1 == l.name)
                                .map(|d| d.2.udev_path.clone())
                        })
                        .unwrap_or_default(),
                    commands: stats.0,
                    read_mib: stats.1,
                    written_mib: stats.2,
                }
            })
            .collect();
        let sessions = self
            .config
            .as_ref()
            .map(|c| crate::observe::sessions(&self.paths.configfs, &c.target_iqn, u16::from(me)))
            .unwrap_or_default()
            .into_iter()
            .map(|(initiator, address)| SessionStatus {
                initiator,
                tpg: u16::from(me),
                address,
            })
            .collect();
        TargetStatus {
            node: me,
            role: role.into(),
            target_iqn: self.config.as_ref().map(|c| c.target_iqn.clone()),
            disk: self.disk.as_ref().map(|d| d.display().to_string()),
            generation: self.generation,
            owner: self.ownership.map(|o| o.owner),
            term: self.ownership.map(|o| o.term),
            portal: Some(self.local_portal().to_string()),
            dbroot: Some(self.paths.dbroot.display().to_string()),
            alua: (1..=2u8)
                .map(|g| {
                    let name = alua_group_name(g);
                    // What the kernel answers hosts; what the roles call for only while
                    // no LUN carries the group.
                    let state = actual
                        .as_ref()
                        .and_then(|a| crate::observe::alua_state_in_configfs(a, &name))
                        .unwrap_or_else(|| {
                            format!(
                                "{} (no LUN exported)",
                                alua_state_name(roles.state_of(g, me).code())
                            )
                        });
                    AluaGroupStatus {
                        name,
                        id: u16::from(g),
                        state,
                    }
                })
                .collect(),
            luns,
            sessions,
            last_reconcile: self.last_reconcile.clone(),
            problems: self.problems.clone(),
        }
    }
}
