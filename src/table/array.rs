//! `Array`: one shard's open-addressing slot array, probed by readers without a
//! lock and written by the shard's writer under its lock.
//!
//! A slot holds a pointer to an entry (the value cell, which also holds the key:
//! `value.rs`) and the key's hash. The pointer is the slot's state:
//!
//! * null: never used; a probe stops here (the array is never full: see
//!   `Shard::has_room`);
//! * [`tombstone`]: its entry was removed; a probe goes on past it. The slot is never
//!   written again;
//! * anything else: a live entry. The hash was written before the pointer was
//!   published (Release), and is never written again.
//!
//! Keys never live in an array, so a rehash moves only hashes and pointers into a
//! new array and retires this one, whose slots are then freed after an epoch grace
//! period: no key is ever copied, and freeing an array runs no user code.

use std::ptr::{self, NonNull};

use crate::sync::{AtomicPtr, Ordering, TRACK_FREES, UnsafeCell};

/// The state of a removed entry's slot: never a valid pointer (every pointee is
/// aligned to more than 1, checked in `Array::new`), and never dereferenced.
pub(super) fn tombstone<T>() -> *mut T {
    ptr::without_provenance_mut(1)
}

/// One entry's pointer and the hash of its key.
pub(super) struct Slot<T> {
    pointer: AtomicPtr<T>,
    hash: UnsafeCell<u64>,
}

/// What a probe for a key found.
pub(super) enum Probe {
    /// The key's live slot.
    Found(usize),
    /// The key is absent; the first never-used slot of its probe sequence.
    Vacant(usize),
}

pub(super) struct Array<T> {
    slots: Box<[Slot<T>]>,
}

impl<T> Array<T> {
    /// An array of `capacity` never-used slots (`capacity` a power of two).
    pub(super) fn new(capacity: usize) -> Self {
        const {
            assert!(
                align_of::<T>() >= 2,
                "the tombstone's address must be no entry's"
            )
        };
        debug_assert!(capacity.is_power_of_two());
        Array {
            slots: (0..capacity)
                .map(|_| Slot {
                    pointer: AtomicPtr::new(ptr::null_mut()),
                    hash: UnsafeCell::new(0),
                })
                .collect(),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The live entry of hash `hash` that `is_key` accepts, if any: the read path.
    /// Runs without a lock, concurrently with the shard's writer. `is_key` is called
    /// only with live entries whose hash matches.
    #[inline(always)]
    pub(super) fn get(&self, hash: u64, is_key: impl Fn(NonNull<T>) -> bool) -> Option<NonNull<T>> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            // Acquire: pairs with the Release store that published the entry
            // (`occupy`, `replace`, or the array's own publication after a rehash,
            // which happens before this array was loaded): the hash and the entry
            // written before it are visible.
            let pointer = slot.pointer.load(Ordering::Acquire);
            let live = NonNull::new(pointer)?;
            // SAFETY: a live pointer was published after its slot's hash was
            // written (the Acquire above), and a used slot's hash is never written
            // again (module docs).
            if pointer != tombstone() && unsafe { slot.hash_is(hash) } && is_key(live) {
                return Some(live);
            }
            i = (i + 1) & mask;
        }
    }

