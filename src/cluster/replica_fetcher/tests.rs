//! The fetcher's bookkeeping without a leader on the wire: which epoch each fetch names,
//! and what a metadata change does to the positions it holds.

use super::*;
use crate::config::listeners::SecurityProtocol;
use crate::metadata::MetadataSnapshot;
use crate::metadata::registration::RegisteredBroker;
use crate::metadata::replicated::{ClusterState, PartitionIsr};
use arc_swap::ArcSwap;
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use std::cell::RefCell;
use std::collections::HashMap;

/// A shard that owns every partition, holds each followed log at offset 10, and records
/// the items it was given.
#[derive(Default)]
struct FakeShard {
    applied: RefCell<Vec<(String, i32, Option<AnswerSource>)>>,
}

impl Appender for &FakeShard {
    fn owns(&self, _topic: &str, _partition: i32) -> bool {
        true
    }

    fn apply(&self, items: Vec<ReplicaItem>) -> impl Future<Output = Vec<ReplicaPosition>> {
        let positions = items
            .iter()
            .map(|_| {
                Some(ReplicaEnd {
                    log_end_offset: 10,
                    log_start_offset: 0,
                    latest_epoch: 5,
                })
            })
            .collect();
        self.applied
            .borrow_mut()
            .extend(items.into_iter().map(|i| (i.topic, i.partition, i.source)));
        std::future::ready(positions)
    }

    fn stopping(&self) -> bool {
        false
    }
}

/// Brokers 1-3 live; topic `t` has one partition on all three, led by `leader` in
/// `leader_epoch`.
fn snapshot(leader: i32, leader_epoch: i32) -> Arc<MetadataSnapshot> {
    let mut cluster = ClusterState::default();
    for id in 1..=3 {
        let broker = RegisteredBroker {
            id,
            host: "127.0.0.1".into(),
            port: 9000 + id,
            fenced: false,
            epoch: 1,
            endpoints: Vec::new(),
            format_levels: Default::default(),
            incarnation: None,
        };
        cluster.brokers.insert(id, broker);
    }
    cluster
        .assignments
        .insert("t".into(), Arc::new(vec![vec![1, 2, 3]]));
    let isr = PartitionIsr {
        isr: vec![leader, 2, 3],
        partition_epoch: leader_epoch,
        leader: Some(leader),
        leader_epoch,
    };
    let partitions = BTreeMap::from([(0, isr)]);
    cluster.isr_changes = HashMap::from([("t".to_string(), partitions)]);
    Arc::new(MetadataSnapshot {
        cluster: Some(Arc::new(cluster)),
        ..Default::default()
    })
}

fn fetcher(shard: &FakeShard, view: MetadataView) -> Fetcher<&FakeShard> {
    let security = Arc::new(InterBrokerSecurity {
        listener: "PLAINTEXT".into(),
        protocol: SecurityProtocol::Plaintext,
        tls: None,
        sasl: None,
    });
    Fetcher::new(3, 1, security, view, shard)
}

/// The (current_leader_epoch, fetch_offset) each fetch names for partition `t`-0.
fn named(request: &FetchRequest) -> Vec<(i32, i64)> {
    request
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.current_leader_epoch, p.fetch_offset))
        .collect()
}

/// What the OffsetForLeaderEpoch check's answer does: the shard truncates, the position
/// starts at the log end under the epoch it was asked in.
fn checked(
    runtime: &compio::runtime::Runtime,
    fetcher: &mut Fetcher<&FakeShard>,
    leader_epoch: i32,
) {
    let item = ReplicaItem {
        truncate: Some((5, 10)),
        source: Some(AnswerSource {
            leader: 1,
            leader_epoch,
            fetch_offset: None,
        }),
        ..ReplicaItem::position_query("t", 0)
    };
    runtime.block_on(fetcher.apply_and_advance(vec![item]));
}

#[test]
fn a_fetch_names_the_leader_epoch_its_position_was_checked_under() {
    let shard = FakeShard::default();
    let view: MetadataView = Arc::new(ArcSwap::new(snapshot(1, 4)));
    let mut fetcher = fetcher(&shard, view);
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(fetcher.refresh_followed()).unwrap();
    assert_eq!(
        fetcher.unchecked.len(),
        1,
        "a newly followed partition is checked first"
    );
    checked(&runtime, &mut fetcher, 4);
    let request = fetcher.next_request(12);
    assert_eq!(named(&request), vec![(4, 10)]);
    // Before Fetch v9 the field does not exist: -1, not checked.
    fetcher.session.reset();
    assert_eq!(named(&fetcher.next_request(8)), vec![(-1, 10)]);
}

