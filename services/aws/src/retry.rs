//! When to try a request again, and how long to wait first. Pure functions: the loop that
//! sleeps lives in `client.rs`.
//!
//! AWS throttles per account and per API (EC2's "request token bucket"); a takeover comes
//! exactly when something else went wrong and other tools may be busy, so throttling and
//! server errors are expected and retried. resource-agents learnt this the hard way
//! (ClusterLabs/resource-agents#1876: random awsvip failures from throttling until retries
//! were added). Everything else — no permission, a missing resource, a malformed request
//! — will not get better by asking again, and fails at once so the operator hears about
//! it while the takeover step is still within its time budget.

use std::time::{Duration, Instant};

/// How the retries are paced. Every operation also has a deadline; the retries stop at
/// whichever comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first delay; each retry doubles it.
    pub base: Duration,
    /// The largest ceiling, however many retries.
    pub cap: Duration,
    /// Requests per call, the first included.
    pub max_attempts: u32,
    /// The longest a single request may take (connect, send, answer). Shortened to what
    /// is left before the deadline.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 2 s: a burst of throttling is waited out in a few seconds, well
    /// inside star-takeover's step timeout (15 s by default); 10 attempts at most.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 10,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No HTTP answer (connection refused or reset, DNS, TLS, timeout).
    Transport(String),
    /// An HTTP answer with an error status; `code` is the AWS error code from the body
    /// (empty when there was none).
    Http {
        status: u16,
        code: String,
        message: String,
    },
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient: wait and send the same request again.
    Retry,
    /// The temporary credentials were rotated under us: fetch new ones, then retry.
    RefreshCredentials,
    /// Permanent: report it now.
    Fail,
}

/// Error codes that mean "slow down" in EC2, Route 53 and the other query/XML APIs.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "SlowDown",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
];

/// Error codes for a fault on AWS's side, whatever the status says.
const SERVER_FAULTS: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes that mean the session token expired between fetching and using it.
const EXPIRED_CREDENTIALS: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired"];

/// The retry decision for an AWS error answer.
pub fn classify_aws(status: u16, code: &str) -> Disposition {
    if THROTTLING.contains(&code) || SERVER_FAULTS.contains(&code) {
        Disposition::Retry
    } else if EXPIRED_CREDENTIALS.contains(&code) {
        Disposition::RefreshCredentials
    } else if status == 429 || (500..600).contains(&status) {
        Disposition::Retry
    } else {
        Disposition::Fail
    }
}

/// The retry decision for any failure. A transport failure is retried even for a
/// mutating call: every call this crate makes is idempotent (AssignPrivateIpAddresses
/// with AllowReassignment, ReplaceRoute, UPSERT, StopInstances) or its caller checks the
/// state again after an error (UnassignPrivateIpAddresses).
pub fn classify(failure: &Failure) -> Disposition {
    match failure {
        Failure::Transport(_) => Disposition::Retry,
        Failure::Http { status, code, .. } => classify_aws(*status, code),
    }
}

/// The wait before retry number `retry` (1 for the first retry): "equal jitter" on an
/// exponential ceiling, `ceiling/2 + jitter × ceiling/2` with `ceiling = min(cap, base ×
/// 2^(retry-1))`. Half of it is fixed so that retries never come back at once; the other
/// half is random so that both controllers (or many clients of one account) spread out
/// instead of hitting the throttle in lockstep. `jitter` is in [0, 1].
pub fn backoff(policy: &RetryPolicy, retry: u32, jitter: f64) -> Duration {
    let doublings = retry.saturating_sub(1).min(30);
    let ceiling = policy
        .base
        .checked_mul(1u32 << doublings)
        .map_or(policy.cap, |d| d.min(policy.cap));
    let half = ceiling / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// What the retry loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Sleep this long, then send the request again (after refreshing the credentials
    /// when `refresh` is set).
    RetryAfter { delay: Duration, refresh: bool },
    /// Stop. `gave_up` is true when the failure was transient but attempts or time ran
    /// out.
    Stop { gave_up: bool },
}

/// The least time worth leaving for one more request: a retry that would start this
/// close to the deadline could not finish anyway.
pub const MIN_REQUEST_TIME: Duration = Duration::from_millis(100);

/// The decision after `attempts` requests (≥ 1) the last of which failed with `failure`.
pub fn next_step(
    policy: &RetryPolicy,
    failure: &Failure,
    attempts: u32,
    now: Instant,
    deadline: Instant,
    jitter: f64,
) -> Step {
    let refresh = match classify(failure) {
        Disposition::Fail => return Step::Stop { gave_up: false },
        Disposition::Retry => false,
        Disposition::RefreshCredentials => true,
    };
    if refresh && attempts > 1 {
        // Fresh credentials did not help: the clock or the role is wrong, not the cache.
        return Step::Stop { gave_up: false };
    }
    if attempts >= policy.max_attempts {
        return Step::Stop { gave_up: true };
    }
    let delay = if refresh {
        Duration::ZERO
    } else {
        backoff(policy, attempts, jitter)
    };
    match now.checked_add(delay + MIN_REQUEST_TIME) {
        Some(t) if t <= deadline => Step::RetryAfter { delay, refresh },
        _ => Step::Stop { gave_up: true },
    }
}

