//! `AtomicMap`: the current-generation slot and the operations on it.

use crate::hasher::DefaultHashBuilder;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::builder::Builder;
use crate::compute::{Compute, Operation};
use crate::generation::{Generation, release_after_grace};
use crate::occupied::Occupied;
use crate::read::ReadGuard;
use crate::reclaim::domain::Domain;
use crate::reclaim::domain::UserCodeUnderLock;
use crate::reclaim::home::{HomeOwner, HomeRef};
use crate::reclaim::{ReclaimMode, Reclaimer, Retired};
use crate::snapshot::Snapshot;
use crate::standby::Standby;
use crate::stats::Stats;
use crate::store::Store;
use crate::sync::{Arc, AtomicPtr, Ordering, PublishLock, Slot, WeakableArc, epoch};
use crate::table::{Fetched, Locked, ShardLocks};
use crate::try_reserve::TryReserveError;
use crate::value::{TableRef, ValueRef};

/// A concurrent map whose [`clear_async`](Self::clear_async) is an O(1) swap of
/// generations, and whose values outlive clears for whoever still holds them.
///
/// See the [crate documentation](crate) for the model, and each method for an example.
///
/// ```
/// use std::sync::Arc;
/// use atomic_map::AtomicMap;
///
/// let config: Arc<AtomicMap<String, String>> = Arc::new(AtomicMap::new());
/// config.insert("region".into(), "eu-west".into());
/// let reader = {
///     let config = Arc::clone(&config);
///     std::thread::spawn(move || config.get("region").map(|v| v.to_string()))
/// };
/// assert_eq!(reader.join().unwrap().as_deref(), Some("eu-west"));
/// // Reload the whole table at once: readers see the old contents or the new.
/// config.replace([("region".to_string(), "us-east".to_string())]);
/// assert_eq!(config.get("region").as_deref().map(String::as_str), Some("us-east"));
/// ```
// `repr(C)`: the fields in this order. The first, `publish_line`, aligned to a
// cache line and as long as one, gives the whole map that alignment: the slot and
// the publish lock (which clears write, and every snapshot writes twice) have a line
// of their own, `pinned` (which every read and write loads) begins the next one,
// and the map's size is a whole number of lines, so that no neighbour of the map
// (a field of the caller's struct, a local beside it, the next heap block) shares
// a line with it. A neighbour that other threads read on every operation made each
// of a clear's locked instructions on that line wait for a transfer from another
// core: `clear_cold --readers 1` at 1,000 entries, 167-175 ns with the map at the
// start of a line against 521-530 ns with it 32 bytes in, behind the benchmark's
// own `filled` counter (`docs/BENCHMARKS.md`, "History", "The map's lines made its
// own").
#[repr(C)]
pub struct AtomicMap<K, V, S = DefaultHashBuilder> {
    /// The current generation's slot and the publish lock, on a line of their own.
    publish_line: PublishLine<K, V, S>,
    /// The current generation again, as a plain pointer, for pinned readers and
    /// for writers holding a shard lock: they load it (one Acquire load) instead
    /// of loading the slot (a lock taken and released, and a count raised and
    /// later dropped: `sync::Slot`). Follows `current`: each clear moves it right
    /// after its own swap of `current`, under the publish lock, and the slot's
    /// reference to a generation is released only after the map's shard locks
    /// were each taken once past that move and then a grace period
    /// (`Standby::release_handed_off`, `release_after_grace`), so a generation
    /// reached through it outlives every guard pinned, and every shard lock held,
    /// before the move.
    pinned: AtomicPtr<Generation<K, V, S>>,
    /// The next empty generation (built ahead by the reclaimer), the map's account,
    /// the hasher every generation's table is built with (a clone of it: a writer
    /// hashes its key with this one before it knows the generation) and the
    /// writers' shard locks, used for every generation's table.
    standby: WeakableArc<Standby<K, V, S>>,
    /// The reclaimer serving this map (this map counts as one of its users).
    /// Declared after `standby`, so dropped after it.
    reclaimer: Reclaimer,
}

/// The slot of the current generation and the publish lock: what a clear writes
/// and readers never touch, on a line of its own (see [`AtomicMap`]'s layout).
#[repr(C, align(64))]
struct PublishLine<K, V, S> {
    /// The current generation. `ManuallyDrop` so that `Drop` can release it before
    /// closing the reclaimer. Snapshots and clears go through it.
    current: ManuallyDrop<Slot<Generation<K, V, S>>>,
    /// Taken by `publish` (clears and replaces) around its swap of `current` and
    /// move of `pinned`, so that `pinned` names the slot's generation whenever the
    /// lock is free, and a publisher learns the generation it retires (and its id)
    /// from `pinned` without loading the slot. Next to the slot: a clear touches
    /// both. Readers, writers and snapshots never take it.
    publishing: PublishLock<()>,
}

/// The longest `shutdown` waits for the map's garbage.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for grace periods that guards pinned on other threads
/// hold up (the epoch is the process's: any guard of any map does).
const GRACE_PATIENCE: Duration = Duration::from_millis(100);

impl<K, V> AtomicMap<K, V, DefaultHashBuilder>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// An empty map with background reclamation and the default shard count.
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<String, u32> = atomic_map::AtomicMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Builder::new().build()
    }

    /// An empty map whose first generation is sized for about `capacity` entries.
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u64, u64> = atomic_map::AtomicMap::with_capacity(10_000);
    /// (&map).extend((0..10_000).map(|i| (i, i)));
    /// assert_eq!(map.len(), 10_000);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Builder::new().capacity(capacity).build()
    }
}

