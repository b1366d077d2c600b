//! Client quotas over the raw protocol (issue 20): AlterClientQuotas validation as Kafka's
//! controller does it, `validate_only`, removal, DescribeClientQuotas's exact / default /
//! any filters and `strict`, quotas surviving a restart, and CLUSTER_AUTHORIZATION_FAILED
//! for a principal without CLUSTER ALTER / DESCRIBE; a producer over its byte-rate quota
//! answered with throttle_time_ms and held to the rate, a consumer over its quota answered
//! empty with throttle_time_ms; a client over its `request_percentage` (request-time quota)
//! answered with throttle_time_ms in Metadata and Produce answers and then muted. (The 5 % rate target is `perf/quota.py`: no timing target
//! here beyond "the throttle held it back".)

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, FetchRequest, MetadataRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use std::time::{Duration, Instant};
use support::wire::{RawConn, encode_batch, plain_record, produce_request, topic_name};
use support::{Broker, wire};

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const ANY: i8 = 2;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), "client-quotas-test", request, version)
}

/// An entity from (type, name) pairs; `None` is the default entity.
fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(sb(t))
                .with_entity_name(n.map(sb))
        })
        .collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(sb(key)).with_value(value)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(sb(key)).with_remove(true)
}

fn alter(broker: &Broker, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let request = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let response: AlterClientQuotasResponse = call(broker, &request, 1);
    response.entries.iter().map(|e| e.error_code).collect()
}

fn entry(parts: &[(&str, Option<&str>)], ops: Vec<OpData>) -> EntryData {
    EntryData::default()
        .with_entity(entity(parts))
        .with_ops(ops)
}

fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(sb(entity_type))
        .with_match_type(match_type)
        .with_match(name.map(sb))
}

/// A described entity ("type=name" parts joined) and its (key, value) pairs.
type Described = (String, Vec<(String, f64)>);

