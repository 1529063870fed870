//! `TryReserveError`: the error of [`AtomicMap::try_reserve`](crate::AtomicMap::try_reserve).

use std::fmt;

/// Returned by [`AtomicMap::try_reserve`](crate::AtomicMap::try_reserve) when the
/// room asked for does not fit in the address space: a shard's slots for its
/// share of it would take more than `isize::MAX` bytes. The map is left as it was.
///
/// ```
/// let map = atomic_map::AtomicMap::<u64, u64>::new();
/// let err = map.try_reserve(usize::MAX).unwrap_err();
/// assert_eq!(err.additional(), usize::MAX);
/// assert_eq!(map.capacity(), 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryReserveError {
    additional: usize,
}

impl TryReserveError {
    pub(crate) fn new(additional: usize) -> Self {
        TryReserveError { additional }
    }

    /// The `additional` entries that were asked for.
    pub fn additional(&self) -> usize {
        self.additional
    }
}

impl fmt::Display for TryReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity overflow: room for {} more entries does not fit in memory",
            self.additional
        )
    }
}

impl std::error::Error for TryReserveError {}
