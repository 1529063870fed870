//! The synchronization shim: every atomic, `Arc`, lock, cell, thread and epoch
//! primitive that the crate's own code uses comes from here.
//!
//! Without the `loom` feature this re-exports `std`, `arc-swap` and
//! `crossbeam-epoch`. With `--features loom` it hands out loom's types and, for the
//! two dependencies loom cannot see into, loom-visible stand-ins with the same
//! contract (see `docs/DESIGN.md`, "What loom checks"). The per-generation table
//! (`src/table/`) is the crate's own code on these primitives, so the models run it
//! as it is. No other module mentions loom.

mod shard_lock;

#[cfg(not(feature = "loom"))]
mod real;
#[cfg(not(feature = "loom"))]
pub(crate) use real::*;

#[cfg(feature = "loom")]
mod model;
#[cfg(feature = "loom")]
pub(crate) use model::*;

/// The lock clears and replaces take around their swap of the slot (`map.rs`,
/// `publish`): the writers' lock type (`shard_lock.rs`), which neither poisons nor
/// reads the panic count, and under loom a loom mutex.
pub(crate) use ShardLock as PublishLock;
