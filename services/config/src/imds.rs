//! EC2 user-data through IMDSv2: a PUT for a session token first, then the GET with it.
//! IMDSv1 (a bare GET) is refused on instances registered with `--imds-support v2.0`,
//! which is how STAR's AMIs are registered.

use std::time::Duration;

pub const IMDS: &str = "http://169.254.169.254";

#[derive(Debug, PartialEq, Eq)]
pub enum UserData {
    Found(String),
    /// The instance has no user-data (IMDS answers 404).
    None,
}

/// Fetches user-data from `base` (the real service, or a test's responder).
pub fn user_data(base: &str, timeout: Duration) -> Result<UserData, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut token = agent
        .put(format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
        .send_empty()
        .map_err(|e| format!("IMDSv2 token from {base}: {e}"))?;
    if token.status() != 200 {
        return Err(format!(
            "IMDSv2 token from {base}: HTTP {}",
            token.status().as_u16()
        ));
    }
    let token = token
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("IMDSv2 token: {e}"))?;
    let mut response = agent
        .get(format!("{base}/latest/user-data"))
        .header("X-aws-ec2-metadata-token", token.trim())
        .call()
        .map_err(|e| format!("EC2 user-data from {base}: {e}"))?;
    match response.status().as_u16() {
        200 => Ok(UserData::Found(
            response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("EC2 user-data: {e}"))?,
        )),
        404 => Ok(UserData::None),
        code => Err(format!("EC2 user-data from {base}: HTTP {code}")),
    }
}
