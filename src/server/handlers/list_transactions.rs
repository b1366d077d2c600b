//! ListTransactions (v0–v2): every transactional id of every shard's coordinator, filtered
//! by state name, producer id, (v1) by running longer than `duration_filter` ms and (v2,
//! KIP-1152) by a regular expression the whole id must match. State names Kafka does not
//! know are echoed in `unknown_state_filters`; a pattern that does not compile is
//! INVALID_REGULAR_EXPRESSION.

use crate::server::access::{cluster_allowed, permitted};
use crate::server::authorization::{AclOperation, ResourceType};
use crate::server::context::RequestContext;
use crate::shard::now_ms;
use crate::txn::TxnState;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::ResponseError;
use kafka_protocol::protocol::StrBytes;

/// Longest `transactional_id_pattern` accepted, and the most memory its compiled form may
/// take: the regex engine is linear-time, these bound what one request can make it build.
const PATTERN_BYTES_MAX: usize = 4 * 1024;
const PATTERN_COMPILED_BYTES_MAX: usize = 1 << 20;

/// Kafka's transaction state names (`TransactionState`), including `Dead`, which no id here
/// is ever listed in (forgotten ids are simply absent).
const KNOWN_STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "PrepareEpochFence",
    "Dead",
];

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<StrBytes> = request
        .state_filters
        .iter()
        .filter(|s| !KNOWN_STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let pattern = match id_pattern(ctx.version, request.transactional_id_pattern.as_deref()) {
        Ok(pattern) => pattern,
        Err(()) => {
            return ListTransactionsResponse::default()
                .with_throttle_time_ms(0)
                .with_error_code(ResponseError::InvalidRegularExpression.code());
        }
    };
    let states: Vec<String> = request.state_filters.iter().map(|s| s.to_string()).collect();
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration_ms = if ctx.version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let now = now_ms();
    let per_shard = ctx
        .shard
        .invoke_on_all(|s| async move {
            // Cluster mode: every node holds every id; each lists the ones it coordinates.
            let mut all = s.txns.all();
            all.retain(|m| s.coordinates_transactional_id(&m.transactional_id));
            all
        })
        .await;
    let mut listed = Vec::new();
    for meta in per_shard.into_iter().flatten().flatten() {
        let state_ok = states.is_empty() || states.iter().any(|s| s == meta.state.name());
        let producer_ok = producers.is_empty() || producers.contains(&meta.producer_id);
        let running = meta.state == TxnState::Ongoing && meta.start_ms >= 0;
        let duration_ok =
            min_duration_ms < 0 || (running && now.saturating_sub(meta.start_ms) > min_duration_ms);
        let id_ok = pattern
            .as_ref()
            .is_none_or(|p| p.is_match(&meta.transactional_id));
        // Only the transactional ids the principal may DESCRIBE are listed (CLUSTER
        // DESCRIBE is the table's alternative for the whole list).
        let visible = cluster_allowed(ctx, AclOperation::Describe)
            || permitted(ctx, ResourceType::TransactionalId, &meta.transactional_id);
        if state_ok && producer_ok && duration_ok && id_ok && visible {
            listed.push(
                TransactionState::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(
                        meta.transactional_id,
                    )))
                    .with_producer_id(ProducerId(meta.producer_id))
                    .with_transaction_state(StrBytes::from_static_str(meta.state.name())),
            );
        }
    }
    ListTransactionsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

/// The v2 pattern, anchored so it must match the whole id (Java's `Matcher.matches`); None
/// when absent or empty (no filter) or before v2.
fn id_pattern(version: i16, pattern: Option<&str>) -> Result<Option<regex::Regex>, ()> {
    let Some(pattern) = pattern.filter(|p| version >= 2 && !p.is_empty()) else {
        return Ok(None);
    };
    if pattern.len() > PATTERN_BYTES_MAX {
        return Err(());
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_COMPILED_BYTES_MAX)
        .build()
        .map(Some)
        .map_err(|_| ())
}

