//! The ACLs in cluster metadata: CreateAcls adds bindings, DeleteAcls removes the ones its
//! filters select, both through the single metadata writer, persisted with the rest of the
//! metadata file and published as a freshly indexed `AclSet` in the next snapshot, which the
//! authorizer reads lock-free. In cluster mode every node applies them from the metadata
//! log (`security_records`), where the file is the Raft log's business. Must not: validate wire codes (the ACL types do) or decide
//! who may change ACLs (the server's authorization does).

use super::{MetadataError, MetadataWriter};
use crate::security::acl::{AclBinding, AclFilter};
use crate::security::authorizer::{AclSet, MAX_ACLS};
use std::sync::Arc;

impl MetadataWriter {
    /// Stores `bindings` (already validated); ones already stored are kept once. All or
    /// nothing: the limit is checked before anything is published.
    pub fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<(), MetadataError> {
        let current = self.snapshot();
        let mut all = current.acls.bindings().to_vec();
        all.extend(bindings);
        let acls = AclSet::new(all);
        if acls.len() > MAX_ACLS {
            return Err(MetadataError::TooManyAcls);
        }
        let mut next = (*current).clone();
        next.acls = Arc::new(acls);
        self.publish(next)
    }

    /// Removes the bindings each filter selects; answers, per filter, the bindings it
    /// removed (one matched by several filters is reported by the first).
    pub fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<Vec<AclBinding>>, MetadataError> {
        let current = self.snapshot();
        let mut kept = current.acls.bindings().to_vec();
        let mut removed = Vec::with_capacity(filters.len());
        for filter in filters {
            let (matched, rest): (Vec<_>, Vec<_>) =
                kept.into_iter().partition(|b| filter.matches(b));
            kept = rest;
            removed.push(matched);
        }
        if removed.iter().any(|r| !r.is_empty()) {
            let mut next = (*current).clone();
            next.acls = Arc::new(AclSet::new(kept));
            self.publish(next)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::security::acl::{
        AclOperation, PatternFilter, PatternType, Permission, ResourceType,
    };

    fn binding(name: &str, operation: AclOperation) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".to_string(),
            host: "*".to_string(),
            operation,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn acls_persist_across_reopen_and_deletes_report_per_filter() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        let read = binding("pay", AclOperation::Read);
        let write = binding("pay", AclOperation::Write);
        writer
            .create_acls(vec![read.clone(), write.clone(), read.clone()])
            .unwrap();
        assert_eq!(view.load().acls.len(), 2);
        drop(writer);

        let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(view.load().acls.bindings(), &[read.clone(), write.clone()]);
        let by_operation = |operation| AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation,
            permission: None,
        };
        let removed = writer
            .delete_acls(&[by_operation(Some(AclOperation::Read)), by_operation(None)])
            .unwrap();
        assert_eq!(removed, vec![vec![read], vec![write]]);
        assert!(view.load().acls.is_empty());
        drop(writer);
        let (_writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert!(view.load().acls.is_empty());
    }
}
