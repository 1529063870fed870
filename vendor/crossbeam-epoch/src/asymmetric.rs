//! Asymmetric fences: the one addition of this fork to crossbeam-epoch 0.9.21.
//!
//! Upstream, every pin publishes its epoch and then executes a full fence (a
//! `lock cmpxchg` on x86), which pairs with the `SeqCst` fences where a bag is sealed
//! (`Global::push_bag`) and where the epoch advances (`Global::try_advance`). Pins
//! are frequent and those two are rarer, so this fork can move the cost: a pin
//! executes only a compiler fence (the *light* side, [`light`]) and the seals and
//! advances add a process-wide barrier (the *heavy* side), Linux's
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`. The kernel runs a full memory
//! barrier on every CPU that is running a thread of this process when it is called,
//! and a thread that is not running passed through a context switch, itself a full
//! barrier. So for a light fence L and a heavy fence H, either everything before L is
//! visible after H, or everything before H is visible after L: the pair behaves as
//! two `SeqCst` fences, which is all upstream's argument asks of a pin's fence
//! (crossbeam's RFC 2017-07-23, "relaxed memory"; C++'s P1202 names the same pair
//! `asymmetric_thread_fence_light` and `_heavy`; seize and folly's hazard pointers
//! use it).
//!
//! **Who pins light.** The barrier is a system call that interrupts the CPUs of
//! the other running threads: on the 2-vCPU VM where this was measured, 0.7 µs for
//! the caller alone and about 16 µs of the two threads' time together when both
//! were writing (`docs/BENCHMARKS.md`, "Pins without a fence"). Writers seal and
//! advance often (every help of a releasing thread does), so a light fence on every
//! pin cost their loops 12–25%. So a participant pins light only after
//! `PINS_BEFORE_LIGHT` pins without a flush or a seal of its own (a thread that
//! mostly reads), and goes back to the full fence when it flushes or seals (the
//! advances a pin tries now and then do not count). A
//! global count of light participants (`Global::light_pinners`) lets a seal or an
//! advance skip the barrier when none pins light: then every pin has its full
//! fence, as upstream.
//!
//! While a participant pins light, pins try to advance the epoch only every 65,536
//! pins and only if garbage waits (they still run the bags that expired every 128):
//! each try would be a barrier, and a thread's pins between two of its flushes
//! interrupted the other thread every 128 pins. `Guard::flush` advances;
//! atomic-map's reclaimer flushes whenever something waits for a grace period.
//!
//! **Why the count is enough.** A seal or an advance executes a `SeqCst` fence F,
//! then loads the count (`Global::heavy_fence`). For any light pin P of a
//! participant L, one of these holds:
//!
//! * the load saw L counted: F is followed by the barrier, and P's light fence
//!   pairs with it as above;
//! * the load missed L's increment: L made it after the load, and L's `SeqCst`
//!   fence after its increment (`Local::enter_light`) follows F in the `SeqCst`
//!   order (the load is coherence-ordered before the increment), so P, later in L's
//!   program, sees everything that preceded F;
//! * the load saw L's decrement (`Local::leave_light`, Release, read with Acquire):
//!   everything L did before it, P's load of the global epoch and its epoch store
//!   included, is visible after the load. That is what the seal and the advance
//!   need of P (a seal then reads an epoch no older than P's, and an advance sees P
//!   pinned); P's loads after the decrement, in the same guard, are not ordered
//!   after this fence, and need not be: they are covered by the earlier seal's
//!   case, which was one of these three when it ran.
//!
//! (Formally, with a plain store in place of upstream's x86 `lock cmpxchg`, a light
//! pin no longer continues the release sequence of the previous unpin's store, and
//! `membarrier` is outside the language's model: the argument above is the
//! hardware's, as for upstream's own store-then-fence pin on other architectures.
//! It holds on x86 and on ARMv8, whose stores to one location stay in order.)
//!
//! **Idle light participants** (added 2026-12-06). A participant leaves the count
//! when it flushes, seals or exits; one that read for a while and then sleeps (a
//! request handler between bursts) would keep every seal and advance of the
//! process on the barrier until it ran again: measured with `write_probe
//! --idle-readers 1`, 14,278 `membarrier` calls in a three-round upsert run
//! against 15 with the demotion below. So a seal or an advance takes a light
//! participant that has not pinned for `Global::IDLE_ADVANCES_BEFORE_DEMOTION`
//! (4) advances off the count (`Global::heavy_fence_demoting`): (a) it marks the
//! participant's `light_state` `DEMOTED` (a compare-and-swap from `LIGHT`, so that
//! one marker and the participant itself agree on who decrements); (b) it executes
//! its heavy fence, with the barrier, since the participant is still counted;
//! (c) it loads the participant's epoch again (Acquire; the first look may have
//! been stale); (d) if that shows it still idle, or if the participant has already
//! acknowledged the mark or left light by itself, it decrements the count
//! (Release); if it shows it pinned, or pinned since, and the mark is still there,
//! it takes the mark back. A light pin, after its epoch store and its light fence, loads
//! its `light_state`; on `DEMOTED` it executes a `SeqCst` fence (a heavy pin's
//! own fence) and turns heavy (`Local::acknowledge_demotion`), light again after
//! `PINS_BEFORE_LIGHT` quiet pins. Why no pin is left without its fence: the mark
//! (a), the barrier (b) and the load (c) against the pin's store, light fence and
//! load of the state are the store-buffering pair of the first paragraph, so
//! either (c) sees the pin (and the participant stays counted while it is
//! pinned, or it acknowledged, and that pin has the full fence), or the pin sees
//! the mark and takes the full fence itself. A pin that ended before (c) ran
//! while the participant was counted, and (c) reads its unpin's Release store,
//! so the decrement carries it to every later heavy fence, as `leave_light`'s
//! does (third case above). A participant that leaves light by itself (a flush
//! during a light pin) while marked hands its decrement to the marker: that pin
//! had loaded its state before the barrier reached its CPU (after, it would have
//! seen the mark), so its epoch store was visible to (c), and the decrement after
//! (c) carries it as `leave_light`'s own Release would. To tell how long a participant has been idle, an
//! unpin keeps its epoch's number (upstream stores zero), which no reader of an
//! unpinned epoch looks at. Tests: `an_idle_light_participant_is_taken_off_the_count`
//! (the two broken builds `epoch-demotion-*.patch` in `docs/broken-builds/` fail
//! it), `a_marks_other_outcomes_keep_the_count_exact` (a mark taken back, a
//! participant leaving light while marked, a second marker), and
//! `a_demoting_heavy_fence_races_light_pins` (store buffering with marks racing
//! the pins; the count back at zero). A review (2026-12-06) model-checked the
//! states of one participant and two markers (13,108 states: the count never
//! below zero, never zero while the participant is `LIGHT`, and back at the
//! number of light participants), with each step atomic; the orderings are the
//! argument above.
//!
//! Light pins are allowed only once the process is registered for the expedited
//! command ([`enable_light_pins`], which the program calls where a 10 ms wait does
//! not matter), so no light pin ever meets a seal or an advance without the barrier.
//! Where registration fails (another OS, a kernel or a seccomp filter without the
//! command, Miri, which has no such system call, and ThreadSanitizer, which does
//! not model it) or is never asked for, every pin keeps upstream's fence.

