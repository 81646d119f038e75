//! The binary's memory allocator: the system allocator, with every large block marked for
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`), as glibc does when started with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`.
//!
//! A `vmlinux.o` run fills ~250 MB of tables it has just allocated; in 4 KiB pages that is
//! ~88,000 page faults, a fifth of the run's CPU time on the machine it was measured on
//! (README, "Speed"). In 2 MiB pages it is a few hundred. Small blocks, and so every module's
//! run, are untouched. Where the kernel's setting is `never` the advice changes nothing
//! (with `always` such blocks get huge pages anyway), and where no huge page is free the
//! kernel backs the block with small pages as usual.
//!
//! The library does not install it: a program using the library chooses its own allocator.
//! The binary does (`src/main.rs`).
//!
//! (The one `unsafe` here beside the input's memory map: a global allocator is an `unsafe`
//! trait, and `madvise` takes a raw range. The range advised is always inside the block
//! the system allocator just returned, rounded out to the pages that hold it.)

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks this large and larger are advised (glibc's threshold: one huge page).
const LARGE: usize = 2 << 20;
const PAGE: usize = 4096;

/// [`System`], with large blocks backed by transparent huge pages where the kernel allows.
pub struct HugePages;

/// Asks the kernel to back the pages holding `len` bytes at `ptr` with huge pages.
fn advise(ptr: *mut u8, len: usize) {
    if ptr.is_null() || len < LARGE {
        return;
    }
    // the whole pages around the block: for a block of its own memory map (glibc maps
    // every large block), exactly that map, which so keeps one set of flags and can still
    // grow in place (mremap) when the block is reallocated
    let start = ptr as usize & !(PAGE - 1);
    let end = (ptr as usize + len).next_multiple_of(PAGE);
    // SAFETY: the pages hold only the block just allocated (and, rounded out, allocator
    // metadata of the same mapping); MADV_HUGEPAGE changes how they are backed, never
    // their contents. A failure leaves them as they are.
    let _ = unsafe {
        rustix::mm::madvise(
            start as *mut std::ffi::c_void,
            end - start,
            rustix::mm::Advice::LinuxHugepage,
        )
    };
}

// SAFETY: every call is forwarded to `System`; the advice only changes the backing pages.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        advise(new, new_size);
        new
    }
}
