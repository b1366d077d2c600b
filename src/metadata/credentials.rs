//! SCRAM credentials in the cluster metadata (KIP-554): per user and mechanism the salt,
//! StoredKey, ServerKey and iterations, persisted with the snapshot. Never a password, never
//! a salted password. Changed only by the metadata writer (AlterUserScramCredentials);
//! read lock-free by every shard's SASL exchanges from the published snapshot.

use super::{MetadataError, MetadataSnapshot, MetadataWriter};
use crate::security::scram::{ScramCredential, ScramMechanism};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Users that may hold SCRAM credentials (bounds the metadata file).
pub const MAX_SCRAM_USERS: usize = 100_000;
/// Longest user name accepted (Kafka bounds it by the request; this keeps files small).
pub const USER_NAME_BYTES_MAX: usize = 1024;

/// Every user's credentials: user → mechanism → credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramCredentials {
    users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

/// The persisted form: mechanisms by name, so the file reads like Kafka's configs.
pub type PersistedScramCredentials = BTreeMap<String, BTreeMap<String, ScramCredential>>;

impl ScramCredentials {
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&mechanism)
    }

    /// A user's credentials (mechanism and iterations), if it has any.
    pub fn user(&self, user: &str) -> Option<&BTreeMap<ScramMechanism, ScramCredential>> {
        self.users.get(user)
    }

    pub fn users(
        &self,
    ) -> impl Iterator<Item = (&String, &BTreeMap<ScramMechanism, ScramCredential>)> {
        self.users.iter()
    }

    pub fn to_persisted(&self) -> PersistedScramCredentials {
        self.users
            .iter()
            .map(|(user, creds)| {
                let by_name = creds
                    .iter()
                    .map(|(m, c)| (m.name().to_string(), c.clone()))
                    .collect();
                (user.clone(), by_name)
            })
            .collect()
    }

    pub fn from_persisted(persisted: PersistedScramCredentials) -> Result<Self, String> {
        let mut users = BTreeMap::new();
        for (user, creds) in persisted {
            let mut by_mechanism = BTreeMap::new();
            for (name, credential) in creds {
                let mechanism = ScramMechanism::from_name(&name)
                    .ok_or_else(|| format!("user {user}: unknown SCRAM mechanism {name:?}"))?;
                by_mechanism.insert(mechanism, credential);
            }
            users.insert(user, by_mechanism);
        }
        Ok(ScramCredentials { users })
    }
}

/// One validated change of AlterUserScramCredentials.
#[derive(Debug, Clone)]
pub enum ScramChange {
    Delete(String, ScramMechanism),
    Upsert(String, ScramMechanism, ScramCredential),
}

/// A change as the metadata log carries it in cluster mode (Kafka's
/// UserScramCredentialRecord / RemoveUserScramCredentialRecord): the mechanism by name, no
/// credential for a deletion. Never a password: the credential is the derived keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramRecordChange {
    pub user: String,
    pub mechanism: String,
    pub credential: Option<ScramCredential>,
}

impl From<&ScramChange> for ScramRecordChange {
    fn from(change: &ScramChange) -> ScramRecordChange {
        let (user, mechanism, credential) = match change {
            ScramChange::Delete(user, mechanism) => (user, mechanism, None),
            ScramChange::Upsert(user, mechanism, credential) => {
                (user, mechanism, Some(credential.clone()))
            }
        };
        ScramRecordChange {
            user: user.clone(),
            mechanism: mechanism.name().to_string(),
            credential,
        }
    }
}

impl ScramRecordChange {
    fn to_change(&self) -> Result<ScramChange, String> {
        let mechanism = ScramMechanism::from_name(&self.mechanism)
            .ok_or_else(|| format!("unknown SCRAM mechanism {:?}", self.mechanism))?;
        Ok(match &self.credential {
            None => ScramChange::Delete(self.user.clone(), mechanism),
            Some(credential) => {
                ScramChange::Upsert(self.user.clone(), mechanism, credential.clone())
            }
        })
    }
}

/// Applies `changes` to `users`: per change `Err(message)` when it fails alone (a deletion
/// of a credential that does not exist, the user limit).
fn apply_changes(
    users: &mut BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    changes: Vec<ScramChange>,
) -> Vec<Result<(), String>> {
    let mut outcome = Vec::with_capacity(changes.len());
    for change in changes {
        outcome.push(match change {
            ScramChange::Delete(user, mechanism) => {
                let removed = users.get_mut(&user).and_then(|c| c.remove(&mechanism));
                if users.get(&user).is_some_and(|c| c.is_empty()) {
                    users.remove(&user);
                }
                removed.map(|_| ()).ok_or_else(|| {
                    "Attempt to delete a user credential that does not exist".to_string()
                })
            }
            ScramChange::Upsert(user, mechanism, credential) => {
                if !users.contains_key(&user) && users.len() >= MAX_SCRAM_USERS {
                    Err(format!(
                        "at most {MAX_SCRAM_USERS} users may hold SCRAM credentials"
                    ))
                } else {
                    users.entry(user).or_default().insert(mechanism, credential);
                    Ok(())
                }
            }
        });
    }
    outcome
}

impl MetadataWriter {
    /// Applies `changes` (already validated by the handler) in one published, persisted
    /// snapshot. A deletion of a credential that does not exist fails that change alone:
    /// the returned list holds, per change, `Err(message)` for RESOURCE_NOT_FOUND. Single
    /// node only: cluster mode proposes `MetadataRecord::AlterScramCredentials`.
    pub fn alter_scram_credentials(
        &self,
        changes: Vec<ScramChange>,
    ) -> Result<Vec<Result<(), String>>, MetadataError> {
        if self.snapshot().cluster.is_some() {
            return Err(MetadataError::NotReplicated("SCRAM credentials"));
        }
        self.publish_scram_changes(changes)
    }

    /// Cluster mode: a committed `AlterScramCredentials` record, applied the same on every
    /// node (the outcome depends only on the applied state).
    pub(super) fn apply_scram_record(
        &self,
        changes: &[ScramRecordChange],
    ) -> Result<Vec<Result<(), String>>, MetadataError> {
        let mut parsed = Vec::with_capacity(changes.len());
        for change in changes {
            parsed.push(change.to_change().map_err(MetadataError::InvalidRecord)?);
        }
        self.publish_scram_changes(parsed)
    }

    fn publish_scram_changes(
        &self,
        changes: Vec<ScramChange>,
    ) -> Result<Vec<Result<(), String>>, MetadataError> {
        let current = self.snapshot();
        let mut users = current.scram_credentials.users.clone();
        let outcome = apply_changes(&mut users, changes);
        if outcome.iter().any(Result::is_ok) {
            let mut next: MetadataSnapshot = (*current).clone();
            next.scram_credentials = Arc::new(ScramCredentials { users });
            self.publish(next)?;
        }
        Ok(outcome)
    }
}
