//! Route 53 request paths and bodies. Pure.

use std::net::Ipv4Addr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::xml::escape;

/// What SigV4 leaves unescaped in a query string: the RFC 3986 unreserved characters.
/// Escaping exactly these keeps the URL we send and the one we sign identical.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The bare zone id: `Z0123` from `Z0123` or `/hostedzone/Z0123` (how the API and the
/// console show it).
pub fn zone_id(zone: &str) -> &str {
    zone.trim().trim_start_matches("/hostedzone/")
}

/// The bare change id: `C0123` from `/change/C0123`.
pub fn change_id(change: &str) -> &str {
    change.trim().trim_start_matches("/change/")
}

/// A name as Route 53 stores and returns it: lower case, ending in a dot.
pub fn fqdn(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// `POST /hostedzone/{zone}/rrset/`.
pub fn change_path(zone: &str) -> String {
    format!("/hostedzone/{}/rrset/", zone_id(zone))
}

/// `GET /change/{id}`.
pub fn get_change_path(change: &str) -> String {
    format!("/change/{}", change_id(change))
}

/// `GET /hostedzone/{zone}/rrset?name=..&type=A&maxitems=1`: the listing starts at the
/// name, so one record is enough to see whether it is ours.
pub fn list_a_path(zone: &str, name: &str) -> String {
    format!(
        "/hostedzone/{}/rrset?maxitems=1&name={}&type=A",
        zone_id(zone),
        utf8_percent_encode(&fqdn(name), QUERY_VALUE)
    )
}

/// The ChangeResourceRecordSets body: one UPSERT of an A record. A change batch is
/// atomic, and UPSERT creates or replaces, so sending it twice is harmless.
pub fn upsert_a(name: &str, ttl: u32, value: Ipv4Addr) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeBatch>
    <Comment>star takeover: {name} to {value}</Comment>
    <Changes>
      <Change>
        <Action>UPSERT</Action>
        <ResourceRecordSet>
          <Name>{name}</Name>
          <Type>A</Type>
          <TTL>{ttl}</TTL>
          <ResourceRecords>
            <ResourceRecord>
              <Value>{value}</Value>
            </ResourceRecord>
          </ResourceRecords>
        </ResourceRecordSet>
      </Change>
    </Changes>
  </ChangeBatch>
</ChangeResourceRecordSetsRequest>
"#,
        name = escape(&fqdn(name)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_normalised() {
        assert_eq!(zone_id("/hostedzone/Z0123"), "Z0123");
        assert_eq!(zone_id("Z0123"), "Z0123");
        assert_eq!(change_id("/change/C9"), "C9");
        assert_eq!(fqdn("Star.Example.internal"), "star.example.internal.");
        assert_eq!(fqdn("star.example.internal."), "star.example.internal.");
    }

    #[test]
    fn paths() {
        assert_eq!(change_path("/hostedzone/Z1"), "/hostedzone/Z1/rrset/");
        assert_eq!(get_change_path("/change/C1"), "/change/C1");
        assert_eq!(
            list_a_path("Z1", "star.example.internal"),
            "/hostedzone/Z1/rrset?maxitems=1&name=star.example.internal.&type=A"
        );
        assert_eq!(
            list_a_path("Z1", "*.x"),
            "/hostedzone/Z1/rrset?maxitems=1&name=%2A.x.&type=A"
        );
    }

    #[test]
    fn the_upsert_is_well_formed_xml_with_the_record() {
        let body = upsert_a("star.example.internal", 10, Ipv4Addr::new(10, 0, 2, 10));
        let doc = roxmltree::Document::parse(&body).unwrap();
        let get = |n: &str| {
            doc.descendants()
                .find(|e| e.tag_name().name() == n)
                .and_then(|e| e.text())
                .unwrap()
                .to_string()
        };
        assert_eq!(get("Action"), "UPSERT");
        assert_eq!(get("Name"), "star.example.internal.");
        assert_eq!(get("Type"), "A");
        assert_eq!(get("TTL"), "10");
        assert_eq!(get("Value"), "10.0.2.10");
        assert_eq!(
            doc.root_element().tag_name().namespace(),
            Some("https://route53.amazonaws.com/doc/2013-04-01/")
        );
    }
}
