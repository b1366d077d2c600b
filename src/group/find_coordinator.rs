//! FindCoordinator: which broker coordinates a group or transaction id.
//!
//! Owns: the answer's shape in every served version. Must not: look at group state — this
//! broker coordinates every id (the owning shard is reached internally), so the answer is
//! always this node.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::wire::{error_code, sb};

/// What a FindCoordinator key names: a consumer group or a transactional id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKeyType {
    Group,
    Transaction,
}

/// A coordinator as FindCoordinator names it: node id, host, port.
pub type CoordinatorAddress = (i32, String, i32);

/// FindCoordinator (v0–v6): `locate` names the broker (id, host, port) coordinating a key:
/// this node on a single node, a stable choice among live brokers in cluster mode; `None`
/// when that broker has no endpoint on the request's listener (COORDINATOR_NOT_AVAILABLE).
/// `authorized(kind, key)` says whether the caller may DESCRIBE the group or transactional
/// id (GROUP_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise, as Kafka answers).
pub fn find_coordinator(
    request: &FindCoordinatorRequest,
    version: i16,
    locate: &dyn Fn(&str) -> Option<CoordinatorAddress>,
    authorized: &dyn Fn(CoordinatorKeyType, &str) -> bool,
) -> FindCoordinatorResponse {
    const KEY_TYPE_GROUP: i8 = 0;
    const KEY_TYPE_TRANSACTION: i8 = 1;
    let check = |key: &str| -> Result<(), ResponseError> {
        let key_type = if version >= 1 {
            request.key_type
        } else {
            KEY_TYPE_GROUP
        };
        if key_type != KEY_TYPE_GROUP && key_type != KEY_TYPE_TRANSACTION {
            return Err(ResponseError::InvalidRequest);
        }
        if key.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if key_type == KEY_TYPE_GROUP && !authorized(CoordinatorKeyType::Group, key) {
            return Err(ResponseError::GroupAuthorizationFailed);
        }
        if key_type == KEY_TYPE_TRANSACTION && !authorized(CoordinatorKeyType::Transaction, key) {
            return Err(ResponseError::TransactionalIdAuthorizationFailed);
        }
        Ok(())
    };
    let located = |key: &str| locate(key).ok_or(ResponseError::CoordinatorNotAvailable);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let located = check(key).and_then(|()| located(key));
                let checked = located.as_ref().map(|_| ()).map_err(|e| *e);
                let c = Coordinator::default()
                    .with_key(key.clone())
                    .with_error_code(error_code(checked))
                    .with_error_message(Some(sb(error_message(checked))));
                match located {
                    Ok((node_id, host, port)) => c
                        .with_node_id(BrokerId(node_id))
                        .with_host(sb(&host))
                        .with_port(port),
                    Err(_) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (node_id, host, port) = match check(&request.key).and_then(|()| located(&request.key)) {
        Ok(found) => found,
        Err(e) => {
            return FindCoordinatorResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(sb(error_message(Err(e)))))
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1);
        }
    };
    FindCoordinatorResponse::default()
        .with_error_code(0)
        .with_error_message(Some(sb(error_message(Ok(())))))
        .with_node_id(BrokerId(node_id))
        .with_host(sb(&host))
        .with_port(port)
}

/// The error message Kafka's FindCoordinator carries: `Errors.message()`, which is "NONE"
/// on success and the error's default message otherwise (never null, never "").
fn error_message(checked: Result<(), ResponseError>) -> &'static str {
    match checked {
        Ok(()) => "NONE",
        Err(ResponseError::InvalidRequest) => {
            "This most likely occurs because of a request being malformed by the client \
             library or the message was sent to an incompatible broker. See the broker logs \
             for more details."
        }
        Err(ResponseError::GroupAuthorizationFailed) => "Group authorization failed.",
        Err(ResponseError::TransactionalIdAuthorizationFailed) => {
            "Transactional Id authorization failed."
        }
        Err(ResponseError::CoordinatorNotAvailable) => "The coordinator is not available.",
        Err(_) => "The server experienced an unexpected error when processing the request.",
    }
}
