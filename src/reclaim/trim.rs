//! Giving freed memory back to the operating system after a large teardown.
//!
//! glibc's allocator keeps the memory of freed small chunks in its arenas: after a
//! generation of a million values is torn down, the process's resident memory would
//! stay near its peak although everything was freed. After a pass that destroyed at
//! least [`TRIM_THRESHOLD`] values, the reclaimer asks glibc to return free pages
//! (`malloc_trim(0)`). This runs on the reclaiming thread, never on a reader or the
//! clearer; it holds each arena's lock while trimming that arena, so a thread that
//! allocates at that moment (a writer) may wait for it. Other allocators return
//! memory on their own schedule; there this is a no-op.

/// Values destroyed in one pass from which the reclaimer trims.
pub(crate) const TRIM_THRESHOLD: usize = 1 << 16;

/// Returns free memory to the OS where the allocator needs to be asked.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists; it is
    // thread-safe and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
