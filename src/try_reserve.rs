//! `TryReserveError`: the error of [`AtomicMap::try_reserve`](crate::AtomicMap::try_reserve).

use std::fmt;

/// Returned by [`AtomicMap::try_reserve`](crate::AtomicMap::try_reserve) when the
/// room asked for cannot be had: the shards' arrays for it would take more than
/// `isize::MAX` bytes (refused before anything is changed), or the system refused
/// a shard's array (shards reserved before it keep their room; the map is
/// otherwise as it was).
///
/// ```
/// let map = atomic_map::AtomicMap::<u64, u64>::new();
/// let err = map.try_reserve(usize::MAX).unwrap_err();
/// assert_eq!(err.additional(), usize::MAX);
/// assert!(err.is_capacity_overflow());
/// assert_eq!(map.capacity(), 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryReserveError {
    additional: usize,
    /// `None`: the arrays' sizes overflow; `Some(bytes)`: an array of `bytes` was
    /// refused.
    refused_bytes: Option<usize>,
}

impl TryReserveError {
    /// The arrays' sizes would not fit in `isize`.
    pub(crate) fn capacity_overflow(additional: usize) -> Self {
        TryReserveError {
            additional,
            refused_bytes: None,
        }
    }

    /// The system refused an array of `bytes`.
    pub(crate) fn refused(additional: usize, bytes: usize) -> Self {
        TryReserveError {
            additional,
            refused_bytes: Some(bytes),
        }
    }

    /// The `additional` entries that were asked for.
    pub fn additional(&self) -> usize {
        self.additional
    }

    /// Whether the room could not even be counted (past `isize::MAX` bytes),
    /// rather than refused by the system.
    pub fn is_capacity_overflow(&self) -> bool {
        self.refused_bytes.is_none()
    }
}

impl fmt::Display for TryReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.refused_bytes {
            None => write!(
                f,
                "capacity overflow: room for {} more entries does not fit in memory",
                self.additional
            ),
            Some(bytes) => write!(
                f,
                "memory allocation of {bytes} bytes failed: room for {} more entries",
                self.additional
            ),
        }
    }
}

impl std::error::Error for TryReserveError {}
