//! The Route 53 calls STAR makes, typed: paths and bodies built in `request`, answers read
//! in `response`.

pub mod request;
pub mod response;

use std::net::Ipv4Addr;
use std::time::Instant;

pub use response::{ChangeInfo, RecordSet};

use crate::client::Client;
use crate::error::Error;

fn parsed<T>(call: &str, r: Result<T, String>) -> Result<T, Error> {
    r.map_err(|why| Error::bad_response(call, why))
}

/// ChangeResourceRecordSets: UPSERT `name` A `value` with `ttl`.
pub fn upsert_a(
    c: &Client,
    zone: &str,
    name: &str,
    ttl: u32,
    value: Ipv4Addr,
    deadline: Instant,
) -> Result<ChangeInfo, Error> {
    let call = format!(
        "ChangeResourceRecordSets on {} for {} A {value}",
        request::zone_id(zone),
        request::fqdn(name)
    );
    let body = c.route53_request(
        "POST",
        &request::change_path(zone),
        &request::upsert_a(name, ttl, value),
        &call,
        deadline,
    )?;
    parsed(&call, response::change_info(&body))
}

pub fn get_change(c: &Client, change: &str, deadline: Instant) -> Result<ChangeInfo, Error> {
    let call = format!("GetChange {}", request::change_id(change));
    let body = c.route53_request(
        "GET",
        &request::get_change_path(change),
        "",
        &call,
        deadline,
    )?;
    parsed(&call, response::change_info(&body))
}

/// The A record `name` in `zone`, if there is one.
pub fn a_record(
    c: &Client,
    zone: &str,
    name: &str,
    deadline: Instant,
) -> Result<Option<RecordSet>, Error> {
    let want = request::fqdn(name);
    let call = format!(
        "ListResourceRecordSets on {} for {want} A",
        request::zone_id(zone)
    );
    let body = c.route53_request(
        "GET",
        &request::list_a_path(zone, name),
        "",
        &call,
        deadline,
    )?;
    Ok(parsed(&call, response::record_sets(&body))?
        .into_iter()
        .find(|r| r.kind == "A" && request::fqdn(&response::unescape_name(&r.name)) == want))
}
