//! Share groups (KIP-932) over the raw protocol: ShareGroupHeartbeat membership and the
//! shared assignment, ShareFetch acquisition with share-session epochs, acknowledgement
//! types, acquisition-lock expiry and redelivery with a higher delivery count, the delivery
//! count limit, share groups in ListGroups / ShareGroupDescribe / DeleteGroups, waiting
//! fetches served in arrival order, and Alter/DeleteShareGroupOffsets.

mod support;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    ShareFetchRequest, ShareFetchResponse, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::Request;
use kafka_protocol::records::RecordBatchDecoder;
use sluice::client::{Client, NewTopic};
use support::share::{acknowledge_topics, acquired, alter_group, fetch_topics, sb};
use support::wire::{self, encode_batch, plain_record, produce_request};
use support::{Broker, wire::RawConn};

/// The versions librdkafka 2.16's ShareConsumer sends (the GA versions of KIP-932).
const V1: i16 = 1;
const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
const REJECT: i8 = 3;

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), "share-test", request, version)
}

/// A broker with a one-partition topic holding `records` records (in batches of five), and
/// the group set to start at the earliest offset plus `configs`.
fn setup(topic: &str, group: &str, records: usize, configs: &[(&str, &str)]) -> Broker {
    let broker = Broker::start();
    let mut client = Client::connect(&broker.bootstrap()).expect("client");
    client
        .create_topic(&NewTopic {
            name: topic.to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: Vec::new(),
        })
        .expect("create topic");
    produce(&broker, topic, 0..records, 5);
    let mut all = vec![("share.auto.offset.reset", "earliest")];
    all.extend_from_slice(configs);
    assert_eq!(alter_group(&broker, group, &all), 0);
    broker
}

/// Appends records `offsets` (values "r<offset>") to partition 0, `per_batch` a batch.
fn produce(broker: &Broker, topic: &str, offsets: std::ops::Range<usize>, per_batch: usize) {
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    for chunk in offsets.collect::<Vec<_>>().chunks(per_batch) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| plain_record(*i as i64, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
            .collect();
        let produced = conn.call(
            &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
            9,
        );
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    }
}

fn heartbeat(
    broker: &Broker,
    group: &str,
    member: &str,
    epoch: i32,
    topic: Option<&str>,
) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topic.map(|t| vec![TopicName(sb(t))]));
    call(broker, &request, V1)
}

/// A member that has joined, with its share session's next epoch.
struct Member {
    group: String,
    id: String,
    topic_id: uuid::Uuid,
    session_epoch: i32,
    /// The session's connection (it ends with it).
    conn: wire::MemberConn,
}

impl Member {
    fn join(broker: &Broker, group: &str, id: &str, topic: &str) -> Member {
        let joined = heartbeat(broker, group, id, 0, Some(topic));
        assert_eq!(joined.error_code, 0, "{joined:?}");
        let assignment = joined.assignment.expect("an assignment on join");
        assert_eq!(assignment.topic_partitions[0].partitions, vec![0]);
        Member {
            group: group.to_string(),
            id: id.to_string(),
            topic_id: assignment.topic_partitions[0].topic_id,
            session_epoch: 0,
            conn: wire::MemberConn::default(),
        }
    }

    /// One ShareFetch on partition 0 with these acknowledgements; advances the epoch.
    fn fetch(
        &mut self,
        broker: &Broker,
        acks: &[(i64, i64, i8)],
        wait_ms: i32,
    ) -> ShareFetchResponse {
        let request = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(500)
            .with_batch_size(500)
            .with_topics(fetch_topics(self.topic_id, acks, 1 << 20));
        let response: ShareFetchResponse = self.conn.call(&broker.bootstrap(), &request, V1);
        if response.error_code == 0 {
            self.session_epoch += 1;
        }
        response
    }

