//! Where the APIs are, and the region each is signed for.
//!
//! EC2 is regional; Route 53 is global, with one endpoint per partition and a fixed
//! signing region. Both can be overridden: a VPC interface endpoint
//! (`https://vpce-0abc-xyz.ec2.eu-west-1.vpce.amazonaws.com`) for controllers without a
//! route to the internet, or a test's server.

/// A resolved endpoint: the base URL (no trailing slash) and the SigV4 region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub signing_region: String,
}

/// EC2 in `region`, or at `custom`.
pub fn ec2(region: &str, custom: Option<&str>) -> Endpoint {
    let url = match custom {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("https://ec2.{region}.{}", dns_suffix(region)),
    };
    Endpoint {
        url,
        signing_region: region.to_string(),
    }
}

/// Route 53 for the partition `region` is in, or at `custom` (signed for the
/// partition's Route 53 region all the same).
pub fn route53(region: &str, custom: Option<&str>) -> Endpoint {
    let (default, signing_region) = if region.starts_with("cn-") {
        ("https://route53.amazonaws.com.cn", "cn-northwest-1")
    } else if region.starts_with("us-gov-") {
        ("https://route53.us-gov.amazonaws.com", "us-gov-west-1")
    } else {
        ("https://route53.amazonaws.com", "us-east-1")
    };
    Endpoint {
        url: custom.unwrap_or(default).trim_end_matches('/').to_string(),
        signing_region: signing_region.to_string(),
    }
}

fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_partition() {
        assert_eq!(
            ec2("eu-west-1", None),
            Endpoint {
                url: "https://ec2.eu-west-1.amazonaws.com".into(),
                signing_region: "eu-west-1".into()
            }
        );
        assert_eq!(
            ec2("cn-north-1", None).url,
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            route53("ap-northeast-1", None),
            Endpoint {
                url: "https://route53.amazonaws.com".into(),
                signing_region: "us-east-1".into()
            }
        );
        assert_eq!(route53("cn-north-1", None).signing_region, "cn-northwest-1");
        assert_eq!(
            route53("us-gov-east-1", None).url,
            "https://route53.us-gov.amazonaws.com"
        );
    }

    #[test]
    fn overrides_keep_the_signing_region() {
        let e = ec2(
            "eu-west-1",
            Some("https://vpce-1.ec2.eu-west-1.vpce.amazonaws.com/"),
        );
        assert_eq!(e.url, "https://vpce-1.ec2.eu-west-1.vpce.amazonaws.com");
        assert_eq!(e.signing_region, "eu-west-1");
        let r = route53("eu-west-1", Some("http://127.0.0.1:5000"));
        assert_eq!(r.url, "http://127.0.0.1:5000");
        assert_eq!(r.signing_region, "us-east-1");
    }
}
