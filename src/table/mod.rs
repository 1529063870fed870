//! `Table`: the per-generation hash table. Readers probe it without a lock under an
//! epoch guard; writers lock one shard.
//!
//! The table is split into shards by the hash's top bits. Each shard has an
//! open-addressing array of slots (`array.rs`: one word per slot, a pointer to an
//! entry tagged with 16 bits of its key's hash, linear probing), a lock that its
//! writers take, and a count of entries. An entry is a value cell, which holds its
//! key (`value/mod.rs`): the table never copies a key. A reader loads the shard's
//! current array (Acquire) and probes it: no lock, no read-modify-write, no store.
//! A writer holds the shard's lock (the map's: `locks.rs`, taken before the writer
//! loads the generation, and shared by every generation's table) and inserts into
//! the first removed slot of the key's probe sequence (or the unused one that ends it), swaps a live slot's
//! pointer, or marks it removed (a tombstone, or never used again where no probe
//! sequence runs past it: `Array::remove`); when the used slots (live entries and
//! tombstones) would pass three quarters of the array, or its live entries half
//! of it, it rehashes the live entries into a new array
//! (hashing their keys again), publishes it (Release) and, once its lock is
//! released, retires the old one through an epoch deferral, so that a reader still
//! probing it finishes first.
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
mod locks;
mod shards;

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use array::{Array, Probe};
use locks::RetiredArray;
pub(crate) use locks::{Fetched, Locked, ShardLocks};
use shards::ShardArray;

use crate::mapped::Commit;
use crate::store::Update;
use crate::sync::{
    AtomicPtr, AtomicUsize, Ordering, TABLE_MIN_CAPACITY, TRACK_FREES, UnsafeCell, epoch,
};
use crate::try_reserve::TryReserveError;

/// An owning pointer to an entry that a table can keep in a slot: the table holds
/// the raw pointer and gives the owner back when the entry leaves; the entry holds
/// its key.
///
/// # Safety
/// `from_raw(into_raw(p))` gives back `p`'s ownership; the pointer is not null,
/// aligned to at least 2, and its target stays valid while the owner is held.
pub(crate) unsafe trait SlotPointer {
    type Target;
    type Key;
    fn into_raw(self) -> NonNull<Self::Target>;
    /// The pointer, ownership kept.
    fn as_raw(&self) -> NonNull<Self::Target>;
    /// # Safety
    /// `raw` came from `into_raw`, and its ownership is taken back once.
    unsafe fn from_raw(raw: NonNull<Self::Target>) -> Self;
    /// The entry's key, never written while the entry is reachable.
    ///
    /// # Safety
    /// `raw` came from `into_raw`, and the caller keeps the entry alive for `'a`
    /// (its owner is held, or the caller's protocol defers its destruction).
    unsafe fn key<'a>(raw: NonNull<Self::Target>) -> &'a Self::Key;
}

/// One shard: its current array (null until the first insert), its entry count and
/// the count of used slots (live or tombstones) in the current array. Written only
/// under the shard's lock (`ShardLocks`, the map's).
/// Aligned so that two shards never share a cache line.
#[repr(align(128))]
struct Shard<T> {
    array: AtomicPtr<Array<T>>,
    len: AtomicUsize,
    used: AtomicUsize,
}

/// A sharded hash table of keys to owning pointers `P` (each entry holding its key).
pub(crate) struct Table<K, P: SlotPointer<Key = K>, S> {
    hasher: S,
    /// `64 - log2(shards)`: the hash's top bits choose the shard.
    shift: u32,
    shards: ShardArray<Shard<P::Target>>,
    /// How far a teardown has drained the table (`drain_slice`), so that whatever
    /// drains it next (the next slice, or `Drop`) hands each entry over once.
    drained: Drained,
    /// Under loom (`TRACK_FREES`), read by every write and written by the drop: a
    /// write into a table its teardown is freeing (a writer the quiesce of the
    /// shard locks missed: `locks.rs`) races a write that loom sees. Unused
    /// otherwise.
    freed: UnsafeCell<bool>,
    _owns: PhantomData<P>,
}

/// A place in a table being drained: the shards before `shard` are empty (their
/// arrays freed), and in `shard`'s array the slots before `slot` were handed over.
#[derive(Clone, Copy, Default)]
struct Drained {
    shard: usize,
    slot: usize,
}

// SAFETY: the table owns its entries through `P`: sending it sends them (`P: Send`,
// which covers the keys the entries hold).
unsafe impl<K, P: SlotPointer<Key = K> + Send, S: Send> Send for Table<K, P, S> {}
// SAFETY: shared, it lends `&K` and `&P` to any thread and moves owners between
// threads through its writers (`P: Send + Sync`, `K` inside the entries `P` owns);
// every shared mutation goes through the shard's lock or an atomic.
unsafe impl<K, P: SlotPointer<Key = K> + Send + Sync, S: Sync> Sync for Table<K, P, S> {}

/// A writer of one shard: the shard, and the held lock (which keeps the array a
/// rehash replaces until it is released: `Locked`).
struct Writer<'w, 'l, T: 'static> {
    shard: &'w Shard<T>,
    locked: &'w mut Locked<'l>,
}