impl<K, V, S> AtomicMap<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// An empty map using `hasher` (cloned into each new generation).
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map = atomic_map::AtomicMap::with_hasher(RandomState::new());
    /// map.insert(1u8, 'a');
    /// assert_eq!(*map.get(&1).unwrap(), 'a');
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Builder::new().hasher(hasher).build()
    }

    /// An empty map using `hasher`, its first generation sized for about `capacity`
    /// entries.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map = atomic_map::AtomicMap::with_capacity_and_hasher(16, RandomState::new());
    /// map.insert("k", 1);
    /// assert_eq!(map.len(), 1);
    /// ```
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        Builder::new().capacity(capacity).hasher(hasher).build()
    }

    pub(crate) fn from_builder(builder: Builder<S>) -> Self {
        let reclaimer = match builder.reclaimer {
            Some(reclaimer) => reclaimer,
            None if builder.mode == ReclaimMode::Manual => Reclaimer::manual(),
            None => Reclaimer::process_wide(),
        };
        let owner = HomeOwner::new(
            reclaimer.domain(),
            builder.trim_memory,
            ValueRef::<V>::destroy_doomed::<K>,
            std::mem::needs_drop::<V>() || std::mem::needs_drop::<K>(),
            ValueRef::<V>::plain_cells::<K>(),
            builder.destructors_on_releasing_threads,
        );
        let standby = Standby::new(owner, builder.hasher, builder.shards);
        let first = standby.generation(standby.store_for(builder.capacity));
        // SAFETY: `first` was just built, and is published below.
        unsafe { first.prepare_publish(0) };
        let current = Slot::from_pointee(first);
        let pinned = AtomicPtr::new(Arc::as_ptr(&current.load_full()).cast_mut());
        AtomicMap {
            publish_line: PublishLine {
                current: ManuallyDrop::new(current),
                publishing: PublishLock::new(()),
            },
            pinned,
            standby,
            reclaimer,
        }
    }

    /// The current generation, for a reader or writer pinned by `guard`: no count
    /// is taken.
    #[inline(always)]
    fn pinned<'g>(&self, _guard: &'g epoch::Guard) -> &'g Generation<K, V, S> {
        // Acquire: pairs with the Release of `publish`'s store (and with the map's
        // construction, for the first generation): the generation is seen as built.
        let generation = self.pinned.load(Ordering::Acquire);
        // Soundness: the pointer is always to a generation the slot holds a
        // reference to, or held until a grace period past the moment the pointer
        // moved off it (`publish` hands the slot's reference over only after
        // moving it, and the reclaimer releases it through
        // `release_after_grace`; `Drop` does the same for the last one). `guard`
        // was pinned before this load and lives for `'g`.
        // SAFETY: the generation outlives the grace period `guard` holds up (above).
        unsafe { &*generation }
    }

    /// Runs the write `f` on the current generation's table, under the lock of the
    /// shard of `hash` (the hash of the key written, by the map's hasher). No epoch
    /// is pinned: the lock, taken before the generation is loaded and held until
    /// `f` returns, keeps that generation alive (`table/locks.rs`). What `f`
    /// returns (a replaced value's handle) is released by the caller, after the
    /// lock. The probe's first slot is fetched before the lock is taken
    /// (`ShardLocks::fetch`).
    #[inline(always)]
    fn write<R>(&self, hash: u64, f: impl FnOnce(&Store<K, V, S>, &mut Locked<'_>) -> R) -> R {
        self.write_fetched(self.standby.locks().fetch(hash), f)
    }

    /// [`write`](Self::write) under `fetched`, the lock of the key's shard, which
    /// the caller fetched earlier (`insert`, before it makes the value's cell).
    #[inline(always)]
    fn write_fetched<R>(
        &self,
        fetched: Fetched<'_>,
        f: impl FnOnce(&Store<K, V, S>, &mut Locked<'_>) -> R,
    ) -> R {
        self.write_locked(fetched.lock(), f)
    }

    /// [`write`](Self::write) under `locked`, a shard lock of the map's, just
    /// taken: the generation is loaded under it.
    #[inline(always)]
    fn write_locked<R>(
        &self,
        mut locked: Locked<'_>,
        f: impl FnOnce(&Store<K, V, S>, &mut Locked<'_>) -> R,
    ) -> R {
        // Acquire: pairs with the Release of `publish`'s store (and with the map's
        // construction, for the first generation): the generation, and its table as
        // built, are seen (loom scenario 5). Loaded after the lock is taken (below:
        // why).
        let generation = self.pinned.load(Ordering::Acquire);
        // Soundness: the slot's reference to a generation is released only after
        // every shard lock was taken and released once past the moment `pinned`
        // moved off it (`Standby::release_handed_off`; `Drop` releases the last one
        // with `&mut self`, when no writer can be here). This thread took its lock
        // before the load above and holds it until `f` has returned, so either the
        // quiesce's take of this lock comes after our release (the generation is
        // still referenced meanwhile), or it came before our take, and then so did
        // the move of `pinned`, and this load saw a later generation.
        // SAFETY: the generation outlives the lock held across `f` (above).
        let result = f(unsafe { &*generation }.store(), &mut locked);
        drop(locked);
        result
    }

    /// The map's account, which every value cell of the map points at.
    fn home(&self) -> HomeRef {
        self.standby.owner().home()
    }

    /// The hasher each generation's table uses.
    ///
    /// ```
    /// use std::hash::BuildHasher;
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// // The same hasher for every generation: a hash computed now stays valid.
    /// let h = map.hasher().hash_one(7u8);
    /// map.clear_async();
    /// assert_eq!(map.hasher().hash_one(7u8), h);
    /// ```
    pub fn hasher(&self) -> &S {
        self.standby.hasher()
    }

    /// Pins the current generation for a short read section.
    ///
    /// Reads through the guard borrow values without touching any reference count;
    /// everything they return stays valid until the guard drops, even if the map is
    /// cleared meanwhile. The guard sees one generation: after a clear it keeps
    /// reading the old contents. It holds up the reclamation of that generation (and
    /// of values removed while it lives), so keep it short; take a
    /// [`snapshot`](Self::snapshot) for long-lived reads.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("a".to_string(), 1);
    /// let guard = map.pin();
    /// let a: &i32 = guard.get_borrowed("a").unwrap();
    /// map.clear_async();
    /// assert_eq!(*a, 1); // the pinned generation is not torn by the clear
    /// assert!(map.get("a").is_none());
    /// ```
    pub fn pin(&self) -> ReadGuard<K, V, S> {
        // The epoch must be pinned before the guard's lookups read cell pointers
        // (they all come later, see `ReadGuard::new`); its order relative to the
        // load of the generation does not matter.
        let epoch = epoch::pin();
        let generation = NonNull::from(self.pinned(&epoch));
        // Soundness: `ReadGuard::new`'s contract: `generation` was loaded under
        // `epoch`, which the guard keeps (see `pinned`).
        // SAFETY: loaded under `epoch`, kept by the guard (above).
        unsafe { ReadGuard::new(generation, None, epoch) }
    }

    /// A retained handle on the value for `key`, or `None`.
    ///
    /// The handle costs one atomic increment and outlives clears, removes and the
    /// map itself. Lookups go through [`Borrow`], like `HashMap::get`.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("key".to_string(), vec![1u8]);
    /// let v = map.get("key").unwrap(); // String key, &str lookup
    /// map.remove("key");
    /// assert_eq!(*v, [1]);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<ValueRef<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = epoch::pin();
        self.pinned(&guard).store().get_retained(key, &guard)
    }

    /// Whether the current generation maps `key`.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(7u64, ());
    /// assert!(map.contains_key(&7));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = epoch::pin();
        self.pinned(&guard).store().contains_key(key, &guard)
    }

    /// Number of entries in the current generation (sums the shards).
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, 1);
    /// map.insert(2, 2);
    /// assert_eq!(map.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.pinned(&epoch::pin()).store().len()
    }

    /// Whether the current generation is empty.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Id of the current generation: 0 for a new map, one more after each clear or
    /// replace. Ids of published generations only grow.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// assert_eq!(map.generation(), 0);
    /// map.clear_async();
    /// assert_eq!(map.generation(), 1);
    /// ```
    pub fn generation(&self) -> u64 {
        self.pinned(&epoch::pin()).id()
    }

    /// Maps `key` to `value` in the current generation. Returns a handle on the
    /// value it replaced (the table's reference, handed over: no count is touched).
    /// The entry keeps `key`, and the replaced value's key is dropped with that
    /// value (`HashMap::insert` keeps the old key instead; here a key is never
    /// written while readers may be comparing it).
    ///
    /// An insert racing a clear may land in the generation being retired: it is then
    /// ordered before the clear, and its value is reclaimed with that generation.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// assert!(map.insert("k", 1).is_none());
    /// let old = map.insert("k", 2).unwrap();
    /// assert_eq!((*old, *map.get("k").unwrap()), (1, 2));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<ValueRef<V>> {
        let hash = self.hasher().hash_one(&key);
        // The slot's line is fetched while the cell is made.
        let fetched = self.standby.locks().fetch(hash);
        // The value's cell is made before the lock is taken, not under it.
        let entry = TableRef::new(key, value, self.home());
        self.write_fetched(fetched, |store, locked| store.insert(locked, hash, entry))
    }

    /// Unmaps `key` in the current generation. Returns a handle on its value (the
    /// table's reference, handed over); the value is destroyed once that handle and
    /// every other holder are gone and no pinned reader can still see it.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, "one");
    /// assert_eq!(*map.remove(&1).unwrap(), "one");
    /// assert!(map.remove(&1).is_none());
    /// ```
    #[inline]
    pub fn remove<Q>(&self, key: &Q) -> Option<ValueRef<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher().hash_one(key);
        self.write(hash, |store, locked| store.remove(locked, hash, key))
    }

    /// A handle on the value for `key`, inserting `make()` first if the key is
    /// absent: one step with respect to other writers of `key`, so concurrent
    /// callers for one key all get the same value, built once (read-through caches).
    ///
    /// `make` runs under the key's shard lock: it must not call back into this map.
    ///
    /// ```
    /// let cache = atomic_map::AtomicMap::new();
    /// let v = cache.get_or_insert_with("user:7".to_string(), || "loaded".to_string());
    /// let again = cache.get_or_insert_with("user:7".to_string(), || unreachable!());
    /// assert!(atomic_map::ValueRef::ptr_eq(&v, &again));
    /// ```
    pub fn get_or_insert_with<F>(&self, key: K, make: F) -> ValueRef<V>
    where
        F: FnOnce() -> V,
    {
        let hash = self.hasher().hash_one(&key);
        let home = self.home();
        // `make` runs, or is dropped unused, under the shard lock.
        let _under_lock = UserCodeUnderLock::enter(home);
        self.write(hash, |store, locked| {
            store.get_or_insert_with(locked, hash, key, make, home).0
        })
    }

    /// Maps `key` to `value` only if the key is absent, returning a handle on the
    /// inserted value; otherwise leaves the map as it was and returns [`Occupied`]
    /// with the current value and `value` back.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// assert_eq!(*map.try_insert(1, "first").unwrap(), "first");
    /// let occupied = map.try_insert(1, "second").unwrap_err();
    /// assert_eq!((*occupied.current, occupied.not_inserted), ("first", "second"));
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<ValueRef<V>, Occupied<V>> {
        let mut value = Some(value);
        let hash = self.hasher().hash_one(&key);
        let home = self.home();
        // `key` may be dropped under the shard lock (the key was present).
        let under_lock = UserCodeUnderLock::enter(home);
        let (found, inserted) = self.write(hash, |store, locked| {
            store.get_or_insert_with(
                locked,
                hash,
                key,
                || value.take().expect("built once"),
                home,
            )
        });
        drop(under_lock);
        match value {
            Some(not_inserted) if !inserted => Err(Occupied {
                current: found,
                not_inserted,
            }),
            _ => Ok(found),
        }
    }

    /// Unmaps `key` if `f` approves its entry; returns a handle on the removed
    /// value. One step with respect to other writers of `key`; `f` runs under the
    /// key's shard lock and must not call back into this map.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("session", 3u32);
    /// assert!(map.remove_if("session", |_, left| *left == 0).is_none());
    /// map.insert("session", 0);
    /// assert_eq!(map.remove_if("session", |_, left| *left == 0).as_deref(), Some(&0));
    /// ```
    pub fn remove_if<Q, F>(&self, key: &Q, f: F) -> Option<ValueRef<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnOnce(&K, &V) -> bool,
    {
        let hash = self.hasher().hash_one(key);
        // `f` runs, or is dropped unused, under the shard lock.
        let _under_lock = UserCodeUnderLock::enter(self.home());
        self.write(hash, |store, locked| store.remove_if(locked, hash, key, f))
    }

    /// Keeps only the entries of the current generation that `f` approves (cache
    /// eviction). It visits one shard at a time under that shard's write lock, so
    /// writers of other shards go on meanwhile, and an entry inserted during the
    /// call may or may not be visited. Removed values are released like `remove`d
    /// ones: holders keep them.
    ///
    /// `f` runs under one of the map's shard locks, which the release of the
    /// map's retired generations waits for, so it must not:
    /// - call back into this map;
    /// - wait for this map's reclamation (a [`Retired`] of its clears, which
    ///   would wait for this closure: [`Retired::wait`] panics there, and
    ///   `wait_timeout` returns at once), nor flush a reclaimer it is on
    ///   ([`Reclaimer::flush`], which waits for every map on it: by default the
    ///   process-wide one serves them all);
    /// - run reclamation on this thread ([`reclaim`](Self::reclaim), a
    ///   [`Reclaimer`]'s, or a wait for a ticket of a map in
    ///   [`ReclaimMode::Manual`], which runs its passes on the waiting thread): a
    ///   destructor run there may write to this map.
    ///
    /// It may wait for another map's clear in background mode, which the walk
    /// does not hold up: each shard is taken in the generation current when its
    /// lock is taken, as a write is, and no epoch is pinned, so a long walk holds
    /// up no grace period, and values it removes (and those of any other map) are
    /// reclaimed while it goes on. After a concurrent clear or replace, the shards
    /// not yet visited are the new generation's.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// for age in 0..10u32 {
    ///     map.insert(age, age);
    /// }
    /// map.retain(|_, age| *age < 5);
    /// assert_eq!(map.len(), 5);
    /// ```
    pub fn retain<F>(&self, mut f: F)
    where
        F: FnMut(&K, &V) -> bool,
    {
        // `f`, and the releases of what it removes, run under shard locks
        // (`UserCodeUnderLock`).
        let _under_lock = UserCodeUnderLock::enter(self.home());
        let locks = self.standby.locks();
        for shard in 0..locks.len() {
            self.write_locked(locks.lock_shard(shard), |store, locked| {
                store.retain_shard(locked, &mut f)
            });
        }
    }

    /// How many entries the current generation holds before its table grows
    /// (summed over its shards: a shard that fills ahead of the others grows
    /// first). Racy while writers run, as [`len`](Self::len) is.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u64, u64>::with_capacity(1000);
    /// assert!(map.capacity() >= 1000);
    /// ```
    pub fn capacity(&self) -> usize {
        let guard = epoch::pin();
        self.pinned(&guard).store().capacity(&guard)
    }

    /// Makes room in the current generation for at least `additional` entries
    /// more than it holds, so that inserting them does not rehash the table on the
    /// way: each shard grows, if it must, to hold its entries and its share of
    /// `additional` (keys spread over shards by hash: a shard that gets more than
    /// its share by more than its margin may still grow once: about one shard in 3
    /// million). It makes no room for one more insert than that: with a
    /// reservation's last insert a shard can stand at its bound. Writers of a shard wait while it is
    /// rehashed, which hashes its keys (their `Hash` runs under the shard's lock;
    /// if it panics, the shard keeps its array and the panic comes out); readers
    /// never wait. Shards are taken one at a time, each under a pin of its own, so
    /// the arrays a reserve replaces are freed as it goes. The room is committed
    /// at once (the process's resident memory grows by the arrays' size here,
    /// 8 bytes a slot, not as inserts reach them), so that readers probing ahead
    /// of the inserts cost the writer no page faults. It sizes the current
    /// generation: a clear publishes one that starts empty again (as after
    /// [`Builder::capacity`](crate::Builder::capacity)), a
    /// [`replace`](Self::replace) one sized by its iterator, and a reserve racing
    /// either may size some shards of the generation being retired.
    ///
    /// # Panics
    ///
    /// If the room cannot be had, with [`TryReserveError`]'s message: the
    /// arrays' bytes past `isize::MAX` ("capacity overflow", as
    /// `HashMap::reserve`), or an array the system refused;
    /// [`try_reserve`](Self::try_reserve) returns the error instead.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.reserve(10_000);
    /// let room = map.capacity();
    /// assert!(room >= 10_000);
    /// for i in 0..100u64 {
    ///     map.insert(i, i);
    /// }
    /// assert_eq!(map.capacity(), room); // no shard had to grow
    /// ```
    pub fn reserve(&self, additional: usize) {
        if let Err(error) = self.try_reserve(additional) {
            panic!("{error}");
        }
    }

    /// [`reserve`](Self::reserve), or an error: before anything is changed if the
    /// shards' arrays for the room would take more than `isize::MAX` bytes, or
    /// once the system refuses a shard's array (those reserved before it keep
    /// their room). As with `HashMap::try_reserve`, an allocation the system
    /// refuses is an error, not an abort (for the arrays of 64 KiB or more that a
    /// reservation makes; smaller ones come from the global allocator, which
    /// aborts). One the system grants within its overcommit limit is committed
    /// (`MAP_POPULATE`) as far as memory allows: past that, the rest is committed
    /// as it is touched, subject to swapping and the OOM killer as any
    /// allocation is.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u64, u64>::new();
    /// assert!(map.try_reserve(1_000).is_ok());
    /// assert!(map.try_reserve(usize::MAX).is_err());
    /// assert!(map.capacity() >= 1_000);
    /// ```
    pub fn try_reserve(&self, additional: usize) -> Result<(), TryReserveError> {
        let share = self
            .pinned(&epoch::pin())
            .store()
            .reservation_share(additional)?;
        self.each_shard(|store, locks, shard| store.reserve_shard(locks, shard, share))
            .map_err(|bytes| TryReserveError::refused(additional, bytes))
    }

    /// Shrinks the current generation's table as far as its entries allow: each
    /// shard, one at a time under its write lock, moves to the smallest array
    /// that holds its entries (none, if it has none; a shard whose entries fill
    /// exactly half of that array grows again on its next insert). The arrays it
    /// replaces are freed once no pinned reader can still see them. Readers never
    /// wait; values and holders are untouched. As in [`reserve`](Self::reserve),
    /// a rehash runs the keys' `Hash` under the shard's lock.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// for i in 0..10_000u64 {
    ///     map.insert(i, i);
    /// }
    /// map.retain(|k, _| *k < 10);
    /// let before = map.capacity();
    /// map.shrink_to_fit();
    /// assert!(map.capacity() < before);
    /// assert_eq!(*map.get(&3).unwrap(), 3);
    /// ```
    pub fn shrink_to_fit(&self) {
        let shrunk = self.each_shard(|store, locks, shard| {
            store.shrink_shard(locks, shard);
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(()) = shrunk;
    }

    /// Runs `f` on each shard of the current generation's table in turn (the
    /// shard's index, with the map's locks), each under a pin of its own: the
    /// arrays a rehash of one shard retires can be freed while the next is
    /// rehashed, rather than all at the end, and a shard after a concurrent clear
    /// is the new generation's. Every generation has as many shards.
    /// Stops at the first shard for which `f` returns an error, and returns it.
    fn each_shard<E>(
        &self,
        mut f: impl FnMut(&Store<K, V, S>, &ShardLocks, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let shards = self.standby.locks().len();
        for shard in 0..shards {
            let guard = epoch::pin();
            f(self.pinned(&guard).store(), self.standby.locks(), shard)?;
        }
        Ok(())
    }

    /// Sets `key` to what `f` makes of its current value (`None` if absent), as one
    /// step with respect to other writers of `key`; returns a handle on the new value.
    ///
    /// Values are shared with readers, so an update builds a new value rather than
    /// mutating in place; readers holding the old one keep it. `f` runs under the
    /// key's shard lock: it must not call back into this map (that deadlocks, as in
    /// `dashmap`). If `f` panics, the entry is left as it was.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// for _ in 0..3 {
    ///     map.upsert("hits", |old| old.copied().unwrap_or(0) + 1);
    /// }
    /// assert_eq!(*map.get("hits").unwrap(), 3);
    /// ```
    pub fn upsert<F>(&self, key: K, f: F) -> ValueRef<V>
    where
        F: FnOnce(Option<&V>) -> V,
    {
        self.compute(key, |old| Operation::<V>::Insert(f(old)))
            .into_current()
            .expect("an insert leaves the key mapped")
    }

    /// Applies what `f` decides for the entry of `key`, given its current value
    /// (`None` if absent), as one step with respect to other writers of `key`:
    /// [`Operation::Insert`] a new value, [`Remove`](Operation::Remove) the entry,
    /// [`Keep`](Operation::Keep) it as it is (the same value stays mapped: no copy,
    /// holders and readers keep sharing it), or [`Abort`](Operation::Abort) with a
    /// result of your own. Returns what happened, with handles on the values
    /// involved ([`Compute`]).
    ///
    /// `f` runs under the key's shard lock: it must not call back into this map.
    /// If `f` panics, the entry is left as it was.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Compute, Operation};
    ///
    /// let stock = AtomicMap::new();
    /// stock.insert("apples", 2u32);
    /// // Take one: decrement, remove at zero, refuse when absent.
    /// let take = |key| {
    ///     stock.compute(key, |left: Option<&u32>| match left {
    ///         None => Operation::Abort("out of stock"),
    ///         Some(1) => Operation::Remove,
    ///         Some(n) => Operation::Insert(n - 1),
    ///     })
    /// };
    /// assert!(matches!(take("apples"), Compute::Updated { .. }));
    /// assert!(matches!(take("apples"), Compute::Removed(_)));
    /// assert!(matches!(take("apples"), Compute::Aborted("out of stock")));
    ///
    /// // Keep leaves the very same value mapped.
    /// stock.insert("pears", 5);
    /// let held = stock.get("pears").unwrap();
    /// let Compute::Kept(Some(now)) = stock.compute("pears", |_| Operation::<u32>::Keep) else {
    ///     unreachable!()
    /// };
    /// assert!(atomic_map::ValueRef::ptr_eq(&held, &now));
    /// ```
    pub fn compute<F, T>(&self, key: K, f: F) -> Compute<V, T>
    where
        F: FnOnce(Option<&V>) -> Operation<V, T>,
    {
        let hash = self.hasher().hash_one(&key);
        let home = self.home();
        // `f` runs, and `key` may be dropped, under the shard lock; the mark ends
        // with this call, before the caller drops what the result carries.
        let _under_lock = UserCodeUnderLock::enter(home);
        // The result carries any replaced value out of the shard lock: its release
        // happens in the caller's hands, after the lock.
        self.write(hash, |store, locked| {
            store.compute(locked, hash, key, f, home)
        })
    }

    /// A long-lived, consistent view of the current generation.
    ///
    /// A snapshot never sees a clear or a replace: it keeps the generation it took
    /// (and its values) alive until dropped. It does see later writes into that same
    /// generation, i.e. inserts and removes made before the next clear. It is a real
    /// reference count (`Arc`), not a pin, so holding it for long costs nothing to
    /// other readers; it only delays the reclamation of its generation.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, "a");
    /// let snap = map.snapshot();
    /// map.clear_async();
    /// assert_eq!(*snap.get(&1).unwrap(), "a");
    /// assert_eq!(snap.len(), 1);
    /// assert!(map.is_empty());
    /// ```
    pub fn snapshot(&self) -> Snapshot<K, V, S> {
        Snapshot::new(self.publish_line.current.load_full())
    }

    /// Starts fetching the lines a publish reaches first and that nothing else
    /// keeps warm: the slot's and the publish lock's (no read or write takes them,
    /// so a large fill evicts them; usually one line) and the current generation's head (its
    /// id and retirement pointer; writers reach the table past it). Issued before
    /// the publish lock is taken, so that the misses overlap each other and the
    /// standby's, instead of following one another. `pinned`'s line is warm (every write
    /// loads it); read before the publish lock is held it may already be stale,
    /// which only wastes the fetch. Callgrind's cache model: without these, a read
    /// miss on the slot's line and on the head per clear after a fill of 1,000,000
    /// entries, one after the other.
    ///
    /// Not under loom: a hint is not protocol, and its load of `pinned` would only
    /// add interleavings to the models.
    #[inline(always)]
    fn prefetch_for_publish(&self) {
        #[cfg(not(feature = "loom"))]
        {
            crate::prefetch::prefetch_line(std::ptr::from_ref(&self.publish_line).cast());
            // Relaxed: a hint; `publish` loads `pinned` again under the lock.
            crate::prefetch::prefetch_arc(self.pinned.load(Ordering::Relaxed).cast_const());
        }
    }

    /// Publishes `next` as the new current generation with one swap of the slot,
    /// under the publish lock (a racing clear or replace waits for the few
    /// instructions between the lock and its release). O(1): the old generation is
    /// handed on, never walked here.
    ///
    /// The lock is what lets a publish skip loading the slot (its read lock taken
    /// and released, a count raised on the retired generation and dropped again)
    /// and comparing before it swaps: with every move of `current` and `pinned`
    /// made under it, `pinned` names the slot's generation while the lock is held,
    /// and the retired generation's id and ticket are read through it. Each of
    /// those steps was a locked instruction on a line readers or snapshots share,
    /// and a call into code a large fill leaves cold (`docs/BENCHMARKS.md`,
    /// "History").
    fn publish(&self, built: Option<Arc<Generation<K, V, S>>>) -> Retired {
        // This thread's epoch, for the ticket's check that a waiter is not pinned
        // since before this publish (`Retired::would_wait_for_itself`): read from
        // this thread's own participant, before the lock.
        let stamp = epoch::epoch_stamp();
        let publishing = self.publish_line.publishing.lock();
        // Relaxed: `pinned` is written only here, under the lock this thread now
        // holds, whose acquisition synchronizes with the previous holder's release
        // (after its store), or it is still the value `from_builder` gave it
        // before the map was shared. (Should that ever not hold, the assertion
        // at the end reports it; loom scenario 4, two publishes at once, fails
        // when the lock is left out: both take the same generation's ticket.)
        let retiring = self.pinned.load(Ordering::Relaxed);
        // SAFETY: `retiring` is the generation the slot holds a reference to
        // (above: `pinned` follows the slot under this lock), and only a publish,
        // under this lock, takes that reference out of the slot.
        let retiring_ref = unsafe { &*retiring };
        let id = retiring_ref.id() + 1;
        let next = match built {
            Some(built) => {
                // SAFETY: `built` is unpublished and ours alone (a `replace`'s);
                // the lock is held and this publish gives `id`, so the spare is
                // numbered for the next one.
                unsafe {
                    built.prepare_publish(id);
                    self.standby.renumber_spare(id + 1);
                }
                built
            }
            // A clear: the spare, numbered `id` ahead by the reclaimer, so that
            // its head (a line the reclaimer's core wrote last) is not touched
            // here; or, when none is parked, one built and numbered here.
            // SAFETY: the lock is held and this publish gives `id`.
            None => unsafe { self.standby.take_spare(id) }.unwrap_or_else(|| {
                let built = self.standby.build_empty();
                // SAFETY: just built, ours alone.
                unsafe { built.prepare_publish(id) };
                built
            }),
        };
        let retired = Retired::new(
            retiring_ref.id(),
            // SAFETY: this publish moves the map off `retiring` (under the publish
            // lock, with `pinned` naming it: above), and no other does.
            unsafe { retiring_ref.take_ticket() },
            stamp,
        );
        let next_raw = Arc::as_ptr(&next).cast_mut();
        let previous = self.publish_line.current.swap(next);
        let swapped_out = Arc::as_ptr(&previous);
        // `previous` is the reference the slot had: hand it to the reclaimer to
        // release once `pinned` has moved off it, the map's shard locks are
        // quiesced and a grace period has passed (writers and pinned readers may
        // still be in it), so that no generation is dropped here. Before the move
        // of `pinned`, so that the push's locked instruction does not wait for
        // that store to reach the readers' cores; the pass releases it only once
        // `mark_published` below says the move is made.
        Standby::hand_off_and_register(&self.standby, previous);
        // Release: publishes the new generation (built before, on this thread or,
        // for a spare, on the reclaimer's, taken with Acquire) to `pinned`'s
        // Acquire loads in `pinned()` and `write`.
        self.pinned.store(next_raw, Ordering::Release);
        self.standby.mark_published(id);
        drop(publishing);
        // Checked only now, with `pinned` moved, the lock released and the slot's
        // reference handed off as on every other publish: a failure leaves the
        // map as consistent as it can be, and drops no generation here.
        assert!(
            std::ptr::eq(swapped_out, retiring),
            "the slot is moved only under the publish lock"
        );
        retired
    }

    /// Retires the current generation and publishes an empty one, in O(1).
    ///
    /// One swap of the generation pointer; nothing is freed or allocated here.
    /// The slot's lock is held for the few instructions of the swap (a snapshot
    /// taken on another thread holds it as briefly), and the map's publish lock,
    /// which only clears and replaces take, a few more; readers and writers never
    /// take either. The empty generation is normally built
    /// ahead of time by the reclaimer; when none is ready (a burst of clears, or
    /// manual mode between `reclaim` calls) it is built here, a small fixed
    /// allocation. The old generation is parked for the reclaimer to release. Readers
    /// pinned on the old generation keep reading it; new readers see the empty one.
    /// The old generation is torn down by the reclaimer once its last holder lets
    /// go; the returned [`Retired`] ticket tells when.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("a", 1);
    /// let retired = map.clear_async();
    /// assert!(map.is_empty());
    /// assert_eq!(retired.id(), 0);
    /// retired.wait(); // the old generation has been torn down
    /// ```
    pub fn clear_async(&self) -> Retired {
        self.prefetch_for_publish();
        self.publish(None)
    }

    /// Builds a new generation from `entries` off to the side, then publishes it with
    /// one swap: readers see either all of the old contents or all of the new, never
    /// a mix. Writes made to the old generation while the new one is being built are
    /// retired with it. Later duplicates of a key win, as with `HashMap::extend`.
    ///
    /// If iterating `entries` panics, nothing is published and the partly built
    /// table is dropped on this thread.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("old", 0);
    /// let retired = map.replace([("new", 1), ("newer", 2)]);
    /// assert!(map.get("old").is_none());
    /// assert_eq!(map.len(), 2);
    /// assert_eq!(retired.id() + 1, map.generation());
    /// ```
    pub fn replace<I>(&self, entries: I) -> Retired
    where
        I: IntoIterator<Item = (K, V)>,
    {
        let entries = entries.into_iter();
        let store: Store<K, V, S> = self.standby.store_for(entries.size_hint().0);
        let home = self.home();
        // The table is not published yet: no other writer can be in it, so it is
        // filled under locks of its own, not the map's (which the map's writers
        // hold, and which a `replace` from inside a write's closure would wait for
        // forever).
        let locks = ShardLocks::new(self.standby.locks().len());
        for (key, value) in entries {
            let hash = store.hash(&key);
            let replaced =
                store.insert(&mut locks.lock(hash), hash, TableRef::new(key, value, home));
            drop(replaced);
        }
        self.prefetch_for_publish();
        self.publish(Some(Arc::new(self.standby.generation(store))))
    }

    /// Tears down every retired generation whose last holder has let go, on the
    /// calling thread, and helps deferred value frees along. Returns the number of
    /// generations torn down.
    ///
    /// Required in [`ReclaimMode::Manual`]; harmless in
    /// background mode, where it does some of the background thread's work.
    ///
    /// A value removed or replaced (rather than cleared away with its generation) is
    /// destroyed after a grace period: when no other thread is pinned, one call
    /// starts it and destroys the value; otherwise a later call does, once every
    /// guard pinned before has been dropped. A cleared generation
    /// waits for one too (pinned readers may still be in it): when no other thread
    /// is pinned, one call tears it down, as below; otherwise a later one does. In
    /// manual mode, call this periodically rather than once;
    /// `stats().retired_generations` and `stats().pending_values` count what is
    /// still waiting.
    ///
    /// ```
    /// use atomic_map::{Builder, ReclaimMode};
    /// let map = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    /// map.insert(1, 1);
    /// map.clear_async();
    /// assert_eq!(map.stats().retired_generations, 1);
    /// assert_eq!(map.reclaim(), 1);
    /// assert_eq!(map.stats().retired_generations, 0);
    /// ```
    pub fn reclaim(&self) -> usize {
        self.reclaimer.reclaim()
    }

    /// Drops the map and waits (at most 10 s) until its reclaimer has torn down
    /// what the map handed it: its generations that no snapshot still holds, and
    /// the values released before the call. Both wait for a grace period, which an
    /// epoch guard pinned on any thread (a [`ReadGuard`] of any map, a C read
    /// section) holds up until it is dropped: `shutdown` waits up to 100 ms for
    /// guards of other threads; if the calling thread is pinned itself, or a guard
    /// stays pinned longer, it gives the values 8 passes of the reclaimer and
    /// returns without the generation, which is torn down after those guards go,
    /// as are generations still held by snapshots, once their last holder lets go.
    ///
    /// For orderly shutdowns, and for tests and leak checkers that want every
    /// value destroyed before they look. Called from a destructor that a pass of the
    /// same reclaimer runs, it does not wait (that would deadlock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// struct Counted(Arc<AtomicUsize>);
    /// impl Drop for Counted {
    ///     fn drop(&mut self) {
    ///         self.0.fetch_add(1, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// let drops = Arc::new(AtomicUsize::new(0));
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, Counted(drops.clone()));
    /// map.shutdown();
    /// assert_eq!(drops.load(Ordering::SeqCst), 1);
    /// ```
    pub fn shutdown(self) {
        // Our own ownership keeps the account alive (and readable) past the drop.
        let owner = self.standby.owner().clone();
        let domain = Arc::clone(self.reclaimer.domain());
        drop(self);
        // Before the pass count is read: the passes counted below walk the maps
        // (see `Domain::flush`).
        domain.request_walk();
        let home = owner.home();
        // Two passes run any hand-off queued before the drop (its release submits
        // the teardown it leads to, counted in `jobs_done`).
        let passes = domain.passes();
        let started = Instant::now();
        Domain::wait_until(
            &domain,
            || {
                let home = home.get();
                let ran = domain.passes() - passes;
                // The drop released the map's generation after a grace period
                // (`release_after_grace`), which a guard pinned on another thread
                // holds up: until the release runs, its teardown is not submitted,
                // and `jobs_done` would hold without it. Read first: a release that
                // has run has submitted its teardown. The values released before
                // the call wait for a grace period too. A guard of this thread would
                // hold both up for as long as this wait, and a guard elsewhere may
                // stay pinned for as long as its owner likes (a long read section):
                // such grace periods get `GRACE_PATIENCE`, and the values 8 passes.
                let patience_over = epoch::is_pinned() || started.elapsed() >= GRACE_PATIENCE;
                let released = home.generations_released() || patience_over;
                released
                    && ran >= 2
                    && home.jobs_done()
                    && (home.sample().pending_values == 0 || (patience_over && ran >= 8))
            },
            Some(SHUTDOWN_WAIT),
        );
        drop(owner);
    }

    /// Whether this map's reclaimer has a background thread or is run by the program.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// assert_eq!(map.reclaim_mode(), atomic_map::ReclaimMode::Background);
    /// ```
    pub fn reclaim_mode(&self) -> ReclaimMode {
        self.reclaimer.mode()
    }

    /// A handle on the reclaimer serving this map: the process-wide one unless the
    /// [`Builder`] named another. Give it to other maps' builders to share it.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder};
    /// let a: AtomicMap<u8, u8> = Builder::new().reclaimer(&atomic_map::Reclaimer::new()).build();
    /// let b: AtomicMap<u8, u8> = Builder::new().reclaimer(&a.reclaimer()).build();
    /// assert!(a.reclaimer().same_as(&b.reclaimer()));
    /// ```
    pub fn reclaimer(&self) -> Reclaimer {
        self.reclaimer.clone()
    }

    /// A builder that builds maps like this one, empty: a clone of its hasher,
    /// its shard count, its reclaimer (shared) and its settings (`Clone`).
    pub(crate) fn builder_like(&self) -> Builder<S> {
        let home = self.home();
        Builder::new()
            .reclaimer(&self.reclaimer)
            .shards(self.standby.locks().len())
            .trim_memory(home.get().trim())
            // The same types, so the same answer: `helps_destroy` is this setting,
            // or true anyway for cells that need no destructor (`HomeOwner::new`).
            .destructors_on_releasing_threads(home.get().helps_destroy())
            .hasher(self.hasher().clone())
    }

    /// Generation and garbage counters; see [`Stats`].
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::<u8, u8>::new();
    /// map.clear_async().wait();
    /// let stats = map.stats();
    /// assert_eq!(stats.generation, 1);
    /// assert_eq!(stats.reclaimed_generations, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        let c = self.home().get().sample();
        let generation = self.generation();
        Stats {
            generation,
            // Ids count publications: generations 0..generation have been retired.
            // Read without a common lock, hence saturating.
            retired_generations: generation.saturating_sub(c.reclaimed_generations) as usize,
            pending_values: c.pending_values,
            reclaimed_generations: c.reclaimed_generations,
            reclaimed_values: c.reclaimed_values,
            destructor_panics: c.destructor_panics,
        }
    }
}

