//! Cache hints: asking the CPU to start fetching a line that the code will touch a
//! little later, so that the miss overlaps other work instead of stalling it.

/// Starts bringing the cache line of `addr` into this core's caches, without
/// waiting for it. A read prefetch (`prefetcht0`): x86-64's baseline has no
/// prefetch-for-write (`prefetchw` needs the `prfchw` feature). A hint only: any
/// address will do, even a dangling or null one, and nothing is read that the
/// program sees. A no-op on other architectures.
#[inline(always)]
pub(crate) fn prefetch_line(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint: it never faults and reads nothing the
    // program sees, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Starts fetching the head of the `Arc` whose value is at `value` (from
/// `Arc::as_ptr`): the line of its counts, two words before the value in std's
/// layout, and the line where the value starts (the same one unless the counts end
/// a line). A hint, as [`prefetch_line`]: a wrong guess costs a wasted fetch.
/// (Its one caller, the clear's `prefetch_for_publish`, is left out under loom.)
#[cfg(not(feature = "loom"))]
#[inline(always)]
pub(crate) fn prefetch_arc<T>(value: *const T) {
    let value = value.cast::<u8>();
    prefetch_line(value.wrapping_sub(2 * size_of::<usize>()));
    prefetch_line(value);
}
