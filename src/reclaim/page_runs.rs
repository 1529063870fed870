//! Where cell pages (`pages.rs`) come from and how they go back to the OS: mapped
//! `RUN_PAGES` at a time, and unmapped together, adjacent pages with one `munmap`.
//!
//! `pages.rs` decides *when* a page is needed and when it is empty; this module
//! decides how the memory moves. Mapped one at a time, each 64 KiB page cost an
//! `mmap` and, to align it to its size, one or two `munmap`s of the mapping's
//! misaligned head and tail; unmapped one at a time as its last cell came back,
//! each page cost a `munmap` and a TLB shootdown, an interrupt to every other CPU
//! running a thread of the process (a reader's, in the middle of its gets). Counted
//! on `--bench clear_cold` (fills of 1,000,000 `u64` entries and their teardowns,
//! one reader; `docs/BENCHMARKS.md`, "History", "Pages mapped and unmapped in runs"):
//! about 450 `mmap` and 850 `munmap` calls per fill and teardown, and 440
//! shootdowns taken by the reader's CPU.
//!
//! So pages are mapped in *runs*: one mapping of `RUN_PAGES` pages (2 MiB, aligned
//! to a page), whose pages cost nothing until touched, handed out one after another
//! in address order. And a large teardown (one whose cells go back to their pages:
//! `recycle::Recycle::ToPages`) *defers* the unmapping of the pages it empties:
//! they wait in a pending list until its last slice, then leave together, each run
//! of adjacent pages with one `munmap` (one shootdown). A teardown walks its table
//! in hash order, so its pages empty in no order over its last slices, and
//! unmapping at each slice's end merged almost none; at its end, the pages of a run
//! carved by one writer are all there, adjacent. `MAX_PENDING` bounds the memory
//! that waits (64 MiB: a larger teardown unmaps its pages in several rounds). Pages
//! emptied elsewhere (a recycler's depot overflowing, a thread's exit) are
//! unmapped at once, as before.
//!
//! Where blocks come from the global allocator instead (Miri, non-Unix targets:
//! `mapped.rs`), a page is an allocation of its own, and part of an allocation
//! cannot be freed: there pages are mapped and freed one at a time, at once.

#[cfg(all(unix, not(miri)))]
use std::cell::Cell;
use std::ptr::NonNull;
#[cfg(all(unix, not(miri)))]
use std::sync::{Mutex, PoisonError};

use super::pages::PAGE;
use crate::mapped;

/// Pages mapped at once.
const RUN_PAGES: usize = 32;

/// Pending pages that make the slice that leaves them unmap them all, its
/// teardown's end or not.
#[cfg(all(unix, not(miri)))]
const MAX_PENDING: usize = 1024;

/// The pages of the current run not handed out yet: from `next`, `left` of them.
struct Run {
    next: Option<NonNull<u8>>,
    left: usize,
}

// SAFETY: the pages of a run are plain mapped memory that nothing uses until one is
// handed out (to one caller, which owns it from then on).
unsafe impl Send for Run {}

impl Run {
    /// The next page of the run, after a new run from `map` (`RUN_PAGES` pages,
    /// aligned to `PAGE`) if this one is used up.
    fn take(&mut self, map: impl FnOnce() -> NonNull<u8>) -> NonNull<u8> {
        let page = match self.next {
            Some(page) if self.left > 0 => page,
            _ => {
                self.left = RUN_PAGES;
                map()
            }
        };
        self.left -= 1;
        // Inside the run's mapping, or one past its end once `left` is 0 (then never
        // used: the next `take` maps a new run). `wrapping_add`: no access is made.
        self.next = NonNull::new(page.as_ptr().wrapping_add(PAGE));
        page
    }
}

#[cfg(all(unix, not(miri)))]
static RUN: Mutex<Run> = Mutex::new(Run {
    next: None,
    left: 0,
});

/// Empty pages waiting to be unmapped (their addresses' pointers).
#[cfg(all(unix, not(miri)))]
struct Pending(Vec<NonNull<u8>>);

// SAFETY: pending pages are mapped memory that nothing uses any more; the pointers
// are only handed to `munmap`.
#[cfg(all(unix, not(miri)))]
unsafe impl Send for Pending {}

#[cfg(all(unix, not(miri)))]
static PENDING: Mutex<Pending> = Mutex::new(Pending(Vec::new()));

/// A new page: `PAGE` bytes of zeroed memory aligned to `PAGE`, committed as it is
/// touched. Give it back with [`release`] once nothing uses it.
pub(super) fn map_page() -> NonNull<u8> {
    #[cfg(all(unix, not(miri)))]
    {
        RUN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(|| mapped::map_zeroed(RUN_PAGES * PAGE, PAGE, mapped::Commit::Lazily))
    }
    #[cfg(not(all(unix, not(miri))))]
    {
        mapped::map_zeroed(PAGE, PAGE, mapped::Commit::Lazily)
    }
}

