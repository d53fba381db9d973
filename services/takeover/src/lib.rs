//! star-takeover: the floating address, brought to the active controller and taken off
//! the other, with the method of star.toml's `[floating]` (docs/takeover.md).
//!
//! | module | what it does |
//! |---|---|
//! | [`method`] | the `FloatingMethod` trait and the choice of method |
//! | [`l2`] | method `arp`: the address over netlink, then gratuitous ARP or unsolicited NA |
//! | [`aws`] | the AWS methods, through star-aws |
//! | [`address`] | the floating address on the client interface: observe, change, confirm |
//! | [`plan`] | pure: which address changes make the node hold it, or not |
//! | [`frames`] | pure: the ARP and neighbour advertisement frames, byte by byte |
//! | [`announce`] | bursts of announcements and the guard that stops a stale one |
//! | [`packet`] | the `AF_PACKET` socket they go out of |
//! | [`service`] | the control socket |
//! | [`tickle`] | tickle ACKs: the previous holder's client connections reset after a takeover |
//! | [`oneshot`] | the command form |
//! | [`cli`] | the command line |

pub mod address;
pub mod announce;
pub mod aws;
pub mod cli;
pub mod fence;
pub mod frames;
pub mod l2;
pub mod method;
pub mod oneshot;
pub mod packet;
pub mod plan;
pub mod program;
pub mod service;
pub mod tickle;
