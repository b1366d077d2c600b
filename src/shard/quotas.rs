//! Client quota changes across shards: AlterClientQuotas sends its (validated) alterations
//! to shard 0, the metadata writer, which persists them and publishes the snapshot every
//! shard's throttling reads. Must not: validate wire input (the handler does).

use super::Shard;
use super::topics::TopicOpError;
use crate::metadata::quotas::QuotaAlteration;
use std::rc::Rc;

/// Applies `alterations`; the error (code and message) applies to every one of them.
pub async fn alter_client_quotas(
    shard: &Rc<Shard>,
    alterations: Vec<QuotaAlteration>,
) -> Result<(), TopicOpError> {
    shard
        .invoke_on(0, move |s| async move {
            let writer = s.metadata_writer.as_deref().ok_or(TopicOpError {
                code: kafka_protocol::ResponseError::NotController.code(),
                message: "metadata writer lives on shard 0".into(),
            })?;
            Ok(writer.alter_client_quotas(alterations)?)
        })
        .await?
}
