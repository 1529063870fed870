//! Torture: a poisoned, recycled pool of values under readers (retained, pinned,
//! snapshot iterators), writers, a clearer with bursts, `replace`, a reader that
//! stalls while pinned, threads that panic while pinned and holding values, and
//! destructors that are slow or panic.
//!
//! * **Poisoned pool** (after rcutorture): every value owns one of 100 recycled
//!   slots; the slot records the value's unique stamp while it lives and is poisoned
//!   by its destructor. Readers check the slot on every access, so a use after free
//!   shows as a wrong stamp even without a sanitizer.
//! * **Conservation**: every 100 ms a sampler pauses the threads that own values
//!   (each holds a shared "world" lock for one iteration, and while it releases
//!   what it holds on exit; pinned readers own none and keep running) and counts
//!   what is referenced: the current generation's entries, the retained readers'
//!   handles, the C-style holder's raw references.
//!   At once `created - destroyed >= referenced` (nothing referenced was destroyed);
//!   after the reclaimer has drained every retired generation and pending value,
//!   `created - destroyed == referenced` exactly, and `stats()` agrees (destroyed
//!   values, map length). At the end `created == destroyed`, the pool is all free,
//!   nothing is pending, and `stats()` agrees (destroyed values, contained panics).
//! * **Generation age**: pinned readers record how many generations behind the
//!   current one their pinned generation is (printed); a reader seeing a value
//!   stamped with a newer generation than the one it pinned is a failure.
//! * **Bounded garbage**: while a reader stalls 300 ms pinned, the generations
//!   retired meanwhile wait for it (a pinned reader holds up every generation
//!   retired while it is pinned, as it holds up removed values: the slot's
//!   reference to a generation is released after an epoch grace period; see
//!   docs/DESIGN.md, "One protection per read"): at most the stall's clears, plus
//!   what was retired before it, are pending at any sample of the stall; after it
//!   unpins they drain below 64 before the run ends. Outside the stall the peak is
//!   reported (bursts of 1,000 clears pile up between two reclaimer passes).
//!
//! Size: `ATOMIC_MAP_TORTURE_MS` (default 2000; release checks run 60000).

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Operation, ValueRef};

const SLOTS: usize = 100;
const POISON: u64 = u64::MAX;
const KEYS: u64 = 32;

struct Pool {
    owner: Vec<AtomicU64>,
    free: Mutex<Vec<usize>>,
    next_stamp: AtomicU64,
    created: AtomicUsize,
    destroyed: AtomicUsize,
    panicked: AtomicUsize,
}

impl Pool {
    fn new() -> Arc<Self> {
        Arc::new(Pool {
            owner: (0..SLOTS).map(|_| AtomicU64::new(POISON)).collect(),
            free: Mutex::new((0..SLOTS).collect()),
            next_stamp: AtomicU64::new(1),
            created: AtomicUsize::new(0),
            destroyed: AtomicUsize::new(0),
            panicked: AtomicUsize::new(0),
        })
    }

    /// A new value, or `None` when every slot is in use (the pool bounds live values).
    fn make(self: &Arc<Self>, generation: u64, seed: u64) -> Option<Pooled> {
        let slot = self.free.lock().unwrap().pop()?;
        let stamp = self.next_stamp.fetch_add(1, SeqCst);
        assert_eq!(
            self.owner[slot].swap(stamp, SeqCst),
            POISON,
            "slot {slot} handed out twice"
        );
        self.created.fetch_add(1, SeqCst);
        Some(Pooled {
            slot,
            stamp,
            generation,
            slow: seed % 53 == 0,
            panics: seed % 97 == 0,
            pool: Arc::clone(self),
        })
    }
}

struct Pooled {
    slot: usize,
    stamp: u64,
    /// The map's generation when the writer made it: the value lands in that
    /// generation or a later one.
    generation: u64,
    slow: bool,
    panics: bool,
    pool: Arc<Pool>,
}

