//! Loom stand-in for the per-generation table: shards of `std` hash maps behind
//! loom `RwLock`s, with the same methods and the same locking discipline as the
//! `dashmap` adapter (a shard lock held only inside a method).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use loom::sync::RwLock;

use crate::store::Update;

/// A sharded hash table whose shard locks are held only inside its methods.
pub(crate) struct Table<K, V, S> {
    hasher: S,
    shards: Vec<RwLock<HashMap<K, V, S>>>,
}

impl<K, V, S> Table<K, V, S>
where
    K: Eq + Hash,
    S: BuildHasher + Clone,
{
    pub(crate) fn new(hasher: S, shards: usize) -> Self {
        Table {
            shards: (0..shards)
                .map(|_| RwLock::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<HashMap<K, V, S>> {
        let hash = self.hasher.hash_one(key) as usize;
        &self.shards[hash % self.shards.len()]
    }

    pub(crate) fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).read().unwrap().get(key).map(f)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().unwrap().len()).sum()
    }

    pub(crate) fn insert(&self, key: K, value: V) -> Option<V> {
        self.shard(&key).write().unwrap().insert(key, value)
    }

    pub(crate) fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).write().unwrap().remove(key)
    }

    pub(crate) fn update(&self, key: K, f: impl FnOnce(Option<&V>) -> Update<V>) -> Option<V> {
        let mut shard = self.shard(&key).write().unwrap();
        match f(shard.get(&key)) {
            Update::Keep => None,
            Update::Set(new) => shard.insert(key, new),
            Update::Remove => shard.remove(&key),
        }
    }

    pub(crate) fn remove_if<Q>(&self, key: &Q, f: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.shard(key).write().unwrap();
        let approved = shard.get_key_value(key).is_some_and(|(k, v)| f(k, v));
        if approved { shard.remove(key) } else { None }
    }

    pub(crate) fn retain(&self, mut f: impl FnMut(&K, &mut V) -> bool) {
        for shard in &self.shards {
            shard.write().unwrap().retain(|k, v| f(k, v));
        }
    }

    pub(crate) fn with_capacity(_capacity: usize, hasher: S, shards: usize) -> Self {
        Self::new(hasher, shards)
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn read_shard(&self, shard: usize, mut f: impl FnMut(&K, &V)) {
        for (key, value) in self.shards[shard].read().unwrap().iter() {
            f(key, value);
        }
    }

    pub(crate) fn drain(self, mut f: impl FnMut(K, V)) {
        for shard in self.shards {
            for (key, value) in shard.into_inner().unwrap() {
                f(key, value);
            }
        }
    }
}
