//! `Builder`: how a map reclaims, how many shards each generation's table has, and
//! which hasher it uses.

use crate::hasher::DefaultHashBuilder;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::map::AtomicMap;
use crate::reclaim::{ReclaimMode, Reclaimer};

/// Configures an [`AtomicMap`] before it is built.
///
/// ```
/// use atomic_map::{AtomicMap, Builder, ReclaimMode};
///
/// let map: AtomicMap<u64, String> = Builder::new()
///     .reclaim_mode(ReclaimMode::Manual) // no background thread
///     .shards(16)
///     .build();
/// map.insert(1, "one".to_string());
/// let retired = map.clear_async();
/// assert_eq!(map.reclaim(), 1); // the program tears the old generation down itself
/// assert!(retired.is_reclaimed());
/// ```
#[derive(Clone)]
pub struct Builder<S = DefaultHashBuilder> {
    pub(crate) mode: ReclaimMode,
    pub(crate) reclaimer: Option<Reclaimer>,
    pub(crate) shards: usize,
    pub(crate) capacity: usize,
    pub(crate) trim_memory: bool,
    pub(crate) destructors_on_releasing_threads: bool,
    pub(crate) hasher: S,
}

impl Builder<DefaultHashBuilder> {
    /// The most shards a table may have ([`shards`](Self::shards) panics above it,
    /// whatever the hasher): 65,536, 8 MiB of shard locks per generation, far past
    /// any core count.
    pub const MAX_SHARDS: usize = 1 << 16;

    /// Background reclamation, the default shard count, [`DefaultHashBuilder`].
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u32, u32> = atomic_map::Builder::new().build();
    /// assert_eq!(map.reclaim_mode(), atomic_map::ReclaimMode::Background);
    /// ```
    pub fn new() -> Self {
        Builder {
            mode: ReclaimMode::default(),
            reclaimer: None,
            shards: default_shards(),
            capacity: 0,
            trim_memory: true,
            destructors_on_releasing_threads: false,
            hasher: DefaultHashBuilder::new(),
        }
    }
}

