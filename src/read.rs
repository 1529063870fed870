//! `ReadGuard`: a short read section pinned on one generation.

use crate::hasher::DefaultHashBuilder;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ptr::NonNull;

use crate::generation::{Generation, one_generation_reads};
use crate::sync::{Arc, epoch};
use crate::table::{Entries, SlotPointer};
use crate::value::{TableRef, ValueRef};

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
pub struct ReadGuard<K, V, S = DefaultHashBuilder> {
    generation: PinnedGeneration<K, V, S>,
    /// Declared after `generation`; the order of the two drops does not matter.
    epoch: epoch::Guard,
}

/// The generation a [`ReadGuard`] reads: reached through the map's `pinned`
/// pointer under the guard's epoch pin (no count), or a snapshot's, whose count the
/// guard then holds too (`keep`).
struct PinnedGeneration<K, V, S> {
    generation: NonNull<Generation<K, V, S>>,
    _keep: Option<Arc<Generation<K, V, S>>>,
}

impl<K, V, S> std::ops::Deref for PinnedGeneration<K, V, S> {
    type Target = Generation<K, V, S>;

    fn deref(&self) -> &Generation<K, V, S> {
        // Soundness: a `PinnedGeneration` lives only inside a `ReadGuard`, whose
        // epoch guard (or the count in `_keep`) keeps the generation alive: the
        // contract of `ReadGuard::new`.
        // SAFETY: the enclosing guard keeps the generation alive (above).
        unsafe { self.generation.as_ref() }
    }
}

impl<K, V, S> ReadGuard<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// `epoch` must be pinned; that it was pinned before each lookup's read of a cell
    /// pointer, which is what `get_borrowed` needs, holds for every lookup through
    /// the guard.
    ///
    /// # Safety
    /// `generation` stays alive while `epoch` is held: it was loaded from the map's
    /// `pinned` pointer under `epoch` (`AtomicMap::pin`), or `keep` holds a count on
    /// it (`Snapshot::pin`, which pins long after its generation was loaded).
    pub(crate) unsafe fn new(
        generation: NonNull<Generation<K, V, S>>,
        keep: Option<Arc<Generation<K, V, S>>>,
        epoch: epoch::Guard,
    ) -> Self {
        ReadGuard {
            generation: PinnedGeneration {
                generation,
                _keep: keep,
            },
            epoch,
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
    // crate: see `Table::get`.
    #[inline(always)]
    pub fn get_borrowed<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let cell = self.generation.store().get_raw(key, &self.epoch)?;
        // Soundness: `borrow_raw`'s contract: `cell` was just read from this guard's
        // generation, whose epoch guard was pinned when the guard was built (`new`),
        // before this lookup, and both guards live as long as `&self`. A value
        // unlinked after the lookup is destroyed only after a grace period past this
        // epoch guard; the generation is never torn down under its guard.
        // SAFETY: `cell` read under this guard's epoch pin and generation guard (above).
        Some(unsafe { ValueRef::borrow_raw(cell) })
    }

    /// Borrows the entry for `key`: the key as the map stores it, with its value,
    /// both valid until the guard drops; no reference count is touched. The stored
    /// key is the one of the entry's latest insert (an insert that replaces a value
    /// replaces its key too, where `HashMap::insert` keeps the old key: a key is
    /// never written while readers may be comparing it).
    ///
    /// ```
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert("tenant-7".to_string(), 70);
    /// let guard = map.pin();
    /// let (key, value): (&String, &i32) = guard.get_key_value("tenant-7").unwrap();
    /// map.remove("tenant-7"); // still readable through `guard`
    /// assert_eq!((key.as_str(), *value), ("tenant-7", 70));
    /// assert_eq!(guard.get_key_value("tenant-8"), None);
    /// ```
    #[inline]
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let cell = self.generation.store().get_entry_raw(key, &self.epoch)?;
        // Soundness: as in `get_borrowed`: `cell` was read from this guard's
        // generation under its epoch pin, both of which live as long as `&self`;
        // a cell's key is never written after it is made and is dropped only with
        // the cell (`SlotPointer::key`'s contract).
        // SAFETY: `cell` read under this guard's epoch pin and generation (above).
        let key = unsafe { <TableRef<K, V> as SlotPointer>::key(cell) };
        // SAFETY: as for the key, `borrow_raw`'s contract (above).
        Some((key, unsafe { ValueRef::borrow_raw(cell.cast()) }))
    }

    /// Iterates over this guard's generation as `(&key, &value)` pairs, borrowed
    /// until the guard drops: nothing is cloned, no reference count is touched and
    /// no lock is held, so the loop body may write to the map, even to the entries
    /// it is visiting ([`Snapshot::iter`](crate::Snapshot::iter) is the owned,
    /// long-lived twin).
    ///
    /// # Consistency
    /// The iteration walks this guard's generation shard by shard, slot by slot,
    /// while writers may change it (clears and replaces never do: they publish
    /// another generation, which the iteration never sees). An entry present for
    /// the whole walk is yielded exactly once, with the value it had when its slot
    /// was passed; an entry inserted, removed or replaced during the walk may or
    /// may not be yielded, in either state; a key is never yielded twice, except
    /// that a key removed and inserted again during the walk may be yielded once
    /// for each. Everything yielded stays readable until the guard drops, even if
    /// it is removed meanwhile. Like a `HashMap`'s, the order is unspecified.
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u32, String> =
    ///     (1..=3).map(|i| (i, i.to_string())).collect();
    /// let guard = map.pin();
    /// let mut seen = Vec::new();
    /// for (key, value) in guard.iter() {
    ///     map.remove(key); // no lock is held: writes are fine, even to this entry
    ///     seen.push((key, value));
    /// }
    /// map.clear_async();
    /// seen.sort();
    /// // Every borrowed key and value is still readable: the guard pins them.
    /// assert_eq!(seen, [(&1, &"1".to_string()), (&2, &"2".to_string()), (&3, &"3".to_string())]);
    /// ```
    ///
    /// A borrowed entry cannot outlive its guard:
    ///
    /// ```compile_fail
    /// let map = atomic_map::AtomicMap::new();
    /// map.insert(1, String::from("one"));
    /// let values: Vec<&String> = {
    ///     let guard = map.pin();
    ///     guard.iter().map(|(_, v)| v).collect()
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
    /// let values: Vec<&String> = guard.iter().map(|(_, v)| v).collect();
    /// println!("{values:?}");
    /// ```
    pub fn iter(&self) -> BorrowedIter<'_, K, V> {
        BorrowedIter {
            entries: self.generation.store().entries(&self.epoch),
        }
    }

    /// The keys of this guard's generation, borrowed (see [`iter`](Self::iter)
    /// for what a walk sees of concurrent writes).
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u8, ()> = [(1, ()), (2, ())].into_iter().collect();
    /// let guard = map.pin();
    /// let mut keys: Vec<u8> = guard.keys().copied().collect();
    /// keys.sort();
    /// assert_eq!(keys, [1, 2]);
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(key, _)| key)
    }

    /// The values of this guard's generation, borrowed (see [`iter`](Self::iter)
    /// for what a walk sees of concurrent writes).
    ///
    /// ```
    /// let map: atomic_map::AtomicMap<u8, u32> = [(1, 10), (2, 20)].into_iter().collect();
    /// let guard = map.pin();
    /// assert_eq!(guard.values().sum::<u32>(), 30);
    /// ```
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, value)| value)
    }

    one_generation_reads!();

    /// Runs `f` under this guard's own epoch pin, for the lookups of
    /// `one_generation_reads!` (a second pin inside the guard's would only nest).
    #[inline(always)]
    fn with_read_pin<R>(&self, f: impl FnOnce(&epoch::Guard) -> R) -> R {
        f(&self.epoch)
    }
}

