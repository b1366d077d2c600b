//! Client quotas in cluster metadata (KIP-546): per entity (a user, a client id, both, or
//! their default entities) the quota values set on it. AlterClientQuotas changes them
//! through the single metadata writer, persisted with the rest of the metadata file and
//! published in the next snapshot, which DescribeClientQuotas and the throttling read
//! lock-free (in cluster mode every node applies them from the metadata log,
//! `security_records`). Also owns the entity and key vocabulary (wire names, Kafka's value checks) so
//! the handlers and the enforcement speak one language. Must not: decide who may change
//! quotas (the server's authorization does) or measure rates (`server::quota` does).

use super::{MetadataError, MetadataWriter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Entities that may carry quotas (bounds the metadata file and every lookup).
pub const MAX_QUOTA_ENTITIES: usize = 10_000;
/// Longest user or client id accepted as an entity name.
pub const QUOTA_ENTITY_NAME_BYTES_MAX: usize = 1024;

/// Kafka's entity type names on the wire.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// One side of an entity: a named user/client id, or the default entity (`entity_name =
/// null` on the wire) that applies to every one without a quota of its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    pub fn from_wire(name: Option<&str>) -> Self {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Named(n.to_string()),
        }
    }

    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// A quota entity: a user, a client id, or a user with a client id (at least one is set);
/// or alone an IP address (KIP-612 connection creation rates).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
    /// An IP address in its canonical text form (`IpAddr`'s), or the default IP entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// The entity's parts as (entity type, name) pairs, in Kafka's order.
    pub fn parts(&self) -> impl Iterator<Item = (&'static str, &EntityName)> {
        let user = self.user.as_ref().map(|n| (USER, n));
        let client = self.client_id.as_ref().map(|n| (CLIENT_ID, n));
        let ip = self.ip.as_ref().map(|n| (IP, n));
        user.into_iter().chain(client).chain(ip)
    }

    /// The entity of an IP address (`None`: the default IP entity).
    pub fn ip(address: Option<std::net::IpAddr>) -> QuotaEntity {
        QuotaEntity {
            ip: Some(match address {
                Some(a) => EntityName::Named(a.to_string()),
                None => EntityName::Default,
            }),
            ..QuotaEntity::default()
        }
    }

    /// Whether `key` may be set on this entity: `connection_creation_rate` on IP entities
    /// only, and only it there (Kafka's separate IP and client config sets).
    pub fn takes(&self, key: QuotaKey) -> bool {
        (self.ip.is_some()) == (key == QuotaKey::ConnectionCreationRate)
    }

    pub fn part(&self, entity_type: &str) -> Option<&EntityName> {
        match entity_type {
            USER => self.user.as_ref(),
            CLIENT_ID => self.client_id.as_ref(),
            IP => self.ip.as_ref(),
            _ => None,
        }
    }

    /// Validates wire (type, name) pairs as Kafka's controller does; the error is the
    /// INVALID_REQUEST message. An `ip` entity stands alone and names an IP address.
    pub fn from_wire<'a>(
        parts: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, String> {
        let mut entity = QuotaEntity::default();
        for (entity_type, name) in parts {
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => &mut entity.ip,
                other => return Err(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return Err(format!(
                    "Invalid empty client quota entity, duplicate entity entry {entity_type}"
                ));
            }
            if name.is_some_and(str::is_empty) {
                return Err(format!("Empty {entity_type} not supported"));
            }
            if name.is_some_and(|n| n.len() > QUOTA_ENTITY_NAME_BYTES_MAX) {
                return Err(format!(
                    "{entity_type} longer than {QUOTA_ENTITY_NAME_BYTES_MAX} bytes"
                ));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if entity.ip.is_some() {
            if entity.user.is_some() || entity.client_id.is_some() {
                return Err("Invalid quota entity combination, IP entity should not be \
                            combined with User or ClientId"
                    .into());
            }
            if let Some(EntityName::Named(name)) = &entity.ip {
                // Stored in canonical form so that a connection's address finds it.
                let address: std::net::IpAddr = name
                    .parse()
                    .map_err(|_| format!("{name} is not a valid IP or resolvable host."))?;
                entity.ip = Some(EntityName::Named(address.to_string()));
            }
            return Ok(entity);
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("Invalid empty client quota entity".into());
        }
        Ok(entity)
    }
}

/// The quota keys served, with Kafka's names and value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    #[serde(rename = "producer_byte_rate")]
    ProducerByteRate,
    #[serde(rename = "consumer_byte_rate")]
    ConsumerByteRate,
    #[serde(rename = "request_percentage")]
    RequestPercentage,
    /// KIP-612: new connections per second from one IP address.
    #[serde(rename = "connection_creation_rate")]
    ConnectionCreationRate,
}

