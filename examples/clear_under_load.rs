//! Clear under load: the main job a newcomer runs.
//!
//! Fills a map with 1,000,000 `u64 -> u64` entries, starts reader threads that
//! hammer `get` (alternating a retained get and a pinned get), then refills and
//! clears it repeatedly. It does the same, on the same data in the same run, with
//! `DashMap::clear` and `RwLock<HashMap>::clear`, and prints for each:
//!
//! * the clear call's latency on the clearing thread (median, p99, max);
//! * the readers' worst get latency, and the number of gets slower than 100 µs, in
//!   windows covering each clear plus the 2 ms after it, and in quiet windows of the
//!   same length just before each clear (nothing but reads running);
//! * for `AtomicMap`, the same for the window in which the reclaimer tore the retired
//!   generation down (on its own thread, after the clear returned);
//! * process memory (RSS) before the fill, after it, and after the last reclamation;
//! * a control row with no map in the stall: the clearing thread frees as many small
//!   boxes as the map had values while the readers read an empty map. It shows what
//!   freeing that much memory on another thread costs the readers on this machine,
//!   whoever does it (compare with `AtomicMap`'s teardown window).
//!
//! ```text
//! cargo run --release --example clear_under_load -- [--entries N] [--small-entries N]
//!     [--rounds N] [--readers 1,2] [--no-trim]
//! ```
//!
//! `--no-trim` builds the maps with `Builder::trim_memory(false)`, to show what RSS
//! does when the allocator is not asked to return freed memory.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::AtomicMap;

#[path = "../benches/peers/process.rs"]
mod process;
use dashmap::DashMap;
use process::rss_bytes;

/// Width of one latency bucket of the readers' timelines.
const BUCKET: Duration = Duration::from_micros(50);
/// A get slower than this counts as a stall.
const SLOW: Duration = Duration::from_micros(100);
/// How long after a clear returns its window extends (where deferred work would land).
const AFTER_CLEAR: Duration = Duration::from_millis(2);

struct Options {
    entries: u64,
    small_entries: u64,
    rounds: usize,
    readers: Vec<usize>,
    trim: bool,
}

