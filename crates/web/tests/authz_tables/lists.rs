//! The authorisation entries of the lists routes (part of `authz.rs`'s table) and the
//! fixture ids their paths need.
//!
//! Viewing sources and lists and deciding held changes: owners, admins and moderators.
//! Managing sources and lists, an instance's subscriptions, locks and pushes, proposing and
//! voting: owners and admins. Proposals are visible to every member. The published feeds are
//! public (the fixture's list is public; token protection is tested in `lists.rs`). The probe
//! organisation is a cooperative, so the instance-only routes answer allowed callers with 409.

use std::collections::HashMap;

use guildhall_core::{OrgId, Timestamp};
use guildhall_db::secrets::{Keyring, SecretKey};
use guildhall_db::Db;
use guildhall_lists::defed::{self, NewProposal};
use guildhall_lists::lists::{self, HoldKind, ListSource, NewList, Policy};
use guildhall_lists::sources::{self, NewSource, SourceSpec};
use guildhall_lists::{Actor, Severity};

const MOD: &str = "owner admin moderator";
const EDIT: &str = "owner admin";

/// Who may use each route (same rules as `authz.rs`'s table).
pub const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/lists/{list}/mastodon.csv", "all"),
    ("GET", "/lists/{list}/fediblockhole.csv", "all"),
    ("GET", "/lists/{list}/blocklist.json", "all"),
    ("GET", "/lists/{list}/changes", "all"),
    ("GET", "/orgs/{org}/lists", MOD),
    ("POST", "/orgs/{org}/lists", EDIT),
    ("GET", "/orgs/{org}/lists/{list}", MOD),
    ("POST", "/orgs/{org}/lists/{list}/policy", EDIT),
    ("POST", "/orgs/{org}/lists/{list}/visibility", EDIT),
    ("POST", "/orgs/{org}/lists/{list}/token", EDIT),
    ("POST", "/orgs/{org}/lists/{list}/delete", EDIT),
    (
        "POST",
        "/orgs/{org}/lists/{list}/changes/{change}/approve",
        MOD,
    ),
    (
        "POST",
        "/orgs/{org}/lists/{list}/changes/{change}/reject",
        MOD,
    ),
    ("GET", "/orgs/{org}/sources", MOD),
    ("POST", "/orgs/{org}/sources", EDIT),
    ("GET", "/orgs/{org}/sources/{source}", MOD),
    ("POST", "/orgs/{org}/sources/{source}/upload", EDIT),
    ("POST", "/orgs/{org}/sources/{source}/refresh", EDIT),
    ("POST", "/orgs/{org}/sources/{source}/delete", EDIT),
    ("GET", "/orgs/{org}/subscriptions", EDIT),
    ("POST", "/orgs/{org}/subscriptions", EDIT),
    ("POST", "/orgs/{org}/subscriptions/remove", EDIT),
    ("POST", "/orgs/{org}/locks", EDIT),
    ("POST", "/orgs/{org}/locks/remove", EDIT),
    ("GET", "/orgs/{org}/pushes/{push}", EDIT),
    ("POST", "/orgs/{org}/pushes/{push}/approve", EDIT),
    ("POST", "/orgs/{org}/pushes/{push}/reject", EDIT),
    ("GET", "/orgs/{org}/defederation", "members"),
    ("POST", "/orgs/{org}/defederation", EDIT),
    ("POST", "/orgs/{org}/defederation/{proposal}/vote", EDIT),
    ("GET", "/api/v1/orgs/{org}/sources", MOD),
    ("POST", "/api/v1/orgs/{org}/sources", EDIT),
    ("GET", "/api/v1/orgs/{org}/sources/{source}", MOD),
    ("GET", "/api/v1/orgs/{org}/sources/{source}/entries", MOD),
    ("GET", "/api/v1/orgs/{org}/sources/{source}/changes", MOD),
    ("POST", "/api/v1/orgs/{org}/sources/{source}/upload", EDIT),
    ("POST", "/api/v1/orgs/{org}/sources/{source}/refresh", EDIT),
    ("DELETE", "/api/v1/orgs/{org}/sources/{source}", EDIT),
    ("GET", "/api/v1/orgs/{org}/lists", MOD),
    ("POST", "/api/v1/orgs/{org}/lists", EDIT),
    ("GET", "/api/v1/orgs/{org}/lists/{list}", MOD),
    ("PUT", "/api/v1/orgs/{org}/lists/{list}", EDIT),
    ("PUT", "/api/v1/orgs/{org}/lists/{list}/visibility", EDIT),
    ("POST", "/api/v1/orgs/{org}/lists/{list}/token", EDIT),
    ("GET", "/api/v1/orgs/{org}/lists/{list}/entries", MOD),
    ("GET", "/api/v1/orgs/{org}/lists/{list}/changes", MOD),
    ("GET", "/api/v1/orgs/{org}/lists/{list}/held", MOD),
    (
        "POST",
        "/api/v1/orgs/{org}/lists/{list}/changes/{change}/approve",
        MOD,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/lists/{list}/changes/{change}/reject",
        MOD,
    ),
    ("DELETE", "/api/v1/orgs/{org}/lists/{list}", EDIT),
    ("GET", "/api/v1/orgs/{org}/subscriptions", EDIT),
    ("PUT", "/api/v1/orgs/{org}/subscriptions/{list}", EDIT),
    ("DELETE", "/api/v1/orgs/{org}/subscriptions/{list}", EDIT),
    ("GET", "/api/v1/orgs/{org}/locks", EDIT),
    ("PUT", "/api/v1/orgs/{org}/locks/{domain}", EDIT),
    ("DELETE", "/api/v1/orgs/{org}/locks/{domain}", EDIT),
    ("GET", "/api/v1/orgs/{org}/managed", EDIT),
    ("GET", "/api/v1/orgs/{org}/pushes", EDIT),
    ("GET", "/api/v1/orgs/{org}/pushes/{push}", EDIT),
    ("POST", "/api/v1/orgs/{org}/pushes/{push}/approve", EDIT),
    ("POST", "/api/v1/orgs/{org}/pushes/{push}/reject", EDIT),
    ("GET", "/api/v1/orgs/{org}/defederation", "members"),
    ("POST", "/api/v1/orgs/{org}/defederation", EDIT),
    (
        "POST",
        "/api/v1/orgs/{org}/defederation/{proposal}/vote",
        EDIT,
    ),
];

