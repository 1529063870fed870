//! Cell pages: where recycled value cells come from when no recycled one is at hand.
//!
//! A value cell of a size class (`recycle.rs`) used to be one `malloc` chunk: glibc
//! rounds a 32-byte `u64 → u64` cell up to a 48-byte chunk (an 8-byte header, 16-byte
//! granularity), a third of the cell's memory. Cells of a class are all the same
//! size, so they are carved instead from 64 KiB *pages*, aligned to their size, with
//! no header per cell, and a cell given back finds its page by masking its address.
//!
//! A page has a head (its stores and their lock's class), one cache line on one of
//! 32 lines picked by the page's address (`head_offset`: heads at the start of
//! every page all fell into the same few cache sets), with cells around it.
//!
//! A page has two stores of cells it can hand out: the cells it has never handed out
//! (from `bump` to its end, past the head) and the cells given back to it (a list linked through
//! their first word). A thread carving cells of a class *holds* one page at a time:
//! it takes both stores of the page at once, under its class's lock, and then hands
//! out their cells one after another with no lock or atomic (a pop of its own list,
//! a bump of its own offset). Cells given back (by the recycler, when its depot is
//! full or it flushes before a trim, by large teardowns: `recycle::Recycle`, and by
//! threads that free cells while they exit) go on their page's list under the
//! lock, as do the stores a thread holds when it exits. A page whose stores reach a quarter of its
//! cells goes on its class's *shelf*, and a thread whose page is used up takes a
//! shelved page before it maps a new one, so that cells given back are used again
//! instead of sitting in pages that other cells keep. When every cell of a page is
//! back in its stores, the page is released to be unmapped (`page_runs.rs`: with its
//! adjacent pages, at the end of the teardown slice at the latest), so a teardown's
//! memory goes back to the OS once its cells leave the recycler.
//!
//! Why the lists and the shelf: until 2026-12-03 a cell given back only counted
//! down its page, which freed the page when the last came back; the cells before
//! it could not be used again, and every cell still in use anywhere kept its whole
//! page. Under a steady stream of replacements the recycler's depot overflows, and
//! its surplus went back to pages whose other cells the writers' values still
//! used: one thread replacing the values of 100,000 `u64` keys 20,000,000 times
//! took the map from 55.8 to 136.4 bytes per entry; with the lists and the shelf,
//! to 93.9 (`docs/BENCHMARKS.md`, "History", "Cells given back are used again").
//!
//! Under loom the recycler is off (`RECYCLE_CELLS`), and so are pages.

use std::cell::{RefCell, UnsafeCell};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::page_runs;

/// Bytes per page (and its alignment).
pub(crate) const PAGE: usize = 64 * 1024;

/// Size classes of cells: 8, 16, ..., 256 bytes.
const CLASSES: usize = 32;

/// The head of a page, a cache line of its own so that no cell shares it. It sits
/// [`head_offset`] bytes into the page, not at its start: see there.
#[repr(C, align(64))]
struct PageHead {
    /// The size of the page's cells: written when the page is mapped, before any
    /// cell of it exists, and never again.
    size: usize,
    /// Read and written only under the lock of the page's class (`SHELVES`).
    stores: UnsafeCell<Stores>,
}

/// What a page can hand out, and how many of its cells are out.
struct Stores {
    /// Cells not in this page's stores: handed out and not given back, or in the
    /// stores a thread holds.
    out: usize,
    /// Cells given back, linked through their first word (null ends the list).
    given_back: *mut u8,
    /// Cells on `given_back`.
    given_back_len: usize,
    /// Offset of the first cell never handed out (`PAGE` once there is none; one
    /// on or overlapping the head stands for the first cell after it).
    bump: usize,
    /// The page's place on its class's shelf, while it is there.
    shelved_at: Option<usize>,
}

/// The bytes of a page's head.
const HEAD: usize = size_of::<PageHead>();

/// How many places a page's head takes, one line apart.
const HEAD_COLORS: usize = 32;

