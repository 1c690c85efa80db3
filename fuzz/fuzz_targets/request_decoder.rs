//! Fuzzes the Kafka request decoder with arbitrary frames: whatever the
//! bytes, decoding returns an error or a request, and never panics, aborts
//! or allocates without bound (the server's allocator is installed, as in
//! `weir serve`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: weir_kafka::GuardedAllocator = weir_kafka::GuardedAllocator;

fuzz_target!(|frame: &[u8]| {
    let _ = weir_kafka::decode_request(frame);
});
