//! `ReadGuard`: a short read section pinned on one generation.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::generation::{Generation, one_generation_reads};
use crate::sync::{SlotGuard, epoch};
use crate::value::ValueRef;

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
        // SAFETY: `borrow_raw`'s contract: `cell` was just read from this guard's
        // generation, whose epoch guard was pinned when the guard was built (`new`),
        // before this lookup, and both guards live as long as `&self`. A value
        // unlinked after the lookup is destroyed only after a grace period past this
        // epoch guard; the generation is never torn down under its guard.
        Some(unsafe { ValueRef::borrow_raw(cell) })
    }

    one_generation_reads!();
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
