//! A broker's registration in the metadata log (KRaft's RegisterBrokerRecord): its id, its
//! epoch, whether it is fenced, and since the inter-broker security stage (decision 0021)
//! every listener's advertised endpoint, so each client is answered with the other brokers'
//! addresses on the listener it came in on, and a follower reaches its leader on the
//! inter-broker listener.
//! Must not: pick a listener for a request (the server's `cluster_view` does).

use serde::{Deserialize, Serialize};

/// Listeners one registration may carry: `config::listeners::MAX_LISTENERS`.
pub const MAX_REGISTERED_ENDPOINTS: usize = crate::config::listeners::MAX_LISTENERS;

/// One listener of a registered broker (RegisterBrokerRecord's `EndPoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    /// The listener name (`PLAINTEXT`, `INTERNAL`, ...), upper case as configured.
    pub name: String,
    pub host: String,
    pub port: i32,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: String,
}

/// A broker known to the quorum (KRaft's RegisterBrokerRecord / fencing records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredBroker {
    pub id: i32,
    /// The inter-broker listener's endpoint (before decision 0021: the only one).
    pub host: String,
    pub port: i32,
    /// No heartbeat within `broker_session_timeout_ms`: clients are not sent to it.
    pub fenced: bool,
    /// Bumped on every registration (a restart), as Kafka's broker epoch.
    pub epoch: i64,
    /// Every advertised listener; empty in registrations written before they were carried.
    #[serde(default)]
    pub endpoints: Vec<ListenerEndpoint>,
    /// The metadata format levels its binary reads (decision 0027; a session-20 one's
    /// registration has none: level 1 only).
    #[serde(default)]
    pub format_levels: super::format_level::LevelRange,
}

impl RegisteredBroker {
    /// Where a client of `listener` reaches this broker: that listener's endpoint, `None`
    /// when the broker has no such listener (Kafka leaves it out of the answer). A
    /// registration without endpoints (an older log) has one address for every listener;
    /// `listener` `None` (no listener known) is the inter-broker endpoint.
    pub fn endpoint(&self, listener: Option<&str>) -> Option<(&str, i32)> {
        match listener {
            Some(name) if !self.endpoints.is_empty() => self
                .endpoints
                .iter()
                .find(|e| e.name == name)
                .map(|e| (e.host.as_str(), e.port)),
            _ => Some((self.host.as_str(), self.port)),
        }
    }

    /// The endpoint of `listener` with its security protocol, for a follower's link.
    pub fn listener(&self, name: &str) -> Option<&ListenerEndpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

impl super::replicated::ClusterState {
    pub fn is_live(&self, broker: i32) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// Live brokers, in id order: where new replicas may go.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }
}

impl super::MetadataWriter {
    /// RegisterBroker: a new epoch for the broker, live again; partitions left without a
    /// leader it was in sync for get it back, and the coordinator slots are placed
    /// (`coordinator_slots`: a new broker id takes its share, a returning one does not).
    pub(super) fn apply_register_broker(
        &self,
        id: i32,
        host: &str,
        port: i32,
        endpoints: &[ListenerEndpoint],
        format_levels: super::format_level::LevelRange,
    ) -> Result<super::replicated::Applied, super::MetadataError> {
        let mut cluster = self.cluster_state();
        cluster.check_registration(id, format_levels)?;
        cluster.note_registration_for_bootstrap(format_levels);
        let known = cluster.brokers.get(&id).map(|b| b.epoch);
        let broker = RegisteredBroker {
            id,
            host: host.to_string(),
            port,
            fenced: false,
            epoch: known.map_or(0, |e| e + 1),
            endpoints: endpoints
                .iter()
                .take(MAX_REGISTERED_ENDPOINTS)
                .cloned()
                .collect(),
            format_levels,
        };
        cluster.brokers.insert(id, broker);
        let changed = cluster.elect_returning(id);
        cluster.place_slots_after_registration(known.is_none());
        self.publish_cluster(cluster)?;
        Ok(super::replicated::Applied::Partitions(changed))
    }

    /// Fencing or a controlled shutdown (`fenced`), or an unfence: the elections of
    /// `elections`, and a fenced broker's coordinator slots move to live brokers (an
    /// unfenced one only takes slots no live broker held).
    pub(super) fn apply_fencing(
        &self,
        id: i32,
        fenced: bool,
    ) -> Result<super::replicated::Applied, super::MetadataError> {
        use super::replicated::Applied;
        let mut cluster = self.cluster_state();
        match cluster.brokers.get_mut(&id) {
            Some(broker) if broker.fenced != fenced => broker.fenced = fenced,
            _ => return Ok(Applied::Brokers),
        }
        let changed = if fenced {
            cluster.elect_without(id)
        } else {
            cluster.elect_returning(id)
        };
        // An ISR without a removed replica may complete a reassignment (Kafka checks at
        // every partition change).
        for (topic, p) in &changed {
            cluster.maybe_complete_reassignment(topic, *p);
        }
        cluster.adopt_orphan_slots();
        self.publish_cluster(cluster)?;
        Ok(Applied::Partitions(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_the_endpoint_of_their_listener_and_old_registrations_one_for_all() {
        let endpoint = |name: &str, port| ListenerEndpoint {
            name: name.into(),
            host: "h".into(),
            port,
            security_protocol: "PLAINTEXT".into(),
        };
        let mut broker = RegisteredBroker {
            id: 1,
            host: "h".into(),
            port: 1,
            fenced: false,
            epoch: 0,
            endpoints: vec![endpoint("PLAINTEXT", 1), endpoint("EXTERNAL", 2)],
            format_levels: Default::default(),
        };
        assert_eq!(broker.endpoint(Some("EXTERNAL")), Some(("h", 2)));
        assert_eq!(broker.endpoint(Some("OTHER")), None);
        assert_eq!(broker.endpoint(None), Some(("h", 1)));
        // A registration from before endpoints were carried still loads and answers.
        let old = r#"{"id":1,"host":"h","port":7,"fenced":false,"epoch":0}"#;
        broker = serde_json::from_str(old).unwrap();
        assert_eq!(broker.endpoint(Some("EXTERNAL")), Some(("h", 7)));
    }
}
