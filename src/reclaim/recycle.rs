//! Recycling value cells from the reclaimer back to the writers.
//!
//! A value cell is allocated by a writer and freed by the reclaimer, on another
//! thread. With glibc's allocator that is the worst case: the writer's per-thread
//! cache (tcache) never gets its chunks back, so every allocation takes the arena's
//! slow path, contending with the reclaimer's frees for the arena lock. Profiled
//! (`perf record -e cpu-clock`, a 1-thread insert/remove loop): 42% of the samples in
//! `_int_malloc` on the writer and 19% in `_int_free` on the reclaimer.
//!
//! So cells of up to 256 bytes (alignment up to 8) are recycled in *magazines*
//! (Bonwick's design): each thread keeps a stack of free cells per size class
//! (8-byte steps); a thread that frees many (the reclaimer) moves them to a shared
//! **depot** in batches of [`BATCH`], and a thread that runs out takes a whole batch
//! back. One lock per batch on either side, no atomic per cell. A thread that finds
//! no batch in the depot carves a batch of new cells from its page (`pages.rs`: no
//! allocator header per cell). The depot keeps at most `DEPOT_BYTES` of cells per class;
//! beyond that, cells go back to their pages, and before the reclaimer trims after a
//! large teardown it gives the whole depot (and its own magazines) back
//! ([`flush`]), so that the teardown's pages are freed and its memory returned (see
//! `trim.rs`). A thread's magazines go to the depot when it exits.
//!
//! Under loom (`RECYCLE_CELLS` is false in the shim) cells come from the allocator
//! directly: this is allocation, not the protocol the models check.

use crate::prefetch::prefetch_line;
use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use super::doom_ring::HELP_EVERY;
use super::{page_runs, pages};
use crate::sync::RECYCLE_CELLS;

/// Cells moved between a thread and the depot at once.
pub(crate) const BATCH: usize = 64;
/// Cells a thread's magazine holds per class before it gives a batch to the depot:
/// a writer's headroom of two batches, plus one help's worth (`HELP_EVERY`: a
/// thread that releases values with no destructor destroys about that many at a
/// time into its own magazine, `domain/help.rs`, and allocates as many again
/// before its next help). With two batches only, each help's cells overflowed to
/// the depot and came back by refills: about 380,000 of each in a 1-thread
/// insert/remove run of criterion's (a throwaway counter build), nearly every cell
/// of the helping writer, and 1.8% of an upsert loop's samples (`to_depot`,
/// `refill`; `docs/BENCHMARKS.md`, "History", "A magazine that holds a help").
/// At most 384 cells per class a thread keeps idle: 12 KiB of `u64 → u64` cells,
/// 96 KiB of the largest class.
const MAGAZINE_CELLS: usize = 2 * BATCH + HELP_EVERY;
/// Bytes of cells the depot keeps per size class: 512 KiB, i.e. 16,384 cells of
/// 32 bytes (a `u64 → u64` cell), 2,048 of the largest class; at most 16 MiB over
/// all 32 classes, as with the 4,096 cells per class it kept before. With 4,096
/// `u64` cells, a writer doing 5 M upserts/s outran the depot between two passes of
/// the reclaimer (a pass every 1 ms under load destroys about 5,000 values): the
/// surplus went back to its pages, the pages to the OS, and the writer carved cells
/// from fresh pages again, a page fault per 64 KiB (`perf`: page faults and their
/// memory-cgroup charging about 4% of the samples, `to_depot` 3.9%).
const DEPOT_BYTES: usize = 512 * 1024;

/// Emptied batch buffers the depot keeps per class, for the next batches given to
/// it (`Depot`): enough for the batches that move between two passes of the
/// reclaimer at a writer's pace, 4 KiB of buffers for 8 bytes of `FreeCell`.
const SPARE_BUFFERS: usize = 8;

/// Batches the depot keeps of `class`.
fn depot_batches(class: usize) -> usize {
    DEPOT_BYTES / (BATCH * class_size(class))
}
/// Size classes: 8, 16, ..., 256 bytes.
const CLASSES: usize = 32;

