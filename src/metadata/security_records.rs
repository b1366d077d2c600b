//! ACLs, SCRAM credentials and client quotas in cluster mode: the metadata-log records that
//! carry their changes (Kafka's AccessControlEntryRecord, UserScramCredentialRecord and
//! ClientQuotaRecord in KRaft) and how every node applies them. A node proposes the change;
//! every node, the proposer included, applies the committed record to the same state
//! through the same writer methods a single node uses, so the authorizer, the SASL
//! exchanges and the quota checks read the same answer on every broker, and a restarted
//! node gets them back from the log and its snapshots (`replicated_image`).
//!
//! Must not: validate wire input (the handlers do before proposing) or decide who may make
//! the change (the server's authorization does).

use super::credentials::ScramChange;
use super::quotas::QuotaAlteration;
use super::{MetadataError, MetadataWriter};
use crate::security::acl::{AclBinding, AclFilter};
use serde::{Deserialize, Serialize};

/// One security change, as the metadata log carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SecurityRecord {
    /// CreateAcls: validated bindings; ones already stored are kept once.
    CreateAcls { bindings: Vec<AclBinding> },
    /// DeleteAcls: the filters, matched against the applied state on every node, so every
    /// node removes the same bindings and the proposer answers what was removed.
    DeleteAcls { filters: Vec<AclFilter> },
    /// AlterUserScramCredentials: salts and derived keys, never a password.
    AlterScramCredentials { changes: Vec<ScramChange> },
    /// AlterClientQuotas; each broker enforces them on its own connections, as Kafka's do.
    AlterClientQuotas { alterations: Vec<QuotaAlteration> },
}

/// What applying a `SecurityRecord` answers the proposer.
#[derive(Debug, Clone)]
pub enum SecurityApplied {
    /// ACLs or quotas stored: only the published snapshot changed.
    Stored,
    /// DeleteAcls: per filter, the bindings it removed.
    AclsDeleted(Vec<Vec<AclBinding>>),
    /// AlterUserScramCredentials: per change, `Err(message)` when it alone was refused (a
    /// deletion of a credential that does not exist).
    ScramCredentials(Vec<Result<(), String>>),
}

impl MetadataWriter {
    /// Applies a committed security record. A refusal (a limit) is decided by the applied
    /// state, so it is the same on every node.
    pub(super) fn apply_security(
        &self,
        record: &SecurityRecord,
    ) -> Result<SecurityApplied, MetadataError> {
        match record {
            SecurityRecord::CreateAcls { bindings } => {
                self.create_acls(bindings.clone())?;
                Ok(SecurityApplied::Stored)
            }
            SecurityRecord::DeleteAcls { filters } => {
                Ok(SecurityApplied::AclsDeleted(self.delete_acls(filters)?))
            }
            SecurityRecord::AlterScramCredentials { changes } => Ok(
                SecurityApplied::ScramCredentials(self.alter_scram_credentials(changes.clone())?),
            ),
            SecurityRecord::AlterClientQuotas { alterations } => {
                self.alter_client_quotas(alterations.clone())?;
                Ok(SecurityApplied::Stored)
            }
        }
    }
}
