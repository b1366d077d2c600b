//! Where a transaction's work goes in cluster mode (decision 0022). The transactional id's
//! coordinator is the broker `ClusterState::coordinator` names (FindCoordinator's answer);
//! on that broker, the shard `txn::owner_shard` names. So:
//! - a transactional Produce is verified (transactions v2: its partitions added) by the
//!   coordinator: in process when this broker coordinates the id (or on a single node), or
//!   with AddPartitionsToTxn v4+ to the coordinator's broker (KIP-890's produce-time
//!   verification, as Kafka 3.6+ sends it);
//! - a decided transaction's markers go to each partition's current leader: on a partition
//!   this broker leads, on its owning shard; elsewhere with one WriteTxnMarkers per leader
//!   broker. A failure leaves the transaction preparing; the transaction timer retries with
//!   the leaders the metadata names then (Kafka's marker channel: NOT_LEADER, look the
//!   leader up again and retry), until every marker is written or its partition is gone.
//!
//! Owns: those routing decisions and the mapping of remote answers to `TxnError`. Must not:
//! decide transactions (`transactions`, `txn::state`) or hold a link (`cluster::broker_channel`).

use super::transactions::write_marker;
use super::{Shard, transactions, transactions_v2};
use crate::metadata::MetadataSnapshot;
use crate::metadata::coordinator_slots::{GROUP_SLOT_TOPIC, coordinator_slot};
use crate::txn::TxnError;
use crate::txn::state::COORDINATOR_EPOCH;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, GroupId, ProducerId, TopicName,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

/// AddPartitionsToTxn's broker-to-broker form: v4 (KIP-890 part 1, `verify_only`) and v5
/// (part 2's added error codes).
const ADD_PARTITIONS_BROKER_VERSIONS: (i16, i16) = (4, 5);
/// AddOffsetsToTxn v3-v4 (flexible; v4 is transactions v2's error set).
const ADD_OFFSETS_VERSIONS: (i16, i16) = (3, 4);
/// WriteTxnMarkers v1 (v0 is the same body, not flexible; Kafka 4 serves only v1).
const WRITE_TXN_MARKERS_VERSIONS: (i16, i16) = (1, 1);

/// Where a transactional id's coordinator runs, as this broker's metadata says.
enum Coordinator {
    /// This broker (or a single node): the id's shard here.
    Here,
    /// Another broker.
    Broker(i32, Arc<MetadataSnapshot>),
    /// No live broker (the cluster's metadata has none yet).
    Unknown,
}

fn coordinator_of(shard: &Shard, transactional_id: &str) -> Coordinator {
    let snapshot = shard.metadata.load_full();
    let Some(cluster) = snapshot.cluster.as_deref() else {
        return Coordinator::Here;
    };
    match cluster.coordinator(transactional_id) {
        Some(id) if id == shard.config.node_id => Coordinator::Here,
        Some(id) => Coordinator::Broker(id, snapshot.clone()),
        None => Coordinator::Unknown,
    }
}

/// Produce-time verification of a transactional request's partitions (KIP-890): each
/// partition's verdict from the id's coordinator, wherever it runs. With `implicit_add`
/// (Produce v12+, transactions v2) the partitions join the transaction instead.
pub async fn verify_produce(
    shard: &Rc<Shard>,
    transactional_id: &str,
    implicit_add: bool,
    producer: (i64, i16),
    partitions: Vec<(String, i32)>,
) -> Vec<Result<(), TxnError>> {
    let count = partitions.len();
    let (producer_id, epoch) = producer;
    match coordinator_of(shard, transactional_id) {
        Coordinator::Here => {
            let owner = shard.owner_of_transactional_id(transactional_id);
            let id = transactional_id.to_string();
            shard
                .invoke_on(owner, move |s| async move {
                    if implicit_add {
                        transactions_v2::add_partitions_implicitly(
                            &s,
                            &id,
                            producer_id,
                            epoch,
                            &partitions,
                        )
                        .await
                    } else {
                        transactions::verify_partitions(&s, &id, producer_id, epoch, &partitions)
                    }
                })
                .await
                .unwrap_or_else(|_| vec![Err(TxnError::CoordinatorNotAvailable); count])
        }
        Coordinator::Broker(broker, snapshot) => {
            let Some(cluster) = snapshot.cluster.as_deref() else {
                return vec![Err(TxnError::CoordinatorNotAvailable); count];
            };
            let request =
                add_partitions_request(transactional_id, implicit_add, producer, &partitions);
            let call = shard.broker_channel.call(
                cluster,
                broker,
                &request,
                ADD_PARTITIONS_BROKER_VERSIONS,
            );
            match call.await {
                Ok(response) if response.error_code == 0 => {
                    let codes: BTreeMap<(&str, i32), i16> = response
                        .results_by_transaction
                        .iter()
                        .flat_map(|t| &t.topic_results)
                        .flat_map(|t| {
                            t.results_by_partition.iter().map(|p| {
                                (
                                    (t.name.0.as_str(), p.partition_index),
                                    p.partition_error_code,
                                )
                            })
                        })
                        .collect();
                    partitions
                        .iter()
                        .map(|(topic, p)| match codes.get(&(topic.as_str(), *p)) {
                            Some(&code) => txn_result_of(code),
                            None => Err(TxnError::CoordinatorNotAvailable),
                        })
                        .collect()
                }
                Ok(response) => vec![txn_result_of(response.error_code); count],
                Err(why) => {
                    tracing::warn!(id = %transactional_id, coordinator = broker, error = %why,
                        "produce verification: the transaction coordinator did not answer");
                    vec![Err(TxnError::CoordinatorNotAvailable); count]
                }
            }
        }
        Coordinator::Unknown => vec![Err(TxnError::CoordinatorNotAvailable); count],
    }
}

