//! Fetch lookups against a model of the log: for every offset and for byte limits on and
//! around every batch boundary, a read starts at the batch holding the offset, ends on the
//! last whole batch within the limit and within the segment, and says where the next read
//! starts. Batch sizes straddle the index interval, so some batches have their own index
//! entry and some sit between entries; checked across segment rolls, truncation, a clean
//! reopen (indexes loaded), a crash (indexes rebuilt) and entries that name the wrong batch.
//! Index entries whose batch this process appended right after the previous entry's answer
//! from memory (decision 0032): checked against the files after compaction (offset gaps)
//! too, and counted: a sequential consumer of large batches reads no headers.

use std::rc::Rc;

use kafka_protocol::records::Compression;

use super::compaction::{compact_config, keyed, seal_and_flush, throttle};
use super::support::{batch, crash, open, small_config};
use crate::storage::batch::{BatchHeader, verify_crc};
use crate::storage::log::PartitionLog;

/// One appended batch as the test saw it: (base offset, last offset, bytes).
type Appended = (i64, i64, u64);

/// Batch sizes from about 90 bytes to about 1.7 KiB against an index interval of 256 and
/// 4 KiB segments: runs of small batches between entries, large batches with their own.
async fn append_mixed(log: &PartitionLog, model: &mut Vec<Appended>, n: usize, seed: usize) {
    for i in 0..n {
        let k = i * 7 + seed;
        let value_len = [20, 150, 400, 30][k % 4];
        let b = batch(1 + (k % 4) as i32, value_len, 1000 + k as i64);
        let size = b.len() as u64;
        let out = log.append(b, false, 0).await.unwrap();
        model.push((out.base_offset, out.last_offset, size));
    }
}

/// The answer a read at `offset` with `max_bytes` must give, from the model: (position
/// in its segment, bytes, next offset). Where compaction left an offset gap after the last
/// batch served, any offset up to the next batch's base is a right next offset (the
/// consumer's next fetch lands on that batch either way): the third field is the highest.
fn expected(
    model: &[Appended],
    bases: &[i64],
    offset: i64,
    max_bytes: u64,
) -> (u64, u64, i64, i64) {
    let segment_of = |o: i64| bases.iter().rposition(|&b| b <= o).unwrap();
    let i = model
        .iter()
        .position(|&(b, l, _)| b <= offset && offset <= l)
        .unwrap();
    let seg = segment_of(model[i].0);
    let position: u64 = model[..i]
        .iter()
        .filter(|b| segment_of(b.0) == seg)
        .map(|b| b.2)
        .sum();
    let (mut bytes, mut next) = (model[i].2, model[i].1 + 1);
    let mut next_max = next;
    for &(b, l, size) in &model[i + 1..] {
        if segment_of(b) != seg {
            break;
        }
        if bytes + size > max_bytes {
            next_max = b;
            break;
        }
        bytes += size;
        next = l + 1;
        next_max = next;
    }
    (position, bytes, next, next_max)
}

/// Every offset, with byte limits on, just under and just over each of the next few batch
/// boundaries (and below one batch).
async fn check_reads(log: &PartitionLog, model: &[Appended]) {
    check_reads_over(log, model, 4, &[]).await;
}

/// `check_reads` over a log of at least `min_segments` segments, not starting at the
/// batches without records whose base offsets are `empty`.
async fn check_reads_over(
    log: &PartitionLog,
    model: &[Appended],
    min_segments: usize,
    empty: &[i64],
) {
    let bases = log.segment_base_offsets();
    assert!(
        bases.len() >= min_segments,
        "the reads cross segment rolls: {bases:?}"
    );
    assert_eq!(log.written_end_offset(), model.last().unwrap().1 + 1);
    for (i, &(base, last, _)) in model.iter().enumerate() {
        if empty.contains(&base) {
            // A fetch reads on past a batch without records (tests/compaction.rs).
            continue;
        }
        let mut limits = vec![1u64];
        let mut sum = 0;
        for b in &model[i..(i + 5).min(model.len())] {
            sum += b.2;
            limits.extend([sum - 1, sum, sum + 1]);
        }
        for offset in [base, last] {
            for &max in &limits {
                let s = log.read(offset, max as u32).await.unwrap();
                let (position, bytes, next, next_max) = expected(model, &bases, offset, max);
                let what = format!("offset {offset}, max {max}");
                assert_eq!(s.regions.len(), 1, "{what}");
                assert_eq!(s.regions[0].position, position, "{what}");
                assert_eq!(s.total_bytes, bytes, "{what}");
                assert!(
                    (next..=next_max).contains(&s.next_offset),
                    "{what}: next offset {} not in {next}..={next_max}",
                    s.next_offset
                );
                let next = s.next_offset;
                let served = s.regions[0].read_to_vec().await.unwrap();
                let headers = batches_in(&served);
                assert!(headers[0].base_offset <= offset, "{what}");
                assert_eq!(s.record_count, (next - headers[0].base_offset) as u64);
            }
        }
    }
}