impl Pooled {
    fn check(&self) {
        let owner = self.pool.owner[self.slot].load(SeqCst);
        assert_eq!(
            owner, self.stamp,
            "use after free: slot {} holds {owner:#x}",
            self.slot
        );
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let owner = self.pool.owner[self.slot].swap(POISON, SeqCst);
        assert_eq!(
            owner, self.stamp,
            "destroyed twice or corrupted (slot {})",
            self.slot
        );
        self.pool.free.lock().unwrap().push(self.slot);
        self.pool.destroyed.fetch_add(1, SeqCst);
        if self.slow {
            thread::sleep(Duration::from_micros(50));
        }
        if self.panics {
            self.pool.panicked.fetch_add(1, SeqCst);
            panic!("a destructor that panics (expected by the torture test)");
        }
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn torture() {
    let run_for = Duration::from_millis(
        std::env::var("ATOMIC_MAP_TORTURE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
    );
    quiet_expected_panics();
    let pool = Pool::new();
    let map: Arc<AtomicMap<u64, Pooled>> = Arc::new(AtomicMap::new());
    let stop = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    // Held by the conservation sampler while it checks, and by the stalling reader
    // to begin its long stall: the sampler skips its checks during the stall (its
    // drain would wait for the stall, and pause the clearer, for 300 ms).
    let stall_gate = Arc::new(Mutex::new(()));
    let ages = Arc::new(Mutex::new(BTreeMap::<u64, u64>::new()));
    // Threads that own values hold this shared for one iteration; the conservation
    // sampler takes it exclusively to count what is referenced.
    let world = Arc::new(RwLock::new(()));
    let holdings = Holdings::default();
    let mut threads = Vec::new();

    // Retained readers, one per core, holding a few values across clears.
    for seed in 1..=2u64 {
        let (map, stop, world) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&world));
        let held = Arc::clone(&holdings.handles[seed as usize - 1]);
        threads.push(thread::spawn(move || {
            let mut rng = seed;
            while !stop.load(SeqCst) {
                let _turn = world.read().unwrap();
                if let Some(v) = map.get(&(xorshift(&mut rng) % KEYS)) {
                    v.check();
                    let mut held = held.lock().unwrap();
                    held.push(v);
                    if held.len() > 4 {
                        held.remove(0).check();
                    }
                }
            }
            // Released under a turn too, so that the sampler never counts a value
            // this thread is dropping.
            let _turn = world.read().unwrap();
            held.lock().unwrap().drain(..).for_each(|v| v.check());
        }));
    }
    // A C-style holder: raw references through `into_raw`, `increment_count`,
    // `decrement_count` and `from_raw`, the calls behind `amap_value_retain` and
    // `amap_value_release`, kept across clears.
    {
        let (map, stop, world) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&world));
        let held = Arc::clone(&holdings.raw);
        threads.push(thread::spawn(move || {
            let mut rng = 8u64;
            while !stop.load(SeqCst) {
                let _turn = world.read().unwrap();
                let Some(v) = map.get(&(xorshift(&mut rng) % KEYS)) else {
                    continue;
                };
                let stamp = v.stamp;
                let raw = ValueRef::into_raw(v);
                if xorshift(&mut rng) % 4 == 0 {
                    // SAFETY: `raw` owns a reference; the extra one is given back at once.
                    unsafe {
                        ValueRef::increment_count(raw);
                        (*raw).check();
                        ValueRef::decrement_count(raw);
                    }
                }
                let mut held = held.lock().unwrap();
                held.push(RawHeld { ptr: raw, stamp });
                if held.len() > 6 {
                    held.remove(0).release();
                }
            }
            let _turn = world.read().unwrap(); // as for the retained readers
            held.lock().unwrap().drain(..).for_each(RawHeld::release);
        }));
    }
    // Pinned readers: one stalls 200 µs now and then, and once for 300 ms.
    for (seed, stalls) in [(3u64, false), (4, true)] {
        let (map, stop, stalled, ages) = (
            Arc::clone(&map),
            Arc::clone(&stop),
            Arc::clone(&stalled),
            Arc::clone(&ages),
        );
        let stall_gate = Arc::clone(&stall_gate);
        threads.push(thread::spawn(move || {
            let mut rng = seed;
            let mut local: BTreeMap<u64, u64> = BTreeMap::new();
            let mut long_stall_done = false;
            let start = Instant::now();
            while !stop.load(SeqCst) {
                let long_stall = stalls && !long_stall_done && start.elapsed() > run_for / 3;
                if long_stall {
                    // Not while the conservation sampler is waiting for a drain,
                    // which this stall would hold up (see `stall_gate`).
                    let _gate = stall_gate.lock().unwrap();
                    stalled.store(true, SeqCst);
                }
                let guard = map.pin();
                let pinned = guard.generation();
                let age = map.generation().saturating_sub(pinned);
                *local.entry(age.min(16)).or_default() += 1;
                let seen: Vec<&Pooled> = (0..4)
                    .filter_map(|_| guard.get_borrowed(&(xorshift(&mut rng) % KEYS)))
                    .collect();
                for v in &seen {
                    v.check();
                    assert!(
                        v.generation <= pinned,
                        "entry of generation {} seen from {pinned}",
                        v.generation
                    );
                }
                if stalls && xorshift(&mut rng) % 64 == 0 {
                    thread::sleep(Duration::from_micros(200));
                }
                if long_stall {
                    long_stall_done = true;
                    thread::sleep(Duration::from_millis(300));
                    stalled.store(false, SeqCst);
                }
                seen.iter().for_each(|v| v.check());
            }
            let mut ages = ages.lock().unwrap();
            for (age, n) in local {
                *ages.entry(age).or_default() += n;
            }
        }));
    }
    // Writer: insert, remove, upsert, over a small key space.
    {
        let (map, stop, pool) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&pool));
        let world = Arc::clone(&world);
        threads.push(thread::spawn(move || {
            let mut rng = 5u64;
            while !stop.load(SeqCst) {
                let _turn = world.read().unwrap();
                let k = xorshift(&mut rng) % KEYS;
                let seed = xorshift(&mut rng);
                match seed % 4 {
                    0 | 1 => {
                        if let Some(v) = pool.make(map.generation(), seed) {
                            map.insert(k, v);
                        }
                    }
                    2 => drop(map.remove(&k)),
                    _ => {
                        // compute: replace when a slot is free, else keep.
                        drop(map.compute(k, |old| {
                            old.map(Pooled::check);
                            // Stamped 0: never newer than a pinned generation (the
                            // closure runs under the shard lock and must not call
                            // back into the map).
                            match pool.make(0, seed) {
                                Some(value) => Operation::<_>::Insert(value),
                                None => Operation::Keep,
                            }
                        }));
                    }
                }
            }
        }));
    }
    // Clearer: pauses, bursts of 1,000 clears, and `replace`.
    let clears = Arc::new(AtomicU64::new(0));
    {
        let (map, stop, pool, clears) = (
            Arc::clone(&map),
            Arc::clone(&stop),
            Arc::clone(&pool),
            Arc::clone(&clears),
        );
        let (world, stalled) = (Arc::clone(&world), Arc::clone(&stalled));
        threads.push(thread::spawn(move || {
            let mut rng = 6u64;
            while !stop.load(SeqCst) {
                let turn = world.read().unwrap();
                match xorshift(&mut rng) % 50 {
                    0 if !stalled.load(SeqCst) => {
                        // Counted one by one: a burst that began before the stall
                        // goes on during it, and the stall's bound counts its clears.
                        for _ in 0..1000 {
                            map.clear_async();
                            clears.fetch_add(1, SeqCst);
                        }
                    }
                    1..=5 => {
                        let generation = map.generation();
                        let entries: Vec<(u64, Pooled)> = (0..4)
                            .filter_map(|k| {
                                pool.make(generation, xorshift(&mut rng)).map(|v| (k, v))
                            })
                            .collect();
                        map.replace(entries);
                        clears.fetch_add(1, SeqCst);
                    }
                    _ => {
                        map.clear_async();
                        clears.fetch_add(1, SeqCst);
                        drop(turn);
                        thread::sleep(Duration::from_micros(300));
                    }
                }
            }
        }));
    }
    // Snapshot iterator.
    {
        let (map, stop, world) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&world));
        threads.push(thread::spawn(move || {
            while !stop.load(SeqCst) {
                let _turn = world.read().unwrap();
                let snap = map.snapshot();
                for (k, v) in snap.iter() {
                    assert!(k < KEYS);
                    v.check();
                    assert!(v.generation <= snap.generation());
                }
            }
        }));
    }
    // Threads that panic while pinned and holding values, spread over the run.
    let panicker = {
        let (map, world) = (Arc::clone(&map), Arc::clone(&world));
        thread::spawn(move || {
            let mut panicked = 0;
            for round in 0..3u64 {
                let (map2, world) = (Arc::clone(&map), Arc::clone(&world));
                let outcome = thread::spawn(move || {
                    let _turn = world.read().unwrap();
                    let _guard = map2.pin();
                    let _held: Vec<_> = (0..KEYS).filter_map(|k| map2.get(&k)).collect();
                    panic!("a thread that panics while pinned and holding values (round {round})");
                })
                .join();
                assert!(outcome.is_err());
                panicked += 1;
                thread::sleep(run_for / 8);
            }
            panicked
        })
    };

    // Conservation, sampled while the storm runs.
    let sampler = {
        let (map, stop, pool) = (Arc::clone(&map), Arc::clone(&stop), Arc::clone(&pool));
        let (world, holdings) = (Arc::clone(&world), holdings.clone());
        let (stall_gate, stalled) = (Arc::clone(&stall_gate), Arc::clone(&stalled));
        thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(SeqCst) {
                thread::sleep(Duration::from_millis(100));
                let _gate = stall_gate.lock().unwrap();
                if stalled.load(SeqCst) {
                    continue;
                }
                let _paused = world.write().unwrap();
                check_conservation(&map, &pool, &holdings);
                samples += 1;
            }
            samples
        })
    };

    // Sample garbage while the storm runs; check the bound around the long stall.
    let start = Instant::now();
    let (mut peak_retired, mut peak_pending) = (0, 0);
    let mut stall_began: Option<(Instant, u64)> = None;
    let mut stall_clears = None;
    let mut drained_after_stall = None;
    let mut stall_peak = 0;
    // Retired generations pending when the stall began: the stall may hold up
    // these and every one retired during it, no more.
    let mut backlog = 0;
    while start.elapsed() < run_for.max(Duration::from_millis(1500)) {
        // The clears counted before the sample: a clear that ends between the two
        // is then counted among the stall's, not lost between its backlog (the
        // sample) and its count.
        let clears_seen = clears.load(SeqCst);
        let s = map.stats();
        peak_retired = peak_retired.max(s.retired_generations);
        peak_pending = peak_pending.max(s.pending_values);
        if stalled.load(SeqCst) {
            if stall_began.is_none() {
                backlog = peak_retired;
            }
            let (_, before) = *stall_began.get_or_insert_with(|| (Instant::now(), clears_seen));
            stall_peak = stall_peak.max(s.retired_generations);
            let cleared = clears.load(SeqCst) - before;
            assert!(
                s.retired_generations as u64 <= backlog as u64 + cleared + 1,
                "{} generations pending during the stall: more than the {backlog} before it \
                 and the {cleared} retired during it",
                s.retired_generations
            );
        } else if let Some((_, before)) = stall_began.filter(|_| stall_clears.is_none()) {
            stall_clears = Some(clears.load(SeqCst) - before);
        }
        if stall_clears.is_some() && drained_after_stall.is_none() && s.retired_generations < 64 {
            drained_after_stall = Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, SeqCst);
    for t in threads {
        t.join().expect("a torture thread failed");
    }
    let panicked_threads = panicker.join().expect("the panicking-thread driver failed");
    let conservation_samples = sampler.join().expect("a conservation check failed");
    assert!(conservation_samples >= 3, "too few conservation samples");
    assert!(stall_began.is_some(), "the long stall did not happen");
    let stall_clears = stall_clears.expect("the end of the stall was not seen");
    println!(
        "stall: {stall_clears} clears during it, peak {stall_peak} retired generations \
         pending (backlog {backlog} before it)"
    );
    assert!(
        drained_after_stall.is_some(),
        "garbage did not drain below 64 generations after the stall"
    );

    // Conservation.
    let map = Arc::into_inner(map).expect("all threads joined");
    map.clear_async();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        map.reclaim();
        let s = map.stats();
        if s.pending_values == 0 && s.retired_generations == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "did not drain: {s:?}");
        thread::sleep(Duration::from_millis(1));
    }
    let stats = map.stats();
    let (created, destroyed) = (pool.created.load(SeqCst), pool.destroyed.load(SeqCst));
    assert_eq!(created, destroyed, "values created vs destroyed");
    assert_eq!(
        stats.reclaimed_values as usize, destroyed,
        "stats vs the pool's count"
    );
    assert_eq!(
        stats.destructor_panics as usize,
        pool.panicked.load(SeqCst),
        "contained panics"
    );
    assert_eq!(
        pool.free.lock().unwrap().len(),
        SLOTS,
        "every slot back in the pool"
    );
    assert!(pool.owner.iter().all(|o| o.load(SeqCst) == POISON));
    drop(map);
    eprintln!(
        "torture: {created} values, {} clears, {panicked_threads} panicking threads, peak retired {peak_retired} \
         ({stall_peak} during the stall, which saw {stall_clears} clears), peak pending {peak_pending}, drained {:?} after start, generation ages {:?}, {} destructor panics contained, \
         {conservation_samples} conservation samples",
        clears.load(SeqCst),
        drained_after_stall.unwrap(),
        ages.lock().unwrap(),
        stats.destructor_panics
    );
}