impl QuotaKey {
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    /// The key named `name`, or Kafka's INVALID_REQUEST message.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "producer_byte_rate" => Ok(QuotaKey::ProducerByteRate),
            "consumer_byte_rate" => Ok(QuotaKey::ConsumerByteRate),
            "request_percentage" => Ok(QuotaKey::RequestPercentage),
            "connection_creation_rate" => Ok(QuotaKey::ConnectionCreationRate),
            other => Err(format!("Invalid configuration key {other}")),
        }
    }

    /// Kafka's value check: the byte rates are LONG configs (an integral value), the
    /// percentage a DOUBLE. Stricter than Kafka where Kafka would store nonsense: a value
    /// must be finite and not negative.
    pub fn validate(self, value: f64) -> Result<(), String> {
        if !value.is_finite() || value < 0.0 {
            return Err(format!(
                "Configuration {} must be a finite value >= 0, not {value}",
                self.name()
            ));
        }
        let integral = matches!(
            self,
            QuotaKey::ProducerByteRate
                | QuotaKey::ConsumerByteRate
                | QuotaKey::ConnectionCreationRate
        );
        const EPSILON: f64 = 1e-6;
        if integral && ((value + EPSILON).trunc() - value).abs() > EPSILON {
            return Err(format!(
                "Configuration {} must be a Long value",
                self.name()
            ));
        }
        Ok(())
    }
}

/// The values set on one entity.
pub type QuotaValues = BTreeMap<QuotaKey, f64>;

/// One entity's requested changes: per key, the new value or `None` to remove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub ops: Vec<(QuotaKey, Option<f64>)>,
}

/// Every entity's quotas. Entities without any value are not kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientQuotas {
    entities: BTreeMap<QuotaEntity, QuotaValues>,
    /// The keys some entity sets, kept with `entities`: every request asks whether a
    /// `request_percentage` quota exists, which must not cost a walk of the entities.
    keys: BTreeSet<QuotaKey>,
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Whether any entity sets `key`.
    pub fn has_key(&self, key: QuotaKey) -> bool {
        self.keys.contains(&key)
    }

    fn index_keys(&mut self) {
        self.keys = self
            .entities
            .values()
            .flat_map(|v| v.keys().copied())
            .collect();
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn get(&self, entity: &QuotaEntity) -> Option<&QuotaValues> {
        self.entities.get(entity)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &QuotaValues)> {
        self.entities.iter()
    }

    pub(crate) fn apply(&mut self, alteration: QuotaAlteration) {
        let values = self.entities.entry(alteration.entity.clone()).or_default();
        for (key, value) in alteration.ops {
            match value {
                Some(v) => {
                    values.insert(key, v);
                }
                None => {
                    values.remove(&key);
                }
            }
        }
        if values.is_empty() {
            self.entities.remove(&alteration.entity);
        }
        self.index_keys();
    }

    pub(super) fn to_persisted(&self) -> Vec<PersistedQuota> {
        self.entities
            .iter()
            .map(|(entity, values)| PersistedQuota {
                entity: entity.clone(),
                values: values.clone(),
            })
            .collect()
    }

    pub(super) fn from_persisted(persisted: Vec<PersistedQuota>) -> Self {
        let mut quotas = ClientQuotas::default();
        for p in persisted {
            if !p.values.is_empty() {
                quotas.entities.insert(p.entity, p.values);
            }
        }
        quotas.index_keys();
        quotas
    }
}

/// One entity and its values, as stored in the metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistedQuota {
    pub entity: QuotaEntity,
    pub values: QuotaValues,
}

