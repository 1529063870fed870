//! How often the background thread of a domain runs its passes and walks its maps:
//! the park after each pass (`Park`: short after work, while something waits in
//! its grace period, and while values are doomed fast; backing off when idle),
//! and the pace of the walks over the registered maps (`WalkPace`), which keeps
//! visits to idle maps under one part in `MAP_WALK_DUTY` of the thread's time.
//! Plain arithmetic on durations: `domain.rs` feeds it what a pass measured.

use std::time::{Duration, Instant};

use crate::sync::COUNTER_STRIPES;

/// The pace of the background thread's walks of the maps (see `MAP_WALK_DUTY`):
/// what a visit to a map with nothing parked costs, as the last walk that released
/// nothing measured.
#[derive(Default)]
pub(super) struct WalkPace {
    visit: Option<Duration>,
}

impl WalkPace {
    /// After a walk over `maps` maps that took `elapsed` (`idle`: it released
    /// nothing and let go of no map), how long until the next.
    pub(super) fn after_walk(&mut self, maps: usize, elapsed: Duration, idle: bool) -> Duration {
        let maps = u32::try_from(maps.max(1)).unwrap_or(u32::MAX);
        if idle {
            self.visit = Some(elapsed / maps);
        }
        let visit = self.visit.unwrap_or(FIRST_VISIT_COST);
        visit
            .saturating_mul(maps.saturating_mul(MAP_WALK_DUTY))
            .min(MAX_WALK_PACE)
    }
}

/// The background thread spends at most one part in this many of its time
/// visiting maps with nothing parked: after a walk over `n` maps, the next comes
/// `n × visit × MAP_WALK_DUTY` later, where `visit` is what one such visit cost in
/// the last walk that released nothing (time spent releasing is not counted: a
/// walk that releases a generation may run its grace period's collection), unless
/// a thread waits or polls meanwhile. A walk visits every map that was ever
/// cleared, each a cold line: 37 ns a map here, so with 100,000 such maps a walk at
/// every idle pass (each 16 ms) kept the idle thread at 24% of a core
/// (`benches/idle_reclaimer.rs`). With few maps the pace is below a pass's and
/// every pass walks, as before; with 100,000, a walk every 0.4 s, which is then how
/// long a cleared generation may wait for its release.
pub(super) const MAP_WALK_DUTY: u32 = 100;

/// What a visit to a map is taken to cost before a walk has measured it.
pub(super) const FIRST_VISIT_COST: Duration = Duration::from_nanos(40);

/// The longest wait between two walks, whatever they measured (a walk preempted
/// midway measures the preemption): how long, at most, a cleared generation waits
/// for the background thread to release it.
pub(super) const MAX_WALK_PACE: Duration = Duration::from_secs(1);

/// The shortest and longest park of the background thread between passes.
pub(super) const MIN_PARK: Duration = Duration::from_millis(1);
pub(super) const MAX_PARK: Duration = Duration::from_millis(16);

/// How long the background thread parks after each pass: `MIN_PARK` after one that
/// worked, and while something waits in its grace period, for
/// up to `GRACE_POLLS` idle passes in a row; otherwise twice the last park, up to
/// `MAX_PARK`. Shorter while values are doomed fast (`for_values`).
pub(super) struct Park {
    last: Duration,
    /// Idle passes in a row that found something in its grace period.
    grace_polls: u32,
    /// When the last pass that `for_values` was told of ended.
    last_pass: Option<Instant>,
}

impl Default for Park {
    fn default() -> Self {
        Park {
            last: MIN_PARK,
            grace_polls: 0,
            last_pass: None,
        }
    }
}

/// The number of rings with values at which the dooming threads are taken to keep
/// every core busy (`Park::for_values`): the CPUs, or every ring if there are
/// fewer (`COUNTER_STRIPES`: the first threads that count claim the rings; later
/// ones doom onto the lists, which a pass does not count).
pub(super) fn busy_rings() -> usize {
    crate::builder::cpus().min(COUNTER_STRIPES)
}

