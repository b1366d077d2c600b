//! Request framing through the wire (decision 0012, session 24: the connection reader takes
//! several frames per receive): many small requests in one send are all answered, in
//! order, from few receives; a frame split anywhere across sends (inside the size prefix,
//! inside the body, whole frames and a partial one in one send) is answered once whole;
//! pipelined produce requests larger than one read-ahead keep their order and their bytes,
//! also around a frame larger than the read-ahead; an oversized frame behind good ones
//! closes the connection after the good ones are answered, without reading its body.
//!
//! Must not: assert on speed.

mod reliability;
mod support;

use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, ProduceRequest};
use reliability::{PRODUCE_VERSION, RawConn, batch, produce_request, read_all};
use std::io::Read;
use std::time::Duration;
use support::wire::{DEFAULT_CLIENT_ID, encode_request};
use support::{Broker, metric_sample, scrape_metrics};

/// Small requests sent in one write by the first test.
const SMALL_REQUESTS: i32 = 300;
/// The most receives those may take: several frames per receive (a reader that takes one
/// frame, or one size prefix, per receive needs at least one per request).
const SMALL_REQUEST_RECEIVES_MAX: f64 = SMALL_REQUESTS as f64 / 4.0;
/// Pause between the pieces of a split frame, so the broker receives them apart.
const SPLIT_PAUSE: Duration = Duration::from_millis(30);
/// `max_request_bytes` of the broker in the last test.
const SMALL_MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a read waits for an answer or the close.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// `sluice_request_receives_total` summed over the broker's shards.
fn request_receives(broker: &Broker) -> f64 {
    let text = scrape_metrics(broker.admin_port);
    (0..64)
        .filter_map(|shard| {
            metric_sample(
                &text,
                &format!("sluice_request_receives_total{{shard=\"{shard}\"}}"),
            )
        })
        .sum()
}

fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    encode_request(
        &ApiVersionsRequest::default(),
        0,
        correlation_id,
        DEFAULT_CLIENT_ID,
    )
    .unwrap_or_else(|e| panic!("encode ApiVersions: {e}"))
}

fn metadata_frame(correlation_id: i32) -> Vec<u8> {
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    encode_request(&request, 1, correlation_id, DEFAULT_CLIENT_ID)
        .unwrap_or_else(|e| panic!("encode Metadata: {e}"))
}

/// Reads the ApiVersions v0 answer to `correlation_id`; any failure fails the test.
fn expect_api_versions(conn: &mut RawConn, correlation_id: i32, what: &str) {
    conn.receive::<ApiVersionsRequest>(0, correlation_id)
        .unwrap_or_else(|e| panic!("{what}: answer {correlation_id}: {e}"));
}

#[test]
fn small_requests_take_one_receive_and_many_in_one_send_share_few() {
    let broker = Broker::start_with(&["--cores", "1"]);
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    conn.api_versions_ok().expect("first ApiVersions");
    // A small request sent whole is one receive, not two (its size, then its body). The
    // reader counts a receive when it asks for one, so after the answer the next receive,
    // already pending, is counted: one per request.
    for id in 1..=3 {
        let before = request_receives(&broker);
        let correlation_id = 100 + id;
        conn.send_raw(&metadata_frame(correlation_id))
            .expect("send Metadata");
        conn.receive::<MetadataRequest>(1, correlation_id)
            .unwrap_or_else(|e| panic!("Metadata answer {correlation_id}: {e}"));
        let receives = request_receives(&broker) - before;
        assert_eq!(receives, 1.0, "receives for one small request sent whole");
    }
    let before = request_receives(&broker);
    let mut bytes = Vec::new();
    for id in 1..=SMALL_REQUESTS {
        bytes.extend(if id % 2 == 0 {
            metadata_frame(id)
        } else {
            api_versions_frame(id)
        });
    }
    conn.send_raw(&bytes).expect("send the requests");
    for id in 1..=SMALL_REQUESTS {
        if id % 2 == 0 {
            conn.receive::<MetadataRequest>(1, id)
                .unwrap_or_else(|e| panic!("Metadata answer {id}: {e}"));
        } else {
            expect_api_versions(&mut conn, id, "one send");
        }
    }
    let receives = request_receives(&broker) - before;
    assert!(
        receives > 0.0 && receives <= SMALL_REQUEST_RECEIVES_MAX,
        "{SMALL_REQUESTS} requests in one send took {receives} receives \
         (at most {SMALL_REQUEST_RECEIVES_MAX}: several frames per receive)"
    );
}

#[test]
fn a_frame_split_anywhere_across_sends_is_answered_once_whole() {
    let broker = Broker::start_with(&["--cores", "1"]);
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    let mut id = 0;
    let frame_len = api_versions_frame(1).len();
    // Inside the size prefix (1..3), right after it (4), inside the body, its last byte.
    let mut cuts: Vec<usize> = (1..=6).collect();
    cuts.extend([frame_len / 2, frame_len - 1]);
    for cut in cuts {
        id += 1;
        let frame = api_versions_frame(id);
        conn.send_raw(&frame[..cut]).expect("first piece");
        std::thread::sleep(SPLIT_PAUSE);
        conn.send_raw(&frame[cut..]).expect("second piece");
        expect_api_versions(&mut conn, id, &format!("a frame cut at byte {cut}"));
    }
    // Two whole frames and the first bytes of a third in one send, then the rest of it
    // with a fourth frame: each cut inside and right after the third's size prefix.
    for cut in [1, 2, 3, 4, 5, frame_len - 1] {
        let ids = [id + 1, id + 2, id + 3, id + 4];
        id += 4;
        let frames: Vec<Vec<u8>> = ids.iter().map(|&i| api_versions_frame(i)).collect();
        let mut first = [frames[0].clone(), frames[1].clone()].concat();
        first.extend_from_slice(&frames[2][..cut]);
        let mut second = frames[2][cut..].to_vec();
        second.extend_from_slice(&frames[3]);
        conn.send_raw(&first)
            .expect("whole frames and a partial one");
        std::thread::sleep(SPLIT_PAUSE);
        conn.send_raw(&second).expect("the rest");
        for i in ids {
            expect_api_versions(&mut conn, i, &format!("pipelined, third cut at {cut}"));
        }
    }
    // Byte by byte: every receive holds one byte.
    id += 1;
    for byte in api_versions_frame(id) {
        conn.send_raw(&[byte]).expect("one byte");
        std::thread::sleep(Duration::from_millis(2));
    }
    expect_api_versions(&mut conn, id, "a frame sent byte by byte");
}

