//! RENEW acknowledgements (KIP-1222, ShareFetch / ShareAcknowledge v2) over the raw
//! protocol: no Python client sends RENEW yet, so the v2 requests are this crate's codecs
//! (`sluice::protocol::share_v2`). A member that renews keeps its records past several lock
//! periods and nobody else gets them; once it accepts them they are never delivered again. A
//! member that stops renewing loses them to another member, delivery count 2. RENEW of what
//! the member does not hold is INVALID_RECORD_STATE; RENEW in v1 and malformed v2 fields are
//! INVALID_REQUEST; v1 members are served as before.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, GroupId, ShareAcknowledgeRequest,
    ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
    TopicName,
};
use kafka_protocol::protocol::Request;
use sluice::client::{Client, NewTopic};
use sluice::protocol::share_v2::{
    ACQUIRE_MODE_RECORD_LIMIT, ShareAcknowledgeRequestV2, ShareAcknowledgeResponseV2,
    ShareFetchRequestV2,
};
use support::Broker;
use support::share::{acknowledge_topics, acquired, alter_group, fetch_topics, sb};
use support::wire::{self, RawConn, encode_batch, plain_record, produce_request};

const V1: i16 = 1;
const V2: i16 = 2;
const ACCEPT: i8 = 1;
const RENEW: i8 = 4;
const INVALID_RECORD_STATE: i16 = 121;

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), "renew-test", request, version)
}

/// A broker with a one-partition topic holding `records` records in one batch, the group
/// starting at the earliest offset with acquisition locks of `lock_ms`.
fn setup(topic: &str, group: &str, records: usize, lock_ms: u64) -> Broker {
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
    produce(&broker, topic, 0..records);
    let lock = lock_ms.to_string();
    let configs = [
        ("share.auto.offset.reset", "earliest"),
        ("share.record.lock.duration.ms", lock.as_str()),
    ];
    assert_eq!(
        alter_group(&broker, group, &configs),
        0,
        "group configs of {group}"
    );
    broker
}

/// Appends records `offsets` (values "r<offset>") to partition 0 in one batch.
fn produce(broker: &Broker, topic: &str, offsets: std::ops::Range<usize>) {
    if offsets.is_empty() {
        return;
    }
    let batch: Vec<_> = offsets
        .map(|i| plain_record(i as i64, 1_700_000_000_000, Bytes::from(format!("r{i}"))))
        .collect();
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    let produced = conn.call(
        &produce_request(topic, 0, encode_batch(&batch).freeze(), -1),
        9,
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

/// What one ShareFetch asks besides its acknowledgements.
#[derive(Clone, Copy)]
enum Ask {
    /// Up to `max_records`, waiting up to `wait_ms` for them.
    Records { max_records: i32, wait_ms: i32 },
    /// KIP-1222's renew-only fetch: IsRenewAck, nothing fetched.
    RenewOnly,
}

/// A joined member and its share session's next epoch.
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
        let joined: ShareGroupHeartbeatResponse = call(
            broker,
            &ShareGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_member_id(sb(id))
                .with_member_epoch(0)
                .with_subscribed_topic_names(Some(vec![TopicName(sb(topic))])),
            V1,
        );
        assert_eq!(joined.error_code, 0, "{joined:?}");
        let assignment = joined.assignment.expect("an assignment on join");
        Member {
            group: group.to_string(),
            id: id.to_string(),
            topic_id: assignment.topic_partitions[0].topic_id,
            session_epoch: 0,
            conn: wire::MemberConn::default(),
        }
    }

    /// One ShareFetch at `version` on partition 0 with these acknowledgements; the epoch
    /// advances when the request was taken.
    fn fetch_as(
        &mut self,
        broker: &Broker,
        version: i16,
        acks: &[(i64, i64, i8)],
        ask: Ask,
    ) -> ShareFetchResponse {
        let (wait_ms, min_bytes, max_bytes, max_records) = match ask {
            Ask::Records {
                max_records,
                wait_ms,
            } => (wait_ms, 1, 1 << 20, max_records),
            Ask::RenewOnly => (0, 0, 0, 0),
        };
        let base = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(max_bytes)
            .with_max_records(max_records)
            .with_batch_size(max_records)
            .with_topics(fetch_topics(self.topic_id, acks, 0));
        let request = ShareFetchRequestV2 {
            base,
            share_acquire_mode: if version >= V2 {
                ACQUIRE_MODE_RECORD_LIMIT
            } else {
                0
            },
            is_renew_ack: matches!(ask, Ask::RenewOnly),
        };
        let response = self.conn.call(&broker.bootstrap(), &request, version).base;
        if response.error_code == 0 {
            self.session_epoch += 1;
        }
        response
    }

    fn fetch(&mut self, broker: &Broker, acks: &[(i64, i64, i8)], ask: Ask) -> ShareFetchResponse {
        self.fetch_as(broker, V2, acks, ask)
    }

    /// One ShareAcknowledge at `version` on partition 0.
    fn acknowledge_as(
        &mut self,
        broker: &Broker,
        version: i16,
        acks: &[(i64, i64, i8)],
    ) -> ShareAcknowledgeResponseV2 {
        let base = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.id)))
            .with_share_session_epoch(self.session_epoch)
            .with_topics(acknowledge_topics(self.topic_id, acks));
        let request = ShareAcknowledgeRequestV2 {
            base,
            is_renew_ack: version >= V2 && acks.iter().any(|a| a.2 == RENEW),
        };
        let response = self.conn.call(&broker.bootstrap(), &request, version);
        if response.base.error_code == 0 {
            self.session_epoch += 1;
        }
        response
    }

    fn acknowledge(
        &mut self,
        broker: &Broker,
        acks: &[(i64, i64, i8)],
    ) -> ShareAcknowledgeResponseV2 {
        self.acknowledge_as(broker, V2, acks)
    }
}

