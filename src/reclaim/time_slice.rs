//! The background reclaimer's time slice: the shortest the kernel grants.
//!
//! A teardown of a large generation takes tens of milliseconds of CPU (about 35 ms
//! for 1,000,000 `u64` entries). When every core is busy with readers, the scheduler
//! takes that time from a reader, a slice at a time. Linux's EEVDF scheduler (6.6 and
//! later) lets a thread that preempted another run until its slice is used up, and
//! checks at the next tick (4 ms at `HZ=250`). With the default slice (0.75 ms times
//! one plus the log2 of the core count), a reclaimer woken shortly before a tick ran
//! on past it to the next one, and displaced a reader for up to two ticks: 5–8 ms.
//!
//! Since Linux 6.12 a thread may ask for a slice of its own (`sched_setattr`'s
//! `sched_runtime` for `SCHED_OTHER` and `SCHED_BATCH`: 0.1 to 100 ms, no privilege
//! needed). The reclaimer asks for the shortest when it begins a large teardown
//! (more than `SHORT_SLICE_ENTRIES` entries, `generation.rs`: longer than the
//! default slice), so that it gives the core back at the first tick after it
//! starts. Its share of the CPU does not change: the scheduler shares by weight
//! (the nice value, left as it is), not by slice. Measured in
//! `docs/BENCHMARKS.md`, "History", "The reclaimer's shortest slice".
//!
//! Not always: a thread on a short slice also preempts the one running on its core
//! as soon as it wakes (its deadline is the nearer), and a reclaimer woken every
//! millisecond or so for the values a writer replaces took the writer's core that
//! way. In the clear storm, with the shortest slice kept from the thread's start,
//! the writer ran at a median of 503k writes/s against 600k with it asked for
//! large teardowns only (sixteen runs each, alternating), and the reclaimer's
//! share of the CPU was the same (6%) in both.
//!
//! The reclaimer gives the slice back (`restore_default_slice`) once no teardown
//! job is left and [`SHORT_SLICE_LINGER`] (1 s) has passed since the last large
//! teardown began: a program that tore a large generation down is likely to
//! clear the refilled map again (a cache, a reloaded table), and the next
//! teardown's first tick, which begins while the clear is still news to the
//! readers, is the one that keeps a reader waiting longest. Given back at each
//! large teardown's end, the clear window's worst get (`clear_latency`, 1,000,000
//! entries, 2 readers) stayed within the quiet window's in 6 runs of 12 against
//! 10 of 12 with the slice kept; with the linger, 7 of 10 against 9 of 10 in the
//! same hour. Two system calls per burst of large teardowns.
//!
//! Best effort: on another OS, on a kernel without custom slices (which ignores the
//! request), or on a thread that inherited a policy other than `SCHED_OTHER` or
//! `SCHED_BATCH` from the thread that started it (a real-time one, `SCHED_IDLE`),
//! nothing changes.

use std::time::{Duration, Instant};

/// The slice the reclaimer asks for, in nanoseconds: the kernel's minimum
/// (`sysctl_sched_base_slice`'s lower clamp for custom slices, 0.1 ms).
pub(crate) const RECLAIMER_SLICE_NS: u64 = 100_000;

/// The calling thread's slice, as this module last set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slice {
    /// The kernel's default (never set, or given back).
    Default,
    /// [`RECLAIMER_SLICE_NS`].
    Shortest,
    /// The kernel refused a request (another policy, no `sched_setattr`): not
    /// asked again on this thread.
    Refused,
}

/// How long the reclaimer keeps the shortest slice after the last large teardown
/// began, once no teardown job is left.
pub(crate) const SHORT_SLICE_LINGER: Duration = Duration::from_secs(1);

