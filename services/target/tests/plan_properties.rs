//! Properties of the planner, checked against the configfs simulator over many random
//! array configs (a fixed seed, so a failure reproduces):
//!
//! - from any state A the simulator holds, applying plan(B, A) breaks no kernel rule and
//!   no STAR invariant, and leaves exactly B;
//! - plan(B, B) is empty;
//! - a change of ALUA roles alone is nothing but `alua_access_state` writes.
//!
//! States come from `desired_state` on random configs: LUNs appearing, disappearing,
//! changing serial (identity) or partition (device path), hosts with and without CHAP,
//! either node, any roles, portals moving, and now and then another dbroot.

use star_core::array_config::{ArrayConfig, Chap, Host, Lun};
use star_target::desired::{check_config, desired_state, AluaRoles};
use star_target::model::{Features, LioState};
use star_target::plan::{plan, Op};
use star_target::sim::Sim;
use std::net::SocketAddr;

/// splitmix64: small, deterministic, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// `count` distinct items (fewer if there are not that many), in a random order.
    fn pick<T: Clone>(&mut self, items: &[T], count: usize) -> Vec<T> {
        let mut pool = items.to_vec();
        let mut out = Vec::new();
        while out.len() < count && !pool.is_empty() {
            let i = self.below(pool.len() as u64) as usize;
            out.push(pool.remove(i));
        }
        out
    }

    /// A random subset of at most `max` items, in a random order.
    fn subset<T: Clone>(&mut self, items: &[T], max: usize) -> Vec<T> {
        let count = self.below(max as u64 + 1) as usize;
        self.pick(items, count)
    }
}

const LUN_NAMES: &[&str] = &["data0", "data1", "vm-a", "vm-b", "logs"];
const HOST_NAMES: &[&str] = &["esx1", "esx2", "win1", "linux1"];
const PORTALS: &[&str] = &[
    "10.0.0.1:3260",
    "10.0.0.2:3260",
    "[fd00::7]:3260",
    "10.0.0.3:3261",
];

fn random_config(rng: &mut Rng, features: &Features) -> ArrayConfig {
    loop {
        let mut c = ArrayConfig::new("star-lab");
        // Mostly the same few names, so that LUNs survive from one state to the next.
        let count = 1 + rng.below(4) as usize;
        let names = rng.pick(LUN_NAMES, count);
        let ids = rng.pick(&[0u16, 1, 2, 5], names.len());
        let parts = rng.pick(&[2u32, 3, 4, 5], names.len());
        for (i, name) in names.iter().enumerate() {
            let which = LUN_NAMES.iter().position(|n| n == name).unwrap() as u64;
            c.luns.push(Lun {
                name: name.to_string(),
                id: ids[i],
                size_bytes: 1 << 30,
                // A small pool per name: the same LUN now and then changes identity.
                serial: format!("{:032x}", which * 16 + rng.below(3)),
                partition: parts[i],
                partuuid: format!("6c7f4e1a-0000-4000-8000-{:012x}", which * 16 + rng.below(2)),
            });
        }
        let all_chap = rng.chance(50);
        for host in rng.subset(HOST_NAMES, 4) {
            let chap = if features.acl_authentication {
                rng.chance(50)
            } else {
                all_chap
            };
            c.hosts.push(Host {
                name: host.to_string(),
                iqn: format!("iqn.2026-11.example.lab:{host}"),
                luns: rng
                    .subset(&names, names.len())
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                chap: chap.then(|| {
                    let mutual = rng.chance(40);
                    Chap {
                        userid: format!("{host}-user"),
                        secret: format!("secret-{:06}", rng.below(3)),
                        mutual_userid: mutual.then(|| "star-lab".to_string()),
                        mutual_secret: mutual.then(|| "mutual-secret-1".to_string()),
                    }
                }),
            });
        }
        if check_config(&c, features).is_ok() {
            return c;
        }
    }
}

fn random_roles(rng: &mut Rng) -> AluaRoles {
    AluaRoles {
        active: [None, Some(1), Some(2)][rng.below(3) as usize],
        peer_healthy: rng.chance(70),
    }
}

struct Setting {
    node: u8,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    by_partuuid: bool,
    dbroot: Option<&'static str>,
}

fn random_setting(rng: &mut Rng) -> Setting {
    let local = rng.below(PORTALS.len() as u64) as usize;
    let peer = (local + 1 + rng.below(PORTALS.len() as u64 - 1) as usize) % PORTALS.len();
    Setting {
        node: 1 + rng.below(2) as u8,
        local: PORTALS[local].parse().unwrap(),
        peer: rng.chance(85).then(|| PORTALS[peer].parse().unwrap()),
        by_partuuid: rng.chance(70),
        dbroot: rng.chance(10).then_some("/etc/target"),
    }
}

fn state(c: &ArrayConfig, s: &Setting, roles: AluaRoles, features: &Features) -> LioState {
    let mut state = desired_state(c, s.node, s.local, s.peer, roles, features, |lun| {
        if s.by_partuuid {
            format!("/dev/disk/by-partuuid/{}", lun.partuuid)
        } else {
            format!("/dev/vdb{}", lun.partition)
        }
    });
    if let Some(dbroot) = s.dbroot {
        state.dbroot = dbroot.to_string();
    }
    state
}