/// A free cell's memory.
#[derive(Clone, Copy)]
struct FreeCell(NonNull<u8>);

// SAFETY: a free cell is plain memory owned by whoever holds the `FreeCell`.
unsafe impl Send for FreeCell {}

/// The size class of a cell type whose cells are recycled (see [`cell_class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CellClass(usize);

/// The size class of `T`'s cells from [`alloc_cell`], if they are recycled (at
/// most 256 bytes, aligned to at most 8, and not under loom): what
/// [`free_cells`] needs to give a run of them back at once.
pub(crate) fn cell_class<T>() -> Option<CellClass> {
    class_of(Layout::new::<T>()).map(CellClass)
}

/// The bytes of each of `T`'s cells from [`alloc_cell`] if they are carved from
/// cell pages (`T` has a class), as `pages.rs` lays them out.
pub(crate) fn carved_size<T>() -> Option<usize> {
    class_of(Layout::new::<T>()).map(class_size)
}

/// The size class of `layout`, if cells of it are recycled.
fn class_of(layout: Layout) -> Option<usize> {
    (RECYCLE_CELLS && layout.align() <= 8 && layout.size() > 0 && layout.size() <= 8 * CLASSES)
        .then(|| layout.size().div_ceil(8) - 1)
}

/// The size of every cell of `class`.
fn class_size(class: usize) -> usize {
    (class + 1) * 8
}

static DEPOT: [Mutex<Depot>; CLASSES] = [const { Mutex::new(Depot::new()) }; CLASSES];

/// One class's share of the depot: whole batches of free cells, and the buffers of
/// batches the writers emptied, which the next batch given to the depot is copied
/// into. Without them each batch was a `Vec` allocated by the thread that gave it
/// (the reclaimer's `split_off`) and freed by the thread that took it and emptied
/// it (a writer): one allocation and one cross-thread free per `BATCH` cells,
/// the worst case of glibc's allocator (see the module's docs).
struct Depot {
    batches: Vec<Vec<FreeCell>>,
    spare: Vec<Vec<FreeCell>>,
}

impl Depot {
    const fn new() -> Self {
        Depot {
            batches: Vec::new(),
            spare: Vec::new(),
        }
    }

    fn lock(class: usize) -> std::sync::MutexGuard<'static, Depot> {
        DEPOT[class].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One thread's free cells, per class.
struct Magazines {
    free: [Vec<FreeCell>; CLASSES],
    /// Cells on their way back to their pages (`Recycle::ToPages`), given back
    /// `BATCH` at a time under one lock of their class, and by [`give_back_held`]
    /// at the end of each teardown slice. One lock per cell had 83% of
    /// `pages::give_back`'s samples in a 1,000,000-entry teardown.
    to_pages: [Vec<FreeCell>; CLASSES],
}

impl Magazines {
    /// A free cell of `class`: recycled, or carved from a page when the depot has
    /// none either.
    #[inline]
    fn pop(&mut self, class: usize) -> FreeCell {
        if let Some(cell) = self.free[class].pop() {
            if let Some(next) = self.free[class].last() {
                // The line of the cell the next `pop` hands out, which the
                // reclaimer's core touched last: fetched while this one is used.
                prefetch_line(next.0.as_ptr());
            }
            return cell;
        }
        self.refill(class)
    }

    /// Takes a batch from the depot, off the inlined path of `pop`; when the depot
    /// has none (a map filling up, whose writers free nothing yet), carves a batch
    /// from this thread's page instead, so that the depot's lock is taken once per
    /// `BATCH` cells, not for every one (a fill of 1,000,000 entries spent 6% of its
    /// samples on that lock and its release, `perf record -e cpu-clock`).
    #[cold]
    #[inline(never)]
    fn refill(&mut self, class: usize) -> FreeCell {
        let free = &mut self.free[class];
        let mut depot = Depot::lock(class);
        match depot.batches.pop() {
            Some(batch) => {
                // The emptied magazine's buffer goes back for the next batch.
                let emptied = std::mem::replace(free, batch);
                if emptied.capacity() >= BATCH && depot.spare.len() < SPARE_BUFFERS {
                    depot.spare.push(emptied);
                }
            }
            None => {
                drop(depot);
                let size = class_size(class);
                free.extend((0..BATCH).map(|_| FreeCell(pages::carve(size))));
                // Handed out in the order they were carved (`pop` takes the last).
                free.reverse();
            }
        }
        free.pop().expect("a refilled magazine holds a batch")
    }

