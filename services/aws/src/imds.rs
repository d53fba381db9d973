//! The instance metadata service, version 2: a PUT for a session token, then GETs that
//! carry it. STAR's AMIs are registered with `--imds-support v2.0`, so IMDSv1's bare GET
//! is refused on them.
//!
//! What the takeover needs from it: this instance's id and region, the ENI behind a MAC
//! address, and the instance role's temporary credentials. The token is kept and
//! reused until shortly before its TTL runs out, or until the service answers 401
//! (a token from before a metadata-service restart), when a new one is fetched once.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::credentials::Credentials;
use crate::error::{Error, ErrorKind};
use crate::http::Http;
use crate::retry::{Failure, RetryPolicy};
use crate::runner::{retrying, Attempt};

/// The link-local address every EC2 instance reaches its metadata at.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// The token lifetime asked for: the maximum, 6 hours, as resource-agents' aws.sh does.
pub const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// A token is replaced this long before its TTL runs out, so that it never expires
/// between the check and the GET.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Whether a token fetched at `fetched` with lifetime `ttl` may still be sent at `now`.
pub fn token_usable(now: Instant, fetched: Instant, ttl: Duration) -> bool {
    now.saturating_duration_since(fetched) + TOKEN_MARGIN < ttl
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    fetched: Instant,
}

/// An IMDSv2 client. Cheap to share: the token sits behind a mutex.
#[derive(Debug)]
pub struct Imds {
    http: Http,
    endpoint: String,
    token: Mutex<Option<Token>>,
    token_ttl: Duration,
    retry: RetryPolicy,
}

