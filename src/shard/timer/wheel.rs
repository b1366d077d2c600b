//! A hierarchical timing wheel (Varghese & Lauck, the structure behind Kafka's purgatory
//! `TimingWheel`/`SystemTimer`): deadlines in whole ticks, O(1) insert and O(1) cancel,
//! `advance(now)` fires what is due in deadline order.
//!
//! Owns: the pending entries of one shard (or one feature on a shard), their placement in
//! levels of `SLOTS_PER_LEVEL` slots, and the cascade from coarse to fine levels. Must not:
//! know about clocks, wakers or tasks (the caller converts time to ticks and decides what a
//! fired value means), nor be shared between threads (it is `!Send`, no locks).
//!
//! Placement (as in the Linux and tokio wheels): an entry due at tick `when` sits on the
//! level of the highest base-64 digit in which `when` differs from `elapsed`, in the slot
//! named by that digit of `when`. So every entry of a level shares all higher digits with
//! `elapsed`, a level's slots never wrap, and the next slot with work is one `trailing_zeros`
//! on that level's occupancy bitmap. A slot of level > 0 is cascaded (its entries placed again,
//! now on lower levels) when `elapsed` reaches its first tick; a slot of level 0 holds entries
//! of exactly one tick and fires them.
//!
//! Memory: one `Entry<T>` per pending entry in a slab (`size_of` is checked in the tests:
//! 40 bytes for an `Option<Waker>` payload, 32 for a `u64`), 520 bytes per level in use, and the
//! slab keeps its peak size (freed entries are reused, not returned).

use std::marker::PhantomData;

/// log2 of `SLOTS_PER_LEVEL`: one level is one base-64 digit of a tick number.
pub const SLOT_BITS: u32 = 6;
/// Slots per level; 64 so that a level's occupancy is one `u64` bitmap.
pub const SLOTS_PER_LEVEL: usize = 1 << SLOT_BITS;
/// Levels the wheel may grow to (created on demand, the first time an entry needs one).
pub const LEVELS_MAX: usize = 6;
/// Ticks the levels span: 64^6 = 2^36 ticks, about 795 days at 1 ms a tick. A deadline
/// beyond it waits on an overflow list and is placed again when the horizon reaches it: it
/// costs one extra pass then, and still never fires early.
pub const HORIZON_TICKS: u64 = 1 << (SLOT_BITS as u64 * LEVELS_MAX as u64);
/// The longest delay the features on this wheel need (delayed delivery: 30 days at 1 ms),
/// which the levels must cover without the overflow list.
pub const DELAY_TICKS_NEEDED_MAX: u64 = 30 * 24 * 3_600 * 1_000;
const _: () = assert!(DELAY_TICKS_NEEDED_MAX < HORIZON_TICKS / 2);
/// Largest `entries_max` a wheel accepts: entry indexes are `u32`, with one value for "none".
pub const ENTRIES_MAX_LIMIT: usize = (u32::MAX - 1) as usize;

const SLOT_MASK: u64 = SLOTS_PER_LEVEL as u64 - 1;
const NIL: u32 = u32::MAX;
/// `Entry::bucket` of a slab entry on the free list.
const BUCKET_FREE: u16 = u16::MAX;
/// `Entry::bucket` of an entry beyond the horizon.
const BUCKET_OVERFLOW: u16 = u16::MAX - 1;
const _: () = assert!(LEVELS_MAX * SLOTS_PER_LEVEL < BUCKET_OVERFLOW as usize);

/// Names one inserted entry. Stale keys (the entry fired or was cancelled) are recognised by
/// their generation, so `cancel` and `get_mut` on them are no-ops. A generation wraps after
/// 2^32 reuses of one slab slot, far beyond the lifetime of any key held by a waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// `insert` refused: the wheel already holds its `entries_max`.
#[derive(Debug, thiserror::Error)]
#[error("timing wheel full: {0} entries pending")]
pub struct WheelFull(pub usize);

/// One slab slot: an entry in a bucket's doubly linked list, or a link of the free list.
struct Entry<T> {
    /// Deadline in ticks (never earlier than `elapsed` was at insert).
    when: u64,
    /// Next entry of the same bucket, or the next free slot.
    next: u32,
    prev: u32,
    generation: u32,
    /// `level * SLOTS_PER_LEVEL + slot`, `BUCKET_OVERFLOW` or `BUCKET_FREE`.
    bucket: u16,
    /// `T::default()` while the slot is free (taken out when the entry fires or is
    /// cancelled): no `Option` around it, which would cost 8 more bytes for a waker.
    value: T,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

struct Level {
    /// Bit `s` set when slot `s` holds at least one entry.
    occupied: u64,
    slots: [List; SLOTS_PER_LEVEL],
}

/// What `advance` must do next, and at which tick.
#[derive(Clone, Copy)]
enum Due {
    Slot { level: usize, slot: usize },
    Overflow,
}

/// The wheel. `T` is what fires (a waker, a record reference); see the module comment.
/// `T: Default` stands for "nothing" in free slab slots.
pub struct TimingWheel<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
    entries_max: usize,
    levels: Vec<Level>,
    overflow: List,
    /// Every entry due before this tick has fired.
    elapsed: u64,
    /// Single-threaded by design: keeps the wheel on the shard that created it.
    _not_send: PhantomData<*const ()>,
}

