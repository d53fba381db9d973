//! One error type for every call: what was being done, what went wrong, how many requests
//! were made. The operator reads it in `star status` and in the log, so its `Display` is a
//! single line that names the call and the resource, e.g.
//!
//! ```text
//! AssignPrivateIpAddresses on eni-0abc for 10.0.1.100: UnauthorizedOperation: You are not authorized to perform this operation. (1 attempt)
//! ```

use std::fmt;

/// A failed call or operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The call and the resource it was about: `AssignPrivateIpAddresses on eni-0abc for
    /// 10.0.1.100`, `IMDS GET /latest/meta-data/instance-id`, `secondary IP 10.0.1.100`.
    pub call: String,
    pub kind: ErrorKind,
    /// Requests sent for this call; 0 when the input was refused before any request.
    pub attempts: u32,
    /// The failure was worth retrying but the deadline or the attempt limit ran out.
    pub gave_up: bool,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// AWS (or the metadata service) answered with an error: HTTP status, the error code
    /// (`UnauthorizedOperation`, `RequestLimitExceeded`, `NoSuchHostedZone`) and message.
    Aws {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, DNS, TLS, timeout.
    Transport(String),
    /// An answer that is not what the API documents (unparsable XML, missing element).
    BadResponse(String),
    /// The request cannot work as configured (an address outside the ENI's subnet, a
    /// missing route, table or hosted zone). Refused before anything was changed.
    Refused(String),
    /// The change was accepted but the Describe/Get calls did not show it before the
    /// deadline.
    NotConfirmed(String),
}

impl Error {
    pub(crate) fn new(call: impl Into<String>, kind: ErrorKind, attempts: u32) -> Error {
        Error {
            call: call.into(),
            kind,
            attempts,
            gave_up: false,
        }
    }

    /// An input or configuration problem found before any change.
    pub(crate) fn refused(call: impl Into<String>, why: impl Into<String>) -> Error {
        Error::new(call, ErrorKind::Refused(why.into()), 0)
    }

    pub(crate) fn bad_response(call: impl Into<String>, why: impl Into<String>) -> Error {
        Error::new(call, ErrorKind::BadResponse(why.into()), 1)
    }

    /// The AWS error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when nothing was wrong with the request itself: throttling, a server error, no
    /// answer, or a change that is still propagating. Trying again later may succeed;
    /// anything else needs the configuration or the IAM policy fixed first.
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Aws { status, code, .. } => {
                crate::retry::classify_aws(*status, code) != crate::retry::Disposition::Fail
            }
            ErrorKind::Transport(_) | ErrorKind::NotConfirmed(_) => true,
            ErrorKind::BadResponse(_) | ErrorKind::Refused(_) => false,
        }
    }

    /// The same failure described as part of a larger operation: `prefix` goes before
    /// the call (`secondary IP 10.0.1.100: ` + `AssignPrivateIpAddresses on ...`).
    pub(crate) fn within(mut self, prefix: &str) -> Error {
        self.call = format!("{prefix}: {}", self.call);
        self
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Aws {
                status,
                code,
                message,
            } => {
                if code.is_empty() {
                    write!(f, "HTTP {status}")?;
                } else {
                    write!(f, "{code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ErrorKind::Transport(s) => write!(f, "no answer: {s}"),
            ErrorKind::BadResponse(s) => write!(f, "unexpected answer: {s}"),
            ErrorKind::Refused(s) => write!(f, "{s}; nothing was changed"),
            ErrorKind::NotConfirmed(s) => write!(f, "not confirmed before the deadline: {s}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.kind)?;
        match (self.attempts, self.gave_up) {
            (0, _) => Ok(()),
            (1, false) => write!(f, " (1 attempt)"),
            (n, false) => write!(f, " ({n} attempts)"),
            (n, true) => write!(
                f,
                " ({n} attempt{}, gave up: retries exhausted or deadline reached)",
                if n == 1 { "" } else { "s" }
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_call_the_code_and_the_attempts() {
        let e = Error::new(
            "AssignPrivateIpAddresses on eni-0abc for 10.0.1.100",
            ErrorKind::Aws {
                status: 403,
                code: "UnauthorizedOperation".into(),
                message: "You are not authorized to perform this operation.".into(),
            },
            1,
        );
        assert_eq!(
            e.to_string(),
            "AssignPrivateIpAddresses on eni-0abc for 10.0.1.100: UnauthorizedOperation: \
             You are not authorized to perform this operation. (1 attempt)"
        );
        assert_eq!(e.code(), Some("UnauthorizedOperation"));
        assert!(!e.is_transient());
    }

    #[test]
    fn display_says_when_retries_ran_out() {
        let mut e = Error::new(
            "ReplaceRoute on rtb-1 for 10.0.1.100/32",
            ErrorKind::Aws {
                status: 400,
                code: "RequestLimitExceeded".into(),
                message: "Request limit exceeded.".into(),
            },
            6,
        );
        e.gave_up = true;
        assert!(e.to_string().ends_with(
            "RequestLimitExceeded: Request limit exceeded. (6 attempts, gave up: retries exhausted or deadline reached)"
        ));
        assert!(e.is_transient());
    }

    #[test]
    fn refusals_say_nothing_changed_and_count_no_attempts() {
        let e = Error::refused(
            "secondary IP 10.0.9.9",
            "10.0.9.9 is outside subnet-1 (10.0.1.0/24)",
        );
        assert_eq!(
            e.to_string(),
            "secondary IP 10.0.9.9: 10.0.9.9 is outside subnet-1 (10.0.1.0/24); nothing was changed"
        );
        assert!(!e.is_transient());
        assert_eq!(
            e.within("acquire").call,
            "acquire: secondary IP 10.0.9.9".to_string()
        );
    }

    #[test]
    fn an_http_error_without_a_code_shows_the_status() {
        let e = Error::new(
            "GetChange C1",
            ErrorKind::Aws {
                status: 503,
                code: String::new(),
                message: String::new(),
            },
            2,
        );
        assert_eq!(e.to_string(), "GetChange C1: HTTP 503 (2 attempts)");
        assert!(e.is_transient());
    }
}
