//! Lifecycle: SIGTERM while producers are writing loses no acknowledged record, and the next
//! start finds a clean shutdown and skips the recovery scan.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::records::Compression;
use sluice::client::{
    Acks, Client, ConnectionConfig, Consumer, ConsumerConfig, NewTopic, StartOffset, encode_batch,
    produce_request,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "lifecycle";
const PARTITIONS: i32 = 4;
const RECORDS_PER_BATCH: usize = 20;

/// (partition, base offset) -> the values of that acknowledged batch.
type Acked = BTreeMap<(i32, i64), Vec<String>>;

/// Produces acks=all batches until the broker goes away, recording every acknowledged one.
fn produce_until_refused(
    bootstrap: String,
    writer: usize,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut client) = Client::connect_with(&bootstrap, ConnectionConfig::default()) else {
        return;
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let partition = (n % PARTITIONS as u64) as i32;
        let values: Vec<String> = (0..RECORDS_PER_BATCH)
            .map(|i| format!("w{writer}-b{n}-r{i}"))
            .collect();
        let records: Vec<(Option<Bytes>, Option<Bytes>)> = values
            .iter()
            .map(|v| (None, Some(Bytes::from(v.clone()))))
            .collect();
        let Ok(batch) = encode_batch(&records, Compression::None, 1_700_000_000_000) else {
            return;
        };
        let request = produce_request(TOPIC, partition, batch, Acks::All, 10_000);
        let Ok(conn) = client.leader_connection(TOPIC, partition) else {
            return;
        };
        let Ok(response) = conn.call::<ProduceRequest>(&request) else {
            return; // the broker stopped: nothing more can be acknowledged
        };
        for topic in response.responses {
            for p in topic.partition_responses {
                if p.error_code == 0 {
                    acked
                        .lock()
                        .unwrap()
                        .insert((p.index, p.base_offset), values.clone());
                }
            }
        }
        n += 1;
    }
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_record_and_restart_skips_recovery() {
    let mut broker = support::Broker::start();
    let mut client = Client::connect(&broker.bootstrap()).expect("connect");
    client
        .create_topic(&NewTopic {
            name: TOPIC.into(),
            partitions: PARTITIONS,
            replication_factor: 1,
            configs: vec![],
        })
        .expect("create topic");

    let acked = Arc::new(Mutex::new(Acked::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (b, a, s) = (broker.bootstrap(), acked.clone(), stop.clone());
            std::thread::spawn(move || produce_until_refused(b, w, a, s))
        })
        .collect();
    // Let the load build up, then stop the broker in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = broker.terminate().expect("broker was running");
    assert!(status.success(), "SIGTERM exit status: {status}");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer thread");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 200,
        "only {} batches were acknowledged before SIGTERM",
        acked.len()
    );

    let log_path = broker.data_dir.with_file_name("restart.log");
    broker.log_path = Some(log_path.clone());
    broker.spawn();

    // Every acknowledged batch is there, at its offset, with its values.
    let mut consumer = Consumer::new(
        Client::connect(&broker.bootstrap()).expect("reconnect"),
        ConsumerConfig::default(),
    );
    for p in 0..PARTITIONS {
        consumer
            .assign(TOPIC, p, StartOffset::Earliest)
            .expect("assign");
    }
    let expected: BTreeMap<(i32, i64), String> = acked
        .iter()
        .flat_map(|(&(p, base), values)| {
            values
                .iter()
                .enumerate()
                .map(move |(i, v)| ((p, base + i as i64), v.clone()))
        })
        .collect();
    let mut found: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while found.len() < expected.len() && Instant::now() < deadline {
        for r in consumer.poll().expect("poll") {
            let value =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            found.insert((r.partition, r.offset), value);
        }
    }
    for (key, value) in &expected {
        assert_eq!(
            found.get(key),
            Some(value),
            "acknowledged record at {key:?} lost or changed"
        );
    }

    // The restart found a clean shutdown on every partition: no recovery scan.
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        // "sluice ready" is logged once every shard has opened its partitions.
        if log.contains("sluice ready") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let opened: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("partitions opened"))
        .collect();
    assert!(!opened.is_empty(), "no start-up summary in the log:\n{log}");
    let clean_total: usize = opened
        .iter()
        .filter_map(|l| l.split("clean_shutdown=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(clean_total, PARTITIONS as usize, "log:\n{log}");
    assert!(
        opened
            .iter()
            .all(|l| l.contains("recovered=0") && l.contains("offline=0")),
        "a partition ran recovery after a clean shutdown:\n{log}"
    );
}