fn parse_options() -> Options {
    let mut o = Options {
        entries: 1_000_000,
        small_entries: 1_000,
        rounds: 6,
        readers: vec![1, 2],
        trim: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--entries" => o.entries = parse(&value()),
            "--small-entries" => o.small_entries = parse(&value()),
            "--rounds" => o.rounds = parse(&value()),
            "--readers" => o.readers = value().split(',').map(parse).collect(),
            "--no-trim" => o.trim = false,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if o.rounds < 2 || o.entries == 0 || o.small_entries == 0 || o.readers.contains(&0) {
        usage("--rounds must be at least 2; sizes and reader counts at least 1");
    }
    o
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("error: {problem}");
    }
    eprintln!(
        "usage: clear_under_load [--entries N (1000000)] [--small-entries N (1000)] \
         [--rounds N (6)] [--readers LIST (1,2)] [--no-trim]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

/// One of the maps under test, as the readers and the clearer see it.
trait Target: Send + Sync {
    fn fill(&self, n: u64);
    /// Clears; returns the clear call's latency and, for `AtomicMap`, a way to wait
    /// for the teardown.
    fn clear(&self) -> (Duration, Option<atomic_map::Retired>);
    fn get_retained(&self, k: u64) -> u64;
    fn get_pinned(&self, k: u64) -> u64;
}

impl Target for AtomicMap<u64, u64> {
    fn fill(&self, n: u64) {
        for k in 0..n {
            self.insert(k, k);
        }
    }
    fn clear(&self) -> (Duration, Option<atomic_map::Retired>) {
        let t = Instant::now();
        let retired = self.clear_async();
        (t.elapsed(), Some(retired))
    }
    fn get_retained(&self, k: u64) -> u64 {
        self.get(&k).map_or(0, |v| *v)
    }
    fn get_pinned(&self, k: u64) -> u64 {
        self.pin().get_borrowed(&k).copied().unwrap_or(0)
    }
}

impl Target for DashMap<u64, u64> {
    fn fill(&self, n: u64) {
        for k in 0..n {
            self.insert(k, k);
        }
    }
    fn clear(&self) -> (Duration, Option<atomic_map::Retired>) {
        let t = Instant::now();
        DashMap::clear(self);
        (t.elapsed(), None)
    }
    fn get_retained(&self, k: u64) -> u64 {
        self.get(&k).map_or(0, |v| *v)
    }
    fn get_pinned(&self, k: u64) -> u64 {
        self.get_retained(k)
    }
}

impl Target for RwLock<HashMap<u64, u64>> {
    fn fill(&self, n: u64) {
        let mut map = self.write().unwrap();
        for k in 0..n {
            map.insert(k, k);
        }
    }
    fn clear(&self) -> (Duration, Option<atomic_map::Retired>) {
        let t = Instant::now();
        self.write().unwrap().clear();
        (t.elapsed(), None)
    }
    fn get_retained(&self, k: u64) -> u64 {
        self.read().unwrap().get(&k).copied().unwrap_or(0)
    }
    fn get_pinned(&self, k: u64) -> u64 {
        self.get_retained(k)
    }
}

/// Control, no map involved in the stall: the readers read an empty `AtomicMap`
/// while the clearing thread frees as many small boxes as the map had values. It
/// shows what freeing that much memory on another thread costs the readers on this
/// machine, whoever does it: compare with `AtomicMap`'s teardown window.
struct FreeControl {
    map: AtomicMap<u64, u64>,
    /// One allocation per box, like one cell per map value: that is the point.
    #[allow(clippy::vec_box)]
    boxes: Mutex<Vec<Box<[u64; 3]>>>,
}

impl Target for FreeControl {
    fn fill(&self, n: u64) {
        *self.boxes.lock().unwrap() = (0..n).map(|i| Box::new([i; 3])).collect();
    }
    fn clear(&self) -> (Duration, Option<atomic_map::Retired>) {
        let boxes = std::mem::take(&mut *self.boxes.lock().unwrap());
        let t = Instant::now();
        drop(boxes);
        (t.elapsed(), None)
    }
    fn get_retained(&self, k: u64) -> u64 {
        self.map.get_retained(k)
    }
    fn get_pinned(&self, k: u64) -> u64 {
        self.map.get_pinned(k)
    }
}

/// A reader's timeline: per bucket of `BUCKET`, the worst get and the slow-get count.
#[derive(Clone, Default)]
struct Timeline {
    worst_ns: Vec<u32>,
    slow: Vec<u32>,
}

impl Timeline {
    fn with_buckets(n: usize) -> Self {
        // Written through once so the pages are resident before RSS is sampled.
        let touched = |n| {
            let mut v = vec![u32::MAX; n];
            v.fill(0);
            v
        };
        Timeline {
            worst_ns: touched(n),
            slow: touched(n),
        }
    }

    fn record(&mut self, at: Duration, latency: Duration) {
        let b = (at.as_nanos() / BUCKET.as_nanos()) as usize;
        if b >= self.worst_ns.len() {
            self.worst_ns.resize(b + 1, 0);
            self.slow.resize(b + 1, 0);
        }
        let ns = latency.as_nanos().min(u32::MAX as u128) as u32;
        self.worst_ns[b] = self.worst_ns[b].max(ns);
        if latency > SLOW {
            self.slow[b] += 1;
        }
    }

    /// Worst get and slow-get count over the buckets overlapping `[from, to]`.
    fn window(&self, from: Duration, to: Duration) -> (u32, u64) {
        let first = (from.as_nanos() / BUCKET.as_nanos()) as usize;
        let last = ((to.as_nanos() / BUCKET.as_nanos()) as usize)
            .min(self.worst_ns.len().saturating_sub(1));
        if first > last {
            return (0, 0);
        }
        let worst = self.worst_ns[first..=last]
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        let slow = self.slow[first..=last].iter().map(|&c| u64::from(c)).sum();
        (worst, slow)
    }
}

/// The readers' worst get and slow-get count over a set of windows.
#[derive(Clone, Copy, Default)]
struct WindowStats {
    worst_ns: u32,
    slow: u64,
}

impl WindowStats {
    fn of(timelines: &[Timeline], windows: &[(Duration, Duration)]) -> Self {
        let mut s = WindowStats::default();
        for t in timelines {
            for &(from, to) in windows {
                let (w, n) = t.window(from, to);
                s.worst_ns = s.worst_ns.max(w);
                s.slow += n;
            }
        }
        s
    }

    fn show(&self) -> String {
        format!("{:>9} ({:>3})", fmt_ns(u64::from(self.worst_ns)), self.slow)
    }
}

struct RunResult {
    clear_ns: Vec<u64>,
    in_clear: WindowStats,
    quiet: WindowStats,
    teardown: Option<WindowStats>,
    reads: u64,
    elapsed: Duration,
    /// RSS with the readers running: before the first fill, after it, and after the
    /// last clear has been reclaimed.
    rss: [u64; 3],
}

fn run(target: Arc<dyn Target>, entries: u64, rounds: usize, readers: usize) -> RunResult {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..readers)
        .map(|r| {
            let (target, stop) = (Arc::clone(&target), Arc::clone(&stop));
            // Sized for 60 s; grows past that if needed.
            let mut timeline = Timeline::with_buckets((60_000_000 / BUCKET.as_micros()) as usize);
            thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (r as u64 + 1);
                let mut prev = Instant::now();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let k = rng % entries;
                    let v = if reads & 1 == 0 {
                        target.get_retained(k)
                    } else {
                        target.get_pinned(k)
                    };
                    black_box(v);
                    let now = Instant::now();
                    timeline.record(now - t0, now - prev);
                    prev = now;
                    reads += 1;
                }
                (timeline, reads)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(20));
    // The baseline: what the process needs before the fill, with the memory earlier
    // runs freed handed back to the OS (as the reclaimer does after a teardown).
    return_free_memory();
    let rss_start = rss_bytes();
    target.fill(entries);
    let rss_filled = rss_bytes();

    let mut clear_ns = Vec::new();
    let (mut clear_windows, mut quiet_windows, mut teardown_windows) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut window_len = AFTER_CLEAR;
    for round in 0..=rounds {
        if round > 0 {
            target.fill(entries);
        }
        thread::sleep(Duration::from_millis(5));
        let quiet_from = t0.elapsed();
        thread::sleep(window_len);
        let quiet_to = t0.elapsed();
        let from = t0.elapsed();
        let (took, retired) = target.clear();
        let to = t0.elapsed() + AFTER_CLEAR;
        thread::sleep(AFTER_CLEAR);
        if let Some(retired) = &retired {
            retired.wait_timeout(Duration::from_secs(10));
        }
        let torn_down = t0.elapsed();
        thread::sleep(Duration::from_millis(2));
        window_len = to - from;
        if round == 0 {
            continue; // warm-up round: sets the first quiet window's length
        }
        clear_ns.push(took.as_nanos() as u64);
        quiet_windows.push((quiet_from, quiet_to));
        clear_windows.push((from, to));
        if retired.is_some() {
            teardown_windows.push((to, torn_down));
        }
    }
    // The last round ended with a clear that has been reclaimed: let deferred frees
    // finish, then sample memory with the readers still running.
    settle();
    let rss_after = rss_bytes();
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut timelines = Vec::new();
    let mut reads = 0;
    for h in handles {
        let (t, n) = h.join().expect("reader panicked");
        timelines.push(t);
        reads += n;
    }
    drop(target);
    clear_ns.sort_unstable();
    RunResult {
        in_clear: WindowStats::of(&timelines, &clear_windows),
        quiet: WindowStats::of(&timelines, &quiet_windows),
        teardown: (!teardown_windows.is_empty())
            .then(|| WindowStats::of(&timelines, &teardown_windows)),
        clear_ns,
        reads,
        elapsed,
        rss: [rss_start, rss_filled, rss_after],
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn fmt_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}

fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Asks glibc to hand freed memory back to the OS (a no-op elsewhere).
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases the background reclaimer's epoch garbage and waits for RSS to settle:
/// 200 ms, longer than the reclaimer's shortest time between two returns of memory
/// to the OS (100 ms, `src/reclaim/trim.rs`) plus its longest park (16 ms), since
/// the last teardown's return may follow one made during that teardown.
fn settle() {
    for _ in 0..40 {
        crossbeam_epoch_flush();
        thread::sleep(Duration::from_millis(5));
    }
}

/// Pushes this thread's deferred frees along, via a throwaway manual-mode map.
fn crossbeam_epoch_flush() {
    let probe: AtomicMap<u8, u8> = atomic_map::Builder::new()
        .reclaim_mode(atomic_map::ReclaimMode::Manual)
        .build();
    probe.reclaim();
}

fn main() {
    let o = parse_options();
    println!(
        "clear under load: u64 -> u64, {} entries, {} clears per map, readers alternate retained and pinned gets",
        o.entries, o.rounds
    );
    println!(
        "windows: a clear window is the clear call plus the {} ms after it; a quiet window has the same length, \
         just before the clear; worst get (gets > {} µs)\n",
        AFTER_CLEAR.as_millis(),
        SLOW.as_micros()
    );
    for &readers in &o.readers {
        println!(
            "== {readers} reader thread{} ==",
            if readers == 1 { "" } else { "s" }
        );
        println!(
            "{:<34} {:>9} {:>9} {:>9} | {:>15} | {:>15} | {:>15} | {:>6}",
            "clear",
            "median",
            "p99",
            "max",
            "clear window",
            "quiet window",
            "teardown window",
            "Mget/s"
        );
        let new_map = || -> Arc<dyn Target> {
            Arc::new(
                atomic_map::Builder::new()
                    .trim_memory(o.trim)
                    .build::<u64, u64>(),
            )
        };
        let small = new_map();
        let small_run = run(small, o.small_entries, o.rounds, readers);
        let atomic = new_map();
        let atomic_run = run(atomic, o.entries, o.rounds, readers);
        let dash: Arc<dyn Target> = Arc::new(DashMap::<u64, u64>::new());
        let dash_run = run(dash, o.entries, o.rounds, readers);
        let rw: Arc<dyn Target> = Arc::new(RwLock::new(HashMap::<u64, u64>::new()));
        let rw_run = run(rw, o.entries, o.rounds, readers);
        let control: Arc<dyn Target> = Arc::new(FreeControl {
            map: AtomicMap::new(),
            boxes: Mutex::new(Vec::new()),
        });
        let control_run = run(control, o.entries, o.rounds, readers);
        let rows = [
            (
                format!("AtomicMap::clear_async ({})", o.entries),
                &atomic_run,
            ),
            (
                format!("AtomicMap::clear_async ({})", o.small_entries),
                &small_run,
            ),
            (format!("DashMap::clear ({})", o.entries), &dash_run),
            (format!("RwLock<HashMap>::clear ({})", o.entries), &rw_run),
            (
                format!("control: free {} boxes, no map", o.entries),
                &control_run,
            ),
        ];
        for (name, r) in rows {
            println!(
                "{:<34} {:>9} {:>9} {:>9} | {} | {} | {:>15} | {:>6.1}",
                name,
                fmt_ns(percentile(&r.clear_ns, 0.5)),
                fmt_ns(percentile(&r.clear_ns, 0.99)),
                fmt_ns(*r.clear_ns.last().unwrap()),
                r.in_clear.show(),
                r.quiet.show(),
                r.teardown.map_or("-".to_string(), |t| t.show()),
                r.reads as f64 / 1e6 / r.elapsed.as_secs_f64(),
            );
        }
        let med = |r: &RunResult| percentile(&r.clear_ns, 0.5).max(1) as f64;
        println!(
            "ratios (median clear): DashMap / AtomicMap = {:.0}x, RwLock<HashMap> / AtomicMap = {:.0}x, \
             AtomicMap {} / {} entries = {:.2}x",
            med(&dash_run) / med(&atomic_run),
            med(&rw_run) / med(&atomic_run),
            o.entries,
            o.small_entries,
            med(&atomic_run) / med(&small_run),
        );
        let [before, filled, after] = atomic_run.rss;
        println!(
            "memory (AtomicMap, {} entries): RSS before fill {}, after fill {}, after the last reclamation {} ({:+.1}% vs before fill)\n",
            o.entries,
            fmt_mib(before),
            fmt_mib(filled),
            fmt_mib(after),
            (after as f64 / before as f64 - 1.0) * 100.0
        );
    }
}
