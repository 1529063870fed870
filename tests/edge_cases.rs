//! Lifetimes across clears and map drops, and bad input through the safe API:
//! nothing may leak silently, be freed twice, or deadlock.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

mod common;

use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use atomic_map::{AtomicMap, Builder, ReclaimMode};
use common::{DropLedger, Tracked, reclaim_until};

const LIMIT: Duration = Duration::from_secs(20);

fn map_in(mode: ReclaimMode) -> AtomicMap<u64, Tracked> {
    Builder::new().reclaim_mode(mode).build()
}

const MODES: [ReclaimMode; 2] = [ReclaimMode::Background, ReclaimMode::Manual];

/// Drops `map`, waits until every value `ledger` made is destroyed, and checks
/// each was destroyed once. The map's last generation waits for its grace period,
/// which another test's pin can hold up past the drop (this failed in CI): the
/// process-wide reclaimer, which adopts the dropped map's work, finishes it, and a
/// manual probe map drives the epoch from here meanwhile.
fn drop_and_check_all_destroyed<K, S>(map: AtomicMap<K, Tracked, S>, ledger: &DropLedger) {
    drop(map);
    let probe = map_in(ReclaimMode::Manual);
    reclaim_until(&probe, LIMIT, || ledger.dropped() == ledger.created());
    ledger.assert_all_dropped_once();
}

#[test]
fn value_ref_outlives_clear_and_map_drop() {
    for mode in MODES {
        let ledger = DropLedger::new(10);
        let map = map_in(mode);
        map.insert(1, ledger.make(42));
        map.insert(2, ledger.make(43));
        let held = map.get(&1).unwrap();
        map.clear_async().wait();
        drop(map);
        assert_eq!(held.check(), 42);
        // The other value went with the generation; the held one waits for its handle.
        assert_eq!(ledger.dropped(), 1, "{mode:?}");
        drop(held);
        let probe = map_in(ReclaimMode::Manual); // only to drive the epoch from here
        reclaim_until(&probe, LIMIT, || ledger.dropped() == 2);
        ledger.assert_all_dropped_once();
    }
}

#[test]
fn snapshot_outlives_clear_and_map_drop() {
    for mode in MODES {
        let ledger = DropLedger::new(10);
        let map = map_in(mode);
        for i in 0..5 {
            map.insert(i, ledger.make(i));
        }
        let snap = map.snapshot();
        let retired = map.clear_async();
        drop(map);
        assert_eq!(snap.len(), 5);
        assert_eq!(snap.get(&3).unwrap().check(), 3);
        assert_eq!(snap.iter().count(), 5);
        assert!(
            !retired.wait_timeout(Duration::from_millis(20)),
            "{mode:?}: torn down under a snapshot"
        );
        assert_eq!(ledger.dropped(), 0);
        // No reclaimer is left: the last holder tears the generation down itself.
        drop(snap);
        assert!(retired.wait_timeout(LIMIT));
        assert_eq!(ledger.dropped(), 5, "{mode:?}");
        ledger.assert_all_dropped_once();
    }
}

/// A pinned guard outlives the map it came from: the map's drop gives up the
/// current generation only after a grace period past the guard, so everything the
/// guard borrows (values and keys) stays readable until it drops, in either mode
/// (in manual mode the drop of the map's last handle tears down what it can at
/// once, on the dropping thread).
#[test]
fn read_guard_outlives_map_drop() {
    for mode in MODES {
        let ledger = DropLedger::new(10);
        let map = map_in(mode);
        for i in 0..5 {
            map.insert(i, ledger.make(i));
        }
        let guard = map.pin();
        let three = guard.get_borrowed(&3).unwrap();
        drop(map);
        let probe = map_in(ReclaimMode::Manual); // drives passes and the epoch
        for _ in 0..10 {
            probe.reclaim();
        }
        assert_eq!(
            three.check(),
            3,
            "{mode:?}: a value freed under a pinned guard"
        );
        assert_eq!(guard.iter().count(), 5);
        assert_eq!(ledger.dropped(), 0, "{mode:?}");
        drop(guard);
        reclaim_until(&probe, LIMIT, || ledger.dropped() == 5);
        ledger.assert_all_dropped_once();
    }
}

