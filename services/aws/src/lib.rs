//! The AWS APIs STAR uses to move the floating address and to fence the peer, without
//! the AWS SDK (which needs an async runtime; STAR's services are synchronous):
//!
//! - [`imds`]: IMDSv2, for this instance's id, region, ENIs and role credentials;
//! - [`client`]: SigV4-signed EC2 Query and Route 53 REST calls, retried on throttling and
//!   server errors within a deadline ([`retry`] holds the rules);
//! - [`ec2`] and [`route53`]: the calls, typed;
//! - [`methods`]: the takeover methods star-takeover calls — secondary IP, route tables,
//!   Route 53 — and the power fence, each idempotent, bounded by a deadline, and
//!   confirmed through a Describe/Get call.
//!
//! Pure parts (request building, XML reading, retry decisions, subnet membership,
//! signing) are separate from the I/O and tested without a network; the integration
//! tests run against moto's server. docs/aws.md has the IAM policy each method needs.

pub mod client;
pub mod credentials;
pub mod ec2;
pub mod endpoints;
pub mod error;
pub mod http;
pub mod imds;
pub mod methods;
pub mod retry;
pub mod route53;
mod runner;
pub mod sign;
pub mod subnet;
pub mod xml;

pub use client::{Client, Config, CredentialSource};
pub use credentials::Credentials;
pub use error::{Error, ErrorKind};
pub use imds::Imds;
pub use methods::{stop_instance, Controller, DnsRecord, Method, RouteTables, SecondaryIp, Status};
pub use retry::RetryPolicy;
