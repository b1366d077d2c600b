//! Codec and validation hot paths on the broker's produce and fetch paths:
//! - decoding a Produce request (header + body) with `kafka-protocol`, as dispatch does;
//! - writing FetchResponse framing with `protocol::fetch_encoder` (the record bytes
//!   themselves are spliced, so only the framing is CPU work);
//! - `storage::batch::validate_batches` (sizes, counts, CRC-32C) on 16 KiB and 1 MiB payloads,
//!   and raw CRC-32C.
//!
//! Run: `cargo bench --bench codec`. Throughput is reported in bytes of record data.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice::client::{Acks, produce_request};
use sluice::protocol::fetch_encoder::{FetchFraming, PartitionHeader};
use sluice::storage::batch::{build_test_batch, validate_batches};
use std::hint::black_box;

/// Payload sizes: the Java producer's default batch and a large batch.
const PAYLOAD_BYTES: &[usize] = &[16 * 1024, 1024 * 1024];
/// Record value size used to fill the payloads.
const RECORD_BYTES: usize = 1024;

/// One payload of `bytes` (rounded to whole 1 KiB records) as a single v2 batch.
fn payload(bytes: usize) -> Vec<u8> {
    let count = (bytes / (RECORD_BYTES + 8)).max(1) as i32;
    build_test_batch(count, RECORD_BYTES, 1_700_000_000_000, None)
}

/// A Produce request frame body (header + request), as the broker receives it.
fn produce_frame(batch: &[u8], version: i16) -> Bytes {
    let request = produce_request(
        "bench-topic",
        0,
        Bytes::copy_from_slice(batch),
        Acks::All,
        30_000,
    );
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ApiKey::Produce.request_header_version(version))
        .expect("encode header");
    request.encode(&mut buf, version).expect("encode request");
    buf.freeze()
}

fn produce_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("produce_request_decode");
    for &bytes in PAYLOAD_BYTES {
        let batch = payload(bytes);
        for version in [7i16, 9] {
            let frame = produce_frame(&batch, version);
            g.throughput(Throughput::Bytes(batch.len() as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("v{version}"), bytes),
                &frame,
                |b, frame| {
                    b.iter(|| {
                        let mut buf = frame.clone();
                        let header = RequestHeader::decode(
                            &mut buf,
                            ApiKey::Produce.request_header_version(version),
                        )
                        .expect("header");
                        let request = ProduceRequest::decode(&mut buf, version).expect("body");
                        black_box((header, request))
                    })
                },
            );
        }
    }
    g.finish();
}

fn fetch_framing(c: &mut Criterion) {
    let mut g = c.benchmark_group("fetch_framing");
    let topic_id = uuid::Uuid::nil();
    for partitions in [1usize, 16] {
        for version in [11i16, 12] {
            let framing = FetchFraming::new(version);
            g.throughput(Throughput::Elements(partitions as u64));
            g.bench_function(BenchmarkId::new(format!("v{version}"), partitions), |b| {
                let mut buf = BytesMut::with_capacity(4096);
                b.iter(|| {
                    buf.clear();
                    buf.put_i32(0); // length prefix, patched by the server
                    framing.begin(&mut buf, 7, 0, 0, 1);
                    framing.begin_topic(&mut buf, "bench-topic", &topic_id, partitions);
                    for p in 0..partitions {
                        let header = PartitionHeader {
                            partition_index: p as i32,
                            error_code: 0,
                            high_watermark: 1_000_000,
                            last_stable_offset: 1_000_000,
                            log_start_offset: 0,
                            aborted_transactions: None,
                        };
                        framing.begin_partition(&mut buf, &header, 1024 * 1024);
                        framing.end_partition(&mut buf);
                    }
                    framing.end_topic(&mut buf);
                    framing.end(&mut buf);
                    black_box(buf.len())
                })
            });
        }
    }
    g.finish();
}

fn batch_validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate_batches");
    for &bytes in PAYLOAD_BYTES {
        let batch = payload(bytes);
        g.throughput(Throughput::Bytes(batch.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(bytes), &batch, |b, batch| {
            b.iter(|| black_box(validate_batches(black_box(batch)).expect("valid")))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("crc32c");
    for &bytes in PAYLOAD_BYTES {
        let data = vec![0x5au8; bytes];
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_with_input(BenchmarkId::from_parameter(bytes), &data, |b, data| {
            b.iter(|| black_box(crc32c::crc32c(black_box(data))))
        });
    }
    g.finish();
}

criterion_group!(benches, produce_decode, fetch_framing, batch_validation);
criterion_main!(benches);
