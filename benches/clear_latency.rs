//! Clear latency vs size, and the readers' stall during clears, for every map.
//!
//! For each map, key type (`u64 -> u64`, `String -> Vec<u8>` of 64 bytes), reader
//! count (0, 1, 2) and size (1,000 to 1,000,000 entries), it fills the map and clears
//! it, round after round, while the readers look up random present keys:
//!
//! * **clear latency**: the clear call, timed on the calling thread (median, p99,
//!   max over the rounds); for `AtomicMap`, the teardown its reclaimer does after the
//!   call returned is timed separately ("reclaim": from the call's return until
//!   `Retired::wait` returns);
//! * **reader stall**: every get's latency goes into an hdrhistogram of the window it
//!   fell in: a *clear* window (the clear call plus the 2 ms after it, where deferred
//!   work lands), for `AtomicMap` a *reclaim* window (from then until its reclaimer
//!   finished the teardown), and a *quiet* window of the clear window's length just
//!   before each clear. Reported: p50/p99/p99.9, max, and the count of gets slower than
//!   100 µs. A get that starts in one window and ends in another counts in the busier.
//!
//! Criterion's model (many iterations of a cheap routine) cannot time one call that
//! needs an O(n) refill before it without timing millions of refills, so this
//! benchmark times each call itself (`harness = false`). Results go to
//! `target/bench-results/clear.csv` and `stall.csv`; `benches/report.py` turns them
//! into the tables and plots of `docs/BENCHMARKS.md`.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench clear_latency                     # full run (minutes)
//! cargo bench -p atomic-map-benches --bench clear_latency -- --test           # smoke run (CI)
//! cargo bench -p atomic-map-benches --bench clear_latency -- --sizes 1000000 --readers 2 --keys u64
//! cargo bench -p atomic-map-benches --bench clear_latency -- --sizes 1000000 --readers 2 --keys u64 --maps AtomicMap,DashMap
//! ```
//!
//! `--maps` keeps the maps whose name contains one of the given words (every map
//! when left out).

mod peers;

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use peers::{Key, Peer, Rng};

/// How long after a clear returns its window extends.
const AFTER_CLEAR: Duration = Duration::from_millis(2);
/// A get slower than this counts as a stall.
const SLOW_NS: u64 = 100_000;

/// The window a get falls in; a higher number wins when a get spans two.
const NONE: u8 = 0;
const QUIET: u8 = 1;
const RECLAIM: u8 = 2;
const CLEAR: u8 = 3;
const WINDOWS: [(u8, &str); 3] = [(QUIET, "quiet"), (CLEAR, "clear"), (RECLAIM, "reclaim")];

struct Options {
    sizes: Vec<u64>,
    readers: Vec<usize>,
    keys: Vec<String>,
    /// Words a map's name must contain one of; empty: every map.
    maps: Vec<String>,
    /// Rounds at 1,000 entries; fewer at larger sizes (see `rounds_for`).
    rounds_small: usize,
    out_dir: std::path::PathBuf,
}

fn options() -> Options {
    let mut o = Options {
        sizes: vec![1_000, 10_000, 100_000, 1_000_000],
        readers: vec![0, 1, 2],
        keys: vec!["u64".into(), "string".into()],
        maps: Vec::new(),
        rounds_small: 200,
        out_dir: std::path::PathBuf::from(peers::cases::results_dir(false)),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut list = || args.next().unwrap_or_default();
        match arg.as_str() {
            // Smoke mode for CI: every map, tiny sizes, two rounds.
            "--test" => {
                o.sizes = vec![1_000];
                o.readers = vec![0, 1];
                o.rounds_small = 2;
                o.out_dir = std::path::PathBuf::from(peers::cases::results_dir(true));
            }
            "--sizes" => o.sizes = list().split(',').map(|s| s.parse().unwrap()).collect(),
            "--readers" => o.readers = list().split(',').map(|s| s.parse().unwrap()).collect(),
            "--keys" => o.keys = list().split(',').map(String::from).collect(),
            "--maps" => o.maps = list().split(',').map(String::from).collect(),
            // cargo bench passes --bench; criterion-style filters are not supported.
            "--bench" => {}
            other => {
                eprintln!(
                    "usage: clear_latency [--test] [--sizes 1000,...] [--readers 0,1,2] [--keys u64,string] [--maps AtomicMap,DashMap,...]"
                );
                panic!("unknown argument {other}");
            }
        }
    }
    o
}

