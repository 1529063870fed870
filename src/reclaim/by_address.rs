//! A large teardown's cells, released in address order.
//!
//! A table holds its entries in hash order, so a teardown that releases each entry
//! as it drains the table touches its cells at random: one cell line and one miss
//! per entry, fetched ahead but never in an order the hardware prefetchers follow,
//! and a page head for each give-back (`pages.rs`). For 1,000,000 `u64` entries
//! that was about 35 ms of the reclaimer's CPU, most of it waiting for those lines
//! (`docs/BENCHMARKS.md`, "History", "A teardown in address order").
//!
//! [`ByAddress`] takes the other order. A teardown first drains its table without
//! touching a cell, and marks each cell in a bitmap of its page: one bit for every
//! 8 bytes, 1 KiB for a 64 KiB page (half a byte per `u64` entry on pages its
//! cells fill). Then it releases the cells page by page, in address order:
//! consecutive cells share lines and pages, the prefetchers run ahead, and each
//! page's head stays in the cache while its cells go back to it. (That pays only
//! with the last reference given up without a locked decrement,
//! `ValueRef::release_unreachable`: a `lock xadd` per cell let no later load start,
//! and took 88% of the release's samples.) Measured: the reclaimer's CPU per
//! teardown of 1,000,000 `u64` entries about 31 ms against 38 in hash order.
//!
//! Values with a destructor gain more. What their destructors free was mostly
//! allocated in the order the map was filled, as the cells were: in address order,
//! a `String`'s heap block is freed next to the one freed before it, and glibc's
//! consolidation of its free lists (at the teardown's trim, `trim.rs`) merges
//! neighbours in a walk instead of at random. For 1,000,000 `String` values the
//! reclaimer's CPU per teardown fell from about 400 ms, 62% of it in glibc's
//! `malloc_consolidate`, `malloc_trim`, `free` and `unlink_chunk`, to about 50 ms
//! (`docs/BENCHMARKS.md`, "History", "Values with destructors in address order").
//! A destructor's panic is contained by the cell's destroy, as in hash order.
//!
//! A bit per 8 bytes rather than per place a cell of the size can take in the
//! page: the place needs a division by the cell's size in both phases, which cost
//! more than the smaller bitmaps saved.
//!
//! Only cells carved from cell pages can be rebuilt from a bit: a cell's pointer is
//! derived from another cell of its page, whose provenance covers the page (the
//! page's own, kept through carving and recycling as pointers; for a cell that
//! went through a doomed list, the page's provenance as its link exposed it,
//! `doomed.rs`, `encode_link`). The
//! bitmaps are bounded: past a few times the pages a table's cells would fill
//! densely, a cell on a page not yet seen is refused, and the caller releases it as
//! before, in hash order.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use super::pages::PAGE;
use crate::mapped::{Commit, ZeroedSlice};
use crate::table::SlotPointer;

/// The bytes one bit of a page's bitmap stands for: a cell's alignment at least
/// (cells of the page classes are aligned to 8), so that no two cells start in
/// one granule.
const GRANULE: usize = 8;

/// Words of a page's bitmap.
const WORDS: usize = PAGE / GRANULE / u64::BITS as usize;

/// A teardown's cells, collected by page, to be released in address order.
///
/// Collected cells are owned here: whatever is not released by
/// [`release`](Self::release) is released by the drop (as the table's drop would:
/// `P`'s own drop).
pub(crate) struct ByAddress<P: SlotPointer> {
    /// A cell of each page seen, in the order seen: the page's address, with its
    /// provenance.
    pages: Vec<NonNull<P::Target>>,
    /// [`WORDS`] words per page of `pages`, room for `max_pages`: bit `g` set for
    /// a cell at byte `g * GRANULE` of the page. Mapped, not allocated: a
    /// megabyte or two for a large teardown, which would otherwise stay in the
    /// allocator's heap after it (`tests/memory.rs` saw 1.4 MB more resident).
    bits: ZeroedSlice<u64>,
    /// An open-addressing index from a page's number (its address / `PAGE`) to 1 +
    /// its place in `pages`; 0 for an empty place. A power of two long, at least
    /// twice `max_pages`.
    index: ZeroedSlice<u32>,
    /// The page number and place of the last cell added: a fill's neighbours.
    last: (usize, usize),
    /// The most pages collected; cells on further pages are refused.
    max_pages: usize,
    /// Cells collected and not yet released.
    held: usize,
    /// The release order: places in `pages` by address, made by the first
    /// `release`.
    order: Vec<u32>,
    /// The next page of `order` to release from.
    next: usize,
    _owns: PhantomData<P>,
}

// SAFETY: a `ByAddress` owns the cells it collected as the `P`s they were (the
// pointers are theirs, handed back as `P`s): it may go where they may go.
unsafe impl<P: SlotPointer + Send> Send for ByAddress<P> {}
// SAFETY: as above; a shared `ByAddress` gives nothing but its count.
unsafe impl<P: SlotPointer + Sync> Sync for ByAddress<P> {}

