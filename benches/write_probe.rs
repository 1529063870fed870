//! The write mixes of `--bench throughput`, and its read-heavy one, as a plain loop
//! that alternates the maps (so that each comparison is made in one run,
//! interleaved against the host's drift) and that callgrind can count exactly.
//!
//! Each thread runs a fixed sequence of 65,536 operations over `--keys` keys
//! (10,000 by default, prefilled; Exchange, `read-heavy` and `retained` draw from
//! 4/3 as many, as conc-map-bench does; `throughput`'s read-heavy group has `--keys
//! 100000`; `retained` is gets only, through `AtomicMap::get`'s retained handle),
//! `--rounds` times, after a `--rounds`-long warm-up, and the
//! probe prints nanoseconds per operation per thread. `--repeat` runs every map that
//! many times, alternating, then prints each map's median and each one's ratio to
//! `dashmap`'s median. `--readers N` (0) runs N more threads that get random keys
//! (`pin().get_borrowed`, `DashMap::get`) throughout, untimed: the writers' figures
//! then include what readers cost them (for `AtomicMap`, readers pin with the light
//! fence, so the writers' helps interrupt them: `HELPS_PER_BARRIER`).
//! `--idle-readers N` (0) runs N threads that make `IDLE_READER_GETS` such gets,
//! enough to pin light, and then sleep until the run ends: a request handler
//! between bursts, whom seals and advances take off the light count four advances
//! later (docs/DESIGN.md, "A light thread that goes idle is taken off the count").
//!
//! Maps (`--maps`, comma-separated): `atomic` (`AtomicMap::new()`: the process's
//! background reclaimer), `atomic-manual` (manual reclamation, `reclaim()` every
//! 256 operations on the writer's thread, and foldhash with a fixed seed: every
//! run executes the same instructions, so that callgrind's counts repeat to the
//! instruction), `dashmap` (std's SipHash, as it ships) and `dashmap-foldhash`.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench write_probe -- --mix exchange --repeat 8
//! cargo bench -p atomic-map-benches --bench write_probe -- --mix upsert --threads 2
//! cargo bench -p atomic-map-benches --bench write_probe -- --mix upsert --readers 1
//! cargo bench -p atomic-map-benches --bench write_probe -- --mix upsert --idle-readers 1
//! cargo bench -p atomic-map-benches --bench write_probe -- --mix read-heavy --keys 100000 --repeat 8
//! cargo bench -p atomic-map-benches --bench write_probe -- --mix retained --keys 100000 --repeat 8
//! cargo bench -p atomic-map-benches --bench write_probe -- --test       # smoke run (CI)
//! # Instructions per operation (the loop alone; divide by 65,536 × rounds):
//! cargo bench -p atomic-map-benches --bench write_probe --no-run
//! valgrind --tool=callgrind --toggle-collect='write_probe::run_atomic_manual' \
//!     target/release/deps/write_probe-* --maps atomic-manual --mix exchange --rounds 4 --repeat 1
//! ```

mod args;

use args::arg;

use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use atomic_map::{AtomicMap, Builder, Operation, ReclaimMode};
use dashmap::DashMap;
use foldhash::fast::FixedState;

/// Operations per thread per round.
const OPS: usize = 1 << 16;
/// How often the manual map's writer reclaims.
const RECLAIM_EVERY: usize = 256;

#[derive(Clone, Copy)]
enum Op {
    Get(u64),
    /// A get through a retained handle (`AtomicMap::get`); `DashMap::get` for `DashMap`.
    GetRetained(u64),
    Insert(u64),
    Remove(u64),
    Update(u64),
}

/// A fixed sequence of `OPS` operations of `mix` over `keys` keys, its order
/// rotated by `thread` so that threads do not walk it in step.
fn operations(mix: &str, keys: u64, thread: usize) -> Vec<Op> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ops: Vec<Op> = (0..OPS)
        .map(|_| {
            let (key, pick) = (next() % keys, next() % 100);
            match mix {
                // conc-map-bench's Exchange: 10% get, 10% update, 40% insert, 40% remove.
                "exchange" => match pick % 10 {
                    0 => Op::Get(key),
                    1 => Op::Update(key),
                    2..=5 => Op::Insert(key),
                    _ => Op::Remove(key),
                },
                "upsert" => Op::Insert(key),
                "insert-remove" if pick < 50 => Op::Insert(key),
                "insert-remove" => Op::Remove(key),
                // conc-map-bench's ReadHeavy: 98% get, 1% insert, 1% remove.
                "read-heavy" => match pick {
                    0..=97 => Op::Get(key),
                    98 => Op::Insert(key),
                    _ => Op::Remove(key),
                },
                "retained" => Op::GetRetained(key),
                other => {
                    panic!("--mix {other}: exchange, upsert, insert-remove, read-heavy or retained")
                }
            }
        })
        .collect();
    ops.rotate_left(thread * 7919 % OPS);
    ops
}

