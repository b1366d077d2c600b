//! ACL, SCRAM credential and client quota changes across shards. On a single node the
//! (validated) change goes to shard 0, the metadata writer, which persists it and publishes
//! the snapshot every shard reads. In cluster mode it is proposed to the metadata log
//! (`metadata::security_records`) and answered once a majority holds it and this node has
//! applied it, so every broker authorizes and authenticates alike and a restart keeps it.
//! Must not: validate wire input (the handlers do).

use super::Shard;
use super::topics::TopicOpError;
use crate::metadata::credentials::ScramChange;
use crate::metadata::quotas::QuotaAlteration;
use crate::metadata::replicated::{Applied, MetadataRecord};
use crate::metadata::security_records::{SecurityApplied, SecurityRecord};
use crate::security::acl::{AclBinding, AclFilter};
use std::rc::Rc;

fn writer(shard: &Shard) -> Result<&crate::metadata::MetadataWriter, TopicOpError> {
    shard.metadata_writer.as_deref().ok_or(TopicOpError {
        code: kafka_protocol::ResponseError::NotController.code(),
        message: "metadata writer lives on shard 0".into(),
    })
}

/// In cluster mode: proposes `record` and returns what applying it answered.
async fn propose(
    shard: &Rc<Shard>,
    record: SecurityRecord,
) -> Result<SecurityApplied, TopicOpError> {
    match super::cluster_topics::propose(shard, MetadataRecord::Security(record)).await? {
        Applied::Security(applied) => Ok(applied),
        other => Err(TopicOpError {
            code: kafka_protocol::ResponseError::UnknownServerError.code(),
            message: format!("a security record applied as {other:?}"),
        }),
    }
}

/// Stores `bindings`; the error (code and message) applies to every one of them.
pub async fn create_acls(shard: &Rc<Shard>, bindings: Vec<AclBinding>) -> Result<(), TopicOpError> {
    if shard.cluster.is_some() {
        return propose(shard, SecurityRecord::CreateAcls { bindings })
            .await
            .map(|_| ());
    }
    shard
        .invoke_on(
            0,
            move |s| async move { Ok(writer(&s)?.create_acls(bindings)?) },
        )
        .await?
}

/// Removes what each filter selects; per filter, the bindings it removed.
pub async fn delete_acls(
    shard: &Rc<Shard>,
    filters: Vec<AclFilter>,
) -> Result<Vec<Vec<AclBinding>>, TopicOpError> {
    if shard.cluster.is_some() {
        let count = filters.len();
        return match propose(shard, SecurityRecord::DeleteAcls { filters }).await? {
            SecurityApplied::AclsDeleted(removed) if removed.len() == count => Ok(removed),
            other => Err(unexpected(other)),
        };
    }
    shard
        .invoke_on(
            0,
            move |s| async move { Ok(writer(&s)?.delete_acls(&filters)?) },
        )
        .await?
}

/// Applies AlterUserScramCredentials' changes; per change, `Err(message)` for one refused
/// alone (RESOURCE_NOT_FOUND).
pub async fn alter_scram_credentials(
    shard: &Rc<Shard>,
    changes: Vec<ScramChange>,
) -> Result<Vec<Result<(), String>>, TopicOpError> {
    if shard.cluster.is_some() {
        let count = changes.len();
        return match propose(shard, SecurityRecord::AlterScramCredentials { changes }).await? {
            SecurityApplied::ScramCredentials(outcome) if outcome.len() == count => Ok(outcome),
            other => Err(unexpected(other)),
        };
    }
    shard
        .invoke_on(0, move |s| async move {
            Ok(writer(&s)?.alter_scram_credentials(changes)?)
        })
        .await?
}

/// Applies `alterations`; the error (code and message) applies to every one of them.
pub async fn alter_client_quotas(
    shard: &Rc<Shard>,
    alterations: Vec<QuotaAlteration>,
) -> Result<(), TopicOpError> {
    if shard.cluster.is_some() {
        return propose(shard, SecurityRecord::AlterClientQuotas { alterations })
            .await
            .map(|_| ());
    }
    shard
        .invoke_on(0, move |s| async move {
            Ok(writer(&s)?.alter_client_quotas(alterations)?)
        })
        .await?
}

/// An applied record's answer that does not fit its request: a bug, answered as one.
fn unexpected(applied: SecurityApplied) -> TopicOpError {
    TopicOpError {
        code: kafka_protocol::ResponseError::UnknownServerError.code(),
        message: format!("a security change applied as {applied:?}"),
    }
}
