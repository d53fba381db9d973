//! SigV4 through the AWS SDK's own signer (`aws-sigv4`), without the rest of the SDK: the
//! SDK needs an async runtime and STAR's services are synchronous. Pure: the time is an
//! argument, so the AWS signing test suite's vectors check it.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::credentials::Credentials;

/// A request to sign. `url` is the full URL as it will be sent (already percent-encoded);
/// `headers` are the ones sent besides Host (which the signer takes from the URL).
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Where and as whom to sign.
pub struct Scope<'a> {
    pub region: &'a str,
    /// The signing name: `ec2`, `route53`.
    pub service: &'a str,
    pub credentials: &'a Credentials,
    pub time: SystemTime,
}

/// The headers to add to the request: `authorization`, `x-amz-date` and, with temporary
/// credentials, `x-amz-security-token`.
pub fn signature_headers(req: &Request, scope: &Scope) -> Result<Vec<(String, String)>, String> {
    let c = scope.credentials;
    let identity: Identity = aws_credential_types::Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        c.session_token.clone(),
        c.expiration,
        "star-aws",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.headers.iter().copied(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| format!("SigV4: {req_url}: {e}", req_url = req.url))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("SigV4: {e}"))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // From the AWS signing test suite (aws-signing-test-suite/v4/ in the aws-sigv4 crate):
    // 2015-08-30T12:36:00Z, us-east-1, service "service".
    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_credentials() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn get_vanilla_matches_the_aws_test_suite() {
        let creds = suite_credentials();
        let h = signature_headers(
            &Request {
                method: "GET",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            &Scope {
                region: "us-east-1",
                service: "service",
                credentials: &creds,
                time: suite_time(),
            },
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(header(&h, "x-amz-security-token"), None);
    }

    #[test]
    fn a_session_token_is_signed_and_sent() {
        let creds = Credentials {
            session_token: Some(
                "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267".into(),
            ),
            ..suite_credentials()
        };
        let h = signature_headers(
            &Request {
                method: "GET",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            &Scope {
                region: "us-east-1",
                service: "service",
                credentials: &creds,
                time: suite_time(),
            },
        )
        .unwrap();
        assert_eq!(
            header(&h, "x-amz-security-token"),
            creds.session_token.as_deref()
        );
        assert!(header(&h, "authorization").unwrap().ends_with(
            "SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        ));
    }

    #[test]
    fn post_vanilla_matches_the_aws_test_suite() {
        let creds = suite_credentials();
        let h = signature_headers(
            &Request {
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            &Scope {
                region: "us-east-1",
                service: "service",
                credentials: &creds,
                time: suite_time(),
            },
        )
        .unwrap();
        assert!(header(&h, "authorization").unwrap().ends_with(
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        ));
    }

    #[test]
    fn the_content_type_and_a_port_are_part_of_the_signature() {
        let creds = suite_credentials();
        let scope = Scope {
            region: "eu-west-1",
            service: "ec2",
            credentials: &creds,
            time: suite_time(),
        };
        let body = b"Action=DescribeRouteTables&Version=2016-11-15";
        let sign_with = |url: &str| {
            signature_headers(
                &Request {
                    method: "POST",
                    url,
                    headers: &[(
                        "content-type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )],
                    body,
                },
                &scope,
            )
            .unwrap()
        };
        let a = sign_with("http://127.0.0.1:5000/");
        let b = sign_with("http://127.0.0.1:5001/");
        let auth = header(&a, "authorization").unwrap();
        assert!(auth.contains("/20150830/eu-west-1/ec2/aws4_request"));
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date"));
        assert_ne!(auth, header(&b, "authorization").unwrap());
    }
}