/// The offset of the head in the page at address `base`: the page's place in
/// the address space, modulo [`HEAD_COLORS`], in lines.
///
/// At the start of every page, the heads of all pages would map to the same few
/// sets of every cache: pages are aligned to 64 KiB, so their first lines share
/// the address bits (6 to 15) that pick a set, and a 2 MiB, 16-way L2 keeps 32
/// of them at most, in 2 of its 2,048 sets. A large teardown gives cells back to
/// their pages in hash order, one page head after another at random, 512 pages
/// for 1,000,000 `u64` entries: with every head at the start of its page, each
/// give-back missed the L2 (`perf annotate` of `Shelf::give_back`: 85% of its
/// samples on the load of the page's list). 32 places spread the heads over 32
/// times as many sets (`docs/BENCHMARKS.md`, "History", "Page heads spread over
/// the cache's sets").
fn head_offset(base: usize) -> usize {
    base / PAGE % HEAD_COLORS * HEAD
}

/// The offset in its page of the head of the page at `page` (a head pointer).
fn head_of(page: NonNull<PageHead>) -> usize {
    page.as_ptr().addr() % PAGE
}

/// How many cells of `size` bytes a page whose head is at offset `head` hands out
/// by bump from offset `bump` on (a cell boundary of the page, or `PAGE`): the
/// cells that fit before the head, then those from the end of the head on. The
/// bump skips the head ([`Holding::hand_out`]).
fn unbumped(bump: usize, size: usize, head: usize) -> usize {
    let before = if bump + size <= head {
        (head - bump) / size
    } else {
        0
    };
    before + (PAGE - bump.max(head + HEAD).min(PAGE)) / size
}

/// The offset of the cell a page whose head is at offset `head` hands out by
/// bump from offset `bump` on, if one of `size` bytes is left: at `bump`, or
/// after the head if a cell at `bump` would overlap it.
fn bump_place(bump: usize, size: usize, head: usize) -> Option<usize> {
    let at = if bump + size > head && bump < head + HEAD {
        head + HEAD
    } else {
        bump
    };
    (at + size <= PAGE).then_some(at)
}

/// Cells in a page of cells of `size` bytes whose head is at offset `head`.
fn cells_in_page(size: usize, head: usize) -> usize {
    unbumped(0, size, head)
}

/// A page whose stores hold at least this many cells is shelved: a quarter of a
/// page's cells (of a page with its head at the start; the others hold at most one
/// more or one fewer).
fn shelve_at(size: usize) -> usize {
    cells_in_page(size, 0) / 4
}

/// A page's head pointer, shelved under its class's lock.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PagePtr(NonNull<PageHead>);

// SAFETY: a page is shared memory whose stores are only used under its class's
// lock; the pointer itself is plain data.
unsafe impl Send for PagePtr {}

/// The pages of one class whose stores hold at least `shelve_at` cells. Its lock is
/// the lock of every page of the class.
struct Shelf {
    pages: Vec<PagePtr>,
}

static SHELVES: [Mutex<Shelf>; CLASSES] =
    [const { Mutex::new(Shelf { pages: Vec::new() }) }; CLASSES];

/// The lock of the class of cells of `size` bytes.
fn lock(size: usize) -> MutexGuard<'static, Shelf> {
    // A poisoned lock still guards consistent pages as far as a panic under it can
    // leave them: what runs under it is arithmetic, list links and `Vec` pushes
    // (whose allocation failure aborts; a capacity overflow cannot happen with
    // fewer pages than addresses), besides debug assertions of invariants that a
    // panic there has already found broken, and `give_back_all`'s iterator of
    // cells (the recycler's `Vec`s).
    SHELVES[size / 8 - 1]
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

impl Shelf {
    /// The stores of `page`, a page of this shelf's class.
    ///
    /// # Safety
    /// `page` is a live page of this class; no other reference to its stores is
    /// alive (they are only reached through this function, under the class's lock,
    /// which `&mut self` holds).
    unsafe fn stores(&mut self, page: NonNull<PageHead>) -> &mut Stores {
        // SAFETY: the contract: a live page, its stores reached under the lock only.
        unsafe { &mut *page.as_ref().stores.get() }
    }

    /// Takes off the shelf the page shelved at `at`.
    fn unshelve(&mut self, at: usize) {
        self.pages.swap_remove(at);
        if let Some(&moved) = self.pages.get(at) {
            // SAFETY: a shelved page is live (a page leaves the shelf before it is
            // unmapped), of this class, reached under the lock.
            unsafe { self.stores(moved.0) }.shelved_at = Some(at);
        }
    }

    /// Takes the stores of a shelved page, if there is one.
    fn take_shelved(&mut self) -> Option<Holding> {
        let page = *self.pages.last()?;
        self.unshelve(self.pages.len() - 1);
        // SAFETY: a shelved page is live, of this class, reached under the lock.
        let stores = unsafe { self.stores(page.0) };
        stores.shelved_at = None;
        // SAFETY: a shelved page is live; these are its stores, under the lock.
        Some(unsafe { take_stores(page.0, stores) })
    }

