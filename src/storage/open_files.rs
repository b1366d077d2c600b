//! The shard's open-file budget (issue 19, point 1): which segment files have a descriptor,
//! bounded per shard thread, the least recently used closed first. A segment's files
//! (`SegmentFiles`) open lazily on first use and reopen after an eviction; an active segment
//! that keeps taking appends stays at the recent end and is never closed under it, while an
//! idle partition's active segment is closed like any sealed one (30,000 partitions must fit
//! under a 20,000-descriptor limit). Eviction prefers files whose writes are all synced; a
//! file with unsynced writes is fdatasync'ed before its descriptor closes (a write-back
//! error is reported only on a descriptor open when it happened, so closing first could
//! hide a lost write), its descriptors counted as *closing* meanwhile, and a failed sync is
//! handed to the segment's next sync. An open that finds the budget full of closing files
//! waits for them: cold partitions pay for their reopen, hot ones never do.
//!
//! The budget is per thread because a shard is one thread and every `Segment` lives on its
//! shard (`!Send`); a log compaction pass on the shard opens a sealed segment through the
//! same `SegmentFiles` and so through the same budget. Threads that never configure it
//! (tests, tools) get `DEFAULT_OPEN_FILE_BUDGET`. Must not decide anything about segments
//! beyond having their files open.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use compio::fs::{File, OpenOptions};

use super::error::StorageError;
use super::notify::Event;

/// Descriptors one open segment can hold: the log, its `Send` duplicate for fetch regions,
/// and the two index files while index entries are being written (closed once sealed).
pub const MAX_FDS_PER_OPEN_SEGMENT: usize = 4;
/// Descriptors a thread that never set a budget may keep open for segments.
pub const DEFAULT_OPEN_FILE_BUDGET: usize = 4096 * MAX_FDS_PER_OPEN_SEGMENT;
/// The smallest budget accepted: enough segments for an append, a seal, a read and a
/// compaction pass to all have their files at once.
pub const MIN_OPEN_FILE_BUDGET: usize = 16 * MAX_FDS_PER_OPEN_SEGMENT;
/// How many entries from the cold end an eviction looks at to find one without unsynced
/// writes before it syncs and closes the coldest instead.
pub const MAX_EVICTION_SCAN: usize = 64;
/// Share of the budget (1 / this) that files being synced before they close may hold.
pub const CLOSING_SHARE_DIVISOR: usize = 4;

const NO_SLOT: u32 = u32::MAX;

/// The budget's counters, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFileStats {
    /// Descriptors held for segment files now.
    pub open_files: u64,
    /// The budget, in descriptors.
    pub limit: u64,
    /// Segments whose files were closed to stay within the budget.
    pub evictions: u64,
    /// Segments opened again after an eviction (or opened lazily for the first time).
    pub reopens: u64,
}

struct Node {
    prev: u32,
    next: u32,
    fds: u32,
    files: Weak<SegmentFiles>,
}

/// An intrusive LRU list over a slab: touching, inserting and removing allocate nothing
/// once the slab has grown to the number of open segments.
struct Budget {
    limit: usize,
    open_fds: usize,
    nodes: Vec<Node>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    evictions: u64,
    reopens: u64,
    /// Descriptors of evicted files still being synced before they close.
    closing_fds: usize,
    /// Descriptors promised to opens in flight (so concurrent opens do not all take the
    /// same room).
    reserved_fds: usize,
    /// Notified whenever closing files are closed.
    closed: Rc<Event>,
}

/// What an eviction took off the list.
enum Victim {
    /// An entry whose segment is gone (nothing to close).
    Gone,
    /// Synced: close now.
    Clean(Rc<SegmentFiles>),
    /// Holds unsynced writes: sync, then close.
    Dirty(Rc<SegmentFiles>),
}