    /// Holds `cell` for its page; gives a batch back once there is one.
    #[inline]
    fn hold_for_page(&mut self, class: usize, cell: FreeCell) {
        let held = &mut self.to_pages[class];
        held.push(cell);
        if held.len() >= BATCH {
            dealloc_all(class, held.drain(..));
        }
    }

    /// Gives every cell held for its page back.
    fn give_back_held(&mut self) {
        for (class, held) in self.to_pages.iter_mut().enumerate() {
            if !held.is_empty() {
                dealloc_all(class, held.drain(..));
            }
        }
    }

    #[inline]
    fn push(&mut self, class: usize, cell: FreeCell) {
        let mine = &mut self.free[class];
        mine.push(cell);
        if mine.len() >= MAGAZINE_CELLS {
            to_depot(class, mine);
        }
    }
}

/// Moves the last `BATCH` cells of `mine` to the depot (into a spare buffer when
/// it has one), or back to their pages if the depot is full.
#[cold]
#[inline(never)]
fn to_depot(class: usize, mine: &mut Vec<FreeCell>) {
    let from = mine.len() - BATCH;
    let mut depot = Depot::lock(class);
    if depot.batches.len() < depot_batches(class) {
        let mut batch = depot.spare.pop().unwrap_or_default();
        batch.extend(mine.drain(from..));
        depot.batches.push(batch);
        return;
    }
    drop(depot);
    dealloc_all(class, mine.drain(from..));
}

impl Drop for Magazines {
    fn drop(&mut self) {
        self.give_back_held();
        for (class, free) in self.free.iter_mut().enumerate() {
            while free.len() >= BATCH {
                to_depot(class, free);
            }
            if !free.is_empty() {
                let rest = std::mem::take(free);
                let mut depot = Depot::lock(class);
                if depot.batches.len() < depot_batches(class) {
                    depot.batches.push(rest);
                } else {
                    drop(depot);
                    dealloc_all(class, rest);
                }
            }
        }
    }
}

std::thread_local! {
    /// Accessed only through [`with_magazines`].
    static MAGAZINES: UnsafeCell<Magazines> = const {
        UnsafeCell::new(Magazines {
            free: [const { Vec::new() }; CLASSES],
            to_pages: [const { Vec::new() }; CLASSES],
        })
    };
}

/// Runs `f` on this thread's magazines; `None` once they are gone (the thread is
/// exiting). Not a `RefCell`: its borrow flag was a load, a test and two stores
/// on every allocation and free of a cell, and no borrow can overlap another
/// here. `f` is one of this module's magazine operations, none of which reaches
/// `MAGAZINES` again (they call the depot's lock, `pages` and the allocator, and
/// no user code), and a thread's magazines are used by that thread alone. (A
/// program's own global allocator that wrote into an `AtomicMap` from inside an
/// allocation would come back here; no allocator may re-enter the code that
/// called it, and with a `RefCell` it was a panic instead.)
#[inline(always)]
fn with_magazines<R>(f: impl FnOnce(&mut Magazines) -> R) -> Option<R> {
    MAGAZINES
        .try_with(|m| {
            // SAFETY: the only `&mut` to this thread's magazines while `f` runs:
            // `f` does not come back here (above), and no other thread sees them.
            f(unsafe { &mut *m.get() })
        })
        .ok()
}

/// Gives every cell of the depot, and of this thread's magazines, back to its page
/// (`pages.rs`). Before a trim (`trim.rs`): a few thousand recycled cells scattered
/// over the heap pin as many pages (a 1,000,000-value teardown kept 16 MiB of RSS
/// that way when cells were `malloc` chunks), and after a large teardown the
/// writers do not need them.
pub(crate) fn flush() {
    with_magazines(|m| {
        m.give_back_held();
        for (class, free) in m.free.iter_mut().enumerate() {
            dealloc_all(class, std::mem::take(free));
        }
    });
    for class in 0..CLASSES {
        let Depot { batches, spare } = std::mem::replace(&mut *Depot::lock(class), Depot::new());
        drop(spare);
        for batch in batches {
            dealloc_all(class, batch);
        }
    }
    page_runs::unmap_pending();
}

/// Gives cells of `class` back to their pages (`pages.rs`), under one lock.
fn dealloc_all(class: usize, cells: impl IntoIterator<Item = FreeCell>) {
    // SAFETY: each cell of a class was carved from a page by `alloc_cell` with the
    // class's size and the page's provenance; owned by `cells` alone, given back once.
    unsafe { pages::give_back_all(class_size(class), cells.into_iter().map(|c| c.0)) };
}

/// Gives back to their pages the cells this thread holds for them
/// (`Recycle::ToPages`): at the end of each teardown slice, so that a page a
/// teardown empties leaves with the slice that emptied it.
pub(crate) fn give_back_held() {
    with_magazines(Magazines::give_back_held);
}

/// Memory for one `T` (a value cell): a recycled cell if one is at hand, else one
/// carved from a page (`pages.rs`); a `T` of no class comes from the allocator.
pub(crate) fn alloc_cell<T>() -> NonNull<T> {
    let layout = Layout::new::<T>();
    if let Some(class) = class_of(layout) {
        return match with_magazines(|m| m.pop(class)) {
            Some(cell) => cell.0.cast(),
            // This thread is exiting and its magazines are gone.
            None => pages::carve(class_size(class)).cast(),
        };
    }
    // SAFETY: `alloc` needs a non-zero size: `layout` is `T`'s own, non-zero because
    // the only caller, `ValueRef::new`, allocates a `ValueCell` (at least its count
    // and home).
    let raw = unsafe { alloc(layout) };
    NonNull::new(raw)
        .unwrap_or_else(|| handle_alloc_error(layout))
        .cast()
}

/// Where a freed cell goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recycle {
    /// To this thread's magazines, and on to the depot: the cells of values
    /// writers replaced or removed, and of small teardowns, which writers will
    /// want again soon.
    ToWriters,
    /// Back to its page (`pages.rs`): the cells of a teardown larger than the
    /// depot keeps ([`for_teardown`]). Held by the freeing thread and given back
    /// `BATCH` at a time; whoever frees to pages calls [`give_back_held`] when it
    /// is done (a teardown, at the end of each slice).
    ToPages,
}

