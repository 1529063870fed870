//! `Store`: one generation's table, behind the narrow interface the protocol uses.
//!
//! The table maps each key to a `TableRef`, i.e. it owns the table's reference to
//! each value (the `MAPPED` bit of its count, kept apart from the holders'); what
//! leaves the table for a caller becomes a [`ValueRef`]. Everything the protocol
//! needs from the table is here. The table (`src/table/`) is read without locks
//! under an epoch guard; its writers hold the shard's lock (the map's
//! [`ShardLocks`], taken by the caller, who chose the shard by the key's hash), and
//! a value a write replaces or removes comes back to the caller, to be released
//! after the lock.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::ptr::NonNull;

use crate::compute::{Compute, Operation};
use crate::reclaim::by_address::ByAddress;
use crate::reclaim::home::HomeRef;
use crate::reclaim::page_runs::Deferral;
use crate::reclaim::recycle::{self, Recycle};
use crate::reclaim::report::TeardownReport;
use crate::sync::epoch;
use crate::table::{Entries, Locked, ShardLocks, Table};
use crate::try_reserve::TryReserveError;
use crate::value::{TableRef, ValueCell, ValueRef};

/// What an update does to an entry.
pub(crate) enum Update<V> {
    /// Leave the entry as it is (or absent).
    Keep,
    /// Map the key to this value.
    Set(V),
    /// Remove the entry.
    Remove,
}

/// What `Store::compute`'s closure decided, before the table says what it replaced.
enum Done<V, T> {
    Set(ValueRef<V>),
    Removed,
    Kept(Option<ValueRef<V>>),
    Aborted(T),
}

/// One generation's key → value table.
pub(crate) struct Store<K, V, S> {
    table: Table<K, TableRef<K, V>, S>,
}

/// A teardown's cells between its slices: those collected from the drained table
/// to be released in address order (`reclaim/by_address.rs`), during the teardown
/// of a large table whose cells go back to their pages. Kept by the teardown job
/// (`generation.rs`, `RetiredTable`), not in the store: a generation's own layout,
/// whose lines readers and clears share, stays as it is. Dropped with anything
/// left in it, it releases those cells as the table's own drop would.
pub(crate) struct TeardownCells<K, V>(Option<Box<ByAddress<TableRef<K, V>>>>);

impl<K, V> TeardownCells<K, V> {
    /// None collected.
    pub(crate) fn new() -> Self {
        TeardownCells(None)
    }
}

