//! Wire robustness through raw TCP: garbage frames, negative and huge lengths, unknown API
//! keys, unsupported versions, frames over `max_request_bytes`, and a produce whose batch
//! CRC is wrong. After each, the broker must still serve a healthy client, and connections
//! that did nothing wrong must keep working.
//!
//! Owns: only these behaviours. Must not: use a Kafka client library (requests are encoded
//! with the `kafka-protocol` crate or by hand, so the exact bytes are under test control).
//!
//! `SLUICE_TEST_BOOTSTRAP=host:port` points the tests that need no special broker
//! configuration at an already running broker instead of starting one.

mod support;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, create_topics_request::CreatableTopic, metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};
use support::wire::{self, RawConn, topic_name};
use support::{Broker, Target};

/// How long a read may wait for the broker to answer or close.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// `max_request_bytes` of the broker started for the oversized-frame test.
const SMALL_MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a freshly created topic may take to show a leader in Metadata.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Produce versions above 12 address topics by id; these tests address them by name.
const PRODUCE_VERSION_MAX: i16 = 12;

const ERROR_NONE: i16 = 0;
const ERROR_CORRUPT_MESSAGE: i16 = 2;
const ERROR_UNSUPPORTED_VERSION: i16 = 35;

/// What these tests do with the broker under test (`Target::from_env_or_start`, or one
/// started with a special configuration).
impl Target {
    fn connect(&self) -> RawConn {
        RawConn::connect_with(&self.bootstrap, CLIENT_ID, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("broker at {}: {e}", self.bootstrap))
    }

    /// The process is alive and a new connection gets a correct ApiVersions answer.
    fn assert_healthy(&mut self, after: &str) {
        if let Some(broker) = self.broker.as_mut()
            && let Some(child) = broker.child.as_mut()
        {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => panic!("broker exited ({status}) after {after}"),
                Err(e) => panic!("cannot check the broker process after {after}: {e}"),
            }
        }
        let mut conn = self.connect();
        let versions = conn.api_versions();
        assert!(
            versions.contains_key(&(ApiKey::Produce as i16))
                && versions.contains_key(&(ApiKey::ApiVersions as i16)),
            "after {after}: ApiVersions on a new connection lists Produce and ApiVersions, got {versions:?}"
        );
    }
}

/// Client id of every request these tests send (hand-made headers included).
const CLIENT_ID: &str = "wire-robustness";

/// What a read saw when the test expected the broker to hang up.
#[derive(Debug)]
enum AfterBadFrame {
    Closed,
    Answered(usize),
    Silent,
}

/// Request header v1 (key, version, correlation id, client id) by hand, so any key and
/// version can be sent.
fn raw_header_v1(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let client_id = CLIENT_ID.as_bytes();
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&correlation_id.to_be_bytes());
    h.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    h.extend_from_slice(client_id);
    h
}

/// What these tests check on a raw connection, besides sending and reading frames.
impl RawConn {
    /// ApiVersions v3 (what librdkafka and the Java client send first): key -> (min, max).
    fn api_versions(&mut self) -> HashMap<i16, (i16, i16)> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-wire-tests"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let response = self.call(&request, 3);
        assert_eq!(response.error_code, ERROR_NONE, "ApiVersions v3 error code");
        response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect()
    }

    /// Waits for the broker to close this connection and says what happened instead if not.
    fn after_bad_frame(&mut self) -> AfterBadFrame {
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return AfterBadFrame::Closed,
                Ok(n) => return AfterBadFrame::Answered(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
                {
                    return AfterBadFrame::Closed;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) if Instant::now() >= deadline => return AfterBadFrame::Silent,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return AfterBadFrame::Silent;
                }
                Err(e) => panic!("unexpected read error after a bad frame: {e}"),
            }
        }
    }

    fn assert_closed(&mut self, what: &str) {
        match self.after_bad_frame() {
            AfterBadFrame::Closed => {}
            AfterBadFrame::Answered(bytes) => {
                panic!(
                    "broker should close the connection after {what}, but answered {bytes} bytes"
                )
            }
            AfterBadFrame::Silent => panic!(
                "broker should close the connection after {what}, but kept it open and silent for {IO_TIMEOUT:?}"
            ),
        }
    }
}