/// Where a teardown of `entries` cells of `T` frees them: back to their pages
/// when they are more than the depot keeps of their class (roughly: `entries`
/// counts the table's entries, some of whose values outlive the teardown in
/// handles and are freed later to the writers, and the depot keeps whole batches,
/// a little under `DEPOT_BYTES` for some classes).
///
/// Recycled, they would be handed to whichever writer is writing meanwhile, one
/// at a time, from every page of the torn-down table (a teardown walks its table
/// in hash order, not in the order the cells were carved): each cell a writer
/// then keeps keeps its whole 64 KiB page, so a map cleared while it was being
/// written to held on to the old generation's pages with a few live cells each
/// (a writer keeping 16,384 `u64` keys through a clear of 1,000,000 held 19 MiB
/// after the teardown and a trim, for about 1 MiB of entries;
/// `docs/BENCHMARKS.md`, "History", "Cells given back are used again").
/// Given back, the pages of a large teardown empty and leave together, and the
/// writers carve new pages, densely. Small teardowns (the clear storm's) still
/// feed the writers, who would otherwise carve and map a page every 2,000 cells.
pub(crate) fn for_teardown<T>(entries: usize) -> Recycle {
    let recycled = class_of(Layout::new::<T>()).is_some();
    if recycled && entries.saturating_mul(size_of::<T>()) > DEPOT_BYTES {
        Recycle::ToPages
    } else {
        Recycle::ToWriters
    }
}

