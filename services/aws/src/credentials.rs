//! AWS credentials and when to renew them.
//!
//! On the appliance the credentials are the instance role's, from IMDS: temporary keys
//! with a session token and an expiry a few hours out. EC2 makes the next set available
//! at least five minutes before the current one expires, so a cached set is renewed once
//! it is within [`REFRESH_BEFORE`] of its expiry — never on a timer, only when a request
//! needs it, so an idle controller makes no metadata calls.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Renew cached credentials this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// A set of AWS keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The session token of temporary credentials (instance roles always have one).
    pub session_token: Option<String>,
    /// When temporary credentials stop working; `None` for long-term keys.
    pub expiration: Option<SystemTime>,
}

impl Credentials {
    /// Long-term keys (tests, or an operator's keys outside EC2).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            expiration: None,
        }
    }
}

/// The secret never reaches a log line.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<hidden>"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Whether credentials expiring at `expiration` should be fetched again at `now`.
/// Long-term keys (`None`) never are.
pub fn needs_refresh(now: SystemTime, expiration: Option<SystemTime>) -> bool {
    match expiration {
        None => false,
        Some(e) => now + REFRESH_BEFORE >= e,
    }
}

/// Whether credentials are past their expiry and cannot sign at all.
pub fn expired(now: SystemTime, expiration: Option<SystemTime>) -> bool {
    expiration.is_some_and(|e| now >= e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_keys_never_need_refreshing() {
        let now = SystemTime::now();
        assert!(!needs_refresh(now, None));
        assert!(!expired(now, None));
    }

    #[test]
    fn temporary_credentials_are_renewed_five_minutes_before_expiry() {
        let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |secs_before: u64| exp - Duration::from_secs(secs_before);
        assert!(!needs_refresh(at(6 * 3600), Some(exp)));
        assert!(!needs_refresh(at(301), Some(exp)));
        assert!(needs_refresh(at(300), Some(exp)));
        assert!(needs_refresh(at(10), Some(exp)));
        assert!(needs_refresh(exp + Duration::from_secs(1), Some(exp)));
        // Within the window they still sign, until the expiry itself.
        assert!(!expired(at(10), Some(exp)));
        assert!(expired(exp, Some(exp)));
    }

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let c = Credentials {
            session_token: Some("TOKEN".into()),
            ..Credentials::new("AKID", "SECRET")
        };
        let s = format!("{c:?}");
        assert!(s.contains("AKID") && !s.contains("SECRET") && !s.contains("TOKEN"));
    }
}
