//! Values that outlive their map: destroyed within a bound without another call
//! into the library, and `Reclaimer::flush` for programs about to exit.
//!
//! The deadlines are generous correctness bounds (a value never destroyed fails),
//! not speed goals: the documented bound is a few passes of the background thread.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, Reclaimer};

/// Far beyond the documented bound (a few passes, each at most 16 ms apart).
const DEADLINE: Duration = Duration::from_secs(10);

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn maps() -> Vec<(&'static str, AtomicMap<u32, Counted>)> {
    vec![
        ("process-wide", AtomicMap::new()),
        (
            "dedicated",
            Builder::new().reclaimer(&Reclaimer::new()).build(),
        ),
        (
            "manual",
            Builder::new().reclaimer(&Reclaimer::manual()).build(),
        ),
    ]
}

/// Waits for `count` to reach `want` by reading it only: no call into the library.
fn destroyed_within(count: &AtomicUsize, want: usize, deadline: Duration) -> bool {
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < want {
        if start.elapsed() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn a_value_released_after_its_map_is_gone_is_destroyed_without_another_call() {
    for (name, map) in maps() {
        let drops = Arc::new(AtomicUsize::new(0));
        map.insert(1, Counted(drops.clone()));
        let held = map.get(&1).unwrap();
        drop(map);
        // Released on a thread that then exits: nobody calls into the library again.
        thread::spawn(move || drop(held)).join().unwrap();
        assert!(
            destroyed_within(&drops, 1, DEADLINE),
            "{name}: the value was never destroyed"
        );
    }
}

#[test]
fn flush_destroys_everything_released_before_it() {
    for (name, map) in maps() {
        let reclaimer = map.reclaimer();
        let drops = Arc::new(AtomicUsize::new(0));
        for k in 0..100 {
            map.insert(k, Counted(drops.clone()));
        }
        let held: Vec<_> = (0..10).filter_map(|k| map.get(&k)).collect();
        drop(map.remove(&50)); // released while the map lives: doomed, grace period
        drop(map.clear_async()); // a retired generation: torn down by a pass
        drop(map);
        drop(held); // released after the map is gone
        assert!(reclaimer.flush(DEADLINE), "{name}: flush timed out");
        assert_eq!(drops.load(Ordering::SeqCst), 100, "{name}");
    }
}

/// A manual reclaimer and a map on it with one value (key 1), whose drops are
/// counted.
fn one_counted_value() -> (Reclaimer, AtomicMap<u32, Counted>, Arc<AtomicUsize>) {
    let reclaimer = Reclaimer::manual();
    let map: AtomicMap<u32, Counted> = Builder::new().reclaimer(&reclaimer).build();
    let drops = Arc::new(AtomicUsize::new(0));
    map.insert(1, Counted(drops.clone()));
    (reclaimer, map, drops)
}

/// A pinned guard (of any map) holds every grace period up: flush says so, and
/// succeeds once the guard is gone.
#[test]
fn flush_reports_a_grace_period_held_up_by_a_pin() {
    let (reclaimer, map, drops) = one_counted_value();
    let other = AtomicMap::<u8, u8>::new();
    let guard = other.pin();
    drop(map.remove(&1));
    assert!(!reclaimer.flush(Duration::from_millis(100)));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "destroyed while a pin could see it"
    );
    drop(guard);
    assert!(reclaimer.flush(DEADLINE));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A cleared generation waits out a grace period before its teardown (pinned
/// readers may still be in it without a count), and `flush` counts that wait: with a
/// pin held, a flush reports the clear's teardown as not done, and destroys nothing;
/// once the pin goes, a flush finishes it.
#[test]
fn flush_reports_a_cleared_generation_held_up_by_a_pin() {
    let (reclaimer, map, drops) = one_counted_value();
    let other = AtomicMap::<u8, u8>::new();
    let guard = other.pin();
    let retired = map.clear_async();
    let flushed = reclaimer.flush(Duration::from_millis(100));
    assert!(
        !flushed,
        "flush said done while the cleared generation waits for its grace period \
         (torn down: {})",
        retired.is_reclaimed()
    );
    assert_eq!(drops.load(Ordering::SeqCst), 0, "torn down under a pin");
    drop(guard);
    assert!(reclaimer.flush(DEADLINE));
    assert!(retired.is_reclaimed());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// What a destructor finds when it asks whether waiting would wait for itself.
type Seen = Arc<std::sync::Mutex<Option<(bool, bool)>>>;

/// A value whose destructor asks whether it runs in its reclaimer's pass, and
/// whether waiting for a ticket of a generation still held would wait for itself.
struct AsksFromItsDestructor {
    reclaimer: Reclaimer,
    ticket: Arc<std::sync::Mutex<Option<atomic_map::Retired>>>,
    seen: Seen,
}

impl Drop for AsksFromItsDestructor {
    fn drop(&mut self) {
        let in_pass = self.reclaimer.in_pass();
        let would = self
            .ticket
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(atomic_map::Retired::would_wait_for_itself);
        *self.seen.lock().unwrap() = Some((in_pass, would));
    }
}

/// From a destructor run by a pass of the same reclaimer, `in_pass` and
/// `would_wait_for_itself` say so (the C ABI turns that into
/// `AMAP_WOULD_DEADLOCK`); from a plain thread they do not.
#[test]
fn a_destructor_knows_it_would_wait_for_itself() {
    let reclaimer = Reclaimer::manual();
    let map: AtomicMap<u32, AsksFromItsDestructor> = Builder::new().reclaimer(&reclaimer).build();
    let snapshot = map.snapshot(); // holds the generation the clear retires
    let retired = map.clear_async();
    assert!(!retired.would_wait_for_itself() && !reclaimer.in_pass());
    let ticket: Arc<std::sync::Mutex<Option<atomic_map::Retired>>> = Default::default();
    let seen: Seen = Default::default();
    *ticket.lock().unwrap() = Some(retired.clone());
    map.insert(
        1,
        AsksFromItsDestructor {
            reclaimer: reclaimer.clone(),
            ticket: ticket.clone(),
            seen: seen.clone(),
        },
    );
    drop(map.remove(&1));
    assert!(reclaimer.flush(DEADLINE));
    assert_eq!(*seen.lock().unwrap(), Some((true, true)));
    ticket.lock().unwrap().take();
    drop(snapshot);
    assert!(retired.wait_timeout(DEADLINE));
}