impl Imds {
    /// A client of the metadata service at `endpoint` (`http://169.254.169.254`, or a
    /// test's responder). Requests are paced by `retry`: the service is local and
    /// fast, but early in boot the interface may not be up yet.
    pub fn new(endpoint: &str, retry: RetryPolicy) -> Imds {
        Imds {
            // Never through a proxy: the metadata address is link-local.
            http: Http::new(None).expect("no proxy, no error"),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: Mutex::new(None),
            token_ttl: TOKEN_TTL,
            retry,
        }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// This instance's id (`i-0123456789abcdef0`).
    pub fn instance_id(&self, deadline: Instant) -> Result<String, Error> {
        self.get_line("/latest/meta-data/instance-id", deadline)
    }

    /// This instance's region (`eu-west-1`).
    pub fn region(&self, deadline: Instant) -> Result<String, Error> {
        self.get_line("/latest/meta-data/placement/region", deadline)
    }

    /// The MAC address of the primary network interface (device index 0).
    pub fn primary_mac(&self, deadline: Instant) -> Result<String, Error> {
        self.get_line("/latest/meta-data/mac", deadline)
    }

    /// The primary private IPv4 address of the primary interface: the value a Route 53
    /// record points at when the client network is the primary interface (what
    /// resource-agents' aws-vpc-route53 uses).
    pub fn local_ipv4(&self, deadline: Instant) -> Result<String, Error> {
        self.get_line("/latest/meta-data/local-ipv4", deadline)
    }

    /// The ENI id (`eni-...`) of the interface with MAC address `mac` (any case, with
    /// colons, as in /sys/class/net/IF/address).
    pub fn interface_id(&self, mac: &str, deadline: Instant) -> Result<String, Error> {
        let mac = mac.trim().to_ascii_lowercase();
        self.get_line(
            &format!("/latest/meta-data/network/interfaces/macs/{mac}/interface-id"),
            deadline,
        )
    }

    /// The private IPv4 addresses the metadata service lists for the interface with MAC
    /// address `mac`: after a secondary-IP move, AWS advises checking here that the
    /// remapping reached the instance.
    pub fn local_ipv4s(&self, mac: &str, deadline: Instant) -> Result<Vec<String>, Error> {
        let mac = mac.trim().to_ascii_lowercase();
        let body = self.get(
            &format!("/latest/meta-data/network/interfaces/macs/{mac}/local-ipv4s"),
            deadline,
        )?;
        Ok(body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// The instance role's temporary credentials: the role's name from
    /// `iam/security-credentials/`, then the JSON document under that name.
    pub fn role_credentials(&self, deadline: Instant) -> Result<Credentials, Error> {
        const ROLES: &str = "/latest/meta-data/iam/security-credentials/";
        let role = self.get_line(ROLES, deadline).map_err(|e| {
            if matches!(e.kind, ErrorKind::Aws { status: 404, .. }) {
                Error::refused(
                    "IMDS GET /latest/meta-data/iam/security-credentials/",
                    "this instance has no IAM role: attach an instance profile with the \
                     permissions in docs/aws.md",
                )
            } else {
                e
            }
        })?;
        let path = format!("{ROLES}{role}");
        let body = self.get(&path, deadline)?;
        parse_credentials(&body).map_err(|why| Error::bad_response(format!("IMDS GET {path}"), why))
    }

    /// A GET whose answer is one line (the first, trimmed).
    fn get_line(&self, path: &str, deadline: Instant) -> Result<String, Error> {
        let body = self.get(path, deadline)?;
        body.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(String::from)
            .ok_or_else(|| Error::bad_response(format!("IMDS GET {path}"), "empty answer"))
    }

    /// A GET of a metadata path with the session token, retried like an API call.
    pub fn get(&self, path: &str, deadline: Instant) -> Result<String, Error> {
        let call = format!("IMDS GET {path}");
        let url = format!("{}{path}", self.endpoint);
        retrying(&self.retry, deadline, &call, |timeout, _refresh| {
            let mut token = self.token(timeout)?;
            let mut resp = self.send_get(&url, &token, timeout)?;
            if resp.status == 401 {
                // The token is no longer valid (expired, or the service restarted).
                *self.token.lock().unwrap() = None;
                token = self.token(timeout)?;
                resp = self.send_get(&url, &token, timeout)?;
            }
            match resp.status {
                200 => Ok(resp.body),
                status => Err(Attempt::Failed(Failure::Http {
                    status,
                    code: String::new(),
                    message: crate::xml::snippet(&resp.body),
                })),
            }
        })
    }

    fn send_get(
        &self,
        url: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<crate::http::Response, Attempt> {
        self.http
            .send(
                "GET",
                url,
                &[("X-aws-ec2-metadata-token".into(), token.into())],
                b"",
                timeout,
            )
            .map_err(|e| Attempt::Failed(Failure::Transport(e)))
    }

    /// The cached token, or a new one.
    fn token(&self, timeout: Duration) -> Result<String, Attempt> {
        let now = Instant::now();
        if let Some(t) = &*self.token.lock().unwrap() {
            if token_usable(now, t.fetched, self.token_ttl) {
                return Ok(t.value.clone());
            }
        }
        let resp = self
            .http
            .send(
                "PUT",
                &format!("{}/latest/api/token", self.endpoint),
                &[(
                    "X-aws-ec2-metadata-token-ttl-seconds".into(),
                    self.token_ttl.as_secs().to_string(),
                )],
                b"",
                timeout,
            )
            .map_err(|e| Attempt::Failed(Failure::Transport(format!("token PUT: {e}"))))?;
        if resp.status != 200 {
            return Err(Attempt::Failed(Failure::Http {
                status: resp.status,
                code: String::new(),
                message: format!("token PUT: {}", crate::xml::snippet(&resp.body)),
            }));
        }
        let value = resp.body.trim().to_string();
        *self.token.lock().unwrap() = Some(Token {
            value: value.clone(),
            fetched: now,
        });
        Ok(value)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// Parses the credentials document:
/// `{"Code":"Success","AccessKeyId":..,"SecretAccessKey":..,"Token":..,"Expiration":"2024-05-01T12:00:00Z"}`.
pub fn parse_credentials(json: &str) -> Result<Credentials, String> {
    let doc: RoleCredentials =
        serde_json::from_str(json).map_err(|e| format!("credentials are not JSON: {e}"))?;
    if let Some(code) = doc.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!(
            "credentials not available: {code}: {}",
            doc.message.unwrap_or_default()
        ));
    }
    let need = |v: Option<String>, what: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| format!("credentials without {what}"))
    };
    let expiration = need(doc.expiration, "Expiration")?;
    let expiration = OffsetDateTime::parse(&expiration, &Rfc3339)
        .map_err(|e| format!("credentials' Expiration {expiration:?}: {e}"))?;
    Ok(Credentials {
        access_key_id: need(doc.access_key_id, "AccessKeyId")?,
        secret_access_key: need(doc.secret_access_key, "SecretAccessKey")?,
        session_token: Some(need(doc.token, "Token")?),
        expiration: Some(SystemTime::from(expiration)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_a_minute_before_their_ttl() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(21600);
        assert!(token_usable(t0, t0, ttl));
        assert!(token_usable(t0 + Duration::from_secs(21539), t0, ttl));
        assert!(!token_usable(t0 + Duration::from_secs(21540), t0, ttl));
        assert!(!token_usable(t0 + ttl * 2, t0, ttl));
        // A TTL shorter than the margin is never usable: fetch per request.
        assert!(!token_usable(t0, t0, Duration::from_secs(30)));
    }

    #[test]
    fn the_credentials_document_is_read() {
        let c = parse_credentials(
            r#"{"Code":"Success","LastUpdated":"2024-05-01T06:00:00Z","Type":"AWS-HMAC",
                "AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"secret","Token":"tok",
                "Expiration":"2024-05-01T12:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key, "secret");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        assert_eq!(
            c.expiration,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800))
        );
    }

    #[test]
    fn unusable_credentials_documents_say_why() {
        assert!(parse_credentials("nope").unwrap_err().contains("not JSON"));
        assert_eq!(
            parse_credentials(r#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"denied"}"#)
                .unwrap_err(),
            "credentials not available: AssumeRoleUnauthorizedAccess: denied"
        );
        assert_eq!(
            parse_credentials(
                r#"{"Code":"Success","AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2024-05-01T12:00:00Z"}"#
            )
            .unwrap_err(),
            "credentials without Token"
        );
        assert!(parse_credentials(
            r#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"tomorrow"}"#
        )
        .unwrap_err()
        .contains("Expiration"));
    }
}