impl<P: SlotPointer> ByAddress<P> {
    /// Room for the cells of a table of `entries` entries, each `cell_size` bytes:
    /// four times the pages they would fill densely, and 16 more.
    pub(crate) fn new(entries: usize, cell_size: usize) -> Self {
        let dense = entries.saturating_mul(cell_size) / PAGE + 1;
        let max_pages = dense.saturating_mul(4).saturating_add(16).min(1 << 24);
        ByAddress {
            pages: Vec::new(),
            // Lazily: its words are first touched by an `or` into memory, a write,
            // which faults a fresh page in directly.
            bits: ZeroedSlice::new(max_pages * WORDS, Commit::Lazily),
            // At once: `place_of` reads a place before it writes it, and a page
            // read first would map the shared zero page, then copy it on the
            // write, flushing the old mapping from every CPU running a thread of
            // the process (`mapped.rs`).
            index: ZeroedSlice::new((max_pages * 2).next_power_of_two(), Commit::Now),
            last: (usize::MAX, 0),
            max_pages,
            held: 0,
            order: Vec::new(),
            next: 0,
            _owns: PhantomData,
        }
    }

    /// Cells collected and not yet released.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }

    /// Collects `cell`, or gives it back (`Err`) if its page would be one more
    /// than the bound: the caller releases that one at once.
    ///
    /// # Safety
    /// `cell`'s pointer is that of a cell carved from a cell page (`pages.rs`),
    /// with provenance over the whole page (the module docs), and `release` has
    /// not begun.
    pub(crate) unsafe fn add(&mut self, cell: P) -> Result<(), P> {
        debug_assert!(
            self.order.is_empty(),
            "a cell added after the release began"
        );
        let raw = cell.into_raw();
        let addr = raw.as_ptr().addr();
        let page = addr / PAGE;
        let at = if page == self.last.0 {
            self.last.1
        } else {
            match self.place_of(page, raw) {
                Some(at) => at,
                // SAFETY: from `into_raw` just above; taken back once, here.
                None => return Err(unsafe { P::from_raw(raw) }),
            }
        };
        self.last = (page, at);
        let granule = addr % PAGE / GRANULE;
        let word = &mut self.bits[at * WORDS + granule / 64];
        debug_assert!(*word & 1 << (granule % 64) == 0, "a cell collected twice");
        *word |= 1 << (granule % 64);
        self.held += 1;
        Ok(())
    }