#[compio::test]
async fn reads_find_batches_and_boundaries_across_rolls_truncation_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let mut model = Vec::new();
    append_mixed(&log, &mut model, 60, 0).await;
    check_reads(&log, &model).await;

    // Truncation inside a segment, then appends at the new end.
    let cut = model[41].0 + 1;
    let log = log.truncate_to(cut).await.unwrap();
    model.retain(|b| b.1 < cut);
    append_mixed(&log, &mut model, 25, 3).await;
    check_reads(&log, &model).await;

    // Clean reopen: the indexes are loaded from disk.
    log.close().await.unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    check_reads(&log, &model).await;

    // Crash: recovery rebuilds what it does not trust.
    append_mixed(&log, &mut model, 10, 5).await;
    crash(log).await;
    let log = open(dir.path(), small_config()).await.unwrap();
    check_reads(&log, &model).await;
}

/// Index files whose every entry but the last names the previous indexed batch's position:
/// the file still decodes (positions grow, all inside the log), the clean open's check of
/// the last entry passes, and each other entry points at a real batch header, just not the
/// one ending at the entry's offset. Reads must notice.
#[compio::test]
async fn index_entries_naming_the_wrong_batch_are_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let mut model = Vec::new();
    append_mixed(&log, &mut model, 60, 1).await;
    let bases = log.segment_base_offsets();
    log.close().await.unwrap();
    let part = dir.path().join("t-0");
    let mut shifted_files = 0;
    for base in &bases {
        let path = part.join(format!("{base:020}.index"));
        let good = std::fs::read(&path).unwrap();
        if good.len() < 24 {
            continue;
        }
        let entries: Vec<&[u8]> = good.chunks_exact(8).collect();
        let mut shifted = Vec::new();
        for pair in entries[..entries.len() - 1].windows(2) {
            shifted.extend_from_slice(&pair[1][..4]);
            shifted.extend_from_slice(&pair[0][4..]);
        }
        // The last entry stays right: a clean open checks it (and the tail after it).
        shifted.extend_from_slice(entries[entries.len() - 1]);
        std::fs::write(&path, &shifted).unwrap();
        shifted_files += 1;
    }
    assert!(shifted_files > 2);
    let log = open(dir.path(), small_config()).await.unwrap();
    check_reads(&log, &model).await;
    let log: Rc<PartitionLog> = log;
    log.close().await.unwrap();
}

/// The CRC-checked batch headers in `bytes`, whole batches only (empty ones included).
fn batches_in(mut bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = BatchHeader::parse_stored_at(bytes, 0).unwrap();
        let (whole, rest) = bytes.split_at(h.size_bytes());
        verify_crc(whole, &h, 0).unwrap();
        out.push(h);
        bytes = rest;
    }
    out
}

/// The log as its files hold it: every batch of every segment, in order, and the base
/// offsets of the batches without records.
fn model_from_files(log: &PartitionLog, dir: &std::path::Path) -> (Vec<Appended>, Vec<i64>) {
    let (mut model, mut empty) = (Vec::new(), Vec::new());
    for base in log.segment_base_offsets() {
        let bytes = std::fs::read(dir.join(format!("t-0/{base:020}.log"))).unwrap();
        for h in batches_in(&bytes) {
            model.push((h.base_offset, h.last_offset(), h.size_bytes() as u64));
            if h.record_count == 0 {
                empty.push(h.base_offset);
            }
        }
    }
    (model, empty)
}