thread_local! {
    static BUDGET: RefCell<Budget> = RefCell::new(Budget::new(DEFAULT_OPEN_FILE_BUDGET));
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget {
            limit: limit.max(MIN_OPEN_FILE_BUDGET),
            open_fds: 0,
            nodes: Vec::new(),
            free: Vec::new(),
            head: NO_SLOT,
            tail: NO_SLOT,
            evictions: 0,
            reopens: 0,
            closing_fds: 0,
            reserved_fds: 0,
            closed: Rc::new(Event::default()),
        }
    }

    /// Over the limit with `reserve` more descriptors about to be opened.
    fn over(&self, reserve: usize) -> bool {
        self.open_fds + self.closing_fds + self.reserved_fds + reserve > self.limit
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let n = &self.nodes[slot as usize];
            (n.prev, n.next)
        };
        match prev {
            NO_SLOT => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NO_SLOT => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old_head = self.head;
        {
            let n = &mut self.nodes[slot as usize];
            n.prev = NO_SLOT;
            n.next = old_head;
        }
        match old_head {
            NO_SLOT => self.tail = slot,
            h => self.nodes[h as usize].prev = slot,
        }
        self.head = slot;
    }

    fn insert(&mut self, files: Weak<SegmentFiles>, fds: u32) -> u32 {
        let node = Node {
            prev: NO_SLOT,
            next: NO_SLOT,
            fds,
            files,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.open_fds += fds as usize;
        self.push_front(slot);
        slot
    }

    fn touch(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    fn resize(&mut self, slot: u32, fds: u32) {
        let node = &mut self.nodes[slot as usize];
        self.open_fds = self.open_fds - node.fds as usize + fds as usize;
        node.fds = fds;
    }

    fn remove(&mut self, slot: u32) {
        self.unlink(slot);
        let node = &mut self.nodes[slot as usize];
        self.open_fds -= node.fds as usize;
        node.fds = 0;
        node.files = Weak::new();
        self.free.push(slot);
    }

    /// While over the limit (with `reserve`), takes the coldest entry without unsynced
    /// writes off the list (never `keep`); failing that, the coldest, to be synced first,
    /// while closing files hold less than their share of the budget.
    fn pop_victim(&mut self, keep: u32, reserve: usize) -> Option<Victim> {
        if !self.over(reserve) {
            return None;
        }
        let mut slot = self.tail;
        for _ in 0..MAX_EVICTION_SCAN {
            if slot == NO_SLOT || slot == keep {
                break;
            }
            let node = &self.nodes[slot as usize];
            let prev = node.prev;
            match node.files.upgrade() {
                None => {
                    self.remove(slot);
                    return Some(Victim::Gone);
                }
                Some(files) if files.unsynced.get() => slot = prev,
                Some(files) => return Some(Victim::Clean(self.evict(slot, files))),
            }
        }
        let coldest = self.tail;
        if coldest == NO_SLOT
            || coldest == keep
            || self.closing_fds >= self.limit / CLOSING_SHARE_DIVISOR
        {
            return None;
        }
        match self.nodes[coldest as usize].files.upgrade() {
            None => {
                self.remove(coldest);
                Some(Victim::Gone)
            }
            Some(files) => Some(Victim::Dirty(self.evict(coldest, files))),
        }
    }

    fn evict(&mut self, slot: u32, files: Rc<SegmentFiles>) -> Rc<SegmentFiles> {
        self.remove(slot);
        files.slot.set(NO_SLOT);
        self.evictions += 1;
        files
    }
}

/// Sets this thread's budget in descriptors (at least `MIN_OPEN_FILE_BUDGET`) and closes
/// the coldest files if it is already exceeded.
pub fn set_limit(fds: usize) {
    BUDGET.with(|b| b.borrow_mut().limit = fds.max(MIN_OPEN_FILE_BUDGET));
    evict_over_limit(NO_SLOT, 0);
}

pub fn stats() -> OpenFileStats {
    BUDGET.with(|b| {
        let b = b.borrow();
        OpenFileStats {
            open_files: b.open_fds as u64,
            limit: b.limit as u64,
            evictions: b.evictions,
            reopens: b.reopens,
        }
    })
}

/// Closes the coldest segments' files until the budget holds with `reserve` more
/// descriptors (or only `keep`, the entry being used, is left, or closing files hold their
/// share of the budget).
fn evict_over_limit(keep: u32, reserve: usize) {
    loop {
        // The victim is closed outside the budget's borrow: dropping files never re-enters.
        let victim = BUDGET.with(|b| b.borrow_mut().pop_victim(keep, reserve));
        match victim {
            None => return,
            Some(Victim::Gone) => continue,
            Some(Victim::Clean(files)) => drop(files.open.borrow_mut().take()),
            Some(Victim::Dirty(files)) => {
                let Some(handles) = files.open.borrow_mut().take() else {
                    continue;
                };
                let fds = handles.fds() as usize;
                BUDGET.with(|b| b.borrow_mut().closing_fds += fds);
                compio::runtime::spawn(sync_then_close(files, handles, fds)).detach();
            }
        }
    }
}

/// fdatasyncs an evicted file's unsynced writes, then closes it; a failure is kept for
/// the segment's next sync to report.
async fn sync_then_close(files: Rc<SegmentFiles>, handles: OpenHandles, fds: usize) {
    if let Err(e) = handles.log.sync_data().await {
        *files.writeback_error.borrow_mut() = Some(e.to_string());
    }
    drop(handles);
    let closed = BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        b.closing_fds -= fds;
        Rc::clone(&b.closed)
    });
    closed.notify();
}

