//! Topic config `compression.type` through the wire, as Kafka 4.x defines it: `producer`
//! keeps the producer's batches byte for byte; any codec makes the broker recompress batches
//! in another codec on append, keeping every record (key, value, headers, timestamp, offset)
//! and the producer fields, with a valid CRC. Invalid values are INVALID_CONFIG; a
//! decompression bomb is refused with MESSAGE_TOO_LARGE.

mod support;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::{
    AlterConfigsRequest, CreateTopicsRequest, DescribeConfigsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use support::Broker;
use support::wire::{RawConn, plain_record, produce_request, topic_name};

/// Kafka's ConfigResource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// The codec bits of a batch's attributes, and where the attributes and CRC sit.
const CODEC_MASK: u8 = 0x07;
const ATTRIBUTES_AT: usize = 21;
const CRC_AT: usize = 17;
/// Values compress well (repetitive text) and are big enough to show it.
const VALUE_BYTES: usize = 1024;
const RECORDS: usize = 16;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn connect(broker: &Broker) -> RawConn {
    RawConn::connect(&broker.bootstrap()).unwrap_or_else(|e| panic!("{e}"))
}

/// CreateTopics v5 with one config; the topic's error code.
fn create(conn: &mut RawConn, topic: &str, config: Option<(&str, &str)>) -> i16 {
    let configs = config
        .map(|(k, v)| {
            vec![
                CreatableTopicConfig::default()
                    .with_name(sb(k))
                    .with_value(Some(sb(v))),
            ]
        })
        .unwrap_or_default();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(configs),
        ]);
    conn.call(&request, 5).topics[0].error_code
}

/// Records with keys, values, headers and distinct timestamps, at offsets 0..RECORDS.
fn records(tag: &str, producer: Option<(i64, i16, i32)>) -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            let mut value = format!("{tag}-value-{i}-").into_bytes();
            value.resize(VALUE_BYTES, b'a' + (i % 26) as u8);
            let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((-1, -1, -1));
            let mut headers = indexmap::IndexMap::new();
            headers.insert(sb("trace"), Some(Bytes::from(format!("h-{i}"))));
            headers.insert(sb("empty"), None);
            Record {
                key: (i % 3 != 0).then(|| Bytes::from(format!("{tag}-key-{i}"))),
                headers,
                producer_id,
                producer_epoch,
                // Consecutive from the base (-1 for no producer), or the encoder would split
                // the records into one batch each.
                sequence: base_sequence.wrapping_add(i as i32),
                ..plain_record(
                    i as i64,
                    1_700_000_000_000 + 7 * i as i64,
                    Bytes::from(value),
                )
            }
        })
        .collect()
}

fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).expect("encode test batch");
    buf.freeze()
}

/// Produce v9 of one batch; (error code, base offset).
fn produce(conn: &mut RawConn, topic: &str, batch: Bytes) -> (i16, i64) {
    let response = conn.call(&produce_request(topic, 0, batch, -1), 9);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetch v12 of everything from `offset`: the raw record bytes.
fn fetch(conn: &mut RawConn, topic: &str, offset: i64) -> Bytes {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(16 << 20),
                ]),
        ]);
    let response = conn.call(&request, 12);
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, 0, "fetch {topic} at {offset}");
    data.records.clone().unwrap_or_default()
}

/// Splits fetched bytes into whole batches, checking each one's CRC-32C independently.
fn batches(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let length = i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let (batch, rest) = bytes.split_at(12 + length);
        let stored = u32::from_be_bytes(batch[CRC_AT..CRC_AT + 4].try_into().unwrap());
        assert_eq!(crc32c::crc32c(&batch[ATTRIBUTES_AT..]), stored, "batch CRC");
        out.push(batch);
        bytes = rest;
    }
    out
}

fn codec_of(batch: &[u8]) -> u8 {
    batch[ATTRIBUTES_AT + 1] & CODEC_MASK
}

/// Every record as sent, at `base_offset` onwards.
fn assert_records_intact(fetched: &[u8], sent: &[Record], base_offset: i64) {
    let mut buf = Bytes::copy_from_slice(fetched);
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("fetched batches decode");
    let got: Vec<Record> = sets.into_iter().flat_map(|s| s.records).collect();
    assert_eq!(got.len(), sent.len(), "record count");
    for (i, (got, sent)) in got.iter().zip(sent).enumerate() {
        assert_eq!(got.offset, base_offset + i as i64, "offset of record {i}");
        assert_eq!(got.timestamp, sent.timestamp, "timestamp of record {i}");
        assert_eq!(got.key, sent.key, "key of record {i}");
        assert_eq!(got.value, sent.value, "value of record {i}");
        assert_eq!(got.headers, sent.headers, "headers of record {i}");
        assert_eq!(
            (got.producer_id, got.producer_epoch, got.sequence),
            (sent.producer_id, sent.producer_epoch, sent.sequence),
            "producer fields of record {i}"
        );
    }
}

