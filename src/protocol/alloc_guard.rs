//! Defence against allocation bombs in request decoding.
//!
//! The codec crate (kafka-protocol 0.18) pre-allocates arrays with `Vec::with_capacity(n)`
//! where `n` is read off the wire before any element is decoded (upstream pull requests
//! #152/#161/#200 fix it; none is released yet). A 12-byte request can then ask for hundreds
//! of GB; the allocator refuses and Rust aborts the process. Two layers stop that here:
//!
//! * [`LazyHugeAllocator`]: allocations of [`HUGE_ALLOCATION_BYTES`] or more are mapped with
//!   `MAP_NORESERVE`, so a lying count costs address space, not memory — the decode then
//!   fails on missing bytes and the mapping is returned untouched. Smaller allocations go to
//!   the system allocator unchanged.
//! * [`decode_guarded`]: a panic inside the decoder (any malformed input the crate does not
//!   expect) becomes a decode error instead of aborting the broker.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Allocations at least this large are mapped lazily. No legitimate allocation of the
/// broker comes near it (request frames are at most `max_request_bytes`, 100 MiB default).
pub const HUGE_ALLOCATION_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct LazyHugeAllocator;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_ALLOCATION_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: delegates to `System` or to anonymous private mappings that are page aligned
// (which satisfies any alignment up to a page) and zero filled; `dealloc` and `realloc`
// recognise huge blocks by the same size test on the layout they were allocated with.
unsafe impl GlobalAlloc for LazyHugeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: an anonymous mapping with no address hint.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return std::ptr::null_mut();
            }
            return ptr.cast();
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: anonymous mappings are zero filled.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: `ptr` came from the mmap above with this size.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
            return;
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` and the alignment form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: both sides are `System` blocks.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: allocate, copy the common prefix, free the old block.
        unsafe {
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new_ptr
        }
    }
}

thread_local! {
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs a guarded decode: the process panic hook lets such a panic
/// unwind (it becomes a decode error) instead of aborting the broker.
pub fn in_guarded_decode() -> bool {
    DECODING.with(Cell::get)
}

/// Runs a decoder; a panic inside it is returned as an error string.
pub fn decode_guarded<T, E: std::fmt::Display>(
    decode: impl FnOnce() -> Result<T, E>,
) -> Result<T, String> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DECODING.with(|d| d.set(false));
        }
    }
    DECODING.with(|d| d.set(true));
    let _reset = Reset;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the decoder panicked on malformed input".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_lazy_allocation_costs_no_memory_and_is_returned() {
        let a = LazyHugeAllocator;
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        // SAFETY: allocate, touch one byte, free with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null(), "a 64 GiB lazy mapping must succeed");
            *p = 7;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn a_panicking_decoder_becomes_an_error() {
        let r: Result<(), String> = decode_guarded(|| -> Result<(), String> { panic!("boom") });
        assert!(r.is_err());
        assert!(!in_guarded_decode());
        let ok: Result<u8, String> = decode_guarded(|| Ok::<u8, String>(3));
        assert_eq!(ok, Ok(3));
    }
}