/// Adds the ids this module's paths name (`{name}` → `ids["name"]`) for the probes in the
/// organisation `org` (the `n`th caller's fixture): an upload source with two domains, a
/// public list over it that holds every change (so there are held changes), and an open
/// defederation proposal on that list.
pub async fn add_ids(db: &Db, org: OrgId, n: usize, ids: &mut HashMap<&'static str, String>) {
    let keys = Keyring::new(SecretKey::generate(), Vec::new());
    let actor = Actor::worker();
    let source = sources::create_source(
        db,
        &keys,
        org,
        &actor,
        &NewSource {
            name: format!("probe source {n}"),
            spec: SourceSpec::Upload { format: None },
            refresh_every: std::time::Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    sources::upload_source(
        db,
        org,
        &actor,
        source.id,
        b"domain,severity\nbad.example,suspend\nworse.example,silence\n",
    )
    .await
    .unwrap();
    let list = lists::create_list(
        db,
        org,
        &actor,
        &NewList {
            name: format!("probe list {n}"),
            description: String::new(),
            public: true,
            policy: Policy {
                holds: vec![HoldKind::Any],
                ..Policy::default()
            },
            sources: vec![ListSource::new(source.id)],
        },
    )
    .await
    .unwrap();
    lists::rebuild_list(db, list.id).await.unwrap();
    let held = lists::held_changes(db, org, list.id).await.unwrap();
    assert!(!held.is_empty(), "the probe list holds its changes");
    let proposal = defed::propose(
        db,
        org,
        &actor,
        &NewProposal {
            list_id: list.id,
            domain: format!("proposed{n}.example"),
            severity: Severity::Suspend,
            evidence: "probe".to_owned(),
            links: Vec::new(),
            deadline: Timestamp(Timestamp::now().0 + 3_600_000),
            quorum: 1,
        },
    )
    .await
    .unwrap();
    ids.insert("source", source.id.to_string());
    ids.insert("list", list.id.to_string());
    ids.insert("change", held[0].id.to_string());
    ids.insert("proposal", proposal.id.to_string());
    ids.insert("push", "1".to_owned());
    ids.insert("domain", "locked.example".to_owned());
}