#[test]
fn manual_mode_never_reclaimed_then_dropped_frees_everything() {
    let ledger = DropLedger::new(1000);
    let map = map_in(ReclaimMode::Manual);
    let mut tickets = Vec::new();
    for round in 0..10 {
        for i in 0..50 {
            map.insert(i, ledger.make(round));
        }
        tickets.push(map.clear_async());
    }
    for i in 0..50 {
        map.insert(i, ledger.make(99));
    }
    assert_eq!(map.stats().retired_generations, 10);
    assert_eq!(
        ledger.dropped(),
        0,
        "manual mode must not reclaim by itself"
    );
    // The dropping thread tears down the 10 retired generations and the current one
    // once their grace periods are over: at once if no other thread is pinned,
    // else the process-wide reclaimer finishes what is left (tests run side by side).
    drop(map);
    let deadline = std::time::Instant::now() + LIMIT;
    while ledger.dropped() < 550 || !tickets.iter().all(|t| t.is_reclaimed()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} dropped",
            ledger.dropped()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(tickets.iter().all(|t| t.is_reclaimed()));
    ledger.assert_all_dropped_once();
}

#[test]
fn wait_timeout_zero_never_blocks() {
    for mode in MODES {
        let map = map_in(mode);
        let guard = map.pin();
        let retired = map.clear_async();
        assert!(!retired.wait_timeout(Duration::ZERO));
        drop(guard);
        assert!(retired.wait_timeout(LIMIT));
        assert!(retired.wait_timeout(Duration::ZERO));
    }
}

/// A wait on a thread pinned since before the clear could never end (the pin
/// holds up the teardown's grace period), so it is refused: `would_wait_for_itself`
/// says so, `wait_timeout` returns at once and `wait` panics; inside an iteration
/// of a map too, and for another map's clear. Once the pin is gone, the wait
/// succeeds. `retain` pins nothing: in its closure, a wait for another map's
/// clear is not refused, and returns. Runs on a thread of its own, so that a
/// build without the check fails here rather than hanging the suite.
#[test]
fn waiting_while_pinned_since_before_the_clear_is_refused() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mode in MODES {
            let map: AtomicMap<u64, u64> = Builder::new().reclaim_mode(mode).build();
            map.insert(1, 1);
            let guard = map.pin();
            let retired = map.clear_async();
            assert!(
                retired.would_wait_for_itself(),
                "{mode:?}: a wait while pinned not refused"
            );
            let started = std::time::Instant::now();
            assert!(!retired.wait_timeout(Duration::from_secs(60)));
            let waited = started.elapsed();
            let panic = catch_unwind(AssertUnwindSafe(|| retired.wait()))
                .expect_err("wait returned while this thread was pinned");
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            drop(guard);
            // In an iteration (which pins) of one map, a clear of another.
            let other: AtomicMap<u64, u64> = Builder::new().reclaim_mode(mode).build();
            other.insert(2, 2);
            map.insert(3, 3);
            let mut in_iteration = Vec::new();
            for _ in map.pin().iter() {
                in_iteration.push(other.clear_async().would_wait_for_itself());
            }
            assert_eq!(in_iteration, [true], "{mode:?}");
            // In `retain`'s closure (which pins nothing), another map's clear is
            // waited for.
            other.insert(4, 4);
            let mut in_retain = Vec::new();
            map.retain(|_, _| {
                let cleared = other.clear_async();
                in_retain.push((cleared.would_wait_for_itself(), cleared.wait_timeout(LIMIT)));
                true
            });
            assert_eq!(
                in_retain,
                [(false, true)],
                "{mode:?}: a wait in retain's closure"
            );
            assert!(!retired.would_wait_for_itself(), "{mode:?}");
            assert!(retired.wait_timeout(LIMIT), "{mode:?}");
            done.send((mode, waited, message)).unwrap();
        }
    });
    for _ in MODES {
        let (mode, waited, message) = match finished.recv_timeout(Duration::from_secs(300)) {
            Ok(outcome) => outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("a wait while pinned did not return in 300 s")
            }
            Err(_) => panic!("the waiting thread failed (its message is above)"),
        };
        assert!(
            waited < Duration::from_secs(30),
            "{mode:?}: wait_timeout waited {waited:?} while pinned"
        );
        assert!(
            message.contains("would wait for itself"),
            "{mode:?}: {message}"
        );
    }
}

