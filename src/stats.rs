//! `Stats`: what the map holds and what is waiting to be reclaimed.

/// A sample of a map's generation and garbage counters, from
/// [`AtomicMap::stats`](crate::AtomicMap::stats).
///
/// The fields are read one by one without a common lock, so under concurrent
/// activity they are a racy sample; once the map is quiet they are exact.
///
/// ```
/// use atomic_map::{Builder, ReclaimMode};
///
/// let map = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
/// map.insert(1u32, 10u32);
/// map.insert(2, 20);
/// map.clear_async();
/// let before = map.stats();
/// assert_eq!(before.retired_generations, 1); // waiting for `reclaim`
/// map.reclaim();
/// let after = map.stats();
/// assert_eq!(after.retired_generations, 0);
/// assert_eq!(after.pending_values, 0);
/// assert_eq!(after.reclaimed_values, 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Id of the current generation (0 for a new map; each clear or replace adds 1).
    pub generation: u64,
    /// Generations swapped out (or left by the map's drop) and not yet torn down:
    /// still pinned by a reader, snapshot or writer, or waiting for the reclaimer.
    pub retired_generations: usize,
    /// Values whose destruction has been scheduled and has not happened yet: values
    /// whose last reference is gone (doomed: waiting for their grace period, or for
    /// the reclaimer's next pass to destroy them), plus the
    /// entries of generations the reclaimer is walking. (Entries of generations
    /// still waiting for the reclaimer are not counted here but show up in
    /// `retired_generations`, so that the clearer never has to count them.)
    pub pending_values: usize,
    /// Generations torn down since the map was built.
    pub reclaimed_generations: u64,
    /// Values destroyed since the map was built.
    pub reclaimed_values: u64,
    /// Key or value destructors that panicked (each panic was contained).
    pub destructor_panics: u64,
}