/// The acknowledge error of partition 0 in a ShareFetch answer.
fn fetch_ack_error(response: &ShareFetchResponse) -> i16 {
    assert_eq!(response.error_code, 0, "{response:?}");
    response.responses[0].partitions[0].acknowledge_error_code
}

/// The error of partition 0 in a ShareAcknowledge answer.
fn ack_error(response: &ShareAcknowledgeResponseV2) -> i16 {
    assert_eq!(response.base.error_code, 0, "{response:?}");
    response.base.responses[0].partitions[0].error_code
}

const NOTHING: Ask = Ask::Records {
    max_records: 100,
    wait_ms: 0,
};

#[test]
fn a_renewing_member_keeps_its_records_past_several_lock_periods_and_accepting_ends_them() {
    const LOCK_MS: u64 = 2_000;
    // Well inside the lock: a stalled test thread on this 2-core box still renews in time.
    const RENEW_EVERY: Duration = Duration::from_millis(400);
    let broker = setup("renewals", "renewers", 5, LOCK_MS);
    let mut a = Member::join(&broker, "renewers", "member-a", "renewals");
    let mut b = Member::join(&broker, "renewers", "member-b", "renewals");

    let acquired_at = Instant::now();
    let first = a.fetch(
        &broker,
        &[],
        Ask::Records {
            max_records: 10,
            wait_ms: 1_000,
        },
    );
    assert_eq!(acquired(&first), vec![(0, 4, 1)], "{first:?}");
    assert_eq!(first.acquisition_lock_timeout_ms, LOCK_MS as i32);

    // More records arrive meanwhile: a renew-only fetch must not acquire them.
    produce(&broker, "renewals", 5..10);
    let (mut rounds, mut checked_state) = (0, 0);
    while acquired_at.elapsed() < Duration::from_millis(3 * LOCK_MS + 500) {
        std::thread::sleep(RENEW_EVERY);
        // Alternately through ShareAcknowledge and through a renew-only ShareFetch.
        if rounds % 2 == 0 {
            let renewed = a.acknowledge(&broker, &[(0, 4, RENEW)]);
            assert_eq!(ack_error(&renewed), 0, "{renewed:?}");
            assert_eq!(renewed.acquisition_lock_timeout_ms, LOCK_MS as i32);
        } else {
            let renewed = a.fetch(&broker, &[(0, 4, RENEW)], Ask::RenewOnly);
            assert_eq!(fetch_ack_error(&renewed), 0, "{renewed:?}");
            assert_eq!(
                acquired(&renewed),
                vec![],
                "a renew-only fetch acquired records"
            );
            assert_eq!(renewed.acquisition_lock_timeout_ms, LOCK_MS as i32);
        }
        // B gets the new records the first time, and never one of A's.
        let other = b.fetch(&broker, &[], NOTHING);
        if rounds == 0 {
            assert_eq!(acquired(&other), vec![(5, 9, 1)], "{other:?}");
            let settled = b.acknowledge(&broker, &[(5, 9, ACCEPT)]);
            assert_eq!(ack_error(&settled), 0);
        } else {
            assert_eq!(
                acquired(&other),
                vec![],
                "B got records A renewed: {other:?}"
            );
        }
        // Past the first lock period the broker's own view agrees: A's five records are
        // still acquired, and none was delivered twice.
        if acquired_at.elapsed() > Duration::from_millis(LOCK_MS + 200) {
            let text = support::scrape_metrics(broker.admin_port);
            let state = r#"sluice_share_records{group="renewers",topic="renewals",partition="0",state="acquired"}"#;
            let count = r#"sluice_share_delivery_count_max{group="renewers",topic="renewals",partition="0"}"#;
            assert_eq!(support::metric_sample(&text, state), Some(5.0), "{text}");
            assert_eq!(support::metric_sample(&text, count), Some(1.0), "{text}");
            checked_state += 1;
        }
        rounds += 1;
    }
    // The records were held by renewing many times (about 16: every 400 ms for 6.5 s).
    assert!(
        rounds >= 6 && checked_state >= 3,
        "{rounds} renewals, {checked_state} checks"
    );

    // Still A's, still their first delivery: accepting settles them.
    let accepted = a.acknowledge(&broker, &[(0, 4, ACCEPT)]);
    assert_eq!(ack_error(&accepted), 0, "{accepted:?}");
    // Nobody ever gets them again, however long they wait past a lock period.
    let waited = Instant::now();
    let after = b.fetch(
        &broker,
        &[],
        Ask::Records {
            max_records: 100,
            wait_ms: (LOCK_MS + 500) as i32,
        },
    );
    assert_eq!(acquired(&after), vec![], "{after:?}");
    assert!(waited.elapsed() >= Duration::from_millis(LOCK_MS));
    assert_eq!(acquired(&a.fetch(&broker, &[], NOTHING)), vec![]);
}

