//! star-target: the kernel's LIO iSCSI target, driven through configfs.
//!
//! Both controllers export the same target IQN and the same LUN identities; ALUA tells
//! hosts which controller to use. This crate turns the array config into configfs state
//! and keeps configfs there, as a reconcile loop: read what the kernel has, compute what
//! it should have, apply the difference. Everything but the last step is pure.
//!
//! - [`model`]: the LIO state STAR manages ([`LioState`]: backstores with identity,
//!   attributes and ALUA groups; the iSCSI target with its two portal groups, LUNs,
//!   portals and ACLs), as plain data that compares with `==`.
//! - [`desired`]: [`desired_state`] computes what one controller should hold, from the
//!   [`ArrayConfig`](star_core::array_config::ArrayConfig), the node number, the portals,
//!   the ALUA roles and the kernel's features; [`check_config`] refuses what LIO cannot
//!   express (CHAP for some hosts only, on kernels without per-ACL authentication).
//! - [`plan`](mod@plan): [`plan()`] turns (desired, actual) into the smallest ordered list of
//!   [`Op`]s (mkdir, rmdir, write, symlink, unlink) that respects the kernel's rules:
//!   creation and teardown order, identity only while unexported, `rtpi` only while
//!   disabled, `dbroot` only before any device, one state write per ALUA group with the
//!   leaving group first. Each `Op` prints as a shell line, so a plan can be shown
//!   before it is applied.
//! - [`sim`]: an in-memory configfs that applies `Op`s, enforces the kernel's rules
//!   (ENOTEMPTY, ENOENT, EINVAL, ...) and STAR's invariants, and reads back with the same
//!   parser as the real thing. The tests run every plan through it.
//! - [`configfs`]: the real I/O: [`read_actual`] reads `/sys/kernel/config/target`,
//!   [`apply`] executes a plan with one `write()` per attribute, [`probe_features`]
//!   detects `rtpi` and per-ACL authentication by the files the kernel has.
//! - [`service`] and [`observe`]: the daemon around them (the shared disk's array config
//!   and ownership record in, configfs out, the control socket) and what it reports.
//!
//! The decisions behind the values (CHAP per ACL, the attributes set, the identity and
//! ALUA settings) are documented where they are made, in [`desired`]; the LIO facts
//! they rest on are in shared/research/lio-configfs.md.

pub mod configfs;
pub mod desired;
pub mod model;
pub mod observe;
pub mod plan;
pub mod program;
pub mod service;
pub mod sim;

pub use configfs::{apply, probe_features, read_actual, ApplyError, ReadError};
pub use desired::{check_config, check_portals, desired_state, AluaRoles};
pub use model::{Features, LioState};
pub use plan::{plan, Op};
