//! The `serde` feature: `AtomicMap` and `Snapshot` to JSON and back with
//! `serde_json`. Here rather than in the root crate's `tests/` so that `serde_json`
//! stays out of the root's dev-dependencies, which are built for the main example.
//!
//! What each test pins down: contents survive a round trip; a snapshot serializes its
//! own generation after a clear; serializing while another thread replaces the map
//! yields exactly one generation's contents, never a mix; the length announced to the
//! serializer is the number of entries written even while that generation is being
//! written to; duplicate keys in the input keep the last value; bad input is a
//! `serde_json` error; a custom `Default` hasher is used.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use atomic_map::{AtomicMap, Snapshot};
use serde::de::{Deserialize, Deserializer};
use serde::ser::{self, Serialize, Serializer};
use serde_json::json;

/// A config entry, the kind of value a config cache holds (serialized by hand, as a
/// tuple, so that the tests need no derive).
#[derive(Clone, Debug, PartialEq)]
struct Limits {
    max_connections: u32,
    owner: String,
    enabled: bool,
}

impl Serialize for Limits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.max_connections, &self.owner, self.enabled).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (max_connections, owner, enabled) = Deserialize::deserialize(deserializer)?;
        Ok(Limits {
            max_connections,
            owner,
            enabled,
        })
    }
}

/// The entries of one generation, through the public iterator.
fn contents<V: Clone + Send + Sync + 'static, S>(
    snapshot: &Snapshot<String, V, S>,
) -> HashMap<String, V>
where
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    snapshot.iter().map(|(k, v)| (k, (*v).clone())).collect()
}

#[test]
fn config_cache_round_trips_through_json() {
    let map = AtomicMap::new();
    for (i, tenant) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        map.insert(
            format!("tenant-{tenant}"),
            Limits {
                max_connections: 10 * (i as u32 + 1),
                owner: tenant.to_uppercase(),
                enabled: i != 1,
            },
        );
    }

    let text = serde_json::to_string(&map).unwrap();
    // A JSON object of key → value, nothing else.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json!({
            "tenant-alpha": [10, "ALPHA", true],
            "tenant-beta": [20, "BETA", false],
            "tenant-gamma": [30, "GAMMA", true],
        })
    );

    let back: AtomicMap<String, Limits> = serde_json::from_str(&text).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(contents(&back.snapshot()), contents(&map.snapshot()));

    // And the empty map.
    let empty: AtomicMap<String, Limits> = AtomicMap::new();
    assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
    let back: AtomicMap<String, Limits> = serde_json::from_str("{}").unwrap();
    assert!(back.is_empty());
}

#[test]
fn snapshot_serializes_its_own_generation_after_a_clear() {
    let map = AtomicMap::new();
    map.insert("a".to_string(), 1u32);
    map.insert("b".to_string(), 2);
    let snapshot = map.snapshot();

    map.clear_async();
    map.insert("c".to_string(), 3);

    assert_eq!(
        serde_json::to_value(&snapshot).unwrap(),
        json!({"a": 1, "b": 2})
    );
    assert_eq!(serde_json::to_value(&map).unwrap(), json!({"c": 3}));
}

/// Enough entries that a serialization spans many shards and takes a while.
const ENTRIES: u32 = 256;
/// Serializations at least, and at most, while the other thread replaces the map.
const MIN_ROUNDS: usize = 200;
const MAX_ROUNDS: usize = 20_000;