#[test]
fn a_member_that_stops_renewing_loses_its_records_to_another_with_delivery_count_two() {
    const LOCK_MS: u64 = 1_000;
    let broker = setup("lapses", "lapsers", 5, LOCK_MS);
    let mut a = Member::join(&broker, "lapsers", "member-a", "lapses");
    let mut b = Member::join(&broker, "lapsers", "member-b", "lapses");
    assert_eq!(
        acquired(&a.fetch(
            &broker,
            &[],
            Ask::Records {
                max_records: 10,
                wait_ms: 1_000
            }
        )),
        vec![(0, 4, 1)]
    );
    std::thread::sleep(Duration::from_millis(LOCK_MS / 2));
    let renewed = a.acknowledge(&broker, &[(0, 4, RENEW)]);
    assert_eq!(ack_error(&renewed), 0, "{renewed:?}");
    let renewed_at = Instant::now();

    // A stops renewing. B's long poll gets the records once the renewed lock runs out —
    // not at the first lock's end, half a period earlier.
    let redelivered = b.fetch(
        &broker,
        &[],
        Ask::Records {
            max_records: 10,
            wait_ms: 5_000,
        },
    );
    assert_eq!(acquired(&redelivered), vec![(0, 4, 2)], "{redelivered:?}");
    let waited = renewed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(LOCK_MS - 100),
        "redelivered {waited:?} after the renewal"
    );

    // A's renewal and acceptance come too late: the records are B's now.
    assert_eq!(
        ack_error(&a.acknowledge(&broker, &[(0, 4, RENEW)])),
        INVALID_RECORD_STATE
    );
    assert_eq!(
        fetch_ack_error(&a.fetch(&broker, &[(0, 4, RENEW)], Ask::RenewOnly)),
        INVALID_RECORD_STATE
    );
    assert_eq!(ack_error(&b.acknowledge(&broker, &[(0, 4, ACCEPT)])), 0);
    assert_eq!(acquired(&a.fetch(&broker, &[], NOTHING)), vec![]);
}

