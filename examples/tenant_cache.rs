//! A per-tenant context cache, written the way a `DashMap` user would write one.
//!
//! * `TenantCache<K, V>`: a generic wrapper around the map (no bounds on the struct).
//! * 4 reader threads look tenants up through `get_or_insert_with` (read-through:
//!   a miss loads the context once, however many readers miss together).
//! * One thread replaces the whole contents every 20 ms (a config reload): readers
//!   see the old contents or the new ones, never a mix.
//! * One thread clears every 50 ms (an invalidation) and evicts stale contexts with
//!   `retain` in between.
//!
//! Every context read is checked: it belongs to the tenant asked for, and a context
//! held across a clear stays valid.
//!
//! ```text
//! cargo run --release --example tenant_cache -- [--millis 2000] [--readers 4] [--tenants 500]
//! ```

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, ValueRef};

/// What the cache holds per tenant.
#[derive(Debug, Clone, PartialEq)]
struct TenantContext {
    tenant: String,
    plan: Plan,
    /// Which reload built this context (0: loaded on a miss).
    reload: u64,
    quota: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Free,
    Pro,
}

/// A cache of `V` by `K`, shared by cloning. No bounds here: only the impl that
/// uses the map names them.
#[derive(Clone)]
struct TenantCache<K, V> {
    map: Arc<AtomicMap<K, V>>,
}

impl<K, V> TenantCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn new() -> Self {
        TenantCache {
            map: Arc::new(AtomicMap::new()),
        }
    }

    /// The cached value, loading it on a miss (once per key, however many
    /// threads miss together).
    fn get_or_load(&self, key: &K, load: impl FnOnce() -> V) -> ValueRef<V> {
        match self.map.get(key) {
            Some(hit) => hit,
            None => self.map.get_or_insert_with(key.clone(), load),
        }
    }

    /// Swaps in whole new contents at once.
    fn reload(&self, entries: impl IntoIterator<Item = (K, V)>) {
        // The ticket is not needed: the old contents are torn down off this thread.
        drop(self.map.replace(entries));
    }

    fn invalidate_all(&self) {
        drop(self.map.clear_async());
    }

    fn evict(&self, keep: impl FnMut(&K, &V) -> bool) {
        self.map.retain(keep);
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

fn tenant_name(i: u64) -> String {
    format!("tenant-{i:04}")
}

fn load_context(tenant: &str, reload: u64) -> TenantContext {
    let n: u64 = tenant[7..].parse().expect("tenant-NNNN");
    TenantContext {
        tenant: tenant.to_string(),
        plan: if n % 3 == 0 { Plan::Pro } else { Plan::Free },
        reload,
        quota: 100 + n,
    }
}

struct Args {
    millis: u64,
    readers: usize,
    tenants: u64,
}

fn args() -> Args {
    let mut args = Args {
        millis: 2000,
        readers: 4,
        tenants: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let parsed: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--millis" => args.millis = parsed,
            "--readers" => args.readers = parsed as usize,
            "--tenants" => args.tenants = parsed.max(1),
            _ => panic!("unknown flag {flag} (known: --millis, --readers, --tenants)"),
        }
    }
    args
}

fn main() {
    let Args {
        millis,
        readers,
        tenants,
    } = args();
    let cache: TenantCache<String, TenantContext> = TenantCache::new();
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, loads, reloads, clears) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut threads = Vec::new();

    for r in 0..readers {
        let (cache, stop, reads, loads) =
            (cache.clone(), stop.clone(), reads.clone(), loads.clone());
        threads.push(thread::spawn(move || {
            let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (r as u64 + 1);
            // A context held across clears and reloads: it must stay valid.
            let held = cache.get_or_load(&tenant_name(0), || load_context(&tenant_name(0), 0));
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let name = tenant_name(rng % tenants);
                let ctx = cache.get_or_load(&name, || {
                    loads.fetch_add(1, Ordering::Relaxed);
                    load_context(&name, 0)
                });
                assert_eq!(ctx.tenant, name, "a context is always the tenant's own");
                assert_eq!(ctx.quota, load_context(&name, 0).quota);
                reads.fetch_add(1, Ordering::Relaxed);
            }
            assert_eq!(*held, load_context(&tenant_name(0), held.reload));
        }));
    }

    {
        // Reload: new contents for every tenant every 20 ms, all at once.
        let (cache, stop, reloads) = (cache.clone(), stop.clone(), reloads.clone());
        threads.push(thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                cache.reload((0..tenants).map(|i| {
                    let name = tenant_name(i);
                    let ctx = load_context(&name, n);
                    (name, ctx)
                }));
                reloads.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        }));
    }

    {
        // Invalidate everything every 50 ms; in between, evict free-plan contexts
        // loaded on a miss (they are rebuilt on the next read).
        let (cache, stop, clears) = (cache.clone(), stop.clone(), clears.clone());
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(25));
                cache.evict(|_, ctx| ctx.plan == Plan::Pro || ctx.reload > 0);
                thread::sleep(Duration::from_millis(25));
                cache.invalidate_all();
                clears.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let started = Instant::now();
    thread::sleep(Duration::from_millis(millis));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a thread of the example panicked");
    }
    let secs = started.elapsed().as_secs_f64();
    let reads = reads.load(Ordering::Relaxed);
    println!(
        "{readers} readers: {reads} reads ({:.1} M/s), {} loads on a miss, {} reloads, {} clears in {secs:.2} s; {} tenants cached at the end; every read checked",
        reads as f64 / secs / 1e6,
        loads.load(Ordering::Relaxed),
        reloads.load(Ordering::Relaxed),
        clears.load(Ordering::Relaxed),
        cache.len(),
    );
    assert!(reads > 0, "the readers ran");
}