    fn acknowledge(
        &mut self,
        broker: &Broker,
        acks: &[(i64, i64, i8)],
    ) -> ShareAcknowledgeResponse {
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_topics(acknowledge_topics(self.topic_id, acks));
        let response: ShareAcknowledgeResponse = self.conn.call(&broker.bootstrap(), &request, V1);
        if response.error_code == 0 {
            self.session_epoch += 1;
        }
        response
    }
}

/// Offsets of the records the answer carries that fall in its acquired ranges (what a
/// client hands the application).
fn delivered(response: &ShareFetchResponse) -> Vec<i64> {
    let ranges = acquired(response);
    let mut out = Vec::new();
    for p in response.responses.iter().flat_map(|t| t.partitions.iter()) {
        let Some(bytes) = p.records.clone() else {
            continue;
        };
        let mut buf = bytes;
        let batches = RecordBatchDecoder::decode_all(&mut buf).expect("valid batches");
        for record in batches.into_iter().flat_map(|b| b.records) {
            if ranges
                .iter()
                .any(|(f, l, _)| (*f..=*l).contains(&record.offset))
            {
                out.push(record.offset);
            }
        }
    }
    out
}

fn partition_ack_error(response: &ShareFetchResponse) -> i16 {
    response.responses[0].partitions[0].acknowledge_error_code
}

#[test]
fn members_share_a_partition_and_each_record_goes_to_one_of_them() {
    let broker = setup("work", "workers", 10, &[]);
    let mut a = Member::join(&broker, "workers", "member-a", "work");
    let mut b = Member::join(&broker, "workers", "member-b", "work");
    let c = Member::join(&broker, "workers", "member-c", "work");
    assert_eq!(c.topic_id, a.topic_id);

    let first = a.fetch(&broker, &[], 500);
    assert_eq!(first.error_code, 0, "{first:?}");
    assert_eq!(acquired(&first), vec![(0, 9, 1)]);
    assert_eq!(delivered(&first), (0..10).collect::<Vec<_>>());
    assert!(first.acquisition_lock_timeout_ms >= 1_000);
    // Everything is held by A: B waits out its max wait and gets nothing.
    assert_eq!(acquired(&b.fetch(&broker, &[], 200)), vec![]);

    // A releases 0-1, rejects 2, accepts 3-9; B gets 0-1 again with delivery count 2.
    let settled = a.acknowledge(&broker, &[(0, 1, RELEASE), (2, 2, REJECT), (3, 9, ACCEPT)]);
    assert_eq!(
        settled.responses[0].partitions[0].error_code, 0,
        "{settled:?}"
    );
    let again = b.fetch(&broker, &[], 500);
    assert_eq!(acquired(&again), vec![(0, 1, 2)]);
    assert_eq!(delivered(&again), vec![0, 1]);
    // A may not settle B's records; B may.
    let refused = a.acknowledge(&broker, &[(0, 1, ACCEPT)]);
    assert_eq!(
        refused.responses[0].partitions[0].error_code,
        ResponseError::InvalidRecordState.code()
    );
    let accepted = b.acknowledge(&broker, &[(0, 1, ACCEPT)]);
    assert_eq!(accepted.responses[0].partitions[0].error_code, 0);
    // The rejected record 2 is archived for good: nothing is left for anyone.
    assert_eq!(acquired(&a.fetch(&broker, &[], 200)), vec![]);

    let described: ShareGroupDescribeResponse = call(
        &broker,
        &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb("workers"))]),
        V1,
    );
    let g = &described.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str(), g.members.len()),
        (0, "Stable", 3)
    );
    assert!(
        g.members
            .iter()
            .all(|m| m.assignment.topic_partitions[0].partitions == vec![0])
    );
    let listed: ListGroupsResponse = call(
        &broker,
        &ListGroupsRequest::default().with_types_filter(vec![sb("share")]),
        5,
    );
    let names: Vec<_> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_type.to_string()))
        .collect();
    assert_eq!(names, vec![("workers".to_string(), "share".to_string())]);
    let classic_only: ListGroupsResponse = call(
        &broker,
        &ListGroupsRequest::default().with_types_filter(vec![sb("classic")]),
        5,
    );
    assert!(classic_only.groups.is_empty());
    // `sluice group list` shows the group with its type.
    let (ok, out, err) = support::sluice_cli(&broker.bootstrap(), &["group", "list"], None);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "workers\tshare");
}

