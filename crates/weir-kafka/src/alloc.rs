//! A global allocator that keeps a few hostile bytes from aborting the
//! server. The `kafka-protocol` decoders reserve `Vec::with_capacity(count)`
//! with the count read off the wire before decoding any element, so a
//! 14-byte Metadata request claiming 2^31 topics asks for ~150 GB up front;
//! the system allocator refuses, and Rust aborts the process. This
//! allocator serves requests of 1 GiB and more (which Weir itself never
//! makes: its largest buffers are bounded by `request_bytes_max`) from
//! `mmap` with `MAP_NORESERVE`, which Linux grants as address space without
//! backing it (under the default overcommit mode 0). The decoder then fails
//! at the end of the frame having touched only what the frame really held,
//! the memory is unmapped, and the connection gets a decode error like any
//! other malformed frame.
//!
//! This is the one module of the crate with `unsafe` beyond a statvfs(3)
//! call (`apis/log_dirs.rs`), each use with a `SAFETY` note. Binaries that serve Kafka install it with
//! `#[global_allocator]`.

#![allow(
    unsafe_code,
    reason = "a global allocator is unsafe by nature; see the module docs"
)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large come from reserved-but-unbacked memory.
const HUGE_BYTES: usize = 1 << 30;
/// `mmap` returns page-aligned memory; larger alignments go to the system.
const PAGE_BYTES: usize = 4096;

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct GuardedAllocator;

fn is_huge(layout: Layout) -> bool {
    layout.size() >= HUGE_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: every method upholds `GlobalAlloc`'s contract: huge layouts are
// served by `mmap` (page-aligned, at least `size` bytes, zeroed, or null on
// failure) and released by `munmap` with the same size, which `dealloc`
// recognizes by the same `is_huge` test on the same layout; everything else
// is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_huge(layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping takes no pointer arguments
        // that must be valid; failure is reported as MAP_FAILED.
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
            std::ptr::null_mut()
        } else {
            ptr.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout) {
            // SAFETY: `ptr` came from our `mmap` of exactly `layout.size()`
            // bytes (the caller passes the layout it allocated with).
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` forms a valid layout with
        // `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(layout) && !is_huge(new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: allocate, copy the smaller size, free the old block, each
        // with the layouts they were made with.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