/// Highest version both the broker and this test's codec know, capped at `cap`.
fn negotiate<R: Request>(versions: &HashMap<i16, (i16, i16)>, cap: i16) -> i16 {
    let (min, max) = *versions
        .get(&R::KEY)
        .unwrap_or_else(|| panic!("broker does not list API key {}", R::KEY));
    let version = max.min(R::VERSIONS.max).min(cap);
    assert!(
        version >= min && version >= R::VERSIONS.min,
        "no common version for key {}: broker {min}..{max}, test codec {:?}",
        R::KEY,
        R::VERSIONS
    );
    version
}

/// Creates a one-partition topic and waits until Metadata shows its leader.
fn create_topic(conn: &mut RawConn, versions: &HashMap<i16, (i16, i16)>, name: &str) {
    let version = negotiate::<CreateTopicsRequest>(versions, i16::MAX);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(30_000);
    let response = conn.call(&request, version);
    let result = response
        .topics
        .first()
        .unwrap_or_else(|| panic!("CreateTopics {name}: no topic in the response"));
    assert_eq!(
        result.error_code, ERROR_NONE,
        "CreateTopics {name}: {:?}",
        result.error_message
    );

    let version = negotiate::<MetadataRequest>(versions, i16::MAX);
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(name))),
        ]));
        let response = conn.call(&request, version);
        let ready = response.topics.iter().any(|t| {
            t.error_code == ERROR_NONE
                && t.partitions.len() == 1
                && t.partitions
                    .iter()
                    .all(|p| p.error_code == ERROR_NONE && p.leader_id.0 >= 0)
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} has no leader in Metadata after {TOPIC_READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An uncompressed RecordBatch v2 with `count` small records.
fn record_batch(count: i64) -> BytesMut {
    record_batch_with_value_bytes(count, 72)
}

/// One uncompressed RecordBatch v2 with `count` records of `value_bytes` each (Produce v3+
/// allows exactly one batch per partition).
fn record_batch_with_value_bytes(count: i64, value_bytes: usize) -> BytesMut {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            // The encoder starts a new batch unless offset - sequence stays constant; the
            // first record's -1 makes the batch's base sequence -1 (not idempotent).
            sequence: i as i32 - 1,
            key: Some(Bytes::from(format!("key-{i}"))),
            ..wire::plain_record(
                i,
                1_700_000_000_000 + i,
                Bytes::from(vec![b'a' + (i % 26) as u8; value_bytes]),
            )
        })
        .collect();
    let buf = wire::encode_batch(&records);
    match RecordBatchDecoder::decode_batch_info(&mut buf.clone().freeze()) {
        Ok(info) => assert!(
            info.len() == 1
                && i64::from(info[0].record_count) == count
                && info[0].base_sequence == -1,
            "test premise: one batch of {count} records without a sequence, got {info:?}"
        ),
        Err(e) => panic!("test premise: the encoded batch decodes: {e}"),
    }
    buf
}

/// Produces `batch` to partition 0 of `topic`; returns (error code, base offset).
fn produce(conn: &mut RawConn, version: i16, topic: &str, batch: Bytes) -> (i16, i64) {
    let request = wire::produce_request(topic, 0, batch, -1);
    let response = conn.call(&request, version);
    let partition = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .unwrap_or_else(|| panic!("Produce to {topic}: no partition in the response"));
    (partition.error_code, partition.base_offset)
}

fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[test]
fn garbage_bytes_close_only_that_connection() {
    let mut target = Target::from_env_or_start();
    let mut bystander = target.connect();
    bystander.api_versions();

    let mut conn = target.connect();
    // An HTTP request: its first four bytes read as a ~1.2 GB frame length.
    let _ = conn.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.assert_closed("an HTTP request");
    target.assert_healthy("an HTTP request");

    let mut conn = target.connect();
    // A plausible length with a body too short to hold a request header.
    let _ = conn.send_raw(&[0, 0, 0, 3, 0xde, 0xad, 0xbe]);
    conn.assert_closed("a 3-byte frame");
    target.assert_healthy("a 3-byte frame");

    let mut conn = target.connect();
    // A full-size frame of random-looking bytes (API key 0xa5a5 is negative).
    let mut garbage = vec![0u8, 0, 0, 64];
    garbage.extend((0..64u32).map(|i| (0xa5 ^ (i * 31)) as u8));
    let _ = conn.send_raw(&garbage);
    conn.assert_closed("64 bytes of garbage");
    target.assert_healthy("64 bytes of garbage");

    // The connection that did nothing wrong is still served.
    let versions = bystander.api_versions();
    assert!(!versions.is_empty(), "bystander connection still answered");
}

#[test]
fn negative_frame_length_closes_the_connection() {
    let mut target = Target::from_env_or_start();
    for length in [-1i32, i32::MIN] {
        let mut conn = target.connect();
        let _ = conn.send_raw(&length.to_be_bytes());
        conn.assert_closed(&format!("frame length {length}"));
        target.assert_healthy(&format!("frame length {length}"));
    }
}

#[test]
fn huge_frame_length_closes_without_waiting_for_the_body() {
    let mut target = Target::from_env_or_start();
    let mut conn = target.connect();
    // Only the length and a header are sent; a broker that waits for 2 GiB would hang here.
    let header = raw_header_v1(ApiKey::Produce as i16, 7, 1);
    let mut bytes = i32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(&header);
    let _ = conn.send_raw(&bytes);
    conn.assert_closed("frame length i32::MAX");
    target.assert_healthy("frame length i32::MAX");
}

#[test]
fn frame_over_max_request_bytes_closes_the_connection() {
    let mut target = Target::started(Broker::start_with_config(
        &format!("max_request_bytes = {SMALL_MAX_REQUEST_BYTES}\n"),
        &[],
    ));

    // A produce just under the limit is served.
    let mut conn = target.connect();
    let versions = conn.api_versions();
    let topic = unique_topic("near-limit");
    create_topic(&mut conn, &versions, &topic);
    let version = negotiate::<ProduceRequest>(&versions, PRODUCE_VERSION_MAX);
    let batch = record_batch_with_value_bytes(1, SMALL_MAX_REQUEST_BYTES - 1024);
    let (error, base_offset) = produce(&mut conn, version, &topic, batch.freeze());
    assert_eq!(
        (error, base_offset),
        (ERROR_NONE, 0),
        "a produce just under max_request_bytes is accepted"
    );

    // One byte over the limit, body and all: the connection is closed.
    let mut conn = target.connect();
    let header = raw_header_v1(ApiKey::Produce as i16, 7, 1);
    let body = vec![0u8; SMALL_MAX_REQUEST_BYTES + 1 - header.len()];
    let frame = wire::frame(&[&header, &body]);
    let _ = conn.send_raw(&frame);
    conn.assert_closed("a frame of max_request_bytes + 1");
    target.assert_healthy("a frame of max_request_bytes + 1");

    // Only the length of a too-large frame: closed without waiting for the body.
    let mut conn = target.connect();
    let _ = conn.send_raw(&((SMALL_MAX_REQUEST_BYTES as i32) * 16).to_be_bytes());
    conn.assert_closed("the length of a 1 MiB frame");
    target.assert_healthy("the length of a 1 MiB frame");
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut target = Target::from_env_or_start();
    let mut bystander = target.connect();
    bystander.api_versions();
    for api_key in [9_999i16, i16::MAX] {
        let mut conn = target.connect();
        let header = raw_header_v1(api_key, 0, 42);
        let _ = conn.send_raw(&wire::frame(&[&header, &[0u8; 16]]));
        conn.assert_closed(&format!("unknown API key {api_key}"));
        target.assert_healthy(&format!("unknown API key {api_key}"));
    }
    bystander.api_versions();
}