/// The shortest park while values are doomed fast (see `Park::for_values`).
pub(super) const MIN_BUSY_PARK: Duration = Duration::from_micros(50);

/// The values a background pass aims to take off the rings (see
/// `Park::for_values`).
pub(super) const VALUES_PER_PASS: usize = 2048;

impl Park {
    /// A park shorter than `MIN_PARK` when the pass that ended at `now` took
    /// `taken` values off `rings` rings: as long as it takes the program to doom
    /// `VALUES_PER_PASS` values at the rate of the last interval, at least
    /// `MIN_BUSY_PARK`. `None` when no value came (or for the first pass), and when
    /// `rings` reaches `busy_rings` (`busy_rings()`: the CPUs, or every ring): each
    /// ring is one thread's, and when the dooming threads keep every core busy, a pass every 100 µs takes
    /// a core from one of them each time (at 2 threads on 2 cores, the
    /// insert/remove mix fell from 1.00× to 0.59× `DashMap` in the medians of
    /// seven alternating runs; `docs/BENCHMARKS.md`, "History", "A reclaimer that
    /// keeps pace").
    ///
    /// Why: a doomed value's memory is reused once its pass has destroyed it, and
    /// until then it is a line the writers' caches lose. With a pass every
    /// millisecond, one thread upserting 10,000 keys (15 M/s) kept 30,000–50,000
    /// values in flight, three to five times the live ones, and its upserts ran
    /// 30% slower than with a pass every 100 µs (`docs/BENCHMARKS.md`, "History",
    /// "A reclaimer that keeps pace"). At 2,048 values a pass, that rate parks about
    /// 130 µs; 1 M values a second, the full millisecond.
    pub(super) fn for_values(
        &mut self,
        taken: usize,
        rings: usize,
        busy_rings: usize,
        now: Instant,
    ) -> Option<Duration> {
        let since = now.saturating_duration_since(self.last_pass.replace(now)?);
        if taken == 0 || rings >= busy_rings {
            return None;
        }
        let pace = since.mul_f64(VALUES_PER_PASS as f64 / taken as f64);
        Some(pace.clamp(MIN_BUSY_PARK, MIN_PARK))
    }

    pub(super) fn after_pass(&mut self, worked: bool, in_grace: bool) -> Duration {
        self.last = if worked {
            self.grace_polls = 0;
            MIN_PARK
        } else if !in_grace {
            // The run of idle passes in grace is over: the next one gets the whole
            // budget again.
            self.grace_polls = 0;
            (self.last * 2).min(MAX_PARK)
        } else if self.grace_polls < GRACE_POLLS {
            self.grace_polls += 1;
            MIN_PARK
        } else {
            (self.last * 2).min(MAX_PARK)
        };
        self.last
    }
}

