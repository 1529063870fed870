//! `Table`: the per-generation hash table. Readers probe it without a lock under an
//! epoch guard; writers lock one shard.
//!
//! The table is split into shards by the hash's top bits. Each shard has an
//! open-addressing array of slots (`array.rs`: a key and an owning pointer per
//! slot, linear probing), a lock that its writers take, and a count of entries.
//! A reader loads the shard's current array (Acquire) and probes it: no lock, no
//! read-modify-write, no store. A writer takes the shard's lock, and inserts into a
//! never-used slot, swaps a live slot's pointer, or marks it removed (a tombstone);
//! when the used slots (live and removed) would pass three quarters of the array,
//! it rehashes the live entries into a new array, publishes it (Release) and retires
//! the old one through an epoch deferral, so that a reader still probing it finishes
//! first. Keys live in the slots; a removed key stays in its slot until the array
//! is retired (see `array.rs`).
//!
//! What a reader sees of concurrent writes: each lookup sees, for its key, either
//! the state before or after each write to that key (a slot's pointer is one atomic
//! word); an iteration ([`Entries`]) walks the shards one after another and sees
//! each slot as of the moment it passes it: an entry present for the whole walk is
//! yielded once, an entry inserted or removed meanwhile may or may not be.
//!
//! Everything here is written on the `sync` shim's primitives, so that the loom
//! models run this very table.

mod array;

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use array::{Array, Probe};

use crate::store::Update;
use crate::sync::{AtomicPtr, AtomicUsize, Mutex, MutexGuard, Ordering, TABLE_MIN_CAPACITY, epoch};

/// An owning pointer a table can keep in a slot: the table holds the raw pointer
/// and gives the owner back when the entry leaves.
///
/// # Safety
/// `from_raw(into_raw(p))` gives back `p`'s ownership; the pointer is not null and
/// its target stays valid while the owner is held.
pub(crate) unsafe trait SlotPointer {
    type Target;
    fn into_raw(self) -> NonNull<Self::Target>;
    /// # Safety
    /// `raw` came from `into_raw`, and its ownership is taken back once.
    unsafe fn from_raw(raw: NonNull<Self::Target>) -> Self;
}

/// One shard: its current array (null until the first insert), its entry count and
/// its writers' lock (which guards the count of used slots in the current array).
/// Aligned so that two shards never share a cache line.
#[repr(align(128))]
struct Shard<K, T> {
    array: AtomicPtr<Array<K, T>>,
    len: AtomicUsize,
    used: Mutex<usize>,
}

/// A sharded hash table of keys to owning pointers `P`.
pub(crate) struct Table<K, P: SlotPointer, S> {
    hasher: S,
    /// `64 - log2(shards)`: the hash's top bits choose the shard.
    shift: u32,
    shards: Box<[Shard<K, P::Target>]>,
    _owns: PhantomData<P>,
}

// SAFETY: the table owns keys and pointers: sending it sends them (`K: Send`, and
// `P: Send` for what the pointers own).
unsafe impl<K: Send, P: SlotPointer + Send, S: Send> Send for Table<K, P, S> {}
// SAFETY: shared, it hands out `&K` to readers on any thread (`K: Sync`) and moves
// keys and owners between threads through its writers (`K: Send`, `P: Send`);
// readers get `&P::Target` through `P`'s own protocol (`P: Sync`). Every shared
// mutation goes through the shard's lock or an atomic.
unsafe impl<K: Send + Sync, P: SlotPointer + Send + Sync, S: Sync> Sync for Table<K, P, S> {}

/// An array retired by a rehash, on its way to `Array::free_retired`.
struct RetiredArray<K, T>(*mut Array<K, T>);

// SAFETY: freeing the array drops the keys of its removed entries (`K: Send`), on
// whichever thread runs the deferred closure; it touches no pointee.
unsafe impl<K: Send, T> Send for RetiredArray<K, T> {}

