//! `Retired` as a `Future`: awaited with a minimal executor written here (no async
//! runtime), or polled by hand with a waker that counts its wakes, so that each test
//! sees who woke whom. Waits are bounded by `LIMIT` and asserted; nothing is timed.

// These tests use the real synchronization types; `--features loom` swaps them for
// loom's, which only work inside a model (the models are in `loom-tests/`).
#![cfg(not(feature = "loom"))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use atomic_map::{AtomicMap, Builder, ReclaimMode, Reclaimer, Retired};

/// A generous bound for anything that should happen within a few passes.
const LIMIT: Duration = Duration::from_secs(10);

/// A waker that counts its wakes and unparks the thread that made it.
struct Signal {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Signal {
    fn new() -> Arc<Self> {
        Arc::new(Signal {
            thread: thread::current(),
            wakes: AtomicUsize::new(0),
        })
    }

    fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::clone(self))
    }

    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Parks until the count of wakes exceeds `seen`; `false` if `deadline` passes
    /// first.
    fn wait_past(&self, seen: usize, deadline: Instant) -> bool {
        loop {
            if self.wakes() > seen {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            thread::park_timeout(deadline - now);
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor: polls `fut` on this thread, and polls it again only after
/// its waker was woken (so a lost wake-up shows as a timeout, never hides behind a
/// re-poll). `None` if `fut` is not done within `LIMIT`.
fn block_on<F: Future>(fut: F) -> Option<F::Output> {
    let signal = Signal::new();
    let waker = signal.waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = Instant::now() + LIMIT;
    loop {
        let seen = signal.wakes();
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        if !signal.wait_past(seen, deadline) {
            return None;
        }
    }
}

/// One poll of a ticket, by hand.
fn poll(ticket: &mut Retired, waker: &Waker) -> Poll<()> {
    Pin::new(ticket).poll(&mut Context::from_waker(waker))
}

/// A value that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// (1) In background mode (the process-wide reclaimer, and a dedicated one),
/// awaiting a clear's or a replace's ticket completes, with nobody blocking on the
/// ticket, and once it does the generation's values are destroyed. A snapshot held
/// for a moment by another thread makes the first poll likely to find the
/// generation still held, so the completion comes from a wake.
#[test]
fn awaiting_a_ticket_completes_in_background_mode() {
    const N: usize = if cfg!(miri) { 8 } else { 1_000 };
    let dedicated = Reclaimer::new();
    for map in [
        AtomicMap::new(),
        Builder::new().reclaimer(&dedicated).build(),
    ] {
        let drops = Arc::new(AtomicUsize::new(0));
        for i in 0..N {
            map.insert(i, Counted(Arc::clone(&drops)));
        }
        let snapshot = map.snapshot();
        let holder = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(snapshot);
        });
        let done = block_on(async {
            map.clear_async().await;
            drops.load(Ordering::SeqCst)
        });
        assert_eq!(
            done,
            Some(N),
            "the clear's ticket completed, values destroyed"
        );
        holder.join().unwrap();

        map.insert(0, Counted(Arc::clone(&drops)));
        let done = block_on(async {
            map.replace([(1, Counted(Arc::clone(&drops)))]).await;
            drops.load(Ordering::SeqCst)
        });
        assert_eq!(done, Some(N + 1), "the replace's ticket completed");
        assert_eq!(map.len(), 1);
    }
}

/// (2) The future stays pending while a snapshot holds the old generation (the
/// reclaimer runs its passes meanwhile: a poll wakes it), and is not woken before
/// the teardown. Once the snapshot drops, the reclaimer's teardown wakes the waker
/// registered by the last poll, and the next poll is ready.
#[test]
fn pending_while_a_snapshot_holds_the_generation_then_woken_by_the_reclaimer() {
    let (polls, pause) = if cfg!(miri) {
        (2, Duration::from_millis(5))
    } else {
        (5, Duration::from_millis(20))
    };
    let map: AtomicMap<u32, u32> = AtomicMap::new();
    map.insert(1, 1);
    let snapshot = map.snapshot();
    let mut ticket = map.clear_async();
    let signal = Signal::new();
    let waker = signal.waker();
    for _ in 0..polls {
        assert!(poll(&mut ticket, &waker).is_pending());
        thread::sleep(pause);
    }
    assert!(!ticket.is_reclaimed());
    assert_eq!(signal.wakes(), 0, "no wake before the teardown");

    drop(snapshot);
    assert!(
        signal.wait_past(0, Instant::now() + LIMIT),
        "the teardown did not wake the pending future"
    );
    assert!(ticket.is_reclaimed());
    assert!(poll(&mut ticket, &waker).is_ready());
    // A completed ticket stays ready.
    assert!(poll(&mut ticket, &waker).is_ready());
}

/// (3) Many waiters: tickets of several clears and clones of them, polled from
/// several threads (one of them re-polled many times while pending), all pending
/// until the snapshots holding their generations drop, then all complete.
#[test]
fn many_waiters_on_several_threads_all_complete() {
    const CLEARS: usize = 4;
    const TICKETS: usize = if cfg!(miri) { 16 } else { 200 };
    const THREADS: usize = if cfg!(miri) { 2 } else { 4 };
    const REPOLLS: usize = if cfg!(miri) { 20 } else { 1_000 };

    let map: AtomicMap<usize, usize> = AtomicMap::new();
    let mut snapshots = Vec::new();
    let mut tickets = Vec::new();
    for c in 0..CLEARS {
        map.insert(c, c);
        snapshots.push(map.snapshot());
        tickets.push(map.clear_async());
    }
    for i in CLEARS..TICKETS {
        let clone = tickets[i % CLEARS].clone();
        tickets.push(clone);
    }
    let mut shares: Vec<Vec<Retired>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (i, ticket) in tickets.into_iter().enumerate() {
        shares[i % THREADS].push(ticket);
    }

    let polled = Arc::new(Barrier::new(THREADS + 1));
    let waiters: Vec<_> = shares
        .into_iter()
        .map(|mut mine| {
            let polled = Arc::clone(&polled);
            thread::spawn(move || {
                let signal = Signal::new();
                let waker = signal.waker();
                for ticket in &mut mine {
                    assert!(poll(ticket, &waker).is_pending());
                }
                for _ in 0..REPOLLS {
                    assert!(poll(&mut mine[0], &waker).is_pending());
                }
                polled.wait();
                let count = mine.len();
                let deadline = Instant::now() + LIMIT;
                loop {
                    let seen = signal.wakes();
                    mine.retain_mut(|ticket| poll(ticket, &waker).is_pending());
                    if mine.is_empty() {
                        return count;
                    }
                    assert!(
                        signal.wait_past(seen, deadline),
                        "{} tickets not woken",
                        mine.len()
                    );
                }
            })
        })
        .collect();
    polled.wait();
    drop(snapshots);
    let completed: usize = waiters.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(completed, TICKETS);
}

/// (4) Manual mode: a poll runs a pass, so a ticket whose generation has no holder
/// becomes ready by polling alone (on the first poll when no other thread is
/// pinned: the slot's reference waits out an epoch grace period, and the tests
/// that run beside this one pin). A pending one is not woken by the last holder's
/// drop (nothing runs passes in this mode), but by a later `reclaim()`.
#[test]
fn manual_mode_poll_runs_a_pass_and_reclaim_wakes() {
    let map: AtomicMap<u32, u32> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    let signal = Signal::new();
    let waker = signal.waker();

    map.insert(1, 1);
    let mut ticket = map.clear_async();
    assert!(!ticket.is_reclaimed());
    let deadline = Instant::now() + LIMIT;
    while poll(&mut ticket, &waker).is_pending() {
        assert!(
            Instant::now() < deadline,
            "polls run passes: the ticket never got ready"
        );
        thread::sleep(Duration::from_millis(1));
    }

    map.insert(2, 2);
    let snapshot = map.snapshot();
    let mut ticket = map.clear_async();
    assert!(poll(&mut ticket, &waker).is_pending());
    drop(snapshot);
    assert!(!ticket.is_reclaimed());
    let wakes = signal.wakes();
    let deadline = Instant::now() + LIMIT;
    while !ticket.is_reclaimed() {
        assert!(Instant::now() < deadline, "reclaim() never tore it down");
        map.reclaim();
    }
    assert_eq!(
        signal.wakes(),
        wakes + 1,
        "the pass that tore it down woke it"
    );
    assert!(poll(&mut ticket, &waker).is_ready());

    // Awaited on one thread while another drops the holder and reclaims once.
    map.insert(3, 3);
    let snapshot = map.snapshot();
    let ticket = map.clear_async();
    let map = Arc::new(map);
    let reclaimer = {
        let map = Arc::clone(&map);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(snapshot);
            while map.stats().retired_generations > 0 {
                map.reclaim();
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    assert_eq!(block_on(ticket), Some(()));
    reclaimer.join().unwrap();
}

/// (5) A pending future that is dropped gives its waker back, and is not woken.
#[test]
fn dropped_pending_future_gives_its_waker_back() {
    for mode in [ReclaimMode::Background, ReclaimMode::Manual] {
        let map: AtomicMap<u32, u32> = Builder::new().reclaim_mode(mode).build();
        map.insert(1, 1);
        let snapshot = map.snapshot();
        let mut ticket = map.clear_async();
        let other = ticket.clone();
        let signal = Signal::new();
        let waker = signal.waker();
        assert!(poll(&mut ticket, &waker).is_pending());
        assert_eq!(
            Arc::strong_count(&signal),
            3,
            "ours, the waker's, the slot's"
        );
        drop(ticket);
        assert_eq!(
            Arc::strong_count(&signal),
            2,
            "{mode:?}: the slot's waker dropped"
        );
        drop(snapshot);
        if mode == ReclaimMode::Manual {
            // Only the program runs a manual map's passes: a poll runs one, but the
            // generation's release waits for a grace period, which another test's
            // pin can hold up past that pass (this failed in CI). Run passes until
            // the teardown is done.
            let deadline = Instant::now() + LIMIT;
            while !other.is_reclaimed() && Instant::now() < deadline {
                map.reclaim();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(block_on(other), Some(()), "{mode:?}");
        assert_eq!(signal.wakes(), 0);
    }
}

/// A value whose destructor polls the ticket of the generation being torn down (the
/// one that holds it), then keeps the polled ticket.
struct PollsInDrop {
    ticket: Arc<Mutex<Option<Retired>>>,
    signal: Arc<Signal>,
    pending: Arc<Mutex<Option<bool>>>,
}

impl Drop for PollsInDrop {
    fn drop(&mut self) {
        let mut ticket = self.ticket.lock().unwrap().take().expect("handed over");
        let pending = poll(&mut ticket, &self.signal.waker()).is_pending();
        *self.pending.lock().unwrap() = Some(pending);
        *self.ticket.lock().unwrap() = Some(ticket);
    }
}

/// (6) Polled from a destructor that a pass of the same reclaimer runs, the future
/// returns `Pending` at once (no deadlock, no panic), and the same teardown, once
/// done, wakes it.
#[test]
fn polled_from_a_destructor_of_its_own_teardown() {
    for mode in [ReclaimMode::Background, ReclaimMode::Manual] {
        let map: AtomicMap<u8, PollsInDrop> = Builder::new().reclaim_mode(mode).build();
        let slot = Arc::new(Mutex::new(None));
        let signal = Signal::new();
        let pending = Arc::new(Mutex::new(None));
        map.insert(
            1,
            PollsInDrop {
                ticket: Arc::clone(&slot),
                signal: Arc::clone(&signal),
                pending: Arc::clone(&pending),
            },
        );
        let mut ticket = map.clear_async();
        *slot.lock().unwrap() = Some(ticket.clone());
        let done = if mode == ReclaimMode::Manual {
            // Only the program runs a manual map's passes: each poll runs one, but
            // the generation's release waits for a grace period, which another
            // test's pin can hold up past that pass, and then nothing wakes the
            // future (as in (5); Miri's schedule did this in CI). Poll until ready.
            let waker = Signal::new().waker();
            let deadline = Instant::now() + LIMIT;
            loop {
                if poll(&mut ticket, &waker).is_ready() {
                    break Some(());
                }
                if Instant::now() >= deadline {
                    break None;
                }
                thread::sleep(Duration::from_millis(1));
            }
        } else {
            block_on(&mut ticket)
        };
        assert_eq!(done, Some(()), "{mode:?}");
        assert_eq!(*pending.lock().unwrap(), Some(true), "{mode:?}");
        assert!(
            signal.wait_past(0, Instant::now() + LIMIT),
            "{mode:?}: the teardown woke the destructor's poll"
        );
        let mut polled = slot.lock().unwrap().take().unwrap();
        assert!(poll(&mut polled, &signal.waker()).is_ready());
        assert_eq!(map.stats().destructor_panics, 0);
    }
}

/// `on_reclaimed` runs its function once, after the teardown and never before:
/// in manual mode on the thread whose pass tears the generation down, even with
/// the ticket dropped first; at once on the calling thread when the generation is
/// already torn down; in background mode on the reclaimer's thread, inside its
/// pass.
#[test]
fn on_reclaimed_runs_once_after_the_teardown() {
    let map: AtomicMap<u64, u64> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    map.insert(1, 1);
    let held = map.snapshot();
    let ticket = map.clear_async();
    let runs = Arc::new(Mutex::new(Vec::new()));
    for which in 0..2 {
        let (runs, ticket_seen) = (Arc::clone(&runs), ticket.clone());
        ticket.on_reclaimed(move || {
            // The teardown is done when it runs: the flag is raised first.
            let reclaimed = ticket_seen.is_reclaimed();
            runs.lock()
                .unwrap()
                .push((which, thread::current().id(), reclaimed));
        });
    }
    drop(ticket); // the registrations belong to the generation
    map.reclaim();
    assert!(
        runs.lock().unwrap().is_empty(),
        "ran while a snapshot held the generation"
    );
    drop(held);
    let reclaimer = thread::spawn(move || {
        let started = Instant::now();
        while map.stats().reclaimed_generations == 0 && started.elapsed() < LIMIT {
            map.reclaim();
        }
        (thread::current().id(), map)
    });
    let (reclaiming_thread, map) = reclaimer.join().unwrap();
    let mut seen = runs.lock().unwrap().clone();
    seen.sort_by_key(|run| run.0);
    assert_eq!(
        seen,
        [(0, reclaiming_thread, true), (1, reclaiming_thread, true)],
        "each function once, on the reclaiming thread, after the teardown"
    );

    // Already torn down: at once, on this thread.
    let ticket = map.clear_async();
    assert!(ticket.wait_timeout(LIMIT), "the clear was not torn down");
    let here = Arc::new(Mutex::new(None));
    let record = Arc::clone(&here);
    ticket.on_reclaimed(move || *record.lock().unwrap() = Some(thread::current().id()));
    assert_eq!(*here.lock().unwrap(), Some(thread::current().id()));
    assert_eq!(
        runs.lock().unwrap().len(),
        2,
        "an earlier function ran again"
    );

    // Background: on the reclaimer's thread, inside its pass.
    let map: AtomicMap<u64, u64> = AtomicMap::new();
    map.insert(1, 1);
    let (done, ran) = std::sync::mpsc::channel();
    map.clear_async().on_reclaimed(move || {
        let in_pass = Reclaimer::process_wide().in_pass();
        done.send((thread::current().id(), in_pass)).unwrap();
    });
    let (thread, in_pass) = ran
        .recv_timeout(LIMIT)
        .expect("never ran in background mode");
    assert_ne!(thread, std::thread::current().id());
    assert!(in_pass, "ran outside the reclaimer's pass");
}

/// A manual map dropped while a snapshot holds a retired generation hands its
/// domain to the process-wide one, whose thread runs the adopted domain's passes
/// inside its own: a function run at that teardown (as a destructor there) is
/// inside a pass of the process-wide reclaimer too, so a wait for it is refused
/// there instead of holding up every map's reclamation.
#[test]
fn on_reclaimed_in_an_adopted_pass_is_inside_the_adopters_pass() {
    let map: AtomicMap<u64, u64> = Builder::new().reclaim_mode(ReclaimMode::Manual).build();
    map.insert(1, 1);
    let held = map.snapshot();
    let ticket = map.clear_async();
    let (done, ran) = std::sync::mpsc::channel();
    ticket.on_reclaimed(move || {
        let process_wide = Reclaimer::process_wide();
        let in_pass = process_wide.in_pass();
        // Only where refused (else it would stall every map for the timeout).
        let flushed = in_pass && process_wide.flush(Duration::from_secs(60));
        done.send((thread::current().id(), in_pass, flushed))
            .unwrap();
    });
    drop(map); // the domain is adopted: the snapshot still holds the generation
    drop(held);
    let (thread, in_pass, flushed) = ran
        .recv_timeout(LIMIT)
        .expect("never ran after the adoption");
    assert_ne!(
        thread,
        std::thread::current().id(),
        "not run by the adopter's thread"
    );
    assert!(
        in_pass,
        "an adopted domain's pass is not inside the adopter's"
    );
    assert!(
        !flushed,
        "a flush of the reclaimer running the pass returned true"
    );
    assert!(ticket.is_reclaimed());
}
