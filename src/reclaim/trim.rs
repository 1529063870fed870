//! Giving freed memory back to the operating system after a large teardown.
//!
//! glibc's allocator keeps the memory of freed small chunks in its arenas, and the
//! recycler's depot keeps freed value cells, each of which keeps its cell page
//! mapped (`recycle.rs`, `pages.rs`): after a generation of a million values is torn
//! down, the process's resident memory would stay near its peak although everything
//! was freed. Once passes have destroyed at least [`TRIM_THRESHOLD`] values since the
//! last trim, and at most every [`TRIM_INTERVAL`], the reclaimer gives the depot's
//! cells back to their pages and asks glibc to return free pages (`malloc_trim(0)`);
//! and when a trim came in the middle of a burst (a teardown runs in slices, over
//! several passes), once more on the first idle pass after the interval, for what the
//! burst destroyed after it ([`TrimPolicy`]). This runs on the reclaiming thread,
//! never on a reader or the clearer; it holds each arena's lock while trimming that
//! arena, so a thread that allocates at that moment (a writer) may wait for it.
//! Other allocators return memory on their own schedule; there only the depot's
//! cells go back.

use std::time::{Duration, Instant};

/// Values destroyed since the last trim from which the reclaimer trims.
pub(crate) const TRIM_THRESHOLD: usize = 1 << 16;

/// The shortest time between two trims: a steady stream of removes (each pass
/// destroying tens of thousands of values) made every pass trim, and the trim
/// (`malloc_trim` with its `malloc_consolidate`) took 6% of a write benchmark's
/// samples; their cells go back to the writers anyway (`recycle.rs`).
pub(crate) const TRIM_INTERVAL: Duration = Duration::from_millis(100);

/// When a pass trims: the values of trimming maps destroyed since the last trim,
/// when that was, and whether it came in the middle of a burst.
#[derive(Debug, Default)]
pub(crate) struct TrimPolicy {
    untrimmed: usize,
    last_trim: Option<Instant>,
    /// The last trim ran on a pass that worked: the burst may have gone on after it
    /// (the rest of a teardown, in its slices), and what it destroyed then waits for
    /// a follow-up trim even when it is under the threshold. Without one, the cells
    /// of that rest stayed in the depot, and a few thousand cells freed in hash
    /// order keep nearly every page of a million-entry teardown mapped (the demo:
    /// 43 MiB over the pre-fill level in 4 runs of 12 with 2 readers).
    follow_up: bool,
}

impl TrimPolicy {
    /// After a pass (at `now`) that destroyed `destroyed` values of trimming maps
    /// and did `idle` no work at all: whether to trim now.
    pub(crate) fn after_pass(&mut self, destroyed: usize, idle: bool, now: Instant) -> bool {
        self.untrimmed += destroyed;
        let due = self.untrimmed >= TRIM_THRESHOLD || idle && self.follow_up && self.untrimmed > 0;
        if idle && self.untrimmed == 0 {
            // The burst ended with the last trim: nothing to follow up.
            self.follow_up = false;
        }
        let spaced = self
            .last_trim
            .is_none_or(|t| now.saturating_duration_since(t) >= TRIM_INTERVAL);
        if !(due && spaced) {
            return false;
        }
        self.untrimmed = 0;
        self.last_trim = Some(now);
        self.follow_up = !idle;
        true
    }
}

/// Returns free memory to the OS where the allocator needs to be asked, after
/// giving back the recycled cells (which would pin their pages).
pub(crate) fn release_free_memory() {
    super::recycle::flush();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists; it is
    // thread-safe and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_trimmed_in_its_middle_is_trimmed_again_once_it_ends() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut policy = TrimPolicy::default();
        // A teardown's first slices cross the threshold: trim.
        assert!(policy.after_pass(TRIM_THRESHOLD + 1, false, ms(0)));
        // Its last slices, under the threshold: no trim while it runs...
        assert!(!policy.after_pass(10_000, false, ms(10)));
        // ...nor on an idle pass before the interval...
        assert!(!policy.after_pass(0, true, ms(20)));
        // ...but on the first idle pass after it, for those 10,000.
        assert!(policy.after_pass(0, true, ms(20) + TRIM_INTERVAL));
        // And only once.
        assert!(!policy.after_pass(0, true, ms(400)));
    }

    #[test]
    fn a_trickle_of_frees_under_the_threshold_is_not_trimmed() {
        let t0 = Instant::now();
        let mut policy = TrimPolicy::default();
        for pass in 0..100u64 {
            let now = t0 + Duration::from_millis(pass * 16);
            assert!(!policy.after_pass(5, false, now), "pass {pass}");
            assert!(!policy.after_pass(0, true, now), "idle after pass {pass}");
        }
        // A burst that ended with its own trim owes no follow-up.
        let later = t0 + Duration::from_secs(10);
        assert!(policy.after_pass(TRIM_THRESHOLD, false, later));
        assert!(!policy.after_pass(0, true, later + TRIM_INTERVAL));
        assert!(!policy.after_pass(3, false, later + TRIM_INTERVAL * 2));
        assert!(!policy.after_pass(0, true, later + TRIM_INTERVAL * 3));
    }

    #[test]
    fn trims_are_spaced_by_the_interval() {
        let t0 = Instant::now();
        let mut policy = TrimPolicy::default();
        assert!(policy.after_pass(TRIM_THRESHOLD, false, t0));
        // The threshold again, too soon: it waits...
        assert!(!policy.after_pass(TRIM_THRESHOLD, false, t0 + TRIM_INTERVAL / 2));
        // ...and the next pass after the interval trims, idle or not.
        assert!(policy.after_pass(0, false, t0 + TRIM_INTERVAL));
    }
}
