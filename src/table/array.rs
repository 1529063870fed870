//! `Array`: one shard's open-addressing slot array, probed by readers without a
//! lock and written by the shard's writer under its lock.
//!
//! A slot holds a key and an owning pointer. Its pointer is the slot's state:
//!
//! * null: never used; a probe stops here (the array is never full: see
//!   `Shard::room_for_one`);
//! * [`TOMBSTONE`]: its entry was removed; a probe goes on past it. The key stays in
//!   place (a reader that loaded the pointer before the removal may still compare
//!   it) until the array is retired by a rehash or the table is dropped, and the
//!   slot is never written again;
//! * anything else: a live entry. The key was written before the pointer was
//!   published (Release), and is never written again while the array is current.
//!
//! A rehash moves the live keys bitwise into a new array and retires this one: its
//! live keys are then owned by the new array (never dropped through this one), its
//! removed keys by this one, dropped with it after an epoch grace period.

use std::borrow::Borrow;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use crate::sync::{AtomicPtr, Ordering, UnsafeCell};

/// The state of a removed entry's slot: never a valid pointer (every pointee is
/// aligned to more than 1), and never dereferenced.
pub(super) fn tombstone<T>() -> *mut T {
    ptr::without_provenance_mut(1)
}

/// One key and the pointer it maps to.
pub(super) struct Slot<K, T> {
    pointer: AtomicPtr<T>,
    key: UnsafeCell<MaybeUninit<K>>,
}

/// What a probe for a key found.
pub(super) enum Probe {
    /// The key's live slot, and the pointer it held.
    Found(usize),
    /// The key is absent; the first never-used slot of its probe sequence.
    Vacant(usize),
}

pub(super) struct Array<K, T> {
    slots: Box<[Slot<K, T>]>,
}

