//! A releasing thread's help: the thread that dooms values destroys them itself,
//! a batch at a time, after their grace period, so that their memory goes back
//! to its own magazines (or its allocator's caches) while its cache still holds
//! it.
//!
//! Why: in a background domain every doomed cell crossed to the reclaimer's core
//! and back. On the 1-thread upsert loop (`--bench write_probe --mix upsert`),
//! a throwaway build with no doom at all ran 26 ns per operation against 43, and
//! manual mode (the same pass, on the writer's thread) 35.5: most of the
//! difference was that hand-off, not the pass's instructions (`docs/DESIGN.md`,
//! "Who destroys a doomed value"). For values that own heap memory the hand-off
//! cost more on glibc: the writer's `malloc` never found in its per-thread cache
//! what the reclaimer's `free` had put in the reclaimer's (`docs/BENCHMARKS.md`,
//! "History", "Destructors on the releasing thread").
//!
//! Which values a help destroys ([`Domain::help`]): those with no destructor,
//! and those of maps built with `Builder::destructors_on_releasing_threads`,
//! except where the thread runs the user's code under a shard lock
//! ([`UserCodeUnderLock`]): a destructor there could write to the locked shard.
//! Every other value's destructor stays on the reclaimer.

use super::ReclaimMode;
use super::{Domain, PassMark, Ripe, Tally, lock};
use crate::reclaim::home::HomeRef;
use crate::reclaim::stripe::ThreadStripe;
use crate::sync::{Arc, Ordering, epoch, thread_local};
use std::cell::Cell;

// The closures of the user's this thread runs under a map's shard lock right now
// (nested: a closure may write to another map): how many, and the homes of the
// maps whose locks the first `HELD_HOMES` are under. A `const` initializer
// outside loom, so that the accesses around each closure are plain thread-local
// loads and stores, with no check of a lazy initialization (one `upsert` ran
// 1-3 ns slower with it); loom's `thread_local!` does not accept one.
#[cfg(not(feature = "loom"))]
thread_local! {
    static UNDER_LOCK: UnderLock = const { UnderLock::new() };
}
#[cfg(feature = "loom")]
thread_local! {
    #[allow(clippy::missing_const_for_thread_local)]
    static UNDER_LOCK: UnderLock = UnderLock::new();
}

/// How many nested closures' maps [`UserCodeUnderLock::holds`] can name: deeper
/// ones are counted (no destructor runs in their helps) but not named.
const HELD_HOMES: usize = 4;

struct UnderLock {
    depth: Cell<usize>,
    /// `homes[i]`, for `i < min(depth, HELD_HOMES)`: the address of the home of
    /// the map whose lock the `i`-th closure (outermost first) runs under.
    homes: [Cell<usize>; HELD_HOMES],
}

impl UnderLock {
    const fn new() -> Self {
        UnderLock {
            depth: Cell::new(0),
            homes: [const { Cell::new(0) }; HELD_HOMES],
        }
    }
}

/// Marks the calling thread, until dropped, as running the user's code under a
/// shard lock of the map whose home is given (a `compute` closure, `retain`'s
/// predicate and its removals):
/// - a help started there runs no destructor, since one that wrote to the
///   locked shard would wait for this thread forever (`Domain::help_before_doom`);
/// - a wait there for a ticket of that map is refused
///   (`Retired::would_wait_for_itself`): the release of the map's retired
///   generations takes each of its shard locks first (`ShardLocks::try_quiesce`),
///   so it cannot happen while this thread holds one.
///
/// (Neither `Send` nor `Sync`: the mark is its thread's.)
pub(crate) struct UserCodeUnderLock(std::marker::PhantomData<*const ()>);

impl UserCodeUnderLock {
    #[inline]
    pub(crate) fn enter(home: HomeRef) -> Self {
        UNDER_LOCK.with(|held| {
            let depth = held.depth.get();
            if let Some(slot) = held.homes.get(depth) {
                slot.set(home.addr());
            }
            held.depth.set(depth + 1);
        });
        UserCodeUnderLock(std::marker::PhantomData)
    }

    fn inside() -> bool {
        UNDER_LOCK.with(|held| held.depth.get() > 0)
    }

    /// Whether this thread runs the user's code under a shard lock of the map
    /// whose home's address is `home` (for the outermost `HELD_HOMES` closures:
    /// a deeper one is not found).
    pub(crate) fn holds(home: usize) -> bool {
        UNDER_LOCK.with(|held| {
            let named = held.depth.get().min(HELD_HOMES);
            held.homes[..named].iter().any(|slot| slot.get() == home)
        })
    }
}

impl Drop for UserCodeUnderLock {
    #[inline]
    fn drop(&mut self) {
        UNDER_LOCK.with(|held| held.depth.set(held.depth.get() - 1));
    }
}

