//! star-time: keeps the wall clock right with SNTP against star.toml's `time.ntp_server`
//! (169.254.169.123 on EC2), starting from what the RTC gave at boot. Wall-clock time is
//! for logs and for AWS request signatures; heartbeats and timeouts never use it.

pub mod program;
pub mod sntp;
