//! Signed requests to EC2 (Query API: form-encoded POST, XML answer) and Route 53 (REST
//! with XML bodies), retried by the rules in `retry.rs`, with credentials from a fixed
//! set or from the instance role through IMDS.

use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use crate::credentials::{self, Credentials};
use crate::endpoints::{self, Endpoint};
use crate::error::{Error, ErrorKind};
use crate::http::{Http, Response};
use crate::imds::Imds;
use crate::retry::{Failure, RetryPolicy};
use crate::runner::{retrying, Attempt};
use crate::sign;

/// The EC2 API version every Query request names.
pub const EC2_VERSION: &str = "2016-11-15";

/// The Route 53 API version in every REST path.
pub const ROUTE53_VERSION: &str = "2013-04-01";

/// Where the keys come from.
#[derive(Debug)]
pub enum CredentialSource {
    /// Fixed keys: tests, or a machine outside EC2.
    Static(Credentials),
    /// The instance role, through the metadata service; renewed before expiry.
    Imds(Imds),
}

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The region of the EC2 calls (`eu-west-1`); from IMDS with `Client::from_imds`.
    pub region: String,
    /// EC2 elsewhere than `https://ec2.{region}.amazonaws.com` (a VPC endpoint, a test).
    pub ec2_endpoint: Option<String>,
    /// Route 53 elsewhere than `https://route53.amazonaws.com` (still signed for
    /// us-east-1, or the partition's Route 53 region).
    pub route53_endpoint: Option<String>,
    /// An HTTP proxy for the API calls (`http://proxy:3128`); IMDS never uses one.
    pub proxy: Option<String>,
    pub retry: RetryPolicy,
}

/// A signed-request client. Shareable between threads.
#[derive(Debug)]
pub struct Client {
    http: Http,
    ec2: Endpoint,
    route53: Endpoint,
    retry: RetryPolicy,
    source: CredentialSource,
    cached: Mutex<Option<Credentials>>,
}

impl Client {
    pub fn new(config: Config, source: CredentialSource) -> Result<Client, Error> {
        let http =
            Http::new(config.proxy.as_deref()).map_err(|e| Error::refused("AWS client", e))?;
        Ok(Client {
            http,
            ec2: endpoints::ec2(&config.region, config.ec2_endpoint.as_deref()),
            route53: endpoints::route53(&config.region, config.route53_endpoint.as_deref()),
            retry: config.retry,
            source,
            cached: Mutex::new(None),
        })
    }

    /// A client for this instance: the role's credentials from `imds`, and the region
    /// too unless `config.region` names one.
    pub fn from_imds(mut config: Config, imds: Imds, deadline: Instant) -> Result<Client, Error> {
        if config.region.is_empty() {
            config.region = imds.region(deadline)?;
        }
        Client::new(config, CredentialSource::Imds(imds))
    }