impl<K, P, S> Table<K, P, S>
where
    K: Eq + Hash,
    P: SlotPointer<Key = K>,
    P::Target: 'static,
    S: BuildHasher,
{
    /// `shards` must be a power of two, at least 2 (the builder ensures it).
    #[cfg(all(test, not(feature = "loom")))]
    pub(crate) fn new(hasher: S, shards: usize) -> Self {
        Self::with_capacity(0, hasher, shards)
    }

    /// A table with room for about `capacity` entries before its first rehash,
    /// written under a map's `ShardLocks` of as many shards.
    pub(crate) fn with_capacity(capacity: usize, hasher: S, shards: usize) -> Self {
        assert!(shards.is_power_of_two() && shards >= 2);
        let per_shard = share_of(capacity, shards);
        let shards = ShardArray::new(shards, || Shard {
            array: AtomicPtr::new(if per_shard == 0 {
                ptr::null_mut()
            } else {
                // Committed at once, as a reserve's arrays are (`Writer::reserve`:
                // readers probing ahead of the fill would otherwise map the zero
                // page into pages the fill then writes, a TLB flush each).
                Box::into_raw(Box::new(Array::new(capacity_for(per_shard), Commit::Now)))
            }),
            len: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
        });
        Table {
            hasher,
            shift: 64 - shards.len().trailing_zeros(),
            shards,
            drained: Drained::default(),
            freed: UnsafeCell::new(false),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn shard_of(&self, hash: u64) -> &Shard<P::Target> {
        &self.shards[(hash >> self.shift) as usize]
    }

    /// The hash of `entry`'s key: what a rehash places it by (a slot keeps only a
    /// tag of it), and what a removal reads a displacement from where the slot's
    /// word cannot tell it (`Array::remove`).
    fn hash_of(&self) -> impl Fn(NonNull<P::Target>) -> u64 + '_ {
        // SAFETY: called only by a rehash or a removal, under the shard's lock, with
        // live entries of the shard, which the table owns meanwhile.
        move |entry| self.hasher.hash_one(unsafe { P::key(entry) })
    }

    /// Whether `entry`'s key is `key`.
    #[inline(always)]
    fn is_key<Q>(key: &Q) -> impl Fn(NonNull<P::Target>) -> bool + '_
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // SAFETY: called only with live entries of an array the caller may probe
        // (a reader under its epoch guard, a writer under the shard's lock), which
        // the entries' protocol keeps alive meanwhile (`Store`).
        move |entry| unsafe { P::key(entry) }.borrow() == key
    }

    /// The entry `key` maps to. Lock-free: the caller's epoch guard, pinned before
    /// this call and held while the result is used, keeps every array this probes
    /// alive; the entry's liveness is the caller's protocol (`Store`).
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
        // before it was retired (`Writer::drop`); the caller's guard was pinned
        // before this load.
        // SAFETY: the array outlives the caller's guard (above).
        unsafe { array.as_ref() }?.get(hash, Self::is_key(key))
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

    /// The hash of `key`, which picks its shard and its slots.
    #[inline(always)]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Maps the key of `entry`, of hash `hash`, to it, under `locked` (the lock of
    /// that hash's shard); returns the owner it replaced (whose entry, with its
    /// own copy of the key, leaves the table).
    #[inline]
    pub(crate) fn insert(&self, locked: &mut Locked<'_>, hash: u64, entry: P) -> Option<P> {
        // SAFETY: `entry` is held (owned) for the whole call, so its key is alive;
        // it is kept owned until the slot takes it, so that a panicking `Eq` drops
        // it instead of leaking it.
        let key = unsafe { P::key(entry.as_raw()) };
        debug_assert_eq!(hash, self.hash(key), "the key's own hash");
        let mut writer = self.writer(locked, hash);
        let array = writer.array_for_one_more(self.hash_of());
        match array.probe(hash, Self::is_key(key)) {
            Probe::Found(i, old) => {
                array.replace(i, hash, entry.into_raw());
                // SAFETY: the replaced pointer's ownership leaves the table once.
                Some(unsafe { P::from_raw(old) })
            }
            Probe::Vacant(i) => {
                writer.occupy(array, i, hash, entry.into_raw());
                None
            }
        }
    }

    /// Unmaps `key`, of hash `hash`, under `locked`; returns its owner.
    pub(crate) fn remove<Q>(&self, locked: &mut Locked<'_>, hash: u64, key: &Q) -> Option<P>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if(locked, hash, key, |_, _| true)
    }

    /// Applies what `f` decides for the entry of `key`, of hash `hash` (`None`: no
    /// entry), under `locked`. `f` gets `key` back, to build the new entry with (or
    /// drop). Returns the owner replaced or removed.
    pub(crate) fn update(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        key: K,
        f: impl FnOnce(Option<&P>, K) -> Update<P>,
    ) -> Option<P> {
        debug_assert_eq!(hash, self.hash(&key), "the key's own hash");
        let mut writer = self.writer(locked, hash);
        let found = writer
            .current()
            .map(|array| (array, array.probe(hash, Self::is_key(&key))));
        match found {
            Some((array, Probe::Found(i, entry))) => {
                // SAFETY: the slot's owner stays the table's while the lock is held;
                // the `ManuallyDrop` lends it to `f` without taking it.
                let current = ManuallyDrop::new(unsafe { P::from_raw(entry) });
                match f(Some(&current), key) {
                    Update::Keep => None,
                    Update::Set(new) => {
                        array.replace(i, hash, new.into_raw());
                        // SAFETY: the replaced pointer's ownership leaves the table once.
                        Some(unsafe { P::from_raw(entry) })
                    }
                    Update::Remove => Some(writer.remove(array, i, entry, self.hash_of())),
                }
            }
            _ => match f(None, key) {
                Update::Set(new) => {
                    // The probe again: the array may be new (a first one, a rehash).
                    let array = writer.array_for_one_more(self.hash_of());
                    // SAFETY: `new` is held (owned) across the probe, as in `insert`.
                    let key = unsafe { P::key(new.as_raw()) };
                    let Probe::Vacant(i) = array.probe(hash, Self::is_key(key)) else {
                        unreachable!("the key was absent under the lock")
                    };
                    writer.occupy(array, i, hash, new.into_raw());
                    None
                }
                Update::Keep | Update::Remove => None,
            },
        }
    }

    /// Unmaps `key`, of hash `hash`, if `f` approves its entry, under `locked`.
    pub(crate) fn remove_if<Q>(
        &self,
        locked: &mut Locked<'_>,
        hash: u64,
        key: &Q,
        f: impl FnOnce(&K, &P) -> bool,
    ) -> Option<P>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        debug_assert_eq!(hash, self.hash(key), "the key's own hash");
        let mut writer = self.writer(locked, hash);
        let array = writer.current()?;
        let Probe::Found(i, entry) = array.probe(hash, Self::is_key(key)) else {
            return None;
        };
        // SAFETY: lent under the lock, as in `update`; the key lives in the entry.
        let current = ManuallyDrop::new(unsafe { P::from_raw(entry) });
        // SAFETY: the entry is alive while the table owns it (under the lock).
        f(unsafe { P::key(entry) }, &current)
            .then(|| writer.remove(array, i, entry, self.hash_of()))
    }

    /// Keeps the entries of the shard `locked` holds the lock of that `f`
    /// approves; the others' owners are dropped there.
    pub(crate) fn retain_shard(&self, locked: &mut Locked<'_>, mut f: impl FnMut(&K, &P) -> bool) {
        let mut writer = Writer {
            shard: &self.shards[locked.shard()],
            locked,
        };
        let Some(array) = writer.current() else {
            return;
        };
        let mut from = 0;
        while let Some((i, entry)) = array.next_live(from) {
            from = i + 1;
            // SAFETY: lent under the lock, as in `update`.
            let current = ManuallyDrop::new(unsafe { P::from_raw(entry) });
            // SAFETY: the entry is alive while the table owns it.
            if !f(unsafe { P::key(entry) }, &current) {
                drop(writer.remove::<P>(array, i, entry, self.hash_of()));
            }
        }
    }

    /// Each shard's share of a reservation of `additional` entries
    /// ([`share_of`]), or an error if a shard's array for it would not fit in
    /// memory, counting the entries a shard may hold already (at most the
    /// table's): checked before any shard is touched, so that a refusal changes
    /// nothing. ([`capacity_for`] still panics under a shard's lock if the table
    /// grows past that count meanwhile by 2^57 entries or so: out of reach.)
    pub(crate) fn reservation_share(&self, additional: usize) -> Result<usize, TryReserveError> {
        let share = share_of(additional, self.shards.len());
        // Every shard's array at that size: their bytes together must fit too.
        checked_capacity_for(share.saturating_add(self.len()))
            .and_then(|slots| slots.checked_mul(size_of::<usize>() * self.shards.len()))
            .filter(|&bytes| bytes <= isize::MAX as usize)
            .map(|_| share)
            .ok_or(TryReserveError::capacity_overflow(additional))
    }

    /// Makes room in shard `shard`, under its lock (of `locks`, the map's), for its
    /// entries and `share` more (`reservation_share`): rehashed into a larger
    /// array (which also drops its tombstones) if its own is short of that room,
    /// or of unused slots for that many more inserts. `Err(bytes)` if the system
    /// refused the new array's `bytes`: the shard is then as it was.
    ///
    /// The new array is made with the lock released, so that the shard's writers
    /// do not wait for its zeroing (a populated mapping: a few hundred
    /// microseconds a MiB); only the move of the entries into it runs under the
    /// lock, as a grow's does. If the shard's entries grew past it meanwhile, a
    /// larger one is made, and one the shard turned out not to need is freed
    /// with the lock released too.
    pub(crate) fn reserve_shard(
        &self,
        locks: &ShardLocks,
        shard: usize,
        share: usize,
    ) -> Result<(), usize> {
        let mut made = None;
        loop {
            let mut locked = locks.lock_shard(shard);
            let needs = Writer {
                shard: &self.shards[shard],
                locked: &mut locked,
            }
            .reserve(share, &mut made, self.hash_of());
            drop(locked);
            // Unused (the shard had room, or it is too small now): freed here,
            // with the lock released.
            drop(made.take());
            let Some(capacity) = needs else {
                return Ok(());
            };
            // Committed at once, though the moved entries may fill little of it:
            // the inserts it was reserved for then fault no page in, and a reader
            // that probes a page before the writer reaches it cannot map the zero
            // page that the writer's first store then replaces, with a TLB flush
            // on every CPU running the process (`src/mapped.rs`). Committed as
            // touched, a reserve then a fill of 1,000,000 `u64` beside a reader
            // took 36,956 such flushes (`perf stat -e tlb:tlb_flush`, 3 fills)
            // and ran slower than no reserve at all; committed at once, 147
            // (`benches/fill_probe.rs`, docs/DESIGN.md "Sizing a live table").
            made = Some(
                Array::try_new(capacity, Commit::Now)
                    .ok_or(capacity.saturating_mul(size_of::<usize>()))?,
            );
        }
    }

    /// Gives back the room shard `shard`'s entries do not need, under its lock (of
    /// `locks`, the map's): the shard is rehashed into the smallest array that
    /// holds its entries, if that is smaller than its own, and an empty shard's
    /// array is retired. Replaced arrays are freed past a grace period, as a
    /// grow's are.
    pub(crate) fn shrink_shard(&self, locks: &ShardLocks, shard: usize) {
        let mut locked = locks.lock_shard(shard);
        Writer {
            shard: &self.shards[shard],
            locked: &mut locked,
        }
        .shrink_to_fit(self.hash_of());
    }

    /// How many entries the shards' current arrays take before one rehashes to
    /// grow ([`room_in`]), summed; lock-free, so racy while writers run. The
    /// caller's guard keeps the arrays it reads alive, as for `get`.
    pub(crate) fn capacity(&self, _guard: &epoch::Guard) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                // Acquire: as in `get` (the array's length is written before its
                // Release publication).
                let array = shard.array.load(Ordering::Acquire);
                // SAFETY: alive while the caller's guard is pinned, as in `get`.
                unsafe { array.as_ref() }.map_or(0, |array| room_in(array.capacity()))
            })
            .sum()
    }

    /// Calls `f` with what `take` makes of each entry of shard `shard` and its key,
    /// lock-free (the caller's epoch guard keeps the array and the entries alive, as
    /// for [`get`](Self::get)). `take` may refuse an entry that a writer has just
    /// unmapped: the slot is then read again, and a new entry there (its key's, or
    /// another key's in a reused slot) is offered instead; a removed one is skipped; if the slot still holds the refused entry
    /// (the array was retired by a rehash, and the entry unmapped in its successor),
    /// `lookup` finds what the key maps to now. So an entry mapped throughout is
    /// visited once, and none twice.
    pub(crate) fn visit_shard<R>(
        &self,
        shard: usize,
        _guard: &epoch::Guard,
        take: impl Fn(NonNull<P::Target>) -> Option<R>,
        lookup: impl Fn(&K) -> Option<R>,
        mut f: impl FnMut(&K, R),
    ) {
        // Acquire: as in `get`.
        let array = self.shards[shard].array.load(Ordering::Acquire);
        // SAFETY: as in `get`: the caller's guard keeps the array alive.
        let Some(array) = (unsafe { array.as_ref() }) else {
            return;
        };
        let mut from = 0;
        while let Some((i, mut entry)) = array.next_live(from) {
            from = i + 1;
            loop {
                // SAFETY: an entry of an array the guard keeps alive; its own protocol
                // keeps it alive while the guard is held (`Store`).
                let key = unsafe { P::key(entry) };
                if let Some(taken) = take(entry) {
                    f(key, taken);
                    break;
                }
                match array.reload(i) {
                    Some(now) if now != entry => entry = now,
                    Some(_) => {
                        if let Some(found) = lookup(key) {
                            f(key, found);
                        }
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// The live entries, lock-free, borrowed for `'g` (the life of the caller's
    /// epoch guard, which keeps every array they come from alive; the entries'
    /// protocol keeps them alive meanwhile).
    pub(crate) fn entries<'g>(&'g self, _guard: &'g epoch::Guard) -> Entries<'g, P> {
        Entries {
            shards: &self.shards,
            next_shard: 0,
            array: None,
            next_slot: 0,
        }
    }

    /// The writer of the shard of `hash`, whose lock `locked` must be.
    #[inline(always)]
    fn writer<'w, 'l>(
        &'w self,
        locked: &'w mut Locked<'l>,
        hash: u64,
    ) -> Writer<'w, 'l, P::Target> {
        let shard = (hash >> self.shift) as usize;
        assert!(
            locked.shard() == shard,
            "a write under another shard's lock"
        );
        if TRACK_FREES {
            let freed = self.freed.with(|f| {
                // SAFETY: written only at creation (before any writer can reach
                // the table) and by the drop (once no writer can); loom checks both
                // orders.
                unsafe { *f }
            });
            assert!(!freed, "wrote into a freed table");
        }
        Writer {
            shard: &self.shards[shard],
            locked,
        }
    }
}

impl<K, P: SlotPointer<Key = K>, S> Table<K, P, S> {
    /// Hands the entries of the next `slots` slots (shard after shard) to `f`,
    /// freeing each array once past its last slot. Returns whether the table is now
    /// empty. A teardown drains a large table a slice at a time, so that other
    /// jobs of its reclaimer run in between (`generation.rs`). Each entry is
    /// fetched a little ahead of its turn, for an `f` that reads or writes it.
    pub(crate) fn drain_slice(&mut self, slots: usize, f: impl FnMut(P)) -> bool {
        self.drain_slice_fetching(slots, true, f)
    }

    /// [`drain_slice`](Self::drain_slice) without the fetches: for an `f` that
    /// only keeps the pointers (`reclaim/by_address.rs`).
    pub(crate) fn drain_slice_unfetched(&mut self, slots: usize, f: impl FnMut(P)) -> bool {
        self.drain_slice_fetching(slots, false, f)
    }

    fn drain_slice_fetching(
        &mut self,
        mut slots: usize,
        fetch: bool,
        mut f: impl FnMut(P),
    ) -> bool {
        while let Some(shard) = self.shards.get(self.drained.shard) {
            // Relaxed: `&mut self`: the table is ours alone.
            let array = shard.array.load(Ordering::Relaxed);
            if !array.is_null() {
                // SAFETY: a current array, from `Box::into_raw`, ours alone (`&mut
                // self`); freed below only after the shard stops linking it.
                let live = unsafe { &*array };
                let (from, to) = (
                    self.drained.slot,
                    live.capacity().min(self.drained.slot.saturating_add(slots)),
                );
                // The cursor moves past each slot before its entry leaves, so that
                // if `f` unwinds, whatever drains next (the next slice, `Drop`)
                // starts after that entry (now `f`'s, dropped by the unwinding).
                let cursor = &mut self.drained.slot;
                live.drain_range(from..to, fetch, |i, entry| {
                    *cursor = i + 1;
                    // SAFETY: earlier slices handed over only slots before `from`
                    // (`drained`), and the cursor is now past this one: the entry's
                    // ownership leaves the table once, here.
                    let owner = unsafe { P::from_raw(entry) };
                    f(owner)
                });
                slots -= to - from;
                self.drained.slot = to;
                if to < live.capacity() {
                    return false;
                }
                shard.array.store(ptr::null_mut(), Ordering::Relaxed);
                // SAFETY: from `Box::into_raw`, unlinked just above, so freed once.
                drop(unsafe { Box::from_raw(array) });
            }
            self.drained = Drained {
                shard: self.drained.shard + 1,
                slot: 0,
            };
        }
        true
    }
}

impl<K, P: SlotPointer<Key = K>, S> Drop for Table<K, P, S> {
    /// Drops every owner left (a table dropped undrained: one built for a
    /// generation that was never published, for example).
    fn drop(&mut self) {
        self.drain_slice(usize::MAX, drop);
        if TRACK_FREES {
            // SAFETY: `&mut self`: no other access (loom checks that no writer's
            // read races this write).
            self.freed.with_mut(|f| unsafe { *f = true });
        }
    }
}

impl<'w, 'l, T: 'static> Writer<'w, 'l, T> {
    /// The count of used slots in the current array. Relaxed, load and store: it
    /// is written only under the shard's lock, which orders them.
    fn used(&self) -> usize {
        self.shard.used.load(Ordering::Relaxed)
    }

    fn set_used(&self, used: usize) {
        // Relaxed: as in `used`.
        self.shard.used.store(used, Ordering::Relaxed);
    }

    /// The current array, under the lock. (Tied to the shard, not to the lock: every
    /// caller uses it only while its `Writer` lives.)
    fn current(&self) -> Option<&'w Array<T>> {
        // Relaxed: written only under the lock, which we hold.
        let array = self.shard.array.load(Ordering::Relaxed);
        // SAFETY: the current array is alive while it is current (under the lock);
        // once replaced, it is freed only after this writer has released the lock
        // (`Locked`).
        let array = unsafe { array.as_ref() };
        if let Some(array) = array {
            // For the next writer's prefetch (`ShardLocks::fetch`);
            // `grow` leaves its new array's.
            let (base, mask) = array.slots_hint();
            self.locked.hint_slots(base, mask);
        }
        array
    }

    /// The current array if it has room for one more entry: its live entries
    /// at most half of it and its used slots (live and tombstones) at most three
    /// quarters ([`fits_one_more`]; a probe must always find an unused slot to
    /// stop at, and should find it soon); otherwise a new one, rehashed from it,
    /// with room for its entries and one more.
    #[inline]
    fn array_for_one_more(&mut self, hash_of: impl Fn(NonNull<T>) -> u64) -> &'w Array<T> {
        let used = self.used();
        // Relaxed: written only under the lock, which we hold.
        let live = self.shard.len.load(Ordering::Relaxed);
        match self.current() {
            Some(array) if fits_one_more(live, used, array.capacity()) => array,
            current => self.grow(current, hash_of),
        }
    }

    /// Rehashes into an array with room for the shard's entries and one more,
    /// publishes it and keeps the old one to be retired when the lock is released.
    #[cold]
    #[inline(never)]
    fn grow(
        &mut self,
        old: Option<&'w Array<T>>,
        hash_of: impl Fn(NonNull<T>) -> u64,
    ) -> &'w Array<T> {
        // Relaxed: written under the lock we hold.
        let live = self.shard.len.load(Ordering::Relaxed);
        // Committed at once: the rehash below writes entries all over it (it is
        // at least a quarter full, `capacity_for`; a mapped array has 64 KiB of
        // slots or more), and a page it first read would cost a copy-on-write
        // fault that interrupts every other CPU running the process
        // (`src/mapped.rs`).
        let new = Array::new(capacity_for(live + 1), Commit::Now);
        self.rehash(old, new, hash_of)
    }

    /// Makes room for the shard's entries and `additional` more, if the current
    /// array holds fewer ([`room_in`]) or has too few unused slots left for that
    /// many inserts ([`MAX_USED`]): rehashes into `made`, an empty array made
    /// for it with the lock released, if that has room for them; otherwise
    /// returns the capacity to make ([`capacity_for`] them), leaving `made` for
    /// the caller to free once the lock is released. `Table::reserve_shard`.
    fn reserve(
        &mut self,
        additional: usize,
        made: &mut Option<Array<T>>,
        hash_of: impl Fn(NonNull<T>) -> u64,
    ) -> Option<usize> {
        if additional == 0 {
            return None;
        }
        // Relaxed: written under the lock we hold.
        let live = self.shard.len.load(Ordering::Relaxed);
        let entries = live.checked_add(additional).expect(CAPACITY_OVERFLOW);
        let current = self.current();
        // Room for the entries, and unused slots for the inserts (tombstones
        // count against `MAX_USED` as live entries do: `fits_one_more`).
        let short = current.is_none_or(|array| {
            let used = self.used().saturating_add(additional);
            entries > room_in(array.capacity()) || used * MAX_USED.1 > array.capacity() * MAX_USED.0
        });
        if !short {
            return None;
        }
        let capacity = capacity_for(entries);
        match made.take() {
            // Made for this shard, and still large enough.
            Some(new) if new.capacity() >= capacity => {
                self.rehash(current, new, hash_of);
                None
            }
            too_small => {
                *made = too_small;
                Some(capacity)
            }
        }
    }

    /// Gives back the room the shard's entries do not need: rehashes into an array
    /// of [`capacity_for`] them if that is smaller than the current one, and
    /// retires the array of a shard with no entries. If the system refuses the
    /// smaller array, the shard keeps its own. `Table::shrink_shard`.
    fn shrink_to_fit(&mut self, hash_of: impl Fn(NonNull<T>) -> u64) {
        let Some(current) = self.current() else {
            return;
        };
        // Relaxed: written under the lock we hold.
        let live = self.shard.len.load(Ordering::Relaxed);
        if live == 0 {
            // No entry to move, and none lost: a reader that loads the null
            // finds the shard empty, as it is.
            self.set_used(0);
            self.publish(ptr::null_mut(), Some(current));
            self.locked.hint_slots(ptr::null(), 0);
            return;
        }
        let capacity = capacity_for(live);
        if capacity < current.capacity() {
            // Committed at once, as in `grow`: the entries fill a quarter or more.
            if let Some(new) = Array::try_new(capacity, Commit::Now) {
                self.rehash(Some(current), new, hash_of);
            }
        }
    }

    /// Moves the shard's live entries from `old` into `new`, an empty array (which
    /// must hold them: they are at most [`room_in`] it), publishes it, and keeps
    /// `old` to be retired when the lock is released. A panic in `hash_of`
    /// leaves `old` current and frees the new array (its slots only, never an
    /// entry).
    fn rehash(
        &mut self,
        old: Option<&'w Array<T>>,
        new: Array<T>,
        hash_of: impl Fn(NonNull<T>) -> u64,
    ) -> &'w Array<T> {
        // Relaxed: written under the lock we hold.
        let live = self.shard.len.load(Ordering::Relaxed);
        debug_assert!(live <= room_in(new.capacity()));
        let new = Box::new(new);
        if let Some(old) = old {
            crate::sync::count_rehash();
            let moved = old.move_live_into(&new, hash_of);
            debug_assert_eq!(moved, live);
        }
        self.set_used(live);
        let new = Box::into_raw(new);
        self.publish(new, old);
        // SAFETY: just published; freed only once replaced (by a later rehash, or
        // by a shrink of the emptied shard to no array), after a grace period
        // that starts once that writer has released the lock, or by `Drop`.
        let new = unsafe { &*new };
        let (base, mask) = new.slots_hint();
        self.locked.hint_slots(base, mask);
        new
    }

    /// Makes `new` (from `Box::into_raw`, or null for none) the shard's array in
    /// place of `old`, the current one, which is retired once the lock is
    /// released.
    fn publish(&mut self, new: *mut Array<T>, old: Option<&'w Array<T>>) {
        let old_bytes = old.map_or(0, Array::slot_bytes);
        // Release: publishes the new array's slots (tagged pointers, written by
        // the rehash) to readers' Acquire loads (`get`, `visit_shard`, `Entries`).
        let old = self.shard.array.swap(new, Ordering::Release);
        if !old.is_null() {
            // `old` came from `Box::into_raw` (the shard's arrays all do) and was
            // unlinked just above, so no guard pinned after the lock's release can
            // reach it (a reader loads the shard's array after pinning); freeing an
            // array drops its slots only, never an entry.
            // SAFETY: `RetiredArray::new`'s contract, as established just above.
            let retired = unsafe { RetiredArray::new(old, old_bytes) };
            self.locked.retire_after_unlock(retired);
        }
    }

    fn occupy(&mut self, array: &Array<T>, i: usize, hash: u64, entry: NonNull<T>) {
        if array.occupy(i, hash, entry) {
            self.set_used(self.used() + 1);
        }
        // Relaxed: a count for `len`; written under the lock.
        let len = &self.shard.len;
        len.store(len.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Unmaps slot `i`, which holds `entry`; returns its owner. `hash_of` as for
    /// `Array::remove`: a panic in it leaves the entry mapped and the shard as it
    /// was.
    fn remove<P: SlotPointer<Target = T>>(
        &mut self,
        array: &Array<T>,
        i: usize,
        entry: NonNull<T>,
        hash_of: impl Fn(NonNull<T>) -> u64,
    ) -> P {
        let freed = array.remove(i, hash_of);
        self.set_used(self.used() - freed);
        // Relaxed: as in `occupy`.
        let len = &self.shard.len;
        len.store(len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        // SAFETY: the removed pointer's ownership leaves the table once.
        unsafe { P::from_raw(entry) }
    }
}

/// The most of an array that its live entries may fill, as a fraction
/// `(numerator, denominator)`: one half (since 2026-12-05; three quarters before,
/// the bound of [`MAX_USED`] alone). A probe tests one slot at a time, with
/// branches that a random table makes unpredictable, and runs to its key or to
/// an unused slot. Under the old bound the write groups' 10,000 entries sat at
/// 1,250 a shard in 2,048 slots (a live load of 0.61), and `write_probe` ran
/// Exchange at 0.68–0.69× `DashMap`; with live entries at most half, the same
/// shard holds 4,096 slots and Exchange runs at 0.85–0.87× (`docs/BENCHMARKS.md`,
/// "History", "Arrays at most half live"). The price is memory where a shard's
/// entries fill more than half of their array: it is twice as large, 8 bytes a
/// slot (at 1,500,000 `u64` entries, 22.4 bytes per entry instead of 11.2); at
/// 1,000,000 (a load of 0.48) nothing changes.
const MAX_LIVE: (usize, usize) = (1, 2);

/// The most of an array that its used slots (live entries and tombstones) may
/// fill: three quarters. A rehash leaves live entries at most half of the new
/// array ([`capacity_for`]), so at least a quarter is left for tombstones before
/// the next: a shard whose entries sit just under half of their array does not
/// rehash again and again under a mix of inserts and removes, nor double its
/// array. (One half here too, tried: reads in the read-heavy mix 6–8% faster at
/// 10,000 keys, but a shard between 3/8 and 1/2 live, such as every shard of a
/// 1,000,000-entry map, then doubled its array under churn, or, without a
/// margin, rehashed at the same size every hundred steps.)
const MAX_USED: (usize, usize) = (3, 4);

/// Whether an array of `capacity` slots, `live` of them live and `used` used,
/// may take one more entry ([`MAX_LIVE`], [`MAX_USED`]).
fn fits_one_more(live: usize, used: usize, capacity: usize) -> bool {
    let within = |count: usize, (numerator, denominator): (usize, usize)| {
        (count + 1) * denominator <= capacity * numerator
    };
    within(live, MAX_LIVE) && within(used, MAX_USED)
}

/// The array capacity for `entries` entries, in a new table or a rehash: at most
/// half full, and more than a quarter full when above `TABLE_MIN_CAPACITY`.
/// Panics with [`CAPACITY_OVERFLOW`] if the slots' bytes would not fit in
/// `isize` (as `Vec`'s bound).
fn capacity_for(entries: usize) -> usize {
    checked_capacity_for(entries).expect(CAPACITY_OVERFLOW)
}

/// The room each of `shards` shards needs for `entries` entries spread over them
/// by hash: an even share, and a margin of five times its square root (rounded
/// down) and 15 more (so at least five square roots and 10), so that a shard's count passes it with a probability of at most
/// 3 in 10 million at any share (a Poisson tail, heavier than the binomial's of
/// a count of keys hashed into one of `shards`: computed for every share up to
/// 300 and at 500 to 10,000, the worst at the large shares, where the margin is
/// five deviations). Without a margin, a share just under a power of two left
/// half of the shards short: 4,000 entries over 8 shards got 512 slots' room each
/// for a mean of 500 and a deviation of 21 (`ffi/tests/c/test_api.c`, `sizing`);
/// with five square roots alone, small shares (2, 3, 8) outgrew their room about
/// once in 300 to 1,700 shards (a review's count).
fn share_of(entries: usize, shards: usize) -> usize {
    if entries == 0 {
        return 0;
    }
    let share = entries.div_ceil(shards);
    share.saturating_add(5 * share.isqrt() + 15)
}

/// [`capacity_for`], or `None` where it panics.
fn checked_capacity_for(entries: usize) -> Option<usize> {
    entries
        .checked_mul(MAX_LIVE.1)
        .map(|slots| slots.div_ceil(MAX_LIVE.0))
        .and_then(usize::checked_next_power_of_two)
        .filter(|&slots| slots <= isize::MAX as usize / size_of::<usize>())
        .map(|slots| slots.max(TABLE_MIN_CAPACITY))
}

/// The most live entries an array of `capacity` slots takes before a rehash
/// ([`MAX_LIVE`]).
fn room_in(capacity: usize) -> usize {
    capacity / MAX_LIVE.1 * MAX_LIVE.0
}

/// The message of a capacity that does not fit in `usize` (as `Vec`'s and
/// `HashMap`'s).
const CAPACITY_OVERFLOW: &str = "capacity overflow";

/// The live entries of a table, lock-free, with their keys: see [`Table::entries`].
pub(crate) struct Entries<'g, P: SlotPointer> {
    shards: &'g [Shard<P::Target>],
    next_shard: usize,
    array: Option<&'g Array<P::Target>>,
    next_slot: usize,
}

impl<'g, P: SlotPointer> Iterator for Entries<'g, P>
where
    P::Key: 'g,
{
    type Item = (&'g P::Key, NonNull<P::Target>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(array) = self.array {
                if let Some((i, entry)) = array.next_live(self.next_slot) {
                    self.next_slot = i + 1;
                    // SAFETY: an entry of an array the guard `'g` keeps alive, whose
                    // protocol keeps it alive while that guard is held (`Store`).
                    return Some((unsafe { P::key(entry) }, entry));
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

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::RandomState;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize as Count;

    /// An entry that counts its drops.
    struct Entry {
        key: u64,
        drops: Arc<Count>,
    }

    impl Drop for Entry {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Owned(Box<Entry>);

    // SAFETY: a `Box`'s pointer, given back once by `from_raw`; `Entry` is aligned
    // to 8.
    unsafe impl SlotPointer for Owned {
        type Target = Entry;
        type Key = u64;
        fn into_raw(self) -> NonNull<Entry> {
            NonNull::from(Box::leak(self.0))
        }
        fn as_raw(&self) -> NonNull<Entry> {
            NonNull::from(&*self.0)
        }
        unsafe fn from_raw(raw: NonNull<Entry>) -> Self {
            // SAFETY: from `into_raw`'s `Box::leak`, taken back once (the contract).
            Owned(unsafe { Box::from_raw(raw.as_ptr()) })
        }
        unsafe fn key<'a>(raw: NonNull<Entry>) -> &'a u64 {
            // SAFETY: alive for `'a` (the contract).
            unsafe { &(*raw.as_ptr()).key }
        }
    }

    fn filled(n: u64, drops: &Arc<Count>) -> Table<u64, Owned, RandomState> {
        let table = Table::new(RandomState::new(), 8);
        for key in 0..n {
            assert!(table.insert_alone(owned(key, drops)).is_none());
        }
        table
    }

    /// An entry of `key` that counts its drop in `drops`.
    fn owned(key: u64, drops: &Arc<Count>) -> Owned {
        Owned(Box::new(Entry {
            key,
            drops: Arc::clone(drops),
        }))
    }

    /// The next number of an xorshift sequence (its state must not be 0).
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    impl<P: SlotPointer<Key = u64>, S: BuildHasher> Table<u64, P, S>
    where
        P::Target: 'static,
    {
        /// `insert`, under a lock of its own (no other thread writes the table).
        fn insert_alone(&self, entry: P) -> Option<P> {
            // SAFETY: `entry` is owned here, so its key is alive.
            let hash = self.hash(unsafe { P::key(entry.as_raw()) });
            let locks = ShardLocks::new(self.shards.len());
            self.insert(&mut locks.lock(hash), hash, entry)
        }

        /// `remove`, under a lock of its own (no other thread writes the table).
        fn remove_alone(&self, key: &u64) -> Option<P> {
            let hash = self.hash(key);
            let locks = ShardLocks::new(self.shards.len());
            self.remove(&mut locks.lock(hash), hash, key)
        }
    }

    /// A write leaves the shard's prefetch hint at the slot where a probe of its
    /// key starts in the shard's current array, through the rehashes of a fill
    /// (`grow`) and through removals: a hint left at the array before a rehash, or
    /// at another slot, would fetch a line the writer does not read.
    #[test]
    fn a_write_leaves_the_hint_at_the_first_slot_of_its_probe() {
        let drops = Arc::new(Count::new(0));
        let table: Table<u64, Owned, RandomState> = Table::new(RandomState::new(), 2);
        let locks = ShardLocks::new(2);
        let home_slot = |key: u64| {
            let hash = table.hash(&key);
            let shard = &table.shards[(hash >> table.shift) as usize];
            // SAFETY: a shard's array lives while the table does (no rehash
            // meanwhile: this thread is the only writer).
            let array = unsafe { &*shard.array.load(Ordering::Relaxed) };
            (hash, array.slot_address(hash as usize % array.capacity()))
        };
        for key in 0..5_000 {
            let hash = table.hash(&key);
            let entry = Owned(Box::new(Entry {
                key,
                drops: Arc::clone(&drops),
            }));
            assert!(table.insert(&mut locks.lock(hash), hash, entry).is_none());
            let (hash, slot) = home_slot(key);
            assert_eq!(locks.home_slot_hint(hash), Some(slot), "key {key}");
        }
        for key in (0..5_000).step_by(3) {
            let hash = table.hash(&key);
            assert!(table.remove(&mut locks.lock(hash), hash, &key).is_some());
            let (hash, slot) = home_slot(key);
            assert_eq!(locks.home_slot_hint(hash), Some(slot), "key {key}");
        }
    }

    /// The capacity of each shard's current array (0 for none).
    fn shard_capacities(table: &Table<u64, Owned, RandomState>) -> Vec<usize> {
        table
            .shards
            .iter()
            .map(|shard| {
                // Relaxed: this thread is the only writer.
                let array = shard.array.load(Ordering::Relaxed);
                // SAFETY: current, and no other thread replaces or frees it.
                unsafe { array.as_ref() }.map_or(0, Array::capacity)
            })
            .collect()
    }

    impl Table<u64, Owned, RandomState> {
        /// `AtomicMap::try_reserve`'s walk over the shards, on the table alone.
        fn try_reserve(
            &self,
            locks: &ShardLocks,
            additional: usize,
        ) -> Result<(), TryReserveError> {
            let share = self.reservation_share(additional)?;
            (0..self.shards.len())
                .try_for_each(|shard| self.reserve_shard(locks, shard, share))
                .map_err(|bytes| TryReserveError::refused(additional, bytes))
        }

        /// `AtomicMap::shrink_to_fit`'s walk over the shards, on the table alone.
        fn shrink_to_fit(&self, locks: &ShardLocks) {
            (0..self.shards.len()).for_each(|shard| self.shrink_shard(locks, shard));
        }

        /// The current array of shard `shard` (null for none).
        fn array_of(&self, shard: usize) -> *mut Array<Entry> {
            // Relaxed: this thread is the only writer.
            self.shards[shard].array.load(Ordering::Relaxed)
        }
    }

    /// After `reserve(n)`, `n` more entries go in without a rehash: no shard's
    /// array changes (8 shards of 1,250 keys on average against room for 2,048:
    /// no shard can get that far past its share). A reserve on a filled table
    /// grows a shard whose entries and share exceed half its array, even when
    /// they are within the three quarters that tombstones may fill (live about
    /// 1,250 and a share of 995 in 4,096 slots), and moves its entries, none lost
    /// or dropped.
    #[test]
    fn a_reserved_table_takes_its_entries_without_a_rehash() {
        let drops = Arc::new(Count::new(0));
        let table = Table::new(RandomState::new(), 8);
        let locks = ShardLocks::new(8);
        table.try_reserve(&locks, 10_000).unwrap();
        let reserved = shard_capacities(&table);
        let guard = epoch::pin();
        assert!(table.capacity(&guard) >= 10_000);
        for key in 0..10_000 {
            assert!(table.insert_alone(owned(key, &drops)).is_none());
        }
        assert_eq!(shard_capacities(&table), reserved, "a shard rehashed");
        assert!(reserved.iter().all(|&slots| slots == 4_096));
        table.try_reserve(&locks, 6_800).unwrap();
        let grown = shard_capacities(&table);
        assert!(grown.iter().all(|&slots| slots == 8_192), "{grown:?}");
        assert!(table.capacity(&guard) >= 16_800);
        assert_eq!(table.len(), 10_000);
        assert!((0..10_000).all(|key| table.get(&key, &guard).is_some()));
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        for key in 10_000..16_800 {
            assert!(table.insert_alone(owned(key, &drops)).is_none());
        }
        assert_eq!(shard_capacities(&table), grown, "a shard rehashed");
        // Room that is there already is kept as it is.
        table.try_reserve(&locks, 100).unwrap();
        assert_eq!(shard_capacities(&table), grown);
    }

    /// Reserves racing a writer of the same shards: the array a reserve makes
    /// with the lock released may be outgrown by the writer's inserts before the
    /// reserve takes the lock again (it then makes a larger one); every entry
    /// stays mapped, none is dropped, and the last reserve's room is there.
    #[test]
    fn reserves_racing_inserts_keep_every_entry() {
        let drops = Arc::new(Count::new(0));
        let table: Table<u64, Owned, RandomState> = Table::new(RandomState::new(), 2);
        let locks = ShardLocks::new(2);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for key in 0..50_000 {
                    let hash = table.hash(&key);
                    let entry = owned(key, &drops);
                    assert!(table.insert(&mut locks.lock(hash), hash, entry).is_none());
                }
                done.store(true, Ordering::Release);
            });
            // Room for 2,000 more than the writer has inserted so far, again and
            // again: each reserve that finds a shard short makes its array with
            // the lock released while the writer goes on. (A reservation that
            // grew each round ran away when the writer was starved of CPU.)
            while !done.load(Ordering::Acquire) {
                table.try_reserve(&locks, 2_000).unwrap();
            }
        });
        let guard = epoch::pin();
        assert_eq!(table.len(), 50_000);
        assert!((0..50_000).all(|key| table.get(&key, &guard).is_some()));
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        table.try_reserve(&locks, 10_000).unwrap();
        assert!(table.capacity(&guard) >= 60_000);
    }

    /// A reserve counts the tombstones: a shard whose used slots (live and
    /// tombstones) would pass three quarters of its array on the reserved inserts
    /// is rehashed by the reserve, with room to spare in its live half, rather
    /// than by one of those inserts.
    #[test]
    fn a_reserve_makes_room_among_tombstones() {
        let drops = Arc::new(Count::new(0));
        let table = Table::new(RandomState::new(), 8);
        let locks = ShardLocks::new(8);
        let shard = &table.shards[0];
        // Relaxed: this thread is the only writer.
        let counts = || {
            (
                shard.len.load(Ordering::Relaxed),
                shard.used.load(Ordering::Relaxed),
            )
        };
        let in_shard_0 = |key: &u64| table.hash(key) >> table.shift == 0;
        let mut fresh = (0..).filter(in_shard_0);
        // 220 entries in shard 0: 512 slots.
        let mut live: Vec<u64> = fresh.by_ref().take(220).collect();
        for &key in &live {
            assert!(table.insert_alone(owned(key, &drops)).is_none());
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        // Churn shard 0 (remove a key, insert a new one) until it has enough
        // tombstones that its used slots would pass three quarters of its 512
        // on inserts its live half has room for: more than 128 of them.
        let mut steps = 0;
        while {
            let (entries, used) = counts();
            used - entries <= 130 || shard_capacities(&table)[0] != 512
        } {
            steps += 1;
            assert!(steps < 1_000_000, "no tombstones: {:?}", counts());
            let i = (xorshift(&mut state) % live.len() as u64) as usize;
            drop(table.remove_alone(&live.swap_remove(i)));
            let key = fresh.next().unwrap();
            assert!(table.insert_alone(owned(key, &drops)).is_none());
            live.push(key);
        }
        let (entries, used) = counts();
        // The smallest share that passes the used bound; the shard's own step of
        // a reservation (`try_reserve` would add its margin to it).
        let share = 385 - used;
        assert!(
            entries + share <= 256,
            "{entries} live, {used} used, a share of {share}"
        );
        table.reserve_shard(&locks, 0, share).unwrap();
        let array = table.array_of(0);
        assert_eq!(
            counts(),
            (entries, entries),
            "the reserve dropped the tombstones"
        );
        for _ in 0..share {
            let key = fresh.next().unwrap();
            assert!(table.insert_alone(owned(key, &drops)).is_none());
        }
        assert_eq!(
            table.array_of(0),
            array,
            "an insert rehashed the reserved shard"
        );
    }

    /// A reservation holds a fill of that many keys wherever their hashes put
    /// them: the shares' margin covers a shard that gets more than an even share,
    /// at every shard count, at shares just under a power of two (4,000 over 8
    /// shards, an even share of 500 against 512; 16,300 over 2, 8,150 against
    /// 8,192), where an even share alone left shards short, and at small shares
    /// over many shards (3 a shard over 64 and 256, where five square roots alone
    /// left one shard short in about 300).
    #[test]
    fn a_reservation_holds_its_fill_at_any_shard_count() {
        let drops = Arc::new(Count::new(0));
        let cases = [
            (2, 16_300),
            (8, 4_000),
            (8, 1_000),
            (64, 30_000),
            (64, 192),
            (256, 768),
        ];
        for (shards, entries) in cases {
            for _ in 0..4 {
                let table = Table::new(RandomState::new(), shards);
                let locks = ShardLocks::new(shards);
                table.try_reserve(&locks, entries).unwrap();
                let reserved = shard_capacities(&table);
                for key in 0..entries as u64 {
                    assert!(table.insert_alone(owned(key, &drops)).is_none());
                }
                assert_eq!(
                    shard_capacities(&table),
                    reserved,
                    "{entries} entries over {shards} shards"
                );
            }
        }
    }

    /// The arrays a capacity or a reserve sizes ahead are resident when made, so
    /// that readers probing ahead of the fill map no zero page into them (each
    /// replaced on the fill's first write with a TLB flush of every CPU):
    /// `Writer::reserve`, `Table::with_capacity`.
    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn arrays_sized_ahead_are_committed_when_made() {
        let every_page_resident = |table: &Table<u64, Owned, RandomState>| {
            table.shards.iter().all(|shard| {
                // Relaxed: this thread is the only writer.
                let array = shard.array.load(Ordering::Relaxed);
                // SAFETY: current, and no other thread replaces or frees it.
                let (resident, pages) = unsafe { &*array }.resident_pages();
                resident == pages
            })
        };
        // 100,000 entries over 8 shards: 32,768 slots, 256 KiB a shard (mapped).
        let sized = Table::<u64, Owned, _>::with_capacity(100_000, RandomState::new(), 8);
        assert!(every_page_resident(&sized), "Builder::capacity's arrays");
        let reserved = Table::new(RandomState::new(), 8);
        reserved.try_reserve(&ShardLocks::new(8), 100_000).unwrap();
        assert!(every_page_resident(&reserved), "a reserve's arrays");
    }

    /// `shrink_to_fit` leaves each shard the smallest array that holds its
    /// entries (64 entries: 128 slots, where one more entry would take 256), and
    /// no array for an empty shard; the entries are all there, and the table
    /// grows again from there.
    #[test]
    fn a_shrunk_table_keeps_its_entries_in_the_smallest_arrays() {
        let drops = Arc::new(Count::new(0));
        let table = filled(10_000, &drops);
        let locks = ShardLocks::new(8);
        let mut kept = Vec::new();
        for shard in 0..8 {
            let keys = (0..10_000).filter(|key| table.hash(key) >> table.shift == shard);
            // Shard 0 emptied, the others down to 64 entries each.
            let keep = if shard == 0 { 0 } else { 64 };
            for (i, key) in keys.enumerate() {
                if i < keep {
                    kept.push(key);
                } else {
                    drop(table.remove_alone(&key));
                }
            }
        }
        let removed = drops.load(Ordering::Relaxed);
        assert_eq!(removed, 10_000 - 7 * 64);
        table.shrink_to_fit(&locks);
        assert_eq!(
            shard_capacities(&table),
            [0, 128, 128, 128, 128, 128, 128, 128]
        );
        let guard = epoch::pin();
        assert!(kept.iter().all(|key| table.get(key, &guard).is_some()));
        assert_eq!(table.len(), 7 * 64);
        assert_eq!(drops.load(Ordering::Relaxed), removed);
        for key in 10_000..11_000 {
            assert!(table.insert_alone(owned(key, &drops)).is_none());
        }
        assert!(kept.iter().all(|key| table.get(key, &guard).is_some()));
        assert!((10_000..11_000).all(|key| table.get(&key, &guard).is_some()));
    }

    /// The array for `n` entries holds them, and is the smallest power of two at
    /// least twice `n` (`MAX_LIVE`).
    #[test]
    fn capacity_for_holds_its_entries_in_the_smallest_array() {
        for n in 0..100_000 {
            let capacity = capacity_for(n);
            assert!(room_in(capacity) >= n, "{n} entries in {capacity} slots");
            assert!(
                capacity == TABLE_MIN_CAPACITY || room_in(capacity / 2) < n,
                "{n}"
            );
        }
        assert_eq!((capacity_for(64), capacity_for(65)), (128, 256));
        // No room for no entries: a map made without a capacity has no arrays.
        assert_eq!(share_of(0, 8), 0);
    }

    /// A reservation whose arrays would not fit in memory is refused before it
    /// touches the table, counting the entries it holds (`capacity_for` panics
    /// on it, as `HashMap::reserve`, rather than wrapping), and one the system
    /// refuses leaves it as it was.
    #[test]
    fn a_reservation_past_memory_is_refused_and_changes_nothing() {
        let drops = Arc::new(Count::new(0));
        let table = filled(100, &drops);
        let locks = ShardLocks::new(8);
        let before = shard_capacities(&table);
        for additional in [usize::MAX, usize::MAX / 4, isize::MAX as usize / 2] {
            assert_eq!(
                table.try_reserve(&locks, additional),
                Err(TryReserveError::capacity_overflow(additional))
            );
            let message = std::panic::catch_unwind(|| capacity_for(additional))
                .expect_err("a capacity past memory");
            let message = message
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| message.downcast_ref::<&str>().copied());
            assert_eq!(
                message,
                Some(CAPACITY_OVERFLOW),
                "capacity_for({additional})"
            );
        }
        assert_eq!(shard_capacities(&table), before);
        // Counted, but 64 PiB a shard, past any address space: the system
        // refuses it, and that is an error, not an abort. (On a 32-bit target
        // every reservation the system cannot map overflows `isize` first.)
        #[cfg(target_pointer_width = "64")]
        {
            let error = table.try_reserve(&locks, 1 << 55).unwrap_err();
            assert!(!error.is_capacity_overflow(), "{error}");
            assert!(
                error.to_string().starts_with("memory allocation of"),
                "{error}"
            );
            assert_eq!(shard_capacities(&table), before);
        }
        // The largest array: the largest power of two of slots within
        // `isize::MAX` bytes (2^59 on a 64-bit target, 2^28 on a 32-bit one),
        // for half as many entries.
        let most_slots = (isize::MAX as usize / size_of::<usize>()).div_ceil(2);
        assert!(most_slots.is_power_of_two());
        assert_eq!(checked_capacity_for(most_slots / 2), Some(most_slots));
        assert_eq!(checked_capacity_for(most_slots / 2 + 1), None);
        let guard = epoch::pin();
        assert_eq!(table.len(), 100);
        assert!((0..100).all(|key| table.get(&key, &guard).is_some()));
    }

    /// No array's live entries ever fill more than half of it, nor its used slots
    /// (live and tombstones) more than three quarters, through a fill and a long
    /// mix of inserts and removes of other keys: looser bounds let probes run long
    /// (`MAX_LIVE`, `MAX_USED`).
    #[test]
    fn no_array_is_ever_more_than_half_live_or_three_quarters_used() {
        let drops = Arc::new(Count::new(0));
        let table = filled(10_000, &drops);
        let check = |step: u64| {
            for shard in table.shards.iter() {
                // Relaxed: this thread is the only writer.
                let (live, used) = (
                    shard.len.load(Ordering::Relaxed),
                    shard.used.load(Ordering::Relaxed),
                );
                // Relaxed: this thread is the only writer.
                let array = shard.array.load(Ordering::Relaxed);
                // SAFETY: current, and no other thread replaces or frees it.
                let capacity = unsafe { array.as_ref() }.map_or(0, Array::capacity);
                assert!(
                    live * 2 <= capacity && used * 4 <= capacity * 3,
                    "{live} live and {used} used of {capacity} slots after step {step}"
                );
            }
        };
        check(0);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for step in 1..=40_000 {
            let key = xorshift(&mut state) % 13_333;
            if step % 2 == 0 {
                drop(table.insert_alone(owned(key, &drops)));
            } else {
                drop(table.remove_alone(&key));
            }
            if step % 97 == 0 {
                check(step);
            }
        }
        check(40_000);
    }

    /// A shard whose entries fill just under half of its array, under a mix of
    /// inserts and removes of other keys, keeps its array's size and rehashes
    /// rarely: at most once per quarter of the array turned into tombstones
    /// (`MAX_USED`), not after every few removals, and never into an array twice
    /// as large.
    #[test]
    fn a_shard_at_half_its_array_rehashes_rarely_under_churn() {
        let drops = Arc::new(Count::new(0));
        let table: Table<u64, Owned, RandomState> = Table::new(RandomState::new(), 2);
        let shard = &table.shards[0];
        // Relaxed (here and below): this thread is the only writer.
        let capacity = || {
            // SAFETY: current, and no other thread replaces or frees it.
            unsafe { shard.array.load(Ordering::Relaxed).as_ref() }.map_or(0, Array::capacity)
        };
        let in_shard = |key: &u64| table.hash(key) >> table.shift == 0;
        let mut keys = (0..).filter(in_shard);
        let mut live = std::collections::VecDeque::new();
        let insert = |key: u64| assert!(table.insert_alone(owned(key, &drops)).is_none());
        // Fill the shard to just under half of a 4,096-slot array.
        while live.len() < 2_000 {
            let key = keys.next().unwrap();
            insert(key);
            live.push_back(key);
        }
        assert_eq!(capacity(), 4_096);
        let mut rehashes = 0;
        let mut array = shard.array.load(Ordering::Relaxed);
        let steps = 20_000;
        for _ in 0..steps {
            let gone = live.pop_front().unwrap();
            assert!(table.remove_alone(&gone).is_some());
            let key = keys.next().unwrap();
            insert(key);
            live.push_back(key);
            let now = shard.array.load(Ordering::Relaxed);
            if now != array {
                rehashes += 1;
                array = now;
            }
        }
        // Each rehash leaves at least a quarter of the array for tombstones, and
        // each step makes at most one.
        let bound = steps / (capacity() / 4) + 1;
        assert!(
            rehashes <= bound,
            "{rehashes} rehashes in {steps} steps (at most {bound})"
        );
        assert_eq!(capacity(), 4_096, "the same array size after the churn");
    }

    /// Sends every key to home `key % 3` of its array (shard 0 of 2).
    #[derive(Clone)]
    struct ThreeHomes;
    struct ThreeHomesHasher(u64);
    impl std::hash::Hasher for ThreeHomesHasher {
        fn finish(&self) -> u64 {
            self.0 % 3
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("only u64 keys")
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }
    impl BuildHasher for ThreeHomes {
        type Hasher = ThreeHomesHasher;
        fn build_hasher(&self) -> ThreeHomesHasher {
            ThreeHomesHasher(0)
        }
    }

    /// The writers' count of used slots (the rehash trigger) stays the number of
    /// slots that are not unused, through removals that free slots and the
    /// tombstones before them: too low, and an array could fill up and a probe
    /// never end; too high, and it rehashes early.
    #[test]
    fn used_counts_the_used_slots_through_removals_that_free_them() {
        let drops = Arc::new(Count::new(0));
        let table: Table<u64, Owned, ThreeHomes> = Table::new(ThreeHomes, 2);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for step in 0..20_000 {
            let key = xorshift(&mut state) % 40;
            if state >> 60 < 8 {
                drop(table.insert_alone(owned(key, &drops)));
            } else {
                drop(table.remove_alone(&key));
            }
            for shard in table.shards.iter() {
                // Relaxed: this thread is the only writer.
                let used = shard.used.load(Ordering::Relaxed);
                // Relaxed: this thread is the only writer.
                let array = shard.array.load(Ordering::Relaxed);
                // SAFETY: current, and no other thread replaces or frees it.
                let slots = unsafe { array.as_ref() }.map_or(0, Array::used_slots);
                assert_eq!(used, slots, "used slots after step {step}");
            }
        }
    }

    #[test]
    fn a_table_drained_in_slices_hands_over_every_entry_once() {
        let drops = Arc::new(Count::new(0));
        let mut table = filled(10_000, &drops);
        // The entries handed over are kept until the end, so that one handed over
        // twice is told by its address, not read after its drop.
        let (mut seen, mut handed, mut slices) = (HashSet::new(), Vec::new(), 0);
        while !table.drain_slice(1_000, |entry| {
            assert!(seen.insert(entry.as_raw()), "an entry handed over twice");
            handed.push(entry);
        }) {
            slices += 1;
        }
        assert!(slices >= 10, "{slices} slices of 1,000 slots");
        let keys: HashSet<u64> = handed.iter().map(|entry| entry.0.key).collect();
        assert_eq!(keys, (0..10_000).collect());
        drop(handed);
        assert_eq!(drops.load(Ordering::Relaxed), 10_000);
        drop(table);
        assert_eq!(drops.load(Ordering::Relaxed), 10_000);
    }

    /// Drains part of a 10,000-entry table with `drain_part` (which returns how
    /// many entries it was handed), then drops the table: exactly those entries
    /// are dropped first, and the table's `Drop` drops only the rest.
    fn drops_only_the_rest(drain_part: impl FnOnce(&mut Table<u64, Owned, RandomState>) -> usize) {
        let drops = Arc::new(Count::new(0));
        let mut table = filled(10_000, &drops);
        let handed = drain_part(&mut table);
        assert!(handed > 0 && handed < 10_000);
        assert_eq!(drops.load(Ordering::Relaxed), handed);
        drop(table);
        assert_eq!(drops.load(Ordering::Relaxed), 10_000);
    }

    #[test]
    fn a_slice_that_unwinds_leaves_the_rest_to_the_next_drain() {
        // The 100 entries handed over are dropped (the last by the unwinding).
        drops_only_the_rest(|table| {
            let mut handed = 0;
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                table.drain_slice(1_000, |_| {
                    handed += 1;
                    assert!(handed < 100, "a slice's f panics midway");
                })
            }));
            assert!(unwound.is_err());
            handed
        });
    }

    #[test]
    fn a_table_dropped_midway_through_its_drain_drops_only_the_rest() {
        drops_only_the_rest(|table| {
            let mut handed = 0;
            for _ in 0..3 {
                assert!(!table.drain_slice(1_000, |_| handed += 1));
            }
            handed
        });
    }
}
