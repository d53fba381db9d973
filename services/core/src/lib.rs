//! star-core: the types every STAR program shares.
//!
//! - [`init_config`]: the schema of star-init's services file, with validation that names
//!   the file, line and key of every mistake.
//! - [`node_config`]: star.toml, one node's configuration.
//! - [`array_config`]: what the array exports (LUNs, hosts, CHAP), kept on the shared disk.
//! - [`cluster_auth`]: the cluster key's HMAC-SHA256, which authenticates heartbeats and
//!   witness messages.
//! - [`net_heartbeat`]: the controllers' UDP heartbeat datagram and its replay guard.
//! - [`control`]: the line-delimited JSON protocol spoken on the control sockets, and a
//!   small blocking client for it.

pub mod array_config;
pub mod cluster_auth;
pub mod config_error;
pub mod control;
pub mod heartbeat_status;
pub mod init_config;
pub mod net_heartbeat;
pub mod net_status;
pub mod node_config;
pub mod password;
pub mod target_status;