/// Log reads made by lookups so far, over every segment.
fn lookup_reads(log: &PartitionLog) -> u64 {
    log.segments
        .borrow()
        .iter()
        .map(|s| s.lookup_reads.get())
        .sum()
}

/// Batches longer than the index interval each get an entry, and this process appended
/// them back to back: a consumer makes no log read for its lookups, on sealed segments and
/// at the active segment's tail alike. After a reopen the sealed segments' entries come
/// from files, which prove nothing: reads there take header reads again.
#[compio::test]
async fn fetches_of_batches_this_process_appended_read_no_headers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let mut model = Vec::new();
    for i in 0..40 {
        let b = batch(1 + i % 3, 300, 1000 + i64::from(i));
        let size = b.len() as u64;
        let out = log.append(b, false, 0).await.unwrap();
        model.push((out.base_offset, out.last_offset, size));
    }
    check_reads(&log, &model).await;
    let reads = reads_of(&log, &model).await;
    assert_eq!(reads.len(), 160);
    assert!(reads.iter().all(|&r| r == 0), "{reads:?}");
    log.close().await.unwrap();
    let log = open(dir.path(), small_config()).await.unwrap();
    let reads = reads_of(&log, &model).await;
    assert!(reads[..20].iter().all(|&r| r > 0), "{reads:?}");
}

/// Log reads each lookup made, for reads at each batch's first and last offset with byte
/// limits below one batch, about two and past everything.
async fn reads_of(log: &PartitionLog, model: &[Appended]) -> Vec<u64> {
    let mut reads = Vec::new();
    for &(base, last, _) in model {
        for (offset, max) in [(base, 1), (last, 700), (base, 1500), (last, 100_000)] {
            let before = lookup_reads(log);
            let s = log.read(offset, max).await.unwrap();
            assert!(s.total_bytes > 0);
            reads.push(lookup_reads(log) - before);
        }
    }
    reads
}

/// The cleaner rewrites segments back to back with offset gaps where records went: a read
/// must still start each batch at its own first offset and stop at real boundaries.
#[compio::test]
async fn reads_after_compaction_match_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config()).await.unwrap();
    // One record per batch, longer than the index interval; 7 keys over 60 batches leave
    // runs of kept batches with gaps between them.
    for i in 0..60 {
        let key = if i % 5 == 0 {
            format!("keep-{i}")
        } else {
            format!("key-{}", i % 7)
        };
        let record = [(key, Some("v".repeat(300)))];
        log.append(keyed(&record, 1_000, Compression::None), false, 1_000)
            .await
            .unwrap();
    }
    seal_and_flush(&log, 1_000).await;
    let stats = log.clean(10_000, &mut throttle(u64::MAX)).await.unwrap();
    assert!(stats.is_some_and(|s| s.records_removed > 0));
    let (model, empty) = model_from_files(&log, dir.path());
    assert!(
        model.windows(2).any(|w| w[1].0 > w[0].1 + 1),
        "compaction left offset gaps"
    );
    check_reads_over(&log, &model, 2, &empty).await;
}

/// A follower copies a compacted leader's batches as they are, offset gaps included: the
/// batch after a gap must not claim to start at the offset after the previous one.
#[compio::test]
async fn a_batch_after_an_offset_gap_does_not_follow_its_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let segment = crate::storage::segment::Segment::create(dir.path(), 100)
        .await
        .unwrap();
    let mut position = 0u64;
    // Bases 100, 101, 102, then 110 after a gap, then 111: each batch above the interval.
    for base in [100i64, 101, 102, 110, 111] {
        let mut b = crate::storage::batch::build_test_batch(1, 300, 1000, None);
        crate::storage::batch::patch_base_offset(&mut b, base);
        let h = BatchHeader::parse_stored_at(&b, 0).unwrap();
        segment.record_batch(&h, position, 256);
        position += h.size_bytes() as u64;
    }
    let index = segment.offset_index.borrow();
    let bits: Vec<bool> = (0..index.len())
        .map(|i| index.follows_previous(i))
        .collect();
    assert_eq!(bits, [true, true, false, true], "{:?}", index.entries());
}
