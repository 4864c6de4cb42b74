//! Keyed hashing for everything indexed by text from the lists (domains, comments, allowlist
//! entries). The keys are random per process, so a list crafted to make many domains collide
//! in the merge's tables (HashDoS) cannot be written in advance; outputs never depend on them.

use std::hash::BuildHasher;
use std::sync::LazyLock;

/// The hasher state of every map and set here (foldhash, randomly keyed).
pub type State = foldhash::fast::RandomState;
/// A hash map with [`State`].
pub type Map<K, V> = std::collections::HashMap<K, V, State>;
/// A hash set with [`State`].
pub type Set<T> = std::collections::HashSet<T, State>;

/// The one state that hashes of text shared between the readers and the merge come from.
static SHARED: LazyLock<State> = LazyLock::new(State::default);

/// The hash of a domain or comment, the same in every thread of this process.
pub(crate) fn of(s: &str) -> u64 {
    SHARED.hash_one(s)
}
