//! What the self-timed benchmarks (`harness = false`) share: their command-line
//! options and the median of their rounds.

use std::fmt::Debug;
use std::str::FromStr;
use std::time::Duration;

/// The value after `name` among `args` (`--rounds 9`), or `default`.
pub fn arg<T: FromStr>(args: &[String], name: &str, default: T) -> T
where
    T::Err: Debug,
{
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// The median of `times` (the upper one of an even count).
#[allow(dead_code)] // not every benchmark takes a median
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
