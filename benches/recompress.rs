//! What `compression.type` recompression costs on append: `storage::recompress` on one
//! 16 KiB batch of 1 KiB records (the Java producer's default batch.size), per codec,
//! both ways:
//! - `compress/<codec>`: an uncompressed producer batch into a topic with that codec
//!   (walk the records, compress, rewrite length, codec bits and CRC);
//! - `decompress/<codec>`: a batch in that codec into an `uncompressed` topic.
//!
//! Record values are log-line-like text (words from a small vocabulary, numbers), which
//! compresses about as well as typical JSON events; all-zero values would flatter every codec.
//! Throughput is in bytes of *uncompressed* batch, so the numbers compare with the
//! zero-copy append (`cargo bench --bench append`).
//!
//! Run: `cargo bench --bench recompress`.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice::storage::codec::{
    CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD, codec_name,
};
use sluice::storage::recompress::{MAX_DECOMPRESSED_BATCH_BYTES, recompress_batches};
use std::hint::black_box;

const BATCH_BYTES: usize = 16 * 1024;
const RECORD_BYTES: usize = 1024;
const CODECS: [u8; 4] = [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD];
const WORDS: [&str; 16] = [
    "user",
    "order",
    "created",
    "updated",
    "payment",
    "status",
    "ok",
    "failed",
    "region",
    "eu-west-1",
    "us-east-2",
    "latency_ms",
    "item",
    "quantity",
    "price",
    "session",
];

/// A log-line-like value of `len` bytes, deterministic from `seed`.
fn value(seed: u64, len: usize) -> Bytes {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let word = WORDS[(state >> 60) as usize];
        out.push_str(&format!("\"{word}\":{},", (state >> 40) % 100_000));
    }
    out.truncate(len);
    Bytes::from(out)
}

/// One uncompressed v2 batch of about `BATCH_BYTES`, in 1 KiB records.
fn plain_batch() -> BytesMut {
    let count = BATCH_BYTES / (RECORD_BYTES + 16);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(value(i as u64, RECORD_BYTES)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode bench batch");
    buf
}

fn recompress(c: &mut Criterion) {
    let plain = plain_batch();
    let mut g = c.benchmark_group("recompress_16k");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    for codec in CODECS {
        let packed = recompress_batches(&plain, codec, None, MAX_DECOMPRESSED_BATCH_BYTES)
            .expect("compress")
            .expect("codec differs");
        eprintln!(
            "{}: {} bytes -> {} bytes",
            codec_name(codec),
            plain.len(),
            packed.len()
        );
        g.bench_with_input(
            BenchmarkId::new("compress", codec_name(codec)),
            &plain,
            |b, p| {
                b.iter(|| {
                    recompress_batches(black_box(p), codec, None, MAX_DECOMPRESSED_BATCH_BYTES)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("decompress", codec_name(codec)),
            &packed,
            |b, p| {
                b.iter(|| {
                    recompress_batches(black_box(p), CODEC_NONE, None, MAX_DECOMPRESSED_BATCH_BYTES)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, recompress);
criterion_main!(benches);