/// TxnOffsetCommit at a group's coordinator, cluster mode: whether the producer's open
/// transaction holds `group_id`, asked of the id's coordinator wherever it runs (Kafka's
/// group coordinator verifies the group's `__consumer_offsets` partition with
/// AddPartitionsToTxn v4 `verify_only`; here the group's slot, decision 0022). With
/// `implicit_add` (TxnOffsetCommit v5, transactions v2) the group joins the transaction
/// instead: in process, or with AddOffsetsToTxn at the id's coordinator, which names the
/// group (a slot would not).
pub async fn verify_group_offsets(
    shard: &Rc<Shard>,
    transactional_id: &str,
    group_id: &str,
    producer: (i64, i16),
    implicit_add: bool,
) -> Result<(), TxnError> {
    let (producer_id, epoch) = producer;
    match coordinator_of(shard, transactional_id) {
        Coordinator::Here => {
            let owner = shard.owner_of_transactional_id(transactional_id);
            let (id, group) = (transactional_id.to_string(), group_id.to_string());
            shard
                .invoke_on(owner, move |s| async move {
                    if implicit_add {
                        transactions_v2::add_group_implicitly(&s, &id, producer_id, epoch, &group)
                            .await
                    } else {
                        transactions::verify_group(&s, &id, producer_id, epoch, &group)
                    }
                })
                .await
                .unwrap_or(Err(TxnError::CoordinatorNotAvailable))
        }
        Coordinator::Broker(_, _) if !implicit_add => {
            let slot = i32::try_from(coordinator_slot(group_id)).unwrap_or_default();
            let partitions = vec![(GROUP_SLOT_TOPIC.to_string(), slot)];
            verify_produce(shard, transactional_id, false, producer, partitions)
                .await
                .into_iter()
                .next()
                .unwrap_or(Err(TxnError::CoordinatorNotAvailable))
        }
        Coordinator::Broker(broker, snapshot) => {
            let Some(cluster) = snapshot.cluster.as_deref() else {
                return Err(TxnError::CoordinatorNotAvailable);
            };
            let request = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())));
            let call = shard
                .broker_channel
                .call(cluster, broker, &request, ADD_OFFSETS_VERSIONS);
            match call.await {
                Ok(response) => txn_result_of(response.error_code),
                Err(why) => {
                    tracing::warn!(id = %transactional_id, coordinator = broker, error = %why,
                        "TxnOffsetCommit: the transaction coordinator did not answer");
                    Err(TxnError::CoordinatorNotAvailable)
                }
            }
        }
        Coordinator::Unknown => Err(TxnError::CoordinatorNotAvailable),
    }
}

/// One transaction's AddPartitionsToTxn in the batched (broker) form.
fn add_partitions_request(
    transactional_id: &str,
    implicit_add: bool,
    (producer_id, epoch): (i64, i16),
    partitions: &[(String, i32)],
) -> AddPartitionsToTxnRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic.as_str()).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(indexes)
        })
        .collect();
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(!implicit_add)
        .with_topics(topics);
    AddPartitionsToTxnRequest::default().with_transactions(vec![transaction])
}