/// Room promised to one open in flight; given back when the open is done (installed or
/// failed).
struct Reservation(usize);

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = BUDGET.try_with(|b| b.borrow_mut().reserved_fds -= self.0);
    }
}

/// Waits until `reserve` more descriptors fit the budget, closing cold files (and waiting
/// for files being synced before they close), and reserves them. Gives up waiting when
/// nothing is closing: the budget then runs over rather than stopping the shard.
async fn make_room(reserve: usize) -> Reservation {
    loop {
        evict_over_limit(NO_SLOT, reserve);
        let (over, closing, closed) = BUDGET.with(|b| {
            let b = b.borrow();
            (b.over(reserve), b.closing_fds, Rc::clone(&b.closed))
        });
        if !over || closing == 0 {
            BUDGET.with(|b| b.borrow_mut().reserved_fds += reserve);
            return Reservation(reserve);
        }
        let listen = closed.listen();
        // Re-checked after registering, so a close in between is not missed.
        if BUDGET.with(|b| b.borrow().closing_fds) != closing {
            continue;
        }
        listen.await;
    }
}

/// Closes files freed by a sync; called after fdatasyncs so an over-full budget shrinks back.
pub fn enforce() {
    evict_over_limit(NO_SLOT, 0);
}

struct OpenHandles {
    log: File,
    shared_log_fd: Arc<OwnedFd>,
    index: Option<File>,
    time_index: Option<File>,
}

impl OpenHandles {
    fn fds(&self) -> u32 {
        2 + u32::from(self.index.is_some()) + u32::from(self.time_index.is_some())
    }
}

/// The three files of one segment and, when open, their descriptors (counted in the
/// thread's budget).
pub struct SegmentFiles {
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub time_index_path: PathBuf,
    /// The log's path again, shareable with fetch regions that cross shards.
    pub shared_log_path: Arc<Path>,
    open: RefCell<Option<OpenHandles>>,
    slot: Cell<u32>,
    /// The log file has writes no completed fdatasync covers: evicted last, synced first.
    unsynced: Cell<bool>,
    /// A sync made when the files were evicted failed: the next sync reports it.
    writeback_error: RefCell<Option<String>>,
    /// The segment left the log (compaction swapped a cleaned one in under the same name,
    /// or retention deleted it): descriptors still open serve the readers that hold them,
    /// but the path must never be reopened, it may name another segment's file now.
    retired: Cell<bool>,
    /// The log file may not exist yet: a new partition's first segment is created on first
    /// use (an append), so creating a partition makes no file (issue 19: 100,000 partitions).
    create_on_open: Cell<bool>,
}

/// Which files an open may create.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create or truncate (a new segment).
    Fresh,
    /// The file must exist (a segment's log).
    Existing,
    /// Created when missing, kept when present (index files, rebuilt when absent).
    CreateIfMissing,
}

