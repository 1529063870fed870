//! `ReadGuard`: a short read section pinned on one generation.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ptr::NonNull;

use crate::generation::{Generation, one_generation_reads};
use crate::sync::{SlotGuard, epoch};
use crate::value::{ValueCell, ValueRef};

/// A pinned read section on one generation, from [`AtomicMap::pin`](crate::AtomicMap::pin)
/// or [`Snapshot::pin`](crate::Snapshot::pin).
///
/// It holds the generation (so no clear can tear it) and an epoch guard (so no value
/// it can reach is freed, even one removed meanwhile). Reads borrow values for as
/// long as the guard lives, without touching any reference count.
///
/// The guard is neither `Send` nor `Sync`: it belongs to the thread that pinned.
///
/// ```compile_fail
/// // A borrowed value cannot outlive its guard:
/// let map = atomic_map::AtomicMap::new();
/// map.insert(1, String::from("one"));
/// let v: &String = {
///     let guard = map.pin();
///     guard.get_borrowed(&1).unwrap()
/// };
/// println!("{v}");
/// ```
///
/// The twin that compiles keeps the guard alive while the borrow is used:
///
/// ```
/// let map = atomic_map::AtomicMap::new();
/// map.insert(1, String::from("one"));
/// let guard = map.pin();
/// let v: &String = guard.get_borrowed(&1).unwrap();
/// println!("{v}");
/// ```
///
/// ```compile_fail
/// // A guard cannot move to another thread:
/// let map = atomic_map::AtomicMap::<u8, u8>::new();
/// let guard = map.pin();
/// std::thread::spawn(move || drop(guard));
/// ```
pub struct ReadGuard<K, V, S = RandomState> {
    generation: SlotGuard<Generation<K, V, S>>,
    /// Declared after `generation`; the order of the two drops does not matter.
    _epoch: epoch::Guard,
}

impl<K, V, S> ReadGuard<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// `epoch` must be pinned; that it was pinned before each lookup's read of a cell
    /// pointer, which is what `get_borrowed` needs, holds for every lookup through
    /// the guard. The order of the pin and the load of `generation` does not matter
    /// (`Snapshot::pin` pins long after its generation was loaded).
    pub(crate) fn new(generation: SlotGuard<Generation<K, V, S>>, epoch: epoch::Guard) -> Self {
        ReadGuard {
            generation,
            _epoch: epoch,
        }
    }

    /// Borrows the value for `key`, valid until the guard drops: no reference
    /// count is touched (the fastest read; [`get`](Self::get) gives a handle that
    /// outlives the guard instead).
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("k".to_string(), 5);
    /// let guard = map.pin();
    /// let five: &i32 = guard.get_borrowed("k").unwrap();
    /// map.remove("k"); // removed from the table, but still readable through `guard`
    /// assert_eq!(*five, 5);
    /// ```
    // Inlined down to the table, so that the read is one flat function in every
    // crate: see `Table::read`.
    #[inline(always)]
    pub fn get_borrowed<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let cell = self.generation.store().get_raw(key)?;
        // Soundness: `borrow_raw`'s contract: `cell` was just read from this guard's
        // generation, whose epoch guard was pinned when the guard was built (`new`),
        // before this lookup, and both guards live as long as `&self`. A value
        // unlinked after the lookup is destroyed only after a grace period past this
        // epoch guard; the generation is never torn down under its guard.
        // SAFETY: `cell` read under this guard's epoch pin and generation guard (above).
        Some(unsafe { ValueRef::borrow_raw(cell) })
    }

    /// Iterates over this guard's generation as `(key, &value)` pairs: keys cloned,
    /// values borrowed until the guard drops, no reference count touched (the
    /// borrowing twin of [`Snapshot::iter`](crate::Snapshot::iter), which retains
    /// each value instead).
    ///
    /// The iterator copies one shard at a time (each key cloned, each value's
    /// address taken) under that shard's read lock and yields from the copy, so no
    /// lock is held while the loop body runs: the body may write to the map, even
    /// to the entries it is visiting. Entries written to this generation while the
    /// iteration runs may or may not be seen (each shard is seen as of the moment it
    /// was copied); entries of any other generation never are. A value removed after
    /// its shard was copied is still yielded, and stays readable until the guard
    /// drops, like a [`get_borrowed`](Self::get_borrowed) borrow.
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u32, String> =
    ///     (1..=3).map(|i| (i, i.to_string())).collect();
    /// let guard = map.pin();
    /// let mut seen = Vec::new();
    /// for (key, value) in guard.iter_borrowed() {
    ///     map.remove(&key); // no lock is held: writes are fine, even to this entry
    ///     seen.push((key, value));
    /// }
    /// map.clear_async();
    /// seen.sort();
    /// // Every borrowed value is still readable: the guard pins them.
    /// assert_eq!(seen, [(1, &"1".to_string()), (2, &"2".to_string()), (3, &"3".to_string())]);
    /// ```
    ///
    /// A borrowed value cannot outlive its guard:
    ///
    /// ```compile_fail
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, String::from("one"));
    /// let values: Vec<&String> = {
    ///     let guard = map.pin();
    ///     guard.iter_borrowed().map(|(_, v)| v).collect()
    /// };
    /// println!("{values:?}");
    /// ```
    ///
    /// The twin that compiles keeps the guard alive while the borrows are used:
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, String::from("one"));
    /// let guard = map.pin();
    /// let values: Vec<&String> = guard.iter_borrowed().map(|(_, v)| v).collect();
    /// println!("{values:?}");
    /// ```
    pub fn iter_borrowed(&self) -> IterBorrowed<'_, K, V, S>
    where
        K: Clone,
    {
        IterBorrowed {
            guard: self,
            next_shard: 0,
            batch: Vec::new().into_iter(),
        }
    }

    one_generation_reads!();
}

