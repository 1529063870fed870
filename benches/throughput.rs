//! Read and write throughput of every map (criterion), `u64 -> u64`:
//!
//! * `read_only` and `read_mostly` (94% get, 3% insert, 3% remove; a bustle-style
//!   mix) over 100,000 entries, keys uniform or Zipf-distributed (s = 1.0);
//! * `read_section`: read-only, 16 lookups per read section (one `pin()` for
//!   `AtomicMap` and papaya, one guard for the locks, one `load` for `ArcSwap`);
//! * `write` mixes over 10,000 keys: `insert_remove` (50/50) and `upsert` (every op
//!   replaces the value of a present key);
//! * `write/exchange`: conc-map-bench's Exchange mix, 10% get, 40% insert, 40%
//!   remove, 10% update, over keys of which 75% are present at the start (10,000
//!   filled, operations over 13,333 keys);
//! * `read_heavy`: conc-map-bench's ReadHeavy mix, 98% get, 1% insert, 1% remove,
//!   over keys of which 75% are present at the start (100,000 filled, operations
//!   over 133,333 keys, uniform);
//!
//! Every group runs `DashMap` twice: on its default hasher (std's SipHash, as a
//! user gets it) and as "DashMap (foldhash)" on `AtomicMap`'s default hasher, so
//! that the ratios can be read with and without the hasher's share.
//!
//! (the read groups' 100,000 entries are `ATOMIC_MAP_BENCH_ENTRIES` if set, e.g.
//! `1000000`), each with 1 and 2 threads, or the thread counts in `ATOMIC_MAP_BENCH_THREADS`
//! (comma-separated, e.g. `1,2,4,8,16` on a machine with 16 cores). Every thread replays its own precomputed sequence of
//! operations, so no random number is drawn while timed. Criterion reports the time
//! of one round (one operation on every thread) and, as throughput, operations per
//! second over all threads.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench throughput                 # full run
//! cargo bench -p atomic-map-benches --bench throughput -- read_only    # one group
//! cargo bench -p atomic-map-benches --bench throughput -- --test       # smoke run (CI)
//! ATOMIC_MAP_BENCH_THREADS=1,4,8,16 cargo bench -p atomic-map-benches --bench throughput -- read_heavy
//! ```

mod peers;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use peers::{Peer, Rng, uniform_indices, zipf_indices};

/// Entries of the read groups: `ATOMIC_MAP_BENCH_ENTRIES`, else 100,000.
fn read_entries() -> u64 {
    match std::env::var("ATOMIC_MAP_BENCH_ENTRIES") {
        Ok(n) => match n.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => panic!("ATOMIC_MAP_BENCH_ENTRIES: not an entry count: {n:?}"),
        },
        Err(_) => 100_000,
    }
}
const WRITE_KEYS: u64 = 10_000;
/// Operations precomputed per thread; replayed in a loop.
const SEQUENCE: usize = 1 << 16;

/// Thread counts to run: `ATOMIC_MAP_BENCH_THREADS` (comma-separated), else 1 and 2.
fn thread_counts() -> Vec<usize> {
    match std::env::var("ATOMIC_MAP_BENCH_THREADS") {
        Ok(list) => list
            .split(',')
            .map(|n| match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => panic!("ATOMIC_MAP_BENCH_THREADS: not a thread count: {n:?}"),
            })
            .collect(),
        Err(_) => vec![1, 2],
    }
}

/// Keys looked up per read section in the `read_section` group.
const SECTION: usize = 16;

#[derive(Clone, Copy)]
enum Op {
    Get(u64),
    Insert(u64),
    Remove(u64),
    Update(u64),
    /// Looks up `SECTION` keys from this offset of the thread's key list in one
    /// read section (`Peer::read_section`).
    Section(usize),
}

/// `percent_get` % gets, the rest split between inserts and removes.
fn mix(indices: Vec<u64>, percent_get: u64, seed: u64) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    indices
        .into_iter()
        .map(|k| match rng.below(100) {
            p if p < percent_get => Op::Get(k),
            p if p < percent_get + (100 - percent_get) / 2 => Op::Insert(k),
            _ => Op::Remove(k),
        })
        .collect()
}

