//! The HTTP transport: ureq (synchronous) with rustls and the webpki root certificates,
//! because the appliance's initramfs has no CA store of its own.
//!
//! Every status comes back as a response (4xx/5xx carry the AWS error document), so the
//! only errors here are "no answer" ones. Redirects are not followed (AWS APIs do not
//! redirect; a captive proxy that does is an error worth seeing). No proxy is taken from
//! the environment: the services have no environment to speak of, and a test machine's
//! `http_proxy` must not reroute 127.0.0.1.

use std::time::Duration;

/// One HTTP answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// A connection pool and its settings.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    /// `proxy`: an explicit `http://host:port` proxy for the API endpoints, or none.
    pub fn new(proxy: Option<&str>) -> Result<Http, String> {
        let proxy = match proxy {
            None => None,
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| format!("proxy {p:?}: {e}"))?),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(proxy)
            .user_agent(concat!("star-aws/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Http { agent })
    }

    /// Sends one request and reads the whole answer within `timeout`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        // A GET goes without a body (not even Content-Length: 0), as the metadata service
        // and every AWS SDK send it.
        let sent = if body.is_empty() && method == "GET" {
            let req = req.body(()).map_err(|e| format!("{method} {url}: {e}"))?;
            let req = self.agent.configure_request(req).timeout_global(timeout);
            self.agent.run(req.build())
        } else {
            let req = req
                .body(body.to_vec())
                .map_err(|e| format!("{method} {url}: {e}"))?;
            let req = self.agent.configure_request(req).timeout_global(timeout);
            self.agent.run(req.build())
        };
        let mut resp = sent.map_err(|e| match e {
            ureq::Error::Timeout(t) => format!("timed out ({t})"),
            e => e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok(Response { status, body })
    }
}