/// The described entities, each as sorted "type=name" parts (`type=<default>` for the
/// default entity) with its values, sorted.
fn describe(
    broker: &Broker,
    components: Vec<ComponentData>,
    strict: bool,
) -> Result<Vec<Described>, i16> {
    let request = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let response: DescribeClientQuotasResponse = call(broker, &request, 1);
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    let mut entries: Vec<Described> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let mut parts: Vec<String> = e
                .entity
                .iter()
                .map(|p| {
                    let name = p.entity_name.as_deref().unwrap_or("<default>");
                    format!("{}={name}", p.entity_type.as_str())
                })
                .collect();
            parts.sort();
            let mut values: Vec<(String, f64)> = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (parts.join(","), values)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn names(entries: &[Described]) -> Vec<&str> {
    entries.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn alter_validates_as_kafka_and_validate_only_stores_nothing() {
    let broker = Broker::start();
    let invalid = ResponseError::InvalidRequest.code();
    let codes = alter(
        &broker,
        vec![
            entry(
                &[("user", Some("alice"))],
                vec![set("producer_byte_rate", 1024.0)],
            ),
            entry(&[("user", Some("bob"))], vec![set("no_such_quota", 1.0)]),
            entry(
                &[("user", Some("carol"))],
                vec![set("producer_byte_rate", 10.5)],
            ),
            entry(&[], vec![set("producer_byte_rate", 1.0)]),
            entry(&[("user", Some(""))], vec![set("producer_byte_rate", 1.0)]),
            entry(
                &[("user", Some("a")), ("user", Some("b"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            entry(
                &[("group", Some("g"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            entry(
                &[("client-id", None)],
                vec![set("request_percentage", 12.5)],
            ),
        ],
        true,
    );
    assert_eq!(
        codes,
        vec![0, invalid, invalid, invalid, invalid, invalid, invalid, 0]
    );
    assert_eq!(
        describe(&broker, vec![], false),
        Ok(vec![]),
        "validate_only stored"
    );
}

#[test]
fn quotas_round_trip_filter_and_survive_a_restart() {
    let mut broker = Broker::start();
    let codes = alter(
        &broker,
        vec![
            entry(
                &[("user", Some("alice"))],
                vec![set("producer_byte_rate", 1_048_576.0)],
            ),
            entry(
                &[("user", Some("alice")), ("client-id", Some("app"))],
                vec![
                    set("consumer_byte_rate", 2048.0),
                    set("request_percentage", 50.0),
                ],
            ),
            entry(&[("user", None)], vec![set("producer_byte_rate", 4096.0)]),
            entry(
                &[("client-id", None)],
                vec![set("consumer_byte_rate", 8192.0)],
            ),
        ],
        false,
    );
    assert_eq!(codes, vec![0, 0, 0, 0]);

    let all = describe(&broker, vec![], false).unwrap();
    assert_eq!(
        names(&all),
        vec![
            "client-id=<default>",
            "client-id=app,user=alice",
            "user=<default>",
            "user=alice"
        ]
    );
    assert_eq!(
        all[3].1,
        vec![("producer_byte_rate".to_string(), 1_048_576.0)]
    );

    let exact_alice = describe(
        &broker,
        vec![component("user", EXACT, Some("alice"))],
        false,
    );
    assert_eq!(
        names(&exact_alice.unwrap()),
        vec!["client-id=app,user=alice", "user=alice"]
    );
    let strict_alice = describe(&broker, vec![component("user", EXACT, Some("alice"))], true);
    assert_eq!(names(&strict_alice.unwrap()), vec!["user=alice"]);
    let default_user = describe(&broker, vec![component("user", DEFAULT, None)], false);
    assert_eq!(names(&default_user.unwrap()), vec!["user=<default>"]);
    let any_user = describe(&broker, vec![component("user", ANY, None)], true);
    assert_eq!(
        names(&any_user.unwrap()),
        vec!["user=<default>", "user=alice"]
    );
    let any_client = describe(&broker, vec![component("client-id", ANY, None)], false);
    assert_eq!(
        names(&any_client.unwrap()),
        vec!["client-id=<default>", "client-id=app,user=alice"]
    );

    let invalid = ResponseError::InvalidRequest.code();
    let twice = vec![
        component("user", ANY, None),
        component("user", DEFAULT, None),
    ];
    assert_eq!(describe(&broker, twice, false), Err(invalid));
    let exact_null = vec![component("user", EXACT, None)];
    assert_eq!(describe(&broker, exact_null, false), Err(invalid));
    let default_named = vec![component("user", DEFAULT, Some("x"))];
    assert_eq!(describe(&broker, default_named, false), Err(invalid));
    let unknown_type = vec![component("topic", ANY, None)];
    assert_eq!(
        describe(&broker, unknown_type, false),
        Err(ResponseError::UnsupportedVersion.code())
    );

    broker.terminate();
    broker.spawn();
    assert_eq!(
        describe(&broker, vec![], false).unwrap(),
        all,
        "quotas lost on restart"
    );

    // Removing the last value of an entity removes the entity.
    let codes = alter(
        &broker,
        vec![entry(
            &[("user", Some("alice"))],
            vec![remove("producer_byte_rate")],
        )],
        false,
    );
    assert_eq!(codes, vec![0]);
    broker.terminate();
    broker.spawn();
    let after = describe(&broker, vec![component("user", EXACT, Some("alice"))], true);
    assert_eq!(after, Ok(vec![]), "removal lost on restart");
}

#[test]
fn a_principal_without_cluster_alter_cannot_change_quotas() {
    let broker = Broker::start_with_config("authorizer = \"standard\"\n", &[]);
    let codes = alter(
        &broker,
        vec![entry(
            &[("user", Some("alice"))],
            vec![set("producer_byte_rate", 1.0)],
        )],
        false,
    );
    let refused = ResponseError::ClusterAuthorizationFailed.code();
    assert_eq!(codes, vec![refused]);
    assert_eq!(describe(&broker, vec![], false), Err(refused));
}

/// Kafka's rate window: 11 samples of 1 s, the elapsed time counted as at least 10 s.
const COUNTED_WINDOW_SECS: f64 = 10.0;

/// Produces `batches` batches of `batch_bytes` as `client_id`, one request at a time, and
/// answers the throttle times seen and how long it took.
fn produce_steadily(
    broker: &Broker,
    client_id: &'static str,
    batches: usize,
    batch_bytes: usize,
) -> (Vec<i32>, Duration) {
    let mut conn = RawConn::connect_with(&broker.bootstrap(), client_id, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let value = bytes::Bytes::from(vec![7u8; batch_bytes]);
    let batch = encode_batch(&[plain_record(0, 0, value)]).freeze();
    let started = Instant::now();
    let mut throttles = Vec::with_capacity(batches);
    for _ in 0..batches {
        let response = conn.call(&produce_request("quota-topic", 0, batch.clone(), 1), 9);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "produce refused");
        throttles.push(response.throttle_time_ms);
    }
    (throttles, started.elapsed())
}

#[test]
fn a_producer_over_its_quota_is_throttled_and_held_near_the_rate() {
    const RATE: f64 = 1_000_000.0;
    const BATCH: usize = 100_000;
    const BATCHES: usize = 150; // 15 MB: 10 MB of burst the window allows, then 5 s of quota
    let broker = Broker::start();
    let codes = alter(
        &broker,
        vec![entry(
            &[("client-id", Some("slow-producer"))],
            vec![set("producer_byte_rate", RATE)],
        )],
        false,
    );
    assert_eq!(codes, vec![0]);

    // Another client id has no quota: never throttled.
    let (free, _) = produce_steadily(&broker, "free-producer", 20, BATCH);
    assert!(free.iter().all(|t| *t == 0), "{free:?}");

    let (throttles, elapsed) = produce_steadily(&broker, "slow-producer", BATCHES, BATCH);
    assert_eq!(throttles[0], 0, "the first request is within the window");
    let throttled = throttles.iter().filter(|t| **t > 0).count();
    assert!(throttled > 0, "never throttled: {throttles:?}");
    assert!(throttles.iter().all(|t| *t <= 11_000), "{throttles:?}");
    // The bytes beyond the window's allowance take at least their time at the quota.
    let sent = (BATCHES * BATCH) as f64;
    let floor = (sent - RATE * COUNTED_WINDOW_SECS) / RATE;
    let secs = elapsed.as_secs_f64();
    assert!(
        secs >= floor * 0.9,
        "15 MB at 1 MB/s took only {secs:.2}s (floor {floor:.2}s)"
    );
    assert!(
        secs < floor * 4.0 + 10.0,
        "held far below the quota: {secs:.2}s"
    );
}

#[test]
fn a_consumer_over_its_quota_gets_an_empty_throttled_answer() {
    let broker = Broker::start();
    let (_, _) = produce_steadily(&broker, "filler", 4, 100_000);
    let codes = alter(
        &broker,
        vec![entry(
            &[("client-id", None)],
            vec![set("consumer_byte_rate", 10_000.0)],
        )],
        false,
    );
    assert_eq!(codes, vec![0]);
    let mut conn = RawConn::connect_with(
        &broker.bootstrap(),
        "slow-consumer",
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name("quota-topic"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(64 * 1024 * 1024),
                ]),
        ]);
    // 400 kB against the default client's 10 kB/s (100 kB allowed in the window).
    let response = conn.call(&fetch, 12);
    assert!(response.throttle_time_ms > 0, "not throttled");
    assert!(
        response.responses.is_empty(),
        "a throttled fetch carries no data"
    );
    // A client id with a quota of its own above the default is served.
    let codes = alter(
        &broker,
        vec![entry(
            &[("client-id", Some("fast-consumer"))],
            vec![set("consumer_byte_rate", 1e9)],
        )],
        false,
    );
    assert_eq!(codes, vec![0]);
    let mut fast = RawConn::connect_with(
        &broker.bootstrap(),
        "fast-consumer",
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let response = fast.call(&fetch, 12);
    assert_eq!(response.throttle_time_ms, 0);
    let records = response.responses[0].partitions[0].records.as_ref();
    assert!(
        records.is_some_and(|r| r.len() >= 400_000),
        "fetched too little"
    );
}

#[test]
fn a_client_over_its_request_percentage_is_throttled_then_muted() {
    let broker = Broker::start();
    // One ten-thousandth of a thread: a few Metadata requests' handling exceeds it.
    let codes = alter(
        &broker,
        vec![entry(
            &[("client-id", Some("busy"))],
            vec![set("request_percentage", 0.01)],
        )],
        false,
    );
    assert_eq!(codes, vec![0]);
    let connect = |client_id: &'static str| {
        RawConn::connect_with(&broker.bootstrap(), client_id, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // A client id without the quota is never throttled by it.
    let mut idle = connect("idle");
    for _ in 0..50 {
        let response = idle.call(&MetadataRequest::default(), 12);
        assert_eq!(response.throttle_time_ms, 0);
    }
    let mut busy = connect("busy");
    let throttle_ms = (0..100_000)
        .map(|_| busy.call(&MetadataRequest::default(), 12).throttle_time_ms)
        .find(|t| *t > 0)
        .expect("never throttled");
    assert!(throttle_ms <= 11_000, "{throttle_ms} ms is past the window");
    // KIP-219: the answer came at once; the connection then reads nothing until the
    // throttle has passed (the clock started a little before the client saw the answer).
    let started = Instant::now();
    let _ = busy.call(&MetadataRequest::default(), 12);
    let waited = started.elapsed() + Duration::from_millis(100);
    assert!(
        waited >= Duration::from_millis(throttle_ms as u64),
        "answered after {waited:?}, throttled for {throttle_ms} ms"
    );
    // The rate is the client id's, whatever the connection: a produce on a new one is
    // answered with a throttle too (written into Produce's answer, where it comes last).
    let mut producer = connect("busy");
    let batch = encode_batch(&[plain_record(0, 0, bytes::Bytes::from_static(b"v"))]).freeze();
    let response = producer.call(&produce_request("quota-topic", 0, batch, 1), 9);
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert!(response.throttle_time_ms > 0, "produce not throttled");
}
