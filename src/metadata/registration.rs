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
    /// The process start that registered it (`MetadataRecord::RegisterBroker`); `None` in
    /// registrations below format level 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
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

/// What the log says when a broker registers again without a clean stop (tests read it).
pub const UNCLEAN_RESTART: &str = "broker restarted without a clean stop";

/// Which start of its process a registration comes from, and the registration it takes
/// over cleanly (`MetadataRecord::RegisterBroker`; all `None` below format level 5).
#[derive(Debug, Clone, Copy, Default)]
pub struct Incarnations {
    pub this: Option<u64>,
    /// The broker epoch taken over: the same process's own registration, when it first
    /// names its incarnation, or the one a start that stopped cleanly knew itself
    /// registered at (`cluster::clean_stop`: its logs were closed whole).
    pub previous_epoch: Option<i64>,
    /// The start that stopped cleanly: its own last registration may have committed after
    /// it last applied one, and names it.
    pub previous_incarnation: Option<u64>,
}

impl super::MetadataWriter {
    /// RegisterBroker: a new epoch for the broker, live again; partitions left without a
    /// leader it was in sync for get it back, and the coordinator slots are placed
    /// (`coordinator_slots`: a new broker id takes its share, a returning one does not).
    ///
    /// A new start (`incarnations.this`) of a broker whose previous start is still registered
    /// and unfenced, and is not taken over cleanly (`incarnations.previous_epoch` does not
    /// name its epoch: no clean-stop mark), crashed and came back before its session lapsed, or with the
    /// whole cluster (Kafka 4's unclean-shutdown handling, KIP-966): it is first taken out of every ISR and
    /// leadership as if fenced, so each partition it led gets a new leader epoch. Without
    /// that it would lead on in the old epoch with whatever its log kept (a machine that
    /// lost its page cache, or a torn tail recovery cut), and a follower holding records
    /// it lost could not tell by leader epochs: it would truncate acknowledged records
    /// away. Where it was the last replica in sync it is elected again, in a new epoch.
    pub(super) fn apply_register_broker(
        &self,
        id: i32,
        host: &str,
        port: i32,
        endpoints: &[ListenerEndpoint],
        format_levels: super::format_level::LevelRange,
        incarnations: Incarnations,
    ) -> Result<super::replicated::Applied, super::MetadataError> {
        let mut cluster = self.cluster_state();
        cluster.check_registration(id, format_levels)?;
        cluster.note_registration_for_bootstrap(format_levels);
        let previous = cluster.brokers.get(&id);
        let known = previous.map(|b| b.epoch);
        let incarnation = incarnations.this;
        let unclean_restart = incarnation.is_some()
            && previous.is_some_and(|b| {
                let taken_over_cleanly = incarnations.previous_epoch == Some(b.epoch)
                    || (b.incarnation.is_some()
                        && b.incarnation == incarnations.previous_incarnation);
                !b.fenced && b.incarnation != incarnation && !taken_over_cleanly
            });
        let mut changed = Vec::new();
        if unclean_restart {
            tracing::warn!(
                broker = id,
                "{UNCLEAN_RESTART}: its leaderships end and it leaves the ISRs until it catches up"
            );
            changed = cluster.elect_without(id);
            for (topic, p) in &changed {
                cluster.maybe_complete_reassignment(topic, *p);
            }
        }
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
            incarnation,
        };
        cluster.brokers.insert(id, broker);
        for returned in cluster.elect_returning(id) {
            if !changed.contains(&returned) {
                changed.push(returned);
            }
        }
        cluster.place_slots_after_registration(known.is_none());
        self.publish_cluster(cluster)?;
        Ok(super::replicated::Applied::Partitions(changed))
    }

    /// A controlled shutdown: fencing, unless it names a broker epoch a later registration
    /// replaced (proposed before the quorum went, committed after the broker started
    /// again: Kafka refuses a stale broker epoch the same way).
    pub(super) fn apply_controlled_shutdown(
        &self,
        id: i32,
        epoch: Option<i64>,
    ) -> Result<super::replicated::Applied, super::MetadataError> {
        let current = self.cluster_state().brokers.get(&id).map(|b| b.epoch);
        if epoch.is_some_and(|e| Some(e) != current) {
            tracing::info!(
                broker = id,
                ?epoch,
                ?current,
                "stale controlled shutdown ignored"
            );
            return Ok(super::replicated::Applied::Brokers);
        }
        self.apply_fencing(id, true)
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
            incarnation: None,
        };
        assert_eq!(broker.endpoint(Some("EXTERNAL")), Some(("h", 2)));
        assert_eq!(broker.endpoint(Some("OTHER")), None);
        assert_eq!(broker.endpoint(None), Some(("h", 1)));
        // A registration from before endpoints were carried still loads and answers.
        let old = r#"{"id":1,"host":"h","port":7,"fenced":false,"epoch":0}"#;
        broker = serde_json::from_str(old).unwrap();
        assert_eq!(broker.endpoint(Some("EXTERNAL")), Some(("h", 7)));
    }

    /// A broker killed and started again before its session lapsed: its new registration
    /// ends its leaderships (new leader epochs), as Kafka 4 does for an unclean shutdown.
    #[test]
    fn a_new_start_of_a_broker_still_registered_gives_up_its_old_leaderships() {
        use crate::metadata::format_level::{CURRENT_LEVEL, FEATURE, LevelRange};
        use crate::metadata::replicated::MetadataRecord;
        let dir = tempfile::tempdir().unwrap();
        let (writer, _view) = crate::metadata::MetadataWriter::open_replicated(
            dir.path(),
            crate::config::LogConfig::default(),
            "c".into(),
        )
        .unwrap();
        let register = |id: i32, incarnation: Option<u64>, previous_epoch: Option<i64>| {
            MetadataRecord::RegisterBroker {
                id,
                host: "127.0.0.1".into(),
                port: 9000 + id,
                endpoints: Vec::new(),
                format_levels: LevelRange {
                    min: 1,
                    max: CURRENT_LEVEL,
                },
                incarnation,
                previous_epoch,
                previous_incarnation: None,
            }
        };
        let mut index = 0..;
        let mut apply = |record: &MetadataRecord| {
            writer
                .apply_record(index.next().unwrap(), record)
                .map(|_| writer.cluster_state())
        };
        // Below level 5 a registration may not name its start.
        let early = apply(&register(1, Some(1), None)).unwrap_err();
        assert_eq!(early.kafka_error_code(), 35, "{early}");
        for id in 1..=3 {
            apply(&register(id, None, None)).unwrap();
        }
        let finalize = MetadataRecord::FinalizeFeature {
            name: FEATURE.into(),
            level: CURRENT_LEVEL,
        };
        apply(&finalize).unwrap();
        let create = |name: &str, replicas: Vec<i32>| MetadataRecord::CreateTopic {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            replicas: vec![replicas],
            overrides: Default::default(),
        };
        apply(&create("t", vec![1, 2, 3])).unwrap();
        let state = apply(&create("solo", vec![1])).unwrap();
        let (t_epoch, solo_epoch) = (state.leader_epoch("t", 0), state.leader_epoch("solo", 0));
        assert_eq!(state.leader("t", 0), Some(1));

        // Broker 1's next start registers while its last one is still unfenced.
        let state = apply(&register(1, Some(7), None)).unwrap();
        assert_eq!(
            state.leader("t", 0),
            Some(2),
            "led by the next replica in sync"
        );
        assert_eq!(
            state.isr("t", 0),
            vec![2, 3],
            "out of the ISR until it catches up"
        );
        assert!(state.leader_epoch("t", 0) > t_epoch);
        assert_eq!(
            state.leader("solo", 0),
            Some(1),
            "the last replica in sync again"
        );
        assert!(
            state.leader_epoch("solo", 0) > solo_epoch,
            "but in a new epoch"
        );
        let (t_epoch, solo_epoch) = (state.leader_epoch("t", 0), state.leader_epoch("solo", 0));

        // The same start registering again (a retried proposal) changes nothing.
        let state = apply(&register(1, Some(7), None)).unwrap();
        assert_eq!(state.leader("t", 0), Some(2));
        assert_eq!(state.leader_epoch("t", 0), t_epoch);
        assert_eq!(state.leader_epoch("solo", 0), solo_epoch);

        // A broker fenced first (its session lapsed) returns as before: nothing to end.
        let fenced = apply(&MetadataRecord::FenceBroker { id: 2 }).unwrap();
        assert_eq!(fenced.leader("t", 0), Some(3));
        let t_epoch = fenced.leader_epoch("t", 0);
        let state = apply(&register(2, Some(9), None)).unwrap();
        assert_eq!(state.leader("t", 0), Some(3));
        assert_eq!(state.leader_epoch("t", 0), t_epoch);

        // A start after a clean stop (its logs closed whole) names the epoch it stopped
        // registered at: broker 1 leads on where it led, in the same epoch.
        let solo_epoch = state.leader_epoch("solo", 0);
        let stopped_at = state.brokers[&1].epoch;
        let state = apply(&register(1, Some(12), Some(stopped_at))).unwrap();
        assert_eq!(state.leader("solo", 0), Some(1));
        assert_eq!(
            state.leader_epoch("solo", 0),
            solo_epoch,
            "a clean stop keeps it"
        );
        // A running broker first naming its incarnation names its own epoch: nothing ends.
        let (t_epoch, own) = (state.leader_epoch("t", 0), state.brokers[&3].epoch);
        let state = apply(&register(3, Some(14), Some(own))).unwrap();
        assert_eq!(state.leader("t", 0), Some(3));
        assert_eq!(state.leader_epoch("t", 0), t_epoch);
        // Naming an older epoch is no clean stop of this start.
        let state = apply(&register(1, Some(13), Some(stopped_at))).unwrap();
        assert_eq!(state.leader("solo", 0), Some(1));
        assert!(state.leader_epoch("solo", 0) > solo_epoch);
        // A clean stop whose own last registration committed after it last applied one:
        // the epoch it names is stale, its incarnation (13) is the registered one.
        let solo_epoch = state.leader_epoch("solo", 0);
        let mut after_clean_stop = register(1, Some(15), Some(stopped_at));
        if let MetadataRecord::RegisterBroker {
            previous_incarnation,
            ..
        } = &mut after_clean_stop
        {
            *previous_incarnation = Some(13);
        }
        let state = apply(&after_clean_stop).unwrap();
        assert_eq!(state.leader_epoch("solo", 0), solo_epoch);

        // A controlled shutdown of an earlier registration, committed late, is stale.
        let stale = state.brokers[&1].epoch - 1;
        let shutdown = |epoch| MetadataRecord::ControlledShutdown { id: 1, epoch };
        let state = apply(&shutdown(Some(stale))).unwrap();
        assert!(!state.brokers[&1].fenced, "stale: ignored");
        let current = state.brokers[&1].epoch;
        let state = apply(&shutdown(Some(current))).unwrap();
        assert!(
            state.brokers[&1].fenced,
            "the current registration's: applied"
        );
    }
}