    /// Puts `cell` on its page's list: one cell out fewer (see [`returned`](Self::returned)).
    ///
    /// # Safety
    /// `cell` was handed out by a page of this class, is not in use and is given
    /// back once, with its page's provenance.
    unsafe fn give_back(&mut self, cell: NonNull<u8>) {
        let page = page_of(cell);
        // SAFETY: the page of a cell that is out is live (it is unmapped only when
        // no cell is out), of this class (the contract); under the lock.
        let stores = unsafe { self.stores(page) };
        // SAFETY: the cell is free (the contract) and at least 8 bytes, aligned to
        // 8 (a class's cells are multiples of 8 in an aligned page): its first word
        // is the link.
        unsafe { link(cell, stores) };
        // SAFETY: the page is live, the cell just put in its stores was out.
        unsafe { self.returned(page, 1) };
    }

    /// Counts `cells` of `page` back in its stores (put there by the caller). Unmaps
    /// the page if no cell is out any more; shelves it if its stores now hold at
    /// least `shelve_at` cells.
    ///
    /// # Safety
    /// `page` is a live page of this class, and the caller has just put `cells` of
    /// its cells that were out in its stores.
    unsafe fn returned(&mut self, page: NonNull<PageHead>, cells: usize) {
        // SAFETY: live (the contract); `size` never changes.
        let size = unsafe { page.as_ref() }.size;
        let shelved = self.pages.len();
        // SAFETY: live, of this class (the contract); under the lock.
        let stores = unsafe { self.stores(page) };
        debug_assert!(stores.out >= cells, "more cells given back than were out");
        stores.out -= cells;
        if stores.out == 0 {
            // Every cell is in the page's stores: nobody holds or uses any of it.
            if let Some(at) = stores.shelved_at {
                self.unshelve(at);
            }
            // SAFETY: from `page_runs::map_page` (`Holding::fresh`); no cell of it is
            // out or held, and it is off the shelf: no other use of it remains, and
            // with `out` at 0 this happens once.
            unsafe { page_runs::release(base_of(page)) };
            return;
        }
        let available = stores.given_back_len + unbumped(stores.bump, size, head_of(page));
        if stores.shelved_at.is_none() && available >= shelve_at(size) {
            stores.shelved_at = Some(shelved);
            self.pages.push(PagePtr(page));
        }
    }
}

/// Puts a free `cell` on the list of `stores`, its page's.
///
/// # Safety
/// `cell` is free, of at least 8 bytes and aligned to 8, a cell of the page of
/// `stores`, and on no list.
unsafe fn link(cell: NonNull<u8>, stores: &mut Stores) {
    // SAFETY: the contract: its first word is free for the link.
    unsafe { cell.as_ptr().cast::<*mut u8>().write(stores.given_back) };
    stores.given_back = cell.as_ptr();
    stores.given_back_len += 1;
}

/// The head of the page a cell lies in.
fn page_of(cell: NonNull<u8>) -> NonNull<PageHead> {
    let page = cell
        .as_ptr()
        .map_addr(|address| {
            let base = address & !(PAGE - 1);
            base + head_offset(base)
        })
        .cast::<PageHead>();
    // A cell lies in its page, which starts at the cell's address rounded down to
    // `PAGE` (pages are aligned to `PAGE`) and has its head at `head_offset`; the
    // cell's pointer carries the page's provenance.
    NonNull::new(page).expect("a page is never at address 0")
}

/// The start of the page whose head is at `page`.
fn base_of(page: NonNull<PageHead>) -> NonNull<u8> {
    // The head lies `head_of(page)` bytes into its page, with its provenance.
    let base = page.as_ptr().cast::<u8>().wrapping_sub(head_of(page));
    NonNull::new(base).expect("a page is never at address 0")
}

/// Moves both stores of `page` to a thread: they count as out from now on.
///
/// # Safety
/// `page` is a live page, `stores` its stores, reached under its class's lock.
unsafe fn take_stores(page: NonNull<PageHead>, stores: &mut Stores) -> Holding {
    // SAFETY: `page` is live (the contract); its `size` was written at its mapping.
    let size = unsafe { page.as_ref() }.size;
    let holding = Holding {
        page,
        given_back: stores.given_back,
        bump: stores.bump,
        size,
    };
    stores.out += stores.given_back_len + unbumped(stores.bump, size, head_of(page));
    stores.given_back = ptr::null_mut();
    stores.given_back_len = 0;
    stores.bump = PAGE;
    holding
}

