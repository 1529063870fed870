//! `Occupied`: the error of [`AtomicMap::try_insert`](crate::AtomicMap::try_insert).

use std::fmt;

use crate::value::ValueRef;

/// Returned by [`AtomicMap::try_insert`](crate::AtomicMap::try_insert) when the key
/// is already mapped: the value found, and the value that was not inserted (given
/// back, never wrapped in a cell).
///
/// ```
/// let map = atomic_map::AtomicMap::new();
/// map.insert("k", 1);
/// let err = map.try_insert("k", 2).unwrap_err();
/// assert_eq!((*err.current, err.not_inserted), (1, 2));
/// ```
pub struct Occupied<V> {
    /// A handle on the value the key maps to.
    pub current: ValueRef<V>,
    /// The value passed to `try_insert`, returned unused.
    pub not_inserted: V,
}

impl<V: fmt::Debug> fmt::Debug for Occupied<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Occupied")
            .field("current", &self.current)
            .field("not_inserted", &self.not_inserted)
            .finish()
    }
}

impl<V: fmt::Debug> fmt::Display for Occupied<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key already mapped to {:?}; not inserted: {:?}",
            self.current, self.not_inserted
        )
    }
}

impl<V: fmt::Debug> std::error::Error for Occupied<V> {}