impl<K, P, S> Table<K, P, S>
where
    K: Eq + Hash + Send + 'static,
    P: SlotPointer,
    P::Target: 'static,
    S: BuildHasher,
{
    /// `shards` must be a power of two, at least 2 (the builder ensures it).
    pub(crate) fn new(hasher: S, shards: usize) -> Self {
        Self::with_capacity(0, hasher, shards)
    }

    /// A table with room for about `capacity` entries before its first rehash.
    pub(crate) fn with_capacity(capacity: usize, hasher: S, shards: usize) -> Self {
        assert!(shards.is_power_of_two() && shards >= 2);
        let per_shard = capacity.div_ceil(shards);
        let shards = (0..shards)
            .map(|_| Shard {
                array: AtomicPtr::new(if per_shard == 0 {
                    ptr::null_mut()
                } else {
                    Box::into_raw(Box::new(Array::new(capacity_for(per_shard))))
                }),
                len: AtomicUsize::new(0),
                used: Mutex::new(0),
            })
            .collect::<Box<[_]>>();
        Table {
            hasher,
            shift: 64 - shards.len().trailing_zeros(),
            shards,
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn shard_of(&self, hash: u64) -> &Shard<K, P::Target> {
        &self.shards[(hash >> self.shift) as usize]
    }

    /// The pointer `key` maps to. Lock-free: the caller's epoch guard, pinned before
    /// this call and held while the result is used, keeps every array this probes
    /// alive; the pointee's liveness is the caller's protocol (`Store`).
    #[inline(always)]
    pub(crate) fn get<Q>(&self, key: &Q, _guard: &epoch::Guard) -> Option<NonNull<P::Target>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        // Acquire: pairs with the Release publication of the array (`grow`), so
        // that its slots, as the rehash filled them, are visible.
        let array = self.shard_of(hash).array.load(Ordering::Acquire);
        // Soundness: a shard's array is freed only by `Drop` (the table is borrowed
        // here) or, once replaced, after a grace period past every guard pinned
        // before the replacement (`grow`); the caller's guard was pinned before
        // this load.
        // SAFETY: the array outlives the caller's guard (above).
        unsafe { array.as_ref() }?.get(hash, key)
    }

    /// Number of entries (sums the shards: O(shards), racy while writers run).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a count, written under the shard's lock; orders nothing.
        self.shards
            .iter()
            .map(|s| s.len.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Maps `key` to `value`; returns the owner it replaced (the key already in the
    /// table is kept, `key` dropped, as `HashMap::insert` does).
    pub(crate) fn insert(&self, key: K, value: P) -> Option<P> {
        self.update(key, |_| Update::Set(value))
    }

    /// Unmaps `key`; returns its owner.
    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<P>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if(key, |_, _| true)
    }

    /// Applies what `f` decides for the entry of `key` (`None`: no entry), under
    /// the shard's lock. Returns the owner replaced or removed.
    pub(crate) fn update(&self, key: K, f: impl FnOnce(Option<&P>) -> Update<P>) -> Option<P> {
        let hash = self.hasher.hash_one(&key);
        let shard = self.shard_of(hash);
        let mut used = lock(shard);
        let Some(array) = shard.current() else {
            // No array yet: the key is absent.
            return match f(None) {
                Update::Set(new) => {
                    let array = self.grow(shard, &mut used);
                    let Probe::Vacant(i) = array.probe(hash, &key) else {
                        unreachable!("a new array is empty")
                    };
                    shard.occupy(array, &mut used, i, key, new);
                    None
                }
                Update::Keep | Update::Remove => None,
            };
        };
        match array.probe(hash, &key) {
            Probe::Found(i) => {
                // SAFETY: the slot's owner stays the table's while the lock is held;
                // the `ManuallyDrop` lends it to `f` without taking it.
                let current = ManuallyDrop::new(unsafe { P::from_raw(array.pointer(i)) });
                match f(Some(&current)) {
                    Update::Keep => None,
                    // SAFETY: the replaced pointer's ownership leaves the table once.
                    Update::Set(new) => {
                        Some(unsafe { P::from_raw(array.replace(i, new.into_raw())) })
                    }
                    Update::Remove => Some(shard.remove(array, i)),
                }
            }
            Probe::Vacant(i) => match f(None) {
                Update::Set(new) => {
                    if Shard::<K, P::Target>::has_room(array, *used) {
                        shard.occupy(array, &mut used, i, key, new);
                    } else {
                        let array = self.grow(shard, &mut used);
                        let Probe::Vacant(i) = array.probe(hash, &key) else {
                            unreachable!("the key was absent before the rehash")
                        };
                        shard.occupy(array, &mut used, i, key, new);
                    }
                    None
                }
                Update::Keep | Update::Remove => None,
            },
        }
    }

    /// Unmaps `key` if `f` approves its entry, under the shard's lock.
    pub(crate) fn remove_if<Q>(&self, key: &Q, f: impl FnOnce(&K, &P) -> bool) -> Option<P>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard_of(hash);
        let _used = lock(shard);
        let array = shard.current()?;
        let Probe::Found(i) = array.probe(hash, key) else {
            return None;
        };
        // SAFETY: lent under the lock, as in `update`.
        let current = ManuallyDrop::new(unsafe { P::from_raw(array.pointer(i)) });
        f(array.key(i), &current).then(|| shard.remove(array, i))
    }

    /// Keeps the entries `f` approves, one shard at a time under its lock; the
    /// others' owners are dropped there.
    pub(crate) fn retain(&self, mut f: impl FnMut(&K, &P) -> bool) {
        for shard in self.shards.iter() {
            let _used = lock(shard);
            let Some(array) = shard.current() else {
                continue;
            };
            array.for_each_live(|i, key, pointer| {
                // SAFETY: lent under the lock, as in `update`.
                let current = ManuallyDrop::new(unsafe { P::from_raw(pointer) });
                if !f(key, &current) {
                    drop(shard.remove::<P>(array, i));
                }
            });
        }
    }

    /// Calls `f` with every entry of shard `shard`, lock-free: the caller's epoch
    /// guard keeps the array and the keys alive (as for [`get`](Self::get)).
    pub(crate) fn for_each_in_shard(
        &self,
        shard: usize,
        _guard: &epoch::Guard,
        mut f: impl FnMut(&K, NonNull<P::Target>),
    ) {
        // Acquire: as in `get`.
        let array = self.shards[shard].array.load(Ordering::Acquire);
        // SAFETY: as in `get`: the caller's guard keeps the array alive.
        if let Some(array) = unsafe { array.as_ref() } {
            array.for_each_live(|_, key, pointer| f(key, pointer));
        }
    }

    /// The live entries, lock-free, borrowed for `'g` (the life of the caller's
    /// epoch guard, which keeps every array and key they come from alive).
    pub(crate) fn entries<'g>(&'g self, _guard: &'g epoch::Guard) -> Entries<'g, K, P::Target> {
        Entries {
            shards: &self.shards,
            next_shard: 0,
            array: None,
            next_slot: 0,
        }
    }

    /// Consumes the table, handing every entry to `f`.
    pub(crate) fn drain(mut self, f: impl FnMut(K, P)) {
        self.take_all(f);
    }

    /// Rehashes `shard` into an array with room for its entries and one more (the
    /// first array if it has none), publishes it and retires the old one past an
    /// epoch grace period. Under the shard's lock (`used`).
    fn grow<'a>(
        &self,
        shard: &'a Shard<K, P::Target>,
        used: &mut MutexGuard<'_, usize>,
    ) -> &'a Array<K, P::Target> {
        // Relaxed: written under the lock we hold.
        let live = shard.len.load(Ordering::Relaxed);
        let new = Box::new(Array::new(capacity_for(live + 1)));
        let old = shard.array.load(Ordering::Relaxed);
        // SAFETY: the current array, alive while it is current (we hold the lock).
        if let Some(old) = unsafe { old.as_ref() } {
            let moved = old.move_live_into(&new, |key| self.hasher.hash_one(key));
            debug_assert_eq!(moved, live);
        }
        **used = live;
        let new = Box::into_raw(new);
        // Release: publishes the new array's slots (keys and pointers, written by
        // the rehash) to readers' Acquire loads (`get`, `for_each_in_shard`,
        // `Entries`).
        shard.array.store(new, Ordering::Release);
        if !old.is_null() {
            let retired = RetiredArray(old);
            // The grace period: readers that loaded `old` were pinned before this
            // deferral, and the closure runs once all of them have unpinned.
            epoch::pin().defer(move || {
                let retired = retired;
                // SAFETY: retired by `move_live_into` above, unreachable once every
                // guard pinned before the deferral is gone (the grace period).
                unsafe { Array::free_retired(retired.0) }
            });
        }
        // SAFETY: just published; freed only by a later rehash under the lock
        // (after a grace period) or by `Drop`.
        unsafe { &*new }
    }
}