#[test]
fn an_expired_lock_redelivers_with_delivery_count_two() {
    let broker = setup(
        "locks",
        "lockers",
        5,
        &[("share.record.lock.duration.ms", "1000")],
    );
    let mut a = Member::join(&broker, "lockers", "member-a", "locks");
    let mut b = Member::join(&broker, "lockers", "member-b", "locks");
    let first = a.fetch(&broker, &[], 500);
    assert_eq!(first.acquisition_lock_timeout_ms, 1_000);
    assert_eq!(acquired(&first), vec![(0, 4, 1)]);
    assert_eq!(acquired(&b.fetch(&broker, &[], 0)), vec![]);
    // B's long poll outlasts A's lock and gets the records back.
    let redelivered = b.fetch(&broker, &[], 3_000);
    assert_eq!(acquired(&redelivered), vec![(0, 4, 2)]);
    assert_eq!(delivered(&redelivered), vec![0, 1, 2, 3, 4]);
    // A's late acknowledgement is refused: the records are B's now.
    let late = a.fetch(&broker, &[(0, 4, ACCEPT)], 0);
    assert_eq!(
        partition_ack_error(&late),
        ResponseError::InvalidRecordState.code()
    );

    // The share group's lag (records not yet settled) is exported on the lag series.
    let series = r#"sluice_consumer_lag{group="lockers",topic="locks",partition="0"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = support::scrape_metrics(broker.admin_port);
        if support::metric_sample(&text, series).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(support::metric_sample(&text, series), Some(5.0), "{text}");
}

/// Records (in or out of the acquired ranges) the answer's batches carry.
fn carried(response: &ShareFetchResponse) -> usize {
    let mut count = 0;
    for p in response.responses.iter().flat_map(|t| t.partitions.iter()) {
        let mut buf = p.records.clone().unwrap_or_default();
        let batches = RecordBatchDecoder::decode_all(&mut buf).expect("valid batches");
        count += batches.iter().map(|b| b.records.len()).sum::<usize>();
    }
    count
}

#[test]
fn a_waiting_share_fetch_wakes_for_an_append_and_for_a_release() {
    let broker = setup("waits", "waiters", 0, &[]);
    let mut a = Member::join(&broker, "waiters", "member-a", "waits");
    let mut b = Member::join(&broker, "waiters", "member-b", "waits");
    const LONG_WAIT_MS: i32 = 20_000;
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = std::time::Instant::now();
            (a.fetch(&broker, &[], LONG_WAIT_MS), started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        produce(&broker, "waits", 0..5, 5);
        let (answer, waited) = waiting.join().expect("fetching thread");
        assert_eq!(acquired(&answer), vec![(0, 4, 1)]);
        // Answered by the append, not by the end of its wait.
        assert!(waited < std::time::Duration::from_millis(LONG_WAIT_MS as u64 / 2));
    });
    // B waits while A holds everything (lock 30 s); A's RELEASE hands the records to B.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = std::time::Instant::now();
            (b.fetch(&broker, &[], LONG_WAIT_MS), started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let released = a.acknowledge(&broker, &[(0, 4, RELEASE)]);
        assert_eq!(released.responses[0].partitions[0].error_code, 0);
        let (answer, waited) = waiting.join().expect("fetching thread");
        assert_eq!(acquired(&answer), vec![(0, 4, 2)]);
        assert_eq!(delivered(&answer), vec![0, 1, 2, 3, 4]);
        assert!(waited < std::time::Duration::from_millis(LONG_WAIT_MS as u64 / 2));
    });
}