/// The stores of one page a thread holds, to hand out cells of one size.
struct Holding {
    /// The page's head.
    page: NonNull<PageHead>,
    /// Cells given back to the page before this thread took them.
    given_back: *mut u8,
    /// Offset of the next cell never handed out (the head's, or one that
    /// overlaps it, stands for the first cell after the head).
    bump: usize,
    size: usize,
}

impl Holding {
    /// A newly mapped page for cells of `size` bytes (at most 256, a multiple of
    /// 8), held by the caller: all of its cells out.
    fn fresh(size: usize) -> Self {
        let base = page_runs::map_page();
        let head = head_offset(base.as_ptr().addr());
        // SAFETY: `head + HEAD <= PAGE` (`HEAD_COLORS` lines fit in a page): the
        // head lies inside the fresh page.
        let page = unsafe { base.add(head) }.cast::<PageHead>();
        // SAFETY: a fresh page: `PAGE` bytes, zeroed, aligned to `PAGE`, which holds a
        // `PageHead` at `head` (a multiple of its alignment); written before any
        // cell of it exists.
        unsafe {
            page.write(PageHead {
                size,
                stores: UnsafeCell::new(Stores {
                    out: cells_in_page(size, head),
                    given_back: ptr::null_mut(),
                    given_back_len: 0,
                    bump: PAGE,
                    shelved_at: None,
                }),
            })
        };
        Holding {
            page,
            given_back: ptr::null_mut(),
            bump: 0,
            size,
        }
    }

    /// The next cell, if the held stores have one left.
    fn hand_out(&mut self) -> Option<NonNull<u8>> {
        if let Some(cell) = NonNull::new(self.given_back) {
            // SAFETY: a cell on the list this thread took: free, at least 8
            // bytes, its first word the link written when it was given back
            // (under the lock this thread took after).
            self.given_back = unsafe { cell.as_ptr().cast::<*mut u8>().read() };
            return Some(cell);
        }
        let at = bump_place(self.bump, self.size, head_of(self.page))?;
        // SAFETY: `bump_place` gives a cell that ends before the head or starts
        // after it, and ends by `PAGE`: it lies inside the page, off its head, and
        // is handed out once (the offset moves past it).
        let cell = unsafe { base_of(self.page).add(at) };
        self.bump = at + self.size;
        Some(cell)
    }
}

impl Drop for Holding {
    /// The thread lets go of the page: when it exits, the cells it still holds go
    /// back to the page's stores (a holding replaced because it is used up holds
    /// none, and does nothing).
    fn drop(&mut self) {
        let unused = unbumped(self.bump, self.size, head_of(self.page));
        if self.given_back.is_null() && unused == 0 {
            // Nothing held: the page may be gone already (every cell given back).
            return;
        }
        let mut shelf = lock(self.size);
        // SAFETY: the page is live: the cells held here are counted out; under the
        // lock.
        let stores = unsafe { shelf.stores(self.page) };
        let mut returned = 0;
        let mut next = self.given_back;
        while let Some(cell) = NonNull::new(next) {
            // SAFETY: a cell of the held list: its first word is its link (as in
            // `hand_out`).
            next = unsafe { cell.as_ptr().cast::<*mut u8>().read() };
            // SAFETY: a held cell of this page, free, now on the page's list only.
            unsafe { link(cell, stores) };
            returned += 1;
        }
        if unused > 0 {
            debug_assert_eq!(stores.bump, PAGE, "a held page's bump is its holder's");
            stores.bump = self.bump;
            returned += unused;
        }
        // SAFETY: the page is live, and `returned` held cells are back in its stores.
        unsafe { shelf.returned(self.page, returned) };
    }
}

std::thread_local! {
    /// The page this thread hands out cells from, per size class.
    static HELD: RefCell<[Option<Holding>; CLASSES]> = const {
        RefCell::new([const { None }; CLASSES])
    };
}

/// A page's stores for a thread: a shelved page's, or a new page's.
fn hold(size: usize) -> Holding {
    // The lock is not held while a new page is mapped.
    let shelved = lock(size).take_shelved();
    shelved.unwrap_or_else(|| Holding::fresh(size))
}