/// One operation on an `AtomicMap`; a get adds what it read to `sum`.
#[inline(always)]
fn apply<S>(map: &AtomicMap<u64, u64, S>, op: Op, sum: &mut u64)
where
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    match op {
        Op::Get(k) => *sum = sum.wrapping_add(map.pin().get_borrowed(&k).copied().unwrap_or(0)),
        Op::GetRetained(k) => *sum = sum.wrapping_add(map.get(&k).map_or(0, |v| *v)),
        Op::Insert(k) => drop(map.insert(k, k)),
        Op::Remove(k) => drop(map.remove(&k)),
        Op::Update(k) => drop(map.compute(k, |old| match old {
            Some(_) => Operation::<u64>::Insert(1),
            None => Operation::Keep,
        })),
    }
}

/// One thread's rounds on an `AtomicMap` with a background reclaimer.
#[inline(never)]
fn run_atomic(map: &AtomicMap<u64, u64>, ops: &[Op], rounds: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        for &op in ops {
            apply(map, op, &mut sum);
        }
    }
    sum
}

/// One thread's rounds on a manual-mode `AtomicMap` that it reclaims itself.
#[inline(never)]
fn run_atomic_manual(map: &AtomicMap<u64, u64, FixedState>, ops: &[Op], rounds: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        for chunk in ops.chunks(RECLAIM_EVERY) {
            for &op in chunk {
                apply(map, op, &mut sum);
            }
            map.reclaim();
        }
    }
    sum
}

/// One thread's rounds on a `DashMap`.
#[inline(never)]
fn run_dashmap<S: BuildHasher + Clone>(
    map: &DashMap<u64, u64, S>,
    ops: &[Op],
    rounds: usize,
) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        for op in ops {
            match *op {
                Op::Get(k) | Op::GetRetained(k) => {
                    sum = sum.wrapping_add(map.get(&k).map_or(0, |v| *v))
                }
                Op::Insert(k) => {
                    map.insert(k, k);
                }
                Op::Remove(k) => {
                    map.remove(&k);
                }
                Op::Update(k) => {
                    if let Some(mut v) = map.get_mut(&k) {
                        *v = 1;
                    }
                }
            }
        }
    }
    sum
}

/// The threads of a run: `threads` running the mix, timed, and `readers` more
/// that get random keys below `range` (`read`) from before the warm-up until the
/// timed rounds end, untimed, and `idle_readers` that get `IDLE_READER_GETS` keys
/// before the warm-up and then sleep.
struct Threads {
    threads: usize,
    readers: usize,
    idle_readers: usize,
    range: u64,
}

/// The gets of an idle reader: past the 1,024 pins after which a thread that
/// neither seals nor flushes pins light (the epoch fork's `PINS_BEFORE_LIGHT`).
const IDLE_READER_GETS: u64 = 4096;

