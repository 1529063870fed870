//! Large blocks of zeroed memory mapped from the OS: value-cell pages
//! (`reclaim/pages.rs`) and large slot arrays (`table/array.rs`).
//!
//! Through `malloc`, such blocks come out of the allocator's heap (once glibc has
//! freed one mapped chunk it raises its mapping threshold to that size), where the
//! small allocations made meanwhile fragment what the blocks leave when freed:
//! after a clear of 1,000,000 entries, 300–400 KiB of a thread's arena stayed
//! resident that `malloc_trim` could not return (`tests/memory.rs`). A mapped block
//! leaves the process when it is unmapped, and its pages cost nothing until
//! touched. On Unix outside Miri (which cannot call `mmap`) blocks are mapped;
//! elsewhere they come from the global allocator, zeroed.
//!
//! A block about to be written all over (a rehash's new slot array), or one that
//! readers may probe before the writer reaches its pages (an array sized ahead by
//! a reserve or a capacity), is mapped with its pages committed at once
//! ([`Commit::Now`], `MAP_POPULATE`). The kernel ignores a populate it cannot
//! finish: such a mapping is not refused, and its pages are then committed as
//! they are touched, subject to the system's memory as any allocation is. Left to
//! fault in, such an array's pages were first *read* by the rehash's probes, which
//! maps the kernel's shared zero page, and then written, a copy-on-write fault
//! that must flush the old mapping from every CPU running a thread of the process:
//! an inter-processor interrupt to each reader per 4 KiB of slots, and two page
//! faults instead of one. Measured (`docs/BENCHMARKS.md`, "History", "Rehash
//! arrays committed at once"): a fill of 1,000,000 entries beside one reader made
//! the reader's CPU take about 8,200 flushes, counting the teardown's (330
//! since), and ran at 0.28–0.47× `DashMap`'s speed (0.75–0.81× since).

use std::alloc::Layout;
use std::ptr::NonNull;

/// When a block's pages are committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// As they are first touched: a block that may stay partly unused (a cell
    /// page carved over time by writes).
    Lazily,
    /// At once, zeroed and writable: a block that is written all over right away
    /// (a rehash's new array), or one whose pages readers may probe before a
    /// writer reaches them (an array sized ahead by a reserve or a capacity:
    /// a probe of an untouched page maps the zero page, and the first write
    /// there then flushes the TLB of every CPU running the process). Only a request: where the system does not populate
    /// (outside Linux), for a block aligned to more than 4 KiB (whose mapping is
    /// trimmed) and under Miri, pages are committed as they are touched.
    Now,
}

/// The `mmap` flag that commits a mapping's pages at once, where there is one.
#[cfg(all(unix, not(miri), any(target_os = "linux", target_os = "android")))]
const POPULATE: libc::c_int = libc::MAP_POPULATE;
#[cfg(all(unix, not(miri), not(any(target_os = "linux", target_os = "android"))))]
const POPULATE: libc::c_int = 0;

/// The layout of a block (for the allocator's path, and for its error).
fn layout(bytes: usize, align: usize) -> Layout {
    Layout::from_size_align(bytes, align).expect("a valid block layout")
}

/// `bytes` (non-zero; a multiple of the system's page size when `align` is larger
/// than 4 KiB) of zeroed memory aligned to `align` (a power of two), its pages
/// committed as `commit` says.
pub(crate) fn map_zeroed(bytes: usize, align: usize, commit: Commit) -> NonNull<u8> {
    try_map_zeroed(bytes, align, commit)
        .unwrap_or_else(|| std::alloc::handle_alloc_error(layout(bytes, align)))
}

/// [`map_zeroed`], or `None` if the system refuses the mapping (a size past the
/// address space, or past what the kernel's overcommit policy grants).
#[cfg(all(unix, not(miri)))]
pub(crate) fn try_map_zeroed(bytes: usize, align: usize, commit: Commit) -> Option<NonNull<u8>> {
    use std::ptr;
    debug_assert!(bytes > 0 && align.is_power_of_two());
    // Populating a mapping whose head and tail are unmapped again below would
    // commit them too, and their unmapping would flush them from every CPU: only
    // blocks with no alignment of their own to make are populated.
    debug_assert!(commit == Commit::Lazily || align <= 4096);
    let populate = if commit == Commit::Now && align <= 4096 {
        POPULATE
    } else {
        0
    };
    // The system page alignment comes free; a larger one takes `align` more bytes,
    // whose misaligned head and tail are unmapped again.
    let extra = if align > 4096 { align } else { 0 };
    let mapped = bytes.checked_add(extra)?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing:
    // no memory of ours is affected.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            mapped,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | populate,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let raw = raw.cast::<u8>();
    let head = raw.addr().next_multiple_of(align) - raw.addr();
    debug_assert!(head <= extra);
    // SAFETY: `head <= extra`: the block lies inside the mapping.
    let block = unsafe { raw.add(head) };
    let tail = extra - head;
    // SAFETY: the head and the tail around the block are parts of the mapping just
    // made that nothing uses; empty ones are skipped.
    unsafe {
        if head > 0 {
            let unmapped = libc::munmap(raw.cast(), head);
            debug_assert_eq!(unmapped, 0, "the head of a fresh mapping");
        }
        if tail > 0 {
            let unmapped = libc::munmap(block.add(bytes).cast(), tail);
            debug_assert_eq!(unmapped, 0, "the tail of a fresh mapping");
        }
    }
    Some(NonNull::new(block).expect("a mapping is not at address 0"))
}

