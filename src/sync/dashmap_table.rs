//! The production per-generation table: an adapter over `dashmap::DashMap` exposing
//! exactly what `Store` uses. Every method takes and releases the shard lock it
//! needs before returning: no `dashmap::mapref::Ref` ever leaves this file.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use dashmap::{DashMap, Entry};

use crate::store::Update;

/// A sharded hash table whose shard locks are held only inside its methods.
pub(crate) struct Table<K, V, S> {
    map: DashMap<K, V, S>,
}

impl<K, V, S> Table<K, V, S>
where
    K: Eq + Hash,
    S: BuildHasher + Clone,
{
    /// `shards` must be a power of two, at least 2 (the builder ensures it).
    pub(crate) fn new(hasher: S, shards: usize) -> Self {
        Table {
            map: DashMap::with_hasher_and_shard_amount(hasher, shards),
        }
    }

    /// Runs `f` on the value for `key` under the shard's read lock.
    ///
    /// The same lookup as `DashMap::get` (same hash, shard and probe), written out so
    /// that a read compiles to one flat function wherever it is instantiated.
    /// `DashMap::get` goes through `_get` and `hash_u64`, which the optimiser inlines
    /// or not depending on the crate that instantiates them; in `atomic-map-ffi` it
    /// did not, and `amap_read_get` measured 1.6×–2.1× a Rust pinned get where the
    /// flat form measures 1.2×–1.5× (`docs/C-API.md`). Hence `#[inline(always)]` on
    /// every layer of the read path: `ReadGuard::get`, `Store::get_raw`, this.
    #[inline(always)]
    pub(crate) fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.map.hasher().hash_one(key);
        let shard = self.map.determine_shard(hash as usize);
        let table = self.map.shards()[shard].read();
        table
            .get(hash, |(k, _)| key == k.borrow())
            .map(|(_, value)| f(value.get()))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn insert(&self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key).map(|(_, value)| value)
    }

    /// Applies what `f` decides for the entry of `key` (`None`: no entry), under
    /// the shard's write lock. Returns the value replaced or removed.
    pub(crate) fn update(&self, key: K, f: impl FnOnce(Option<&V>) -> Update<V>) -> Option<V> {
        match self.map.entry(key) {
            Entry::Occupied(mut entry) => match f(Some(entry.get())) {
                Update::Keep => None,
                Update::Set(new) => Some(entry.insert(new)),
                Update::Remove => Some(entry.remove_entry().1),
            },
            Entry::Vacant(entry) => {
                if let Update::Set(new) = f(None) {
                    entry.insert(new);
                }
                None
            }
        }
    }

    /// Removes the entry for `key` if `f` approves it, under the shard's write lock.
    pub(crate) fn remove_if<Q>(&self, key: &Q, f: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove_if(key, f).map(|(_, value)| value)
    }

    /// Keeps the entries `f` approves, one shard at a time under its write lock.
    pub(crate) fn retain(&self, f: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(f)
    }

    /// A table for about `capacity` entries.
    pub(crate) fn with_capacity(capacity: usize, hasher: S, shards: usize) -> Self {
        Table {
            map: DashMap::with_capacity_and_hasher_and_shard_amount(capacity, hasher, shards),
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.map.shards().len()
    }

    /// Runs `f` on every entry of shard `shard`, under its read lock.
    pub(crate) fn read_shard(&self, shard: usize, mut f: impl FnMut(&K, &V)) {
        let table = self.map.shards()[shard].read();
        // Soundness: the read guard keeps the raw table alive and unmodified for the
        // whole loop, so the `RawIter` does not outlive it and every bucket it yields
        // is a full one of this table; the borrows end with each call to `f`, inside
        // the guard's scope.
        // SAFETY: the read guard keeps the table alive and unmodified (above).
        unsafe {
            for bucket in table.iter() {
                let (key, value) = bucket.as_ref();
                f(key, value.get());
            }
        }
    }

    /// Consumes the table, handing every entry to `f`.
    pub(crate) fn drain(self, mut f: impl FnMut(K, V)) {
        for (key, value) in self.map {
            f(key, value);
        }
    }
}