/// Rounds at a size: enough for a median and a p99 at small sizes; at 1,000,000
/// entries each round refills the map, so fewer (the p99 is then the maximum).
fn rounds_for(o: &Options, size: u64) -> usize {
    let scaled = (o.rounds_small as u64 * 1_000 / size.max(1)) as usize;
    scaled.clamp(o.rounds_small.min(7), o.rounds_small)
}

struct ClearRow {
    key: &'static str,
    map: &'static str,
    size: u64,
    readers: usize,
    clears: Vec<Duration>,
    reclaims: Vec<Duration>,
    windows: Vec<Histogram<u64>>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// One map at one size with `readers` reader threads.
fn measure<K: Key>(
    map: Arc<dyn Peer<K>>,
    keys: &Arc<Vec<K>>,
    size: u64,
    readers: usize,
    rounds: usize,
) -> ClearRow {
    let window = Arc::new(AtomicU8::new(NONE));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..readers)
        .map(|r| {
            let (map, keys, window, stop) = (
                Arc::clone(&map),
                Arc::clone(keys),
                Arc::clone(&window),
                Arc::clone(&stop),
            );
            thread::spawn(move || {
                let mut hists: Vec<Histogram<u64>> = (0..4).map(|_| new_histogram()).collect();
                let mut rng = Rng::new(r as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let k = &keys[rng.below(size) as usize];
                    // Relaxed: the window flags only label samples; a get that
                    // overlaps a change is labelled with the busier window.
                    let before = window.load(Ordering::Relaxed);
                    let start = Instant::now();
                    black_box(map.read(k));
                    let took = start.elapsed().as_nanos() as u64;
                    let w = before.max(window.load(Ordering::Relaxed));
                    hists[w as usize].saturating_record(took.max(1));
                }
                hists
            })
        })
        .collect();