/// A coordinator's code as the verdict the local path would have given. Authorization
/// failures become INVALID_TXN_STATE as Kafka's AddPartitionsToTxnManager does (a producer
/// is not told about the brokers' own permissions); codes a coordinator should not send
/// are taken as "not available now", which clients retry.
fn txn_result_of(code: i16) -> Result<(), TxnError> {
    let error = match ResponseError::try_from_code(code) {
        None if code == 0 => return Ok(()),
        Some(ResponseError::ConcurrentTransactions) => TxnError::Concurrent,
        Some(ResponseError::InvalidProducerIdMapping) => TxnError::InvalidProducerIdMapping,
        Some(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch) => {
            TxnError::ProducerFenced
        }
        Some(
            ResponseError::InvalidTxnState
            | ResponseError::ClusterAuthorizationFailed
            | ResponseError::TransactionalIdAuthorizationFailed
            | ResponseError::TopicAuthorizationFailed,
        ) => TxnError::InvalidTxnState,
        Some(ResponseError::UnknownTopicOrPartition) => TxnError::UnknownTopicOrPartition,
        // NOT_COORDINATOR too: the two brokers' metadata disagree for a moment; a Produce
        // answered COORDINATOR_NOT_AVAILABLE is retried.
        _ => TxnError::CoordinatorNotAvailable,
    };
    Err(error)
}

/// Writes a decided transaction's markers on every partition's current leader; each
/// failure's description (empty: all written, or the partition is gone).
pub async fn write_markers(
    shard: &Rc<Shard>,
    partitions: &[(String, i32)],
    producer: (i64, i16),
    commit: bool,
) -> Vec<String> {
    let snapshot = shard.metadata.load_full();
    let node = shard.config.node_id;
    let mut local = Vec::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (topic, partition) in partitions {
        let exists = snapshot
            .topic(topic)
            .is_some_and(|t| *partition < t.partitions);
        match snapshot.cluster.as_deref() {
            // A partition whose topic is gone needs no marker.
            Some(_) if !exists => {}
            Some(cluster) => match cluster.leader(topic, *partition) {
                Some(leader) if leader == node => local.push((topic.clone(), *partition)),
                Some(leader) => remote
                    .entry(leader)
                    .or_default()
                    .push((topic.clone(), *partition)),
                None => failed.push(format!("{topic}-{partition} has no leader")),
            },
            None => local.push((topic.clone(), *partition)),
        }
    }
    let (producer_id, epoch) = producer;
    let local_calls = local.into_iter().map(|(topic, partition)| {
        let owner = shard.owner_of_partition(&topic, partition);
        async move {
            shard
                .invoke_on(owner, move |s| async move {
                    write_marker(&s, &topic, partition, producer_id, epoch, commit).await
                })
                .await
                .unwrap_or_else(|gone| Err(gone.to_string()))
        }
    });
    let remote_calls = remote.into_iter().map(|(leader, on_leader)| {
        write_remote_markers(shard, &snapshot, leader, on_leader, producer, commit)
    });
    let (local, remote) = futures_util::future::join(
        futures_util::future::join_all(local_calls),
        futures_util::future::join_all(remote_calls),
    )
    .await;
    failed.extend(local.into_iter().filter_map(Result::err));
    failed.extend(remote.into_iter().flatten());
    failed
}