std::thread_local! {
    static SLICE: std::cell::Cell<Slice> = const { std::cell::Cell::new(Slice::Default) };
    /// When the last large teardown began on this thread.
    static LAST_LARGE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Asks the kernel for a slice of [`RECLAIMER_SLICE_NS`] for the calling thread,
/// keeping its policy, nice value and reset-on-fork flag, unless it has it
/// already: one system call per large teardown, none per slice of it. A kernel
/// older than 6.12 accepts the request and ignores the slice.
/// (Not under Miri, which has no `sched_setattr`, nor under loom, whose threads
/// are not the kernel's.)
pub(crate) fn ask_for_shortest_slice() {
    LAST_LARGE.set(Some(Instant::now()));
    if SLICE.get() == Slice::Default {
        SLICE.set(if set_own_slice(RECLAIMER_SLICE_NS) {
            Slice::Shortest
        } else {
            Slice::Refused
        });
    }
}

/// Gives back a slice [`ask_for_shortest_slice`] obtained, once
/// [`SHORT_SLICE_LINGER`] has passed since the last large teardown began: the
/// kernel's default again (`sched_runtime` 0). Nothing when the thread is on its
/// default already (without reading the clock: the background loop calls this
/// before every park). Called with no teardown job left.
pub(crate) fn restore_default_slice() {
    if SLICE.get() != Slice::Shortest {
        return;
    }
    let lingered = LAST_LARGE
        .get()
        .is_none_or(|began| began.elapsed() >= SHORT_SLICE_LINGER);
    if lingered {
        SLICE.set(if set_own_slice(0) {
            Slice::Default
        } else {
            Slice::Refused
        });
    }
}

/// Sets the calling thread's slice (0: the kernel's default); whether the kernel
/// accepted it.
fn set_own_slice(slice_ns: u64) -> bool {
    #[cfg(all(target_os = "linux", not(feature = "loom"), not(miri)))]
    {
        linux::set_slice(0, slice_ns).is_ok()
    }
    #[cfg(not(all(target_os = "linux", not(feature = "loom"), not(miri))))]
    {
        let _ = slice_ns;
        false
    }
}

#[cfg(all(target_os = "linux", not(feature = "loom"), not(miri)))]
mod linux {
    use std::io;

    /// `struct sched_attr` of `<linux/sched/types.h>` in its first version
    /// (`SCHED_ATTR_SIZE_VER0`, 48 bytes, Linux 3.14): the fields a slice needs,
    /// without the utilization clamps of the second.
    #[repr(C)]
    #[derive(Debug, Default)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }

    const SCHED_ATTR_SIZE_VER0: u32 = 48;
    /// `SCHED_FLAG_RESET_ON_FORK`: the one flag of a fair thread kept across the
    /// change (the others belong to deadline and utilization clamping).
    const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

    /// The thread's scheduling attributes (`tid` 0: the calling thread).
    fn get(tid: libc::pid_t) -> io::Result<SchedAttr> {
        let mut attr = SchedAttr::default();
        // SAFETY: `attr` is a live, writable `SchedAttr` of `SCHED_ATTR_SIZE_VER0`
        // bytes (`#[repr(C)]`, the kernel's layout above), and that size is what
        // the call is told; the kernel writes at most that many bytes into it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                tid,
                &mut attr as *mut SchedAttr,
                SCHED_ATTR_SIZE_VER0,
                0,
            )
        };
        if rc == 0 {
            Ok(attr)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sets the thread's slice to `slice_ns` (0: the kernel's default), its policy, nice value and
    /// reset-on-fork flag as they are. Refuses (`Unsupported`) a thread whose policy
    /// is not `SCHED_OTHER` or `SCHED_BATCH`: a slice means nothing to the others,
    /// and a request rewritten for them could change what the program chose.
    pub(super) fn set_slice(tid: libc::pid_t, slice_ns: u64) -> io::Result<()> {
        let now = get(tid)?;
        let policy = now.sched_policy as libc::c_int;
        if policy != libc::SCHED_OTHER && policy != libc::SCHED_BATCH {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let attr = SchedAttr {
            size: SCHED_ATTR_SIZE_VER0,
            sched_policy: now.sched_policy,
            sched_flags: now.sched_flags & SCHED_FLAG_RESET_ON_FORK,
            sched_nice: now.sched_nice,
            sched_runtime: slice_ns,
            ..SchedAttr::default()
        };
        let attr: *const SchedAttr = &attr;
        // SAFETY: `attr` points to a live `SchedAttr` whose `size` field says how
        // many bytes the kernel reads (`SCHED_ATTR_SIZE_VER0`, the struct's size);
        // the kernel only reads it.
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, tid, attr, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::generation::SHORT_SLICE_ENTRIES;
        use crate::reclaim::time_slice::{RECLAIMER_SLICE_NS, SHORT_SLICE_LINGER};
        use crate::{AtomicMap, Builder, Reclaimer};
        use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
        use std::time::{Duration, Instant};

        /// The slices seen by the destructors of two maps' values: `[0]` a large
        /// map's, `[1]` a small one's (the least and the greatest of each), and
        /// the thread that ran them.
        static LEAST: [AtomicU64; 2] = [const { AtomicU64::new(u64::MAX) }; 2];
        static GREATEST: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
        static RAN_ON: AtomicI32 = AtomicI32::new(0);

        /// Records the slice of the thread that destroys it.
        struct SliceProbe(usize);
        impl Drop for SliceProbe {
            fn drop(&mut self) {
                let slice = get(0).expect("sched_getattr").sched_runtime;
                LEAST[self.0].fetch_min(slice, Ordering::SeqCst);
                GREATEST[self.0].fetch_max(slice, Ordering::SeqCst);
                // SAFETY: `gettid` takes nothing and cannot fail.
                RAN_ON.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            }
        }

        /// A background reclaimer tears a small generation down on its default
        /// slice and a large one on the shortest, then gives that slice back
        /// once `SHORT_SLICE_LINGER` has passed.
        #[test]
        fn a_large_teardown_runs_on_the_shortest_slice_and_gives_it_back() {
            if get(0).expect("sched_getattr").sched_runtime == 0 {
                eprintln!("this kernel reports no slices (before 6.12): nothing to check");
                return;
            }
            let reclaimer = Reclaimer::new();
            let fill = |map: &AtomicMap<usize, SliceProbe>, entries, probe: usize| {
                for key in 0..entries {
                    map.insert(key, SliceProbe(probe));
                }
                map.clear_async().wait();
            };
            let small = Builder::new().reclaimer(&reclaimer).build();
            fill(&small, 100, 1);
            let default = GREATEST[1].load(Ordering::SeqCst);
            assert_eq!(LEAST[1].load(Ordering::SeqCst), default);
            assert_ne!(
                default, RECLAIMER_SLICE_NS,
                "a small teardown on the shortest slice"
            );
            let large = Builder::new().reclaimer(&reclaimer).build();
            fill(&large, SHORT_SLICE_ENTRIES + 1, 0);
            assert_eq!(LEAST[0].load(Ordering::SeqCst), RECLAIMER_SLICE_NS);
            assert_eq!(GREATEST[0].load(Ordering::SeqCst), RECLAIMER_SLICE_NS);
            // Given back at the first pass after the linger (the thread parks at
            // most 16 ms between passes).
            let thread = RAN_ON.load(Ordering::SeqCst);
            let began = Instant::now();
            while get(thread).expect("the reclaimer's thread").sched_runtime != default {
                assert!(
                    began.elapsed() < SHORT_SLICE_LINGER + Duration::from_secs(20),
                    "the shortest slice was kept"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            drop((small, large));
            reclaimer.shutdown();
        }

        #[test]
        fn the_slice_is_set_and_the_nice_value_kept() {
            std::thread::spawn(|| {
                // A nice value of 5 (lowering a priority needs no privilege).
                // SAFETY: `setpriority` takes plain integers; `0` is the calling
                // thread under `PRIO_PROCESS` (Linux applies it per thread).
                assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 5) }, 0);
                set_slice(0, 200_000).expect("sched_setattr");
                let attr = get(0).expect("sched_getattr");
                assert_eq!(attr.sched_nice, 5, "the nice value changed");
                assert_eq!(attr.sched_policy, libc::SCHED_OTHER as u32);
                if attr.sched_runtime != 0 {
                    // A kernel that reports slices (6.12+) reports this one.
                    assert_eq!(attr.sched_runtime, 200_000);
                }
            })
            .join()
            .unwrap();
        }

        #[test]
        fn other_policies_are_left_alone() {
            std::thread::spawn(|| {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: `param` is a live `sched_param`; 0 is the calling thread.
                let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
                assert_eq!(rc, 0);
                let before = get(0).expect("sched_getattr");
                let err = set_slice(0, 100_000).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::Unsupported);
                let after = get(0).expect("sched_getattr");
                assert_eq!(after.sched_policy, libc::SCHED_IDLE as u32);
                assert_eq!(after.sched_runtime, before.sched_runtime);
            })
            .join()
            .unwrap();
        }
    }
}
