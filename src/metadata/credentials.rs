//! SCRAM credentials in the cluster metadata (KIP-554): per user and mechanism the salt,
//! StoredKey, ServerKey and iterations, persisted with the snapshot. Never a password, never
//! a salted password. Changed only by the metadata writer (AlterUserScramCredentials);
//! read lock-free by every shard's SASL exchanges from the published snapshot. In cluster
//! mode every node applies the changes from the metadata log (`security_records`).

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

/// One validated change of AlterUserScramCredentials (in cluster mode a metadata-log
/// record carries it: the derived keys, never a password).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ScramChange {
    Delete(String, ScramMechanism),
    Upsert(String, ScramMechanism, ScramCredential),
}

impl MetadataWriter {
    /// Applies `changes` (already validated by the handler) in one published, persisted
    /// snapshot. A deletion of a credential that does not exist fails that change alone:
    /// the returned list holds, per change, `Err(message)` for RESOURCE_NOT_FOUND.
    pub fn alter_scram_credentials(
        &self,
        changes: Vec<ScramChange>,
    ) -> Result<Vec<Result<(), String>>, MetadataError> {
        let current = self.snapshot();
        let mut users = current.scram_credentials.users.clone();
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
        if outcome.iter().any(Result::is_ok) {
            let mut next: MetadataSnapshot = (*current).clone();
            next.scram_credentials = Arc::new(ScramCredentials { users });
            self.publish(next)?;
        }
        Ok(outcome)
    }
}
