//! Memory of every map: bytes per entry at 1,000,000 entries, and resident memory
//! after a clear (and, for `AtomicMap`, the reclamation of the retired generation);
//! then, in `churn.csv`, bytes per entry of 100,000 entries whose values one thread
//! has replaced `CHURN_REPLACEMENTS` times at random (a cache's refreshes: at most
//! for `CHURN_LIMIT`, which the copy-on-write map, whose every write copies the
//! whole map, and `String` keys reach first). The `String` churn runs once more
//! for an `AtomicMap` built with `Builder::destructors_on_releasing_threads`
//! (its values' destructors run on the replacing thread: "AtomicMap (releasing
//! threads)").
//!
//! Each map and key type runs in its own child process, so that what one case left
//! in the allocator is not counted against the next. RSS after the clear is read
//! twice: as the map left it, and after `malloc_trim(0)` (glibc keeps freed memory
//! unless asked; `AtomicMap`'s reclaimer asks after large teardowns, the peers do
//! not), so allocator retention and memory the map still holds can be told apart.
//! Results go to `target/bench-results/memory.csv`.
//!
//! ```text
//! cargo bench -p atomic-map-benches --bench memory              # full run (1,000,000 entries; churn: 100,000)
//! cargo bench -p atomic-map-benches --bench memory -- --test    # smoke run (CI)
//! cargo bench -p atomic-map-benches --bench memory -- --entries 1500000   # another fill size
//! ```

mod peers;

use std::time::{Duration, Instant};

use peers::process::rss_bytes;
use peers::{Key, Rng};

/// One case, in the child: `key:index:entries`. Prints a CSV line.
fn case<K: Key>(index: usize, entries: u64) -> String {
    let map = peers::all::<K>(false).swap_remove(index);
    // Nothing of the other (empty) maps is left; settle the allocator first.
    trim();
    let before = rss_bytes();
    map.fill(entries);
    let filled = rss_bytes();
    let (_, leftover) = map.clear();
    if let Some(retired) = leftover {
        retired.wait();
    }
    // Give deferred frees (papaya's, the reclaimer's values) a moment to land.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        map.read(&K::key(0));
    }
    let cleared = rss_bytes();
    trim();
    let trimmed = rss_bytes();
    format!(
        "{},{},{entries},{before},{filled},{:.1},{cleared},{trimmed}",
        K::NAME,
        map.name(),
        filled.saturating_sub(before) as f64 / entries as f64,
    )
}

/// Replacements in a churn case.
const CHURN_REPLACEMENTS: u64 = 20_000_000;
/// A churn stops after this long, done or not.
const CHURN_LIMIT: Duration = Duration::from_secs(3);

/// The churn's `AtomicMap` built with `destructors_on_releasing_threads`.
struct Releasing<K: Key>(peers::AtomicPinned<K>);

impl<K: Key> Releasing<K> {
    fn new() -> Self {
        Releasing(peers::AtomicPinned(
            atomic_map::Builder::new()
                .destructors_on_releasing_threads(true)
                .build(),
        ))
    }
}

impl<K: Key> peers::Peer<K> for Releasing<K> {
    fn name(&self) -> &'static str {
        "AtomicMap (releasing threads)"
    }
    fn fill(&self, n: u64) {
        self.0.fill(n)
    }
    fn read(&self, key: &K) -> u64 {
        self.0.read(key)
    }
    fn insert(&self, key: K, value: K::Value) {
        self.0.insert(key, value)
    }
    fn remove(&self, key: &K) {
        self.0.remove(key)
    }
    fn clear(&self) -> (Duration, peers::Leftover) {
        self.0.clear()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One churn case, in the child: `churn-key:index:entries`. Prints a CSV line.
/// `releasing`: the map is [`Releasing`] (and `index` is ignored).
fn churn<K: Key>(index: usize, entries: u64, replacements: u64, releasing: bool) -> String {
    let map: std::sync::Arc<dyn peers::Peer<K>> = if releasing {
        std::sync::Arc::new(Releasing::<K>::new())
    } else {
        peers::all::<K>(false).swap_remove(index)
    };
    trim();
    let before = rss_bytes();
    map.fill(entries);
    let filled = rss_bytes();
    let began = Instant::now();
    let mut rng = Rng::new(7);
    let mut replaced = 0;
    while replaced < replacements && began.elapsed() < CHURN_LIMIT {
        let i = rng.below(entries);
        map.insert(K::key(i), K::value(i));
        replaced += 1;
    }
    let seconds = began.elapsed().as_secs_f64();
    // Give deferred frees (papaya's, the reclaimer's values) a moment to land.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        map.read(&K::key(0));
    }
    let churned = rss_bytes();
    let per_entry = |rss: u64| rss.saturating_sub(before) as f64 / entries as f64;
    format!(
        "{},{},{entries},{before},{filled},{:.1},{replaced},{seconds:.2},{churned},{:.1}",
        K::NAME,
        map.name(),
        per_entry(filled),
        per_entry(churned),
    )
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() {
    let test = peers::cases::child_or_parent(|spec| {
        let spec: Vec<&str> = spec.split(':').collect();
        let (index, entries) = (spec[1].parse().unwrap(), spec[2].parse().unwrap());
        let replacements = spec.get(3).map_or(0, |r| r.parse().unwrap());
        match spec[0] {
            "u64" => case::<u64>(index, entries),
            "string" => case::<String>(index, entries),
            "churn-u64" => churn::<u64>(index, entries, replacements, false),
            "churn-string-releasing" => churn::<String>(index, entries, replacements, true),
            _ => churn::<String>(index, entries, replacements, false),
        }
    });
    // `--entries N`: the fill's size instead of 1,000,000 (say, one where a
    // shard's entries fill more than half of the array they would have had: the
    // slot arrays' worst case, `src/table/mod.rs`, `MAX_USED_PER_SLOT`).
    let args: Vec<String> = std::env::args().collect();
    let entries: u64 = match args.iter().position(|a| a == "--entries") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--entries takes a number of entries"),
        None if test => 10_000,
        None => 1_000_000,
    };
    let maps = peers::all::<u64>(false).len();
    let specs: Vec<String> = ["u64", "string"]
        .iter()
        .flat_map(|key| (0..maps).map(move |index| format!("{key}:{index}:{entries}")))
        .collect();
    peers::cases::run_cases(
        test,
        &specs,
        "key,map,entries,rss_before,rss_filled,bytes_per_entry,rss_after_clear,rss_after_trim",
        "memory.csv",
    );
    let (entries, replacements) = if test {
        (10_000, 100_000)
    } else {
        (100_000, CHURN_REPLACEMENTS)
    };
    let specs: Vec<String> = ["churn-u64", "churn-string"]
        .iter()
        .flat_map(|key| {
            (0..maps).map(move |index| format!("{key}:{index}:{entries}:{replacements}"))
        })
        .chain(std::iter::once(format!(
            "churn-string-releasing:0:{entries}:{replacements}"
        )))
        .collect();
    peers::cases::run_cases(
        test,
        &specs,
        "key,map,entries,rss_before,rss_filled,bytes_per_entry,replaced,seconds,rss_churned,bytes_per_entry_churned",
        "churn.csv",
    );
}