#[test]
fn api_versions_with_unsupported_version_answers_unsupported_version() {
    let mut target = Target::from_env_or_start();
    let mut conn = target.connect();
    let correlation_id = 77;
    // Header v2 (a flexible ApiVersions request) with an empty tagged-field section and an
    // empty v3-style body; a broker that does not know v127 must still answer.
    let mut header = raw_header_v1(ApiKey::ApiVersions as i16, 127, correlation_id);
    header.push(0);
    let body = [1u8, 1, 0]; // compact strings "", "" and no tagged fields
    if let Err(e) = conn.send_raw(&wire::frame(&[&header, &body])) {
        panic!("send ApiVersions v127: {e}");
    }
    let mut response = conn
        .read_frame()
        .unwrap_or_else(|e| panic!("ApiVersions v127 response: {e}"));
    // The answer uses the v0 layout (header v0, no tagged fields) so any client can read it.
    assert!(response.remaining() >= 4 + 2 + 4, "response too short");
    assert_eq!(response.get_i32(), correlation_id, "correlation id");
    let error_code = response.get_i16();
    assert_eq!(
        error_code, ERROR_UNSUPPORTED_VERSION,
        "ApiVersions v127 answers UNSUPPORTED_VERSION (35)"
    );
    let count = response.get_i32();
    assert!(
        count > 0 && response.remaining() >= count as usize * 6,
        "UNSUPPORTED_VERSION answer lists the supported versions ({count} entries, {} bytes)",
        response.remaining()
    );
    let mut api_versions_range = None;
    for _ in 0..count {
        let (key, min, max) = (response.get_i16(), response.get_i16(), response.get_i16());
        if key == ApiKey::ApiVersions as i16 {
            api_versions_range = Some((min, max));
        }
    }
    match api_versions_range {
        Some((min, max)) => assert!(
            min == 0 && max >= 3,
            "ApiVersions range {min}..{max} covers v0..v3"
        ),
        None => panic!("UNSUPPORTED_VERSION answer does not list ApiVersions itself"),
    }
    // Clients retry on the same connection with a version from that list.
    let versions = conn.api_versions();
    assert!(
        versions.contains_key(&(ApiKey::Produce as i16)),
        "same connection serves ApiVersions v3 after the error"
    );
    target.assert_healthy("ApiVersions v127");
}

#[test]
fn other_api_with_unsupported_version_closes_the_connection() {
    let mut target = Target::from_env_or_start();
    let mut conn = target.connect();
    let header = raw_header_v1(ApiKey::Metadata as i16, 127, 5);
    let _ = conn.send_raw(&wire::frame(&[&header, &[0u8; 8]]));
    conn.assert_closed("Metadata v127");
    target.assert_healthy("Metadata v127");
}

