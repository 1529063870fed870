//! `ValueCell` and `ValueRef`: a value and its reference count.
//!
//! A value lives in one heap cell together with its count of references. Every
//! holder owns exactly one reference: the generation whose table maps a key to it,
//! each [`ValueRef`] handle, and each C retain (through the FFI crate). The cell also
//! points at its map's account (`reclaim/home.rs`), which the last release needs to
//! reach the map's reclaimer; that pointer takes no reference count (the account
//! outlives every cell made for it), so creating and releasing a value writes no
//! line that other threads write.
//!
//! Releasing the last reference never frees the cell at once: a reader pinned under a
//! [`ReadGuard`](crate::ReadGuard) may have loaded the pointer just before the value
//! was removed, so the value is handed to the reclaimer as *doomed*, and destroyed
//! there after an epoch grace period (see `doomed.rs`). The one exception is the
//! teardown of a whole retired generation on the reclaimer: no guard can reach such a
//! generation any more, so a value whose last reference was that generation's is
//! destroyed at once (see [`ValueRef::release_unreachable`]).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull};

use crate::reclaim::domain::Domain;
use crate::reclaim::doomed::{CellHead, DOOMED};
use crate::reclaim::home::HomeRef;
use crate::reclaim::recycle::{self, CellClass, Recycle};
pub(crate) use crate::reclaim::report::{DropOutcome, abort_with};
use crate::reclaim::stripe::{ThreadStripe, chosen_thread_stripe};
use crate::sync::{Arc, AtomicUsize, Ordering};

mod table_ref;
pub(crate) use table_ref::TableRef;

/// `fence(Acquire)` after a read of `refs`. ThreadSanitizer does not model
/// standalone fences, so under it (`--cfg atomic_map_sanitize_thread`, with
/// `-Zsanitizer=thread`: the `.ci/run` step) an Acquire load of the same atomic
/// stands in, as in std's `Arc::drop`: it reads the value just read or a later one
/// of the same release sequence, and so synchronizes with the same releases.
/// Without the switch, TSan reported the recycling of a cell destroyed after
/// `release_unreachable`'s fence as a race with the reader whose Release decrement
/// came before it (a false positive: in half of the runs of `tests/stress.rs`).
#[inline(always)]
fn acquire_fence(refs: &AtomicUsize) {
    #[cfg(not(atomic_map_sanitize_thread))]
    {
        let _ = refs;
        crate::sync::fence(Ordering::Acquire);
    }
    #[cfg(atomic_map_sanitize_thread)]
    {
        let _ = refs.load(Ordering::Acquire);
    }
}

/// The count's top bit: set while a table maps the value. The table's reference is
/// this bit, not a unit of the count, so that the bits below count the *holders*
/// alone (handles and C retains): a holder giving back more references than it
/// took is caught while the value is still mapped (the count of holders would go
/// below zero), instead of silently taking the table's reference and destroying a
/// value that `get` still hands out (the CoreFoundation over-release halt).
const MAPPED: usize = 1 << (usize::BITS - 1);

/// Holder counts above this abort the process instead of risking a wrap-around
/// into the `MAPPED` bit: like `std::sync::Arc`, a count cannot reach it without a
/// leak of handles. Below `DOOMED`, the tag of a doomed cell's count word, so that
/// no count is ever mistaken for one (`check_retain`, `check_release`).
const MAX_REFS: usize = DOOMED - 1;

/// Set in a handle's cell pointer (its lowest bit: a cell holds a `usize`, so its
/// address is aligned to at least 4)
/// when the handle owns the table's reference (`MAPPED`) rather than a holder's:
/// the handle that `remove`, a replacing `insert` or `compute` returns. Handing the
/// table's reference over thus costs no atomic step; dropping the handle gives up
/// `MAPPED` (one `fetch_sub`, as an eviction does), which is the only step most such
/// handles ever take: a `remove` whose result is dropped at once paid two locked
/// read-modify-writes on the count before (`MAPPED` → 1, then 1 → 0), and pays one.
/// Until the handle goes, a reader that loaded the cell pointer before the remove
/// may still take a reference on the value (`retain_if_mapped`): its `get` began
/// before the remove ended, so returning the removed value is a linearizable
/// outcome (`docs/DESIGN.md`, "Linearizability").
const HANDED_OVER: usize = 1;

/// The heap cell behind every value of the map: what a holder needs (the count and
/// the value), what the last release must reach (the map's account), and the key
/// the table maps to it.
///
/// `repr(C)`, starting with the fields of [`CellHead`] in the same order, so that
/// the reclaimer can reach the count word (the doomed list's link) and the home of a
/// type-erased cell. The key comes last: the offsets of `refs`, `home` and `value`
/// depend only on the fields before them, so a `ValueCell<V, K>` starts with a
/// `ValueCell<V>` (= `ValueCell<V, ()>`), which is what handles point at (checked
/// below). A handle never touches the key; the table reads it, and the cell's
/// destruction (which knows `K`: `destroy_doomed::<K>`, a teardown) drops it.
///
/// Why the key lives here and not in the table's slots: a table's rehash would
/// have to move the keys to a new array while readers pinned before it still
/// borrow them from the old one, i.e. two live copies of one key, which is unsound
/// for a key with interior mutability (a `Mutex<String>` field that `Eq` ignores,
/// mutated through one copy, frees memory the other still points at). Here a key
/// never moves, and a rehash moves only pointers (docs/DESIGN.md, "The table").
#[repr(C)]
pub(crate) struct ValueCell<V, K = ()> {
    /// `MAPPED` while a table maps the value, plus one per Rust handle and C retain;
    /// once the cell is doomed (the count reached 0), the doomed list's link
    /// (`reclaim/doomed.rs`).
    refs: AtomicUsize,
    /// The map's account: alive until this cell is destroyed (`reclaim/home.rs`).
    home: HomeRef,
    value: V,
    /// The key a table maps to this value; immutable, dropped with the value.
    key: K,
}

