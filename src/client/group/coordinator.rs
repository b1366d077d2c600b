//! Finding a group's coordinator (FindCoordinator, old and KIP-699 batched forms) and
//! registering its address with the `Client`.
//!
//! Must not: hold group state; callers keep the node id and ask again when it moves.

use super::{
    COORDINATOR_BACKOFF_MS, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
    JOIN_ATTEMPTS_MAX,
};
use crate::client::cluster::Client;
use crate::client::error::{ClientError, Result};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

/// Finds the coordinator node of `group_id` and registers its address with the client.
pub fn find_coordinator(client: &mut Client, group_id: &str) -> Result<i32> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let conn = client.any_connection()?;
        let version = conn.version_of::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group_id.to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let response = conn.call(&request)?;
        let (code, message, node, host, port) = if version >= 4 {
            let c = response.coordinators.first().ok_or_else(|| {
                ClientError::Invalid("FindCoordinator returned no coordinator".to_string())
            })?;
            (
                c.error_code,
                c.error_message.clone(),
                c.node_id.0,
                c.host.clone(),
                c.port,
            )
        } else {
            (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.clone(),
                response.port,
            )
        };
        if code == 0 {
            client.add_broker(node, format!("{}:{}", host.as_str(), port));
            return Ok(node);
        }
        let err = ClientError::from_code(
            code,
            format!("find coordinator of group `{group_id}`"),
            message.as_deref(),
        )
        .unwrap_or_else(|| ClientError::Invalid("unreachable".to_string()));
        if (code == COORDINATOR_NOT_AVAILABLE || code == COORDINATOR_LOAD_IN_PROGRESS)
            && attempt < JOIN_ATTEMPTS_MAX
        {
            std::thread::sleep(Duration::from_millis(COORDINATOR_BACKOFF_MS));
            continue;
        }
        return Err(err);
    }
}
