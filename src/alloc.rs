//! The binary's memory allocator: the system allocator for small blocks; every block of
//! 2 MiB and more is a memory map of its own, aligned to and sized in whole huge pages and
//! marked for transparent huge pages (`madvise(MADV_HUGEPAGE)`).
//!
//! A `vmlinux.o` run fills ~250 MB of tables it has just allocated; in 4 KiB pages that is
//! ~88,000 page faults, a fifth of the run's CPU time on the machine it was measured on
//! (README, "Speed"). Advising the blocks the system allocator maps (as glibc does with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`) left ~25,000: a huge page needs an aligned
//! 2 MiB range inside the mapping, and glibc's maps start anywhere, so a block of a few
//! MiB got one huge page or none. Maps of our own, aligned and rounded up, are backed by
//! huge pages from end to end. Small blocks, and so every module's run, are untouched.
//! Where the kernel's setting is `never` the advice changes nothing, and where no huge page
//! is free the kernel backs the block with small pages as usual.
//!
//! The library does not install it: a program using the library chooses its own allocator.
//! The binary does (`src/main.rs`).
//!
//! (The one `unsafe` here beside the input's memory map: a global allocator is an `unsafe`
//! trait, and its maps are raw ranges. Every range mapped, advised, moved or unmapped here
//! is a whole map this allocator made: `HUGE`-aligned, its length the block's size rounded
//! up to `HUGE`.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;

use rustix::mm::{Advice, MapFlags, MremapFlags, ProtFlags};

/// Blocks this large and larger are maps of their own (one huge page).
const LARGE: usize = 2 << 20;
/// A huge page: the maps' alignment and the unit of their length.
const HUGE: usize = 2 << 20;

/// [`System`] for small blocks, aligned huge-page maps for large ones.
pub struct HugePages;

/// Whether a block of `size` bytes aligned to `align` is one of our maps.
fn is_large(size: usize, align: usize) -> bool {
    size >= LARGE && align <= HUGE
}

/// The length of the map holding a large block of `size` bytes.
fn map_len(size: usize) -> Option<usize> {
    size.checked_next_multiple_of(HUGE)
}

/// A new zeroed map of `len` bytes (a multiple of `HUGE`) at a `HUGE`-aligned address,
/// advised for huge pages; null on failure.
fn map(len: usize) -> *mut u8 {
    let Some(span) = len.checked_add(HUGE) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a new private anonymous map where the kernel chooses; it overlaps nothing.
    let Ok(raw) = (unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            span,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }) else {
        return std::ptr::null_mut();
    };
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE);
    // SAFETY: the parts of the map just made before and after the aligned range; nothing
    // points into them. The advice changes how the pages are backed, never their contents.
    unsafe {
        if aligned > start {
            let _ = rustix::mm::munmap(raw, aligned - start);
        }
        let tail = aligned + len;
        if start + span > tail {
            let _ = rustix::mm::munmap(tail as *mut c_void, start + span - tail);
        }
        let _ = rustix::mm::madvise(aligned as *mut c_void, len, Advice::LinuxHugepage);
    }
    aligned as *mut u8
}

// SAFETY: small blocks are `System`'s; large ones are whole maps of their own, made zeroed
// (which `alloc_zeroed` needs), unmapped in `dealloc`, moved whole in `realloc`.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) {
            return map_len(layout.size()).map_or(std::ptr::null_mut(), map);
        }
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) {
            return map_len(layout.size()).map_or(std::ptr::null_mut(), map);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size(), layout.align()) {
            if let Some(len) = map_len(layout.size()) {
                // SAFETY: `ptr` is the start of the map `alloc` made for this layout.
                let _ = unsafe { rustix::mm::munmap(ptr.cast(), len) };
            }
            return;
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (
            is_large(layout.size(), align),
            is_large(new_size, align),
            map_len(layout.size()),
            map_len(new_size),
        ) {
            (true, true, Some(old_len), Some(new_len)) => {
                if new_len == old_len {
                    return ptr;
                }
                if new_len < old_len {
                    // SAFETY: the end of our map, past the block's new size.
                    let _ =
                        unsafe { rustix::mm::munmap(ptr.add(new_len).cast(), old_len - new_len) };
                    return ptr;
                }
                // a new aligned map, the old pages moved into its start (no copy)
                let new = map(new_len);
                if new.is_null() {
                    return new;
                }
                // SAFETY: both are whole maps of ours; the old one is moved over the start
                // of the new one, which it replaces (MREMAP_FIXED), and is gone after.
                match unsafe {
                    rustix::mm::mremap_fixed(
                        ptr.cast(),
                        old_len,
                        old_len,
                        MremapFlags::MAYMOVE,
                        new.cast(),
                    )
                } {
                    Ok(_) => new,
                    Err(_) => {
                        // SAFETY: copy the block, then drop the old map.
                        unsafe {
                            std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                            let _ = rustix::mm::munmap(ptr.cast(), old_len);
                        }
                        new
                    }
                }
            }
            (false, false, ..) => {
                // SAFETY: the caller's contract is `System`'s.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
            _ => {
                // between a small block and a large one: a new block and a copy
                let Ok(new_layout) = Layout::from_size_align(new_size, align) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: a fresh block of the new layout; the old one holds
                // `layout.size()` bytes; both are this allocator's.
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
    }
}
