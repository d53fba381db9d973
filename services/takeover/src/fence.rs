//! Power fencing of the peer, by star.toml's `[fencing]`: star-heartbeat asks for it when
//! it takes over, and an operator can run it (`star-takeover fence-peer`). It comes on
//! top of the poison pill and the peer's watchdog, which cannot stop a peer whose
//! hypervisor paused it.

use star_core::node_config::{Fencing, NodeConfig};
use std::time::{Duration, Instant};

/// StopInstances with Force and its confirmation (stopping or stopped) within this.
const BUDGET: Duration = Duration::from_secs(20);

pub fn fence_peer(node: &NodeConfig) -> Result<String, String> {
    let Some(Fencing::AwsStopInstance { peer_instance_id }) = &node.fencing else {
        return Err("star.toml has no [fencing]: this array has no power fencing".into());
    };
    let deadline = Instant::now() + BUDGET;
    let imds = star_aws::Imds::new(
        node.aws
            .imds
            .as_deref()
            .unwrap_or(star_aws::imds::DEFAULT_ENDPOINT),
        star_aws::RetryPolicy::default(),
    );
    let client = star_aws::Client::from_imds(
        star_aws::Config {
            ec2_endpoint: node.aws.ec2.clone(),
            route53_endpoint: node.aws.route53.clone(),
            ..star_aws::Config::default()
        },
        imds,
        deadline,
    )
    .map_err(|e| format!("fence {peer_instance_id}: instance metadata and credentials: {e}"))?;
    star_aws::stop_instance(&client, peer_instance_id, deadline)
        .map_err(|e| format!("fence {peer_instance_id}: {e}"))
}
