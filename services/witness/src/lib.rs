//! star-witness: the quorum witness of DESIGN.md §5, run on a third machine. It grants a
//! term with a lease to one controller of an array at a time, over HTTP/1.1 with JSON
//! bodies signed with the array's cluster key. docs/witness.md describes the protocol.
//!
//! - [`grant`]: the grant rules, pure, with an exhaustive check of short histories.
//! - [`freshness`]: the clock window and the replay guard.
//! - [`message`]: the JSON bodies and their signature.
//! - [`http`]: the small HTTP/1.1 reader and writer, with hard limits.
//! - [`config`]: the witness's configuration file.
//! - [`store`]: the grant state on disk, written atomically and durably.
//! - [`server`]: the service.
//! - [`client`]: the blocking client the controllers use.

pub mod client;
pub mod config;
pub mod freshness;
pub mod grant;
pub mod http;
pub mod message;
pub mod program;
pub mod server;
pub mod store;
