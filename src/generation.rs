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

use crate::reclaim::{Reclaimer, TeardownReport};
use crate::retire_list::{Retirable, RetireNode};
use crate::retired::Retirement;
use crate::store::Store;
use crate::sync::Arc;

/// One version of the map's contents.
pub(crate) struct Generation<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    id: u64,
    store: ManuallyDrop<Store<K, V, S>>,
    /// The node the table will travel in to the reclaimer, allocated with the
    /// generation so that retiring it allocates nothing.
    node: ManuallyDrop<Box<RetireNode<RetiredTable<K, V, S>>>>,
    reclaimer: Arc<Reclaimer>,
}

impl<K, V, S> Generation<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    /// A generation not yet published (see `prepare_publish`).
    pub(crate) fn new(id: u64, store: Store<K, V, S>, reclaimer: &Arc<Reclaimer>) -> Self {
        let node = RetireNode::new(RetiredTable {
            store: None,
            retirement: Arc::new(Retirement::new(reclaimer)),
            published: false,
        });
        Generation {
            id,
            store: ManuallyDrop::new(store),
            node: ManuallyDrop::new(node),
            reclaimer: Arc::clone(reclaimer),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Numbers a generation about to be published (it is unshared until then).
    pub(crate) fn prepare_publish(&mut self, id: u64) {
        self.id = id;
        self.node.payload.published = true;
    }

    pub(crate) fn store(&self) -> &Store<K, V, S> {
        &self.store
    }

    /// What a `Retired` ticket for this generation waits on.
    pub(crate) fn retirement(&self) -> &Arc<Retirement> {
        &self.node.payload.retirement
    }
}

/// The table plus the flag to raise once it is torn down: the reclaimer's job.
pub(crate) struct RetiredTable<K, V, S> {
    /// Filled in when the generation's last reference is dropped.
    store: Option<Store<K, V, S>>,
    /// Shared with `Retired` tickets; marked once the table has been torn down.
    retirement: Arc<Retirement>,
    /// Whether the generation was ever made current. A spare that never was is
    /// not counted among the reclaimed generations when it is torn down.
    published: bool,
}

impl<K, V, S> Retirable for RetiredTable<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    fn len(&self) -> usize {
        self.store.as_ref().map_or(0, Store::len)
    }

    fn teardown(self) -> TeardownReport {
        let mut report = self.store.map(Store::teardown).unwrap_or_default();
        report.retired = self.published;
        self.retirement.mark_torn_down();
        report
    }
}

impl<K, V, S> Drop for Generation<K, V, S>
where
    K: Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Clone + Send + 'static,
{
    /// O(1) and allocation-free: the table moves into the node allocated with the
    /// generation, and the node is linked onto the reclaimer's list. No
    /// `store.len()` here either: it would read every shard lock, lines that readers
    /// were writing a moment ago (about 1 µs on the clearer); the reclaimer counts.
    fn drop(&mut self) {
        // SAFETY: `store` and `node` are taken exactly once, here, and never
        // touched again.
        let (store, mut node) = unsafe {
            (
                ManuallyDrop::take(&mut self.store),
                ManuallyDrop::take(&mut self.node),
            )
        };
        node.payload.store = Some(store);
        Reclaimer::submit(&self.reclaimer, node);
    }
}

/// The read-only accessors of every handle that sees exactly one generation
/// (`Snapshot`, `ReadGuard`), written once. Expands inside an `impl` whose type has a
/// field `generation` that derefs to a `Generation`; `$get` names the retained lookup.
macro_rules! one_generation_reads {
    ($get:ident) => {
        /// A retained handle on the value for `key` in this generation (one atomic
        /// increment); it outlives the handle it came from.
        pub fn $get<Q>(&self, key: &Q) -> Option<ValueRef<V>>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.generation.store().get_retained(key)
        }

        /// Whether this generation maps `key`.
        pub fn contains_key<Q>(&self, key: &Q) -> bool
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.generation.store().contains_key(key)
        }

        /// Number of entries in this generation (sums the shards).
        pub fn len(&self) -> usize {
            self.generation.store().len()
        }

        /// Whether this generation is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Id of this generation.
        pub fn generation(&self) -> u64 {
            self.generation.id()
        }
    };
}
pub(crate) use one_generation_reads;