/// Gives back `page`, which nothing uses any more: unmapped at once, or pending
/// while this thread defers ([`Deferral`]) until [`unmap_pending`].
///
/// # Safety
/// `page` came from [`map_page`], is released once, and neither it nor any pointer
/// into it is used afterwards.
pub(super) unsafe fn release(page: NonNull<u8>) {
    #[cfg(all(unix, not(miri)))]
    {
        if !DEFERRING.try_with(Cell::get).unwrap_or(false) {
            // SAFETY: a page of a run's mapping, not used any more and released once
            // (the contract).
            unsafe { mapped::unmap_range(page, PAGE) };
            return;
        }
        PENDING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .push(page);
    }
    #[cfg(not(all(unix, not(miri))))]
    // SAFETY: `map_page` allocated it alone, with this size and alignment; freed
    // once (the contract).
    unsafe {
        mapped::unmap(page, PAGE, PAGE)
    };
}

#[cfg(all(unix, not(miri)))]
std::thread_local! {
    /// Whether this thread's released pages wait ([`Deferral`]).
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
}

/// From [`begin`](Self::begin) to [`end`](Self::end), the pages this thread empties
/// wait for [`unmap_pending`] instead of leaving one by one: a large teardown's
/// slice (`Store::teardown_slice`); its last slice unmaps them. A slice may run user
/// destructors; whatever pages those empty on this thread wait too, and leave with
/// the rest. Dropped without `end` (a panic through the slice), it stops deferring
/// and leaves the pending pages to the next `end` or trim.
pub(crate) struct Deferral {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Deferral {
    pub(crate) fn begin() -> Self {
        #[cfg(all(unix, not(miri)))]
        DEFERRING.with(|d| d.set(true));
        Deferral {
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Deferral {
    /// Stops deferring; unmaps the pending pages if the teardown is done, or if
    /// `MAX_PENDING` of them wait (called with no lock held: the `munmap`s of a
    /// thousand pages take a while).
    pub(crate) fn end(self, teardown_done: bool) {
        drop(self);
        #[cfg(all(unix, not(miri)))]
        if teardown_done
            || PENDING
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                .len()
                >= MAX_PENDING
        {
            unmap_pending();
        }
        let _ = teardown_done;
    }
}

impl Drop for Deferral {
    fn drop(&mut self) {
        #[cfg(all(unix, not(miri)))]
        // A thread exiting meanwhile has nothing left to defer.
        let _ = DEFERRING.try_with(|d| d.set(false));
    }
}

/// Unmaps every pending page, each run of adjacent ones with one `munmap`.
pub(crate) fn unmap_pending() {
    #[cfg(all(unix, not(miri)))]
    {
        let mut pages =
            std::mem::take(&mut PENDING.lock().unwrap_or_else(PoisonError::into_inner).0);
        for (start, count) in adjacent_runs(&mut pages) {
            // Each of these pages came from `map_page` and was released once, so it
            // was pending once and is taken out of the list here.
            // SAFETY: `count` adjacent pages of runs' mappings, unmapped once, which
            // nothing uses any more (`release`'s contract).
            unsafe { mapped::unmap_range(start, count * PAGE) };
        }
    }
}

/// Sorts `pages` by address and groups them into runs of adjacent pages: each run's
/// first page and its length.
fn adjacent_runs(pages: &mut [NonNull<u8>]) -> Vec<(NonNull<u8>, usize)> {
    pages.sort_unstable_by_key(|page| page.as_ptr().addr());
    let mut runs: Vec<(NonNull<u8>, usize)> = Vec::new();
    for &page in pages.iter() {
        match runs.last_mut() {
            Some((start, count))
                if start.as_ptr().addr() + *count * PAGE == page.as_ptr().addr() =>
            {
                *count += 1
            }
            _ => runs.push((page, 1)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page address (never dereferenced).
    fn at(address: usize) -> NonNull<u8> {
        NonNull::new(std::ptr::without_provenance_mut(address)).unwrap()
    }

    #[test]
    fn a_run_hands_out_its_pages_in_order_then_maps_the_next() {
        let mut run = Run {
            next: None,
            left: 0,
        };
        let mut maps = 0;
        let mut bases = [16 * PAGE, 1024 * PAGE].into_iter();
        let mut pages = Vec::new();
        for _ in 0..RUN_PAGES + 2 {
            pages.push(run.take(|| {
                maps += 1;
                at(bases.next().unwrap())
            }));
        }
        assert_eq!(maps, 2, "one mapping per {RUN_PAGES} pages");
        for (i, page) in pages[..RUN_PAGES].iter().enumerate() {
            assert_eq!(page.as_ptr().addr(), (16 + i) * PAGE);
        }
        assert_eq!(pages[RUN_PAGES].as_ptr().addr(), 1024 * PAGE);
        assert_eq!(pages[RUN_PAGES + 1].as_ptr().addr(), 1025 * PAGE);
    }

    #[test]
    fn adjacent_pages_are_unmapped_together() {
        let mut pages: Vec<_> = [7, 3, 4, 9, 5, 12, 8].map(|i| at(i * PAGE)).to_vec();
        let runs: Vec<(usize, usize)> = adjacent_runs(&mut pages)
            .into_iter()
            .map(|(start, count)| (start.as_ptr().addr() / PAGE, count))
            .collect();
        assert_eq!(runs, [(3, 3), (7, 3), (12, 1)]);
        assert!(adjacent_runs(&mut []).is_empty());
    }
}