/// A closure that a map runs under one of its shard locks (`retain`'s, the
/// `compute` family's) holds up the release of that map's retired generations,
/// which takes each shard lock first: a wait there for one of the map's own
/// tickets is refused (`wait` panics, `wait_timeout` returns at once), where it
/// used to hang, or wait out its whole timeout.
#[test]
fn waiting_in_a_closure_under_the_maps_own_lock_is_refused() {
    /// What a closure saw of the ticket: `would_wait_for_itself`, then
    /// `wait_timeout`'s answer and how long it took, then whether `wait` panicked
    /// with the message of this refusal.
    fn probe(retired: &atomic_map::Retired) -> (bool, bool, Duration, bool) {
        let refused = retired.would_wait_for_itself();
        if !refused {
            // The waits below would hang (or wait out their timeout): the test
            // fails on `refused` alone.
            return (false, false, Duration::ZERO, false);
        }
        let started = std::time::Instant::now();
        let reclaimed = retired.wait_timeout(Duration::from_secs(60));
        let waited = started.elapsed();
        let panicked = catch_unwind(AssertUnwindSafe(|| retired.wait()))
            .err()
            .and_then(|p| p.downcast_ref::<&str>().map(|m| m.contains("shard lock")))
            .unwrap_or(false);
        (refused, reclaimed, waited, panicked)
    }
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mode in MODES {
            let map: AtomicMap<u64, u64> = Builder::new().reclaim_mode(mode).build();
            let other: AtomicMap<u64, u64> = Builder::new().reclaim_mode(mode).build();
            map.insert(1, 1);
            // The snapshot keeps the retired generation from its teardown, so
            // that the ticket is still pending in every closure below.
            let held = map.snapshot();
            let retired = map.clear_async();
            map.insert(2, 2);
            let mut seen = Vec::new();
            map.retain(|_, _| {
                seen.push(("retain", probe(&retired)));
                true
            });
            map.compute(2, |_| {
                seen.push(("compute", probe(&retired)));
                atomic_map::Operation::<u64>::Keep
            });
            map.upsert(3, |_| {
                seen.push(("upsert", probe(&retired)));
                3
            });
            map.get_or_insert_with(4, || {
                seen.push(("get_or_insert_with", probe(&retired)));
                4
            });
            map.remove_if(&4, |_, _| {
                seen.push(("remove_if", probe(&retired)));
                false
            });
            // Nested: the outer closure's lock is this map's, the inner one's
            // another map's.
            map.retain(|_, _| {
                other.upsert(9, |_| {
                    seen.push(("nested", probe(&retired)));
                    9
                });
                true
            });
            // Another map's closure holds none of this map's locks.
            other.upsert(9, |_| {
                seen.push((
                    "other map",
                    (retired.would_wait_for_itself(), false, Duration::ZERO, true),
                ));
                9
            });
            // The reverse nesting: this map's closure inside another map's.
            other.retain(|_, _| {
                map.upsert(5, |_| {
                    seen.push(("reverse nesting", probe(&retired)));
                    5
                });
                true
            });
            // Back in the outer closure after an inner one on this map: the inner
            // mark is gone, whatever its slot still holds.
            other.upsert(9, |_| {
                map.upsert(6, |_| 6);
                let after_inner = retired.would_wait_for_itself();
                seen.push(("after inner", (after_inner, false, Duration::ZERO, true)));
                9
            });
            // Four other maps' closures nested, then this map's: the fifth is
            // counted but not named (documented), so not refused.
            let others: Vec<AtomicMap<u64, u64>> = (0..4)
                .map(|_| Builder::new().reclaim_mode(mode).build())
                .collect();
            fn nest(maps: &[AtomicMap<u64, u64>], innermost: &mut dyn FnMut()) {
                match maps.split_first() {
                    Some((outer, rest)) => {
                        outer.upsert(0, |_| {
                            nest(rest, innermost);
                            0
                        });
                    }
                    None => innermost(),
                }
            }
            let mut fifth = None;
            nest(&others, &mut || {
                map.upsert(7, |_| {
                    fifth = Some(retired.would_wait_for_itself());
                    7
                });
            });
            seen.push(("fifth", (fifth.expect("ran"), false, Duration::ZERO, true)));
            // The refusal's panic unwinds out of `retain`: the lock and the mark
            // are given back, and the map goes on.
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                map.retain(|_, _| {
                    // Only where refused (checked above): a wait that is not
                    // would hang this test.
                    if retired.would_wait_for_itself() {
                        retired.wait();
                    }
                    true
                })
            }));
            map.insert(8, 8);
            let after_unwind = retired.would_wait_for_itself();
            seen.push((
                "unwound",
                (
                    after_unwind,
                    false,
                    Duration::ZERO,
                    unwound.is_err() && map.get(&8).is_some(),
                ),
            ));
            drop(held);
            let reclaimed = retired.wait_timeout(LIMIT);
            done.send((mode, seen, reclaimed)).unwrap();
        }
    });
    for _ in MODES {
        let (mode, seen, reclaimed) = match finished.recv_timeout(Duration::from_secs(600)) {
            Ok(outcome) => outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("a wait under the map's own shard lock did not return in 600 s")
            }
            Err(_) => panic!("the waiting thread failed (its message is above)"),
        };
        let names: Vec<&str> = seen.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "retain", // key 2 (key 1 went with the retired generation)
                "compute",
                "upsert",
                "get_or_insert_with",
                "remove_if",
                "nested", // keys 2, 3 and 4
                "nested",
                "nested",
                "other map",
                "reverse nesting",
                "after inner",
                "fifth",
                "unwound"
            ],
            "{mode:?}"
        );
        for (name, (refused, reclaimed, waited, panicked)) in &seen {
            if ["other map", "after inner", "fifth", "unwound"].contains(name) {
                assert!(!refused, "{mode:?}: a wait refused, {name}");
                assert!(panicked, "{mode:?}: {name}: the map did not go on");
                continue;
            }
            assert!(
                refused,
                "{mode:?}, {name}: a wait under the map's own shard lock not refused"
            );
            assert!(
                !reclaimed,
                "{mode:?}, {name}: torn down while a snapshot held it"
            );
            assert!(
                *waited < Duration::from_secs(30),
                "{mode:?}, {name}: wait_timeout waited {waited:?} under the map's own shard lock"
            );
            assert!(
                panicked,
                "{mode:?}, {name}: wait did not panic with the shard lock's message"
            );
        }
        assert!(
            reclaimed,
            "{mode:?}: the ticket never completed after the closures"
        );
    }
}

