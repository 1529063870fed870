//! Which stripe of the per-value counters (and doomed rings and lists) a thread
//! writes, and whether it writes that stripe's counters and ring alone.
//!
//! A map counts every value cell created and every value doomed, in
//! `COUNTER_STRIPES` stripes of one cache line each (`home.rs`). A locked
//! read-modify-write per count is what striping alone leaves: an insert and a
//! remove paid two of them (`lock xadd`, each draining the store buffer) out of
//! about nine, for counts that only statistics and the home's free read. So the
//! first `COUNTER_STRIPES` threads that count each *claim* a stripe index of their
//! own, process-wide: in every map, only the claimant writes the `owned` counters
//! of that stripe, with a plain load and store (no locked instruction). Threads
//! beyond those share the stripes round-robin and add to each stripe's `shared`
//! counters with `fetch_add`, as every thread did before. A reader sums both.
//!
//! The claimant of a stripe is also the only thread that dooms values through
//! the stripe's ring in every domain (`doom_ring.rs`), so a doom needs no locked
//! instruction either; other threads push onto the stripe's doomed list.
//!
//! A claim ends with its thread (a thread-local guard's destructor, `ClaimGuard`'s,
//! gives the index back); a later thread may claim the same index and go on from the counts its
//! predecessor left. Both the give-back and the claim are `SeqCst` read-modify-writes
//! on the claim word, once per thread: the give-back follows the old claimant's
//! last store to its counters, the claim precedes the new claimant's first load, so
//! the new claimant reads what the old one wrote last (a `Relaxed` claim could read
//! an older count and lose the difference; x86 compiles both orderings alike, so
//! no test here can tell). `tests/counters.rs` counts every value doomed by two
//! rounds of twelve threads (more than the stripes, and a second generation of
//! claimants); two writers of one stripe's `owned` counter lose counts, which it
//! catches when their load-and-store pairs overlap (hundreds lost per run when it
//! was broken on purpose, in 3 runs of 3).
//!
//! A thread whose claim is gone (in its thread-locals' destructors, after this
//! one's) counts on the shared counters of stripe 0.
//!
//! Under loom there is one stripe (`COUNTER_STRIPES` is 1), and the claim word, a
//! std static that cannot be rebuilt per execution, is never touched: the shim
//! gives the stripe's claim to the first thread of each execution that counts
//! while no other holds it, and takes it back when that thread exits
//! (`holds_the_stripe_claim`, with the same orderings), so that the models run
//! both the claimant's paths and the others', and a claim's hand-over (loom
//! scenario 21).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sync::{AtomicU64, COUNTER_STRIPES, Ordering as ShimOrdering, holds_the_stripe_claim};

/// The stripe a thread counts on.
#[derive(Clone, Copy)]
pub(crate) struct ThreadStripe {
    /// Index into a map's stripes and a domain's doomed lists.
    pub(crate) index: usize,
    /// Whether this thread claimed `index`: it alone writes its `owned` counters.
    pub(crate) claimed: bool,
}

/// One counter of a stripe: the claimant's part and everyone else's.
#[derive(Default)]
pub(crate) struct StripedCount {
    /// Written only by the thread that claimed the stripe's index.
    owned: AtomicU64,
    /// Added to by threads without a claim.
    shared: AtomicU64,
}

impl StripedCount {
    /// Adds one, as `stripe`'s thread.
    #[inline]
    pub(crate) fn add_one(&self, stripe: ThreadStripe) {
        if stripe.claimed {
            // Relaxed, and not a read-modify-write: the claimant is the only writer of
            // `owned` (module docs); the load reads its own last store, or its
            // predecessor's, ordered before by the claim. Readers sum racy samples.
            let n = self.owned.load(ShimOrdering::Relaxed);
            self.owned.store(n + 1, ShimOrdering::Relaxed);
        } else {
            // Relaxed: a count, as the claimant's.
            self.shared.fetch_add(1, ShimOrdering::Relaxed);
        }
    }

    /// Both parts (Relaxed: see the callers).
    pub(crate) fn sum(&self) -> u64 {
        self.owned.load(ShimOrdering::Relaxed) + self.shared.load(ShimOrdering::Relaxed)
    }
}

