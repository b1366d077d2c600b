//! Produce groups forwarded to another shard through its outbox (decision 0023) keep each
//! connection's order: a forwarded group counts as dispatched once queued, so the
//! connection sends the next one before the owner has seen the first, and the order must
//! hold from the queue to the log, also while segment rolls hold the log's dispatch lock.

mod reliability;
mod support;

use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use reliability::{PRODUCE_VERSION, RawConn, batch, produce_request, read_all};
use sluice::shard::placement::shard_for_partition;
use std::collections::HashMap;
use support::Broker;

const TOPIC: &str = "ordered";
/// Partitions of the topic: enough that each of the two shards owns one.
const PARTITIONS: i32 = 8;
const CONNECTIONS: usize = 4;
/// Requests each connection pipelines without reading an answer.
const REQUESTS_PER_CONNECTION: usize = 96;
/// Small segments, so appends often find the dispatch lock held by a roll.
const SEGMENT_BYTES: &str = "1024";

fn acks_for(request: usize) -> i16 {
    [1, 1, -1, 0][request % 4]
}

/// A partition of `TOPIC` owned by `shard` (of two).
fn partition_on(shard: usize) -> i32 {
    (0..PARTITIONS)
        .find(|&p| shard_for_partition(TOPIC, p, 2) == shard)
        .unwrap_or_else(|| panic!("no partition of {TOPIC} on shard {shard}"))
}

#[test]
fn pipelined_produce_across_shards_lands_in_request_order() {
    let broker = Broker::start_with(&["--cores", "2"]);
    RawConn::connect(&broker.bootstrap())
        .expect("connect")
        .create_topic(TOPIC, PARTITIONS, &[("segment.bytes", SEGMENT_BYTES)])
        .expect("create topic");
    // Every request names a partition of each shard, so no connection ever settles on one
    // shard: whichever shard serves it, one group of each request is forwarded.
    let targets = [partition_on(0), partition_on(1)];

    let mut conns: Vec<RawConn> = (0..CONNECTIONS)
        .map(|_| RawConn::connect(&broker.bootstrap()).expect("connect"))
        .collect();
    let mut answers: Vec<Vec<i32>> = vec![Vec::new(); CONNECTIONS];
    for request in 0..REQUESTS_PER_CONNECTION {
        for (c, conn) in conns.iter_mut().enumerate() {
            let acks = acks_for(request);
            let value = |p: i32| format!("c{c} r{request} p{p}").into_bytes();
            let mut produce: ProduceRequest = produce_request(
                TOPIC,
                targets[0],
                batch(&[value(targets[0])], None, 1),
                acks,
            );
            produce.topic_data[0].partition_data.push(
                PartitionProduceData::default()
                    .with_index(targets[1])
                    .with_records(Some(batch(&[value(targets[1])], None, 1))),
            );
            let id = conn
                .send(&produce, PRODUCE_VERSION)
                .expect("pipeline a produce");
            if acks != 0 {
                answers[c].push(id);
            }
        }
    }
    for (c, conn) in conns.iter_mut().enumerate() {
        let mut last: HashMap<i32, i64> = HashMap::new();
        for &id in &answers[c] {
            let r = conn
                .receive::<ProduceRequest>(PRODUCE_VERSION, id)
                .unwrap_or_else(|e| panic!("connection {c}, answer {id}: {e}"));
            for p in &r.responses[0].partition_responses {
                assert_eq!(
                    p.error_code, 0,
                    "connection {c}, answer {id}, partition {}",
                    p.index
                );
                let previous = last.insert(p.index, p.base_offset).unwrap_or(-1);
                assert!(
                    p.base_offset > previous,
                    "connection {c}: offsets go forward"
                );
            }
        }
    }

    // Each partition holds every record once, each connection's in its request order.
    for partition in targets {
        let (batches, high_watermark, _) =
            read_all(&mut conns[0], TOPIC, partition, 0).expect("read the partition back");
        assert_eq!(
            high_watermark,
            (CONNECTIONS * REQUESTS_PER_CONNECTION) as i64,
            "partition {partition}"
        );
        let mut next_request: HashMap<usize, usize> = HashMap::new();
        for record in batches.iter().flat_map(|b| &b.records) {
            let value = record.2.clone().expect("a value");
            let text = String::from_utf8(value.to_vec()).expect("utf-8 value");
            let (c, r) = text
                .strip_prefix('c')
                .and_then(|t| t.split_once(" r"))
                .and_then(|(c, rest)| {
                    let (r, p) = rest.split_once(" p")?;
                    assert_eq!(p.parse::<i32>().ok()?, partition, "record {text:?}");
                    Some((c.parse::<usize>().ok()?, r.parse::<usize>().ok()?))
                })
                .unwrap_or_else(|| panic!("unexpected value {text:?}"));
            let expected = next_request.entry(c).or_insert(0);
            assert_eq!(
                r, *expected,
                "partition {partition}, connection {c}: in order, once"
            );
            *expected += 1;
        }
        for c in 0..CONNECTIONS {
            assert_eq!(
                next_request.get(&c),
                Some(&REQUESTS_PER_CONNECTION),
                "partition {partition}, connection {c}"
            );
        }
    }
}