    /// Where the key of hash `hash` that `is_key` accepts is, or where it would go:
    /// the writer's probe, under the shard's lock (so no slot of this array changes
    /// meanwhile).
    pub(super) fn probe(&self, hash: u64, is_key: impl Fn(NonNull<T>) -> bool) -> Probe {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            // Relaxed: the caller holds the shard's lock, under which every write to
            // this array is made; the lock orders them.
            let pointer = slot.pointer.load(Ordering::Relaxed);
            let Some(live) = NonNull::new(pointer) else {
                return Probe::Vacant(i);
            };
            // SAFETY: a used slot's hash was written under the lock, which we hold.
            if pointer != tombstone() && unsafe { slot.hash_is(hash) } && is_key(live) {
                return Probe::Found(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The first never-used slot of `hash`'s probe sequence: where a rehash puts an
    /// entry (keys are unique, so none needs comparing). Under the shard's lock, or
    /// on an array not yet published.
    fn first_unused(&self, hash: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        // Relaxed: as in `probe`.
        while !self.slots[i].pointer.load(Ordering::Relaxed).is_null() {
            i = (i + 1) & mask;
        }
        i
    }

    /// The live pointer in slot `i` (a `Probe::Found`), under the shard's lock.
    pub(super) fn pointer(&self, i: usize) -> NonNull<T> {
        // Relaxed: under the shard's lock (as in `probe`).
        let pointer = self.slots[i].pointer.load(Ordering::Relaxed);
        live(pointer).expect("a found slot is live")
    }

    /// Writes `hash` into never-used slot `i` and publishes it mapped to `pointer`.
    /// Under the shard's lock, or on an array not yet published.
    pub(super) fn occupy(&self, i: usize, hash: u64, pointer: NonNull<T>) {
        let slot = &self.slots[i];
        debug_assert!(slot.pointer.load(Ordering::Relaxed).is_null());
        // SAFETY: a never-used slot's hash is read by nobody: readers stop at a null
        // pointer before reading it, and the lock we hold keeps other writers out.
        // The Release store below publishes the write.
        slot.hash.with_mut(|h| unsafe { *h = hash });
        // Release: publishes the hash and the entry (the value cell and its key,
        // written before the insert) to readers' Acquire loads in `get` and
        // `next_live`.
        slot.pointer.store(pointer.as_ptr(), Ordering::Release);
    }

    /// Maps live slot `i` to `pointer` instead (an entry for an equal key, so of
    /// the same hash); returns the pointer it held. Under the shard's lock.
    pub(super) fn replace(&self, i: usize, pointer: NonNull<T>) -> NonNull<T> {
        // Release: publishes the new entry to readers' Acquire loads in `get` and
        // `next_live`.
        let old = self.slots[i]
            .pointer
            .swap(pointer.as_ptr(), Ordering::Release);
        live(old).expect("a replaced slot is live")
    }

    /// Marks live slot `i` removed; returns the pointer it held. Under the shard's
    /// lock.
    pub(super) fn remove(&self, i: usize) -> NonNull<T> {
        // Relaxed: a tombstone publishes nothing (readers skip it). A reader that
        // still loads the old pointer is served by it: the entry's own protocol
        // keeps it alive past the removal (`Store`), and a retained read that finds
        // it unmapped probes again, ordered by the unmapping's Release (`value.rs`).
        let old = self.slots[i].pointer.swap(tombstone(), Ordering::Relaxed);
        live(old).expect("a removed slot was live")
    }

    /// The first live entry at or after slot `from`: `(index, pointer)`. Lock-free
    /// (the pointers are loaded as in `get`), or under the shard's lock.
    pub(super) fn next_live(&self, from: usize) -> Option<(usize, NonNull<T>)> {
        self.slots
            .iter()
            .enumerate()
            .skip(from)
            // Acquire: as in `get`.
            .find_map(|(i, slot)| Some((i, live(slot.pointer.load(Ordering::Acquire))?)))
    }

    /// The pointer in slot `i` now: live, or `None` (removed). Lock-free, as
    /// `next_live`.
    pub(super) fn reload(&self, i: usize) -> Option<NonNull<T>> {
        // Acquire: as in `get`.
        live(self.slots[i].pointer.load(Ordering::Acquire))
    }

    /// Moves every live entry into `into` (a new array, not yet published, with
    /// room for them all) and returns how many. Under the shard's lock.
    pub(super) fn move_live_into(&self, into: &Array<T>) -> usize {
        let mut moved = 0;
        for slot in self.slots.iter() {
            // Relaxed: under the shard's lock.
            let Some(entry) = live(slot.pointer.load(Ordering::Relaxed)) else {
                continue;
            };
            // SAFETY: a live slot's hash was written under the lock we hold and is
            // not written again.
            let hash = slot.hash.with(|h| unsafe { *h });
            into.occupy(into.first_unused(hash), hash, entry);
            moved += 1;
        }
        moved
    }

    /// Hands every live pointer to `f`: the end of an array no reader can reach.
    pub(super) fn drain(self, mut f: impl FnMut(NonNull<T>)) {
        for slot in self.slots.iter() {
            // Relaxed: the array is ours alone (`self`).
            if let Some(entry) = live(slot.pointer.load(Ordering::Relaxed)) {
                f(entry);
            }
        }
    }
}

impl<T> Drop for Array<T> {
    /// Under loom, writes every slot's hash before the slots are freed, so that a
    /// reader still probing a freed array (a missing grace period) races a write
    /// that loom sees, whatever the freed memory then holds. Nothing in production.
    fn drop(&mut self) {
        if TRACK_FREES {
            self.poison();
        }
    }
}

impl<T> Array<T> {
    /// Writes every slot's hash over: what a free does to the array, as loom sees
    /// it (see `Drop`).
    fn poison(&self) {
        for slot in self.slots.iter() {
            // SAFETY: called on an array no reader can reach any more (its grace
            // period, or its table's teardown, is over), so nothing reads the hashes.
            slot.hash.with_mut(|h| unsafe { *h = u64::MAX });
        }
    }
}

/// A slot's pointer, if it is a live entry's (neither never used nor removed).
fn live<T>(pointer: *mut T) -> Option<NonNull<T>> {
    NonNull::new(pointer).filter(|p| p.as_ptr() != tombstone())
}

impl<T> Slot<T> {
    /// Whether the slot's hash is `hash`.
    ///
    /// # Safety
    /// The slot is used (its hash written and published to the caller).
    #[inline(always)]
    unsafe fn hash_is(&self, hash: u64) -> bool {
        // SAFETY: the caller's contract: written once, before publication.
        self.hash.with(|h| unsafe { *h } == hash)
    }
}
