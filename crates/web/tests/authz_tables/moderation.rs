//! The authorisation entries of the moderation routes (part of `authz.rs`'s table) and the
//! fixture ids their paths need.
//!
//! Every moderation route needs `Permission::Moderate` (owners, admins and moderators), except
//! changing an instance's co-op link, which needs `EditOrganisation` (owners and admins). The
//! probe organisation is a cooperative moderating one instance connected to an in-process fake
//! Mastodon: `{case}` is a case of it with a copied image (`{media}`), `{decision}` a suspend
//! decided by another moderator, waiting for review.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use guildhall_core::{OrgId, Role};
use guildhall_db::accounts::NewAccount;
use guildhall_db::instances::{ConnectMethod, NewConnection};
use guildhall_db::jobs::{run_worker, Backoff, Registry, WorkerConfig};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
use guildhall_db::Db;
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ReportSeed, StatusSeed, ADMINISTRATOR};
use guildhall_moderation::model::CopyState;
use guildhall_moderation::{
    Action, LinkSettings, NewDecision, PageRequest, QueueFilter, Scope, Services,
};

const MOD: &str = "owner admin moderator";
const ADMIN: &str = "owner admin";

/// Who may use each route (same rules as `authz.rs`'s table).
pub const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/orgs/{org}/moderation", MOD),
    ("GET", "/orgs/{org}/moderation/cases/{case}", MOD),
    ("GET", "/orgs/{org}/moderation/media/{media}", MOD),
    ("POST", "/orgs/{org}/moderation/cases/{case}/claim", MOD),
    ("POST", "/orgs/{org}/moderation/cases/{case}/release", MOD),
    ("POST", "/orgs/{org}/moderation/cases/{case}/decide", MOD),
    ("POST", "/orgs/{org}/moderation/cases/{case}/escalate", MOD),
    ("GET", "/orgs/{org}/moderation/review", MOD),
    (
        "POST",
        "/orgs/{org}/moderation/decisions/{decision}/approve",
        MOD,
    ),
    (
        "POST",
        "/orgs/{org}/moderation/decisions/{decision}/reject",
        MOD,
    ),
    ("GET", "/orgs/{org}/moderation/instance", MOD),
    ("GET", "/api/v1/orgs/{org}/moderation/queue", MOD),
    ("GET", "/api/v1/orgs/{org}/moderation/cases/{case}", MOD),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/cases/{case}/claim",
        MOD,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/cases/{case}/release",
        MOD,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/cases/{case}/decide",
        MOD,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/cases/{case}/escalate",
        MOD,
    ),
    ("GET", "/api/v1/orgs/{org}/moderation/review", MOD),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/decisions/{decision}/approve",
        MOD,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/decisions/{decision}/reject",
        MOD,
    ),
    ("GET", "/api/v1/orgs/{org}/moderation/decisions", MOD),
    // The probe organisation is a co-op: its owners and admins reach the handlers (which
    // answer 400 for a missing `coop` or 409: a co-op has no instance to link).
    ("GET", "/orgs/{org}/moderation/links", MOD),
    ("POST", "/orgs/{org}/moderation/link", ADMIN),
    ("POST", "/orgs/{org}/moderation/unlink", ADMIN),
    ("POST", "/orgs/{org}/moderation/settings", ADMIN),
    ("GET", "/api/v1/orgs/{org}/moderation/links", MOD),
    ("PUT", "/api/v1/orgs/{org}/moderation/link", ADMIN),
    ("DELETE", "/api/v1/orgs/{org}/moderation/link", ADMIN),
    ("PUT", "/api/v1/orgs/{org}/moderation/link/settings", ADMIN),
    // `{decision}` waits for review, so retrying it is refused with 400 (not failed).
    (
        "POST",
        "/orgs/{org}/moderation/decisions/{decision}/retry",
        MOD,
    ),
    (
        "POST",
        "/api/v1/orgs/{org}/moderation/decisions/{decision}/retry",
        MOD,
    ),
    ("GET", "/api/v1/orgs/{org}/moderation/escalations", MOD),
];

const TOKEN: &str = "tok-probe";

async fn person(db: &Db, email: String) -> guildhall_core::AccountId {
    db.create_account(&NewAccount {
        email: email.parse().unwrap(),
        display_name: "Probe".parse().unwrap(),
        password: "correct horse battery".parse().unwrap(),
        site_admin: false,
    })
    .await
    .unwrap()
    .id
}

