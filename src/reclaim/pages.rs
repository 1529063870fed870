//! Cell pages: where recycled value cells come from when no recycled one is at hand.
//!
//! A value cell of a size class (`recycle.rs`) used to be one `malloc` chunk: glibc
//! rounds a 32-byte `u64 → u64` cell up to a 48-byte chunk (an 8-byte header, 16-byte
//! granularity), a third of the cell's memory. Cells of a class are all the same
//! size, so they are carved instead from 64 KiB *pages*, aligned to their size, with
//! no header per cell: a thread carves the cells of its current page of a class one
//! after another (a bump of a thread-local offset, no atomic), and a cell given back
//! finds its page by masking its address.
//!
//! A page counts the cells it still has out (carved and not given back, plus the
//! ones its carver has yet to carve); the last one given back frees the page, so a
//! teardown's memory goes back to the allocator (and, through `trim.rs`, to the OS)
//! once its cells leave the recycler. A cell kept by a magazine or the depot keeps
//! its page: the trim after a large teardown flushes both first (`recycle::flush`).
//!
//! Under loom the recycler is off (`RECYCLE_CELLS`), and so are pages.

use std::cell::RefCell;

use crate::mapped;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes per page (and its alignment).
pub(crate) const PAGE: usize = 64 * 1024;

/// The head of a page: its count of cells out. A cache line of its own, so that
/// the first cell does not share it.
#[repr(C, align(64))]
struct PageHead {
    out: AtomicUsize,
}

/// The first cell's offset in a page.
const FIRST_CELL: usize = size_of::<PageHead>();

/// The page a thread is carving cells of one size from.
struct Carving {
    page: NonNull<PageHead>,
    /// Offset of the next cell to carve.
    next: usize,
    size: usize,
}

impl Carving {
    /// A new page for cells of `size` bytes (at most 256, a multiple of 8), all of
    /// them counted out: the carver's until carved.
    fn new(size: usize) -> Self {
        let page = mapped::map_zeroed(PAGE, PAGE, mapped::Commit::Lazily).cast::<PageHead>();
        let cells = (PAGE - FIRST_CELL) / size;
        // SAFETY: a fresh allocation of `PAGE` bytes aligned to `PAGE`, which holds a
        // `PageHead` at its start; written before any cell of it exists.
        unsafe {
            page.write(PageHead {
                out: AtomicUsize::new(cells),
            })
        };
        Carving {
            page,
            next: FIRST_CELL,
            size,
        }
    }

    /// The next cell, if the page has one left.
    fn carve(&mut self) -> Option<NonNull<u8>> {
        if self.next + self.size > PAGE {
            return None;
        }
        // SAFETY: `next + size <= PAGE`: the cell lies inside the page's allocation,
        // after its head, and is carved once (the offset moves past it).
        let cell = unsafe { self.page.cast::<u8>().add(self.next) };
        self.next += self.size;
        Some(cell)
    }

    /// Cells of this page not carved yet.
    fn left(&self) -> usize {
        (PAGE - self.next) / self.size
    }
}

impl Drop for Carving {
    /// The carver leaves the page (its thread exits, or it is used up): the cells it
    /// never carved are given back at once.
    fn drop(&mut self) {
        let left = self.left();
        if left > 0 {
            // SAFETY: the page is alive: this carver's `left` uncarved cells are still
            // counted out, and they are given back once, here. (With none left, the
            // page may already be gone: every cell carved and given back.)
            unsafe { release(self.page, left) };
        }
    }
}

std::thread_local! {
    /// This thread's current page per size class (8, 16, ..., 256 bytes).
    static CARVING: RefCell<[Option<Carving>; 32]> = const {
        RefCell::new([const { None }; 32])
    };
}

/// A cell of `size` bytes (a multiple of 8, at most 256), aligned to 8, carved
/// from a page. Give it back with [`give_back`].
pub(crate) fn carve(size: usize) -> NonNull<u8> {
    debug_assert!(size % 8 == 0 && (8..=256).contains(&size));
    let class = size / 8 - 1;
    CARVING
        .try_with(|carving| {
            let mut carving = carving.borrow_mut();
            let slot = &mut carving[class];
            if let Some(cell) = slot.as_mut().and_then(Carving::carve) {
                return cell;
            }
            // The page is used up (or this is the first): the old one's carver
            // leaves it (its cells count until given back), a new one starts.
            let mut fresh = Carving::new(size);
            let cell = fresh.carve().expect("a new page holds a cell");
            *slot = Some(fresh);
            cell
        })
        .unwrap_or_else(|_| {
            // The thread is exiting and its carvers have left their pages: a page for
            // this cell alone (its carver leaves it at once, giving back the rest).
            // A thread-local destructor that makes many values pays a page each:
            // rare enough not to keep a shared carver for it.
            let mut alone = Carving::new(size);
            alone.carve().expect("a new page holds a cell")
        })
}