#[test]
fn one_share_fetch_takes_max_records_across_batches_without_shipping_the_log() {
    const RECORDS: usize = 20_000;
    let broker = setup("deep", "readers", 0, &[]);
    produce(&broker, "deep", 0..RECORDS, 100);
    let mut a = Member::join(&broker, "readers", "member-a", "deep");
    // max_records 500 spans five batches of 100: all of them in one answer.
    let first = a.fetch(&broker, &[], 500);
    assert_eq!(acquired(&first), vec![(0, 499, 1)]);
    assert_eq!(delivered(&first), (0..500).collect::<Vec<_>>());
    // The answer carries the batches those records are in and a bounded read past them,
    // not every batch up to max_bytes (1 MiB: the whole log here).
    let shipped = carried(&first);
    assert!(
        (500..RECORDS / 2).contains(&shipped),
        "{shipped} records carried"
    );
    let next = a.fetch(&broker, &[(0, 499, ACCEPT)], 500);
    assert_eq!(partition_ack_error(&next), 0);
    assert_eq!(acquired(&next), vec![(500, 999, 1)]);
}

#[test]
fn the_delivery_count_limit_archives_a_record_that_keeps_failing() {
    let broker = setup(
        "poison",
        "retriers",
        1,
        &[("share.delivery.count.limit", "2")],
    );
    let mut a = Member::join(&broker, "retriers", "member-a", "poison");
    assert_eq!(acquired(&a.fetch(&broker, &[], 500)), vec![(0, 0, 1)]);
    assert_eq!(
        acquired(&a.fetch(&broker, &[(0, 0, RELEASE)], 500)),
        vec![(0, 0, 2)]
    );
    let last = a.fetch(&broker, &[(0, 0, RELEASE)], 200);
    assert_eq!(partition_ack_error(&last), 0);
    assert_eq!(
        acquired(&last),
        vec![],
        "archived after its second delivery"
    );
    assert_eq!(
        alter_group(&broker, "retriers", &[("share.delivery.count.limit", "1")]),
        ResponseError::InvalidConfig.code()
    );
}

#[test]
fn session_epochs_membership_and_group_errors() {
    let broker = setup("epochs", "sessions", 1, &[]);
    let mut a = Member::join(&broker, "sessions", "member-a", "epochs");
    // ShareAcknowledge cannot open a session; a fetch with a future epoch finds none.
    assert_eq!(
        a.acknowledge(&broker, &[]).error_code,
        ResponseError::InvalidShareSessionEpoch.code()
    );
    a.session_epoch = 5;
    assert_eq!(
        a.fetch(&broker, &[], 0).error_code,
        ResponseError::ShareSessionNotFound.code()
    );
    a.session_epoch = 0;
    assert_eq!(a.fetch(&broker, &[], 200).error_code, 0);
    a.session_epoch += 3;
    assert_eq!(
        a.fetch(&broker, &[], 0).error_code,
        ResponseError::InvalidShareSessionEpoch.code()
    );
    // A stranger cannot open a session; a stale heartbeat epoch is fenced.
    let mut stranger = Member {
        group: "sessions".into(),
        id: "stranger".into(),
        topic_id: a.topic_id,
        session_epoch: 0,
        conn: wire::MemberConn::default(),
    };
    assert_eq!(
        stranger.fetch(&broker, &[], 0).error_code,
        ResponseError::UnknownMemberId.code()
    );
    // The id belongs to a share group: the other protocols are refused.
    let consumer: kafka_protocol::messages::ConsumerGroupHeartbeatResponse = call(
        &broker,
        &kafka_protocol::messages::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("sessions")))
            .with_member_id(sb("kip848"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(sb("epochs"))])),
        1,
    );
    assert_eq!(consumer.error_code, ResponseError::GroupIdNotFound.code());
    let fenced = heartbeat(&broker, "sessions", "member-a", 99, None);
    assert_eq!(fenced.error_code, ResponseError::FencedMemberEpoch.code());
    // DeleteGroups refuses a group with members, then deletes it once they left.
    let delete = |b: &Broker| -> i16 {
        let r: DeleteGroupsResponse = call(
            b,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("sessions"))]),
            2,
        );
        r.results[0].error_code
    };
    assert_eq!(delete(&broker), ResponseError::NonEmptyGroup.code());
    let left = heartbeat(&broker, "sessions", "member-a", -1, None);
    assert_eq!(left.member_epoch, -1);
    assert_eq!(delete(&broker), 0);
    assert_eq!(delete(&broker), ResponseError::GroupIdNotFound.code());
}

