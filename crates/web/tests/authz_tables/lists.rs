//! The authorisation entries of the lists routes (part of `authz.rs`'s table) and the
//! fixture ids their paths need.

use std::collections::HashMap;

use guildhall_core::OrgId;
use guildhall_db::Db;

/// Who may use each route (same rules as `authz.rs`'s table).
pub const EXPECTED: &[(&str, &str, &str)] = &[];

/// Adds the ids this module's paths name (`{name}` → `ids["name"]`) for the probes in the
/// organisation `org` (the `n`th caller's fixture).
pub async fn add_ids(db: &Db, org: OrgId, n: usize, ids: &mut HashMap<&'static str, String>) {
    let _ = (db, org, n, ids);
}