/// A cell of `size` bytes (a multiple of 8, at most 256), aligned to 8, from this
/// thread's page of its class. Give it back with [`give_back`].
pub(crate) fn carve(size: usize) -> NonNull<u8> {
    debug_assert!(size % 8 == 0 && (8..=256).contains(&size));
    let class = size / 8 - 1;
    HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        let slot = &mut held[class];
        if let Some(cell) = slot.as_mut().and_then(Holding::hand_out) {
            return cell;
        }
        // Used up (or this is the first): the next page's stores replace them.
        // The old holding is empty, and its drop gives nothing back.
        let mut next = hold(size);
        let cell = next.hand_out().expect("a held page has a cell");
        *slot = Some(next);
        cell
    })
    .unwrap_or_else(|_| {
        // The thread is exiting and has let go of its pages: a page's stores for
        // this cell alone (given back at once).
        let mut alone = hold(size);
        alone.hand_out().expect("a held page has a cell")
    })
}

/// Gives back a cell from [`carve`] to its page; the last cell of a page out unmaps
/// the page.
///
/// # Safety
/// `cell` came from `carve` (with the provenance `carve` gave it, which covers its
/// whole page), is given back once and not used afterwards.
pub(crate) unsafe fn give_back(cell: NonNull<u8>) {
    // SAFETY: the page of a cell that is out is live; its size never changes.
    let size = unsafe { page_of(cell).as_ref() }.size;
    // SAFETY: the contract.
    unsafe { lock(size).give_back(cell) };
}

/// Gives back cells of `size` bytes from [`carve`], under one lock.
///
/// # Safety
/// As for [`give_back`], for each cell; every cell is of `size` bytes.
pub(crate) unsafe fn give_back_all(size: usize, cells: impl IntoIterator<Item = NonNull<u8>>) {
    let mut shelf = lock(size);
    for cell in cells {
        // SAFETY: the contract.
        debug_assert_eq!(unsafe { page_of(cell).as_ref() }.size, size);
        // SAFETY: the contract.
        unsafe { shelf.give_back(cell) };
    }
}