#[test]
fn zero_sized_values() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let map: AtomicMap<u32, Zst> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    for i in 0..100 {
        map.insert(i, Zst);
    }
    assert!(map.get(&5).is_some());
    assert!(map.pin().get_borrowed(&6).is_some());
    drop(map.remove(&7));
    map.clear_async();
    map.reclaim();
    reclaim_until(&map, LIMIT, || DROPS.load(Ordering::SeqCst) == 100);
    let unit: AtomicMap<(), ()> = AtomicMap::new();
    unit.insert((), ());
    assert!(unit.contains_key(&()));
}

/// A key whose `Hash` or `Eq` panics while `ARMED` is set.
#[derive(Clone)]
struct Touchy(u64);
static ARMED_HASH: AtomicBool = AtomicBool::new(false);
static ARMED_EQ: AtomicBool = AtomicBool::new(false);
impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if ARMED_HASH.load(Ordering::SeqCst) && self.0 == 666 {
            panic!("hash panics");
        }
        self.0.hash(state)
    }
}
impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        if ARMED_EQ.load(Ordering::SeqCst) && (self.0 == 13 || other.0 == 13) {
            panic!("eq panics");
        }
        self.0 == other.0
    }
}
impl Eq for Touchy {}

#[test]
fn panicking_hash_and_eq_leave_the_map_usable() {
    let ledger = DropLedger::new(100);
    let map: AtomicMap<Touchy, Tracked> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    for i in 0..20 {
        map.insert(Touchy(i), ledger.make(i));
    }
    ARMED_HASH.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| {
        map.insert(Touchy(666), ledger.make(666))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| map.get(&Touchy(666)).is_some()));
    assert!(r.is_err());
    ARMED_HASH.store(false, Ordering::SeqCst);
    ARMED_EQ.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| map.insert(Touchy(13), ledger.make(13))));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        map.upsert(Touchy(13), |_| ledger.make(14))
    }));
    assert!(r.is_err());
    ARMED_EQ.store(false, Ordering::SeqCst);
    // Still consistent and usable: the entries are those inserted before.
    assert_eq!(map.get(&Touchy(5)).unwrap().check(), 5);
    assert_eq!(map.len(), 20);
    map.insert(Touchy(21), ledger.make(21));
    map.clear_async();
    drop_and_check_all_destroyed(map, &ledger);
}