/// `for (key, value) in &guard` walks the guard's generation: see
/// [`ReadGuard::iter`].
///
/// ```
/// let map: atomic_map::AtomicMap<u8, u32> = [(1, 10), (2, 20)].into_iter().collect();
/// let guard = map.pin();
/// let mut total = 0;
/// for (_, value) in &guard {
///     total += value;
/// }
/// assert_eq!(total, 30);
/// ```
impl<'g, K, V, S> IntoIterator for &'g ReadGuard<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    type Item = (&'g K, &'g V);
    type IntoIter = BorrowedIter<'g, K, V>;

    fn into_iter(self) -> BorrowedIter<'g, K, V> {
        self.iter()
    }
}

/// Iterator over a [`ReadGuard`]'s generation, yielding `(&key, &value)` pairs
/// borrowed from the guard; see [`ReadGuard::iter`].
///
/// ```
/// let map: atomic_map::AtomicMap<u8, u32> = [(1, 10), (2, 20)].into_iter().collect();
/// let guard = map.pin();
/// let sum: u32 = guard.iter().map(|(_, v)| *v).sum();
/// assert_eq!(sum, 30);
/// ```
pub struct BorrowedIter<'g, K: 'g, V: 'g> {
    entries: Entries<'g, TableRef<K, V>>,
}

impl<'g, K: 'g, V: 'g> Iterator for BorrowedIter<'g, K, V> {
    type Item = (&'g K, &'g V);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, cell) = self.entries.next()?;
        // Soundness: `borrow_raw`'s contract, as in `ReadGuard::get_borrowed`: `cell`
        // was loaded from the guard's generation under the guard's epoch pin, and
        // `'g` borrows the guard, which holds both the pin and the generation.
        // SAFETY: loaded under the guard's pin, generation held for `'g` (above).
        Some((key, unsafe { ValueRef::borrow_raw(cell.cast()) }))
    }
}

impl<K, V> std::iter::FusedIterator for BorrowedIter<'_, K, V> {}

impl<K, V> fmt::Debug for BorrowedIter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BorrowedIter").finish_non_exhaustive()
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