#[test]
fn a_new_leader_epoch_of_the_same_leader_has_the_partition_checked_again() {
    let shard = FakeShard::default();
    let view: MetadataView = Arc::new(ArcSwap::new(snapshot(1, 4)));
    let mut fetcher = fetcher(&shard, view.clone());
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(fetcher.refresh_followed()).unwrap();
    checked(&runtime, &mut fetcher, 4);
    // A full fetch opens the session; the next names only what moved.
    fetcher.next_request(12);
    fetcher.session.id = 7;
    fetcher.session.epoch = 1;
    assert_eq!(named(&fetcher.next_request(12)), vec![], "nothing moved");

    // Leader 1 lost the partition and got it back (epoch 4 -> 6): the position held
    // under epoch 4 is dropped, and the partition is checked again before any fetch.
    view.store(snapshot(1, 6));
    runtime.block_on(fetcher.refresh_followed()).unwrap();
    assert!(fetcher.offsets.is_empty(), "{:?}", fetcher.offsets);
    let rechecked: Vec<&PartitionKey> = fetcher.unchecked.iter().map(|(k, _)| k).collect();
    assert_eq!(rechecked, vec![&("t".to_string(), 0)]);

    // Once checked under epoch 6, the incremental fetch names the partition again (the
    // leader's session holds epoch 4) although its fetch offset did not move.
    checked(&runtime, &mut fetcher, 6);
    assert_eq!(named(&fetcher.next_request(12)), vec![(6, 10)]);
    assert_eq!(named(&fetcher.next_request(12)), vec![], "nothing moved");

    // A metadata change that leaves the epoch alone (an ISR change) keeps the position.
    let mut same_epoch = (*snapshot(1, 6)).clone();
    same_epoch.version += 1;
    view.store(Arc::new(same_epoch));
    runtime.block_on(fetcher.refresh_followed()).unwrap();
    assert_eq!(fetcher.offsets.len(), 1);
    assert!(fetcher.unchecked.is_empty());
}

/// The partitions a fetch names, and those it asks the leader's session to forget.
fn named_and_forgotten(request: &FetchRequest) -> (Vec<PartitionKey>, Vec<PartitionKey>) {
    let named = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition))
        })
        .collect();
    let forgotten = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
        .collect();
    (named, forgotten)
}

#[test]
fn a_refused_partition_sits_out_its_backoff_while_the_others_are_fetched() {
    let shard = FakeShard::default();
    let view: MetadataView = Arc::new(ArcSwap::new(snapshot(1, 4)));
    let mut fetcher = fetcher(&shard, view);
    let position = FetchPosition {
        fetch_offset: 10,
        log_start_offset: 0,
        leader_epoch: 4,
    };
    let (deleted, busy) = (("gone".to_string(), 0), ("t".to_string(), 0));
    fetcher.offsets.insert(deleted.clone(), position);
    fetcher.offsets.insert(busy.clone(), position);
    let (named, _) = named_and_forgotten(&fetcher.next_request(12));
    assert_eq!(
        named,
        vec![deleted.clone(), busy.clone()],
        "a full fetch names both"
    );

    // The leader has deleted `gone` (its metadata got there first) and has nothing new on `t`.
    let partition = |index, error_code| {
        PartitionData::default()
            .with_partition_index(index)
            .with_error_code(error_code)
            .with_high_watermark(10)
    };
    let response = FetchResponse::default()
        .with_session_id(7)
        .with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("gone")))
                .with_partitions(vec![partition(
                    0,
                    ResponseError::UnknownTopicOrPartition.code(),
                )]),
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![partition(0, 0)]),
        ]);
    let runtime = compio::runtime::Runtime::new().unwrap();
    let refused = runtime
        .block_on(fetcher.take_answer(response, None))
        .unwrap();
    assert_eq!(refused, vec![deleted.clone()]);
    let now = Instant::now();
    fetcher.delayed.delay(refused, now + REPLICA_FETCH_BACKOFF);

    // `t` goes on being fetched at once; `gone` is left out of the session meanwhile.
    assert!(
        fetcher.has_fetchable(),
        "the round does not pause for `gone`"
    );
    let (named, forgotten) = named_and_forgotten(&fetcher.next_request(12));
    assert!(!named.contains(&deleted), "{named:?}");
    assert_eq!(forgotten, vec![deleted.clone()]);

    // After the backoff it is asked for again (and refused again while the leader says so).
    fetcher.delayed.expire(now + REPLICA_FETCH_BACKOFF);
    let (named, _) = named_and_forgotten(&fetcher.next_request(12));
    assert_eq!(named, vec![deleted.clone()]);

    // With every partition refused there is nothing to fetch: the round waits the backoff.
    fetcher
        .delayed
        .delay(vec![deleted, busy], now + REPLICA_FETCH_BACKOFF);
    assert!(!fetcher.has_fetchable());
}