/// How many idle passes in a row the background thread runs `MIN_PARK` apart while
/// something waits in its grace period, before its park backs off again. A
/// generation's release and its teardown are two passes with a grace period
/// between them, which ends when the pinned threads move on (usually within a
/// millisecond, or a scheduler slice when a pinned thread is preempted), and the
/// pass after it finds the teardown queued. With the park doubling over passes that
/// found no job (1, 2, 4, 8, 16 ms) those teardowns waited up to 16 ms, and under
/// 10,000 clears a second the retired generations piled up (the clear storm,
/// `docs/BENCHMARKS.md`: 305–1,045 at the peak). Bounded, so that a thread pinned
/// for long (holding every grace period up) costs 16 wakes and not one a
/// millisecond.
pub(super) const GRACE_POLLS: u32 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_park_stays_short_while_something_is_in_its_grace_period_then_backs_off() {
        let mut park = Park::default();
        // Idle, nothing in grace: the park doubles up to its longest.
        let backing_off: Vec<_> = (0..6).map(|_| park.after_pass(false, false)).collect();
        assert_eq!(backing_off.last(), Some(&MAX_PARK));
        assert!(backing_off.windows(2).all(|w| w[0] <= w[1]));
        // Work: the shortest park at once.
        assert_eq!(park.after_pass(true, false), MIN_PARK);
        // Something in grace: short parks for `GRACE_POLLS` idle passes, then the
        // back-off again (a thread pinned for long costs that many wakes, no more).
        for _ in 0..GRACE_POLLS {
            assert_eq!(park.after_pass(false, true), MIN_PARK);
        }
        assert_eq!(park.after_pass(false, true), MIN_PARK * 2);
        // Work resets the count.
        assert_eq!(park.after_pass(true, true), MIN_PARK);
        assert_eq!(park.after_pass(false, true), MIN_PARK);
        // So does an idle pass with nothing in grace: a grace period held up until
        // the short parks ran out, then over with no work for this thread (a
        // released generation a snapshot still holds), leaves the next one the
        // whole budget.
        for _ in 0..=GRACE_POLLS {
            park.after_pass(false, true);
        }
        park.after_pass(false, false);
        assert_eq!(park.after_pass(false, true), MIN_PARK);
    }

    #[test]
    fn the_park_follows_the_rate_of_doomed_values() {
        let mut park = Park::default();
        let start = Instant::now();
        let at = |micros| start + Duration::from_micros(micros);
        // One dooming thread (one ring) on 2 CPUs (`busy_rings` 2). The first pass
        // gives no rate.
        assert_eq!(park.for_values(5_000, 1, 2, at(0)), None);
        // 20,480 values in 1 ms: 20 M/s, so 2,048 values take 100 µs.
        assert_eq!(
            park.for_values(20_480, 1, 2, at(1_000)),
            Some(Duration::from_micros(100))
        );
        // 1,024 values in 1 ms: a pass of 2,048 would take 2 ms; at most `MIN_PARK`.
        assert_eq!(park.for_values(1_024, 1, 2, at(2_000)), Some(MIN_PARK));
        // 1,000,000 values in 1 ms: at least `MIN_BUSY_PARK`.
        assert_eq!(
            park.for_values(1_000_000, 1, 2, at(3_000)),
            Some(MIN_BUSY_PARK)
        );
        // No value: no busy park (the idle back-off decides).
        assert_eq!(park.for_values(0, 0, 2, at(4_000)), None);
        // The interval runs from the last pass, even one that took nothing.
        assert_eq!(
            park.for_values(2_048, 1, 2, at(4_200)),
            Some(Duration::from_micros(200))
        );
        // As many dooming threads as CPUs (or rings): no busy park, whatever the
        // rate...
        assert_eq!(park.for_values(20_480, 2, 2, at(5_200)), None);
        // ...but with a CPU to spare, one.
        assert_eq!(
            park.for_values(20_480, 2, 4, at(6_200)),
            Some(Duration::from_micros(100))
        );
    }

    #[test]
    fn a_walk_that_released_leaves_the_pace_to_idle_visits() {
        let mut pace = WalkPace::default();
        // Each step: maps walked, how long the walk took, whether it was idle (it
        // released nothing), and the pace that must follow.
        let steps = [
            // Before any measure: 40 ns a visit, times 100.
            (
                1_000,
                Duration::from_millis(9),
                false,
                Duration::from_micros(4_000),
            ),
            // An idle walk of 1,000 maps in 50 µs: 50 ns a visit, 5 ms between walks.
            (
                1_000,
                Duration::from_micros(50),
                true,
                Duration::from_millis(5),
            ),
            // A walk that released a generation (its grace period ran a
            // collection) took 10 ms: the pace stays that of the idle visits.
            (
                1_000,
                Duration::from_millis(10),
                false,
                Duration::from_millis(5),
            ),
            // A few maps: below any pass's interval, so every pass walks.
            (
                2,
                Duration::from_nanos(100),
                true,
                Duration::from_micros(10),
            ),
            // A walk preempted midway measures the preemption: capped at 1 s.
            (2, Duration::from_millis(100), true, MAX_WALK_PACE),
        ];
        for (i, (maps, took, idle, expected)) in steps.into_iter().enumerate() {
            assert_eq!(pace.after_walk(maps, took, idle), expected, "step {i}");
        }
    }
}