/// Runs `iters` operations of its sequence on each of the threads at once;
/// returns the wall time from the common start to the last thread's end.
fn run(
    map: &Arc<dyn Peer<u64>>,
    sequences: &[Arc<Vec<Op>>],
    keys: &[Arc<Vec<u64>>],
    iters: u64,
) -> Duration {
    let start = Arc::new(Barrier::new(sequences.len() + 1));
    let threads: Vec<_> = sequences
        .iter()
        .zip(keys)
        .map(|(ops, keys)| {
            let (map, ops, start) = (Arc::clone(map), Arc::clone(ops), Arc::clone(&start));
            let keys = Arc::clone(keys);
            thread::spawn(move || {
                start.wait();
                let mut sum = 0u64;
                for op in ops.iter().cycle().take(iters as usize) {
                    match *op {
                        Op::Get(k) => sum = sum.wrapping_add(map.read(&k)),
                        Op::Insert(k) => map.insert(k, k),
                        Op::Remove(k) => map.remove(&k),
                        Op::Update(k) => map.update(&k),
                        Op::Section(at) => {
                            sum = sum.wrapping_add(map.read_section(&keys[at..at + SECTION]))
                        }
                    }
                }
                black_box(sum);
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for t in threads {
        t.join().expect("a benchmark thread panicked");
    }
    began.elapsed()
}

/// One criterion group: every map, 1 and 2 threads, on sequences from `make(thread)`
/// (operations, and the key list that `Op::Section` reads from); `per_op` lookups
/// per operation, for the throughput figure.
fn group(
    c: &mut Criterion,
    name: &str,
    entries: u64,
    make: impl Fn(usize) -> (Vec<Op>, Vec<u64>),
    with_retained: bool,
    per_op: u64,
) {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let thread_counts = thread_counts();
    let most = thread_counts.iter().copied().max().unwrap_or(1);
    let (sequences, keys): (Vec<_>, Vec<_>) = (0..most)
        .map(|t| {
            let (ops, keys) = make(t);
            (Arc::new(ops), Arc::new(keys))
        })
        .unzip();
    let mut maps = peers::all::<u64>(with_retained);
    // Beside `DashMap` on its default hasher, `DashMap` on ours: how much of a
    // ratio is the hasher (foldhash against SipHash).
    let at = maps
        .iter()
        .position(|m| m.name() == "DashMap")
        .map_or(0, |i| i + 1);
    maps.insert(at, Arc::new(peers::DashMapSameHasher::default()));
    for map in maps {
        map.fill(entries);
        for &threads in &thread_counts {
            g.throughput(Throughput::Elements(threads as u64 * per_op));
            g.bench_with_input(BenchmarkId::new(map.name(), threads), &threads, |b, &n| {
                b.iter_custom(|iters| run(&map, &sequences[..n], &keys[..n], iters))
            });
        }
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let entries = read_entries();
    for (dist, zipf) in [("uniform", false), ("zipf", true)] {
        let indices = move |t: usize| {
            if zipf {
                zipf_indices(entries, 1.0, SEQUENCE, t as u64 + 1)
            } else {
                uniform_indices(entries, SEQUENCE, t as u64 + 1)
            }
        };
        group(
            c,
            &format!("read_only/{dist}"),
            entries,
            |t| (mix(indices(t), 100, t as u64), Vec::new()),
            true,
            1,
        );
        group(
            c,
            &format!("read_mostly/{dist}"),
            entries,
            |t| (mix(indices(t), 94, t as u64), Vec::new()),
            true,
            1,
        );
        if !zipf {
            // conc-map-bench's ReadHeavy: 75% of the keys present at the start.
            group(
                c,
                "read_heavy",
                entries,
                |t| {
                    let keys = uniform_indices(entries * 4 / 3, SEQUENCE, t as u64 + 51);
                    (mix(keys, 98, t as u64 + 61), Vec::new())
                },
                true,
                1,
            );
        }
        // 16 lookups per pin (or lock, or load) where the map has read sections.
        group(
            c,
            &format!("read_section/{dist}"),
            entries,
            |t| {
                let keys = indices(t);
                let ops = (0..keys.len() / SECTION)
                    .map(|i| Op::Section(i * SECTION))
                    .collect();
                (ops, keys)
            },
            true,
            SECTION as u64,
        );
    }
}

fn writes(c: &mut Criterion) {
    group(
        c,
        "write/insert_remove",
        WRITE_KEYS,
        |t| {
            let keys = uniform_indices(WRITE_KEYS, SEQUENCE, t as u64 + 11);
            (mix(keys, 0, t as u64), Vec::new())
        },
        false,
        1,
    );
    group(
        c,
        "write/exchange",
        WRITE_KEYS,
        |t| {
            let keys = uniform_indices(WRITE_KEYS * 4 / 3, SEQUENCE, t as u64 + 31);
            let mut rng = Rng::new(t as u64 + 41);
            let ops = keys
                .into_iter()
                .map(|k| match rng.below(10) {
                    0 => Op::Get(k),
                    1 => Op::Update(k),
                    2..=5 => Op::Insert(k),
                    _ => Op::Remove(k),
                })
                .collect();
            (ops, Vec::new())
        },
        false,
        1,
    );
    group(
        c,
        "write/upsert",
        WRITE_KEYS,
        |t| {
            let keys = uniform_indices(WRITE_KEYS, SEQUENCE, t as u64 + 21);
            (keys.into_iter().map(Op::Insert).collect(), Vec::new())
        },
        false,
        1,
    );
}

// criterion's macros generate undocumented functions.
#[allow(missing_docs)]
mod harness {
    use super::*;
    criterion_group!(benches, reads, writes);
}
use harness::benches;
criterion_main!(benches);