/// Gives back the memory of one `T` from [`alloc_cell`], whose value has been moved
/// out or dropped, to `to` ([`Recycle`]; a `T` of no class goes back to the
/// allocator either way).
///
/// # Safety
/// `cell` came from `alloc_cell::<T>()` (and has that allocation's provenance) and
/// is not used afterwards.
pub(crate) unsafe fn free_cell<T>(cell: NonNull<T>, to: Recycle) {
    let layout = Layout::new::<T>();
    match class_of(layout) {
        Some(class) if to == Recycle::ToPages => {
            let cell = FreeCell(cell.cast());
            if with_magazines(|m| m.hold_for_page(class, cell)).is_none() {
                // SAFETY: `alloc_cell::<T>` carved it from its class's page, with the
                // page's provenance (the contract; the match: a class); given back once,
                // here: this thread is exiting, so its magazines did not take it.
                unsafe { pages::give_back(cell.0) };
            }
        }
        // SAFETY: `free_cells`' contract is this function's, for one cell of a
        // class (the match).
        Some(class) => unsafe { free_cells(CellClass(class), std::iter::once(cell.cast())) },
        // SAFETY: `alloc_cell::<T>` allocated it with `T`'s own layout when `T` has
        // no class (the contract); freed once, here.
        None => unsafe { dealloc(cell.as_ptr().cast(), layout) },
    }
}

/// Gives back the memory of every cell of `cells` to this thread's magazines (on
/// to the depot and the writers, as [`free_cell`] with `Recycle::ToWriters` does
/// for one), with one access to the thread's magazines for the whole run: a pass
/// frees the cells of a map with no destructors this way, a run at a time
/// (`DoomedBatch::destroy_each`), and nothing of a cell is read or written.
///
/// # Safety
/// Each cell came from `alloc_cell::<T>()` (with that allocation's provenance) for
/// a `T` of class `class` ([`cell_class`]), its fields need no drop or were
/// dropped, and it is not used afterwards; `cells` yields each once. Advancing
/// `cells` runs no user code and does not come back to this module's magazine
/// operations (`alloc_cell`, `free_cell`, `free_cells`): it is driven while this
/// thread's magazines are borrowed ([`with_magazines`]'s rule).
pub(crate) unsafe fn free_cells(class: CellClass, cells: impl Iterator<Item = NonNull<u8>>) {
    let mut cells = cells.map(FreeCell);
    if with_magazines(|m| cells.by_ref().for_each(|cell| m.push(class.0, cell))).is_none() {
        // This thread is exiting and its magazines are gone (the closure did not
        // run: every cell is still in `cells`).
        for cell in cells {
            // SAFETY: carved from a page for this class (the contract), given back
            // once, here: no magazine kept it.
            unsafe { pages::give_back(cell.0) };
        }
    }
}

