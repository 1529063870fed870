//! `Operation` and `Compute`: what [`AtomicMap::compute`](crate::AtomicMap::compute)
//! is asked to do with one entry, and what it did (papaya's model, plus `Keep`).

use crate::value::ValueRef;

/// What the closure of [`AtomicMap::compute`](crate::AtomicMap::compute) asks for,
/// given the entry's current value.
///
/// `T` is what [`Abort`](Operation::Abort) carries back to the caller (`()` when
/// unused).
///
/// ```
/// use atomic_map::{AtomicMap, Operation};
///
/// let limits = AtomicMap::new();
/// limits.insert("tenant-1", 10u32);
/// // Halve a limit, but never below 1: keep the entry (same value) once there.
/// let halve = |n: Option<&u32>| match n {
///     Some(&n) if n > 1 => Operation::<u32>::Insert(n / 2),
///     Some(_) => Operation::Keep,
///     None => Operation::Remove,
/// };
/// for _ in 0..5 {
///     limits.compute("tenant-1", halve);
/// }
/// assert_eq!(limits.get("tenant-1").as_deref(), Some(&1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<V, T = ()> {
    /// Map the key to this new value (insert, or replace the current one; holders
    /// of the old value keep it).
    Insert(V),
    /// Unmap the key (nothing happens if it is absent).
    Remove,
    /// Leave the entry as it is: the same value stays mapped, so holders of it and
    /// later readers share one value (no copy is built).
    Keep,
    /// Leave the entry as it is and hand `T` back to the caller.
    Abort(T),
}

/// What [`AtomicMap::compute`](crate::AtomicMap::compute) did.
///
/// ```
/// use atomic_map::{AtomicMap, Compute, Operation};
///
/// let map = AtomicMap::new();
/// // Insert-if-absent that also reports which case happened.
/// // (`Operation::<_>` names the abort type: its default, `()`.)
/// match map.compute("k", |old| match old {
///     None => Operation::<_>::Insert(1),
///     Some(_) => Operation::Keep,
/// }) {
///     Compute::Inserted(v) => assert_eq!(*v, 1),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug)]
pub enum Compute<V, T = ()> {
    /// The key was absent; this value is now mapped.
    Inserted(ValueRef<V>),
    /// The key's value `old` was replaced by `new`.
    Updated {
        /// The value that was mapped (the table's reference, handed over).
        old: ValueRef<V>,
        /// The value now mapped.
        new: ValueRef<V>,
    },
    /// The key was unmapped; this was its value (the table's reference, handed over).
    Removed(ValueRef<V>),
    /// The entry was left as it was ([`Operation::Keep`], or
    /// [`Operation::Remove`] of an absent key): a handle on the value still
    /// mapped, or `None` if the key is absent.
    Kept(Option<ValueRef<V>>),
    /// The closure returned [`Operation::Abort`]; the entry was left as it was.
    Aborted(T),
}

impl<V, T> Compute<V, T> {
    /// The value mapped once the call returned (`None`: the key is absent, or the
    /// call was aborted).
    ///
    /// ```
    /// use atomic_map::{AtomicMap, Operation};
    ///
    /// let map = AtomicMap::new();
    /// let now = map.compute("n", |old| Operation::<u32>::Insert(old.map_or(1, |n| n + 1)));
    /// assert_eq!(now.into_current().as_deref(), Some(&1));
    /// ```
    pub fn into_current(self) -> Option<ValueRef<V>> {
        match self {
            Compute::Inserted(new) | Compute::Updated { new, .. } => Some(new),
            Compute::Kept(current) => current,
            Compute::Removed(_) | Compute::Aborted(_) => None,
        }
    }
}