/// DescribeShareGroupOffsets v0: (topic, partition, start offset) of one group.
fn start_offsets(
    broker: &Broker,
    group: &str,
    topic: Option<(&str, Vec<i32>)>,
) -> Vec<(String, i32, i64)> {
    let topics = topic.map(|(name, partitions)| {
        vec![
            DescribeShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(sb(name)))
                .with_partitions(partitions),
        ]
    });
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(topics),
    ]);
    let response: DescribeShareGroupOffsetsResponse = call(broker, &request, 0);
    response.groups[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                assert_eq!(p.error_code, 0);
                (
                    t.topic_name.0.to_string(),
                    p.partition_index,
                    p.start_offset,
                )
            })
        })
        .collect()
}

/// SIGKILL and restart on the same data; waits until requests are answered (the port
/// accepts before every shard serves).
fn restart(broker: &mut Broker) {
    broker.kill();
    broker.spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answered = RawConn::connect(&broker.bootstrap()).and_then(|mut conn| {
            conn.try_call(&kafka_protocol::messages::ApiVersionsRequest::default(), 0)
        });
        if answered.is_ok() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not serving: {answered:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_broker_sigkill_keeps_acknowledgements_and_redelivers_the_rest() {
    let mut broker = setup("durable", "survivors", 10, &[]);
    let mut a = Member::join(&broker, "survivors", "member-a", "durable");
    assert_eq!(acquired(&a.fetch(&broker, &[], 500)), vec![(0, 9, 1)]);
    let acked = a.acknowledge(&broker, &[(0, 3, ACCEPT), (4, 4, REJECT)]);
    assert_eq!(acked.responses[0].partitions[0].error_code, 0);

    restart(&mut broker);

    // Membership and sessions start over; the records' state does not.
    let mut b = Member::join(&broker, "survivors", "member-b", "durable");
    let after = b.fetch(&broker, &[], 1_000);
    assert_eq!(acquired(&after), vec![(5, 9, 2)], "{after:?}");
    assert_eq!(delivered(&after), vec![5, 6, 7, 8, 9]);
    let accepted = b.acknowledge(&broker, &[(5, 9, ACCEPT)]);
    assert_eq!(accepted.responses[0].partitions[0].error_code, 0);

    restart(&mut broker);
    assert_eq!(
        start_offsets(&broker, "survivors", None),
        vec![("durable".to_string(), 0, 10)]
    );
    assert_eq!(
        start_offsets(&broker, "survivors", Some(("durable", vec![0]))),
        vec![("durable".to_string(), 0, 10)]
    );
    assert_eq!(
        start_offsets(&broker, "nobody", Some(("durable", vec![0]))),
        vec![("durable".to_string(), 0, -1)],
        "a group without state on the partition"
    );
    let mut c = Member::join(&broker, "survivors", "member-c", "durable");
    assert_eq!(
        acquired(&c.fetch(&broker, &[], 300)),
        vec![],
        "everything was settled"
    );
}

/// Fetches of `group` waiting their turn on partition 0 of `topic`, from /metrics.
fn fetches_waiting(broker: &Broker, group: &str, topic: &str) -> Option<f64> {
    let text = support::scrape_metrics(broker.admin_port);
    let series =
        format!(r#"sluice_share_fetches_waiting{{group="{group}",topic="{topic}",partition="0"}}"#);
    support::metric_sample(&text, &series)
}

/// Waits (generously: the box is loaded) until `n` fetches of the group wait their turn.
fn await_waiting(broker: &Broker, group: &str, topic: &str, n: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fetches_waiting(broker, group, topic) != Some(n) {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} fetches never waited: {:?}",
            fetches_waiting(broker, group, topic)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn waiting_share_fetches_take_turns_so_three_members_all_get_records() {
    const WAVE: usize = 100;
    const LONG_WAIT_MS: i32 = 30_000;
    let broker = setup("turns", "takers", 0, &[]);
    let members =
        ["member-a", "member-b", "member-c"].map(|id| Member::join(&broker, "takers", id, "turns"));
    let mut got: Vec<Vec<(i64, i64, i16)>> = vec![Vec::new(); 3];
    std::thread::scope(|scope| {
        let spawn = |i: usize, mut m: Member, acks: Vec<(i64, i64, i8)>| {
            let broker = &broker;
            scope.spawn(move || {
                let answer = m.fetch(broker, &acks, LONG_WAIT_MS);
                (i, m, answer)
            })
        };
        let mut waiting: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(i, m)| spawn(i, m, Vec::new()))
            .collect();
        let mut served = Vec::new();
        let mut holding = Vec::new();
        for wave in 0..6 {
            // Every member not yet done waits before each wave: the first three waves find
            // all three waiting, and whoever was served queues again behind the others.
            await_waiting(&broker, "takers", "turns", waiting.len() as f64);
            produce(&broker, "turns", wave * WAVE..(wave + 1) * WAVE, WAVE);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let done = loop {
                if let Some(i) = waiting.iter().position(|h| h.is_finished()) {
                    break waiting.swap_remove(i);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "wave {wave} reached nobody"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            };
            let (i, m, answer) = done.join().expect("fetching thread");
            let ranges = acquired(&answer);
            let first = (wave * WAVE) as i64;
            assert_eq!(
                ranges,
                vec![(first, first + WAVE as i64 - 1, 1)],
                "wave {wave}"
            );
            got[i].extend(ranges);
            served.push(i);
            // The first three waves come back for more (with their acknowledgement); the
            // last three end the waits still open.
            if wave < 3 {
                let acks = vec![(first, first + WAVE as i64 - 1, ACCEPT)];
                waiting.push(spawn(i, m, acks));
            } else {
                // Kept (with its connection) to the end: a closed session would release
                // what the member holds to the members still waiting.
                holding.push(m);
            }
        }
        // The longest waiter is served first: three waves reach three different members,
        // and so do the next three.
        let mut first_three = served[..3].to_vec();
        first_three.sort();
        assert_eq!(first_three, vec![0, 1, 2], "served in order {served:?}");
        assert_eq!(served[3..], served[..3], "served in order {served:?}");
    });
    assert!(got.iter().all(|g| g.len() == 2), "{got:?}");
}

/// AlterShareGroupOffsets for one partition: (top-level code, per-partition codes).
fn alter_offsets(
    broker: &Broker,
    group: &str,
    topic: &str,
    starts: &[(i32, i64)],
) -> (i16, Vec<i16>) {
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(vec![
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(sb(topic)))
                .with_partitions(
                    starts
                        .iter()
                        .map(|(p, o)| {
                            AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(*p)
                                .with_start_offset(*o)
                        })
                        .collect(),
                ),
        ]);
    let response: AlterShareGroupOffsetsResponse = call(broker, &request, 0);
    let codes = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    (response.error_code, codes)
}

/// DeleteShareGroupOffsets for these topics: (top-level code, per-topic codes).
fn delete_offsets(broker: &Broker, group: &str, topics: &[&str]) -> (i16, Vec<i16>) {
    let request = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(sb(t)))
                })
                .collect(),
        );
    let response: DeleteShareGroupOffsetsResponse = call(broker, &request, 0);
    let codes = response.responses.iter().map(|t| t.error_code).collect();
    (response.error_code, codes)
}