use core::sync::atomic::{self, AtomicBool, Ordering};

/// Whether participants may pin light: set once the process is registered for
/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` ([`enable_light_pins`]), never cleared.
static LIGHT_PINS_ALLOWED: AtomicBool = AtomicBool::new(false);

/// Registers the process for the expedited private `membarrier` and, if that
/// succeeds, lets threads that mostly read pin with the light fence from now on;
/// returns whether they may. Idempotent.
///
/// The registration waits for an RCU grace period in the kernel: about 10 ms on the
/// VM where this was measured. So it is not done on the first pin (a reader would
/// stall, or a thread holding a lock around its first pin would stall its
/// waiters): the program (atomic-map's background reclaimer, as it starts) calls
/// this where a wait does not matter. Until then every pin keeps upstream's fence.
pub fn enable_light_pins() -> bool {
    // Acquire: pairs with the Release store below (only the flag matters here; the
    // registration itself is the kernel's, complete when the call returned).
    if LIGHT_PINS_ALLOWED.load(Ordering::Acquire) {
        return true;
    }
    let registered = membarrier::register();
    if registered {
        // Release: a thread that sees the flag set (Acquire, `light_pins_allowed`)
        // and then counts itself light (`Local::enter_light`) does so after the
        // registration returned; what needs it is the barrier's caller, which
        // reaches the registration through that chain: the flag, the count's
        // increment, then its own load of the count (`Global::heavy_fence`), so
        // that its barrier never comes before the registration.
        LIGHT_PINS_ALLOWED.store(true, Ordering::Release);
    }
    registered
}

/// Whether [`enable_light_pins`] succeeded (in any thread).
#[inline]
pub(crate) fn light_pins_allowed() -> bool {
    // Acquire: as in `enable_light_pins`.
    LIGHT_PINS_ALLOWED.load(Ordering::Acquire)
}

/// The process-wide part of the heavy side, after a `SeqCst` fence: a full barrier
/// on every CPU running one of the process's threads. Called only while some
/// participant pins light, so only after [`enable_light_pins`] succeeded.
pub(crate) fn process_wide() {
    membarrier::private_expedited();
}

/// The light side, after a pin's store of its epoch: a compiler fence, which keeps
/// the pin's later loads from being moved above that store; the heavy side's
/// barrier does the hardware's part.
#[inline]
pub(crate) fn light() {
    atomic::compiler_fence(Ordering::SeqCst);
}

/// The heavy side, as a seal or an advance executes it (`Global::heavy_fence`,
/// which skips the process-wide part when no participant pins with the light fence).
#[cfg(test)]
fn heavy() {
    atomic::fence(Ordering::SeqCst);
    process_wide();
}

#[cfg(all(target_os = "linux", feature = "std"))]
mod membarrier {
    // The kernel's ABI (include/uapi/linux/membarrier.h), stable since Linux 4.14.
    const CMD_QUERY: libc::c_int = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn call(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: `membarrier(cmd, flags = 0)` reads and writes no memory of ours;
        // every command used here takes no further arguments (membarrier(2)).
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint) }
    }

    /// Registers the process for the expedited private barrier; whether it may be
    /// used from now on. Registering again is allowed and changes nothing.
    pub(super) fn register() -> bool {
        // Miri has no such system call, and ThreadSanitizer (and loom) would not
        // see the barrier order anything: upstream's fences there.
        if cfg!(any(miri, crossbeam_sanitize_thread, crossbeam_loom)) {
            return false;
        }
        let supported = call(CMD_QUERY);
        // The barrier itself tried once too: a policy (seccomp, an LSM) that
        // allowed the query and the registration but not the barrier would
        // otherwise abort the process at its first barrier (`private_expedited`).
        supported >= 0
            && supported & libc::c_long::from(CMD_PRIVATE_EXPEDITED) != 0
            && call(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
            && call(CMD_PRIVATE_EXPEDITED) == 0
    }

    /// A full barrier on every CPU running one of this process's threads.
    pub(super) fn private_expedited() {
        loop {
            if call(CMD_PRIVATE_EXPEDITED) == 0 {
                return;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                // Transient: the kernel could not allocate its CPU mask (kernels
                // built with `CONFIG_CPUMASK_OFFSTACK`), or a signal came. Again.
                Some(libc::ENOMEM) | Some(libc::EINTR) | Some(libc::EAGAIN) => {
                    std::thread::yield_now();
                }
                // Refused although registered (`register` returned true before any
                // thread could pin light): a seccomp filter installed since, which
                // this crate does not support. Light pins would go unordered;
                // nothing can be done but stop.
                _ => std::process::abort(),
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", feature = "std")))]
mod membarrier {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn private_expedited() {
        unreachable!("no thread pins light without membarrier")
    }
}

#[cfg(all(test, not(crossbeam_loom)))]
mod tests {
    use super::{enable_light_pins, heavy, light};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::vec::Vec;

    /// The store-buffering litmus test on the two sides: each thread stores to its
    /// own location, executes its fence and loads the other's. With two `SeqCst`
    /// fences (or a light and a heavy one) at least one thread sees the other's
    /// store; with a compiler fence on both sides x86's store buffer lets both
    /// loads miss, which this test sees within a few thousand rounds when the two
    /// threads run on two cores. A heavy side without its barrier must fail it
    /// (`docs/broken-builds/epoch-heavy-fence-without-membarrier.patch`).
    #[test]
    fn a_light_and_a_heavy_fence_order_store_buffering() {
        if !enable_light_pins() {
            return; // no membarrier here: every pin keeps upstream's full fence
        }
        const ROUNDS: usize = 20_000;
        let x = AtomicUsize::new(0);
        let y = AtomicUsize::new(0);
        // Both threads arrive at a round before either runs it, and each finishes
        // its load of a round before it arrives at the next: a load of round `r`
        // sees the other's store of round `r` or of round `r - 1`.
        let arrived = AtomicUsize::new(0);
        let side = |mine: &AtomicUsize, theirs: &AtomicUsize, fence: &dyn Fn()| {
            let mut saw = Vec::with_capacity(ROUNDS);
            for round in 1..=ROUNDS {
                arrived.fetch_add(1, Ordering::AcqRel);
                while arrived.load(Ordering::Acquire) < 2 * round {
                    std::hint::spin_loop();
                }
                mine.store(round, Ordering::Relaxed);
                fence();
                saw.push(theirs.load(Ordering::Relaxed));
            }
            saw
        };
        let (light_saw, heavy_saw) = thread::scope(|s| {
            let light = s.spawn(|| side(&x, &y, &light));
            let heavy = s.spawn(|| side(&y, &x, &heavy));
            (light.join().unwrap(), heavy.join().unwrap())
        });
        let both_missed = (1..=ROUNDS)
            .filter(|&round| light_saw[round - 1] < round && heavy_saw[round - 1] < round)
            .count();
        assert_eq!(
            both_missed, 0,
            "a light and a heavy fence let both threads miss each other's store"
        );
    }
}
