//! Completed writes to a small file, counted against what a completed sync covers: the
//! index files of a segment and a partition's state file. A count, not a flag, so that a
//! sync that started before a write completed never marks that write durable; and a
//! `syncfs` of the whole filesystem can cover writes made before it started as well as
//! the file's own fdatasync can (decision 0020, session-22 amendment).

use std::cell::Cell;

#[derive(Debug, Default)]
pub struct SyncCount {
    writes: Cell<u64>,
    synced: Cell<u64>,
}

impl SyncCount {
    /// Counts a write that has completed (its bytes are in the page cache).
    pub fn note_write(&self) {
        self.writes.set(self.writes.get() + 1);
    }

    /// Completed writes so far: what a sync that starts now covers.
    pub fn so_far(&self) -> u64 {
        self.writes.get()
    }

    /// A completed sync covered the first `covered` writes (`so_far` taken before it
    /// started). Never moves back: an older sync finishing late covers less.
    pub fn note_synced(&self, covered: u64) {
        self.synced.set(self.synced.get().max(covered));
    }

    /// Whether a completed write is not yet covered by a completed sync.
    pub fn is_dirty(&self) -> bool {
        self.synced.get() < self.writes.get()
    }
}

#[cfg(test)]
mod tests {
    use super::SyncCount;

    #[test]
    fn a_sync_covers_only_the_writes_completed_before_it_started() {
        let c = SyncCount::default();
        assert!(!c.is_dirty());
        c.note_write();
        let covered = c.so_far();
        c.note_write(); // completes while the sync runs
        c.note_synced(covered);
        assert!(c.is_dirty());
        c.note_synced(c.so_far());
        assert!(!c.is_dirty());
        c.note_synced(covered); // an older sync finishing late
        assert!(!c.is_dirty());
    }
}