/// Iterator over a [`ReadGuard`]'s generation, yielding `(key, &value)` pairs
/// borrowed from the guard; see [`ReadGuard::iter_borrowed`].
///
/// ```
/// let map: atomic_map::AtomicMap<u8, u32> = [(1, 10), (2, 20)].into_iter().collect();
/// let guard = map.pin();
/// let sum: u32 = guard.iter_borrowed().map(|(_, v)| *v).sum();
/// assert_eq!(sum, 30);
/// ```
pub struct IterBorrowed<'g, K, V, S = RandomState> {
    guard: &'g ReadGuard<K, V, S>,
    next_shard: usize,
    /// The current shard's entries: key clones and cell addresses, copied under
    /// the shard's read lock (`Store::collect_shard_raw`).
    batch: std::vec::IntoIter<(K, NonNull<ValueCell<V>>)>,
}

impl<'g, K, V, S> Iterator for IterBorrowed<'g, K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    type Item = (K, &'g V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, cell)) = self.batch.next() {
                // `cell` was read from `self.guard`'s generation, under the shard's
                // read lock, while the table held a reference to it, so the cell was
                // alive when read, and its last release (if any) comes after this
                // read, hence after the guard's epoch pin (taken before its
                // generation was loaded: `ReadGuard::new`): the cell is destroyed
                // only after a grace period past that pin. The generation cannot be
                // torn down under the guard's `SlotGuard`. Both live for `'g`, the
                // borrow of the guard this iterator holds. The same invariant as
                // `ReadGuard::get_borrowed`, whose lock is also released before use.
                // SAFETY: the cell outlives `'g` (above: epoch guard + generation
                // guard of `self.guard`, established in `ReadGuard::new`).
                return Some((key, unsafe { ValueRef::borrow_raw(cell) }));
            }
            let store = self.guard.generation.store();
            if self.next_shard >= store.shard_count() {
                return None;
            }
            self.batch = store.collect_shard_raw(self.next_shard).into_iter();
            self.next_shard += 1;
        }
    }
}

impl<K, V, S> fmt::Debug for IterBorrowed<'_, K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterBorrowed")
            .field("generation", &self.guard.generation())
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> fmt::Debug for ReadGuard<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}