/// What the value-owning threads hold, for the conservation sampler to count.
#[derive(Clone, Default)]
struct Holdings {
    /// The two retained readers' handles.
    handles: [Arc<Mutex<Vec<ValueRef<Pooled>>>>; 2],
    /// The C-style holder's raw references.
    raw: Arc<Mutex<Vec<RawHeld>>>,
}

/// A raw reference from `ValueRef::into_raw`, as C holds one.
struct RawHeld {
    ptr: *const Pooled,
    stamp: u64,
}

// SAFETY: `RawHeld` owns a reference to a `Pooled` (which is `Send + Sync`), like the
// `ValueRef` it came from, which is `Send`.
unsafe impl Send for RawHeld {}

impl RawHeld {
    fn release(self) {
        // SAFETY: `ptr` owns the reference taken by `into_raw`, given back once here.
        unsafe {
            (*self.ptr).check();
            ValueRef::decrement_count(self.ptr);
        }
    }
}

/// With every value-owning thread paused: nothing referenced was destroyed, and
/// once the reclaimer has drained what is unreferenced, `created - destroyed` is
/// exactly what is referenced, and `stats()` agrees.
fn check_conservation(map: &AtomicMap<u64, Pooled>, pool: &Pool, holdings: &Holdings) {
    let mut referenced = HashSet::new();
    let in_map = {
        let snap = map.snapshot();
        snap.iter().for_each(|(_, v)| {
            referenced.insert(v.stamp);
        });
        snap.len()
    };
    for handles in &holdings.handles {
        referenced.extend(handles.lock().unwrap().iter().map(|v| v.stamp));
    }
    referenced.extend(holdings.raw.lock().unwrap().iter().map(|r| r.stamp));
    let live = |pool: &Pool| pool.created.load(SeqCst) - pool.destroyed.load(SeqCst);
    assert!(
        live(pool) >= referenced.len(),
        "conservation: {} live values but {} referenced (a referenced value was destroyed)",
        live(pool),
        referenced.len()
    );
    // Wait for the reclaimer to drain; then `created - destroyed` must equal what is
    // referenced, and `stats()` must agree with the pool's count (a destroyed value
    // is counted by the pool inside its destructor, by the map just after, so the
    // figures are re-read until they settle). Pinned readers keep running and may
    // hold a retired generation (300 ms at most).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = map.stats();
        let (live, destroyed) = (live(pool), pool.destroyed.load(SeqCst));
        if s.retired_generations == 0
            && s.pending_values == 0
            && live == referenced.len()
            && s.reclaimed_values as usize == destroyed
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "conservation: after draining, created - destroyed = {live} but {} referenced \
             (in map {in_map}); the pool counts {destroyed} destroyed; stats() {s:?}",
            referenced.len()
        );
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(map.len(), in_map, "conservation: map length");
}

/// Keeps the injected panics (destructors, dying threads) out of the output; any
/// other panic is reported as usual.
fn quiet_expected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !(text.contains("expected by the torture test") || text.contains("panics while pinned"))
        {
            default(info);
        }
    }));
}