impl MetadataWriter {
    /// Applies `alterations` (already validated) in order, all or nothing: the entity limit
    /// is checked before anything is persisted or published.
    pub fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
    ) -> Result<(), MetadataError> {
        let current = self.snapshot();
        let mut quotas = (*current.client_quotas).clone();
        for alteration in alterations {
            quotas.apply(alteration);
        }
        if quotas.len() > MAX_QUOTA_ENTITIES {
            return Err(MetadataError::TooManyQuotaEntities);
        }
        if quotas == *current.client_quotas {
            return Ok(());
        }
        let mut next = (*current).clone();
        next.client_quotas = Arc::new(quotas);
        self.publish(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;

    fn user(name: Option<&str>) -> QuotaEntity {
        QuotaEntity {
            user: Some(EntityName::from_wire(name)),
            ..QuotaEntity::default()
        }
    }

    #[test]
    fn entity_validation_follows_kafka() {
        let ok = QuotaEntity::from_wire([(USER, Some("alice")), (CLIENT_ID, None)].into_iter());
        assert_eq!(
            ok.unwrap(),
            QuotaEntity {
                user: Some(EntityName::Named("alice".into())),
                client_id: Some(EntityName::Default),
                ip: None,
            }
        );
        let ip = QuotaEntity::from_wire([(IP, Some("::ffff:1.2.3.4"))].into_iter()).unwrap();
        assert_eq!(ip.ip, Some(EntityName::Named("::ffff:1.2.3.4".into())));
        assert!(ip.takes(QuotaKey::ConnectionCreationRate));
        assert!(!ip.takes(QuotaKey::ProducerByteRate));
        assert!(!user(None).takes(QuotaKey::ConnectionCreationRate));
        assert!(QuotaEntity::from_wire([(IP, None)].into_iter()).is_ok());
        assert!(QuotaEntity::from_wire([(IP, Some("example.com"))].into_iter()).is_err());
        assert!(QuotaEntity::from_wire([(IP, Some("1.2.3.4")), (USER, None)].into_iter()).is_err());
        assert!(QuotaEntity::from_wire(std::iter::empty()).is_err());
        assert!(
            QuotaEntity::from_wire([(USER, Some("a")), (USER, Some("b"))].into_iter()).is_err()
        );
        assert!(QuotaEntity::from_wire([(USER, Some(""))].into_iter()).is_err());
        assert!(QuotaEntity::from_wire([("group", Some("g"))].into_iter()).is_err());
    }

    #[test]
    fn byte_rates_must_be_integral() {
        assert!(QuotaKey::ProducerByteRate.validate(1024.0).is_ok());
        assert!(QuotaKey::ProducerByteRate.validate(10.5).is_err());
        assert!(QuotaKey::RequestPercentage.validate(10.5).is_ok());
        assert!(QuotaKey::ConsumerByteRate.validate(f64::NAN).is_err());
        assert!(QuotaKey::ConsumerByteRate.validate(-1.0).is_err());
        assert!(QuotaKey::ConnectionCreationRate.validate(2.5).is_err());
        assert!(QuotaKey::parse("connection_creation_rate").is_ok());
    }

    #[test]
    fn quotas_persist_across_reopen_and_removing_the_last_value_drops_the_entity() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        writer
            .alter_client_quotas(vec![
                QuotaAlteration {
                    entity: user(Some("alice")),
                    ops: vec![(QuotaKey::ProducerByteRate, Some(1_048_576.0))],
                },
                QuotaAlteration {
                    entity: user(None),
                    ops: vec![(QuotaKey::ConsumerByteRate, Some(2048.0))],
                },
            ])
            .unwrap();
        assert_eq!(view.load().client_quotas.len(), 2);
        drop(writer);

        let (writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        let snapshot = view.load_full();
        let alice = snapshot.client_quotas.get(&user(Some("alice"))).unwrap();
        assert_eq!(alice.get(&QuotaKey::ProducerByteRate), Some(&1_048_576.0));
        writer
            .alter_client_quotas(vec![QuotaAlteration {
                entity: user(Some("alice")),
                ops: vec![(QuotaKey::ProducerByteRate, None)],
            }])
            .unwrap();
        drop(writer);
        let (_writer, view) = MetadataWriter::open(dir.path(), LogConfig::default()).unwrap();
        let snapshot = view.load_full();
        assert!(snapshot.client_quotas.get(&user(Some("alice"))).is_none());
        assert_eq!(snapshot.client_quotas.len(), 1);
    }
}
