//! Hash maps and sets keyed at random per process (foldhash), for everything indexed by text
//! or ballots from a file: a file crafted to make its ids collide (HashDoS) cannot be written
//! in advance. Results never depend on the keys (the maps are only looked up, never iterated).

/// A randomly keyed foldhash state.
pub type State = foldhash::fast::RandomState;
/// A hash map with [`State`].
pub type HashMap<K, V> = std::collections::HashMap<K, V, State>;
/// A hash set with [`State`].
pub type HashSet<T> = std::collections::HashSet<T, State>;
