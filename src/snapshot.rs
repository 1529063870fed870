//! `Snapshot`: a long-lived handle on one generation, and its iterator.

use crate::hasher::DefaultHashBuilder;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ptr::NonNull;

use crate::generation::{Generation, one_generation_reads};
use crate::read::ReadGuard;
use crate::sync::{Arc, epoch};
use crate::value::ValueRef;

/// A long-lived handle on one generation, from [`AtomicMap::snapshot`](crate::AtomicMap::snapshot).
///
/// It never sees a clear or replace and never mixes entries of two generations. It
/// does see writes made to its own generation after it was taken (until the next
/// clear retires that generation, after which nothing is written to it any more
/// except by writers that loaded it before the clear).
///
/// A snapshot holds a real reference count on the generation (not an arc-swap
/// guard, not an epoch pin), so it can be kept, cloned and sent across threads for
/// as long as needed; it only delays the reclamation of its own generation.
///
/// ```
/// use atomic_map::AtomicMap;
///
/// let map = AtomicMap::new();
/// map.insert("a", 1);
/// let before = map.snapshot();
/// map.replace([("b", 2)]);
/// // A report built from one consistent generation, on another thread.
/// let report = std::thread::spawn(move || {
///     let mut keys: Vec<&str> = before.iter().map(|(k, _)| k).collect();
///     keys.sort();
///     keys
/// });
/// assert_eq!(report.join().unwrap(), ["a"]);
/// ```
pub struct Snapshot<K, V, S = DefaultHashBuilder> {
    generation: Arc<Generation<K, V, S>>,
}

impl<K, V, S> Snapshot<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(generation: Arc<Generation<K, V, S>>) -> Self {
        Snapshot { generation }
    }

    one_generation_reads!();

    /// Runs `f` under an epoch pin of its own, for the lookups of
    /// `one_generation_reads!` (a snapshot holds a count on its generation, not a pin).
    #[inline(always)]
    fn with_read_pin<R>(&self, f: impl FnOnce(&epoch::Guard) -> R) -> R {
        f(&epoch::pin())
    }

    /// A short pinned read section on this snapshot's generation, for borrowed
    /// reads without reference counting.
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, "a");
    /// let snap = map.snapshot();
    /// map.clear_async();
    /// let guard = snap.pin();
    /// assert_eq!(guard.get_borrowed(&1), Some(&"a"));
    /// ```
    pub fn pin(&self) -> ReadGuard<K, V, S> {
        let epoch = epoch::pin();
        let generation = Arc::clone(&self.generation);
        // SAFETY: `new`'s contract: the guard keeps a count on its generation.
        unsafe { ReadGuard::new(NonNull::from(&*generation), Some(generation), epoch) }
    }

    /// Iterates over the entries of this generation as `(key, handle)` pairs.
    ///
    /// The iterator copies one shard at a time (keys cloned, values retained),
    /// lock-free, and yields from the copy, so nothing is held while the loop body
    /// runs. Entries written to this generation while the iteration runs
    /// may or may not be seen (each shard is seen as of the moment it was copied);
    /// entries of any other generation never are.
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<i32, i32> = [(1, 10), (2, 20)].into_iter().collect();
    /// let snap = map.snapshot();
    /// map.clear_async();
    /// let mut entries: Vec<(i32, i32)> = snap.iter().map(|(k, v)| (k, *v)).collect();
    /// entries.sort();
    /// assert_eq!(entries, [(1, 10), (2, 20)]);
    /// ```
    pub fn iter(&self) -> Iter<K, V, S>
    where
        K: Clone,
    {
        Iter {
            generation: Arc::clone(&self.generation),
            next_shard: 0,
            batch: Vec::new().into_iter(),
        }
    }
}

/// Another handle on the same generation (one reference count); unbounded, so that
/// `#[derive(Clone)]` works on a generic type holding a snapshot.
impl<K, V, S> Clone for Snapshot<K, V, S> {
    fn clone(&self) -> Self {
        Snapshot {
            generation: Arc::clone(&self.generation),
        }
    }
}

impl<K, V, S> fmt::Debug for Snapshot<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation())
            .field("len", &self.len())
            .finish()
    }
}

impl<K, V, S> IntoIterator for &Snapshot<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    type Item = (K, ValueRef<V>);
    type IntoIter = Iter<K, V, S>;
    fn into_iter(self) -> Iter<K, V, S> {
        self.iter()
    }
}

/// Iterator over a [`Snapshot`]'s entries (`(key, ValueRef)` pairs); see
/// [`Snapshot::iter`]. It holds its generation, so it may outlive the snapshot.
///
/// ```
/// let map: atomic_map::AtomicMap<u32, u32> = (1..=3).map(|i| (i, i * 10)).collect();
/// let iter = map.snapshot().iter(); // the snapshot is gone, the iterator is not
/// map.clear_async();
/// assert_eq!(iter.map(|(_, v)| *v).sum::<u32>(), 60);
/// ```
pub struct Iter<K, V, S = DefaultHashBuilder> {
    generation: Arc<Generation<K, V, S>>,
    next_shard: usize,
    batch: std::vec::IntoIter<(K, ValueRef<V>)>,
}

impl<K, V, S> Iterator for Iter<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    type Item = (K, ValueRef<V>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.batch.next() {
                return Some(entry);
            }
            let store = self.generation.store();
            if self.next_shard >= store.shard_count() {
                return None;
            }
            self.batch = store.collect_shard(self.next_shard).into_iter();
            self.next_shard += 1;
        }
    }
}

impl<K, V, S> fmt::Debug for Iter<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("generation", &self.generation.id())
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}