#[test]
fn share_group_offsets_are_altered_and_deleted_only_while_the_group_is_empty() {
    let mut broker = setup("resets", "resetters", 10, &[]);
    let mut a = Member::join(&broker, "resetters", "member-a", "resets");
    assert_eq!(acquired(&a.fetch(&broker, &[], 500)), vec![(0, 9, 1)]);
    let non_empty = ResponseError::NonEmptyGroup.code();
    assert_eq!(
        alter_offsets(&broker, "resetters", "resets", &[(0, 7)]).0,
        non_empty
    );
    assert_eq!(
        delete_offsets(&broker, "resetters", &["resets"]).0,
        non_empty
    );
    assert_eq!(
        start_offsets(&broker, "resetters", None),
        vec![("resets".into(), 0, 0)]
    );

    let left = heartbeat(&broker, "resetters", "member-a", -1, None);
    assert_eq!(left.error_code, 0, "{left:?}");
    assert_eq!(
        alter_offsets(&broker, "resetters", "resets", &[(0, 7), (1, 0), (0, -5)]),
        (
            0,
            vec![
                0,
                ResponseError::UnknownTopicOrPartition.code(),
                ResponseError::InvalidRequest.code()
            ]
        )
    );
    // Durable: a SIGKILL keeps the altered start, and nothing before it is delivered again.
    restart(&mut broker);
    assert_eq!(
        start_offsets(&broker, "resetters", None),
        vec![("resets".into(), 0, 7)]
    );
    let mut b = Member::join(&broker, "resetters", "member-b", "resets");
    assert_eq!(acquired(&b.fetch(&broker, &[], 500)), vec![(7, 9, 1)]);
    assert_eq!(
        heartbeat(&broker, "resetters", "member-b", -1, None).error_code,
        0
    );

    assert_eq!(
        delete_offsets(&broker, "resetters", &["resets", "no-such-topic"]),
        (0, vec![0, ResponseError::UnknownTopicOrPartition.code()])
    );
    assert_eq!(start_offsets(&broker, "resetters", None), vec![]);
    assert_eq!(
        delete_offsets(&broker, "nobody", &["resets"]).0,
        ResponseError::GroupIdNotFound.code()
    );
    // With its state gone the group starts over where share.auto.offset.reset says.
    let mut c = Member::join(&broker, "resetters", "member-c", "resets");
    assert_eq!(acquired(&c.fetch(&broker, &[], 500)), vec![(0, 9, 1)]);
}

