//! Unit tests of the open-file budget: LRU eviction, reopen, sync before close.

use super::*;

async fn segment(dir: &Path, n: usize) -> Rc<SegmentFiles> {
    SegmentFiles::create(
        dir.join(format!("{n}.log")),
        dir.join(format!("{n}.index")),
        dir.join(format!("{n}.timeindex")),
    )
    .await
    .unwrap()
}

#[compio::test]
async fn the_budget_closes_the_least_recently_used_and_reopens_on_use() {
    let dir = tempfile::tempdir().unwrap();
    set_limit(MIN_OPEN_FILE_BUDGET);
    let before = stats();
    // Sealed: two descriptors each, so the budget holds half as many segments as fds.
    let per_budget = MIN_OPEN_FILE_BUDGET / 2;
    let mut all = Vec::new();
    for n in 0..per_budget + 8 {
        let files = segment(dir.path(), n).await;
        files.close_indexes();
        all.push(files);
    }
    let after = stats();
    assert!(after.open_files <= after.limit, "{after:?}");
    assert!(
        after.evictions - before.evictions >= 8,
        "{before:?} {after:?}"
    );
    assert!(!all[0].is_open(), "the coldest segment was closed");
    assert!(all[per_budget + 7].is_open(), "the newest is open");
    let file = all[0].log().await.unwrap();
    drop(file);
    assert!(all[0].is_open());
    assert_eq!(stats().reopens - after.reopens, 1);
    assert!(stats().open_files <= stats().limit);
    drop(all);
    assert_eq!(
        stats().open_files,
        0,
        "dropped segments give their budget back"
    );
    set_limit(DEFAULT_OPEN_FILE_BUDGET);
}

#[compio::test]
async fn synced_files_go_first_and_unsynced_ones_are_synced_before_they_close() {
    let dir = tempfile::tempdir().unwrap();
    set_limit(MIN_OPEN_FILE_BUDGET);
    let dirty = segment(dir.path(), 0).await;
    dirty.close_indexes();
    dirty.set_unsynced(true);
    let mut others = Vec::new();
    for n in 1..MIN_OPEN_FILE_BUDGET {
        let files = segment(dir.path(), n).await;
        files.close_indexes();
        others.push(files);
    }
    assert!(
        dirty.is_open(),
        "the coldest, but unsynced: clean files went first"
    );
    for files in &others {
        files.set_unsynced(true);
    }
    let before = stats();
    others.push(segment(dir.path(), MIN_OPEN_FILE_BUDGET).await);
    assert!(
        !dirty.is_open(),
        "no clean file left: the coldest is synced and closed"
    );
    assert!(stats().evictions > before.evictions);
    // Its descriptors count until the sync completes; then they are given back.
    loop {
        let (closing, closed) = BUDGET.with(|b| {
            let b = b.borrow();
            (b.closing_fds, Rc::clone(&b.closed))
        });
        if closing == 0 {
            break;
        }
        closed.listen().await;
    }
    assert!(stats().open_files <= stats().limit);
    assert_eq!(dirty.take_writeback_error(), None);
    set_limit(DEFAULT_OPEN_FILE_BUDGET);
}