#[test]
fn every_codec_recompresses_uncompressed_batches_and_keeps_every_record() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    for (name, codec) in [
        ("uncompressed", 0u8),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ] {
        let topic = format!("ct-{name}");
        assert_eq!(
            create(&mut conn, &topic, Some(("compression.type", name))),
            0
        );
        let sent = records(name, None);
        let batch = encode(&sent, Compression::None);
        assert_eq!(produce(&mut conn, &topic, batch.clone()), (0, 0), "{name}");
        let fetched = fetch(&mut conn, &topic, 0);
        let stored = batches(&fetched);
        assert_eq!(stored.len(), 1, "{name}");
        assert_eq!(codec_of(stored[0]), codec, "{name}: stored codec");
        if codec != 0 {
            assert!(
                stored[0].len() < batch.len() / 2,
                "{name}: {} bytes stored for {} sent",
                stored[0].len(),
                batch.len()
            );
        }
        assert_records_intact(&fetched, &sent, 0);
    }
}

#[test]
fn producer_keeps_the_producers_codec_and_bytes() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    assert_eq!(
        create(
            &mut conn,
            "ct-producer",
            Some(("compression.type", "producer"))
        ),
        0
    );
    assert_eq!(create(&mut conn, "ct-default", None), 0);
    for topic in ["ct-producer", "ct-default"] {
        let sent = records(topic, None);
        let batch = encode(&sent, Compression::Gzip);
        assert_eq!(produce(&mut conn, topic, batch.clone()), (0, 0));
        let fetched = fetch(&mut conn, topic, 0);
        // Offset and leader epoch are the broker's to set; from the magic byte on, every
        // byte is the producer's.
        assert_eq!(fetched.len(), batch.len(), "{topic}");
        assert!(
            fetched[16..] == batch[16..],
            "{topic}: batch bytes unchanged"
        );
        assert_eq!(codec_of(&fetched), 1, "{topic}");
        assert_records_intact(&fetched, &sent, 0);
    }
}

#[test]
fn compressed_batches_into_an_uncompressed_topic_come_back_uncompressed() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    assert_eq!(
        create(
            &mut conn,
            "ct-plain",
            Some(("compression.type", "uncompressed"))
        ),
        0
    );
    let mut offset = 0;
    for (compression, tag) in [
        (Compression::Gzip, "gzip"),
        (Compression::Snappy, "snappy"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ] {
        let sent = records(tag, None);
        assert_eq!(
            produce(&mut conn, "ct-plain", encode(&sent, compression)),
            (0, offset),
            "{tag}"
        );
        let fetched = fetch(&mut conn, "ct-plain", offset);
        let stored = batches(&fetched);
        assert_eq!(codec_of(stored[0]), 0, "{tag} batch stored uncompressed");
        // The stored batch is what an uncompressed producer would have sent.
        let plain = encode(&sent, Compression::None);
        assert!(
            stored[0][16..] == plain[16..],
            "{tag}: same bytes as sent uncompressed"
        );
        assert_records_intact(stored[0], &sent, offset);
        offset += RECORDS as i64;
    }
}

#[test]
fn idempotent_sequences_survive_recompression() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    assert_eq!(
        create(&mut conn, "ct-idem", Some(("compression.type", "zstd"))),
        0
    );
    let init = conn.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        4,
    );
    assert_eq!(init.error_code, 0);
    let producer = |seq| Some((init.producer_id.0, init.producer_epoch, seq));
    let first = records("first", producer(0));
    let second = records("second", producer(RECORDS as i32));
    assert_eq!(
        produce(&mut conn, "ct-idem", encode(&first, Compression::Gzip)),
        (0, 0)
    );
    let second_batch = encode(&second, Compression::None);
    assert_eq!(
        produce(&mut conn, "ct-idem", second_batch.clone()),
        (0, RECORDS as i64)
    );
    // A retry of the second batch is a duplicate: the original offsets, nothing appended.
    assert_eq!(
        produce(&mut conn, "ct-idem", second_batch),
        (0, RECORDS as i64)
    );
    // A gap in the sequence is still refused.
    let gap = records("gap", producer(3 * RECORDS as i32));
    assert_eq!(
        produce(&mut conn, "ct-idem", encode(&gap, Compression::None)).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    let fetched = fetch(&mut conn, "ct-idem", 0);
    assert!(batches(&fetched).iter().all(|b| codec_of(b) == 4));
    let all: Vec<Record> = first.into_iter().chain(second).collect();
    assert_records_intact(&fetched, &all, 0);
}

