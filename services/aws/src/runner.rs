//! The retry loop: the one place that sleeps. The decisions are `retry::next_step`'s.

use std::time::Instant;

use crate::error::{Error, ErrorKind};
use crate::retry::{self, Failure, RetryPolicy, Step};

/// How one request went wrong.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// A failure the retry rules decide about.
    Failed(Failure),
    /// An error that ends the call as it is (credentials unavailable, a request that
    /// cannot be built).
    Fatal(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Fatal(e)
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the policy or `deadline` says
/// stop. `attempt` gets the timeout for its request and whether to refresh credentials
/// first. The error names `call` and counts the requests.
pub(crate) fn retrying<T>(
    policy: &RetryPolicy,
    deadline: Instant,
    call: &str,
    mut attempt: impl FnMut(std::time::Duration, bool) -> Result<T, Attempt>,
) -> Result<T, Error> {
    let mut attempts = 0;
    let mut refresh = false;
    loop {
        attempts += 1;
        let timeout = retry::request_timeout(policy, Instant::now(), deadline);
        let failure = match attempt(timeout, refresh) {
            Ok(v) => return Ok(v),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Failed(f)) => f,
        };
        let step = retry::next_step(
            policy,
            &failure,
            attempts,
            Instant::now(),
            deadline,
            fastrand::f64(),
        );
        match step {
            Step::RetryAfter { delay, refresh: r } => {
                tracing::warn!(
                    call,
                    attempt = attempts,
                    ?delay,
                    "{}; retrying",
                    describe(&failure)
                );
                refresh = r;
                std::thread::sleep(delay);
            }
            Step::Stop { gave_up } => {
                let kind = match failure {
                    Failure::Transport(s) => ErrorKind::Transport(s),
                    Failure::Http {
                        status,
                        code,
                        message,
                    } => ErrorKind::Aws {
                        status,
                        code,
                        message,
                    },
                };
                let mut e = Error::new(call, kind, attempts);
                e.gave_up = gave_up;
                return Err(e);
            }
        }
    }
}

fn describe(f: &Failure) -> String {
    match f {
        Failure::Transport(s) => format!("no answer: {s}"),
        Failure::Http { status, code, .. } if code.is_empty() => format!("HTTP {status}"),
        Failure::Http { status, code, .. } => format!("HTTP {status} {code}"),
    }
}