impl Default for Builder<DefaultHashBuilder> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Builder<S> {
    /// Who tears retired generations down: the process-wide background thread (the
    /// default, shared by every map built so), or the program, through
    /// [`AtomicMap::reclaim`] (a manual reclaimer of the map's own). Replaces an
    /// earlier [`reclaimer`](Self::reclaimer).
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder, ReclaimMode};
    /// let map: AtomicMap<u32, u32> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    /// map.insert(1, 1);
    /// let retired = map.clear_async();
    /// assert!(!retired.is_reclaimed()); // nothing runs until the program asks
    /// map.reclaim();
    /// assert!(retired.is_reclaimed());
    /// ```
    pub fn reclaim_mode(mut self, mode: ReclaimMode) -> Self {
        self.mode = mode;
        self.reclaimer = None;
        self
    }

    /// Puts the map on `reclaimer` (a dedicated one from [`Reclaimer::new`] or
    /// [`Reclaimer::manual`], shared with whichever maps are given it) instead of
    /// the one [`reclaim_mode`](Self::reclaim_mode) names. For maps whose value
    /// destructors are slow, so that they never delay other maps' reclamation.
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Builder, Reclaimer};
    /// let own = Reclaimer::new();
    /// let map: AtomicMap<u32, String> = Builder::new().reclaimer(&own).build();
    /// map.insert(1, "x".into());
    /// map.clear_async().wait(); // torn down on `own`'s thread
    /// ```
    pub fn reclaimer(mut self, reclaimer: &Reclaimer) -> Self {
        self.mode = reclaimer.mode();
        self.reclaimer = Some(reclaimer.clone());
        self
    }

    /// Number of shards of each generation's table. Rounded up to a power of two,
    /// at least 2 (the table's requirement). The default is four times the number of
    /// CPUs, rounded up likewise.
    ///
    /// # Panics
    /// If `shards` exceeds [`MAX_SHARDS`](Builder::MAX_SHARDS) (each shard costs a lock
    /// and a table in every generation: 2^40 of them would exhaust memory).
    ///
    /// ```
    /// // Few shards for a small map that few threads write (less memory per
    /// // generation: each shard is a lock and a table).
    /// let map: atomic_map::AtomicMap<u8, u8> = atomic_map::Builder::new().shards(3).build();
    /// map.insert(1, 1);
    /// assert_eq!(map.len(), 1);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(
            shards <= Builder::MAX_SHARDS,
            "atomic-map: {shards} shards requested, at most Builder::MAX_SHARDS ({}) allowed",
            Builder::MAX_SHARDS
        );
        self.shards = shards.max(2).next_power_of_two();
        self
    }

    /// Sizes the map's first generation for about `capacity` entries, so that filling
    /// it does not resize its table (as [`AtomicMap::reserve`](crate::AtomicMap::reserve)
    /// does, whose margin and memory it shares: the arrays are committed when the
    /// map is built). Later generations (after a clear) start empty
    /// and grow as they fill; [`AtomicMap::replace`] sizes its table from its
    /// iterator's `size_hint`.
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u32, u32> = atomic_map::Builder::new().capacity(1000).build();
    /// assert!(map.is_empty());
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Whether the reclaimer asks the allocator to return free memory to the OS
    /// after a pass that destroyed at least 65,536 values (glibc's `malloc_trim`;
    /// a no-op elsewhere). On by default: without it, glibc keeps the freed memory
    /// of a torn-down generation and the process stays at its peak size. It runs
    /// on the reclaiming thread; a thread allocating meanwhile may wait on the
    /// allocator's lock for the duration of the trim.
    ///
    /// ```
    /// // A process that will soon refill the map to the same size keeps the memory.
    /// let map: atomic_map::AtomicMap<u64, u64> =
    ///     atomic_map::Builder::new().trim_memory(false).build();
    /// map.replace((0..1000).map(|i| (i, i)));
    /// assert_eq!(map.len(), 1000);
    /// ```
    pub fn trim_memory(mut self, trim: bool) -> Self {
        self.trim_memory = trim;
        self
    }

    /// Whether threads that release this map's values may run their destructors.
    /// Off by default: a value released after a `remove`, a replacing `insert` or
    /// the drop of a [`ValueRef`](crate::ValueRef) is destroyed after its grace
    /// period on the map's reclaimer, whatever its type.
    ///
    /// On, a thread that releases values into a background reclaimer destroys
    /// them itself, a batch after their grace period, every 256 releases (values
    /// without destructors are always destroyed so). For values that own heap
    /// memory (a `String`, a `Vec`) the memory is then freed on the thread that
    /// will allocate again, in its allocator's per-thread cache: on glibc, a
    /// loop replacing `Vec<u8>` values under `String` keys ran 27–30% more
    /// replacements (`docs/BENCHMARKS.md`, "History", "Destructors on the
    /// releasing thread").
    ///
    /// Which thread: the one that released the value's last reference (or, if
    /// that thread exits first, the reclaimer or the next thread to take over its
    /// stripe of the reclaimer), in a *later* releasing call than the one that
    /// released it, of this map or another map on the same reclaimer. So a
    /// destructor must not take a lock that its releasing thread may hold while
    /// it writes to, or drops a handle of, a map on that reclaimer, and a slow one
    /// slows that thread. Only threads that hold one of the process's eight
    /// counter stripes help (the first eight threads to release values, and any
    /// thread that takes over the stripe of one that exited): the releases of
    /// other threads go to the reclaimer, as by default. Destructors never run
    /// under a shard lock, in a closure the map calls there or drops there unused
    /// (`compute`, `upsert`, `get_or_insert_with`, `remove_if`, `retain`), nor
    /// inside another reclaimer's pass (a destructor releasing this map's
    /// values), nor during a clear's teardown, which stays on the reclaimer; a
    /// panic in one is contained and counted in
    /// [`Stats::destructor_panics`](crate::Stats::destructor_panics). In manual
    /// mode the setting changes nothing.
    ///
    /// ```
    /// let cache: atomic_map::AtomicMap<String, Vec<u8>> = atomic_map::Builder::new()
    ///     .destructors_on_releasing_threads(true)
    ///     .build();
    /// for round in 0..1000u32 {
    ///     // Each replacement releases the previous value; this thread frees
    ///     // the released vectors itself, a batch at a time.
    ///     cache.insert("page".to_string(), round.to_le_bytes().to_vec());
    /// }
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn destructors_on_releasing_threads(mut self, on: bool) -> Self {
        self.destructors_on_releasing_threads = on;
        self
    }

    /// The hasher used by every generation (each new generation gets a clone).
    ///
    /// A clone must hash exactly as the original does (std's `RandomState`,
    /// foldhash's and `BuildHasherDefault` do; `HashMap: Clone` asks the same): a
    /// write hashes its key with the map's own hasher before it knows which
    /// generation it writes into, and a lookup with that generation's clone. A
    /// hasher whose clones hash differently makes entries unreachable.
    ///
    /// ```
    /// use std::hash::BuildHasherDefault;
    /// use std::collections::hash_map::DefaultHasher;
    ///
    /// // A deterministic hasher (no per-process random seed).
    /// let map: atomic_map::AtomicMap<&str, u32, BuildHasherDefault<DefaultHasher>> =
    ///     atomic_map::Builder::new().hasher(BuildHasherDefault::default()).build();
    /// map.insert("k", 1);
    /// assert_eq!(map.get("k").as_deref(), Some(&1));
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> Builder<S2> {
        Builder {
            mode: self.mode,
            reclaimer: self.reclaimer,
            shards: self.shards,
            capacity: self.capacity,
            trim_memory: self.trim_memory,
            destructors_on_releasing_threads: self.destructors_on_releasing_threads,
            hasher,
        }
    }

    /// Builds the map. The first map of the process in background mode starts the
    /// process-wide reclaimer thread.
    ///
    /// # Panics
    /// If that thread cannot be spawned.
    ///
    /// ```
    /// let map = atomic_map::Builder::new().shards(8).build::<String, Vec<u8>>();
    /// map.insert("k".to_string(), vec![1]);
    /// assert!(map.contains_key("k"));
    /// ```
    pub fn build<K, V>(self) -> AtomicMap<K, V, S>
    where
        K: Eq + Hash + Send + Sync + 'static,
        V: Send + Sync + 'static,
        S: BuildHasher + Clone + Send + Sync + 'static,
    {
        AtomicMap::from_builder(self)
    }
}

impl<S> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("mode", &self.mode)
            .field("shards", &self.shards)
            .field("capacity", &self.capacity)
            .field("trim_memory", &self.trim_memory)
            .field(
                "destructors_on_releasing_threads",
                &self.destructors_on_releasing_threads,
            )
            .finish_non_exhaustive()
    }
}

/// Four times the number of CPUs, rounded up to a power of two.
fn default_shards() -> usize {
    (cpus() * 4).max(2).next_power_of_two()
}

/// The CPUs the process may run on, computed once: `available_parallelism` reads
/// `/proc` and cgroup files (about 10 µs, most of the cost of building a map before
/// it was cached). A plain `OnceLock` of a constant, not part of the map's
/// synchronization (hence not from the `sync` shim).
pub(crate) fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}
