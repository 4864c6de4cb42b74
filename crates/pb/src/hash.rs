//! Hash maps and sets keyed at random per process (foldhash), for everything indexed by text
//! or ballots from a file: a file crafted to make its ids collide (HashDoS) cannot be written
//! in advance. Results never depend on the keys (the maps are only looked up, never iterated).

/// A hash map with a randomly keyed foldhash state.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with a randomly keyed foldhash state.
pub type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
