//! The synchronization shim: every atomic, `Arc`, lock, thread and epoch primitive
//! the crate's own code uses comes from here.
//!
//! Without the `loom` feature this re-exports `std`, `arc-swap`, `crossbeam-epoch`
//! and `dashmap`. With `--features loom` it hands out loom's types and, for the three
//! dependencies loom cannot see into, loom-visible stand-ins with the same contract
//! (see `docs/DESIGN.md`, "What loom checks"). No other module mentions loom.

#[cfg(not(feature = "loom"))]
mod real;
#[cfg(not(feature = "loom"))]
pub(crate) use real::*;

#[cfg(feature = "loom")]
mod model;
#[cfg(feature = "loom")]
pub(crate) use model::*;