#[test]
fn produce_with_corrupt_batch_crc_answers_corrupt_message() {
    let mut target = Target::from_env_or_start();
    let mut conn = target.connect();
    let versions = conn.api_versions();
    let topic = unique_topic("corrupt-crc");
    create_topic(&mut conn, &versions, &topic);
    let version = negotiate::<ProduceRequest>(&versions, PRODUCE_VERSION_MAX);

    let good = record_batch(3);
    let mut corrupt = good.clone();
    // The last record ends with its value (72 bytes) and a one-byte header count, so this
    // byte is inside that value, which the CRC covers; the batch still parses structurally.
    let inside_last_value = corrupt.len() - 10;
    corrupt[inside_last_value] ^= 0x01;
    assert!(
        RecordBatchDecoder::decode_all(&mut corrupt.clone().freeze()).is_err(),
        "test premise: the client-side decoder also rejects the corrupted batch"
    );
    assert!(
        RecordBatchDecoder::decode_all(&mut good.clone().freeze()).is_ok(),
        "test premise: the intact batch decodes"
    );
    let (error, _) = produce(&mut conn, version, &topic, corrupt.freeze());
    assert_eq!(
        error, ERROR_CORRUPT_MESSAGE,
        "a batch with a wrong CRC is refused with CORRUPT_MESSAGE (2)"
    );

    // The same connection still works, and the refused batch took no offsets.
    let (error, base_offset) = produce(&mut conn, version, &topic, good.freeze());
    assert_eq!(error, ERROR_NONE, "the intact batch is accepted");
    assert_eq!(base_offset, 0, "the refused batch took no offsets");

    // A CRC field that was zeroed (not just a flipped payload bit) is refused too.
    let mut zeroed = record_batch(2);
    // RecordBatch v2: base offset (8) + length (4) + leader epoch (4) + magic (1), then CRC.
    const CRC_FIELD_START: usize = 17;
    zeroed[CRC_FIELD_START..CRC_FIELD_START + 4].copy_from_slice(&[0, 0, 0, 0]);
    let (error, _) = produce(&mut conn, version, &topic, zeroed.freeze());
    assert_eq!(
        error, ERROR_CORRUPT_MESSAGE,
        "a batch with a zeroed CRC is refused"
    );
    let (error, base_offset) = produce(&mut conn, version, &topic, record_batch(1).freeze());
    assert_eq!(
        (error, base_offset),
        (ERROR_NONE, 3),
        "next good batch lands right after the first"
    );
    target.assert_healthy("corrupt produce batches");
}

/// The hand-made frames above rely on this framing matching the crate's; check it once.
#[test]
fn raw_header_matches_the_protocol_crate_encoding() {
    let mut ours = raw_header_v1(ApiKey::Metadata as i16, 4, 9);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(4)
        .with_correlation_id(9)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut theirs = BytesMut::new();
    header
        .encode(&mut theirs, 1)
        .unwrap_or_else(|e| panic!("encode header: {e}"));
    assert_eq!(ours, theirs.to_vec());
    // Header v2 only adds an empty tagged-field section.
    let mut theirs_v2 = BytesMut::new();
    header
        .encode(&mut theirs_v2, 2)
        .unwrap_or_else(|e| panic!("encode header v2: {e}"));
    ours.put_u8(0);
    assert_eq!(ours, theirs_v2.to_vec());
}

#[test]
fn pre_0_11_produce_gets_unsupported_for_message_format_not_a_dropped_connection() {
    use bytes::Buf;
    let mut target = Target::from_env_or_start();
    let mut conn = target.connect();
    let header = raw_header_v1(ApiKey::Produce as i16, 2, 41);
    // acks=1, timeout, one topic "legacy" with partition 0 and a (magic 1) message set.
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&6i16.to_be_bytes());
    body.extend_from_slice(b"legacy");
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    let message_set = [0u8; 26];
    body.extend_from_slice(&(message_set.len() as i32).to_be_bytes());
    body.extend_from_slice(&message_set);
    conn.send_raw(&wire::frame(&[&header, &body]))
        .expect("send");
    let mut response = conn
        .read_frame()
        .unwrap_or_else(|e| panic!("Produce v2: {e}"));
    assert_eq!(response.get_i32(), 41, "correlation id");
    assert_eq!(response.get_i32(), 1, "one topic");
    let name_len = response.get_i16() as usize;
    assert_eq!(&response.split_to(name_len)[..], b"legacy");
    assert_eq!(response.get_i32(), 1, "one partition");
    assert_eq!(response.get_i32(), 0, "partition index");
    assert_eq!(response.get_i16(), 43, "UNSUPPORTED_FOR_MESSAGE_FORMAT");
    target.assert_healthy("Produce v2");
}
