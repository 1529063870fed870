//! `Generation`: one published version of the map's contents.
//!
//! A generation is its id, its table and a completion flag shared with the
//! [`Retired`](crate::Retired) tickets that wait for it. It is reference-counted
//! (`Arc`): the map's slot, arc-swap guards of pinned readers, snapshots and
//! in-flight writers each hold it. Dropping the last reference costs O(1): `Drop`
//! hands the table to the reclaimer instead of walking it (the trap of a plain
//! `Arc<HashMap>`, whose last holder pays the whole teardown).

use std::hash::{BuildHasher, Hash};
use std::mem::ManuallyDrop;

use crate::reclaim::Reclaimer;
use crate::store::Store;
use crate::sync::{Arc, AtomicBool};

/// One version of the map's contents.
pub(crate) struct Generation<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    id: u64,
    store: ManuallyDrop<Store<K, V, S>>,
    /// Set (Release) once the table has been torn down.
    torn_down: Arc<AtomicBool>,
    reclaimer: Arc<Reclaimer>,
}

impl<K, V, S> Generation<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    pub(crate) fn new(id: u64, store: Store<K, V, S>, reclaimer: &Arc<Reclaimer>) -> Self {
        Generation {
            id,
            store: ManuallyDrop::new(store),
            torn_down: Arc::new(AtomicBool::new(false)),
            reclaimer: Arc::clone(reclaimer),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Renumbers a generation that has not been published yet.
    pub(crate) fn set_id(&mut self, id: u64) {
        self.id = id;
    }

    pub(crate) fn store(&self) -> &Store<K, V, S> {
        &self.store
    }

    /// The flag a `Retired` ticket waits on.
    pub(crate) fn torn_down_flag(&self) -> &Arc<AtomicBool> {
        &self.torn_down
    }
}

/// The table plus the flag to raise once it is torn down: the reclaimer's job.
struct RetiredTable<K, V, S> {
    store: Store<K, V, S>,
    torn_down: Arc<AtomicBool>,
}

impl<K, V, S> crate::reclaim::Teardown for RetiredTable<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    fn teardown(self: Box<Self>) -> crate::reclaim::TeardownReport {
        let RetiredTable { store, torn_down } = *self;
        let report = store.teardown();
        // Release: pairs with the Acquire load in `Reclaimer::wait_for` and
        // `Retired::is_reclaimed`: a waiter that sees the flag sees the teardown.
        torn_down.store(true, crate::sync::Ordering::Release);
        report
    }
}

impl<K, V, S> Drop for Generation<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    fn drop(&mut self) {
        // SAFETY: `store` is taken exactly once, here, and never touched again.
        let store = unsafe { ManuallyDrop::take(&mut self.store) };
        let entries = store.len();
        let job = RetiredTable {
            store,
            torn_down: Arc::clone(&self.torn_down),
        };
        self.reclaimer.submit(Box::new(job), entries);
    }
}