/// Adds the ids this module's paths name (`{name}` → `ids["name"]`) for the probes in the
/// organisation `org` (the `n`th caller's fixture).
pub async fn add_ids(db: &Db, org: OrgId, n: usize, ids: &mut HashMap<&'static str, String>) {
    let fake: FakeMastodon = FakeMastodon::builder()
        .account(AccountSeed::local(1, "svc").with_role("Admin", ADMINISTRATOR))
        .account(AccountSeed::local(2, "alice"))
        .account(AccountSeed::remote(3, "Spammer", "bad.example"))
        .account(AccountSeed::local(4, "rep"))
        .rule(1, "No spam")
        .status(StatusSeed::new(50, 3, "<p>buy</p>").with_image(500, "an ad"))
        .status(StatusSeed::new(51, 2, "<p>rude</p>"))
        .report(
            ReportSeed::new(10, 4, 3)
                .category("spam")
                .statuses(&[50])
                .rules(&[1]),
        )
        .report(
            ReportSeed::new(11, 4, 2)
                .category("violation")
                .statuses(&[51])
                .rules(&[1]),
        )
        .token(TOKEN, &["admin:read", "admin:write"], Some(1))
        .start()
        .await
        .unwrap();
    let keyring = Arc::new(Keyring::new(SecretKey::generate(), Vec::new()));
    let services = Services {
        db: db.clone(),
        keyring: keyring.clone(),
        client: guildhall_mastodon::ClientConfig {
            timeout: Duration::from_secs(5),
            max_retries: 0,
            ..guildhall_mastodon::ClientConfig::default()
        },
    };
    let admin = person(db, format!("mod-inst-admin{n}@a.example")).await;
    let inst_org = db
        .create_organisation(
            &NewOrganisation::instance(
                format!("Probe instance {n}").parse().unwrap(),
                format!("probe{n}.example").parse().unwrap(),
            ),
            admin,
        )
        .await
        .unwrap()
        .id;
    let inst = db
        .save_instance_connection(
            &keyring,
            inst_org,
            &NewConnection {
                base_url: fake.url().to_owned(),
                method: ConnectMethod::Token,
                client: None,
                token: SecretValue::new(TOKEN.as_bytes().to_vec()),
                scopes: None,
            },
        )
        .await
        .unwrap();
    guildhall_moderation::link_instance(db, admin, org, inst.id, &LinkSettings::default())
        .await
        .unwrap();
    let decider = person(db, format!("mod-decider{n}@a.example")).await;
    db.add_member(org, decider, Role::Moderator).await.unwrap();
    let scope = Scope::for_member(db, decider, org).await.unwrap();

    // Run the moderation jobs (the first sync, then the media copy) until the image is copied.
    let mut registry = Registry::new();
    guildhall_moderation::register_jobs(&mut registry, &services);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_worker(
        db.clone(),
        registry,
        WorkerConfig {
            name: format!("authz-{n}"),
            concurrency: 2,
            poll_interval: Duration::from_millis(10),
            lease: Duration::from_secs(30),
            backoff: Backoff {
                base: Duration::from_millis(20),
                max: Duration::from_millis(100),
            },
        },
        async move {
            let _ = stopped.wait_for(|v| *v).await;
        },
    ));
    let mut found = None;
    for _ in 0..500 {
        let q = guildhall_moderation::queue(
            db,
            &scope,
            &QueueFilter::default(),
            PageRequest::default(),
        )
        .await
        .unwrap();
        if q.cases.len() == 2 {
            let spam = q.cases.iter().find(|c| c.target_remote).unwrap().id;
            let rude = q.cases.iter().find(|c| !c.target_remote).unwrap().id;
            let view = guildhall_moderation::case(db, &scope, spam).await.unwrap();
            let m = &view.reports[0].statuses[0].media[0];
            if m.copy_state == CopyState::Copied {
                found = Some((spam, rude, m.id));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    worker.await.unwrap();
    let (spam, rude, media) = found.expect("the probe case and its media");

    // A suspend by the decider, waiting for a second moderator.
    guildhall_moderation::claim(db, &scope, rude).await.unwrap();
    let out = guildhall_moderation::decide(
        db,
        &scope,
        rude,
        &NewDecision {
            action: Action::Suspend,
            rule_ids: vec!["1".to_owned()],
            user_note: None,
            private_note: String::new(),
            notify_user: false,
        },
    )
    .await
    .unwrap();
    ids.insert("case", spam.to_string());
    ids.insert("media", media.to_string());
    ids.insert("decision", out.decision_id.to_string());
}