/// Cells out of the page of `cell`, a cell that is out: for tests.
#[cfg(test)]
pub(crate) fn out_of(cell: NonNull<u8>) -> usize {
    let page = page_of(cell);
    // SAFETY: the page of a cell that is out is live; `size` never changes.
    let size = unsafe { page.as_ref() }.size;
    let mut shelf = lock(size);
    // SAFETY: live, of this class, under its lock.
    unsafe { shelf.stores(page) }.out
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
            let head = head_of(page_of(*cell));
            assert!(
                offset + 32 <= head || offset >= head + HEAD,
                "a cell on its page's head"
            );
            assert!(offset + 32 <= PAGE);
            assert_eq!(cell.as_ptr().addr() % 8, 0);
            // A cell whose size divides a line lies in one line (the head fills one).
            assert_eq!(
                offset / 64,
                (offset + 31) / 64,
                "a 32-byte cell spans two lines"
            );
            // SAFETY: 32 bytes of a carved cell, ours alone.
            unsafe { cell.as_ptr().cast::<[u64; 4]>().write([7; 4]) };
        }
        for cell in cells {
            // SAFETY: carved above, given back once.
            unsafe { give_back(cell) };
        }
    }

    /// Wherever its head is, a page hands out by bump exactly the cells it counts
    /// (`unbumped`, which the page's count of cells out and the shelf rely on),
    /// none of them on the head.
    #[test]
    fn a_bump_skips_the_head_and_counts_what_is_left() {
        // Under Miri (which runs this module's tests in CI) a few of each.
        let (colors, sizes): (usize, &[usize]) = if cfg!(miri) {
            (10, &[24, 248])
        } else {
            (1, &[8, 24, 32, 48, 64, 136, 248, 256])
        };
        for color in (0..HEAD_COLORS).step_by(colors) {
            let head = color * HEAD;
            for &size in sizes {
                let mut bump = 0;
                let mut handed = Vec::new();
                while let Some(at) = bump_place(bump, size, head) {
                    assert_eq!(
                        unbumped(bump, size, head),
                        cells_in_page(size, head) - handed.len(),
                        "size {size}, head at {head}, bump at {bump}"
                    );
                    assert!(at + size <= head || at >= head + HEAD, "a cell on the head");
                    handed.push(at);
                    bump = at + size;
                }
                assert_eq!(unbumped(bump, size, head), 0);
                assert_eq!(handed.len(), cells_in_page(size, head));
                // A page with its head at the start has at most one cell more or
                // fewer (the shelf's quarter is taken from it).
                assert!(handed.len().abs_diff(cells_in_page(size, 0)) <= 1);
            }
        }
    }

    /// The heads of neighbouring pages lie on different lines of their pages, so
    /// that they do not all fall into the cache sets of a page's first line.
    #[test]
    fn neighbouring_pages_put_their_heads_on_different_lines() {
        let base = 1 << 30;
        let mut offsets: Vec<usize> = (0..HEAD_COLORS)
            .map(|i| head_offset(base + i * PAGE))
            .collect();
        assert!(offsets.iter().all(|&o| o % HEAD == 0 && o + HEAD <= PAGE));
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), HEAD_COLORS);
    }

    struct Sent(NonNull<u8>);
    // SAFETY: a carved cell is plain memory, owned by whoever holds it.
    unsafe impl Send for Sent {}

    #[test]
    fn a_page_counts_its_cells_out_across_threads() {
        // A class no other test of this binary carves from: a page of a shared
        // class may come back partly carved by another test's thread (24 bytes,
        // used here once, is a `u64` value's cell on 32-bit targets).
        const SIZE: usize = 232;
        // More than two pages' worth: the first page is carved whole, and its
        // carver has left it.
        let cells: Vec<_> = (0..2 * cells_in_page(SIZE, 0) + 10)
            .map(|_| carve(SIZE))
            .collect();
        let first = cells[0];
        let per_page = cells_in_page(SIZE, head_of(page_of(first)));
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

    /// Cells given back to a page its holder has let go of are handed out again
    /// before a new page is mapped (until 2026-12-03 they were lost until the
    /// page's last cell came back).
    #[test]
    fn cells_given_back_are_handed_out_again() {
        // A size no value cell of the other tests has: the shelf is the process's.
        const SIZE: usize = 248;
        // Two pages used up: the first let go of, the second held, empty (each
        // page's count of cells depends on where its head is).
        let mut cells = vec![carve(SIZE)];
        let first = page_of(cells[0]);
        let per_page = cells_in_page(SIZE, head_of(first));
        cells.extend((1..=per_page).map(|_| carve(SIZE)));
        let second = page_of(*cells.last().unwrap());
        assert_ne!(second, first);
        cells.extend((1..cells_in_page(SIZE, head_of(second))).map(|_| carve(SIZE)));
        let (mine, others): (Vec<_>, Vec<_>) =
            cells.into_iter().partition(|&c| page_of(c) == first);
        assert_eq!(mine.len(), per_page);
        // Half of the first page's cells come back: more than a quarter, so it is
        // shelved.
        let (back, kept) = mine.split_at(per_page / 2);
        // SAFETY: carved above, each given back once.
        unsafe { give_back_all(SIZE, back.iter().copied()) };
        assert_eq!(out_of(kept[0]), per_page - back.len());
        // The held page is used up: the next cells come from the shelved page's list.
        let again: Vec<_> = (0..back.len()).map(|_| carve(SIZE)).collect();
        assert!(again.iter().all(|&c| page_of(c) == first));
        let mut reused: Vec<usize> = again.iter().map(|c| c.as_ptr().addr()).collect();
        let mut given: Vec<usize> = back.iter().map(|c| c.as_ptr().addr()).collect();
        reused.sort_unstable();
        given.sort_unstable();
        assert_eq!(reused, given);
        assert_eq!(out_of(kept[0]), per_page);
        for cell in again.into_iter().chain(kept.iter().copied()).chain(others) {
            // SAFETY: carved above, given back once.
            unsafe { give_back(cell) };
        }
    }

    /// A thread that exits gives its held cells back to their page: with every
    /// handed-out cell given back too, the page is unmapped (Miri reports a page
    /// that is not, as a leak, and any later use of it).
    #[test]
    fn an_exiting_thread_gives_back_what_it_holds() {
        const SIZE: usize = 240;
        let cells: Vec<Sent> = std::thread::spawn(|| (0..3).map(|_| Sent(carve(SIZE))).collect())
            .join()
            .unwrap();
        // The exited thread's unused cells are back: only the three are out.
        assert_eq!(out_of(cells[0].0), 3);
        for cell in cells {
            // SAFETY: carved above, given back once.
            unsafe { give_back(cell.0) };
        }
    }
}