    let mut clears = Vec::with_capacity(rounds);
    let mut reclaims = Vec::new();
    let mut clear_window = AFTER_CLEAR;
    // One round more than recorded: the first sets the quiet window's length.
    for round in 0..=rounds {
        map.fill(size);
        // scc's `len` can count an entry twice while an incremental resize is still
        // moving entries (seen once in CI: 1,001 of 1,000); later accesses finish
        // the move, so re-read for a while before calling the fill wrong.
        for _ in 0..1000 {
            if map.len() as u64 == size {
                break;
            }
            map.read(&K::key(0));
            thread::sleep(Duration::from_millis(1));
        }
        let len = map.len() as u64;
        if len != size && map.name() == "scc" {
            // Seen again in CI (2026-11-30): 1,001 of 1,000 after a second of
            // re-reads. The fill inserted exactly `size` keys; only scc's count is off.
            eprintln!("note: scc reports {len} entries after a fill of {size}; going on");
        } else {
            assert_eq!(len, size, "{}: fill", map.name());
        }
        thread::sleep(Duration::from_millis(1));
        let record = round > 0;
        if record {
            window.store(QUIET, Ordering::Relaxed);
        }
        thread::sleep(clear_window);
        window.store(if record { CLEAR } else { NONE }, Ordering::Relaxed);
        let (took, leftover) = map.clear();
        let returned = Instant::now();
        thread::sleep(AFTER_CLEAR);
        if let Some(retired) = leftover {
            window.store(if record { RECLAIM } else { NONE }, Ordering::Relaxed);
            retired.wait();
            if record {
                reclaims.push(returned.elapsed());
            }
        }
        window.store(NONE, Ordering::Relaxed);
        clear_window = took + AFTER_CLEAR;
        if record {
            clears.push(took);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut windows: Vec<Histogram<u64>> = (0..4).map(|_| new_histogram()).collect();
    for t in threads {
        for (all, mine) in windows.iter_mut().zip(t.join().expect("a reader panicked")) {
            all.add(mine).unwrap();
        }
    }
    clears.sort();
    reclaims.sort();
    ClearRow {
        key: K::NAME,
        map: map.name(),
        size,
        readers,
        clears,
        reclaims,
        windows,
    }
}

fn run<K: Key>(o: &Options, rows: &mut Vec<ClearRow>) {
    let max = o.sizes.iter().copied().max().unwrap_or(0);
    let keys: Arc<Vec<K>> = Arc::new((0..max).map(K::key).collect());
    for &readers in &o.readers {
        for &size in &o.sizes {
            let rounds = rounds_for(o, size);
            let chosen = peers::all::<K>(false).into_iter().filter(|map| {
                o.maps.is_empty() || o.maps.iter().any(|word| map.name().contains(word.as_str()))
            });
            for map in chosen {
                let row = measure(map, &keys, size, readers, rounds);
                let median = percentile(&row.clears, 0.5);
                let stall = &row.windows[CLEAR as usize];
                eprintln!(
                    "{:6} {:>9} entries, {} readers: {:34} clear median {:>10.1?} max {:>10.1?}; readers in clear windows: max {:>9.1?}, {} gets > 100 µs",
                    K::NAME,
                    size,
                    readers,
                    row.map,
                    median,
                    row.clears.last().copied().unwrap_or_default(),
                    Duration::from_nanos(stall.max()),
                    stall.count_between(SLOW_NS + 1, u64::MAX),
                );
                rows.push(row);
            }
        }
    }
}

fn write_results(o: &Options, rows: &[ClearRow]) -> std::io::Result<()> {
    std::fs::create_dir_all(&o.out_dir)?;
    let mut clear = std::fs::File::create(o.out_dir.join("clear.csv"))?;
    writeln!(
        clear,
        "key,map,size,readers,rounds,median_ns,p99_ns,max_ns,reclaim_median_ns,reclaim_max_ns"
    )?;
    let mut stall = std::fs::File::create(o.out_dir.join("stall.csv"))?;
    writeln!(
        stall,
        "key,map,size,readers,window,gets,p50_ns,p99_ns,p999_ns,max_ns,slow_gets"
    )?;
    for r in rows {
        let ns = |d: Duration| d.as_nanos();
        let reclaim = |p| {
            if r.reclaims.is_empty() {
                String::new()
            } else {
                ns(percentile(&r.reclaims, p)).to_string()
            }
        };
        writeln!(
            clear,
            "{},{},{},{},{},{},{},{},{},{}",
            r.key,
            r.map,
            r.size,
            r.readers,
            r.clears.len(),
            ns(percentile(&r.clears, 0.5)),
            ns(percentile(&r.clears, 0.99)),
            ns(percentile(&r.clears, 1.0)),
            reclaim(0.5),
            reclaim(1.0),
        )?;
        for (w, name) in WINDOWS {
            let h = &r.windows[w as usize];
            if h.is_empty() {
                continue;
            }
            writeln!(
                stall,
                "{},{},{},{},{},{},{},{},{},{},{}",
                r.key,
                r.map,
                r.size,
                r.readers,
                name,
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
                h.count_between(SLOW_NS + 1, u64::MAX),
            )?;
        }
    }
    Ok(())
}

fn main() {
    let o = options();
    let mut rows = Vec::new();
    if !o.maps.is_empty() {
        let names: Vec<&'static str> = peers::all::<u64>(false).iter().map(|m| m.name()).collect();
        assert!(
            names
                .iter()
                .any(|name| o.maps.iter().any(|word| name.contains(word.as_str()))),
            "--maps {:?} matches none of {names:?}",
            o.maps
        );
    }
    for key in &o.keys {
        match key.as_str() {
            "u64" => run::<u64>(&o, &mut rows),
            "string" => run::<String>(&o, &mut rows),
            other => panic!("unknown key type {other} (u64, string)"),
        }
    }
    write_results(&o, &rows).expect("writing the results");
    eprintln!("results in {}", o.out_dir.display());
}
