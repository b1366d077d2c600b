//! Fuzz target: any byte string as the records of a Produce request through
//! `storage::validate_batches`. Must not panic; every batch it accepts lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = sluice::storage::validate_batches(data) {
        assert!(!batches.is_empty());
        for b in &batches {
            assert!(b.position + b.size_bytes() <= data.len());
        }
    }
});