/// The timeout for the next request: the policy's, or less if the deadline is closer.
pub fn request_timeout(policy: &RetryPolicy, now: Instant, deadline: Instant) -> Duration {
    policy
        .request_timeout
        .min(deadline.saturating_duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: &str) -> Failure {
        Failure::Http {
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "ThrottlingException",
            "PriorRequestNotComplete",
        ] {
            assert_eq!(classify(&http(400, code)), Disposition::Retry, "{code}");
        }
        assert_eq!(classify(&http(429, "")), Disposition::Retry);
        assert_eq!(classify(&http(500, "InternalError")), Disposition::Retry);
        assert_eq!(classify(&http(503, "")), Disposition::Retry);
        assert_eq!(classify(&http(502, "Whatever")), Disposition::Retry);
        assert_eq!(
            classify(&Failure::Transport("connection refused".into())),
            Disposition::Retry
        );
    }

    #[test]
    fn everything_else_fails_at_once() {
        for (status, code) in [
            (403, "UnauthorizedOperation"),
            (400, "InvalidParameterValue"),
            (400, "InvalidRouteTableID.NotFound"),
            (404, "NoSuchHostedZone"),
            (400, "InvalidChangeBatch"),
            (403, "AccessDenied"),
            (403, "SignatureDoesNotMatch"),
            (400, ""),
            (404, ""),
        ] {
            assert_eq!(
                classify(&http(status, code)),
                Disposition::Fail,
                "{status} {code}"
            );
        }
    }

    #[test]
    fn expired_credentials_are_refreshed_once() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let f = http(400, "ExpiredToken");
        assert_eq!(classify(&f), Disposition::RefreshCredentials);
        assert_eq!(
            next_step(&p, &f, 1, now, later, 0.5),
            Step::RetryAfter {
                delay: Duration::ZERO,
                refresh: true
            }
        );
        assert_eq!(
            next_step(&p, &f, 2, now, later, 0.5),
            Step::Stop { gave_up: false }
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let ms = |retry, jitter| backoff(&p, retry, jitter).as_millis();
        assert_eq!((ms(1, 0.0), ms(1, 1.0)), (50, 100));
        assert_eq!((ms(2, 0.0), ms(2, 1.0)), (100, 200));
        assert_eq!((ms(3, 0.0), ms(3, 1.0)), (200, 400));
        assert_eq!((ms(5, 0.0), ms(5, 1.0)), (800, 1600));
        assert_eq!((ms(6, 0.0), ms(6, 1.0)), (1000, 2000));
        assert_eq!((ms(60, 0.0), ms(60, 1.0)), (1000, 2000));
        assert_eq!(ms(3, 0.5), 300);
        // Out-of-range jitter is clamped, never a panic or a zero delay.
        assert_eq!(ms(1, -3.0), 50);
        assert_eq!(ms(1, 7.0), 100);
    }

    #[test]
    fn backoff_is_never_zero_and_never_above_the_ceiling() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            for j in 0..=10 {
                let d = backoff(&p, retry, f64::from(j) / 10.0);
                assert!(d >= p.base / 2 && d <= p.cap, "{retry} {j}: {d:?}");
            }
        }
    }

    #[test]
    fn retries_stop_at_the_attempt_limit() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let now = Instant::now();
        let deadline = now + Duration::from_secs(60);
        let f = http(400, "RequestLimitExceeded");
        assert!(matches!(
            next_step(&p, &f, 1, now, deadline, 0.0),
            Step::RetryAfter { refresh: false, .. }
        ));
        assert!(matches!(
            next_step(&p, &f, 2, now, deadline, 0.0),
            Step::RetryAfter { .. }
        ));
        assert_eq!(
            next_step(&p, &f, 3, now, deadline, 0.0),
            Step::Stop { gave_up: true }
        );
    }

    #[test]
    fn retries_stop_when_the_wait_would_pass_the_deadline() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        let f = http(503, "");
        // Retry 3 waits 200..400 ms; with 100 ms for the request, 450 ms is not enough
        // at full jitter but is at none.
        let deadline = now + Duration::from_millis(450);
        assert_eq!(
            next_step(&p, &f, 3, now, deadline, 1.0),
            Step::Stop { gave_up: true }
        );
        assert_eq!(
            next_step(&p, &f, 3, now, deadline, 0.0),
            Step::RetryAfter {
                delay: Duration::from_millis(200),
                refresh: false
            }
        );
        // A permanent failure is not "gave up": it was never worth retrying.
        assert_eq!(
            next_step(
                &p,
                &http(403, "UnauthorizedOperation"),
                1,
                now,
                deadline,
                0.0
            ),
            Step::Stop { gave_up: false }
        );
    }

    #[test]
    fn the_request_timeout_shrinks_to_the_deadline() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        assert_eq!(
            request_timeout(&p, now, now + Duration::from_secs(60)),
            p.request_timeout
        );
        assert_eq!(
            request_timeout(&p, now, now + Duration::from_millis(700)),
            Duration::from_millis(700)
        );
        assert_eq!(request_timeout(&p, now, now), Duration::ZERO);
    }
}