/// Bit `i` is set while a thread holds a claim on stripe index `i`.
static CLAIMS: AtomicUsize = AtomicUsize::new(0);
/// Round-robin indices for threads without a claim.
static NEXT_SHARED: AtomicUsize = AtomicUsize::new(0);

/// No stripe chosen yet.
const UNSET: usize = usize::MAX;
/// Marks a claimed index in `MINE`.
const CLAIMED: usize = 1 << (usize::BITS - 1);

std::thread_local! {
    /// This thread's stripe (`UNSET` until its first count), with `CLAIMED` set if
    /// it holds the index's claim. A thread-local with no destructor, so that
    /// reading it is one load: one with a destructor is checked for being alive (and
    /// registered) on every access, which every insert and every doom paid. The
    /// claim is given back by `CLAIM_GIVEN_BACK`'s destructor.
    static MINE: Cell<usize> = const { Cell::new(UNSET) };
}

/// Gives this thread's claim back when the thread exits, and sends its later counts
/// to stripe 0's shared counters; registered by `choose`, before it tries to claim.
/// (A thread whose first count comes after the C runtime has run its thread-local
/// destructors, from a `pthread_key` destructor say, registers a guard that never
/// runs: its claim is never given back, and the index stays shared for the rest of
/// the process.)
struct ClaimGuard;

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        // `MINE` has no destructor: readable in every thread-local's destructor.
        // Counts made after this one (by later destructors) go to stripe 0's shared
        // counters.
        let mine = MINE.replace(0);
        if mine != UNSET && mine & CLAIMED != 0 {
            // SeqCst: after every count this thread made; the next claim of the index
            // reads them (module docs).
            CLAIMS.fetch_and(!(1 << (mine & !CLAIMED)), Ordering::SeqCst);
        }
    }
}

std::thread_local! {
    /// Holds nothing; its destructor gives the claim back.
    static CLAIM_GIVEN_BACK: ClaimGuard = const { ClaimGuard };
}

/// This thread's stripe; chooses (and claims, if an index is free) on first use.
#[inline]
pub(crate) fn thread_stripe() -> ThreadStripe {
    if COUNTER_STRIPES == 1 {
        return ThreadStripe {
            index: 0,
            claimed: holds_the_stripe_claim(),
        };
    }
    chosen_thread_stripe().unwrap_or_else(|| {
        let mine = choose();
        MINE.set(mine);
        decode(mine)
    })
}

/// This thread's stripe if it has chosen one: one load, no call (a doom's common
/// path, `ValueRef::doom_last`, whose only calls are then tail calls); `None`
/// before the thread's first count.
#[inline]
pub(crate) fn chosen_thread_stripe() -> Option<ThreadStripe> {
    if COUNTER_STRIPES == 1 {
        return Some(thread_stripe());
    }
    let mine = MINE.get();
    (mine != UNSET).then(|| decode(mine))
}

/// The stripe `MINE` holds.
#[inline]
fn decode(mine: usize) -> ThreadStripe {
    ThreadStripe {
        index: mine & !CLAIMED,
        claimed: mine & CLAIMED != 0,
    }
}

/// Claims the lowest free index, or, if all are held, picks one round-robin.
#[cold]
fn choose() -> usize {
    const _: () = assert!(COUNTER_STRIPES < usize::BITS as usize - 1);
    // A claim is given back by the guard's destructor, so none is made once the
    // guard can no longer be registered (this thread is exiting).
    if CLAIM_GIVEN_BACK.try_with(|_| ()).is_err() {
        return 0;
    }
    let all = (1usize << COUNTER_STRIPES) - 1;
    // SeqCst: see `ClaimGuard::drop` (the claim's read-modify-write must follow the
    // previous claimant's give-back).
    let mut claims = CLAIMS.load(Ordering::SeqCst);
    loop {
        let free = !claims & all;
        if free == 0 {
            break;
        }
        let index = free.trailing_zeros() as usize;
        match CLAIMS.compare_exchange_weak(
            claims,
            claims | (1 << index),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return index | CLAIMED,
            Err(now) => claims = now,
        }
    }
    // Relaxed: an index, not synchronization.
    #[allow(clippy::modulo_one)] // one stripe under loom
    let index = NEXT_SHARED.fetch_add(1, Ordering::Relaxed) % COUNTER_STRIPES;
    index
}
