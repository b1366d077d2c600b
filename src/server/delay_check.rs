//! Produce's delayed-delivery check (issue 18, decision 0009): whether a partition's records
//! go to the delay log instead of the partition, and the refusal (INVALID_RECORD with a
//! message and the offending record) when a delay header is malformed or too long.
//! Must not: cost anything beyond `delay::plan::may_delay`'s walk over the record framing
//! when no record asks for a delay.

use bytes::Bytes;

use crate::delay::plan::{DelayRules, DelayedRecord, plan};
use crate::metadata::TopicMeta;
use crate::storage::batch::BatchSummary;

/// Why a partition's delayed records were refused: Kafka's message and one record error.
pub struct DelayRefusal {
    pub message: String,
    pub record_errors: Vec<(i32, String)>,
}

/// The records to divert into the delay log (`None`: append as usual).
pub fn check(
    topic: &TopicMeta,
    records: &Bytes,
    batches: &[BatchSummary],
    transactional: bool,
    receipt_ms: i64,
) -> Result<Option<Vec<DelayedRecord>>, DelayRefusal> {
    let rules = DelayRules {
        topic_delay_ms: topic.config.delivery_delay_ms,
        max_delay_ms: topic.config.delivery_delay_max_ms,
        receipt_ms,
    };
    let planned = plan(records, batches, &rules).map_err(|refused| DelayRefusal {
        record_errors: vec![(refused.batch_index, refused.message.clone())],
        message: refused.message,
    })?;
    if planned.is_some() && transactional {
        let message = "transactional records cannot be delayed: delivery would leave the \
                       transaction"
            .to_string();
        return Err(DelayRefusal {
            message,
            record_errors: Vec::new(),
        });
    }
    Ok(planned)
}