fn random_state(rng: &mut Rng, features: &Features) -> LioState {
    let c = random_config(rng, features);
    let s = random_setting(rng);
    state(&c, &s, random_roles(rng), features)
}

/// Applies `ops` to the simulator, failing with the whole plan and the step that broke.
fn run(sim: &mut Sim, ops: &[Op], what: &str) {
    if let Err((i, e)) = sim.apply_all(ops) {
        let listing: Vec<String> = ops
            .iter()
            .enumerate()
            .map(|(n, op)| format!("{}{n:3} {op}", if n == i { ">" } else { " " }))
            .collect();
        panic!(
            "{what}: step {i} ({}) failed: {e}\n{}",
            ops[i],
            listing.join("\n")
        );
    }
}

const FEATURE_SETS: [Features; 4] = [
    Features {
        tpg_rtpi: true,
        acl_authentication: true,
        discard: true,
    },
    Features {
        tpg_rtpi: false,
        acl_authentication: false,
        discard: false,
    },
    Features {
        tpg_rtpi: true,
        acl_authentication: false,
        discard: true,
    },
    Features {
        tpg_rtpi: false,
        acl_authentication: true,
        discard: false,
    },
];

#[test]
fn random_transitions_converge_without_violations() {
    for (f, features) in FEATURE_SETS.iter().enumerate() {
        let mut rng = Rng(0x5eed_0000 + f as u64);
        for round in 0..150 {
            let a = random_state(&mut rng, features);
            let b = random_state(&mut rng, features);
            let mut sim = Sim::new(*features);
            let empty = sim.state().unwrap();
            run(
                &mut sim,
                &plan(&a, &empty),
                &format!("features {f} round {round}: build A"),
            );
            assert_eq!(sim.state().unwrap(), a, "features {f} round {round}: A");
            assert_eq!(plan(&a, &a), vec![]);

            let ops = plan(&b, &a);
            run(
                &mut sim,
                &ops,
                &format!("features {f} round {round}: A to B"),
            );
            let reached = sim.state().unwrap();
            assert_eq!(reached, b, "features {f} round {round}: B");
            assert_eq!(plan(&b, &reached), vec![]);

            // And all the way down again.
            let ops = plan(&LioState::default(), &reached);
            run(
                &mut sim,
                &ops,
                &format!("features {f} round {round}: teardown"),
            );
            let mut left = sim.state().unwrap();
            left.dbroot = LioState::default().dbroot;
            assert_eq!(left, LioState::default());
        }
    }
}

/// A config and what an operator does to it next: the everyday changes, one at a time,
/// on one controller that keeps its node number and portals.
#[test]
fn evolving_configs_stay_in_step() {
    for (f, features) in FEATURE_SETS.iter().enumerate() {
        let mut rng = Rng(0xe70_0000 + f as u64);
        let mut sim = Sim::new(*features);
        let setting = Setting {
            node: 1 + f as u8 % 2,
            local: PORTALS[0].parse().unwrap(),
            peer: Some(PORTALS[1].parse().unwrap()),
            by_partuuid: true,
            dbroot: None,
        };
        let mut config = random_config(&mut rng, features);
        let mut roles = random_roles(&mut rng);
        let mut current = sim.state().unwrap();
        let mut built = false;
        for step in 0..200 {
            let mut next = config.clone();
            let mut next_roles = roles;
            match rng.below(5) {
                0 => next_roles = random_roles(&mut rng),
                1 => next = random_config(&mut rng, features),
                2 => {
                    // A host gains or loses a LUN.
                    if let (Some(h), Some(l)) = (next.hosts.first_mut(), config.luns.first()) {
                        if let Some(i) = h.luns.iter().position(|n| *n == l.name) {
                            h.luns.remove(i);
                        } else {
                            h.luns.push(l.name.clone());
                        }
                    }
                }
                3 => {
                    if !next.hosts.is_empty() {
                        next.hosts.remove(0);
                    }
                }
                _ => {
                    if !next.luns.is_empty() {
                        let gone = next.luns.remove(0).name;
                        for h in &mut next.hosts {
                            h.luns.retain(|n| *n != gone);
                        }
                    }
                }
            }
            if check_config(&next, features).is_err() {
                continue;
            }
            let want = state(&next, &setting, next_roles, features);
            let ops = plan(&want, &current);
            if next == config && next_roles != roles {
                assert!(
                    ops.iter().all(|op| matches!(op, Op::Write { path, .. }
                        if path.ends_with("/alua_access_state"))),
                    "a role change is only ALUA state writes: {ops:#?}"
                );
            }
            // Only a change of rtpi could disable the local TPG, and rtpi never changes.
            let local_enable = format!("tpgt_{}/enable", setting.node);
            assert!(!built || !ops.iter().any(|op| op.path().ends_with(&local_enable)));
            run(&mut sim, &ops, &format!("features {f} step {step}"));
            built = true;
            current = sim.state().unwrap();
            assert_eq!(current, want, "features {f} step {step}");
            config = next;
            roles = next_roles;
        }
    }
}