    /// The place of page `page` in `pages`, added with `cell` (a cell of it) if
    /// new; `None` if it is new and `max_pages` are collected.
    fn place_of(&mut self, page: usize, cell: NonNull<P::Target>) -> Option<usize> {
        let mask = self.index.len() - 1;
        // A Fibonacci hash of the page number, in 64 bits on every target (a
        // 32-bit `usize` would keep only 12 bits of it): the top 32 bits.
        let mut i = ((page as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        loop {
            match self.index[i] {
                0 => break,
                p if self.pages[p as usize - 1].as_ptr().addr() / PAGE == page => {
                    return Some(p as usize - 1);
                }
                _ => i = (i + 1) & mask,
            }
        }
        if self.pages.len() == self.max_pages {
            return None;
        }
        self.pages.push(cell);
        // At most `max_pages` (at most 2^24) places: fits.
        self.index[i] = self.pages.len() as u32;
        Some(self.pages.len() - 1)
    }

    /// Hands at most `budget` collected cells to `f`, in address order, each once.
    /// Returns whether every collected cell has been handed over. A cell's bit is
    /// cleared before `f` runs on it: if `f` unwinds, the cell is `f`'s (dropped by
    /// the unwinding), and the rest stay here.
    pub(crate) fn release(&mut self, mut budget: usize, mut f: impl FnMut(P)) -> bool {
        if self.order.len() < self.pages.len() {
            // At most 2^24 pages (`max_pages`): the places fit.
            self.order = (0..self.pages.len() as u32).collect();
            let pages = &self.pages;
            self.order
                .sort_unstable_by_key(|&at| pages[at as usize].as_ptr().addr());
        }
        while let Some(&at) = self.order.get(self.next) {
            let at = at as usize;
            let page = self.pages[at];
            let base = page.as_ptr().addr() / PAGE * PAGE;
            for w in 0..WORDS {
                loop {
                    let word = self.bits[at * WORDS + w];
                    if word == 0 {
                        break;
                    }
                    if budget == 0 {
                        return false;
                    }
                    budget -= 1;
                    self.bits[at * WORDS + w] = word & (word - 1);
                    self.held -= 1;
                    let addr = base + (w * 64 + word.trailing_zeros() as usize) * GRANULE;
                    // A cell's address is not 0 (it lies in a mapped page).
                    let addr = NonZeroUsize::new(addr).expect("a cell at address 0");
                    // Rebuilt from another cell of the same page, whose provenance
                    // covers the page (`add`'s contract): the cell's own pointer.
                    let cell = page.with_addr(addr);
                    // SAFETY: the bit was set by `add` for the cell at this address,
                    // from `into_raw`, and cleared above: taken back once.
                    f(unsafe { P::from_raw(cell) });
                }
            }
            self.next += 1;
        }
        true
    }
}

impl<P: SlotPointer> Drop for ByAddress<P> {
    /// Releases what was collected and not handed over (a teardown cut short: the
    /// store dropped between slices), as the table's own drop would.
    fn drop(&mut self) {
        self.release(usize::MAX, drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reclaim::pages;
    use std::cell::Cell;

    const CELL: usize = size_of::<[u64; 32]>();

    thread_local! {
        /// Addresses of the test cells given back, in order.
        static RELEASED: Cell<Vec<usize>> = const { Cell::new(Vec::new()) };
    }

    /// A test cell of 256 bytes (the largest class: fewest cells a page) carved from a cell page; its drop records its
    /// address and gives it back to its page.
    struct Carved(NonNull<[u64; 32]>);

    impl Carved {
        fn new() -> Self {
            Carved(pages::carve(CELL).cast())
        }
    }

    impl Drop for Carved {
        fn drop(&mut self) {
            RELEASED.with(|r| {
                let mut v = r.take();
                v.push(self.0.as_ptr().addr());
                r.set(v);
            });
            // SAFETY: carved by `pages::carve` with the page's provenance (`new`,
            // or rebuilt by `release` from another cell of the page); given back
            // once, here.
            unsafe { pages::give_back(self.0.cast()) };
        }
    }

    // SAFETY: `into_raw` and `from_raw` hand the one pointer back and forth.
    unsafe impl SlotPointer for Carved {
        type Target = [u64; 32];
        type Key = ();
        fn into_raw(self) -> NonNull<[u64; 32]> {
            let raw = self.0;
            std::mem::forget(self);
            raw
        }
        fn as_raw(&self) -> NonNull<[u64; 32]> {
            self.0
        }
        unsafe fn from_raw(raw: NonNull<[u64; 32]>) -> Self {
            Carved(raw)
        }
        unsafe fn key<'a>(_: NonNull<[u64; 32]>) -> &'a () {
            &()
        }
    }

    fn released() -> Vec<usize> {
        RELEASED.with(|r| r.take())
    }

    /// Cells carved in order, shuffled (a table's hash order).
    fn shuffled(n: usize) -> Vec<Carved> {
        let mut cells: Vec<Carved> = (0..n).map(|_| Carved::new()).collect();
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        for i in (1..cells.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cells.swap(i, (x % (i as u64 + 1)) as usize);
        }
        cells
    }

    #[test]
    fn cells_come_back_once_each_in_address_order() {
        let n = if cfg!(miri) { 300 } else { 20_000 };
        let cells = shuffled(n);
        let mut expected: Vec<usize> = cells.iter().map(|c| c.0.as_ptr().addr()).collect();
        expected.sort_unstable();
        let mut by = ByAddress::<Carved>::new(n, CELL);
        released();
        for cell in cells {
            // SAFETY: carved from a page by `Carved::new`; nothing released yet.
            assert!(unsafe { by.add(cell) }.is_ok());
        }
        assert_eq!(by.held(), n);
        // In slices of 97: each slice goes on where the last stopped.
        let mut slices = 0;
        while !by.release(97, drop) {
            slices += 1;
        }
        assert_eq!(slices, n / 97);
        assert_eq!(by.held(), 0);
        assert_eq!(released(), expected, "not each once, in address order");
    }

    #[test]
    fn cells_past_the_bound_are_refused_and_the_rest_released_by_the_drop() {
        // Room for a table of 1 entry: 4 + 16 = 20 pages at most (`new`).
        let mut by = ByAddress::<Carved>::new(1, CELL);
        // 24 pages' worth of cells, all kept alive; one cell of each page collected.
        let cells: Vec<Carved> = (0..24 * (PAGE / CELL)).map(|_| Carved::new()).collect();
        let mut one_per_page = Vec::new();
        let mut rest = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for cell in cells {
            if seen.insert(cell.0.as_ptr().addr() / PAGE) {
                one_per_page.push(cell);
            } else {
                rest.push(cell);
            }
        }
        let pages = one_per_page.len();
        assert!(pages > 20, "24 pages' worth of cells on only {pages} pages");
        released();
        let mut refused = 0;
        for cell in one_per_page {
            // SAFETY: carved from a page by `Carved::new`; nothing released yet.
            if let Err(cell) = unsafe { by.add(cell) } {
                refused += 1;
                drop(cell);
            }
        }
        assert_eq!(by.held(), 20);
        assert_eq!(refused, pages - 20);
        assert_eq!(released().len(), refused);
        // Two released, the rest left to the drop.
        assert!(!by.release(2, drop));
        assert_eq!(released().len(), 2);
        drop(by);
        assert_eq!(released().len(), 18, "the drop released the rest once");
        drop(rest);
    }
}
