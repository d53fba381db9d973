//! star-config: finds this node's star.toml, validates it, and writes the result to
//! /run/star/star.toml for the other services. See [`resolve`] for the order of sources.

pub mod bootstrap;
pub mod imds;
pub mod overrides;
pub mod partition;
pub mod program;
pub mod resolve;
