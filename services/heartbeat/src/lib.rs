//! star-heartbeat: the authority on roles.
//!
//! The pure logic: the role state machine of one controller ([`role`]) and the failover
//! timing derived from the configured timeouts ([`timing`]). Neither does I/O or reads a
//! clock: the daemon ([`daemon`], with [`disk`], [`records`] and [`connections`]) turns
//! disk reads and writes, UDP heartbeats, witness answers and the results of
//! star-target and star-takeover into [`role::Event`]s, and carries out the
//! [`role::Action`]s it gets back. That split is what lets `tests/model_check.rs` run
//! the very same `step` function for two controllers against a simulated disk, witness
//! and network, through every interleaving of crashes, pauses and disk faults.

pub mod connections;
pub mod daemon;
pub mod disk;
pub mod fault;
pub mod program;
pub mod records;
pub mod role;
pub mod timing;