#[test]
fn invalid_values_are_invalid_config_everywhere() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    let invalid = ResponseError::InvalidConfig.code();
    for bad in ["brotli", "ZSTD", "", "none"] {
        assert_eq!(
            create(&mut conn, "ct-bad", Some(("compression.type", bad))),
            invalid,
            "CreateTopics compression.type={bad:?}"
        );
    }
    assert_eq!(create(&mut conn, "ct-alter", None), 0);
    let alter = |value: &str| {
        AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(sb("ct-alter"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(sb("compression.type"))
                        .with_value(Some(sb(value))),
                ]),
        ])
    };
    let incremental = |value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental::AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(sb("ct-alter"))
                .with_configs(vec![
                    incremental::AlterableConfig::default()
                        .with_name(sb("compression.type"))
                        .with_config_operation(0) // SET
                        .with_value(Some(sb(value))),
                ]),
        ])
    };
    assert_eq!(
        conn.call(&alter("gzip2"), 1).responses[0].error_code,
        invalid
    );
    assert_eq!(
        conn.call(&incremental("lz5"), 1).responses[0].error_code,
        invalid
    );
    assert_eq!(
        described(&mut conn, "ct-alter"),
        "producer",
        "refused values change nothing"
    );
    assert_eq!(
        conn.call(&incremental("snappy"), 1).responses[0].error_code,
        0
    );
    assert_eq!(described(&mut conn, "ct-alter"), "snappy");
    assert_eq!(conn.call(&alter("lz4"), 1).responses[0].error_code, 0);
    assert_eq!(described(&mut conn, "ct-alter"), "lz4");
}

/// DescribeConfigs' value of the topic's compression.type.
fn described(conn: &mut RawConn, topic: &str) -> String {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(sb(topic))
            .with_configuration_keys(Some(vec![sb("compression.type")])),
    ]);
    let response = conn.call(&request, 4);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "DescribeConfigs {topic}");
    let config = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == "compression.type")
        .expect("compression.type is described");
    config
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[test]
fn a_config_change_applies_to_later_appends() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    assert_eq!(create(&mut conn, "ct-change", None), 0);
    let before = records("before", None);
    assert_eq!(
        produce(&mut conn, "ct-change", encode(&before, Compression::None)),
        (0, 0)
    );
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental::AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(sb("ct-change"))
            .with_configs(vec![
                incremental::AlterableConfig::default()
                    .with_name(sb("compression.type"))
                    .with_config_operation(0)
                    .with_value(Some(sb("lz4"))),
            ]),
    ]);
    assert_eq!(conn.call(&request, 1).responses[0].error_code, 0);
    let after = records("after", None);
    let (code, _) = produce(&mut conn, "ct-change", encode(&after, Compression::None));
    assert_eq!(code, 0);
    let fetched = fetch(&mut conn, "ct-change", 0);
    let codecs: Vec<u8> = batches(&fetched).iter().map(|b| codec_of(b)).collect();
    assert_eq!(codecs, vec![0, 3], "stored batches stay; new ones are lz4");
    let all: Vec<Record> = before.into_iter().chain(after).collect();
    assert_records_intact(&fetched, &all, 0);
}

#[test]
fn a_decompression_bomb_is_refused_and_the_partition_keeps_working() {
    let broker = Broker::start();
    let mut conn = connect(&broker);
    // A zstd topic: a gzip batch is recompressed, and 40 MiB of zeros would recompress to a
    // few KiB that fit max.message.bytes, so only the decompression limit refuses it.
    assert_eq!(
        create(&mut conn, "ct-bomb", Some(("compression.type", "zstd"))),
        0
    );
    // 40 MiB of zeros: about 40 KiB of gzip, past the broker's 32 MiB decompression limit.
    let bomb_record = plain_record(0, 1_700_000_000_000, Bytes::from(vec![0u8; 40 << 20]));
    let bomb = encode(&[bomb_record], Compression::Gzip);
    assert!(bomb.len() < 64 * 1024, "bomb is {} bytes", bomb.len());
    let (code, _) = produce(&mut conn, "ct-bomb", bomb);
    assert_eq!(code, ResponseError::MessageTooLarge.code());
    // Undecodable gzip (CRC valid, so it reaches the codec) is CORRUPT_MESSAGE.
    let mut garbage = encode(&records("g", None), Compression::Gzip).to_vec();
    let last = garbage.len() - 1;
    garbage[70..last].fill(0x5a);
    let crc = crc32c::crc32c(&garbage[ATTRIBUTES_AT..]);
    garbage[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    let (code, _) = produce(&mut conn, "ct-bomb", Bytes::from(garbage));
    assert_eq!(code, ResponseError::CorruptMessage.code());
    // Nothing was appended; the next good batch gets offset 0.
    let sent = records("ok", None);
    assert_eq!(
        produce(&mut conn, "ct-bomb", encode(&sent, Compression::Gzip)),
        (0, 0)
    );
    assert_records_intact(&fetch(&mut conn, "ct-bomb", 0), &sent, 0);
}