#[test]
fn panicking_value_drop_is_contained_and_counted() {
    static NORMAL_DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Grenade(bool);
    impl Drop for Grenade {
        fn drop(&mut self) {
            if self.0 {
                panic!("destructor panics");
            }
            NORMAL_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    for mode in MODES {
        NORMAL_DROPS.store(0, Ordering::SeqCst);
        let map: AtomicMap<u32, Grenade> = Builder::new().reclaim_mode(mode).build();
        for i in 0..100 {
            map.insert(i, Grenade(i % 10 == 0));
        }
        // One through the epoch (remove), the rest through a teardown.
        drop(map.remove(&0));
        map.clear_async().wait();
        reclaim_until(&map, LIMIT, || map.stats().reclaimed_values == 100);
        let stats = map.stats();
        assert_eq!(stats.destructor_panics, 10, "{mode:?}");
        assert_eq!(stats.pending_values, 0);
        assert_eq!(
            NORMAL_DROPS.load(Ordering::SeqCst),
            90,
            "{mode:?}: a panic cost other values"
        );
        // The map and its reclaimer still work.
        map.insert(1, Grenade(false));
        map.clear_async().wait();
        assert_eq!(NORMAL_DROPS.load(Ordering::SeqCst), 91);
    }
}

#[test]
fn panicking_update_closure_leaves_the_entry() {
    let map = AtomicMap::new();
    map.insert("k", 1);
    let r = catch_unwind(AssertUnwindSafe(|| map.upsert("k", |_| panic!("no"))));
    assert!(r.is_err());
    assert_eq!(*map.get("k").unwrap(), 1);
    map.upsert("k", |v| v.unwrap() + 1); // the shard lock was released
    assert_eq!(*map.get("k").unwrap(), 2);
}

#[test]
fn panicking_replace_iterator_publishes_nothing() {
    let ledger = DropLedger::new(100);
    let map = map_in(ReclaimMode::Manual);
    map.insert(0, ledger.make(0));
    let l2 = Arc::clone(&ledger);
    let r = catch_unwind(AssertUnwindSafe(|| {
        map.replace((1..10u64).map(|i| {
            if i == 5 {
                panic!("iterator panics");
            }
            (i, l2.make(i))
        }))
    }));
    assert!(r.is_err());
    assert_eq!(map.generation(), 0);
    assert_eq!(map.len(), 1);
    reclaim_until(&map, LIMIT, || ledger.dropped() == 4);
    drop_and_check_all_destroyed(map, &ledger);
}

#[test]
fn concurrent_clears_get_distinct_increasing_ids() {
    let map = Arc::new(AtomicMap::<u32, u32>::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let map = Arc::clone(&map);
            std::thread::spawn(move || (0..500).map(|_| map.clear_async().id()).collect::<Vec<_>>())
        })
        .collect();
    let mut ids: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..2000).collect::<Vec<_>>(),
        "each retired generation exactly once"
    );
    assert_eq!(map.generation(), 2000);
}