impl<K, V, S> Store<K, V, S>
where
    K: Eq + Hash + 'static,
    V: 'static,
    S: BuildHasher + Clone,
{
    /// An empty table with `shards` shards (a power of two, at least 2: one per
    /// lock of its map's `ShardLocks`), sized for about `capacity` entries.
    pub(crate) fn new(hasher: S, shards: usize, capacity: usize) -> Self {
        Store {
            table: Table::with_capacity(capacity, hasher, shards),
        }
    }

    /// The hash of `key` (which picks the shard lock a write of it needs).
    #[inline(always)]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.table.hash(key)
    }

    /// A new handle on the value for `key`: a lock-free lookup under an epoch pin
    /// and one compare-and-swap on the value's count.
    pub(crate) fn get_retained<Q>(&self, key: &Q, guard: &epoch::Guard) -> Option<ValueRef<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        loop {
            let cell = self.table.get(key, guard)?.cast();
            // Soundness: `retain_if_mapped`'s contract: `cell` was just loaded from
            // this table under `guard`, pinned before the load and held across the
            // call; the caller holds a guard on this generation (every caller reads
            // through a `Generation` it holds).
            // SAFETY: loaded under `guard`, generation held (above).
            if let Some(handle) = unsafe { ValueRef::retain_if_mapped(cell) } {
                return Some(handle);
            }
            // Unmapped after our load (a remove, or a replacing insert): probe again,
            // and see what the writer left.
        }
    }

    /// The cell for `key`, without touching its count. The caller must hold
    /// `guard` and a guard on this generation to dereference it (see
    /// `ValueRef::borrow_raw`).
    // Inlined down to the table, so that the read is one flat function in every
    // crate: see `Table::get`.
    #[inline(always)]
    pub(crate) fn get_raw<Q>(&self, key: &Q, guard: &epoch::Guard) -> Option<NonNull<ValueCell<V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // The cell as its handles see it (`ValueCell<V>`: the prefix before the key).
        self.table.get(key, guard).map(NonNull::cast)
    }

    /// The whole cell for `key` (its key with its value), without touching its
    /// count; the same contract as [`get_raw`](Self::get_raw).
    #[inline(always)]
    pub(crate) fn get_entry_raw<Q>(
        &self,
        key: &Q,
        guard: &epoch::Guard,
    ) -> Option<NonNull<ValueCell<V, K>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.get(key, guard)
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q, guard: &epoch::Guard) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table.get(key, guard).is_some()
    }

    /// Number of entries (sums the shards: O(shards)).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Maps the key of `entry` (a new cell, whose key is of hash `hash` and whose
    /// shard's lock is `locked`) to it; returns the table's reference to the old
    /// value, handed over as a handle.
    #[inline]
    pub(crate) fn insert(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        entry: TableRef<K, V>,
    ) -> Option<ValueRef<V>> {
        self.table
            .insert(locked, hash, entry)
            .map(TableRef::into_handle)
    }

    /// Unmaps `key` (of hash `hash`, under `locked`); returns the table's
    /// reference to its value, handed over as a handle.
    #[inline]
    pub(crate) fn remove<Q>(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        key: &Q,
    ) -> Option<ValueRef<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .remove(locked, hash, key)
            .map(TableRef::into_handle)
    }

    /// Atomically (with respect to other writers of `key`) applies the operation `f`
    /// picks for the current value. `f` runs under the shard's write lock; a value
    /// it replaces or removes comes back in the result (the table's reference,
    /// handed over), for the caller to drop after the lock is released.
    pub(crate) fn compute<T>(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        key: K,
        f: impl FnOnce(Option<&V>) -> Operation<V, T>,
        home: HomeRef,
    ) -> Compute<V, T> {
        let mut done = None;
        let replaced = self.table.update(locked, hash, key, |old, key| {
            let (update, outcome) = match f(old.map(|v| &**v)) {
                Operation::Insert(value) => {
                    let (new, handle) = TableRef::new_with_handle(key, value, home);
                    (Update::Set(new), Done::Set(handle))
                }
                Operation::Remove if old.is_some() => (Update::Remove, Done::Removed),
                Operation::Remove | Operation::Keep => {
                    (Update::Keep, Done::Kept(old.map(TableRef::retain)))
                }
                Operation::Abort(t) => (Update::Keep, Done::Aborted(t)),
            };
            done = Some(outcome);
            update
        });
        match (
            done.expect("update ran its closure"),
            replaced.map(TableRef::into_handle),
        ) {
            (Done::Set(new), None) => Compute::Inserted(new),
            (Done::Set(new), Some(old)) => Compute::Updated { old, new },
            (Done::Removed, Some(old)) => Compute::Removed(old),
            (Done::Kept(current), _) => Compute::Kept(current),
            (Done::Aborted(t), _) => Compute::Aborted(t),
            (Done::Removed, None) => unreachable!("a removal hands the old value back"),
        }
    }

    /// The value for `key`, inserting the one `make` builds if there is none (under
    /// the shard's write lock). Returns a handle on the value now mapped, and
    /// whether it was inserted here.
    pub(crate) fn get_or_insert_with(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        key: K,
        make: impl FnOnce() -> V,
        home: HomeRef,
    ) -> (ValueRef<V>, bool) {
        let mut found = None;
        let mut inserted = false;
        self.table
            .update(locked, hash, key, |current, key| match current {
                Some(value) => {
                    found = Some(value.retain());
                    Update::Keep
                }
                None => {
                    let (value, handle) = TableRef::new_with_handle(key, make(), home);
                    found = Some(handle);
                    inserted = true;
                    Update::Set(value)
                }
            });
        (
            found.expect("update saw the entry or inserted one"),
            inserted,
        )
    }

    /// Unmaps `key` if `f` approves its entry (under the shard's write lock).
    pub(crate) fn remove_if<Q>(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        key: &Q,
        f: impl FnOnce(&K, &V) -> bool,
    ) -> Option<ValueRef<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .remove_if(locked, hash, key, |k, v| f(k, v))
            .map(TableRef::into_handle)
    }

    /// `Table::retain_shard`.
    pub(crate) fn retain_shard(&self, locked: &mut Locked<'_>, mut f: impl FnMut(&K, &V) -> bool) {
        self.table.retain_shard(locked, |k, v| f(k, v))
    }

    /// `Table::reservation_share`.
    pub(crate) fn reservation_share(&self, additional: usize) -> Result<usize, TryReserveError> {
        self.table.reservation_share(additional)
    }

    /// `Table::reserve_shard`.
    pub(crate) fn reserve_shard(
        &self,
        locks: &ShardLocks,
        shard: usize,
        share: usize,
    ) -> Result<(), usize> {
        self.table.reserve_shard(locks, shard, share)
    }

    /// `Table::shrink_shard`.
    pub(crate) fn shrink_shard(&self, locks: &ShardLocks, shard: usize) {
        self.table.shrink_shard(locks, shard)
    }

    /// `Table::capacity`.
    pub(crate) fn capacity(&self, guard: &epoch::Guard) -> usize {
        self.table.capacity(guard)
    }

    /// Number of shards, for shard-at-a-time iteration.
    pub(crate) fn shard_count(&self) -> usize {
        self.table.shard_count()
    }

    /// Copies out shard `shard`'s entries (keys cloned, values retained), lock-free,
    /// so that nothing is held while the caller's code runs. An entry unmapped while
    /// it is copied is handled as `Table::visit_shard` says: an entry mapped
    /// throughout is copied once, none twice.
    pub(crate) fn collect_shard(&self, shard: usize) -> Vec<(K, ValueRef<V>)>
    where
        K: Clone,
    {
        let guard = epoch::pin();
        let mut entries = Vec::new();
        self.table.visit_shard(
            shard,
            &guard,
            // SAFETY: as in `get_retained`: loaded under `guard`, generation held.
            |cell| unsafe { ValueRef::retain_if_mapped(cell.cast()) },
            |key| self.get_retained(key, &guard),
            |key, handle| entries.push((key.clone(), handle)),
        );
        entries
    }

    /// The live entries as (key, cell pointer), lock-free, borrowed for the life
    /// of `guard`. As with [`get_raw`](Self::get_raw), dereferencing a cell needs
    /// `guard` and a guard on this generation, held meanwhile.
    pub(crate) fn entries<'g>(&'g self, guard: &'g epoch::Guard) -> Entries<'g, TableRef<K, V>> {
        self.table.entries(guard)
    }

    /// Teardown of a retired table, run by the reclaimer, `slots` slots at a time
    /// (see `Table::drain_slice`): releases the table's reference to the values
    /// there, destroying those it was the last holder of. Returns what it did, and
    /// whether the table is now empty.
    ///
    /// Only for a table no guard can reach any more (its generation's last
    /// reference is gone), which is what lets `release_unreachable` free at once.
    /// `cells` carries a teardown in address order from one slice to the next.
    pub(crate) fn teardown_slice(
        &mut self,
        slots: usize,
        cells: &mut TeardownCells<K, V>,
    ) -> (TeardownReport, bool) {
        let mut report = TeardownReport::default();
        // The shards' counts are left as they were by the drain: every slice of
        // one table decides alike.
        let to = TableRef::<K, V>::teardown_recycling(self.table.len());
        // Pages this slice empties wait for the teardown's end, to leave together
        // (`page_runs.rs`).
        let deferral = (to == Recycle::ToPages).then(Deferral::begin);
        let carved = recycle::carved_size::<ValueCell<V, K>>();
        let empty = if let Some(size) = carved.filter(|_| to == Recycle::ToPages) {
            self.teardown_by_address(slots, size, cells, &mut report)
        } else {
            self.table.drain_slice(slots, |value| {
                report.entries += 1;
                // The key lives in the cell: it is dropped with the value, here if
                // the table's reference was the last, else by the last holder's
                // release.
                report.record(value.release_unreachable(to));
            })
        };
        if to == Recycle::ToPages {
            // The slice's last cells, held for their pages: given back now, not
            // with some later teardown.
            recycle::give_back_held();
        }
        if let Some(deferral) = deferral {
            // After the teardown's last slice, the pages its slices emptied leave,
            // adjacent ones with one `munmap`.
            deferral.end(empty);
        }
        (report, empty)
    }

    /// A slice of a teardown in address order (`reclaim/by_address.rs`), for
    /// cells given back to their pages: first the
    /// table drained `slots` slots a slice without touching a cell, each cell
    /// marked on its page; then `slots` cells a slice released page by page.
    /// Returns whether the teardown is done.
    /// `size` is the cells' size as they are carved (`recycle::carved_size`).
    fn teardown_by_address(
        &mut self,
        slots: usize,
        size: usize,
        cells: &mut TeardownCells<K, V>,
        report: &mut TeardownReport,
    ) -> bool {
        let to = Recycle::ToPages;
        let entries = self.table.len();
        let by_address = cells
            .0
            .get_or_insert_with(|| Box::new(ByAddress::new(entries, size)));
        let mut release = |value: TableRef<K, V>| {
            report.entries += 1;
            // A destructor's panic is contained and counted (`ValueRef::destroy`):
            // nothing here unwinds.
            report.record(value.release_unreachable(to));
        };
        let drained = self.table.drain_slice_unfetched(slots, |value| {
            // The table's cells come from `recycle::alloc_cell`, which carves a cell
            // of a class from a cell page, `size` bytes (`carved_size`, `Some` only
            // for a class), with provenance over the page (`by_address.rs`).
            // SAFETY: such a cell (above); `release` begins only once the table is
            // drained (a refused cell is released at once, but never collected).
            let refused = unsafe { by_address.add(value) };
            if let Err(value) = refused {
                release(value);
            }
        });
        if !drained {
            return false;
        }
        let done = by_address.release(slots, release);
        if done {
            cells.0 = None;
        }
        done
    }
}
