//! Giving freed memory back to the operating system after a large teardown.
//!
//! glibc's allocator keeps the memory of freed small chunks in its arenas: after a
//! generation of a million values is torn down, the process's resident memory would
//! stay near its peak although everything was freed. Once passes have destroyed at
//! least [`TRIM_THRESHOLD`] values since the last trim, and at most every
//! [`TRIM_INTERVAL`], the reclaimer asks glibc to return free pages
//! (`malloc_trim(0)`). This runs on the reclaiming thread, never on a reader or the
//! clearer; it holds each arena's lock while trimming that arena, so a thread that
//! allocates at that moment (a writer) may wait for it. Other allocators return
//! memory on their own schedule; there this is a no-op.

/// Values destroyed since the last trim from which the reclaimer trims.
pub(crate) const TRIM_THRESHOLD: usize = 1 << 16;

/// The shortest time between two trims: a steady stream of removes (each pass
/// destroying tens of thousands of values) made every pass trim, and the trim
/// (`malloc_trim` with its `malloc_consolidate`) took 6% of a write benchmark's
/// samples; their cells go back to the writers anyway (`recycle.rs`).
pub(crate) const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Returns free memory to the OS where the allocator needs to be asked, after
/// giving back the recycled cells (which would pin their pages).
pub(crate) fn release_free_memory() {
    super::recycle::flush();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists; it is
    // thread-safe and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
