//! Fuzz target: any byte string as a request frame (size prefix removed) through
//! `server::dispatch::decode_request`, the frame → header → body path of `server::dispatch`.
//! Must not panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The broker's allocator: lying array counts cost address space, not an abort.
#[global_allocator]
static ALLOCATOR: sluice::protocol::alloc_guard::LazyHugeAllocator =
    sluice::protocol::alloc_guard::LazyHugeAllocator;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(decoded) = sluice::server::dispatch::decode_request(frame) {
        // A decoded request names a served API and version.
        let (min, max) =
            sluice::server::registry::supported_range(decoded.api).expect("decoded API is served");
        assert!(min <= decoded.version && decoded.version <= max);
    }
});
