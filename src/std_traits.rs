//! The std collection traits that copy, compare or build a map's contents:
//! `Clone`, `PartialEq`/`Eq` (of maps and of snapshots), `Extend`, `FromIterator`
//! and `From<[(K, V); N]>`.

use std::hash::{BuildHasher, Hash};

use crate::hasher::DefaultHashBuilder;
use crate::map::AtomicMap;
use crate::read::ReadGuard;
use crate::snapshot::Snapshot;

/// A new map with a clone of each entry of this one's current generation, built
/// like it: a clone of its hasher (so a key hashes alike in both), its shard
/// count, its settings, and its reclaimer, shared (a map in
/// [`ReclaimMode::Manual`](crate::ReclaimMode::Manual) and its clone are
/// reclaimed by the same calls). The entries are those of a snapshot of the
/// current generation ([`Snapshot::iter`]: copied a shard at a time, so with
/// writers running an entry written during the copy may or may not be in it; a
/// clear during the copy does not change what is copied); the clone starts as
/// generation 0, with room for them. Values are cloned, not shared: the two maps'
/// handles are independent. No epoch is pinned while the values are cloned.
///
/// ```
/// let map: atomic_map::AtomicMap<&str, Vec<u8>> = [("a", vec![1]), ("b", vec![2])].into();
/// let copy = map.clone();
/// map.insert("c", vec![3]);
/// assert_eq!(copy.len(), 2);
/// assert_eq!(copy.get("a").as_deref(), Some(&vec![1]));
/// assert!(!atomic_map::ValueRef::ptr_eq(&copy.get("a").unwrap(), &map.get("a").unwrap()));
/// ```
impl<K, V, S> Clone for AtomicMap<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn clone(&self) -> Self {
        let snapshot = self.snapshot();
        let copy = self.builder_like().capacity(snapshot.len()).build();
        for (key, value) in snapshot.iter() {
            drop(copy.insert(key, V::clone(&value)));
        }
        copy
    }
}

/// Whether two generations hold the same keys, each mapped to equal values,
/// read under one guard each.
fn same_entries<K, V, S1, S2>(a: &ReadGuard<K, V, S1>, b: &ReadGuard<K, V, S2>) -> bool
where
    K: Eq + Hash + Send + Sync + 'static,
    V: PartialEq + Send + Sync + 'static,
    S1: BuildHasher + Clone + Send + Sync + 'static,
    S2: BuildHasher + Clone + Send + Sync + 'static,
{
    a.len() == b.len()
        && a.iter()
            .all(|(key, value)| b.get_borrowed(key) == Some(value))
}

/// `PartialEq` (entry by entry, under one guard of each side: `same_entries`) and
/// `Eq` for a type with a `pin()` giving a `ReadGuard`, each with its own docs.
macro_rules! compare_by_entries {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        impl<K, V, S> PartialEq for $ty<K, V, S>
        where
            K: Eq + Hash + Send + Sync + 'static,
            V: PartialEq + Send + Sync + 'static,
            S: BuildHasher + Clone + Send + Sync + 'static,
        {
            fn eq(&self, other: &Self) -> bool {
                same_entries(&self.pin(), &other.pin())
            }
        }

        impl<K, V, S> Eq for $ty<K, V, S>
        where
            K: Eq + Hash + Send + Sync + 'static,
            V: Eq + Send + Sync + 'static,
            S: BuildHasher + Clone + Send + Sync + 'static,
        {
        }
    };
}

compare_by_entries! {
    /// Two maps are equal when their current generations hold the same keys, each
    /// mapped to equal values (as for `HashMap`: order, capacity, generation numbers
    /// and hashers do not count).
    ///
    /// With writers running on either map the answer is racy, as
    /// [`len`](AtomicMap::len) is: each map is read under one guard, whose
    /// generation a clear cannot change, but a write to it during the comparison may
    /// or may not be seen. Compare two [`Snapshot`]s taken while nothing writes for
    /// an answer about one moment. The two guards stay pinned for the whole
    /// comparison (and `V::eq` runs under them), which holds up every map's
    /// reclamation meanwhile, as any [`ReadGuard`] does: meant for tests and small
    /// maps, not for comparing large ones on a hot path.
    ///
    /// ```
    /// let a: atomic_map::AtomicMap<u32, &str> = [(1, "one"), (2, "two")].into();
    /// let b: atomic_map::AtomicMap<u32, &str> = [(2, "two"), (1, "one")].into();
    /// assert_eq!(a, b);
    /// b.insert(2, "deux");
    /// assert_ne!(a, b);
    /// ```
    AtomicMap
}

compare_by_entries! {
    /// Two snapshots are equal when their generations hold the same keys, each
    /// mapped to equal values (racy only while their generations are written to:
    /// a retired generation is not, once its last writer is done).
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u32, u32> = [(1, 10)].into();
    /// let before = map.snapshot();
    /// assert_eq!(before, map.snapshot()); // the same generation
    /// map.replace([(1, 10)]);
    /// assert_eq!(before, map.snapshot()); // another generation, the same entries
    /// map.clear_async();
    /// assert_ne!(before, map.snapshot());
    /// ```
    Snapshot
}

impl<K, V, S> Extend<(K, V)> for AtomicMap<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Inserts each pair into the current generation, as `Extend for &AtomicMap`.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        (&*self).extend(iter)
    }
}

impl<K, V, S> Extend<(K, V)> for &AtomicMap<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Inserts each pair into the current generation through a shared reference,
    /// so a map behind an `Arc` can be extended (each insert on its own: a
    /// concurrent clear may retire some of them).
    ///
    /// Room is reserved first from the iterator's `size_hint` (its lower bound;
    /// half of it if the map has entries, as `HashMap::extend` does, since some
    /// keys may be there already), so a `collect` of a sized iterator rehashes
    /// no shard on the way.
    ///
    /// ```
    /// let map = std::sync::Arc::new(atomic_map::AtomicMap::new());
    /// (&*map).extend([(1, "a"), (2, "b")]);
    /// assert_eq!(map.len(), 2);
    /// ```
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        let hint = iter.size_hint().0;
        let room = if self.is_empty() {
            hint
        } else {
            hint.div_ceil(2)
        };
        // A hint past memory is the iterator's mistake, not a reason to panic
        // before the first insert: the inserts then grow the table as usual.
        let _ = self.try_reserve(room);
        for (key, value) in iter {
            drop(self.insert(key, value));
        }
    }
}

impl<K, V> FromIterator<(K, V)> for AtomicMap<K, V, DefaultHashBuilder>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        map.extend(iter);
        map
    }
}

/// A map of the array's pairs (a later pair's value replaces an earlier one's
/// for the same key), as `HashMap::from` makes.
///
/// ```
/// let map = atomic_map::AtomicMap::from([("a", 1), ("b", 2), ("a", 3)]);
/// assert_eq!(map.len(), 2);
/// assert_eq!(*map.get("a").unwrap(), 3);
/// ```
impl<K, V, const N: usize> From<[(K, V); N]> for AtomicMap<K, V, DefaultHashBuilder>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn from(entries: [(K, V); N]) -> Self {
        Self::from_iter(entries)
    }
}