impl<K, T> Shard<K, T> {
    /// The current array, under the shard's lock.
    fn current(&self) -> Option<&Array<K, T>> {
        // Relaxed: written only under the lock, which the caller holds.
        let array = self.array.load(Ordering::Relaxed);
        // SAFETY: the current array is alive while it is current (under the lock).
        unsafe { array.as_ref() }
    }

    /// Whether `array` has a never-used slot to spare after one more insert (a
    /// probe must always find one to stop at).
    fn has_room(array: &Array<K, T>, used: usize) -> bool {
        (used + 1) * 4 <= array.capacity() * 3
    }

    fn occupy<P: SlotPointer<Target = T>>(
        &self,
        array: &Array<K, T>,
        used: &mut MutexGuard<'_, usize>,
        i: usize,
        key: K,
        value: P,
    ) {
        array.occupy(i, key, value.into_raw());
        **used += 1;
        // Relaxed: a count for `len`; written under the lock.
        self.len
            .store(self.len.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn remove<P: SlotPointer<Target = T>>(&self, array: &Array<K, T>, i: usize) -> P {
        let pointer = array.remove(i);
        // Relaxed: as in `occupy`.
        self.len
            .store(self.len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        // SAFETY: the removed pointer's ownership leaves the table once.
        unsafe { P::from_raw(pointer) }
    }
}

/// Takes a shard's writer lock. A panic in a caller's closure under the lock (in
/// `update`, `remove_if`, `retain`) leaves the shard consistent (every change is
/// whole before the next closure runs), so a poisoned lock is taken as it is.
fn lock<K, T>(shard: &Shard<K, T>) -> MutexGuard<'_, usize> {
    shard
        .used
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The array capacity for `entries` entries: at most half full after a rehash.
fn capacity_for(entries: usize) -> usize {
    (entries * 2).next_power_of_two().max(TABLE_MIN_CAPACITY)
}

impl<K, P: SlotPointer, S> Table<K, P, S> {
    /// Empties every shard, handing each entry to `f`; the arrays are freed.
    fn take_all(&mut self, mut f: impl FnMut(K, P)) {
        for shard in self.shards.iter() {
            // Relaxed: `&mut self`: the table is ours alone.
            let array = shard.array.swap(ptr::null_mut(), Ordering::Relaxed);
            if !array.is_null() {
                // SAFETY: a current array, from `Box::into_raw`, ours alone now (and
                // unlinked above, so freed once).
                let array = unsafe { Box::from_raw(array) };
                // SAFETY: each live pointer's ownership leaves the table once.
                array.drain(|key, pointer| f(key, unsafe { P::from_raw(pointer) }));
            }
        }
    }
}

impl<K, P: SlotPointer, S> Drop for Table<K, P, S> {
    /// Drops every key and owner left (a table dropped without `drain`: one built
    /// for a generation that was never published, for example).
    fn drop(&mut self) {
        self.take_all(|key, owner| drop((key, owner)));
    }
}

/// The live entries of a table, lock-free: see [`Table::entries`].
pub(crate) struct Entries<'g, K, T> {
    shards: &'g [Shard<K, T>],
    next_shard: usize,
    array: Option<&'g Array<K, T>>,
    next_slot: usize,
}

impl<'g, K, T> Iterator for Entries<'g, K, T> {
    type Item = (&'g K, NonNull<T>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(array) = self.array {
                if let Some((i, key, pointer)) = array.next_live(self.next_slot) {
                    self.next_slot = i + 1;
                    return Some((key, pointer));
                }
                self.array = None;
            }
            let shard = self.shards.get(self.next_shard)?;
            self.next_shard += 1;
            self.next_slot = 0;
            // Acquire: as in `Table::get`.
            let array = shard.array.load(Ordering::Acquire);
            // SAFETY: as in `Table::get`: the guard `'g` borrows keeps it alive.
            self.array = unsafe { array.as_ref() };
        }
    }
}
