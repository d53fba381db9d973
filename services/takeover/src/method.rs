//! The seam between the service and the ways of moving the floating address: one trait,
//! one implementation per star.toml `method`, chosen here.
//!
//! | star.toml method | implementation |
//! |---|---|
//! | `arp` | [`crate::l2::L2`]: the address on the client interface, then gratuitous ARP or unsolicited neighbour advertisements |
//! | `aws-secondary-ip`, `aws-route-table`, `aws-route53` | [`crate::aws::Aws`]: the AWS APIs through star-aws |

use crate::announce::Guard;
use crate::aws::Aws;
use crate::l2::L2;
use star_core::node_config::{NodeConfig, Purpose, TakeoverMethod};
use std::time::Duration;

/// One way of moving the floating address. Every call is idempotent (acquiring what is
/// held, or releasing what is not, succeeds), bounded in time, confirms its result by
/// looking again, and on failure says what is wrong and what state it left.
pub trait FloatingMethod: Send {
    /// star.toml's name of the method.
    fn name(&self) -> &'static str;
    /// The floating address with its prefix length, "192.0.2.100/24".
    fn address(&self) -> String;
    /// The interface the method puts the address on, if it puts it on one.
    fn interface(&self) -> Option<String>;
    /// Brings the address here. A failed acquire leaves it on no interface of this node.
    fn acquire(&mut self) -> Result<Acquired, String>;
    /// Lets go of it; the message says what was done.
    fn release(&mut self) -> Result<String, String>;
    /// Where it is now, as seen from here.
    fn status(&mut self) -> Result<Observation, String>;
}

pub struct Acquired {
    /// What was done, for the reply and the log.
    pub message: String,
    /// The announcements acquire made, if the method makes any.
    pub announce: Option<String>,
    /// What acquire leaves to do later, without waiting for it.
    pub later: Option<Later>,
}

/// Work an acquire schedules (method arp's second burst). Whoever runs it, the service on
/// a thread or the one-shot command in a child process, runs it after `after`, and passes a
/// guard through which a newer acquire or release can stop it.
pub struct Later {
    pub after: Duration,
    /// "second burst of 5 gratuitous ARP", for status.
    pub what: String,
    pub run: LaterWork,
}

/// The work itself: the outcome in words, or why it failed.
pub type LaterWork = Box<dyn FnOnce(&dyn Guard) -> Result<String, String> + Send>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub held: bool,
    pub observed: String,
}

/// star.toml's word for a method.
pub fn method_name(method: &TakeoverMethod) -> &'static str {
    match method {
        TakeoverMethod::Arp => "arp",
        TakeoverMethod::AwsSecondaryIp => "aws-secondary-ip",
        TakeoverMethod::AwsRouteTable { .. } => "aws-route-table",
        TakeoverMethod::AwsRoute53 { .. } => "aws-route53",
    }
}

/// The method of this node's star.toml.
pub fn for_node(node: &NodeConfig) -> Result<Box<dyn FloatingMethod>, String> {
    let floating = node.floating.as_ref().ok_or_else(|| {
        format!(
            "star.toml has no [floating] section: node {} ({:?}) has no floating address",
            node.node.name, node.node.role
        )
    })?;
    let client = node
        .interface(Purpose::Client)
        .map(|i| i.name.clone())
        .ok_or(
        "star.toml has no interface with purpose = \"client\": the floating address lives there",
    )?;
    Ok(match &floating.method {
        TakeoverMethod::Arp => Box::new(L2::new(client, floating)),
        aws => Box::new(Aws::new(aws, client, floating, &node.aws)),
    })
}
