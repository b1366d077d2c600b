//! Connections move to the shard that owns their partitions (`src/server/affinity.rs`): a
//! producer of one partition ends up served by that partition's shard, whichever shard the
//! kernel handed its connection to, and no request is lost, reordered or applied twice
//! across the move, whether it was answered before, read ahead of, or sent after the move.

mod reliability;
mod support;

use kafka_protocol::messages::ProduceRequest;
use reliability::{PRODUCE_VERSION, RawConn, batch, produce_request, read_all};
use sluice::server::affinity::MOVE_AFTER_REQUESTS;
use std::collections::HashMap;
use std::time::Duration;
use support::{Broker, wait_connections_on_one_shard};

/// Enough that, with two shards, both almost surely get some connections from the kernel;
/// the assertions hold either way.
const CONNECTIONS: usize = 6;
/// Requests each connection pipelines: several times the streak that triggers a move, so
/// some are read ahead when it starts and some arrive after it.
const REQUESTS_PER_CONNECTION: usize = 4 * MOVE_AFTER_REQUESTS as usize;
/// Metrics are snapshots a shard refreshes every few seconds.
const METRICS_WAIT: Duration = Duration::from_secs(20);

fn acks_for(request: usize) -> i16 {
    // acks=all answers after an fdatasync, acks=1 after the write, acks=0 never.
    [1, -1, 1, 0][request % 4]
}

#[test]
fn one_partition_connections_move_to_its_shard_and_lose_nothing() {
    let broker = Broker::start_with(&["--cores", "2"]);
    RawConn::connect(&broker.bootstrap())
        .expect("connect")
        .create_topic("moving", 1, &[])
        .expect("create topic");

    let mut conns: Vec<RawConn> = (0..CONNECTIONS)
        .map(|_| RawConn::connect(&broker.bootstrap()).expect("connect"))
        .collect();
    // Pipelined without reading, the connections taking turns.
    let mut answers: Vec<Vec<i32>> = vec![Vec::new(); CONNECTIONS];
    for request in 0..REQUESTS_PER_CONNECTION {
        for (c, conn) in conns.iter_mut().enumerate() {
            let value = format!("c{c} r{request}").into_bytes();
            let acks = acks_for(request);
            let request = produce_request("moving", 0, batch(&[value], None, 1), acks);
            let id = conn
                .send(&request, PRODUCE_VERSION)
                .expect("pipeline a produce");
            if acks != 0 {
                answers[c].push(id);
            }
        }
    }
    for (c, conn) in conns.iter_mut().enumerate() {
        let mut last = -1;
        for &id in &answers[c] {
            let r = conn
                .receive::<ProduceRequest>(PRODUCE_VERSION, id)
                .unwrap_or_else(|e| panic!("connection {c}, answer {id}: {e}"));
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "connection {c}, answer {id}");
            assert!(p.base_offset > last, "connection {c}: offsets go forward");
            last = p.base_offset;
        }
    }

    // Every connection is now on one shard (the owner's), none on the other.
    let (owner, moved) =
        wait_connections_on_one_shard(broker.admin_port, CONNECTIONS, METRICS_WAIT);
    assert!(moved[owner] <= CONNECTIONS as f64, "moves {moved:?}");

    // The log holds every record once (acks=0 ones too), each connection's in its order.
    let (batches, high_watermark, _) =
        read_all(&mut conns[0], "moving", 0, 0).expect("read the partition back");
    assert_eq!(
        high_watermark,
        (CONNECTIONS * REQUESTS_PER_CONNECTION) as i64
    );
    let mut next_request: HashMap<usize, usize> = HashMap::new();
    for record in batches.iter().flat_map(|b| &b.records) {
        let value = record.2.clone().expect("a value");
        let text = String::from_utf8(value.to_vec()).expect("utf-8 value");
        let (c, r) = text
            .strip_prefix('c')
            .and_then(|t| t.split_once(" r"))
            .and_then(|(c, r)| Some((c.parse::<usize>().ok()?, r.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("unexpected value {text:?}"));
        let expected = next_request.entry(c).or_insert(0);
        assert_eq!(r, *expected, "connection {c}: requests in order, each once");
        *expected += 1;
    }
    for c in 0..CONNECTIONS {
        assert_eq!(
            next_request.get(&c),
            Some(&REQUESTS_PER_CONNECTION),
            "connection {c}"
        );
    }
}