impl Domain {
    /// The help of [`doom`](Self::doom), every `HELP_EVERY` pushes into a ring,
    /// when a help may destroy the value doomed (`Home::helps_destroy`: it has no
    /// destructor, or its map runs them on releasing threads) and, if it has a
    /// destructor, the thread is not running the user's code under a shard lock.
    /// (A thread that dooms only values left to the reclaimer never helps.)
    ///
    /// # Safety
    /// `home` is the home of a doomed cell that the caller has not handed over yet
    /// (so the home, and the domain it holds, outlive the call).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn help_before_doom(home: HomeRef, stripe: ThreadStripe) {
        let home = home.get();
        // No destructor under the user's shard lock, nor inside a pass or help of
        // any domain: a destructor run there that waited for the outer domain
        // (`Retired::wait`, a manual `reclaim`) would wait for this very thread,
        // and the pass mark names one domain only.
        let destructors = !UserCodeUnderLock::inside() && !PassMark::inside_any();
        if !home.destroy_reads_cells() || (destructors && home.helps_destroy()) {
            Domain::help(home.domain(), stripe.index, destructors);
        }
    }

    /// A releasing thread's help, in a background domain: while no pass runs
    /// (the pass lock is free: a try, never a wait), it takes what its own ring
    /// (`stripe`'s) holds, starts the grace period of that batch, and destroys
    /// the ripe batches of its own helps (of earlier ones, and this one when no
    /// other thread is pinned: the pass's two collections): what this thread
    /// released, never another thread's.
    /// Cells with no destructor go back to this thread's magazines
    /// (`recycle::free_cells`), a run at a time, while its cache still holds
    /// them; a pass would take them to the reclaimer's core and back through the
    /// depot.
    ///
    /// The cells taken whose destructor the help may not run (their map's
    /// setting, or `destructors` false: the user's code under a shard lock) start
    /// their grace period as a pass's do, and the reclaimer destroys them. Those
    /// it may run are destroyed here, under the pass's mark (`PassMark`): a
    /// destructor that waits for this domain's reclamation is told at once, as
    /// on the reclaimer, instead of waiting for a pass that this thread's hold on
    /// the pass lock keeps out; one that panics is contained and counted
    /// (`Stats::destructor_panics`).
    ///
    /// A bounded amount of work: the ring's cells since the last take (at most
    /// `BACKGROUND_RING_SLOTS`, `HELP_EVERY` in the steady state) and its earlier
    /// helps' ripe batches. Not from inside a pass of this domain (a destructor
    /// releasing a value), which holds the lock anyway.
    fn help(this: &Arc<Self>, stripe: usize, destructors: bool) {
        if this.mode != ReclaimMode::Background || PassMark::inside(this) {
            return;
        }
        let Some(ring) = this.ring(stripe) else {
            return;
        };
        // The help's flush below would interrupt the CPUs of threads that pin with
        // the light fence: while some do, most helps leave their dooms for a later
        // one (`HELPS_PER_BARRIER`).
        if !ring.help_runs(epoch::flush_would_interrupt) {
            return;
        }
        // Relaxed: a count for tests and figures, ordered with nothing.
        this.helps_run.fetch_add(1, Ordering::Relaxed);
        let mut state = match this.pass.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let _mark = PassMark::enter(this);
        let mut batch = std::mem::take(&mut state.spare);
        debug_assert!(batch.is_empty());
        // Under the pass lock: the ring's one consumer (`DoomRing::take_into`).
        ring.take_into(batch.cells());
        let others = batch.split_off_for_the_reclaimer(destructors);
        Self::start_value_grace(this, others, Ripe::Mixed);
        Self::start_value_grace(this, batch, Ripe::Helped(stripe));
        // The second collection, as in `reclaim_values`.
        epoch::pin().flush();
        let mut tally = Tally::default();
        // Earlier helps' ripe batches may hold values with destructors: a help
        // that may run none (`destructors` false) leaves them for a later help or
        // a pass, whichever comes first.
        let ripe = if destructors {
            this.ripe_helped[stripe].take_all()
        } else {
            Vec::new()
        };
        for ripe in ripe {
            let emptied = ripe.destroy_each(|outcome, home, count| {
                tally.add(home, outcome, count);
            });
            Self::keep_spare(&mut state.spare, emptied);
        }
        // Before the pass lock goes: a home is freed only by a pass (under it)
        // that reads these counts (`free_orphans`).
        tally.flush();
        state.trim.count(tally.trim_count);
        drop(state);
        // Relaxed: a count for tests and figures, ordered with nothing.
        this.helped
            .fetch_add(tally.destroyed as u64, Ordering::Relaxed);
        // Relaxed: a hint, as in `run_pass`.
        if tally.destroyed > 0 && this.waiters.load(Ordering::Relaxed) > 0 {
            let _g = lock(&this.done_lock);
            this.done_cv.notify_all();
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use crate::reclaim::doom_ring::HELP_EVERY;
    use crate::reclaim::stripe::thread_stripe;
    use crate::sync::Ordering;
    use crate::{AtomicMap, Builder, Reclaimer};
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A map whose releasing threads run its values' destructors in their helps.
    fn releasing_map<K, V>() -> Arc<AtomicMap<K, V>>
    where
        K: Eq + std::hash::Hash + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        Arc::new(
            Builder::new()
                .destructors_on_releasing_threads(true)
                .build(),
        )
    }

    /// Runs `release` on a thread that holds a stripe's claim (a ring is its
    /// claimant's alone): other tests of this binary may hold all eight for a
    /// while, so a thread that finds none exits, and another tries a little later.
    fn on_a_claimed_thread(release: impl Fn() + Send + Sync + 'static) {
        let release = Arc::new(release);
        let released = (0..500).any(|_| {
            let release = Arc::clone(&release);
            let done = std::thread::spawn(move || {
                if !thread_stripe().claimed {
                    return false;
                }
                release();
                true
            })
            .join()
            .unwrap();
            if !done {
                std::thread::sleep(Duration::from_millis(10));
            }
            done
        });
        assert!(released, "no thread got a stripe claim in 5 s");
    }

    /// While another thread pins with the light fence, a releasing thread's helps
    /// would each interrupt it (their flush issues the process-wide barrier), so
    /// only one due help in `HELPS_PER_BARRIER` runs: of the helps due in
    /// `2 * HELPS_PER_BARRIER * HELP_EVERY` dooms, two (every one of them without
    /// the limit).
    #[test]
    fn helps_run_one_in_helps_per_barrier_while_another_thread_pins_light() {
        use crate::reclaim::doom_ring::HELPS_PER_BARRIER;
        use crate::sync::epoch;
        use std::sync::mpsc;
        const DUE: usize = 2 * HELPS_PER_BARRIER;
        // What the background reclaimer does as it starts; `false` where the
        // process cannot register for the barrier (another OS, Miri, a seccomp
        // filter): no thread ever pins light there, and every help runs.
        if !epoch::enable_light_pins() {
            eprintln!("light pins unavailable here: nothing to check");
            return;
        }
        let (light_tx, light_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let pinner = std::thread::spawn(move || {
            // Pins without a flush turn the thread light (the fork's
            // `PINS_BEFORE_LIGHT`, 1,024); it stays light while it goes on pinning
            // (a thread that stops would be taken off the light count four
            // advances later: the fork's `heavy_fence_demoting`).
            for _ in 0..4096 {
                drop(epoch::pin());
            }
            light_tx.send(()).unwrap();
            while done_rx.try_recv().is_err() {
                drop(epoch::pin());
            }
        });
        light_rx.recv().unwrap();
        let reclaimer = Reclaimer::new();
        let map: Arc<AtomicMap<usize, u64>> =
            Arc::new(Builder::new().reclaimer(&reclaimer).build());
        let m = Arc::clone(&map);
        let runs = Arc::new(AtomicUsize::new(usize::MAX));
        let counted = Arc::clone(&runs);
        let r = reclaimer.clone();
        // The pinner, preempted long enough for the advances to leave it behind,
        // can be taken off the light count (the fork's demotion of idle light
        // threads) until it turns light again: an attempt during which it was
        // counted all along has the limit's count of helps; up to `ATTEMPTS` are
        // made. (The first doom makes the domain's ring, without a help: one due
        // help fewer in the first attempt.)
        const ATTEMPTS: usize = 5;
        let expected = DUE / HELPS_PER_BARRIER - 1..=DUE / HELPS_PER_BARRIER;
        let made = Arc::new(AtomicUsize::new(0));
        let made_here = Arc::clone(&made);
        on_a_claimed_thread(move || {
            for _ in 0..ATTEMPTS {
                let waited = std::time::Instant::now();
                while !epoch::flush_would_interrupt() {
                    assert!(
                        waited.elapsed() < Duration::from_secs(10),
                        "the pinner does not pin light"
                    );
                    std::thread::yield_now(); // the pinner turns light again
                }
                // Relaxed: counts of this thread's own helps, read on this thread.
                let before = r.domain().helps_run.load(Ordering::Relaxed);
                for i in 0..DUE * HELP_EVERY {
                    m.insert(i, i as u64);
                    drop(m.remove(&i));
                }
                made_here.fetch_add(DUE * HELP_EVERY, Ordering::Relaxed);
                let after = r.domain().helps_run.load(Ordering::Relaxed);
                let ran = (after - before) as usize;
                counted.store(ran, std::sync::atomic::Ordering::Relaxed);
                if expected.contains(&ran) {
                    break;
                }
            }
        });
        done_tx.send(()).unwrap();
        pinner.join().unwrap();
        let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (DUE / HELPS_PER_BARRIER - 1..=DUE / HELPS_PER_BARRIER).contains(&runs),
            "{runs} of {DUE} due helps ran while another thread pinned light (last of {ATTEMPTS} attempts)"
        );
        assert!(
            reclaimer.flush(Duration::from_secs(10)),
            "not reclaimed in 10 s"
        );
        assert_eq!(
            map.stats().reclaimed_values,
            made.load(Ordering::Relaxed) as u64
        );
    }

    /// A value whose destructor records whether it ran on a reclaimer's thread.
    struct WhereDropped(Arc<(AtomicUsize, AtomicUsize)>);

    impl Drop for WhereDropped {
        fn drop(&mut self) {
            let on_reclaimer = std::thread::current().name() == Some("atomic-map-reclaim");
            let counter = if on_reclaimer { &self.0.0 } else { &self.0.1 };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A thread that releases values of a map without destructors helps its
    /// dedicated background reclaimer: some are destroyed by its helps (without
    /// them, none: the count stays 0). A thread that also releases values with a
    /// destructor, into the same ring, leaves every one of those to the
    /// reclaimer's thread (a dedicated reclaimer keeps its maps' destructors). Every value is destroyed once, and each map's
    /// statistics count its own.
    #[test]
    fn releases_help_and_destructors_stay_on_the_reclaimer() {
        const ROUNDS: usize = 8 * HELP_EVERY;
        let reclaimer = Reclaimer::new();
        let plain: Arc<AtomicMap<usize, u64>> =
            Arc::new(Builder::new().reclaimer(&reclaimer).build());
        let with_drop: Arc<AtomicMap<usize, WhereDropped>> =
            Arc::new(Builder::new().reclaimer(&reclaimer).build());
        let drops = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (p, w, d) = (
            Arc::clone(&plain),
            Arc::clone(&with_drop),
            Arc::clone(&drops),
        );
        let r = reclaimer.clone();
        let rounds = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&rounds);
        on_a_claimed_thread(move || {
            // A help's batch is destroyed by the help itself only when no other
            // thread is pinned (other tests of this binary may be): then by a later
            // help, or the reclaimer's pass. A few rounds, until one helped.
            // Relaxed: a count, read on this thread.
            while r.domain().helped.load(Ordering::Relaxed) == 0 {
                let round = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                assert!(round < 100, "no release helped in 100 rounds");
                for i in 0..ROUNDS {
                    p.insert(i, i as u64);
                    drop(p.remove(&i));
                    if i % 4 == 0 {
                        w.insert(i, WhereDropped(Arc::clone(&d)));
                        drop(w.remove(&i));
                    }
                }
            }
        });
        let rounds = rounds.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            reclaimer.flush(Duration::from_secs(10)),
            "not reclaimed in 10 s"
        );
        let with_drop_values = rounds * ROUNDS.div_ceil(4);
        assert_eq!(
            (
                drops.0.load(std::sync::atomic::Ordering::Relaxed),
                drops.1.load(std::sync::atomic::Ordering::Relaxed)
            ),
            (with_drop_values, 0),
            "a destructor ran off the reclaimer's thread"
        );
        assert_eq!(plain.stats().reclaimed_values, (rounds * ROUNDS) as u64);
        assert_eq!(with_drop.stats().reclaimed_values, with_drop_values as u64);
        assert_eq!(plain.stats().pending_values, 0);
    }

    /// A value of a map whose releasing threads run its destructors, which
    /// records where its destructor ran, and, the first time it runs off the reclaimer's thread, waits
    /// (up to a minute) for a clear of its own map that a snapshot keeps from
    /// being reclaimed: as on the reclaimer, such a wait must return at once
    /// inside a help (the help holds the pass lock that any pass needs).
    struct WaitsInItsDrop {
        ran: Arc<(AtomicUsize, AtomicUsize)>,
        ticket: Arc<std::sync::Mutex<Option<crate::Retired>>>,
        waited: Arc<std::sync::Mutex<Option<Duration>>>,
    }

    impl Drop for WaitsInItsDrop {
        fn drop(&mut self) {
            let on_reclaimer = std::thread::current().name() == Some("atomic-map-reclaim");
            let counter = if on_reclaimer {
                &self.ran.0
            } else {
                &self.ran.1
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut waited = self.waited.lock().unwrap();
            if !on_reclaimer && waited.is_none() {
                let began = std::time::Instant::now();
                if let Some(ticket) = self.ticket.lock().unwrap().as_ref() {
                    assert!(!ticket.wait_timeout(Duration::from_secs(60)));
                }
                *waited = Some(began.elapsed());
            }
        }
    }

    /// A thread that releases values of a map built with
    /// `destructors_on_releasing_threads` destroys some of them itself, in its
    /// helps (a build whose helps leave them to the reclaimer fails the round
    /// limit); a destructor that waits for its own map's reclamation there
    /// returns at once; every value is destroyed once.
    #[test]
    fn releasing_threads_run_destructors_when_the_map_says() {
        const ROUNDS: usize = 4 * HELP_EVERY;
        let map: Arc<AtomicMap<usize, WaitsInItsDrop>> = releasing_map();
        let ran = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let ticket = Arc::new(std::sync::Mutex::new(None));
        let waited = Arc::new(std::sync::Mutex::new(None));
        let value = {
            let (ran, ticket, waited) = (ran.clone(), ticket.clone(), waited.clone());
            move || WaitsInItsDrop {
                ran: ran.clone(),
                ticket: ticket.clone(),
                waited: waited.clone(),
            }
        };
        // A generation kept from its reclamation until the end of the test.
        map.insert(usize::MAX, value());
        let held = map.snapshot();
        *ticket.lock().unwrap() = Some(map.clear_async());
        let made = Arc::new(AtomicUsize::new(1));
        let (m, r, n) = (Arc::clone(&map), Arc::clone(&ran), Arc::clone(&made));
        let make = value.clone();
        on_a_claimed_thread(move || {
            let mut round = 0;
            // A help destroys its batch itself only when no other thread is
            // pinned (other tests of this binary may be): else a later help, or
            // the reclaimer's pass, does. A few rounds, until one did.
            while r.1.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                round += 1;
                assert!(round <= 100, "no destructor ran in a help in 100 rounds");
                for i in 0..ROUNDS {
                    m.insert(i, make());
                    drop(m.remove(&i));
                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let waited = waited.lock().unwrap().expect("no destructor waited");
        assert!(
            waited < Duration::from_secs(30),
            "a destructor's wait in a help took {waited:?}: it waited for a pass the help keeps out"
        );
        drop(held);
        drop(ticket.lock().unwrap().take());
        let reclaimer = map.reclaimer();
        drop(map);
        assert!(
            reclaimer.flush(Duration::from_secs(30)),
            "not reclaimed in 30 s"
        );
        let made = made.load(std::sync::atomic::Ordering::Relaxed);
        let ran = (
            ran.0.load(std::sync::atomic::Ordering::Relaxed),
            ran.1.load(std::sync::atomic::Ordering::Relaxed),
        );
        assert_eq!(ran.0 + ran.1, made, "values destroyed, against made");
    }

    thread_local! {
        /// Set while the test below runs its closure under a shard lock.
        static IN_CLOSURE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A value that counts the destructor runs inside `IN_CLOSURE`.
    struct CountsInClosure(Arc<(AtomicUsize, AtomicUsize)>);

    impl Drop for CountsInClosure {
        fn drop(&mut self) {
            let inside = IN_CLOSURE.with(std::cell::Cell::get);
            let counter = if inside { &self.0.1 } else { &self.0.0 };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Releases made by the user's code under a shard lock (a `compute`
    /// closure that writes to another map) run no destructor there, though the
    /// map's releasing threads run them elsewhere: one that wrote to the locked
    /// shard would wait for its own thread. Every value is destroyed once.
    #[test]
    fn no_destructor_runs_in_user_code_under_a_shard_lock() {
        const RELEASES: usize = 16 * HELP_EVERY;
        let outer: Arc<AtomicMap<u8, u8>> = Arc::new(AtomicMap::new());
        let inner: Arc<AtomicMap<usize, CountsInClosure>> = releasing_map();
        let ran = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (o, i, r) = (Arc::clone(&outer), Arc::clone(&inner), Arc::clone(&ran));
        on_a_claimed_thread(move || {
            for round in 0..4 {
                o.compute(round, |_| {
                    IN_CLOSURE.with(|c| c.set(true));
                    for k in 0..RELEASES {
                        i.insert(k, CountsInClosure(Arc::clone(&r)));
                        drop(i.remove(&k));
                    }
                    IN_CLOSURE.with(|c| c.set(false));
                    crate::Operation::<u8>::Keep
                });
            }
        });
        let reclaimer = inner.reclaimer();
        drop(inner);
        assert!(
            reclaimer.flush(Duration::from_secs(30)),
            "not reclaimed in 30 s"
        );
        let ran = (
            ran.0.load(std::sync::atomic::Ordering::Relaxed),
            ran.1.load(std::sync::atomic::Ordering::Relaxed),
        );
        assert_eq!(ran.1, 0, "a destructor ran in a closure under a shard lock");
        assert_eq!(ran.0, 4 * RELEASES, "values destroyed, against made");
    }

    /// A value that records whether its destructor ran on the thread that
    /// released it (`owner`), on a reclaimer's thread, or on another thread.
    struct ReleasedBy {
        owner: std::thread::ThreadId,
        ran: Arc<[AtomicUsize; 3]>,
    }

    impl Drop for ReleasedBy {
        fn drop(&mut self) {
            let which = if std::thread::current().id() == self.owner {
                0
            } else if std::thread::current().name() == Some("atomic-map-reclaim") {
                1
            } else {
                2
            };
            self.ran[which].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Thread A releases values of a map built with
    /// `destructors_on_releasing_threads` while this thread holds a pin, so that
    /// its helps' batches wait in their grace period; then, the pin dropped and A
    /// still alive (its stripe still claimed), thread B releases values of its
    /// own: B's helps end A's grace periods, and must leave A's batches to A (or
    /// to a pass). A build whose helps took every thread's batches ran A's
    /// destructors on B. Twenty rounds, each ended by a flush before A exits;
    /// every value is destroyed once.
    #[test]
    fn a_help_runs_only_its_own_threads_destructors() {
        use std::sync::mpsc;
        const RELEASES: usize = 4 * HELP_EVERY;
        let map: Arc<AtomicMap<usize, ReleasedBy>> = releasing_map();
        let ran: Arc<[AtomicUsize; 3]> = Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
        let made = Arc::new(AtomicUsize::new(0));
        // Releases `RELEASES` values of keys from `first_key`, on this thread.
        let release = {
            let (map, ran, made) = (Arc::clone(&map), Arc::clone(&ran), Arc::clone(&made));
            move |first_key: usize| {
                let owner = std::thread::current().id();
                for k in first_key..first_key + RELEASES {
                    map.insert(
                        k,
                        ReleasedBy {
                            owner,
                            ran: Arc::clone(&ran),
                        },
                    );
                    drop(map.remove(&k));
                    made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        };
        let reclaimer = map.reclaimer();
        for _ in 0..20 {
            let guard = map.pin();
            let (a_done_tx, a_done_rx) = mpsc::channel();
            let (a_exit_tx, a_exit_rx) = mpsc::channel::<()>();
            let release_a = release.clone();
            let a = std::thread::spawn(move || {
                // A thread without a stripe's claim never helps (its releases go
                // to the lists): nothing to check in this round.
                let claimed = thread_stripe().claimed;
                if claimed {
                    release_a(0);
                }
                a_done_tx.send(claimed).unwrap();
                let _ = a_exit_rx.recv();
            });
            let a_claimed = a_done_rx.recv().unwrap();
            drop(guard);
            if a_claimed {
                let release_b = release.clone();
                std::thread::spawn(move || {
                    if thread_stripe().claimed {
                        release_b(RELEASES);
                    }
                })
                .join()
                .unwrap();
            }
            // What A's and B's helps left is destroyed by passes before either
            // stripe's claim is given back: the next claimant of a stripe takes
            // what is left there, which the contract allows.
            assert!(
                reclaimer.flush(Duration::from_secs(30)),
                "not reclaimed in 30 s"
            );
            a_exit_tx.send(()).unwrap();
            a.join().unwrap();
        }
        drop(map);
        drop(release);
        assert!(
            reclaimer.flush(Duration::from_secs(30)),
            "not reclaimed in 30 s"
        );
        let ran: Vec<usize> = ran
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        assert_eq!(
            ran[2], 0,
            "a help ran another thread's destructors: {ran:?}"
        );
        assert_eq!(
            ran.iter().sum::<usize>(),
            made.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    thread_local! {
        /// Set by a test around the code it watches: a `Probe` dropped meanwhile
        /// is counted apart.
        static WATCHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Counts its drops: index 1 while this thread is `WATCHED`, 0 otherwise.
    struct Probe(Arc<[AtomicUsize; 2]>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let watched = WATCHED.with(std::cell::Cell::get);
            self.0[usize::from(watched)].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn watched<R>(f: impl FnOnce() -> R) -> R {
        WATCHED.with(|w| w.set(true));
        let result = f();
        WATCHED.with(|w| w.set(false));
        result
    }

    fn probes() -> Arc<[AtomicUsize; 2]> {
        Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)])
    }

    /// Releases `n` values of `map` from key 0 on, each a `Probe` counting into
    /// `ran`, and returns `n`.
    fn release_probes(
        map: &AtomicMap<usize, Probe>,
        ran: &Arc<[AtomicUsize; 2]>,
        n: usize,
    ) -> usize {
        for k in 0..n {
            map.insert(k, Probe(Arc::clone(ran)));
            drop(map.remove(&k));
        }
        n
    }

    /// Runs `f` while another thread holds a pin of `map`: no grace period that
    /// begins meanwhile can end before `f` returns.
    fn while_another_thread_pins<K, V>(map: &AtomicMap<K, V>, f: impl FnOnce())
    where
        K: Eq + std::hash::Hash + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let (pinned, done) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _guard = map.pin();
                pinned.wait();
                done.wait();
            });
            pinned.wait();
            f();
            done.wait();
        });
    }

    /// Drops `map` and returns `ran`'s counts once `reclaimer` (the map's) has
    /// destroyed everything released.
    fn counts_after_flush<M>(reclaimer: &Reclaimer, map: M, ran: &[AtomicUsize; 2]) -> [usize; 2] {
        drop(map);
        flushed_counts(reclaimer, Duration::from_secs(30), ran)
    }

    /// `ran`'s counts once `reclaimer` has destroyed everything released (within
    /// `timeout`).
    fn flushed_counts(
        reclaimer: &Reclaimer,
        timeout: Duration,
        ran: &[AtomicUsize; 2],
    ) -> [usize; 2] {
        assert!(reclaimer.flush(timeout), "not reclaimed in {timeout:?}");
        ran.each_ref().map(|n| n.load(Ordering::Relaxed))
    }

    /// Two maps on a dedicated reclaimer, one built with
    /// `destructors_on_releasing_threads` (its values `Probe`s counting into
    /// `ran`), one of plain values, and a map on the process-wide reclaimer whose
    /// closures the tests release in; `made` counts the probes made.
    struct MixedMaps {
        reclaimer: Reclaimer,
        with_destructors: Arc<AtomicMap<usize, Probe>>,
        plain: Arc<AtomicMap<usize, u64>>,
        outer: Arc<AtomicMap<u8, u8>>,
        ran: Arc<[AtomicUsize; 2]>,
        made: Arc<AtomicUsize>,
    }

    /// What a test's thread uses of [`MixedMaps`].
    type MixedHandles = (
        Arc<AtomicMap<usize, Probe>>,
        Arc<AtomicMap<usize, u64>>,
        Arc<AtomicMap<u8, u8>>,
        Arc<[AtomicUsize; 2]>,
        Arc<AtomicUsize>,
    );

    impl MixedMaps {
        fn new() -> Self {
            let reclaimer = Reclaimer::new();
            MixedMaps {
                with_destructors: Arc::new(
                    Builder::new()
                        .reclaimer(&reclaimer)
                        .destructors_on_releasing_threads(true)
                        .build(),
                ),
                plain: Arc::new(Builder::new().reclaimer(&reclaimer).build()),
                outer: Arc::new(AtomicMap::new()),
                ran: probes(),
                made: Arc::new(AtomicUsize::new(0)),
                reclaimer,
            }
        }

        fn handles(&self) -> MixedHandles {
            (
                Arc::clone(&self.with_destructors),
                Arc::clone(&self.plain),
                Arc::clone(&self.outer),
                Arc::clone(&self.ran),
                Arc::clone(&self.made),
            )
        }

        /// Drops the maps, flushes their reclaimer (within `timeout`) and checks
        /// that every probe made was destroyed once; returns the probes' counts
        /// (outside `watched`, inside) and the reclaimer.
        fn finish(self, timeout: Duration) -> ([usize; 2], Reclaimer) {
            drop((self.with_destructors, self.plain, self.outer));
            let ran = flushed_counts(&self.reclaimer, timeout, &self.ran);
            assert_eq!(ran[0] + ran[1], self.made.load(Ordering::Relaxed));
            (ran, self.reclaimer)
        }
    }

    /// Batches that this thread's earlier helps left in their grace period (another
    /// thread was pinned), holding values with destructors, must not be destroyed
    /// by a later help that starts in the user's code under a shard lock: there a
    /// help may run no destructor, whatever batch it came from. The later help is
    /// one for values without destructors (another map's), released in a
    /// `compute` closure. A build that destroyed the earlier batches there ran
    /// 511 of 512 destructors inside the closure in the first round (found in
    /// review, 2026-12-06).
    #[test]
    fn earlier_helps_batches_wait_out_a_help_in_a_closure() {
        let maps = MixedMaps::new();
        let (w, p, o, r, m) = maps.handles();
        on_a_claimed_thread(move || {
            for _ in 0..40 {
                // The helps' batches stay in their grace period.
                while_another_thread_pins(&p, || {
                    m.fetch_add(release_probes(&w, &r, 2 * HELP_EVERY), Ordering::Relaxed);
                });
                o.compute(0, |_| {
                    watched(|| {
                        for k in 0..2 * HELP_EVERY {
                            p.insert(k, k as u64);
                            drop(p.remove(&k));
                        }
                    });
                    crate::Operation::<u8>::Keep
                });
                if r[1].load(Ordering::Relaxed) > 0 {
                    break;
                }
            }
        });
        let (ran, _) = maps.finish(Duration::from_secs(30));
        assert_eq!(ran[1], 0, "a destructor ran in a compute closure: {ran:?}");
    }

    /// A closure the map never calls (`get_or_insert_with` of a present key,
    /// `remove_if` of an absent one) is dropped under the shard lock too: a
    /// `ValueRef` it captured is released there, and its help must run no
    /// destructor. A build that marked only the closure's call ran 1,023 of 1,024
    /// destructors inside each call (found in review, 2026-12-06).
    #[test]
    fn a_closure_dropped_unused_runs_no_destructor_under_the_lock() {
        const RELEASES: usize = 4 * HELP_EVERY;
        let map: Arc<AtomicMap<usize, Probe>> = releasing_map();
        let outer: Arc<AtomicMap<u8, u8>> = Arc::new(AtomicMap::new());
        outer.insert(0, 0); // key 0 present, key 1 absent
        let ran = probes();
        let (m, o, r) = (Arc::clone(&map), Arc::clone(&outer), Arc::clone(&ran));
        on_a_claimed_thread(move || {
            for k in 0..RELEASES {
                m.insert(k, Probe(Arc::clone(&r)));
                let held = m.get(&k).expect("just inserted");
                drop(m.remove(&k));
                watched(|| {
                    if k % 2 == 0 {
                        o.get_or_insert_with(0, move || {
                            drop(held);
                            1
                        });
                    } else {
                        o.remove_if(&1, move |_, _| {
                            drop(held);
                            true
                        });
                    }
                });
            }
        });
        let ran = counts_after_flush(&map.reclaimer(), map, &ran);
        assert_eq!(ran[0] + ran[1], RELEASES);
        assert_eq!(
            ran[1], 0,
            "a destructor ran under outer's shard lock: {ran:?}"
        );
    }

    /// A destructor run in a releasing thread's help that shuts its own
    /// reclaimer down (`Reclaimer::shutdown`, its last handle) returns, as on
    /// the reclaimer's thread: the thread cannot exit while this release keeps
    /// the value's home, and a join would wait for good (a build without the
    /// check was stuck for the test's 20 s; found in review, 2026-12-06).
    #[test]
    fn shutdown_from_a_destructor_in_a_help_returns() {
        struct ShutsDown(std::sync::Mutex<Option<Reclaimer>>);
        impl Drop for ShutsDown {
            fn drop(&mut self) {
                if let Some(reclaimer) = self.0.lock().unwrap().take() {
                    reclaimer.shutdown();
                }
            }
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            on_a_claimed_thread(|| {
                let reclaimer = Reclaimer::new();
                let map: AtomicMap<usize, ShutsDown> = Builder::new()
                    .reclaimer(&reclaimer)
                    .destructors_on_releasing_threads(true)
                    .build();
                let held: Vec<_> = (0..2 * HELP_EVERY)
                    .map(|k| {
                        let handle = (k == 0).then(|| reclaimer.clone());
                        map.insert(k, ShutsDown(std::sync::Mutex::new(handle)));
                        map.remove(&k).expect("just inserted")
                    })
                    .collect();
                drop((map, reclaimer));
                drop(held); // a help runs value 0's destructor
            });
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the releasing thread was stuck for 20 s"
        );
    }

    /// A destructor that one domain's pass runs (here a manual domain's, on this
    /// thread) and that releases values of a map on another domain built with
    /// `destructors_on_releasing_threads`: that domain's helps run none of its
    /// destructors inside the outer pass, as before the option existed (the pass
    /// mark names one domain, so a destructor there that waited for the outer
    /// domain would wait for itself).
    #[test]
    fn no_destructor_of_another_domain_runs_inside_a_pass() {
        struct ReleasesInner(Vec<crate::ValueRef<Probe>>);
        impl Drop for ReleasesInner {
            fn drop(&mut self) {
                watched(|| self.0.clear());
            }
        }
        let manual = Reclaimer::manual();
        let outer: AtomicMap<u8, ReleasesInner> = Builder::new().reclaimer(&manual).build();
        let inner: Arc<AtomicMap<usize, Probe>> = releasing_map();
        let ran = probes();
        let (o, i, r) = (Arc::new(outer), Arc::clone(&inner), Arc::clone(&ran));
        let o2 = Arc::clone(&o);
        let manual2 = manual.clone();
        on_a_claimed_thread(move || {
            for _ in 0..20 {
                let held = (0..4 * HELP_EVERY)
                    .map(|k| {
                        i.insert(k, Probe(Arc::clone(&r)));
                        i.remove(&k).expect("just inserted")
                    })
                    .collect();
                o2.insert(0, ReleasesInner(held));
                drop(o2.remove(&0));
                // This thread's pass of the manual domain destroys the outer
                // value, whose destructor releases the inner values.
                assert!(
                    manual2.flush(Duration::from_secs(30)),
                    "not reclaimed in 30 s"
                );
            }
        });
        drop(o);
        let ran = counts_after_flush(&inner.reclaimer(), inner, &ran);
        assert_eq!(ran[0] + ran[1], 20 * 4 * HELP_EVERY);
        assert_eq!(
            ran[1], 0,
            "another domain's destructor ran inside a pass: {ran:?}"
        );
    }

    /// A small run of helps for Miri (`.ci/run`): one claimed thread's helps take
    /// rings that mix an opted-in map's values (with destructors) and a plain
    /// map's, split them, and destroy ripe batches, first with another thread
    /// pinned (the batches wait in grace), then not, then inside a `compute`
    /// closure (destructors left to the reclaimer); a flush finishes the rest.
    /// Every value destroyed once, and none in the closure. Miri checks each
    /// access of the cells, rings and batches on the way (about 30 s there).
    #[test]
    fn small_helps_for_miri() {
        let maps = MixedMaps::new();
        let (w, p, o, r, m) = maps.handles();
        let domain = Arc::clone(maps.reclaimer.domain());
        on_a_claimed_thread(move || {
            let helped = &domain.helped;
            let both = |n: usize| {
                for k in 0..n {
                    w.insert(k, Probe(Arc::clone(&r)));
                    drop(w.remove(&k));
                    p.insert(k, k as u64);
                    drop(p.remove(&k));
                    m.fetch_add(1, Ordering::Relaxed);
                }
            };
            while_another_thread_pins(&p, || both(HELP_EVERY / 2));
            // Until a help has destroyed something (under Miri a help often meets
            // the reclaimer's slow pass holding the lock or the epoch), at most 8
            // rounds.
            for _ in 0..8 {
                both(HELP_EVERY / 2);
                // Relaxed: a count.
                if helped.load(Ordering::Relaxed) > 0 {
                    break;
                }
            }
            o.compute(0, |_| {
                watched(|| both(HELP_EVERY / 2));
                crate::Operation::<u8>::Keep
            });
        });
        let (ran, reclaimer) = maps.finish(Duration::from_secs(600));
        assert_eq!(ran[1], 0, "a destructor ran in a compute closure: {ran:?}");
        // Relaxed: counts, read after the flush.
        let helped = reclaimer.domain().helped.load(Ordering::Relaxed);
        let runs = reclaimer.domain().helps_run.load(Ordering::Relaxed);
        eprintln!("small_helps_for_miri: {ran:?} values, {helped} destroyed in {runs} helps");
        reclaimer.shutdown();
    }
}