// `repr(C)` puts `refs` and `home` first, at offsets that do not depend on `V`:
// the same as `CellHead`'s. Checked for a small and an over-aligned `V`.
const _: () = {
    use std::mem::offset_of;
    #[repr(align(64))]
    struct Wide(#[allow(dead_code)] u8);
    assert!(offset_of!(ValueCell<u8>, refs) == offset_of!(CellHead, refs));
    assert!(offset_of!(ValueCell<u8>, home) == offset_of!(CellHead, home));
    assert!(offset_of!(ValueCell<Wide>, refs) == offset_of!(CellHead, refs));
    assert!(offset_of!(ValueCell<Wide>, home) == offset_of!(CellHead, home));
    // The key, whatever its type, comes after the value: `value` keeps its offset.
    assert!(offset_of!(ValueCell<u8, Wide>, value) == offset_of!(ValueCell<u8>, value));
    assert!(offset_of!(ValueCell<Wide, u8>, value) == offset_of!(ValueCell<Wide>, value));
    assert!(offset_of!(ValueCell<u8, String>, value) == offset_of!(ValueCell<u8>, value));
};

/// A retained handle on a value of an [`AtomicMap`](crate::AtomicMap).
///
/// A `ValueRef` owns one reference to the value: the value stays valid while the
/// handle lives, across [`clear_async`](crate::AtomicMap::clear_async), `remove`,
/// `replace` and the drop of the map itself. Cloning a handle adds a reference
/// (one atomic increment); dropping it removes one. When the last reference goes,
/// the value is destroyed later, once no pinned reader can still see it.
///
/// ```
/// use atomic_map::AtomicMap;
///
/// let map = AtomicMap::new();
/// map.insert("config", vec![1, 2, 3]);
/// let held = map.get("config").unwrap();
/// map.clear_async();
/// drop(map);
/// assert_eq!(*held, [1, 2, 3]); // still valid: the handle holds the value
/// ```
pub struct ValueRef<V> {
    /// The cell, with `HANDED_OVER` set if this handle owns the table's reference.
    cell: NonNull<ValueCell<V>>,
    _owns: PhantomData<ValueCell<V>>,
}

// SAFETY: like `Arc<V>` it needs `V: Send + Sync`: it lends `&V` on its thread, and
// its last release hands `V` to the reclaimer's pass (`release_raw`, `doomed.rs`);
// the rest of the cell is an atomic count and a `HomeRef` (`Send + Sync`).
unsafe impl<V: Send + Sync> Send for ValueRef<V> {}
// SAFETY: as above; `&ValueRef` only gives `&V` and clones (an atomic increment),
// and a clone may carry the value to another thread (hence `V: Send` too).
unsafe impl<V: Send + Sync> Sync for ValueRef<V> {}

impl<V> ValueRef<V> {
    /// The cell, without the `HANDED_OVER` tag.
    #[inline(always)]
    fn ptr(&self) -> NonNull<ValueCell<V>> {
        // The tag is the lowest bit of an address aligned to at least 4: the address
        // without it is the cell's, non-zero, with the same provenance.
        self.cell.map_addr(|addr| {
            std::num::NonZero::new(addr.get() & !HANDED_OVER).expect("a cell's address")
        })
    }

    /// The reference this handle owns: the table's (`MAPPED`) or a holder's (1).
    #[inline(always)]
    fn unit(&self) -> usize {
        if self.cell.addr().get() & HANDED_OVER != 0 {
            MAPPED
        } else {
            1
        }
    }

    fn cell(&self) -> &ValueCell<V> {
        // Soundness: `self.ptr()` is the pointer `alloc_cell` returned (or one with its
        // provenance, from `cell_of`), written whole in `new`; this handle owns a
        // reference, so the count is at least 1 and the cell is not destroyed for as
        // long as `&self` lives (`destroy` needs the count at 0). Only shared access:
        // the count is atomic and `value` is mutated only by `destroy`.
        // SAFETY: this handle's reference keeps the cell alive (above).
        unsafe { self.ptr().as_ref() }
    }

    /// Borrows the value behind a raw cell pointer.
    ///
    /// # Safety
    /// The caller must keep the cell alive for `'a`: it loaded `cell` from a table
    /// while holding an epoch guard (pinned before the load) and a guard on that
    /// table's generation, and keeps both for `'a`. A release that drops the count
    /// to 0 comes after the unlink, hence after the load, and the free waits for
    /// every epoch guard pinned before the batch's deferral; a generation is torn
    /// down only after its last guard is gone.
    pub(crate) unsafe fn borrow_raw<'a>(cell: NonNull<ValueCell<V>>) -> &'a V {
        // SAFETY: a table's pointer is a handle's (aligned, whole-cell provenance,
        // written whole in `new`); the caller's guards keep the cell from being
        // destroyed for `'a` (the contract), and only `destroy` mutates `value`.
        unsafe { &(*cell.as_ptr()).value }
    }

    /// Current number of references (generations + handles + C retains).
    ///
    /// A racy reading, for tests and diagnostics.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, ValueRef};
    /// let map = AtomicMap::new();
    /// map.insert(1, "one");
    /// let a = map.get(&1).unwrap();
    /// assert_eq!(ValueRef::ref_count(&a), 2); // the table and `a`
    /// map.clear_async().wait();
    /// assert_eq!(ValueRef::ref_count(&a), 1); // `a` alone, past the clear
    /// ```
    pub fn ref_count(this: &Self) -> usize {
        // Relaxed: a diagnostic reading that orders nothing.
        let refs = this.cell().refs.load(Ordering::Relaxed);
        (refs & !MAPPED) + usize::from(refs & MAPPED != 0)
    }

    /// Whether two handles refer to the same value cell (not merely equal values).
    ///
    /// ```
    /// use atomic_map::{AtomicMap, ValueRef};
    /// let map = AtomicMap::new();
    /// map.insert(1, 5);
    /// map.insert(2, 5);
    /// let (a, b) = (map.get(&1).unwrap(), map.get(&2).unwrap());
    /// assert!(a == b && !ValueRef::ptr_eq(&a, &b)); // equal values, two cells
    /// assert!(ValueRef::ptr_eq(&a, &map.get(&1).unwrap()));
    /// ```
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr() == b.ptr()
    }

    /// Consumes the handle, returning a pointer to the value; the reference the
    /// handle owned now belongs to the pointer. Like `Arc::into_raw`: the pointer
    /// stays valid until that reference is given back with [`from_raw`](Self::from_raw)
    /// or [`decrement_count`](Self::decrement_count). This is how the C ABI hands
    /// values to C.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, String::from("held by C"));
    /// let raw = atomic_map::ValueRef::into_raw(map.get(&1).unwrap());
    /// map.clear_async().wait();
    /// // SAFETY: `raw` owns a reference, given back exactly once here.
    /// let back = unsafe { atomic_map::ValueRef::from_raw(raw) };
    /// assert_eq!(*back, "held by C");
    /// ```
    pub fn into_raw(this: Self) -> *const V {
        let cell = this.ptr();
        if this.unit() == MAPPED {
            // C counts holders only: the table's reference becomes a holder's first.
            // SAFETY: `this` owns the table's reference, given up here.
            unsafe { Self::unmap_into_holder(cell) };
        }
        std::mem::forget(this);
        // Soundness: the reference now owned by the pointer keeps the cell alive, so the
        // place is in bounds of a live allocation. The result is derived from the
        // cell pointer and keeps the whole cell's provenance, which `cell_of`
        // (in `from_raw`, `increment_count`, `decrement_count`) relies on.
        // SAFETY: the pointer's reference keeps the cell alive; whole-cell provenance (above).
        unsafe { &raw const (*cell.as_ptr()).value }
    }

    /// Rebuilds a handle from a pointer of [`into_raw`](Self::into_raw), taking over
    /// the reference it owned.
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` on a `ValueRef<V>` of the same `V` and own a
    /// reference that no one else gives back.
    pub unsafe fn from_raw(ptr: *const V) -> Self {
        ValueRef {
            // SAFETY: `ptr` comes from `into_raw` (the contract): it points at the
            // `value` of a cell kept alive by the reference it owns, with the whole
            // cell's provenance, as `cell_of` requires.
            cell: unsafe { Self::cell_of(ptr) },
            _owns: PhantomData,
        }
    }

    /// Adds a reference for the value behind `ptr` (a C retain).
    ///
    /// # Safety
    /// `ptr` must come from [`into_raw`](Self::into_raw) on a `ValueRef<V>`, and a
    /// reference to the value must be held for the duration of the call: the
    /// caller's own, or one lent to it by its holder (as `amap_snapshot_foreach`
    /// lends its callback the reference it holds).
    pub unsafe fn increment_count(ptr: *const V) {
        // SAFETY: `ptr` comes from `into_raw` (whole-cell provenance, `cell_of`'s
        // contract), and the reference held across the call keeps the cell alive
        // with a count of at least 1 (`retain_raw`'s contract).
        unsafe { Self::retain_raw(Self::cell_of(ptr)) }
    }

    /// Gives back one reference for the value behind `ptr` (a C release). The last
    /// one schedules the value's destruction (deferred past pinned readers). Giving
    /// back more references than were taken aborts the process with a message when
    /// it is detected: always while the value is still mapped (the table's own
    /// reference is kept apart from the holders'), and after it was unmapped while
    /// it is not yet destroyed; after that it is undefined behaviour.
    ///
    /// # Safety
    /// `ptr` must come from [`into_raw`](Self::into_raw) on a `ValueRef<V>`, and the
    /// caller must own the reference it gives back.
    pub unsafe fn decrement_count(ptr: *const V) {
        // SAFETY: `ptr` comes from `into_raw` (whole-cell provenance, `cell_of`'s
        // contract); the caller owns the reference it gives up (`release_raw`'s).
        unsafe { Self::release_raw(Self::cell_of(ptr)) }
    }

    /// The cell whose `value` field `ptr` points at.
    ///
    /// # Safety
    /// `ptr` must point at the `value` field of a live `ValueCell<V>` and carry the
    /// provenance of the whole cell, as a pointer from [`into_raw`](Self::into_raw)
    /// does (one derived from a `&V` covers the value only, and the count and home
    /// could not be reached through the result).
    unsafe fn cell_of(ptr: *const V) -> NonNull<ValueCell<V>> {
        // `value` sits `offset` bytes into the cell, whatever the layout.
        let offset = std::mem::offset_of!(ValueCell<V>, value);
        // SAFETY: by the contract `ptr` is `offset` bytes into a live cell and its
        // provenance covers the whole cell, so stepping back stays in that allocation
        // and gives the cell's own address (non-null), usable for every field.
        unsafe {
            NonNull::new_unchecked(
                ptr.cast::<u8>()
                    .sub(offset)
                    .cast::<ValueCell<V>>()
                    .cast_mut(),
            )
        }
    }

    /// Adds one reference to the cell behind `cell`.
    ///
    /// # Safety
    /// `cell` must point at a cell (with its provenance), and a reference to it must
    /// be held for the duration of the call, by the caller or on its behalf (so the
    /// cell is alive and the count at least 1).
    pub(crate) unsafe fn retain_raw(cell: NonNull<ValueCell<V>>) {
        // SAFETY: the reference held across the call (the contract) keeps the cell
        // alive; only the atomic count is used.
        let refs = unsafe { &cell.as_ref().refs };
        // Relaxed: like `Arc::clone`, taking a new reference needs no ordering; the
        // caller's own reference already keeps the cell alive, and the Release/Acquire
        // pair in `release` orders every use before the free.
        let old = refs.fetch_add(1, Ordering::Relaxed);
        check_retain(old);
    }

    /// A new handle on the cell behind `cell` if a table still maps it (its count
    /// has `MAPPED`), or the handle a `remove` made of the table's reference still
    /// holds it (`HANDED_OVER`); `None` once it is unmapped, and then the caller's
    /// next probe of the table sees the slot as the unmapping writer left it.
    ///
    /// This is how a lock-free reader takes a reference: the table's reference may
    /// be given up between the reader's load of the pointer and this call, and a
    /// count that reached 0 must never be raised again (the value is doomed, and
    /// its count word becomes the doomed list's link, which never has `MAPPED`:
    /// `reclaim/doomed.rs`). While `MAPPED` is set the count is at least the
    /// table's reference, so adding one is sound.
    ///
    /// # Safety
    /// `cell` was loaded from a table slot, under an epoch guard pinned before that
    /// load and held across this call (so the cell's memory is not freed: its
    /// destruction waits out a grace period past that guard), and a guard on the
    /// table's generation is held (so no teardown destroys it at once).
    pub(crate) unsafe fn retain_if_mapped(cell: NonNull<ValueCell<V>>) -> Option<Self> {
        // SAFETY: the cell's memory outlives the caller's guards (the contract);
        // only the atomic count is used.
        let refs = unsafe { &cell.as_ref().refs };
        // Relaxed: the value is checked and raised by the compare-and-swap below.
        let mut current = refs.load(Ordering::Relaxed);
        loop {
            if current & MAPPED == 0 {
                // Acquire: pairs with the Release of the read-modify-write that
                // cleared `MAPPED` (the drop of a handle that owned it, such as
                // `remove`'s, an eviction, or `unmap_into_holder`), made after the
                // writer changed the slot, so that the caller's next probe sees the
                // change instead of this cell again.
                acquire_fence(refs);
                return None;
            }
            if current & !MAPPED >= MAX_REFS {
                abort_with("atomic-map: value reference count overflow (leaked handles?)");
            }
            // Relaxed: as `Arc::clone` (the table's reference, seen in `current`,
            // keeps the value alive); the compare-and-swap only makes sure that it
            // still is when the count goes up.
            match refs.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(ValueRef {
                        cell,
                        _owns: PhantomData,
                    });
                }
                Err(now) => current = now,
            }
        }
    }

    /// Turns the table's reference into a holder's (`MAPPED` → 1 in one step): a
    /// handed-over handle (`HANDED_OVER`) leaving for C (`into_raw`), which counts
    /// holders only.
    ///
    /// # Safety
    /// The caller owns the table's reference to `cell` and trades it here for a
    /// holder's.
    unsafe fn unmap_into_holder(cell: NonNull<ValueCell<V>>) {
        // SAFETY: the reference owned by the caller keeps the cell alive.
        let refs = unsafe { &cell.as_ref().refs };
        // SeqCst: Release would do (and on x86 every ordering of a read-modify-write
        // is the same instruction): it pairs with the Acquire fence of a lock-free
        // reader that finds the cell unmapped (`retain_if_mapped`), which must then
        // see the slot's change on its next probe (the change came before the
        // remove returned this handle). The number of references does not change,
        // so nothing else is released or acquired; the read-modify-write continues
        // the release sequence of the holders' decrements.
        let old = refs.fetch_sub(MAPPED - 1, Ordering::SeqCst);
        if old & MAPPED == 0 {
            abort_with("atomic-map: internal error: a table handed over a value it did not map");
        }
        if old & !MAPPED >= MAX_REFS {
            abort_with("atomic-map: value reference count overflow (leaked handles?)");
        }
    }

    /// Drops the reference owned by `cell`, as the handle's `Drop` does.
    ///
    /// # Safety
    /// `cell` must point at a cell with the provenance of the whole cell (from
    /// `alloc_cell`, or `cell_of`), and the caller must own a reference to it and
    /// give it up here.
    pub(crate) unsafe fn release_raw(cell: NonNull<ValueCell<V>>) {
        // SAFETY: the caller's contract.
        unsafe { Self::release_units(cell, 1) }
    }

    /// Drops `unit` from the cell's count: 1 for a holder's reference, `MAPPED` for
    /// the table's. The last reference dooms the value (deferred destruction).
    ///
    /// # Safety
    /// The caller must own that reference to the cell and give it up here; `cell`
    /// has the provenance of the whole cell (as every handle's pointer does).
    #[inline]
    unsafe fn release_units(cell: NonNull<ValueCell<V>>, unit: usize) {
        // SAFETY: the caller owns a reference (the contract), so the cell is alive
        // until the decrement below.
        let c = unsafe { cell.as_ref() };
        // Release: pairs with the Acquire fence in `doom_last` on the thread that
        // drops the last reference, so every use of the value through this
        // reference happens before its destruction.
        let old = c.refs.fetch_sub(unit, Ordering::Release);
        check_release(old, unit);
        if old == unit {
            // SAFETY: this release was the last (the count reached 0): the cell is
            // handed over, once.
            unsafe { Self::doom_last(cell) }
        }
    }

    /// The rest of a release that dropped the last reference: dooms the value.
    /// Off `release_units`' inlined path (most releases are not the last).
    ///
    /// # Safety
    /// The calling release took the count to 0 (so it is called once per cell), and
    /// `cell` has the provenance of the whole cell (`release_units`' contract).
    #[cold]
    #[inline(never)]
    unsafe fn doom_last(cell: NonNull<ValueCell<V>>) {
        // SAFETY: the count just reached 0 with the caller's release, and nothing
        // frees the cell before the push below (its destruction needs that push);
        // `c` is not used after the push.
        let c = unsafe { cell.as_ref() };
        // Acquire: pairs with the Release decrements of every other holder.
        acquire_fence(&c.refs);
        // The count reached 0, so no holder is left and no table maps to the cell any
        // more; the only remaining observers are readers pinned in the epoch before
        // this point, and the reclaimer destroys doomed values only after a grace
        // period that starts after this push (see `doomed.rs`). `V: Send` is required
        // by every public constructor of a map, so destroying it elsewhere is sound.
        // The home is alive until this cell is destroyed, which needs the push below;
        // after the push neither the cell nor the home is touched again.
        let home_ref = c.home;
        let home = home_ref.get();
        let stripe = match chosen_thread_stripe() {
            Some(stripe) if home.count_doomed_on(stripe) => stripe,
            // This thread's first count, or this map's first value: `doom_first`
            // makes what the line above reads. Apart, so that the common path's
            // only calls are tail calls and it saves no register.
            // SAFETY: this function's contract, passed on whole.
            _ => return unsafe { Self::doom_first(cell, home_ref) },
        };
        // SAFETY: the cell's home and the count that reached 0 (above).
        unsafe { Self::doom_counted(cell, home_ref, stripe) }
    }

    /// [`doom_last`](Self::doom_last) on a thread that has not counted yet, or for
    /// a map whose counters are not installed yet: chooses the stripe, installs the
    /// counters, counts and dooms.
    ///
    /// # Safety
    /// As for `doom_last`, past its fence; `home_ref` is the cell's home.
    #[cold]
    #[inline(never)]
    unsafe fn doom_first(cell: NonNull<ValueCell<V>>, home_ref: HomeRef) {
        let stripe = home_ref.get().count_doomed();
        // SAFETY: passed on (the contract).
        unsafe { Self::doom_counted(cell, home_ref, stripe) }
    }

    /// The doom itself, once counted on `stripe` (this thread's).
    ///
    /// # Safety
    /// As for [`doom_first`](Self::doom_first).
    #[inline(always)]
    unsafe fn doom_counted(cell: NonNull<ValueCell<V>>, home_ref: HomeRef, stripe: ThreadStripe) {
        // A raw pointer to the domain: the home and the domain may be freed by a pass
        // before `doom` returns (see `Domain::submit`).
        let domain = Arc::as_ptr(home_ref.get().domain());
        // Soundness: the domain is alive at the call (the home, alive until this cell is
        // destroyed, holds an `Arc` on it). The count reached 0 with this release, the
        // last (`doom`'s contract: the cell is handed over here). The cast keeps
        // `cell`'s provenance over the whole cell (this function's contract), which
        // the destruction needs; `ValueCell` starts with `CellHead`'s fields
        // (`repr(C)`, checked above), so the list can use the head.
        // SAFETY: the domain is alive at the call and the cell is handed over (above).
        unsafe { Domain::doom(domain, cell.cast(), home_ref, stripe) };
    }

    /// The map's `DestroyFn` (`reclaim/home.rs`): destroys a doomed cell of `V`.
    ///
    /// # Safety
    /// `cell` is a doomed `ValueCell<V>` (with the whole cell's provenance) past its
    /// grace period, destroyed once.
    pub(crate) unsafe fn destroy_doomed<K>(cell: NonNull<()>) -> DropOutcome {
        // Soundness: `destroy`'s contract: doomed means the count reached 0; past the
        // grace period, every reader that could have loaded the pointer (pinned
        // before its unlink) is gone (`doomed.rs`); once and with the whole cell's
        // provenance, by the caller's contract.
        // SAFETY: the caller's contract (a ripe doomed cell of this `V` and `K`,
        // destroyed once).
        unsafe { Self::destroy::<K>(cell.cast(), Recycle::ToWriters) }
    }

    /// The size class of the cells of a map of `K` and `V` (`ValueCell<V, K>`) if
    /// destroying one only gives its memory back: no part of the cell needs a
    /// drop, and cells of its size are recycled (the home's `plain_cells`, which
    /// lets a pass give a run of them back at once instead of calling
    /// [`destroy_doomed`](Self::destroy_doomed) for each: what that would do for
    /// such a cell is `free_cell` with `Recycle::ToWriters`).
    pub(crate) fn plain_cells<K>() -> Option<CellClass> {
        if std::mem::needs_drop::<ValueCell<V, K>>() {
            None
        } else {
            recycle::cell_class::<ValueCell<V, K>>()
        }
    }

    /// Gives up the table's reference of a generation being torn down on the
    /// reclaimer (see [`TableRef::release_unreachable`]).
    ///
    /// # Safety
    /// The caller owns the table's reference (`MAPPED`) and gives it up; no guard can
    /// reach the cell through a table any more.
    unsafe fn release_unreachable<K>(
        cell: NonNull<ValueCell<V, K>>,
        to: Recycle,
    ) -> Option<DropOutcome> {
        // SAFETY: the caller owns the table's reference (the contract), so the cell
        // is alive until the decrement below.
        let c = unsafe { cell.as_ref() };
        // The table's reference alone: no holder is left, and none can come (a
        // holder is made from the table, which no guard can reach, or from another
        // holder). The value goes without the locked decrement, which was most of
        // an address-order teardown's time (`reclaim/by_address.rs`).
        // Acquire: pairs with the Release decrements of every holder that let go
        // before, as the fence below does for the last one.
        if c.refs.load(Ordering::Acquire) == MAPPED {
            // Soundness: as below: no holder, and the generation is unreachable.
            // SAFETY: no reference but the caller's, given up here, and no guard
            // can reach the cell (above).
            return Some(unsafe { Self::destroy::<K>(cell, to) });
        }
        // Relaxed, unlike `release_units`'s Release: when this is not the last
        // reference, a holder's later release dooms the value and a pass of this
        // domain destroys it, which the pass mutex orders after this teardown (run by
        // a pass too: scenario 2 has both orders); this thread never used the value
        // through the table's reference. As a read-modify-write it still continues
        // the holders' release sequence for the Acquire fence of the last one.
        let old = c.refs.fetch_sub(MAPPED, Ordering::Relaxed);
        check_release(old, MAPPED);
        if old != MAPPED {
            return None;
        }
        // Acquire: pairs with the Release decrements of every other holder.
        acquire_fence(&c.refs);
        // Soundness: the count reached 0, and the generation that held it is
        // unreachable: a borrowed read needs a guard on the generation mapping the
        // cell, and a cell is mapped by one generation only (module docs); called
        // once, by the release that took the count to 0. Like every handle's
        // pointer, `cell` has the whole cell's provenance.
        // SAFETY: count reached 0 and no guard can reach the cell (above).
        Some(unsafe { Self::destroy::<K>(cell, to) })
    }

    /// Runs `V`'s destructor and then `K`'s in place, containing a panic of either,
    /// then frees the cell to `to`. Returns how the destructors ended.
    ///
    /// In place, not moved out first: whatever the destructor writes into the value
    /// (a test's canary, a poisoned field) lands in the cell, where a reader that
    /// wrongly kept a pointer to it would look.
    ///
    /// # Safety
    /// The count is 0 and no reader can reach the cell; called once per cell;
    /// `cell` has the provenance of the whole cell (as every handle's pointer does).
    unsafe fn destroy<K>(cell: NonNull<ValueCell<V, K>>, to: Recycle) -> DropOutcome {
        let ptr = cell.as_ptr();
        let value = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the cell was written whole in `new` and its value is dropped
            // once, here (the count is 0 and no reader can reach it: the caller's
            // contract); the cell is not used as a `V` afterwards.
            unsafe { ptr::drop_in_place(&raw mut (*ptr).value) }
        }));
        let key = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: as for the value: the key is dropped once, here.
            unsafe { ptr::drop_in_place(&raw mut (*ptr).key) }
        }));
        // A value or key counts as dropped after a panic in its destructor (as
        // `drop_in_place` leaves it); the cell is freed all the same.
        let outcome = if value.is_ok() && key.is_ok() {
            DropOutcome::Clean
        } else {
            DropOutcome::Panicked
        };
        // The home (a plain pointer, `Copy`) is not read: for a key and value with
        // no destructor this function touches no byte of a recycled cell (one of
        // up to 256 bytes, aligned to at most 8: `recycle.rs`; a larger one goes
        // back to the allocator, which reads its header) when it goes to this
        // thread's magazine (`Recycle::ToWriters`), so that the reclaimer's core
        // does not take the line a writer will reuse (the doomed rings carry the
        // home: `doomed.rs`). A cell given back to its page (`Recycle::ToPages`, or
        // later, from a full depot) has its first word written: the page's list.
        // SAFETY: as above: the count is dropped once, here (a no-op for std's
        // atomics; the shim's type may differ).
        unsafe { ptr::drop_in_place(&raw mut (*ptr).refs) };
        // SAFETY: allocated by `alloc_cell::<ValueCell<V, K>>` in `new`, and `cell`
        // carries that allocation's provenance (the contract); every field was
        // dropped above and nothing uses the cell again.
        unsafe { recycle::free_cell(cell, to) };
        outcome
    }
}

/// Aborts on a release the count shows was never taken: a holder's (`unit` 1) when
/// no holder is counted (`MAPPED` alone, or 0), the table's when it is not mapped.
#[inline]
fn check_release(old: usize, unit: usize) {
    if unit == MAPPED {
        if old & MAPPED == 0 {
            abort_with("atomic-map: internal error: a table released a value it did not map");
        }
    } else if old & !MAPPED == 0 || old & DOOMED != 0 {
        // 0: no reference was left. `DOOMED`: the word is a doomed list's link, so the
        // last reference is gone and the value is waiting for its destruction.
        abort_with("atomic-map: value released more times than retained");
    }
}

/// Aborts if a retain found the count word `old` of a value whose last reference
/// is gone (a doomed list's link, tagged `DOOMED`), or a count at its limit.
fn check_retain(old: usize) {
    if old & DOOMED != 0 {
        abort_with("atomic-map: value retained after its last release");
    }
    if old & !MAPPED >= MAX_REFS {
        abort_with("atomic-map: value reference count overflow (leaked handles?)");
    }
}

impl<V> Clone for ValueRef<V> {
    /// A holder's reference (one increment), whichever reference `self` owns.
    fn clone(&self) -> Self {
        let cell = self.ptr();
        // SAFETY: `self` owns a reference.
        unsafe { Self::retain_raw(cell) };
        ValueRef {
            cell,
            _owns: PhantomData,
        }
    }
}

impl<V> Drop for ValueRef<V> {
    fn drop(&mut self) {
        // SAFETY: `self` owns a reference, a holder's or (`HANDED_OVER`) the table's,
        // and gives it up.
        unsafe { Self::release_units(self.ptr(), self.unit()) }
    }
}

impl<V> Deref for ValueRef<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.cell().value
    }
}

impl<V> AsRef<V> for ValueRef<V> {
    fn as_ref(&self) -> &V {
        self
    }
}

impl<V> std::borrow::Borrow<V> for ValueRef<V> {
    fn borrow(&self) -> &V {
        self
    }
}

impl<V: fmt::Debug> fmt::Debug for ValueRef<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<V: fmt::Display> fmt::Display for ValueRef<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<V: PartialEq> PartialEq for ValueRef<V> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<V: Eq> Eq for ValueRef<V> {}

impl<V: std::hash::Hash> std::hash::Hash for ValueRef<V> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use crate::AtomicMap;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    const CHILD: &str = "ATOMIC_MAP_OVERFLOW_CHILD";

    /// A lock-free reader's `retain_if_mapped` takes a reference only while a table
    /// maps the value (or the remove's handle holds the table's reference): never
    /// on a value that was removed and whose remove handle is gone (even if a
    /// holder keeps it alive: the reader's next probe finds the table's current
    /// state), and never on a doomed one, whose count word is by then the doomed
    /// list's link.
    #[test]
    fn retain_if_mapped_never_revives() {
        let map: AtomicMap<u8, u8> = crate::Builder::new()
            .reclaim_mode(crate::ReclaimMode::Manual)
            .build();
        map.insert(1, 7);
        let held = map.get(&1).unwrap();
        let cell = held.ptr();
        // Holds the grace period open: the doomed cell's memory stays readable.
        let guard = crate::sync::epoch::pin();
        // SAFETY: `held` keeps the cell alive; the generation is current.
        let again = unsafe { ValueRef::retain_if_mapped(cell) };
        assert_eq!(
            again.as_deref(),
            Some(&7),
            "a mapped value was not retained"
        );
        drop(again);
        drop(map.remove(&1));
        // SAFETY: `held` still keeps the cell alive.
        let removed = unsafe { ValueRef::retain_if_mapped(cell) };
        assert!(removed.is_none(), "an unmapped value was retained");
        drop(held); // the last reference: the value is doomed
        // SAFETY: doomed, not destroyed: `guard` holds its grace period open (and
        // no pass runs in manual mode unless called).
        let doomed = unsafe { ValueRef::retain_if_mapped(cell) };
        assert!(doomed.is_none(), "a doomed value was revived");
        drop(guard);
        map.reclaim();
    }

    /// In a child process: brings the value's count to the limit, then takes one
    /// reference more (a `clone`, or the raw increment behind `amap_value_retain`)
    /// and another, which must abort; or (`underflow`) brings it to 0 and gives one
    /// back through the raw decrement behind `amap_value_release`, which must abort.
    /// Exits normally if it did not.
    fn overflow_in_child(path: &str) {
        if path == "over-release-doomed" || path == "retain-doomed" {
            // A C caller's extra release, or retain, of a value whose last
            // reference is gone: the cell waits on a doomed list (a manual map runs
            // no pass unless asked), its count word a link that must not change.
            let map: AtomicMap<u8, u8> = crate::Builder::new()
                .reclaim_mode(crate::ReclaimMode::Manual)
                .build();
            map.insert(1, 7);
            let raw = ValueRef::into_raw(map.get(&1).unwrap());
            drop(map.remove(&1));
            // SAFETY: the reference taken by `get` is given back once here: the
            // last one, so the value is doomed...
            unsafe { ValueRef::decrement_count(raw) };
            if path == "over-release-doomed" {
                // SAFETY: ...and deliberately once more: the doomed cell is not
                // destroyed (no pass ran), so the check can run.
                unsafe { ValueRef::decrement_count(raw) };
            } else {
                // SAFETY: deliberately not: no reference is left. The doomed cell is
                // not destroyed, so the check can run.
                unsafe { ValueRef::increment_count(raw) };
            }
            eprintln!("no abort");
            return;
        }
        let map = AtomicMap::new();
        map.insert(1, 7u8);
        if path == "over-release-mapped" {
            // A C caller's double release of a value that is still mapped: the
            // second one must not take the table's reference.
            let raw = ValueRef::into_raw(map.get(&1).unwrap());
            // SAFETY: the reference taken by `get` is given back once here...
            unsafe { ValueRef::decrement_count(raw) };
            // SAFETY: ...and deliberately once more: the cell is still alive (the
            // table maps it), so the check can run.
            unsafe { ValueRef::decrement_count(raw) };
            eprintln!("no abort");
            return;
        }
        let held = map.get(&1).unwrap();
        // SAFETY: `held` owns a reference, so the cell is alive.
        let refs = unsafe { &held.ptr().as_ref().refs };
        // A pointer with the whole cell's provenance, as C gets it (its reference is
        // leaked on purpose: the child aborts or exits).
        let raw = ValueRef::into_raw(held.clone());
        if path == "underflow" {
            // Relaxed: single-threaded; stands in for releases that were too many.
            refs.store(0, Ordering::Relaxed);
            // SAFETY: deliberately not: the count says no reference is owned. The
            // cell is still alive (the map and `held` hold it) and `raw` comes from
            // `into_raw`, so the check can run.
            unsafe { ValueRef::decrement_count(raw) };
            refs.store(MAPPED + 1, Ordering::Relaxed);
            eprintln!("no abort");
            return;
        }
        // Relaxed: single-threaded here; the store only stands in for leaked handles.
        refs.store(MAX_REFS, Ordering::Relaxed);
        for _ in 0..2 {
            if path == "clone" {
                std::mem::forget(held.clone());
            } else {
                // SAFETY: `raw` comes from `into_raw` and `held`'s reference keeps the
                // cell alive; the taken references are leaked on purpose.
                unsafe { ValueRef::increment_count(raw) };
            }
        }
        refs.store(MAPPED + 1, Ordering::Relaxed);
        eprintln!("no abort");
    }

    /// The count cannot wrap: one reference past the limit aborts with a message,
    /// through `Clone` and through the raw increment the C ABI uses, and a release
    /// below zero aborts too. The abort happens in a child process (this test
    /// binary, re-run on this test alone).
    #[test]
    fn reference_count_overflow_and_underflow_abort() {
        if let Ok(path) = std::env::var(CHILD) {
            overflow_in_child(&path);
            return;
        }
        for (path, message) in [
            ("clone", "atomic-map: value reference count overflow"),
            ("raw", "atomic-map: value reference count overflow"),
            (
                "underflow",
                "atomic-map: value released more times than retained",
            ),
            (
                "over-release-mapped",
                "atomic-map: value released more times than retained",
            ),
            (
                "over-release-doomed",
                "atomic-map: value released more times than retained",
            ),
            (
                "retain-doomed",
                "atomic-map: value retained after its last release",
            ),
        ] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "value::tests::reference_count_overflow_and_underflow_abort",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGABRT),
                "{path}: the child did not abort: {:?}\n{stderr}",
                out.status
            );
            assert!(stderr.contains(message), "{path}: {stderr}");
        }
    }
}
