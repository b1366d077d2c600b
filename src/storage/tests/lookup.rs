//! Fetch lookups against a model of the log: for every offset and for byte limits on and
//! around every batch boundary, a read starts at the batch holding the offset, ends on the
//! last whole batch within the limit and within the segment, and says where the next read
//! starts. Batch sizes straddle the index interval, so some batches have their own index
//! entry and some sit between entries; checked across segment rolls, truncation, a clean
//! reopen (indexes loaded), a crash (indexes rebuilt) and entries that name the wrong batch.

use std::rc::Rc;

use super::support::{batch, crash, open, small_config};
use crate::storage::batch::validate_batches;
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
/// in its segment, bytes, next offset).
fn expected(model: &[Appended], bases: &[i64], offset: i64, max_bytes: u64) -> (u64, u64, i64) {
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
    for &(b, l, size) in &model[i + 1..] {
        if segment_of(b) != seg || bytes + size > max_bytes {
            break;
        }
        bytes += size;
        next = l + 1;
    }
    (position, bytes, next)
}

/// Every offset, with byte limits on, just under and just over each of the next few batch
/// boundaries (and below one batch).
async fn check_reads(log: &PartitionLog, model: &[Appended]) {
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3, "the reads cross segment rolls: {bases:?}");
    assert_eq!(log.written_end_offset(), model.last().unwrap().1 + 1);
    for (i, &(base, last, _)) in model.iter().enumerate() {
        let mut limits = vec![1u64];
        let mut sum = 0;
        for b in &model[i..(i + 5).min(model.len())] {
            sum += b.2;
            limits.extend([sum - 1, sum, sum + 1]);
        }
        for offset in [base, last] {
            for &max in &limits {
                let s = log.read(offset, max as u32).await.unwrap();
                let (position, bytes, next) = expected(model, &bases, offset, max);
                let what = format!("offset {offset}, max {max}");
                assert_eq!(s.regions.len(), 1, "{what}");
                assert_eq!(s.regions[0].position, position, "{what}");
                assert_eq!(s.total_bytes, bytes, "{what}");
                assert_eq!(s.next_offset, next, "{what}");
                let served = s.regions[0].read_to_vec().await.unwrap();
                let batches = validate_batches(&served).unwrap();
                assert!(batches[0].header.base_offset <= offset, "{what}");
                assert_eq!(
                    s.record_count,
                    (next - batches[0].header.base_offset) as u64
                );
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