impl<T: Default> TimingWheel<T> {
    /// An empty wheel at tick 0 that holds at most `entries_max` pending entries.
    pub fn new(entries_max: usize) -> Self {
        TimingWheel {
            entries: Vec::new(),
            free_head: NIL,
            len: 0,
            entries_max: entries_max.min(ENTRIES_MAX_LIMIT),
            levels: Vec::new(),
            overflow: EMPTY,
            elapsed: 0,
            _not_send: PhantomData,
        }
    }

    /// Pending entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first tick not yet processed: everything due earlier has fired.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Levels created so far (they are added on demand, up to `LEVELS_MAX`).
    pub fn levels_in_use(&self) -> usize {
        self.levels.len()
    }

    /// Bytes one pending entry takes in the slab.
    pub const fn entry_bytes() -> usize {
        std::mem::size_of::<Entry<T>>()
    }

    /// Adds `value`, due at tick `when` (a tick already past is due at the next `advance`).
    pub fn insert(&mut self, when: u64, value: T) -> Result<TimerKey, WheelFull> {
        if self.len >= self.entries_max {
            return Err(WheelFull(self.len));
        }
        let when = when.max(self.elapsed);
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let entry = &mut self.entries[index as usize];
            self.free_head = entry.next;
            entry.when = when;
            entry.value = value;
            index
        } else {
            let index = self.entries.len() as u32;
            self.entries.push(Entry {
                when,
                next: NIL,
                prev: NIL,
                generation: 0,
                bucket: BUCKET_FREE,
                value,
            });
            index
        };
        self.len += 1;
        self.place(index);
        Ok(TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        })
    }

    /// Removes a pending entry and returns its value; `None` if it already fired or was
    /// cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.live(key)?;
        self.unlink(key.index);
        Some(self.free(key.index))
    }

    /// Whether `key` is still pending.
    pub fn contains(&self, key: TimerKey) -> bool {
        self.live(key).is_some()
    }

    /// The value of a pending entry.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.live(key)?;
        Some(&mut self.entries[key.index as usize].value)
    }

    /// The deadline (in ticks) of a pending entry.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.live(key).map(|e| e.when)
    }

    /// The earliest tick at which `advance` has work: a firing or a cascade. Never later
    /// than the earliest pending deadline, so a driver that sleeps until it misses nothing.
    pub fn next_tick(&self) -> Option<u64> {
        self.next_due().map(|(tick, _)| tick)
    }

    /// Fires every entry due at or before tick `now`, in deadline order (entries due on
    /// the same tick in the order they reached level 0), handing each key and value to
    /// `fire`. Returns how many fired. Cost: O(fired + cascaded + levels per step), not
    /// O(ticks elapsed): idle stretches are skipped through the occupancy bitmaps.
    pub fn advance(&mut self, now: u64, mut fire: impl FnMut(TimerKey, T)) -> usize {
        let mut fired = 0;
        while let Some((tick, due)) = self.next_due() {
            if tick > now {
                break;
            }
            debug_assert!(tick >= self.elapsed, "a slot behind elapsed");
            self.elapsed = tick.max(self.elapsed);
            match due {
                Due::Slot { level: 0, slot } => {
                    let mut index = self.take_slot(0, slot);
                    while index != NIL {
                        let entry = &self.entries[index as usize];
                        debug_assert!(entry.when <= now, "fired early");
                        let next = entry.next;
                        let key = TimerKey {
                            index,
                            generation: entry.generation,
                        };
                        let value = self.free(index);
                        fire(key, value);
                        fired += 1;
                        index = next;
                    }
                }
                Due::Slot { level, slot } => {
                    let head = self.take_slot(level, slot);
                    self.place_all(head);
                }
                Due::Overflow => self.replace_overflow(),
            }
        }
        // Nothing left is due by `now`: later inserts start from the next tick. Entries on
        // the levels stay valid (none is due before it); the overflow list is placed again
        // if the step enters a new turn of the horizon, where its entries may now belong.
        let target = now.saturating_add(1);
        if target > self.elapsed {
            let new_turn = (target ^ self.elapsed) >= HORIZON_TICKS;
            self.elapsed = target;
            if new_turn {
                self.replace_overflow();
            }
        }
        fired
    }

    fn live(&self, key: TimerKey) -> Option<&Entry<T>> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation && e.bucket != BUCKET_FREE)
    }

    /// The earliest slot (or the overflow list) with work. Levels are scanned from the top
    /// so that on a tie a cascade runs before the level-0 slot it may feed.
    fn next_due(&self) -> Option<(u64, Due)> {
        let mut best: Option<(u64, Due)> = None;
        for level in (0..self.levels.len()).rev() {
            let shift = SLOT_BITS as u64 * level as u64;
            let current = (self.elapsed >> shift) & SLOT_MASK;
            let occupied = self.levels[level].occupied;
            debug_assert_eq!(occupied & !(u64::MAX << current), 0, "slot behind elapsed");
            let pending = occupied & (u64::MAX << current);
            if pending == 0 {
                continue;
            }
            let slot = u64::from(pending.trailing_zeros());
            let level_span = 1u64 << (shift + u64::from(SLOT_BITS));
            let tick = (self.elapsed & !(level_span - 1)) + (slot << shift);
            if best.is_none_or(|(t, _)| tick < t) {
                let slot = slot as usize;
                best = Some((tick, Due::Slot { level, slot }));
            }
        }
        if best.is_none() && self.overflow.head != NIL {
            // The overflow waits for the horizon's next turn; all levels are empty by then.
            let turn = (self.elapsed | (HORIZON_TICKS - 1)).checked_add(1)?;
            best = Some((turn, Due::Overflow));
        }
        best
    }

    /// Puts a linked-out entry into the bucket its deadline calls for, given `elapsed`.
    fn place(&mut self, index: u32) {
        let when = self.entries[index as usize].when;
        let differs = (when ^ self.elapsed) | SLOT_MASK;
        let level = ((63 - differs.leading_zeros()) / SLOT_BITS) as usize;
        if level >= LEVELS_MAX {
            self.link(index, BUCKET_OVERFLOW);
            return;
        }
        while self.levels.len() <= level {
            self.levels.push(Level {
                occupied: 0,
                slots: [EMPTY; SLOTS_PER_LEVEL],
            });
        }
        let slot = ((when >> (SLOT_BITS as usize * level)) & SLOT_MASK) as usize;
        self.link(index, (level * SLOTS_PER_LEVEL + slot) as u16);
    }

    fn list_mut(&mut self, bucket: u16) -> &mut List {
        if bucket == BUCKET_OVERFLOW {
            return &mut self.overflow;
        }
        let (level, slot) = split(bucket);
        &mut self.levels[level].slots[slot]
    }

    /// Appends an entry to a bucket (FIFO within a bucket).
    fn link(&mut self, index: u32, bucket: u16) {
        let tail = self.list_mut(bucket).tail;
        let entry = &mut self.entries[index as usize];
        entry.prev = tail;
        entry.next = NIL;
        entry.bucket = bucket;
        if tail == NIL {
            self.list_mut(bucket).head = index;
        } else {
            self.entries[tail as usize].next = index;
        }
        self.list_mut(bucket).tail = index;
        if bucket != BUCKET_OVERFLOW {
            let (level, slot) = split(bucket);
            self.levels[level].occupied |= 1 << slot;
        }
    }

    fn unlink(&mut self, index: u32) {
        let Entry {
            prev, next, bucket, ..
        } = self.entries[index as usize];
        if prev == NIL {
            self.list_mut(bucket).head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.list_mut(bucket).tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if bucket != BUCKET_OVERFLOW && self.list_mut(bucket).head == NIL {
            let (level, slot) = split(bucket);
            self.levels[level].occupied &= !(1 << slot);
        }
    }

    /// Empties one slot and returns the head of its former list.
    fn take_slot(&mut self, level: usize, slot: usize) -> u32 {
        let lvl = &mut self.levels[level];
        lvl.occupied &= !(1 << slot);
        std::mem::replace(&mut lvl.slots[slot], EMPTY).head
    }

    /// Returns a linked-out entry's slot to the free list (its key goes stale) and its value.
    fn free(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.bucket = BUCKET_FREE;
        entry.next = self.free_head;
        entry.prev = NIL;
        self.free_head = index;
        self.len -= 1;
        std::mem::take(&mut entry.value)
    }

    /// Places every overflow entry again, after `elapsed` entered a new turn of the horizon.
    fn replace_overflow(&mut self) {
        let head = std::mem::replace(&mut self.overflow, EMPTY).head;
        self.place_all(head);
    }

    /// Places again every entry of a list taken out of its bucket (a cascade).
    fn place_all(&mut self, mut index: u32) {
        while index != NIL {
            let next = self.entries[index as usize].next;
            self.place(index);
            index = next;
        }
    }
}

fn split(bucket: u16) -> (usize, usize) {
    let bucket = bucket as usize;
    (bucket / SLOTS_PER_LEVEL, bucket % SLOTS_PER_LEVEL)
}