async fn open_rw(path: &Path, mode: Mode) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(mode != Mode::Existing)
        .truncate(mode == Mode::Fresh)
        .open(path)
        .await
        .map_err(|e| StorageError::io(path, e))
}

fn duplicate(log: &File, path: &Path) -> Result<Arc<OwnedFd>, StorageError> {
    log.as_fd()
        .try_clone_to_owned()
        .map(Arc::new)
        .map_err(|e| StorageError::io(path, e))
}

impl SegmentFiles {
    fn new(log_path: PathBuf, index_path: PathBuf, time_index_path: PathBuf) -> SegmentFiles {
        SegmentFiles {
            shared_log_path: Arc::from(log_path.as_path()),
            log_path,
            index_path,
            time_index_path,
            open: RefCell::new(None),
            slot: Cell::new(NO_SLOT),
            unsynced: Cell::new(false),
            writeback_error: RefCell::new(None),
            retired: Cell::new(false),
            create_on_open: Cell::new(false),
        }
    }

    /// Creates (or truncates) the three files and keeps them open: a new segment is about
    /// to take appends.
    pub async fn create(
        log_path: PathBuf,
        index_path: PathBuf,
        time_index_path: PathBuf,
    ) -> Result<Rc<SegmentFiles>, StorageError> {
        let files = Rc::new(SegmentFiles::new(log_path, index_path, time_index_path));
        let log = open_rw(&files.log_path, Mode::Fresh).await?;
        let index = open_rw(&files.index_path, Mode::Fresh).await?;
        let time_index = open_rw(&files.time_index_path, Mode::Fresh).await?;
        let shared_log_fd = duplicate(&log, &files.log_path)?;
        files.install(OpenHandles {
            log,
            shared_log_fd,
            index: Some(index),
            time_index: Some(time_index),
        });
        Ok(files)
    }

    /// An existing segment's files, opened on first use.
    pub fn existing(
        log_path: PathBuf,
        index_path: PathBuf,
        time_index_path: PathBuf,
    ) -> Rc<SegmentFiles> {
        Rc::new(SegmentFiles::new(log_path, index_path, time_index_path))
    }

    /// A new segment's files, created when first opened (usually by the first append). The
    /// directory entry this creates is made durable by the log's first data sync
    /// (`PartitionLog::ensure_dir_durable`).
    pub fn lazy(
        log_path: PathBuf,
        index_path: PathBuf,
        time_index_path: PathBuf,
    ) -> Rc<SegmentFiles> {
        let files = SegmentFiles::new(log_path, index_path, time_index_path);
        files.create_on_open.set(true);
        Rc::new(files)
    }

    /// False while a lazily created log file has not been opened (and so made) yet.
    pub fn log_created(&self) -> bool {
        !self.create_on_open.get()
    }

    fn install(self: &Rc<Self>, handles: OpenHandles) {
        let fds = handles.fds();
        *self.open.borrow_mut() = Some(handles);
        let slot = BUDGET.with(|b| b.borrow_mut().insert(Rc::downgrade(self), fds));
        self.slot.set(slot);
        evict_over_limit(slot, 0);
    }

    /// Marks the entry most recently used; false when the files are closed.
    fn touch(&self) -> bool {
        if self.open.borrow().is_none() {
            return false;
        }
        let slot = self.slot.get();
        BUDGET.with(|b| b.borrow_mut().touch(slot));
        true
    }

    async fn ensure_open(self: &Rc<Self>) -> Result<(), StorageError> {
        if self.touch() {
            return Ok(());
        }
        self.refuse_if_retired()?;
        let _reservation = make_room(2).await;
        if self.touch() {
            return Ok(());
        }
        self.refuse_if_retired()?;
        let mode = if self.create_on_open.get() {
            Mode::CreateIfMissing
        } else {
            Mode::Existing
        };
        let log = open_rw(&self.log_path, mode).await?;
        self.create_on_open.set(false);
        let shared_log_fd = duplicate(&log, &self.log_path)?;
        // Another task may have reopened it meanwhile: then these handles just close.
        if self.touch() {
            return Ok(());
        }
        BUDGET.with(|b| b.borrow_mut().reopens += 1);
        self.install(OpenHandles {
            log,
            shared_log_fd,
            index: None,
            time_index: None,
        });
        Ok(())
    }