#[test]
fn serializing_during_replaces_yields_exactly_one_generation() {
    let a: HashMap<String, u32> = (0..ENTRIES).map(|i| (format!("a{i}"), i)).collect();
    let b: HashMap<String, u32> = (0..ENTRIES)
        .map(|i| (format!("b{i}"), i + ENTRIES))
        .collect();
    let map = Arc::new(AtomicMap::<String, u32>::new());
    map.replace(a.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let replacer = {
        let (map, stop, a, b) = (Arc::clone(&map), Arc::clone(&stop), a.clone(), b.clone());
        thread::spawn(move || {
            let mut replaces = 0usize;
            while !stop.load(Ordering::Relaxed) && replaces < 10 * MAX_ROUNDS {
                let next = if replaces % 2 == 0 { &b } else { &a };
                map.replace(next.iter().map(|(k, v)| (k.clone(), *v)));
                replaces += 1;
            }
            replaces
        })
    };

    let (mut saw_a, mut saw_b, mut rounds) = (0usize, 0usize, 0usize);
    while rounds < MIN_ROUNDS || saw_a == 0 || saw_b == 0 {
        assert!(
            rounds < MAX_ROUNDS,
            "{rounds} serializations saw only one of the two contents (a: {saw_a}, b: {saw_b})"
        );
        let text = serde_json::to_string(&*map).unwrap();
        let seen: HashMap<String, u32> = serde_json::from_str(&text).unwrap();
        if seen == a {
            saw_a += 1;
        } else if seen == b {
            saw_b += 1;
        } else {
            let from_a = seen.keys().filter(|k| k.starts_with('a')).count();
            panic!(
                "serialized {} entries, {from_a} of them from A: not one generation",
                seen.len()
            );
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let replaces = replacer.join().unwrap();
    assert!(replaces > 0);
}

/// A serializer that accepts only a map and counts its entries, returning the
/// length it was promised and the entries it got: formats that write the length
/// before the entries (bincode, postcard) need the two to agree.
struct LengthCheck;

/// The map being counted.
struct Counting {
    promised: Option<usize>,
    keys: usize,
    values: usize,
}

type Refused = ser::Impossible<(Option<usize>, usize), serde::de::value::Error>;

fn refuse<T>(what: &str) -> Result<T, serde::de::value::Error> {
    Err(ser::Error::custom(format!(
        "LengthCheck takes only a map, not {what}"
    )))
}

macro_rules! refuse_all {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, Self::Error> {
            refuse(stringify!($method))
        })*
    };
}

impl Serializer for LengthCheck {
    type Ok = (Option<usize>, usize);
    type Error = serde::de::value::Error;
    type SerializeSeq = Refused;
    type SerializeTuple = Refused;
    type SerializeTupleStruct = Refused;
    type SerializeTupleVariant = Refused;
    type SerializeMap = Counting;
    type SerializeStruct = Refused;
    type SerializeStructVariant = Refused;

    fn serialize_map(self, len: Option<usize>) -> Result<Counting, Self::Error> {
        Ok(Counting {
            promised: len,
            keys: 0,
            values: 0,
        })
    }

    refuse_all! {
        serialize_bool(bool) -> Self::Ok;
        serialize_i8(i8) -> Self::Ok;
        serialize_i16(i16) -> Self::Ok;
        serialize_i32(i32) -> Self::Ok;
        serialize_i64(i64) -> Self::Ok;
        serialize_u8(u8) -> Self::Ok;
        serialize_u16(u16) -> Self::Ok;
        serialize_u32(u32) -> Self::Ok;
        serialize_u64(u64) -> Self::Ok;
        serialize_f32(f32) -> Self::Ok;
        serialize_f64(f64) -> Self::Ok;
        serialize_char(char) -> Self::Ok;
        serialize_str(&str) -> Self::Ok;
        serialize_bytes(&[u8]) -> Self::Ok;
        serialize_none() -> Self::Ok;
        serialize_unit() -> Self::Ok;
        serialize_unit_struct(&'static str) -> Self::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok;
        serialize_seq(Option<usize>) -> Refused;
        serialize_tuple(usize) -> Refused;
        serialize_tuple_struct(&'static str, usize) -> Refused;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Refused;
        serialize_struct(&'static str, usize) -> Refused;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Refused;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Self::Ok, Self::Error> {
        refuse("an option")
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        refuse("a newtype struct")
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        refuse("a newtype variant")
    }
}

impl ser::SerializeMap for Counting {
    type Ok = (Option<usize>, usize);
    type Error = serde::de::value::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Self::Error> {
        self.keys += 1;
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Self::Error> {
        self.values += 1;
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        assert_eq!(self.keys, self.values);
        Ok((self.promised, self.keys))
    }
}

#[test]
fn length_hint_is_the_number_of_entries_under_concurrent_writes() {
    let map = Arc::new(AtomicMap::<u32, u32>::new());
    (&*map).extend((0..ENTRIES).map(|key| (key, 0)));
    let stop = Arc::new(AtomicBool::new(false));
    // Inserts and removes in the generation being serialized (no clears), so that
    // its length changes while the serializer walks it.
    let writer = {
        let (map, stop) = (Arc::clone(&map), Arc::clone(&stop));
        thread::spawn(move || {
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) && round < 10 * MAX_ROUNDS as u32 {
                for key in 0..ENTRIES {
                    if (key + round) % 3 == 0 {
                        map.remove(&key);
                    } else {
                        map.insert(key, round);
                    }
                }
                round += 1;
            }
        })
    };
    // Until the map has been seen at several sizes, i.e. while the writer runs.
    let mut lengths = std::collections::HashSet::new();
    let mut rounds = 0;
    while rounds < MIN_ROUNDS || lengths.len() < 3 {
        assert!(rounds < MAX_ROUNDS, "lengths seen: {lengths:?}");
        let (promised, written) = map.serialize(LengthCheck).unwrap();
        assert_eq!(promised, Some(written));
        lengths.insert(written);
        let (promised, written) = map.snapshot().serialize(LengthCheck).unwrap();
        assert_eq!(promised, Some(written));
        lengths.insert(written);
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    let map: AtomicMap<String, u32> =
        serde_json::from_str(r#"{"a": 1, "b": 2, "a": 3, "b": 4, "a": 5}"#).unwrap();
    assert_eq!(map.len(), 2);
    assert_eq!(*map.get("a").unwrap(), 5);
    assert_eq!(*map.get("b").unwrap(), 4);
}

#[test]
fn bad_input_is_a_serde_json_error() {
    type Map = AtomicMap<String, u32>;

    let not_a_map = serde_json::from_str::<Map>("[1, 2]").unwrap_err();
    assert!(not_a_map.is_data(), "{not_a_map}");
    assert!(
        not_a_map.to_string().contains("expected a map"),
        "{not_a_map}"
    );

    let wrong_value = serde_json::from_str::<Map>(r#"{"a": 1, "b": "two"}"#).unwrap_err();
    assert!(wrong_value.is_data(), "{wrong_value}");

    let negative = serde_json::from_str::<Map>(r#"{"a": -1}"#).unwrap_err();
    assert!(negative.is_data(), "{negative}");

    for truncated in [r#"{"a": 1"#, r#"{"a""#, "{", ""] {
        let err = serde_json::from_str::<Map>(truncated).unwrap_err();
        assert!(err.is_eof(), "{truncated:?}: {err}");
    }
    for garbled in [r#"{"a": 1,}"#, r#"{a: 1}"#, r#"{"a": 1} x"#] {
        let err = serde_json::from_str::<Map>(garbled).unwrap_err();
        assert!(err.is_syntax(), "{garbled:?}: {err}");
    }

    // Non-string keys: JSON object keys are strings, parsed into the key type.
    let numeric: AtomicMap<u64, u32> = serde_json::from_str(r#"{"7": 1}"#).unwrap();
    assert_eq!(*numeric.get(&7).unwrap(), 1);
    let err = serde_json::from_str::<AtomicMap<u64, u32>>(r#"{"seven": 1}"#).unwrap_err();
    assert!(err.to_string().contains("number"), "{err}");
}

/// How many hashers `Fnv` has built: shows that the map hashes with it.
static FNV_BUILT: AtomicUsize = AtomicUsize::new(0);

/// FNV-1a, a hasher with no state to seed: `Default` is all it needs.
#[derive(Clone, Default)]
struct Fnv;

struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FNV_BUILT.fetch_add(1, Ordering::Relaxed);
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

#[test]
fn a_custom_default_hasher_works() {
    let text = r#"{"x": 1, "y": 2, "z": 3}"#;
    let before = FNV_BUILT.load(Ordering::Relaxed);
    let map: AtomicMap<String, u32, Fnv> = serde_json::from_str(text).unwrap();
    assert!(FNV_BUILT.load(Ordering::Relaxed) >= before + 3);

    assert_eq!(*map.get("y").unwrap(), 2);
    assert_eq!(
        serde_json::to_value(&map).unwrap(),
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
    let again: AtomicMap<String, u32, Fnv> =
        serde_json::from_str(&serde_json::to_string(&map.snapshot()).unwrap()).unwrap();
    assert_eq!(contents(&again.snapshot()), contents(&map.snapshot()));
}