#[test]
fn delivery_counts_of_released_and_expired_records_survive_a_broker_sigkill() {
    let mut broker = setup(
        "recount",
        "recounters",
        5,
        &[("share.record.lock.duration.ms", "1000")],
    );
    let mut a = Member::join(&broker, "recounters", "member-a", "recount");
    assert_eq!(acquired(&a.fetch(&broker, &[], 500)), vec![(0, 4, 1)]);
    // A's lock expires; B's long poll gets the records with delivery count 2.
    let mut b = Member::join(&broker, "recounters", "member-b", "recount");
    assert_eq!(acquired(&b.fetch(&broker, &[], 10_000)), vec![(0, 4, 2)]);
    // B closes its share session without acknowledging: the records are released, and the
    // release is written before the answer.
    b.session_epoch = -1;
    let closed = b.acknowledge(&broker, &[]);
    assert_eq!(closed.error_code, 0, "{closed:?}");

    restart(&mut broker);
    // Nothing was ever acknowledged, yet the third delivery is counted as the third.
    let mut c = Member::join(&broker, "recounters", "member-c", "recount");
    assert_eq!(acquired(&c.fetch(&broker, &[], 1_000)), vec![(0, 4, 3)]);
    // C's lock expires; D's long poll finds it expired, writes that, and takes the records.
    let mut d = Member::join(&broker, "recounters", "member-d", "recount");
    assert_eq!(acquired(&d.fetch(&broker, &[], 10_000)), vec![(0, 4, 4)]);

    restart(&mut broker);
    // C's expired lock was written (count 3; D's acquisition itself is not, as in Kafka,
    // where acquisitions are not persisted): the next delivery is the fourth. Had the
    // expiry not been written, the count would restart from B's release (2).
    let mut e = Member::join(&broker, "recounters", "member-e", "recount");
    assert_eq!(acquired(&e.fetch(&broker, &[], 1_000)), vec![(0, 4, 4)]);
}
