//! Power fencing: stop the peer's instance, forced (fence_aws's method). Force skips the
//! guest's orderly shutdown, which a hung or paused peer would never finish.
//!
//! This fence needs the EC2 API to be reachable from the survivor, which is not the case
//! in every failure; STAR's primary fence is the poison pill on the shared disk and the
//! peer's watchdog (DESIGN.md §5). Stopping the instance is the extra step that makes a
//! peer that is merely paused never come back to write.

use std::time::Instant;

use crate::client::Client;
use crate::ec2;
use crate::error::Error;
use crate::methods::{missing_is_refusal, wait_for, Seen, EC2_POLL};

/// States that count as fenced: the instance is stopped or on its way there. `stopping`
/// counts because a forced stop reports it at once while `stopped` can take a minute or
/// more; EC2 does not document when a stopping guest issues its last I/O, which is one
/// reason this is not STAR's only fence. Callers that need `stopped` can poll
/// [`instance_state`].
pub fn is_fenced(state: &str) -> bool {
    matches!(
        state,
        "stopping" | "stopped" | "shutting-down" | "terminated"
    )
}

/// Stops `instance` with Force and confirms through DescribeInstances that it is
/// stopping or stopped (or terminated). Idempotent: stopping a stopped instance succeeds.
pub fn stop_instance(c: &Client, instance: &str, deadline: Instant) -> Result<String, Error> {
    let what = format!("fence {instance}");
    let ctx = |e: Error| e.within(&what);
    let reported = ec2::stop_instance_forced(c, instance, deadline).map_err(|e| {
        ctx(missing_is_refusal(
            e,
            &["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"],
        ))
    })?;
    let state = wait_for(&what, EC2_POLL, deadline, || {
        let s = ec2::describe_instance_state(c, instance, deadline).map_err(ctx)?;
        Ok(if is_fenced(&s) {
            Seen::Done(s)
        } else {
            Seen::NotYet(format!("{instance} is {s}"))
        })
    })?;
    Ok(format!(
        "{instance} is {state} (forced stop{})",
        reported
            .map(|r| format!("; StopInstances answered {r}"))
            .unwrap_or_default()
    ))
}

/// The instance's state (`running`, `stopping`, `stopped`, ...).
pub fn instance_state(c: &Client, instance: &str, deadline: Instant) -> Result<String, Error> {
    ec2::describe_instance_state(c, instance, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_states_past_running_are_fenced() {
        for s in ["stopping", "stopped", "shutting-down", "terminated"] {
            assert!(is_fenced(s), "{s}");
        }
        for s in ["pending", "running", "rebooting", ""] {
            assert!(!is_fenced(s), "{s}");
        }
    }
}