#[test]
fn a_hundred_thousand_holders_one_destruction() {
    const HOLDERS: usize = 100_000;
    let ledger = DropLedger::new(1);
    let map = map_in(ReclaimMode::Manual);
    map.insert(1, ledger.make(9));
    let first = map.get(&1).unwrap();
    // Rust handles...
    let handles: Vec<_> = (0..HOLDERS).map(|_| first.clone()).collect();
    // ...and C-style retains of the raw pointer.
    let raw = atomic_map::ValueRef::into_raw(first);
    for _ in 0..HOLDERS {
        // SAFETY: `raw` owns a reference for the whole loop.
        unsafe { atomic_map::ValueRef::increment_count(raw) };
    }
    map.clear_async();
    drop(map);
    assert_eq!(ledger.dropped(), 0);
    assert_eq!(handles[HOLDERS - 1].check(), 9);
    drop(handles);
    for _ in 0..HOLDERS {
        // SAFETY: gives back the retains above, one each.
        unsafe { atomic_map::ValueRef::decrement_count(raw) };
    }
    // SAFETY: the last reference, owned since `into_raw`.
    let last = unsafe { atomic_map::ValueRef::from_raw(raw) };
    // The cleared generation's teardown (the table's reference) waits for its
    // grace period, which another test's pin can hold up past the map's drop: the
    // process-wide reclaimer, which adopts the dropped map's work, finishes it.
    let probe = map_in(ReclaimMode::Manual);
    reclaim_until(&probe, LIMIT, || {
        atomic_map::ValueRef::ref_count(&last) == 1
    });
    assert_eq!(atomic_map::ValueRef::ref_count(&last), 1);
    assert_eq!(last.check(), 9);
    drop(last);
    reclaim_until(&probe, LIMIT, || ledger.dropped() == 1);
    ledger.assert_all_dropped_once();
}

/// A value whose destructor waits for the generation that is being torn down (the
/// one that held it), through a `Retired` handed to it after the clear.
struct WaitsInDrop {
    retired: Arc<std::sync::Mutex<Option<atomic_map::Retired>>>,
    forever: bool,
    outcome: Arc<std::sync::Mutex<Option<bool>>>,
}

impl Drop for WaitsInDrop {
    fn drop(&mut self) {
        let retired = self.retired.lock().unwrap().take().expect("handed over");
        if self.forever {
            retired.wait(); // must panic, not hang
        }
        *self.outcome.lock().unwrap() = Some(retired.wait_timeout(Duration::from_secs(600)));
    }
}

/// Waiting, from a destructor, for the teardown that runs that destructor can never
/// end: `wait_timeout` returns `false` at once, `wait` panics (contained, counted),
/// in both reclaim modes; nothing hangs.
#[test]
fn waiting_from_a_destructor_for_its_own_teardown_does_not_hang() {
    for mode in [ReclaimMode::Background, ReclaimMode::Manual] {
        for forever in [false, true] {
            let map: AtomicMap<u8, WaitsInDrop> = Builder::new().reclaim_mode(mode).build();
            let slot = Arc::new(std::sync::Mutex::new(None));
            let outcome = Arc::new(std::sync::Mutex::new(None));
            map.insert(
                1,
                WaitsInDrop {
                    retired: Arc::clone(&slot),
                    forever,
                    outcome: Arc::clone(&outcome),
                },
            );
            let retired = map.clear_async();
            *slot.lock().unwrap() = Some(retired.clone());
            quietly(|| retired.wait());
            assert!(retired.is_reclaimed());
            reclaim_until(&map, Duration::from_secs(10), || {
                map.stats().pending_values == 0
            });
            if forever {
                assert_eq!(
                    map.stats().destructor_panics,
                    1,
                    "{mode:?}: wait() panicked"
                );
                assert_eq!(*outcome.lock().unwrap(), None);
            } else {
                assert_eq!(map.stats().destructor_panics, 0);
                assert_eq!(
                    *outcome.lock().unwrap(),
                    Some(false),
                    "{mode:?}: wait_timeout returned at once, not reclaimed"
                );
            }
        }
    }
}

/// Runs `f` with the panic message of an expected, contained panic kept quiet.
fn quietly(f: impl FnOnce()) {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    f();
    std::panic::set_hook(hook);
}