/// Cluster mode: a decided transaction's end at each of its groups' coordinators, which
/// hold the offsets (decision 0022): the group's slot on this broker's owning shard, or
/// one WriteTxnMarkers per coordinator broker naming `GROUP_SLOT_TOPIC` and the slots
/// (Kafka's marker on each group's `__consumer_offsets` partition). Each failure's
/// description; the transaction stays preparing and the timer retries, with the
/// coordinators the metadata names then.
pub async fn end_group_offsets(
    shard: &Rc<Shard>,
    groups: Vec<String>,
    (producer_id, epoch): (i64, i16),
    commit: bool,
) -> Vec<String> {
    let snapshot = shard.metadata.load_full();
    let Some(cluster) = snapshot.cluster.as_deref() else {
        return Vec::new();
    };
    let node = shard.config.node_id;
    // (owning shard, slot) here; slots per broker elsewhere, each once.
    let mut local: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut remote: BTreeMap<i32, BTreeSet<(String, i32)>> = BTreeMap::new();
    let mut failed = Vec::new();
    for group in &groups {
        let slot = coordinator_slot(group);
        match cluster.coordinator(group) {
            Some(broker) if broker == node => {
                local.insert((shard.owner_of_group(group), slot));
            }
            Some(broker) => {
                let partition = i32::try_from(slot).unwrap_or_default();
                remote
                    .entry(broker)
                    .or_default()
                    .insert((GROUP_SLOT_TOPIC.to_string(), partition));
            }
            None => failed.push(format!("group {group} has no coordinator")),
        }
    }
    let local_calls = local.into_iter().map(|(owner, slot)| async move {
        shard
            .invoke_on(owner, move |s| async move {
                s.groups.end_txn_in_slot(slot, producer_id, commit).await
            })
            .await
            .map_err(|gone| gone.to_string())
            .and_then(|r| r.map_err(|code| format!("group slot {slot} here: error {code}")))
    });
    let remote_calls = remote.into_iter().map(|(broker, slots)| {
        let slots: Vec<(String, i32)> = slots.into_iter().collect();
        write_remote_markers(
            shard,
            &snapshot,
            broker,
            slots,
            (producer_id, epoch),
            commit,
        )
    });
    let (local, remote) = futures_util::future::join(
        futures_util::future::join_all(local_calls),
        futures_util::future::join_all(remote_calls),
    )
    .await;
    failed.extend(local.into_iter().filter_map(Result::err));
    failed.extend(remote.into_iter().flatten());
    failed
}

/// One WriteTxnMarkers to `leader` for the partitions it leads; each failure's description.
async fn write_remote_markers(
    shard: &Rc<Shard>,
    snapshot: &MetadataSnapshot,
    leader: i32,
    partitions: Vec<(String, i32)>,
    (producer_id, epoch): (i64, i16),
    commit: bool,
) -> Vec<String> {
    let Some(cluster) = snapshot.cluster.as_deref() else {
        return Vec::new();
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in &partitions {
        by_topic.entry(topic.as_str()).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_topics(topics)
        .with_coordinator_epoch(COORDINATOR_EPOCH);
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let response = match shard
        .broker_channel
        .call(cluster, leader, &request, WRITE_TXN_MARKERS_VERSIONS)
        .await
    {
        Ok(response) => response,
        Err(why) => return vec![format!("markers to broker {leader}: {why}")],
    };
    let codes: BTreeMap<(&str, i32), i16> = response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.name.0.as_str(), p.partition_index), p.error_code))
        })
        .collect();
    partitions
        .iter()
        .filter_map(|(topic, p)| match codes.get(&(topic.as_str(), *p)) {
            Some(0) => None,
            Some(&code) => Some(format!(
                "{topic}-{p} on broker {leader}: WriteTxnMarkers error {code}"
            )),
            None => Some(format!(
                "{topic}-{p}: broker {leader} did not answer for it"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinators_codes_become_the_local_paths_verdicts() {
        let code = |e: ResponseError| e.code();
        assert_eq!(txn_result_of(0), Ok(()));
        assert_eq!(
            txn_result_of(code(ResponseError::ProducerFenced)),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            txn_result_of(code(ResponseError::InvalidProducerIdMapping)),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(
            txn_result_of(code(ResponseError::ClusterAuthorizationFailed)),
            Err(TxnError::InvalidTxnState)
        );
        assert_eq!(
            txn_result_of(code(ResponseError::ConcurrentTransactions)),
            Err(TxnError::Concurrent)
        );
        // Retriable for the producer: the coordinator moved or is not ready.
        for moved in [
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorLoadInProgress,
        ] {
            assert_eq!(
                txn_result_of(code(moved)),
                Err(TxnError::CoordinatorNotAvailable)
            );
        }
    }

    #[test]
    fn a_request_names_each_topic_once() {
        let partitions = [
            ("a".to_string(), 0),
            ("b".to_string(), 1),
            ("a".to_string(), 2),
        ];
        let request = add_partitions_request("id", false, (7, 3), &partitions);
        let txn = &request.transactions[0];
        assert!(txn.verify_only);
        assert_eq!((txn.producer_id.0, txn.producer_epoch), (7, 3));
        let topics: Vec<(&str, &[i32])> = txn
            .topics
            .iter()
            .map(|t| (t.name.0.as_str(), t.partitions.as_slice()))
            .collect();
        assert_eq!(topics, vec![("a", &[0, 2][..]), ("b", &[1][..])]);
    }
}