impl<K, T> Array<K, T> {
    /// An array of `capacity` never-used slots (`capacity` a power of two).
    pub(super) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Array {
            slots: (0..capacity)
                .map(|_| Slot {
                    pointer: AtomicPtr::new(ptr::null_mut()),
                    key: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The pointer `key` maps to in this array, if any: the read path. Runs
    /// without a lock, concurrently with the shard's writer.
    #[inline(always)]
    pub(super) fn get<Q>(&self, hash: u64, key: &Q) -> Option<NonNull<T>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            // Acquire: pairs with the Release store that published the entry
            // (`occupy`, `replace`, or the array's own publication after a rehash,
            // which happens before this array was loaded): the key and the pointee
            // written before it are visible.
            let pointer = slot.pointer.load(Ordering::Acquire);
            let live = NonNull::new(pointer)?;
            // SAFETY: a live pointer (not null, not a tombstone) was published after
            // its key was written (the Acquire above), and a slot's key is not
            // written again while the slot is reachable (module docs).
            if pointer != tombstone() && unsafe { slot.key_is(key) } {
                return Some(live);
            }
            i = (i + 1) & mask;
        }
    }

    /// Where `key` is, or where it would go: the writer's probe, under the shard's
    /// lock (so no slot of this array changes meanwhile).
    pub(super) fn probe<Q>(&self, hash: u64, key: &Q) -> Probe
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            // Relaxed: the caller holds the shard's lock, under which every write to
            // this array is made; the lock orders them.
            let pointer = slot.pointer.load(Ordering::Relaxed);
            if pointer.is_null() {
                return Probe::Vacant(i);
            }
            // SAFETY: a used slot's key was written under the lock, which we hold.
            if pointer != tombstone() && unsafe { slot.key_is(key) } {
                return Probe::Found(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The first never-used slot of `hash`'s probe sequence: where a rehash puts a
    /// key (keys are unique, so none needs comparing). Under the shard's lock, or
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
        NonNull::new(pointer)
            .filter(|p| p.as_ptr() != tombstone())
            .expect("a found slot is live")
    }

    /// The key in live slot `i`, under the shard's lock.
    pub(super) fn key(&self, i: usize) -> &K {
        // SAFETY: slot `i` is used (a `Probe::Found`), so its key was written, and
        // it is not written again while the slot is reachable.
        unsafe { self.slots[i].key_ref() }
    }

    /// Writes `key` into never-used slot `i` and publishes it mapped to `pointer`.
    /// Under the shard's lock.
    pub(super) fn occupy(&self, i: usize, key: K, pointer: NonNull<T>) {
        let slot = &self.slots[i];
        debug_assert!(slot.pointer.load(Ordering::Relaxed).is_null());
        // SAFETY: a never-used slot's key is read by nobody: readers stop at a null
        // pointer before reading the key, and the lock we hold keeps other writers
        // out. The Release store below publishes the write.
        slot.key.with_mut(|k| unsafe { (*k).write(key) });
        // Release: publishes the key and the pointee to readers' Acquire loads in
        // `get` (and, through them, to whoever follows the pointer).
        slot.pointer.store(pointer.as_ptr(), Ordering::Release);
    }

    /// Maps live slot `i` to `pointer` instead; returns the pointer it held. Under
    /// the shard's lock.
    pub(super) fn replace(&self, i: usize, pointer: NonNull<T>) -> NonNull<T> {
        // Release: publishes the new pointee to readers' Acquire loads in `get`.
        let old = self.slots[i]
            .pointer
            .swap(pointer.as_ptr(), Ordering::Release);
        NonNull::new(old).expect("a replaced slot is live")
    }

    /// Marks live slot `i` removed; returns the pointer it held. Under the shard's
    /// lock. The key stays (see the module docs).
    pub(super) fn remove(&self, i: usize) -> NonNull<T> {
        // Relaxed: a tombstone publishes nothing (readers skip it). A reader that
        // still loads the old pointer is served by it: the pointee's own protocol
        // keeps it alive past the removal (`Store`), and a retained read that finds
        // it unmapped probes again, ordered by the unmapping's Release (`value.rs`).
        let old = self.slots[i].pointer.swap(tombstone(), Ordering::Relaxed);
        NonNull::new(old)
            .filter(|p| p.as_ptr() != tombstone())
            .expect("a removed slot was live")
    }

    /// The first live entry at or after slot `from`: `(index, key, pointer)`.
    /// Lock-free (the pointers are loaded as in `get`), or under the shard's lock.
    pub(super) fn next_live(&self, from: usize) -> Option<(usize, &K, NonNull<T>)> {
        self.slots
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(i, slot)| {
                // Acquire: as in `get`.
                let pointer = slot.pointer.load(Ordering::Acquire);
                let live = NonNull::new(pointer).filter(|p| p.as_ptr() != tombstone())?;
                // SAFETY: as in `get`: a live pointer was published after its key, and
                // the key is not written again while the array is reachable.
                Some((i, unsafe { slot.key_ref() }, live))
            })
    }

    /// Calls `f` with every live entry: `(index, key, pointer)`, as `next_live`.
    pub(super) fn for_each_live(&self, mut f: impl FnMut(usize, &K, NonNull<T>)) {
        let mut from = 0;
        while let Some((i, key, pointer)) = self.next_live(from) {
            f(i, key, pointer);
            from = i + 1;
        }
    }

    /// Moves every live entry into `into` (a new array, not yet published, with
    /// room for them all) and returns how many. The moved keys now belong to
    /// `into`: this array must then be retired with [`free_retired`](Self::free_retired).
    /// Under the shard's lock.
    pub(super) fn move_live_into(&self, into: &Array<K, T>, hash: impl Fn(&K) -> u64) -> usize {
        let mut moved = 0;
        for slot in self.slots.iter() {
            // Relaxed: under the shard's lock.
            let pointer = slot.pointer.load(Ordering::Relaxed);
            let Some(live) = NonNull::new(pointer).filter(|p| p.as_ptr() != tombstone()) else {
                continue;
            };
            // SAFETY: a live slot's key is initialized. The bitwise copy leaves the
            // key in place here for readers still probing this array: it is never
            // dropped through this array (`free_retired` skips live slots), so the
            // two copies are one key, owned by `into`.
            let key = slot.key.with(|k| unsafe { ptr::read(k).assume_init() });
            let i = into.first_unused(hash(&key));
            // Relaxed stores in `occupy` would do (the array is published as a whole
            // by the caller's Release); `occupy`'s Release costs nothing more here.
            into.occupy(i, key, live);
            moved += 1;
        }
        moved
    }

    /// Drops the keys of removed entries and frees the array: for an array retired
    /// by a rehash (its live keys moved on), after a grace period past every reader
    /// that could still probe it.
    ///
    /// # Safety
    /// `array` came from `Box::into_raw`, was retired by `move_live_into`, and no
    /// reader can reach it any more.
    pub(super) unsafe fn free_retired(array: *mut Array<K, T>) {
        // SAFETY: the caller's contract: ours alone now.
        let array = unsafe { Box::from_raw(array) };
        for slot in array.slots.iter() {
            // Relaxed: no other thread reaches the array (the contract).
            if slot.pointer.load(Ordering::Relaxed) == tombstone() {
                // SAFETY: a tombstone's key was written and is owned by this array
                // (module docs); dropped once, here.
                slot.key.with_mut(|k| unsafe { (*k).assume_init_drop() });
            }
        }
    }

    /// Hands every live entry to `f` and drops the removed keys: the end of a table
    /// no reader can reach.
    pub(super) fn drain(self, mut f: impl FnMut(K, NonNull<T>)) {
        for slot in self.slots.iter() {
            // Relaxed: the array is ours alone (`self`).
            let pointer = slot.pointer.load(Ordering::Relaxed);
            if pointer.is_null() {
                continue;
            }
            // SAFETY: a used slot's key is initialized and owned by this array (a
            // current array owns all its keys); read out once, here.
            let key = slot.key.with(|k| unsafe { ptr::read(k).assume_init() });
            match NonNull::new(pointer).filter(|p| p.as_ptr() != tombstone()) {
                Some(live) => f(key, live),
                None => drop(key),
            }
        }
    }
}

impl<K, T> Slot<K, T> {
    /// Whether the slot's key is `key`. The comparison runs inside the cell's
    /// access, so that under loom a read racing the key's write or drop is caught.
    ///
    /// # Safety
    /// The key is initialized and not written during the call.
    #[inline(always)]
    unsafe fn key_is<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // SAFETY: the caller's contract.
        self.key
            .with(|k| unsafe { (*k).assume_init_ref() }.borrow() == key)
    }

    /// The slot's key.
    ///
    /// # Safety
    /// The key is initialized and not written for the returned borrow's life.
    #[inline(always)]
    unsafe fn key_ref(&self) -> &K {
        // SAFETY: the caller's contract; the borrow is tied to `&self`.
        self.key.with(|k| unsafe { (*k).assume_init_ref() })
    }
}