#[test]
fn renew_is_refused_where_the_member_holds_nothing_in_v1_and_with_fetch_sizes() {
    let broker = setup("refusals", "refusers", 5, 30_000);
    let mut a = Member::join(&broker, "refusers", "member-a", "refusals");
    let mut b = Member::join(&broker, "refusers", "member-b", "refusals");

    // Both versions advertised, v1 still the floor.
    let versions: ApiVersionsResponse = call(&broker, &ApiVersionsRequest::default(), 3);
    for api in [ApiKey::ShareFetch, ApiKey::ShareAcknowledge] {
        let entry = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .unwrap_or_else(|| panic!("{api:?} not advertised"));
        assert_eq!((entry.min_version, entry.max_version), (V1, V2), "{api:?}");
    }

    // A v1 member is served as before; B takes the rest.
    let first = a.fetch_as(
        &broker,
        V1,
        &[],
        Ask::Records {
            max_records: 3,
            wait_ms: 1_000,
        },
    );
    assert_eq!(acquired(&first), vec![(0, 2, 1)], "{first:?}");
    assert_eq!(acquired(&b.fetch(&broker, &[], NOTHING)), vec![(3, 4, 1)]);

    // Someone else's records, and an offset nobody acquired.
    assert_eq!(
        ack_error(&b.acknowledge(&broker, &[(0, 0, RENEW)])),
        INVALID_RECORD_STATE
    );
    assert_eq!(
        ack_error(&a.acknowledge(&broker, &[(3, 4, RENEW)])),
        INVALID_RECORD_STATE
    );
    assert_eq!(
        ack_error(&a.acknowledge(&broker, &[(7, 7, RENEW)])),
        INVALID_RECORD_STATE
    );
    // RENEW is not a v1 type: refused whole, nothing applied.
    assert_eq!(
        ack_error(&a.acknowledge_as(&broker, V1, &[(0, 2, RENEW)])),
        ResponseError::InvalidRequest.code()
    );
    let v1_fetch = a.fetch_as(&broker, V1, &[(0, 2, RENEW)], NOTHING);
    assert_eq!(
        fetch_ack_error(&v1_fetch),
        ResponseError::InvalidRequest.code()
    );
    // A renew-only fetch that asks for records, or an unknown acquire mode.
    let mut asking = ShareFetchRequestV2 {
        base: ShareFetchRequest::default()
            .with_group_id(Some(GroupId(sb("refusers"))))
            .with_member_id(Some(sb("member-a")))
            .with_share_session_epoch(a.session_epoch)
            .with_max_wait_ms(500),
        share_acquire_mode: 0,
        is_renew_ack: true,
    };
    assert_eq!(
        call(&broker, &asking, V2).base.error_code,
        ResponseError::InvalidRequest.code()
    );
    asking.is_renew_ack = false;
    asking.share_acquire_mode = 7;
    assert_eq!(
        call(&broker, &asking, V2).base.error_code,
        ResponseError::InvalidRequest.code()
    );

    // None of it moved anything: each member still holds its records and settles them,
    // A in v1, whose answers carry no lock duration (the field is v2's).
    let settled = a.acknowledge_as(&broker, V1, &[(0, 2, ACCEPT)]);
    assert_eq!(ack_error(&settled), 0, "{settled:?}");
    assert_eq!(settled.acquisition_lock_timeout_ms, 0);
    let settled = b.acknowledge(&broker, &[(3, 4, ACCEPT)]);
    assert_eq!(ack_error(&settled), 0, "{settled:?}");
    assert_eq!(settled.acquisition_lock_timeout_ms, 30_000);
    assert_eq!(acquired(&a.fetch(&broker, &[], NOTHING)), vec![]);
}
