//! ACL changes across shards: CreateAcls and DeleteAcls send their (validated) bindings and
//! filters to shard 0, the metadata writer, which persists them and publishes the snapshot
//! every shard's authorizer reads. Must not: validate wire input (the handlers do).

use super::Shard;
use super::topics::TopicOpError;
use crate::security::acl::{AclBinding, AclFilter};
use std::rc::Rc;

fn writer(shard: &Shard) -> Result<&crate::metadata::MetadataWriter, TopicOpError> {
    shard.metadata_writer.as_deref().ok_or(TopicOpError {
        code: kafka_protocol::ResponseError::NotController.code(),
        message: "metadata writer lives on shard 0".into(),
    })
}

/// Stores `bindings`; the error (code and message) applies to every one of them.
pub async fn create_acls(shard: &Rc<Shard>, bindings: Vec<AclBinding>) -> Result<(), TopicOpError> {
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
    shard
        .invoke_on(
            0,
            move |s| async move { Ok(writer(&s)?.delete_acls(&filters)?) },
        )
        .await?
}