    /// The log file (opened again if the budget closed it).
    pub async fn log(self: &Rc<Self>) -> Result<File, StorageError> {
        self.ensure_open().await?;
        let held = self.open.borrow().as_ref().map(|h| h.log.clone());
        match held {
            Some(log) => Ok(log),
            // Evicted between the open and here only if the budget is smaller than what
            // is in use at once; open once more for this operation.
            None => {
                self.refuse_if_retired()?;
                open_rw(&self.log_path, Mode::Existing).await
            }
        }
    }

    /// Marks the segment gone from the log: its path is never opened again (see `retired`).
    pub fn retire(&self) {
        self.retired.set(true);
    }

    fn refuse_if_retired(&self) -> Result<(), StorageError> {
        if self.retired.get() {
            return Err(StorageError::io(
                &self.log_path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "segment was replaced or deleted while being read; fetch again",
                ),
            ));
        }
        Ok(())
    }

    /// The log as a `Send` descriptor for fetch regions.
    pub async fn shared_log_fd(self: &Rc<Self>) -> Result<Arc<OwnedFd>, StorageError> {
        self.ensure_open().await?;
        let fd = self
            .open
            .borrow()
            .as_ref()
            .map(|h| Arc::clone(&h.shared_log_fd));
        match fd {
            Some(fd) => Ok(fd),
            None => duplicate(&self.log().await?, &self.log_path),
        }
    }

    /// The offset index file (`time = false`) or the time index file, for writing entries.
    pub async fn index(self: &Rc<Self>, time: bool) -> Result<File, StorageError> {
        self.ensure_open().await?;
        let held = self.open.borrow().as_ref().and_then(|h| {
            if time {
                h.time_index.clone()
            } else {
                h.index.clone()
            }
        });
        if let Some(file) = held {
            return Ok(file);
        }
        let path = if time {
            &self.time_index_path
        } else {
            &self.index_path
        };
        let file = open_rw(path, Mode::CreateIfMissing).await?;
        let fds = {
            let mut open = self.open.borrow_mut();
            open.as_mut().map(|h| {
                let held = if time {
                    &mut h.time_index
                } else {
                    &mut h.index
                };
                held.get_or_insert_with(|| file.clone());
                h.fds()
            })
        };
        if let Some(fds) = fds {
            let slot = self.slot.get();
            BUDGET.with(|b| b.borrow_mut().resize(slot, fds));
            evict_over_limit(slot, 0);
        }
        Ok(file)
    }

    /// Closes the index files: a sealed segment writes no more index entries.
    pub fn close_indexes(&self) {
        let fds = {
            let mut open = self.open.borrow_mut();
            open.as_mut().map(|h| {
                h.index = None;
                h.time_index = None;
                h.fds()
            })
        };
        if let Some(fds) = fds {
            let slot = self.slot.get();
            BUDGET.with(|b| b.borrow_mut().resize(slot, fds));
        }
    }

    /// Whether the segment's files hold a descriptor now.
    pub fn is_open(&self) -> bool {
        self.open.borrow().is_some()
    }

    /// Notes whether the log has writes no completed fdatasync covers (such files are
    /// never evicted).
    pub fn set_unsynced(&self, unsynced: bool) {
        self.unsynced.set(unsynced);
    }

    /// The failure of a sync made when these files were evicted, once.
    pub fn take_writeback_error(&self) -> Option<String> {
        self.writeback_error.borrow_mut().take()
    }
}

impl Drop for SegmentFiles {
    fn drop(&mut self) {
        let slot = self.slot.get();
        if slot != NO_SLOT {
            // `try_with`: the thread's budget may already be gone at thread exit.
            let _ = BUDGET.try_with(|b| b.borrow_mut().remove(slot));
        }
    }
}

#[cfg(test)]
#[path = "open_files_tests.rs"]
mod tests;
