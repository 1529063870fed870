//! `ShardArray`: a table's shards, each on cache lines of its own, allocated
//! without `posix_memalign`.
//!
//! A `Box<[Shard]>` of a type aligned to 128 bytes goes through the allocator's
//! aligned path, which on glibc is `posix_memalign`: it carves an oversized chunk
//! and frees the misaligned head and tail, which then sit in the bins and slow the
//! next small allocations down (`malloc_consolidate`). Under callgrind, creating
//! 1,000 maps spent 632 instructions per map in `posix_memalign` and its frees, of
//! about 2,280 per `AtomicMap::new` (`docs/BENCHMARKS.md`, "History"). Padding the
//! shards to a 128-byte stride at the allocator's own alignment saved about 400
//! instructions per map but let a shard's fields straddle two lines at one start
//! address in four (tried and reverted, 2026-12-01). Here the array is one ordinary
//! allocation 127 bytes longer than the shards, and they start at its first
//! 128-byte boundary: the alignment of the typed box, the cost of a plain `malloc`.
//! (The boundary is found from the address; Miri's default alignment check accepts
//! that, its `-Zmiri-symbolic-alignment-check` would not.)

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ops::Deref;
use std::ptr::NonNull;

/// `n` values of `T` (whose alignment is at most `ALIGN`) starting at an
/// `ALIGN`-byte boundary inside one allocation of the allocator's own alignment.
pub(super) struct ShardArray<T> {
    /// The first value, at an `ALIGN`-byte boundary inside the allocation.
    first: NonNull<T>,
    /// Values written so far: all `capacity` once `new` returns (fewer only while
    /// `new` unwinds from a panic in `make`).
    len: usize,
    /// The number of values the allocation was made for.
    capacity: usize,
    /// The allocation, as the allocator returned it (for `dealloc`).
    block: NonNull<u8>,
}

/// The boundary the first value starts at: a shard's, so that no two shards share
/// a line or an adjacent-line pair (the prefetcher fetches lines in pairs).
const ALIGN: usize = 128;

// SAFETY: the array owns its values, like a `Box<[T]>`.
unsafe impl<T: Send> Send for ShardArray<T> {}
// SAFETY: shared, it only hands out `&[T]`, like a `Box<[T]>`.
unsafe impl<T: Sync> Sync for ShardArray<T> {}

impl<T> ShardArray<T> {
    /// `n` (at least 1) values made by `make`, in order.
    pub(super) fn new(n: usize, mut make: impl FnMut() -> T) -> Self {
        const {
            assert!(align_of::<T>() <= ALIGN && size_of::<T>() > 0);
        }
        assert!(n > 0, "a table has shards");
        let layout = Self::layout(n);
        // SAFETY: the layout's size is at least `ALIGN - 1 + size_of::<T>()` (`n`
        // is at least 1, asserted above), non-zero.
        let raw = unsafe { alloc(layout) };
        let block = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout));
        let head = block.as_ptr().addr().next_multiple_of(ALIGN) - block.as_ptr().addr();
        // SAFETY: `head < ALIGN`, so the `n` values from `head` on lie inside the
        // allocation (`layout`: `ALIGN - 1` bytes more than they need).
        let first = unsafe { block.add(head) }.cast::<T>();
        let mut array = ShardArray {
            first,
            len: 0,
            capacity: n,
            block,
        };
        for i in 0..n {
            let value = make();
            // SAFETY: `i < n`: inside the allocation, aligned (`ALIGN` is a multiple
            // of `T`'s alignment, and so is `size_of::<T>()`), not yet written. `len`
            // counts the values written, so a panic in `make` drops only those.
            unsafe { first.add(i).write(value) };
            array.len = i + 1;
        }
        array
    }

    /// The allocation for `n` values: `ALIGN - 1` bytes of room to align the first.
    fn layout(n: usize) -> Layout {
        size_of::<T>()
            .checked_mul(n)
            .and_then(|bytes| bytes.checked_add(ALIGN - 1))
            .and_then(|bytes| Layout::from_size_align(bytes, align_of::<usize>()).ok())
            .expect("a shard array that fits in memory")
    }
}

impl<T> Deref for ShardArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `first` is aligned for `T` and the `len` values from it lie inside
        // the allocation (both established in `new`); they were written there and
        // stay alive until `drop`; nothing hands out `&mut` to them (no `DerefMut`).
        unsafe { std::slice::from_raw_parts(self.first.as_ptr(), self.len) }
    }
}

impl<T> Drop for ShardArray<T> {
    fn drop(&mut self) {
        /// Frees the allocation when dropped: after the values, and also if one of
        /// their destructors panics (as a `Box<[T]>` would).
        struct Block(NonNull<u8>, Layout);
        impl Drop for Block {
            fn drop(&mut self) {
                // SAFETY: `new`'s allocation, with the layout it was made with (for
                // `capacity` values, below), freed once: this guard is made once, in
                // `ShardArray::drop`, and dropped after the values are.
                unsafe { dealloc(self.0.as_ptr(), self.1) };
            }
        }
        let _block = Block(self.block, Self::layout(self.capacity));
        // SAFETY: the `len` values written in `new` (all of them, or those written
        // before a panic in `make`), dropped once, here; the memory stays allocated
        // until `_block` drops, after this.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.first.as_ptr(),
                self.len,
            ));
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    /// A value aligned as a shard is, that counts its drops.
    #[repr(align(128))]
    struct Counted<'a>(&'a Cell<usize>);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn every_value_starts_on_its_own_128_byte_boundary() {
        let drops = Cell::new(0);
        // Several sizes, so that the allocations start at different offsets.
        for n in [1, 2, 3, 8, 64] {
            let array = ShardArray::new(n, || Counted(&drops));
            assert_eq!(array.len(), n);
            for value in array.iter() {
                assert_eq!(std::ptr::from_ref(value).addr() % ALIGN, 0);
            }
        }
        assert_eq!(drops.get(), 1 + 2 + 3 + 8 + 64, "each value dropped once");
    }

    /// A value whose destructor panics.
    #[repr(align(128))]
    struct PanicsOnDrop(#[allow(dead_code)] u8);

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("a destructor that panics");
        }
    }

    /// The array is still freed (Miri's leak check, in `.ci/run`, fails the test
    /// otherwise).
    #[test]
    fn a_destructor_that_panics_does_not_leak_the_array() {
        let array = ShardArray::new(1, || PanicsOnDrop(0));
        assert!(catch_unwind(AssertUnwindSafe(|| drop(array))).is_err());
    }

    #[test]
    fn a_panic_while_filling_drops_the_values_made_so_far() {
        let drops = Cell::new(0);
        let mut made = 0;
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            ShardArray::new(8, || {
                if made == 5 {
                    panic!("the sixth value fails");
                }
                made += 1;
                Counted(&drops)
            })
        }));
        assert!(unwound.is_err());
        assert_eq!(drops.get(), 5);
    }
}