impl<K, V, S> Drop for AtomicMap<K, V, S> {
    /// Releases the map's hold on its current generation (and its spare), then its
    /// use of the reclaimer. Snapshots, guards, handles and C holders keep what
    /// they hold. The teardown happens on the reclaimer's thread; in manual mode,
    /// when this was the reclaimer's last map and handle, here, on the dropping
    /// thread.
    fn drop(&mut self) {
        // Pinned readers (a `ReadGuard` may outlive the map) may be in the current
        // generation through `pinned`, without a count: its release waits out a
        // grace period, like a cleared one's. No writer can be (`&mut self`), so no
        // quiesce of the shard locks.
        release_after_grace(self.publish_line.current.load_full());
        // SAFETY: `current` is dropped exactly once, here (`drop` runs once and
        // `ManuallyDrop` drops nothing itself), and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.publish_line.current) };
        // The reclaimer's next pass releases the parked hand-off and the spare (not
        // counted as retired) and lets go of the standby; the fields drop next.
        self.standby.map_dropped();
    }
}

impl<K, V> Default for AtomicMap<K, V, DefaultHashBuilder>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> fmt::Debug for AtomicMap<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Shows the generation, size and reclaim mode; entries are not listed (a
    /// snapshot's `iter` does that).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicMap")
            .field("generation", &self.generation())
            .field("len", &self.len())
            .field("reclaim_mode", &self.reclaimer.mode())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The generation `pinned` names now. Only while no clear runs on another thread.
    #[cfg(not(feature = "loom"))]
    fn current(map: &AtomicMap<u64, u64>) -> &Generation<u64, u64, DefaultHashBuilder> {
        // SAFETY: `pinned` names the generation the slot holds, which stays alive
        // while the map does and no clear moves it (the caller's word).
        unsafe { &*map.pinned.load(Ordering::Acquire) }
    }

    /// Waits up to 10 s for `done`, polling.
    #[cfg(not(feature = "loom"))]
    fn within_10_s(mut done: impl FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        while !done() {
            if start.elapsed() > std::time::Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    /// A generation is made with its `Retired` ticket's reference counted
    /// (`Generation::ticket`): the clear that retires it takes that reference
    /// without counting another, and a generation that no clear retires drops it
    /// with itself.
    #[cfg(not(feature = "loom"))]
    #[test]
    fn a_clear_takes_the_ticket_its_generation_was_made_with() {
        let map: AtomicMap<u64, u64> = AtomicMap::new();
        map.insert(1, 1);
        let first = Arc::downgrade(current(&map).retirement());
        // The generation's own reference and its ticket's.
        assert_eq!(first.strong_count(), 2);
        let retired = map.clear_async();
        // The ticket's reference moved into `retired`: none added.
        assert_eq!(first.strong_count(), 2);
        retired.wait();
        // The teardown gave up the generation's own.
        assert!(within_10_s(|| first.strong_count() == 1));
        drop(retired);
        assert_eq!(first.strong_count(), 0);

        // The generation current when the map goes was retired by no clear: its
        // ticket goes with it.
        let last = Arc::downgrade(current(&map).retirement());
        assert_eq!(last.strong_count(), 2);
        drop(map);
        assert!(within_10_s(|| last.strong_count() == 0));
    }

    /// `Clone` builds its map like the original: shard count and settings (the
    /// hasher and reclaimer are checked in `tests/everyday_api.rs`).
    #[cfg(not(feature = "loom"))]
    #[test]
    fn a_clone_is_built_like_its_map() {
        let settings = |map: &AtomicMap<u64, Vec<u8>>| {
            let home = map.home();
            (
                map.standby.locks().len(),
                home.get().trim(),
                home.get().helps_destroy(),
            )
        };
        let plain: AtomicMap<u64, Vec<u8>> = Builder::new().shards(2).build();
        let set: AtomicMap<u64, Vec<u8>> = Builder::new()
            .shards(32)
            .trim_memory(false)
            .destructors_on_releasing_threads(true)
            .build();
        assert_eq!(settings(&plain), (2, true, false));
        assert_eq!(settings(&set), (32, false, true));
        assert_eq!(settings(&plain.clone()), settings(&plain));
        assert_eq!(settings(&set.clone()), settings(&set));
    }

    #[test]
    fn the_map_has_lines_of_its_own_and_pinned_is_off_the_publish_line() {
        type Map = AtomicMap<u64, u64>;
        type Line = PublishLine<u64, u64, DefaultHashBuilder>;
        // Aligned to a line and a whole number of lines long: no neighbour of a
        // map, wherever it is, shares one of its lines.
        assert_eq!(align_of::<Map>() % 64, 0, "the map's alignment");
        assert_eq!(size_of::<Map>() % 64, 0, "the map's size");
        let slot_end = offset_of!(Map, publish_line)
            + offset_of!(Line, current)
            + size_of::<ManuallyDrop<Slot<Generation<u64, u64, DefaultHashBuilder>>>>();
        let lock_end = offset_of!(Map, publish_line)
            + offset_of!(Line, publishing)
            + size_of::<PublishLock<()>>();
        // With the map at the start of a line, the line of a field's last byte.
        for end in [slot_end, lock_end] {
            assert!(
                (end - 1) / 64 < offset_of!(Map, pinned) / 64,
                "pinned at {}, on the line of a field that ends at {end}",
                offset_of!(Map, pinned)
            );
        }
    }
}
