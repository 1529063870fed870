//! Model-based test: random sequences of up to 100 operations (get, pinned get,
//! insert, remove, upsert, snapshot and snapshot reads, clear_async, replace, retain
//! and release of handles, reclaim) against a simple model (hash maps per generation
//! plus the handles held), 256 cases per run, shrunk to a minimal failing sequence
//! by proptest. At the end every value is dropped exactly once and `stats()` agrees
//! with the drop counts.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use atomic_map::{AtomicMap, Builder, ReclaimMode, Snapshot, ValueRef};
use common::{DropLedger, Tracked, reclaim_until};
use proptest::prelude::*;

type Map = AtomicMap<u8, Tracked>;
type Snap = Snapshot<u8, Tracked>;

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    PinGet(u8),
    Insert(u8, u16),
    Remove(u8),
    Upsert(u8, u16),
    TakeSnapshot,
    CheckSnapshot(usize),
    DropSnapshot(usize),
    Clear,
    Replace(Vec<(u8, u16)>),
    Retain(u8),
    Release(usize),
    Reclaim,
}

fn key() -> impl Strategy<Value = u8> {
    0u8..6
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::PinGet),
        4 => (key(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => key().prop_map(Op::Remove),
        2 => (key(), any::<u16>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        1 => Just(Op::TakeSnapshot),
        2 => any::<usize>().prop_map(Op::CheckSnapshot),
        1 => any::<usize>().prop_map(Op::DropSnapshot),
        1 => Just(Op::Clear),
        1 => prop::collection::vec((key(), any::<u16>()), 0..4).prop_map(Op::Replace),
        2 => key().prop_map(Op::Retain),
        2 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::Reclaim),
    ]
}

/// The model: the contents of every generation a snapshot may still see, the
/// current generation's id, and what each held handle must read.
struct Model {
    generation: u64,
    contents: HashMap<u64, HashMap<u8, u64>>,
    snapshots: Vec<(u64, Snap)>,
    held: Vec<(u64, ValueRef<Tracked>)>,
}

impl Model {
    fn current(&mut self) -> &mut HashMap<u8, u64> {
        self.contents.entry(self.generation).or_default()
    }
    fn retire(&mut self) {
        self.generation += 1;
        self.contents.insert(self.generation, HashMap::new());
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ledger = DropLedger::new(1024);
    let map: Map = Builder::new()
        .reclaim_mode(ReclaimMode::Manual)
        .shards(2)
        .build();
    let mut m = Model {
        generation: 0,
        contents: HashMap::from([(0, HashMap::new())]),
        snapshots: Vec::new(),
        held: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Get(k) => {
                let got = map.get(&k).map(|v| v.check());
                prop_assert_eq!(got, m.current().get(&k).copied());
            }
            Op::PinGet(k) => {
                let guard = map.pin();
                prop_assert_eq!(guard.generation(), m.generation);
                prop_assert_eq!(
                    guard.get_borrowed(&k).map(Tracked::check),
                    m.current().get(&k).copied()
                );
            }
            Op::Insert(k, v) => {
                let old = map.insert(k, ledger.make(u64::from(v))).map(|o| o.check());
                prop_assert_eq!(old, m.current().insert(k, u64::from(v)));
            }
            Op::Remove(k) => {
                let old = map.remove(&k).map(|o| o.check());
                prop_assert_eq!(old, m.current().remove(&k));
            }
            Op::Upsert(k, v) => {
                let new = map.upsert(k, |old| {
                    ledger.make(old.map_or(0, Tracked::check) + u64::from(v))
                });
                let expected = m.current().get(&k).copied().unwrap_or(0) + u64::from(v);
                prop_assert_eq!(new.check(), expected);
                m.current().insert(k, expected);
            }
            Op::TakeSnapshot => {
                let snap = map.snapshot();
                prop_assert_eq!(snap.generation(), m.generation);
                m.snapshots.push((m.generation, snap));
            }
            Op::CheckSnapshot(i) => {
                if m.snapshots.is_empty() {
                    continue;
                }
                let (generation, snap) = &m.snapshots[i % m.snapshots.len()];
                let mut seen: Vec<(u8, u64)> = snap.iter().map(|(k, v)| (k, v.check())).collect();
                seen.sort_unstable();
                let mut expected: Vec<(u8, u64)> = m.contents[generation]
                    .iter()
                    .map(|(&k, &v)| (k, v))
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(snap.len(), expected.len());
                prop_assert_eq!(seen, expected);
            }
            Op::DropSnapshot(i) => {
                if !m.snapshots.is_empty() {
                    let n = m.snapshots.len();
                    m.snapshots.remove(i % n);
                }
            }
            Op::Clear => {
                let retired = map.clear_async();
                prop_assert_eq!(retired.id(), m.generation);
                m.retire();
            }
            Op::Replace(entries) => {
                let retired =
                    map.replace(entries.iter().map(|&(k, v)| (k, ledger.make(u64::from(v)))));
                prop_assert_eq!(retired.id(), m.generation);
                m.retire();
                let current = m.current();
                for (k, v) in entries {
                    current.insert(k, u64::from(v)); // later duplicates win
                }
            }
            Op::Retain(k) => {
                if let Some(v) = map.get(&k) {
                    m.held.push((v.check(), v));
                }
            }
            Op::Release(i) => {
                if !m.held.is_empty() {
                    let n = m.held.len();
                    let (expected, v) = m.held.remove(i % n);
                    prop_assert_eq!(v.check(), expected);
                }
            }
            Op::Reclaim => {
                map.reclaim();
            }
        }
        prop_assert_eq!(map.generation(), m.generation);
        prop_assert_eq!(map.len(), m.current().len());
        for (expected, v) in &m.held {
            prop_assert_eq!(v.check(), *expected, "a held handle changed or died");
        }
    }
    // Let go of everything but the map, let the map reclaim, and compare its stats
    // with the drop counts.
    m.snapshots.clear();
    m.held.clear();
    map.clear_async();
    reclaim_until(&map, Duration::from_secs(10), || {
        let s = map.stats();
        s.retired_generations == 0 && s.pending_values == 0
    });
    let stats = map.stats();
    prop_assert_eq!(stats.reclaimed_values as usize, ledger.dropped());
    prop_assert_eq!(
        ledger.dropped(),
        ledger.created(),
        "everything was released"
    );
    prop_assert_eq!(stats.reclaimed_generations, m.generation + 1); // + the final clear
    drop(map);
    ledger.assert_all_dropped_once();
    Ok(())
}

proptest! {
    // 256 cases unless PROPTEST_CASES says more (proptest's default reads it).
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(256), ..ProptestConfig::default() })]

    #[test]
    fn operations_match_the_model(ops in prop::collection::vec(op(), 1..100)) {
        run(ops)?;
    }
}
