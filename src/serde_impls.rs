//! The `serde` feature: `Serialize` for [`AtomicMap`] and [`Snapshot`] (one
//! generation, as a map), `Deserialize` for [`AtomicMap`].
//!
//! Serializing goes through a snapshot, so the output holds entries of exactly one
//! generation: a clear or replace that races it is either wholly before it or
//! wholly after it. The entries are first copied out shard by shard (keys cloned,
//! values retained: no value is cloned), as [`Snapshot::iter`] does, and only then
//! serialized, so no shard lock is held while user code (`K`'s and `V`'s
//! `Serialize`) runs. Hence `K: Clone`: a key cannot be borrowed past its shard
//! lock.
//!
//! The copy is of the whole generation rather than one shard at a time, so that
//! the length announced to the serializer is the number of entries that follow,
//! even while other threads write to that generation: `len()` is only a sample
//! then, and formats that write the length up front (bincode, postcard, CBOR with
//! definite lengths) would produce corrupt output from a wrong one, while passing
//! no length would make some of them refuse the map. The cost is one vector of
//! `(K, ValueRef<V>)` for the whole generation while it is being serialized.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::map::AtomicMap;
use crate::snapshot::Snapshot;
use crate::value::ValueRef;

impl<K, V, S> Serialize for Snapshot<K, V, S>
where
    K: Eq + Hash + Clone + Serialize + Send + Sync + 'static,
    V: Serialize + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Serializes this snapshot's generation as a map, in no particular order.
    ///
    /// The entries are copied out first (keys cloned, values retained), then
    /// serialized with no lock held; the length given to the serializer is exactly
    /// the number of entries written. Writes made to this generation while the copy
    /// runs may or may not be included, as with [`Snapshot::iter`]; entries of any
    /// other generation never are.
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let entries: Vec<(K, ValueRef<V>)> = self.iter().collect();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in &entries {
            map.serialize_entry(key, &**value)?;
        }
        map.end()
    }
}

impl<K, V, S> Serialize for AtomicMap<K, V, S>
where
    K: Eq + Hash + Clone + Serialize + Send + Sync + 'static,
    V: Serialize + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// Serializes the current generation as a map: takes a
    /// [`snapshot`](AtomicMap::snapshot) and serializes that, so a concurrent clear or
    /// replace never yields a mix of two generations' contents.
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.snapshot().serialize(serializer)
    }
}

impl<'de, K, V, S> Deserialize<'de> for AtomicMap<K, V, S>
where
    K: Eq + Hash + Deserialize<'de> + Send + Sync + 'static,
    V: Deserialize<'de> + Send + Sync + 'static,
    S: BuildHasher + Clone + Default + Send + Sync + 'static,
{
    /// Builds a new map (background reclamation, `S::default()` as the hasher, the
    /// default shard count) and inserts the entries in input order: of duplicate
    /// keys the last one wins, as with `HashMap`. For other settings, build the map
    /// with a [`Builder`](crate::Builder) and fill it from a deserialized
    /// `HashMap` with `replace` or `Extend`.
    ///
    /// ```
    /// use atomic_map::AtomicMap;
    /// use serde::Deserialize;
    /// use serde::de::value::{Error, MapDeserializer};
    ///
    /// let input = MapDeserializer::<_, Error>::new([('a', 1u32), ('b', 2), ('a', 3)].into_iter());
    /// let map = AtomicMap::<char, u32>::deserialize(input).unwrap();
    /// assert_eq!(map.len(), 2);
    /// assert_eq!(*map.get(&'a').unwrap(), 3); // the last duplicate wins
    /// ```
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Builds an [`AtomicMap`] from a serialized map.
struct MapVisitor<K, V, S>(PhantomData<(K, V, S)>);

/// The most memory a size hint from the input may make us allocate up front (as
/// serde's own `HashMap` impl does): the hint is not trusted beyond that. What a
/// capacity allocates up front is slot arrays, committed at once (`Table::
/// with_capacity`): up to four 8-byte slots an entry (an array at most half live,
/// its size a power of two), so a hint is capped at this over 32 bytes.
const MAX_PREALLOC_BYTES: usize = 1024 * 1024;

/// Slot bytes a capacity may commit per entry (above).
const PREALLOC_BYTES_PER_ENTRY: usize = 4 * 8;

impl<'de, K, V, S> Visitor<'de> for MapVisitor<K, V, S>
where
    K: Eq + Hash + Deserialize<'de> + Send + Sync + 'static,
    V: Deserialize<'de> + Send + Sync + 'static,
    S: BuildHasher + Clone + Default + Send + Sync + 'static,
{
    type Value = AtomicMap<K, V, S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let capacity = access
            .size_hint()
            .unwrap_or(0)
            .min(MAX_PREALLOC_BYTES / PREALLOC_BYTES_PER_ENTRY);
        let map = AtomicMap::with_capacity_and_hasher(capacity, S::default());
        while let Some((key, value)) = access.next_entry()? {
            // A duplicate key replaces the earlier value, which is released here.
            drop(map.insert(key, value));
        }
        Ok(map)
    }
}