    /// The region EC2 calls go to.
    pub fn region(&self) -> &str {
        &self.ec2.signing_region
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The credentials to sign with now: the cached set, or a fresh one from IMDS when
    /// the cached set is within five minutes of its expiry (or `force`, after AWS said
    /// the token expired). If IMDS cannot be reached but the cached set has not yet
    /// expired, that set is used: a takeover should not fail over a metadata hiccup.
    pub fn credentials(&self, force: bool, deadline: Instant) -> Result<Credentials, Error> {
        let imds = match &self.source {
            CredentialSource::Static(c) => return Ok(c.clone()),
            CredentialSource::Imds(imds) => imds,
        };
        let mut cached = self.cached.lock().unwrap();
        let now = SystemTime::now();
        if let Some(c) = &*cached {
            if !force && !credentials::needs_refresh(now, c.expiration) {
                return Ok(c.clone());
            }
        }
        match imds.role_credentials(deadline) {
            Ok(fresh) => {
                if credentials::expired(SystemTime::now(), fresh.expiration) {
                    return Err(Error::bad_response(
                        "IMDS instance-role credentials",
                        "the metadata service handed out credentials that have already \
                         expired (is the clock right?)",
                    ));
                }
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match &*cached {
                Some(old) if !credentials::expired(SystemTime::now(), old.expiration) => {
                    tracing::warn!("renewing credentials: {e}; using the current ones");
                    Ok(old.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// One EC2 Query API call: `Action` with its parameters, POSTed form-encoded; the
    /// XML answer on success. `call` names the call and resource for errors
    /// (`AssignPrivateIpAddresses on eni-0abc for 10.0.1.100`).
    pub fn ec2_query(
        &self,
        action: &str,
        params: &[(String, String)],
        call: &str,
        deadline: Instant,
    ) -> Result<String, Error> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", EC2_VERSION);
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let url = format!("{}/", self.ec2.url);
        self.signed(
            &self.ec2,
            "ec2",
            "POST",
            &url,
            "application/x-www-form-urlencoded; charset=utf-8",
            body.as_bytes(),
            call,
            deadline,
        )
    }

    /// One Route 53 REST call: `path_and_query` after the version
    /// (`/hostedzone/Z1/rrset`), an XML body for POSTs; the XML answer on success.
    pub fn route53_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        call: &str,
        deadline: Instant,
    ) -> Result<String, Error> {
        let url = format!("{}/{ROUTE53_VERSION}{path_and_query}", self.route53.url);
        self.signed(
            &self.route53,
            "route53",
            method,
            &url,
            "application/xml",
            body.as_bytes(),
            call,
            deadline,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn signed(
        &self,
        endpoint: &Endpoint,
        service: &str,
        method: &str,
        url: &str,
        content_type: &str,
        body: &[u8],
        call: &str,
        deadline: Instant,
    ) -> Result<String, Error> {
        retrying(&self.retry, deadline, call, |timeout, refresh| {
            let creds = self
                .credentials(refresh, deadline)
                .map_err(|e| e.within(call))?;
            let content_headers: Vec<(&str, &str)> = if body.is_empty() {
                Vec::new()
            } else {
                vec![("content-type", content_type)]
            };
            let mut headers = sign::signature_headers(
                &sign::Request {
                    method,
                    url,
                    headers: &content_headers,
                    body,
                },
                &sign::Scope {
                    region: &endpoint.signing_region,
                    service,
                    credentials: &creds,
                    time: SystemTime::now(),
                },
            )
            .map_err(|e| Attempt::Fatal(Error::new(call, ErrorKind::Refused(e), 0)))?;
            headers.extend(
                content_headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            let resp = self
                .http
                .send(method, url, &headers, body, timeout)
                .map_err(|e| Attempt::Failed(Failure::Transport(e)))?;
            if (200..300).contains(&resp.status) {
                Ok(resp.body)
            } else {
                Err(Attempt::Failed(failure(resp)))
            }
        })
    }
}

/// An error answer as a retry-rule input: the AWS code and message from the body, or
/// the start of the body when it is not an AWS error document (a proxy's HTML page).
pub fn failure(resp: Response) -> Failure {
    match crate::xml::aws_error(&resp.body) {
        Some((code, message)) => Failure::Http {
            status: resp.status,
            code,
            message,
        },
        None => Failure::Http {
            status: resp.status,
            code: String::new(),
            message: crate::xml::snippet(&resp.body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_become_failures_with_their_code() {
        let f = failure(Response {
            status: 400,
            body: "<Response><Errors><Error><Code>RequestLimitExceeded</Code>\
                   <Message>Request limit exceeded.</Message></Error></Errors></Response>"
                .into(),
        });
        assert_eq!(
            f,
            Failure::Http {
                status: 400,
                code: "RequestLimitExceeded".into(),
                message: "Request limit exceeded.".into()
            }
        );
        let f = failure(Response {
            status: 503,
            body: "<html><body>Service Unavailable</body></html>".into(),
        });
        assert!(matches!(f, Failure::Http { status: 503, ref code, .. } if code.is_empty()));
    }
}
