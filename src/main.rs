/// Large allocations are mapped lazily: see `protocol::alloc_guard` (allocation bombs in
/// request decoding must not abort the broker).
#[global_allocator]
static ALLOCATOR: sluice::protocol::alloc_guard::LazyHugeAllocator =
    sluice::protocol::alloc_guard::LazyHugeAllocator;

fn main() {
    std::process::exit(sluice::cli::main());
}