/// Gives back a cell from [`carve`]; the last cell of its page out frees the page.
///
/// # Safety
/// `cell` came from `carve` (with the provenance `carve` gave it, which covers its
/// whole page), is given back once and not used afterwards.
pub(crate) unsafe fn give_back(cell: NonNull<u8>) {
    let page = cell
        .as_ptr()
        .map_addr(|address| address & !(PAGE - 1))
        .cast::<PageHead>();
    // A carved cell lies in its page, which starts at the cell's address rounded
    // down to `PAGE` (pages are aligned to `PAGE`), and the cell carries the page's
    // provenance (the contract): `page` is the page's head, never null.
    let page = NonNull::new(page).expect("a page is never at address 0");
    // SAFETY: the page is alive while the cell is out, and the cell is given back once (the contract).
    unsafe { release(page, 1) };
}

/// Counts `cells` (at least 1) of `page` given back, and frees the page if they were
/// its last.
///
/// # Safety
/// `page` is a live page, and `cells` of its cells out are given back once, by this
/// call.
unsafe fn release(page: NonNull<PageHead>, cells: usize) {
    debug_assert!(cells > 0);
    // SeqCst (as `Arc`'s drop, which needs AcqRel: the recycler is not modelled
    // under loom, so no weaker ordering): every use of a cell of the page by the
    // thread that gave it back happens before the free by whichever thread gives
    // back the last.
    // SAFETY: the page is alive (the contract).
    let out = unsafe { page.as_ref() }
        .out
        .fetch_sub(cells, Ordering::SeqCst);
    debug_assert!(out >= cells, "more cells given back than were out");
    if out == cells {
        // SAFETY: mapped by `Carving::new` with this size and alignment; no cell of
        // it is out and no carver holds it (the count was 0 only once both were
        // gone), so this is the last use, and it happens once.
        unsafe { mapped::unmap(page.cast(), PAGE, PAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_distinct_aligned_and_inside_their_pages() {
        let cells: Vec<_> = (0..5_000).map(|_| carve(32)).collect();
        let mut addresses: Vec<usize> = cells.iter().map(|c| c.as_ptr().addr()).collect();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), cells.len());
        for cell in &cells {
            let offset = cell.as_ptr().addr() % PAGE;
            assert!(offset >= FIRST_CELL && offset + 32 <= PAGE);
            assert_eq!(cell.as_ptr().addr() % 8, 0);
            // SAFETY: 32 bytes of a carved cell, ours alone.
            unsafe { cell.as_ptr().cast::<[u64; 4]>().write([7; 4]) };
        }
        for cell in cells {
            // SAFETY: carved above, given back once.
            unsafe { give_back(cell) };
        }
    }

    /// Cells out of the page of `cell`.
    fn out_of(cell: NonNull<u8>) -> usize {
        let page = cell
            .as_ptr()
            .map_addr(|a| a & !(PAGE - 1))
            .cast::<PageHead>();
        // SAFETY: the page of a cell that is out is alive.
        unsafe { &*page }.out.load(Ordering::SeqCst)
    }

    struct Sent(NonNull<u8>);
    // SAFETY: a carved cell is plain memory, owned by whoever holds it.
    unsafe impl Send for Sent {}

    #[test]
    fn a_page_counts_its_cells_out_across_threads() {
        const SIZE: usize = 24;
        let per_page = (PAGE - FIRST_CELL) / SIZE;
        // More than two pages' worth: the first page is carved whole, and its
        // carver has left it.
        let cells: Vec<_> = (0..2 * per_page + 10).map(|_| carve(SIZE)).collect();
        let first = cells[0];
        let same_page = |c: &NonNull<u8>| c.as_ptr().addr() / PAGE == first.as_ptr().addr() / PAGE;
        let (mine, others): (Vec<_>, Vec<_>) = cells.into_iter().partition(same_page);
        assert_eq!(mine.len(), per_page);
        assert_eq!(out_of(first), per_page);
        // Two threads give back all but one of the first page's cells.
        let (keep, rest) = mine.split_first().unwrap();
        let (a, b) = rest.split_at(rest.len() / 2);
        let give = |cells: Vec<Sent>| {
            std::thread::spawn(move || {
                for cell in cells {
                    // SAFETY: carved above, given back once.
                    unsafe { give_back(cell.0) };
                }
            })
        };
        let ta = give(a.iter().map(|&c| Sent(c)).collect());
        let tb = give(b.iter().map(|&c| Sent(c)).collect());
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(out_of(*keep), 1);
        // The last one frees the page (Miri checks that nothing uses it after).
        // SAFETY: carved above, given back once.
        unsafe { give_back(*keep) };
        for cell in others {
            // SAFETY: carved above, given back once.
            unsafe { give_back(cell) };
        }
    }
}