/// Gives back a block of [`map_zeroed`].
///
/// # Safety
/// `block` came from `map_zeroed(bytes, align)` with these arguments, is given back
/// once and not used afterwards.
#[cfg(all(unix, not(miri)))]
pub(crate) unsafe fn unmap(block: NonNull<u8>, bytes: usize, _align: usize) {
    // SAFETY: the mapping `map_zeroed` left is exactly `bytes` at `block` (the
    // contract), unmapped once.
    let unmapped = unsafe { libc::munmap(block.as_ptr().cast(), bytes) };
    debug_assert_eq!(unmapped, 0, "a block of `map_zeroed`");
}

/// Unmaps `bytes` from `start`: pages of blocks of [`map_zeroed`] (a part of one, or
/// parts of adjacent ones), a range in which nothing is used any more.
///
/// # Safety
/// The range lies inside blocks that `map_zeroed` left mapped (not unmapped
/// before), starts and ends on a system page boundary, and no part of it is used
/// afterwards.
#[cfg(all(unix, not(miri)))]
pub(crate) unsafe fn unmap_range(start: NonNull<u8>, bytes: usize) {
    // SAFETY: mapped memory of ours that nothing uses any more (the contract).
    let unmapped = unsafe { libc::munmap(start.as_ptr().cast(), bytes) };
    debug_assert_eq!(unmapped, 0, "pages of blocks of `map_zeroed`");
}

/// [`map_zeroed`], or `None` if the global allocator refuses, where there is no
/// `mmap` (and under Miri): `commit` is a request it has no way to take.
#[cfg(not(all(unix, not(miri))))]
pub(crate) fn try_map_zeroed(bytes: usize, align: usize, _commit: Commit) -> Option<NonNull<u8>> {
    let layout = Layout::from_size_align(bytes, align).ok()?;
    // SAFETY: the layout has a non-zero size (the contract above).
    NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
}

/// Gives back a block of [`map_zeroed`].
///
/// # Safety
/// `block` came from `map_zeroed(bytes, align)` with these arguments, is given back
/// once and not used afterwards.
#[cfg(not(all(unix, not(miri))))]
pub(crate) unsafe fn unmap(block: NonNull<u8>, bytes: usize, align: usize) {
    // SAFETY: allocated by `map_zeroed` with this layout, freed once (the contract).
    unsafe { std::alloc::dealloc(block.as_ptr(), layout(bytes, align)) };
}

/// Integers for which all-zero bytes are a valid value (zero).
///
/// # Safety
/// Every bit pattern of all zeros is a valid `Self`.
pub(crate) unsafe trait ZeroIsValid: Copy {}
// SAFETY: plain integers: all-zero bytes are 0.
unsafe impl ZeroIsValid for u32 {}
// SAFETY: as above.
unsafe impl ZeroIsValid for u64 {}

/// A mapped, zeroed slice of `len` integers, unmapped on drop: scratch memory that
/// leaves the process as soon as it is dropped, whatever the allocator keeps, and
/// whose pages cost nothing until touched (`reclaim/by_address.rs`'s bitmaps).
pub(crate) struct ZeroedSlice<T: ZeroIsValid> {
    block: NonNull<[T]>,
}

impl<T: ZeroIsValid> ZeroedSlice<T> {
    /// `len` zeros, their pages committed as `commit` says ([`Commit`]: a slice
    /// whose first use of a page is a read, such as a hash index probed before
    /// it is written, is better committed at once).
    ///
    /// # Panics
    /// If `len` is 0 (a block is never empty: the allocator's path would be
    /// asked for zero bytes) or the block does not fit in memory.
    pub(crate) fn new(len: usize, commit: Commit) -> Self {
        assert!(len > 0, "an empty mapped slice");
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("a block that fits in memory");
        let block = map_zeroed(bytes, align_of::<T>(), commit);
        ZeroedSlice {
            block: NonNull::slice_from_raw_parts(block.cast::<T>(), len),
        }
    }
}

impl<T: ZeroIsValid> std::ops::Deref for ZeroedSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` zeroed, aligned `T`s, valid as zeros (`ZeroIsValid`),
        // mapped until the drop; borrowed as `self` is.
        unsafe { self.block.as_ref() }
    }
}

impl<T: ZeroIsValid> std::ops::DerefMut for ZeroedSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the block is this value's alone, borrowed mutably
        // as `self` is.
        unsafe { self.block.as_mut() }
    }
}

impl<T: ZeroIsValid> Drop for ZeroedSlice<T> {
    fn drop(&mut self) {
        let bytes = self.block.len() * size_of::<T>();
        // SAFETY: mapped by `new` with these arguments; given back once, here.
        unsafe { unmap(self.block.cast(), bytes, align_of::<T>()) };
    }
}

// SAFETY: a `ZeroedSlice` owns its integers, as a `Box<[T]>` does.
unsafe impl<T: ZeroIsValid + Send> Send for ZeroedSlice<T> {}
// SAFETY: as above; shared, it only lends `&[T]`.
unsafe impl<T: ZeroIsValid + Sync> Sync for ZeroedSlice<T> {}
