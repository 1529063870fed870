//! The synchronization shim: every atomic, `Arc`, lock, thread, epoch primitive and
//! the per-generation table that the crate's own code uses come from here.
//!
//! Without the `loom` feature this re-exports `std`, `arc-swap`, `crossbeam-epoch`
//! and an adapter over `dashmap`. With `--features loom` it hands out loom's types
//! and, for the three dependencies loom cannot see into, loom-visible stand-ins with
//! the same contract (see `docs/DESIGN.md`, "What loom checks"). No other module
//! mentions loom.

#[cfg(not(feature = "loom"))]
mod dashmap_table;
#[cfg(not(feature = "loom"))]
mod real;
#[cfg(not(feature = "loom"))]
pub(crate) use {dashmap_table::Table, real::*};

#[cfg(feature = "loom")]
mod model;
#[cfg(feature = "loom")]
mod model_table;
#[cfg(feature = "loom")]
pub(crate) use {model::*, model_table::Table};
