//! Nothing to use: this package holds atomic-map's benchmarks against the peer maps
//! (`cargo bench -p atomic-map-benches`), its property test and its serde round-trip
//! tests, in a workspace member of their own so that their dependencies stay out of
//! the main crate's builds.