/// Not under loom, whose build does not recycle cells (`RECYCLE_CELLS`).
#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    /// A batch taken from the depot leaves the taker's emptied buffer there, and
    /// the next batch given to the depot is copied into it: no buffer allocated by
    /// one thread and freed by another per batch.
    #[test]
    fn batches_move_in_buffers_the_depot_keeps() {
        /// A size class no other test uses (216 bytes): the depot is the process's.
        type Cell = [u64; 27];
        let class = class_of(Layout::new::<Cell>()).expect("a recycled class");
        let spare = move || Depot::lock(class).spare.len();
        std::thread::spawn(move || {
            let cells: Vec<NonNull<Cell>> = (0..MAGAZINE_CELLS + BATCH)
                .map(|_| alloc_cell::<Cell>())
                .collect();
            for &cell in &cells {
                // SAFETY: from `alloc_cell::<Cell>` above, freed once; nothing to drop.
                unsafe { free_cell(cell, Recycle::ToWriters) };
            }
            // The magazine kept all but two batches, which went to the depot; the
            // cell after the magazine's is the first of a depot's batch.
            let kept = MAGAZINE_CELLS - BATCH;
            let before = spare();
            let taken: Vec<NonNull<Cell>> = (0..=kept).map(|_| alloc_cell::<Cell>()).collect();
            assert_eq!(spare(), before + 1, "the emptied magazine's buffer is kept");
            // Back to a full magazine, of which one batch goes to the depot.
            for &cell in &taken {
                // SAFETY: as above.
                unsafe { free_cell(cell, Recycle::ToWriters) };
            }
            assert_eq!(spare(), before, "the next batch given went into it");
        })
        .join()
        .unwrap();
    }

    /// A help's run of `HELP_EVERY` cells (`free_cells`, as `Domain::help` gives
    /// them back) fits in the magazine of a writer that holds less than two
    /// batches: none goes to the depot, and the writer's next `HELP_EVERY`
    /// allocations take them back without a refill.
    #[test]
    fn a_helps_run_stays_in_the_helpers_magazine() {
        /// A size class no other test uses (224 bytes; `pages.rs`'s tests take 240
        /// and 248): the depot and the page shelf are the process's.
        type Cell = [u64; 28];
        let class = cell_class::<Cell>().expect("a recycled class");
        let depot = move || Depot::lock(class.0).batches.len();
        std::thread::spawn(move || {
            // A writer that took a batch and a half (two refills, carved).
            let held: Vec<NonNull<Cell>> = (0..BATCH + BATCH / 2)
                .map(|_| alloc_cell::<Cell>())
                .collect();
            let run: Vec<NonNull<Cell>> = (0..HELP_EVERY).map(|_| alloc_cell::<Cell>()).collect();
            let before = depot();
            // SAFETY: from `alloc_cell::<Cell>` above, of `class`, each given back
            // once; nothing to drop; the iterator runs no user code.
            unsafe { free_cells(class, run.iter().map(|c| c.cast::<u8>())) };
            assert_eq!(depot(), before, "a help's run overflowed to the depot");
            let again: Vec<NonNull<Cell>> = (0..HELP_EVERY).map(|_| alloc_cell::<Cell>()).collect();
            assert_eq!(depot(), before, "taken back through the depot");
            assert!(
                again.iter().all(|c| run.contains(c)),
                "the run's cells are the next allocations"
            );
            for &cell in held.iter().chain(&again) {
                // SAFETY: as above, given back once.
                unsafe { free_cell(cell, Recycle::ToWriters) };
            }
        })
        .join()
        .unwrap();
    }

    /// A cell of a size class no other test uses (232 bytes): the depot is the
    /// process's.
    type Cell = [u64; 29];

    /// Cells freed to their pages are held, then given back by `give_back_held`
    /// (a teardown slice's end).
    #[test]
    fn cells_freed_to_their_pages_are_given_back_by_the_slice_end() {
        std::thread::spawn(|| {
            const N: usize = 100;
            let cells: Vec<NonNull<Cell>> = (0..N).map(|_| alloc_cell::<Cell>()).collect();
            let first = cells[0].cast::<u8>();
            assert!(
                cells
                    .iter()
                    .all(|c| c.addr().get() / pages::PAGE == first.addr().get() / pages::PAGE),
                "one page holds them"
            );
            // Counted out of the page: these, the magazine's cells carved ahead,
            // and the page's rest, which this thread holds.
            let out = pages::out_of(first);
            for &cell in &cells[1..] {
                // SAFETY: from `alloc_cell::<Cell>` above, freed once.
                unsafe { free_cell(cell, Recycle::ToPages) };
            }
            // A whole batch went back; the rest is held until the slice ends.
            assert_eq!(pages::out_of(first), out - BATCH);
            give_back_held();
            assert_eq!(pages::out_of(first), out - (N - 1));
            // SAFETY: as above.
            unsafe { free_cell(cells[0], Recycle::ToPages) };
            give_back_held();
            assert_eq!(pages::out_of(first), out - N);
            // The thread's exit gives the magazine's cells to the depot.
        })
        .join()
        .unwrap();
    }
}