/// An oversized shard count is a clear panic at the builder, not an allocation that
/// kills the process; the bound itself builds.
#[test]
fn shard_count_is_bounded() {
    let r = std::panic::catch_unwind(|| Builder::new().shards(usize::MAX / 2));
    let message = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("at most Builder::MAX_SHARDS (65536)"),
        "{message}"
    );
    let map: AtomicMap<u8, u8> = Builder::new().shards(Builder::MAX_SHARDS).build();
    map.insert(1, 1);
    assert_eq!(map.len(), 1);
}

/// A key whose `Hash` panics once its shard must rehash (armed after it was
/// inserted). A rehash hashes the live keys again (a slot keeps only a tag of the
/// hash), so the panic reaches the insert that needed the room: that insert fails
/// (its value dropped, once), while the map keeps every key it held, readable and
/// writable; nothing is freed twice or leaked (with keys freed by a panicking
/// rehash, the map's drop would free them again).
#[test]
fn a_panicking_hash_in_a_rehash_fails_only_the_insert() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    #[derive(PartialEq, Eq)]
    struct Fuse(u64);
    impl Hash for Fuse {
        fn hash<H: Hasher>(&self, state: &mut H) {
            assert!(
                !(ARMED.load(Ordering::SeqCst) && self.0 == 5),
                "hashed again"
            );
            self.0.hash(state)
        }
    }
    let ledger = DropLedger::new(2_000);
    let map: AtomicMap<Fuse, Tracked> = Builder::new()
        .reclaim_mode(ReclaimMode::Manual)
        .shards(2)
        .build();
    map.insert(Fuse(5), ledger.make(5));
    ARMED.store(true, Ordering::SeqCst);
    let mut failed = Vec::new();
    quietly(|| {
        // Enough inserts that both shards would rehash several times: every rehash
        // of key 5's shard panics.
        for i in 100..1_100 {
            let value = ledger.make(i);
            let map = &map;
            if catch_unwind(AssertUnwindSafe(move || map.insert(Fuse(i), value))).is_err() {
                failed.push(i);
            }
        }
    });
    assert!(
        !failed.is_empty(),
        "no insert needed a rehash of key 5's shard"
    );
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(map.len(), 1_001 - failed.len());
    assert_eq!(map.get(&Fuse(5)).unwrap().check(), 5);
    for i in (100..1_100).filter(|i| !failed.contains(i)) {
        assert_eq!(map.get(&Fuse(i)).unwrap().check(), i);
    }
    // Disarmed, the shard rehashes: the failed keys go in now.
    for &i in &failed {
        map.insert(Fuse(i), ledger.make(i));
    }
    assert_eq!(map.len(), 1_001);
    drop_and_check_all_destroyed(map, &ledger);
}

/// A removal may hash another key of its shard (`Array::remove` reads the
/// displacement of an entry whose slot word records only "3 or more" from its
/// hash): a `Hash` that panics there fails that removal alone, and leaves the
/// entry mapped and the map as it was. 64-bit targets only: on others no word
/// records a displacement, and a removal never hashes another key.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_panicking_hash_in_a_removal_fails_only_that_removal() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    /// Hashes to `.1`, and panics when armed if it is key 5.
    #[derive(PartialEq, Eq)]
    struct Placed(u64, u64);
    impl Hash for Placed {
        fn hash<H: Hasher>(&self, state: &mut H) {
            assert!(
                !(ARMED.load(Ordering::SeqCst) && self.0 == 5),
                "hashed again"
            );
            state.write_u64(self.1)
        }
    }
    /// The hash is the last `u64` written: the home slot, in shard 0.
    #[derive(Clone, Default)]
    struct Identity(u64);
    impl Hasher for Identity {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("keys write one u64")
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n
        }
    }
    let ledger = DropLedger::new(5);
    let map: AtomicMap<Placed, Tracked, _> = Builder::new()
        .reclaim_mode(ReclaimMode::Manual)
        .shards(2)
        .hasher(std::hash::BuildHasherDefault::<Identity>::default())
        .build();
    // Keys 10 to 13 at their homes, slots 0 to 3; key 5, of home 1, lands in
    // slot 4, 3 past its home: its word records "3 or more".
    for (key, home) in [(10, 0), (11, 1), (12, 2), (13, 3), (5, 1)] {
        map.insert(Placed(key, home), ledger.make(key));
    }
    // Removing key 10 (slot 0) asks key 5's hash whether its probe runs through.
    ARMED.store(true, Ordering::SeqCst);
    let mut panicked = false;
    quietly(|| panicked = catch_unwind(AssertUnwindSafe(|| map.remove(&Placed(10, 0)))).is_err());
    assert!(panicked, "the removal did not hash key 5");
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(map.len(), 5);
    for (key, home) in [(10, 0), (11, 1), (12, 2), (13, 3), (5, 1)] {
        assert_eq!(map.get(&Placed(key, home)).unwrap().check(), key);
    }
    // Disarmed, the removal goes through, and key 5 is still found.
    assert_eq!(map.remove(&Placed(10, 0)).unwrap().check(), 10);
    assert_eq!(map.get(&Placed(5, 1)).unwrap().check(), 5);
    assert_eq!(map.len(), 4);
    drop_and_check_all_destroyed(map, &ledger);
}