/// Produce requests in the pipelined test: each one value of `value_bytes(i)` (a different
/// size each, so receives end at varying points inside frames), one of them 300 KiB.
const PIPELINED_PRODUCES: usize = 24;

fn value_bytes(i: usize) -> usize {
    if i == PIPELINED_PRODUCES / 2 {
        300 * 1024
    } else {
        9 * 1024 + 517 * i
    }
}

fn value(i: usize) -> Vec<u8> {
    (0..value_bytes(i))
        .map(|j| (j.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

#[test]
fn pipelined_produce_requests_keep_their_order_and_their_bytes() {
    let broker = Broker::start_with(&["--cores", "1"]);
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    conn.create_topic("framing", 1, &[]).expect("create topic");
    let mut bytes = Vec::new();
    for i in 0..PIPELINED_PRODUCES {
        let request = produce_request("framing", 0, batch(&[value(i)], None, 1), 1);
        bytes.extend(
            encode_request(&request, PRODUCE_VERSION, i as i32 + 1, DEFAULT_CLIENT_ID)
                .expect("encode produce"),
        );
    }
    // In one send (the kernel splits it into segments where it likes).
    conn.send_raw(&bytes).expect("send the produce requests");
    for i in 0..PIPELINED_PRODUCES {
        let answer = conn
            .receive::<ProduceRequest>(PRODUCE_VERSION, i as i32 + 1)
            .unwrap_or_else(|e| panic!("produce answer {i}: {e}"));
        let p = &answer.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, i as i64),
            "produce {i} lands at its place in the pipeline"
        );
    }
    let (batches, hw, _) = read_all(&mut conn, "framing", 0, 0).expect("read back");
    assert_eq!(hw, PIPELINED_PRODUCES as i64);
    for (i, b) in batches.iter().enumerate() {
        let got = b.records[0].2.as_deref().unwrap_or_default();
        assert!(
            got == value(i).as_slice(),
            "record {i}: {} bytes read back, {} produced, or different bytes",
            got.len(),
            value_bytes(i)
        );
    }
}

/// Produce requests of this many value bytes, one in flight at a time, in the test after.
const ONE_AT_A_TIME_VALUE_BYTES: usize = 16 * 1024;

#[test]
fn a_large_request_sent_whole_after_one_as_large_takes_one_receive() {
    // A producer with one request in flight: the reader waits for each next frame with
    // nothing held. Asking only for the size prefix and 1 KiB, a 16 KiB request took two
    // receives (two turns of the shard's loop); asking for the previous frame's size, the
    // next as large comes whole in one (session 25). The first takes two: nothing to go by.
    let broker = Broker::start_with(&["--cores", "1"]);
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    conn.create_topic("one-at-a-time", 1, &[])
        .expect("create topic");
    for i in 0..4 {
        let values = [vec![i as u8; ONE_AT_A_TIME_VALUE_BYTES]];
        let request = produce_request("one-at-a-time", 0, batch(&values, None, 1), 1);
        let correlation_id = 500 + i;
        let frame = encode_request(&request, PRODUCE_VERSION, correlation_id, DEFAULT_CLIENT_ID)
            .expect("encode produce");
        let before = request_receives(&broker);
        conn.send_raw(&frame).expect("send produce");
        let answer = conn
            .receive::<ProduceRequest>(PRODUCE_VERSION, correlation_id)
            .unwrap_or_else(|e| panic!("produce answer {i}: {e}"));
        let p = &answer.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i as i64), "produce {i}");
        // Counted when asked for: the pending receive for the next frame is counted too,
        // as in the small-request test, so one per request.
        let receives = request_receives(&broker) - before;
        if i > 0 {
            assert_eq!(
                receives, 1.0,
                "receives for produce {i}, as large as the one before"
            );
        }
    }
}

#[test]
fn an_oversized_frame_behind_good_ones_closes_after_answering_them() {
    let broker = Broker::start_with_config(
        &format!("max_request_bytes = {SMALL_MAX_REQUEST_BYTES}\n"),
        &["--cores", "1"],
    );
    let mut conn = RawConn::connect(&broker.bootstrap()).expect("connect");
    conn.stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let mut bytes = [
        api_versions_frame(1),
        api_versions_frame(2),
        api_versions_frame(3),
    ]
    .concat();
    // Only the size of a frame one byte over the limit: refused without its body.
    bytes.extend_from_slice(&(SMALL_MAX_REQUEST_BYTES as i32 + 1).to_be_bytes());
    conn.send_raw(&bytes).expect("send");
    for id in 1..=3 {
        expect_api_versions(&mut conn, id, "ahead of an oversized frame");
    }
    let mut rest = Vec::new();
    match conn.stream.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "{} more bytes after the good answers",
            rest.len()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection should close after an oversized frame: {e}"),
    }
}