/// Runs `body` on `threads` threads (each with its own sequence), a warm-up of
/// `rounds` rounds and then `rounds` timed ones, while `readers` threads run
/// `read`; returns ns per operation per mix thread.
fn timed(
    t: &Threads,
    seqs: &[Vec<Op>],
    rounds: usize,
    body: impl Fn(&[Op], usize) -> u64 + Sync,
    read: impl Fn(u64) -> u64 + Sync,
) -> f64 {
    let threads = t.threads;
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    // The idle readers have made their gets before the warm-up begins.
    let idle = Barrier::new(t.idle_readers + 1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for r in 0..t.readers + t.idle_readers {
            let (read, stop, range, idle) = (&read, &stop, t.range, &idle);
            let busy = r < t.readers;
            s.spawn(move || {
                let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ (r as u64 + 1);
                let mut sum = 0u64;
                let mut gets = 0;
                // Relaxed: a flag, no data published through it.
                while !stop.load(Ordering::Relaxed) {
                    if !busy && gets == IDLE_READER_GETS {
                        idle.wait();
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        break;
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    sum = sum.wrapping_add(read(x % range));
                    gets += 1;
                }
                black_box(sum);
            });
        }
        idle.wait();
        let (start, done) = (&start, &done);
        let mix: Vec<_> = seqs
            .iter()
            .take(threads)
            .map(|seq| {
                let body = &body;
                s.spawn(move || {
                    black_box(body(seq, rounds));
                    start.wait();
                    black_box(body(seq, rounds));
                    done.wait();
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        done.wait();
        let ns = began.elapsed().as_nanos() as f64 / (rounds * OPS) as f64;
        mix.into_iter().for_each(|h| h.join().unwrap());
        // Relaxed: as above.
        stop.store(true, Ordering::Relaxed);
        ns
    })
}

/// A map the probe runs: how it is prefilled, how a mix thread runs its
/// rounds, and how a reader gets.
trait Probed: Sync {
    fn fill(&self, key: u64);
    fn rounds(&self, ops: &[Op], rounds: usize) -> u64;
    fn read(&self, key: u64) -> u64;
}

impl<S: BuildHasher + Clone + Send + Sync> Probed for DashMap<u64, u64, S> {
    fn fill(&self, key: u64) {
        self.insert(key, key);
    }
    fn rounds(&self, ops: &[Op], rounds: usize) -> u64 {
        run_dashmap(self, ops, rounds)
    }
    fn read(&self, key: u64) -> u64 {
        self.get(&key).map_or(0, |v| *v)
    }
}

/// A thread's rounds over an `AtomicMap` on hasher `S`: its sum.
type AtomicLoop<S> = fn(&AtomicMap<u64, u64, S>, &[Op], usize) -> u64;

/// An `AtomicMap` on hasher `S` with the loop its threads run (the default
/// one, or manual mode's, which reclaims).
struct Atomic<S> {
    map: AtomicMap<u64, u64, S>,
    rounds: AtomicLoop<S>,
}

impl<S: BuildHasher + Clone + Send + Sync + 'static> Probed for Atomic<S> {
    fn fill(&self, key: u64) {
        drop(self.map.insert(key, key));
    }
    fn rounds(&self, ops: &[Op], rounds: usize) -> u64 {
        (self.rounds)(&self.map, ops, rounds)
    }
    fn read(&self, key: u64) -> u64 {
        self.map.pin().get_borrowed(&key).copied().unwrap_or(0)
    }
}

/// [`timed`] on `m`, first prefilled with keys `0..keys`.
fn timed_prefilled(
    m: &impl Probed,
    seqs: &[Vec<Op>],
    t: &Threads,
    keys: u64,
    rounds: usize,
) -> f64 {
    (0..keys).for_each(|k| m.fill(k));
    timed(t, seqs, rounds, |ops, r| m.rounds(ops, r), |k| m.read(k))
}

/// One run of `map` (a fresh map, prefilled with `keys` keys): ns per operation.
fn run(map: &str, seqs: &[Vec<Op>], t: &Threads, keys: u64, rounds: usize) -> f64 {
    match map {
        "atomic" => {
            let m = Atomic {
                map: AtomicMap::new(),
                rounds: run_atomic,
            };
            timed_prefilled(&m, seqs, t, keys, rounds)
        }
        "atomic-manual" => {
            let map = Builder::new()
                .reclaim_mode(ReclaimMode::Manual)
                .hasher(FixedState::with_seed(42))
                .build();
            let m = Atomic {
                map,
                rounds: run_atomic_manual,
            };
            timed_prefilled(&m, seqs, t, keys, rounds)
        }
        "dashmap" => timed_prefilled(&DashMap::<u64, u64>::new(), seqs, t, keys, rounds),
        "dashmap-foldhash" => {
            let m = DashMap::with_hasher(foldhash::fast::RandomState::default());
            timed_prefilled(&m, seqs, t, keys, rounds)
        }
        other => panic!("--maps {other}: atomic, atomic-manual, dashmap or dashmap-foldhash"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test = args.iter().any(|a| a == "--test");
    let mix: String = arg(&args, "--mix", "exchange".to_string());
    let maps: String = arg(&args, "--maps", "atomic,dashmap".to_string());
    let threads: usize = arg(&args, "--threads", 1);
    let readers: usize = arg(&args, "--readers", 0);
    let idle_readers: usize = arg(&args, "--idle-readers", 0);
    let keys: u64 = arg(&args, "--keys", if test { 100 } else { 10_000 });
    let rounds: usize = arg(&args, "--rounds", if test { 1 } else { 100 });
    let repeat: usize = arg(&args, "--repeat", if test { 1 } else { 5 });
    assert!(threads >= 1 && keys >= 1 && rounds >= 1 && repeat >= 1);
    let range = if ["exchange", "read-heavy", "retained"].contains(&mix.as_str()) {
        keys * 4 / 3
    } else {
        keys
    };
    let seqs: Vec<Vec<Op>> = (0..threads).map(|t| operations(&mix, range, t)).collect();
    let maps: Vec<&str> = maps.split(',').collect();
    let t = Threads {
        threads,
        readers,
        idle_readers,
        range,
    };
    println!(
        "write_probe: --mix {mix} --threads {threads} --readers {readers} --idle-readers {idle_readers} --keys {keys} --rounds {rounds}"
    );
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); maps.len()];
    for round in 0..repeat {
        for (i, map) in maps.iter().enumerate() {
            let ns = run(map, &seqs, &t, keys, rounds);
            println!("run {round}: {map}: {ns:.1} ns/op/thread");
            times[i].push(ns);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    let dashmap = maps
        .iter()
        .position(|m| *m == "dashmap")
        .map(|i| medians[i]);
    for (map, median) in maps.iter().zip(&medians) {
        match dashmap {
            Some(d) => println!(
                "median {map}: {median:.1} ns/op/thread ({:.2}x dashmap)",
                d / median
            ),
            None => println!("median {map}: {median:.1} ns/op/thread"),
        }
    }
}