/// A key's destructor runs with its value's (the key lives in the value's cell),
/// contained and counted like a value's: a panicking key drop neither stops a
/// teardown nor escapes into a reader's or a writer's thread.
#[test]
fn panicking_key_drop_is_contained_and_counted() {
    /// Panics in drop if `.1` (keys in the map: not the lookup keys).
    struct Grenade(u64, bool);
    impl PartialEq for Grenade {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Grenade {}
    impl Hash for Grenade {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state)
        }
    }
    impl Drop for Grenade {
        fn drop(&mut self) {
            if self.1 && self.0 % 10 == 3 {
                panic!("key {} panics in drop", self.0);
            }
        }
    }
    let ledger = DropLedger::new(100);
    let map: AtomicMap<Grenade, Tracked> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    for i in 0..50 {
        map.insert(Grenade(i, true), ledger.make(i));
    }
    // Removed ones (doomed, destroyed by a pass) and the rest (a teardown).
    for i in 0..25 {
        drop(map.remove(&Grenade(i, false)));
    }
    let retired = map.clear_async();
    reclaim_until(&map, LIMIT, || ledger.dropped() == ledger.created());
    assert!(retired.wait_timeout(LIMIT));
    assert_eq!(map.stats().destructor_panics, 5, "{:?}", map.stats());
    ledger.assert_all_dropped_once();
}

/// A clear publishes the spare the reclaimer numbered ahead; a `replace` in between
/// must renumber it (or the empty slot's tag). Ids stay consecutive whatever the
/// mix: clears with a spare parked, clears that build their own, replaces with a
/// spare parked and without.
#[test]
fn generation_ids_count_every_publish_with_or_without_a_parked_spare() {
    let map: AtomicMap<u64, u64> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    assert_eq!(map.generation(), 0);
    let mut publishes = 0;
    let mut replaced_with_a_spare_parked = 0;
    for step in 0..24u64 {
        // A pass releases the hand-offs and parks the next spare, numbered ahead.
        if step % 3 == 0 {
            map.reclaim();
        }
        let retired = if step % 4 == 1 {
            if step % 3 == 0 {
                replaced_with_a_spare_parked += 1;
            }
            map.replace([(step, step)])
        } else {
            map.clear_async()
        };
        assert_eq!(
            retired.id(),
            publishes,
            "step {step}: the retired generation's id"
        );
        publishes += 1;
        assert_eq!(
            map.generation(),
            publishes,
            "step {step}: the new generation's id"
        );
        assert_eq!(map.stats().generation, publishes);
    }
    assert!(
        replaced_with_a_spare_parked >= 2,
        "the mix covers a replace over a parked spare"
    );
    // Every retired generation is torn down once, and the parked spare is not one.
    let probe = map_in(ReclaimMode::Manual);
    reclaim_until(&probe, LIMIT, || {
        map.reclaim();
        map.stats().retired_generations == 0
    });
    assert_eq!(map.stats().reclaimed_generations, publishes);
}
