//! The parts of Route 53's XML answers that STAR reads. Pure.

use crate::xml::{self, child, children, find, text};

/// The state of a change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInfo {
    /// `/change/C0123...`.
    pub id: String,
    /// `PENDING` until every Route 53 name server has it, then `INSYNC`.
    pub status: String,
}

impl ChangeInfo {
    pub fn in_sync(&self) -> bool {
        self.status == "INSYNC"
    }
}

/// One resource record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// As Route 53 returns it: lower case, with the final dot, special characters as
    /// `\ooo` octal escapes.
    pub name: String,
    pub kind: String,
    pub ttl: Option<u32>,
    pub values: Vec<String>,
}

/// The ChangeInfo of a ChangeResourceRecordSets or GetChange answer.
pub fn change_info(body: &str) -> Result<ChangeInfo, String> {
    let doc = xml::parse(body)?;
    let info = find(doc.root(), "ChangeInfo").ok_or("no ChangeInfo")?;
    Ok(ChangeInfo {
        id: text(info, "Id").ok_or("ChangeInfo without Id")?,
        status: text(info, "Status").ok_or("ChangeInfo without Status")?,
    })
}

/// The record sets of a ListResourceRecordSets answer.
pub fn record_sets(body: &str) -> Result<Vec<RecordSet>, String> {
    let doc = xml::parse(body)?;
    let sets = find(doc.root(), "ResourceRecordSets").ok_or("no ResourceRecordSets")?;
    children(sets, "ResourceRecordSet")
        .map(|rs| {
            let ttl = match text(rs, "TTL") {
                None => None,
                Some(t) => Some(t.parse().map_err(|_| format!("TTL {t:?}"))?),
            };
            Ok(RecordSet {
                name: text(rs, "Name").ok_or("a record set without Name")?,
                kind: text(rs, "Type").ok_or("a record set without Type")?,
                ttl,
                values: child(rs, "ResourceRecords")
                    .into_iter()
                    .flat_map(|r| children(r, "ResourceRecord"))
                    .filter_map(|r| text(r, "Value"))
                    .collect(),
            })
        })
        .collect()
}

/// A record name as returned (`\052.example.com.`) back to its characters
/// (`*.example.com.`), for comparing with the configured name.
pub fn unescape_name(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_info_from_change_and_get_change() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeInfo><Id>/change/C2682N5HXP0BZ4</Id><Status>PENDING</Status><SubmittedAt>2017-03-10T01:36:41.958Z</SubmittedAt></ChangeInfo>
</ChangeResourceRecordSetsResponse>"#;
        let c = change_info(body).unwrap();
        assert_eq!(c.id, "/change/C2682N5HXP0BZ4");
        assert!(!c.in_sync());
        let g = change_info(
            "<GetChangeResponse><ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status></ChangeInfo></GetChangeResponse>",
        )
        .unwrap();
        assert!(g.in_sync());
        assert!(change_info("<GetChangeResponse/>").is_err());
    }

    #[test]
    fn record_sets_with_values() {
        let body = r#"<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ResourceRecordSets>
    <ResourceRecordSet><Name>star.example.internal.</Name><Type>A</Type><TTL>10</TTL>
      <ResourceRecords><ResourceRecord><Value>10.0.2.10</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet>
    <ResourceRecordSet><Name>\052.example.internal.</Name><Type>A</Type>
      <AliasTarget><DNSName>x</DNSName></AliasTarget>
    </ResourceRecordSet>
  </ResourceRecordSets>
  <IsTruncated>true</IsTruncated><MaxItems>1</MaxItems>
</ListResourceRecordSetsResponse>"#;
        let r = record_sets(body).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "star.example.internal.");
        assert_eq!(r[0].kind, "A");
        assert_eq!(r[0].ttl, Some(10));
        assert_eq!(r[0].values, ["10.0.2.10"]);
        assert_eq!(r[1].ttl, None);
        assert!(r[1].values.is_empty());
        assert_eq!(unescape_name(&r[1].name), "*.example.internal.");
    }

    #[test]
    fn unescaping_leaves_plain_names_and_odd_backslashes_alone() {
        assert_eq!(unescape_name("star.example."), "star.example.");
        assert_eq!(unescape_name("a\\05"), "a\\05");
        assert_eq!(unescape_name("a\\999b"), "a\\999b");
        assert_eq!(unescape_name("\\100x"), "@x");
    }
}
