//! Shared fixtures: a co-op with two moderators, instance organisations connected to fake
//! Mastodons, a fast worker.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use guildhall_core::{AccountId, OrgId, Role, Timestamp};
use guildhall_db::accounts::NewAccount;
use guildhall_db::instances::{ConnectMethod, NewConnection};
use guildhall_db::jobs::{run_worker, Backoff, Registry, WorkerConfig};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
use guildhall_db::{on_pool, Db};
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ReportSeed, StatusSeed, ADMINISTRATOR};
use guildhall_mastodon::ClientConfig;
use guildhall_moderation::{link_instance, LinkSettings, NoteTemplate, Scope, Services};

pub const TOKEN: &str = "tok-service";

/// Account ids on every fake instance.
pub const MOD: u64 = 1;
pub const ALICE: u64 = 2;
pub const SPAMMER: u64 = 3;
pub const REPORTER: u64 = 4;

/// A fake Mastodon with rules 1 and 2, a local target (alice), a remote target
/// (spammer@bad.example, the same person on every instance) and a status with an image.
pub async fn fake(reports: &[ReportSeed]) -> FakeMastodon {
    let mut b = FakeMastodon::builder()
        .account(AccountSeed::local(MOD, "svc").with_role("Admin", ADMINISTRATOR))
        .account(AccountSeed::local(ALICE, "alice"))
        .account(AccountSeed::remote(SPAMMER, "Spammer", "bad.example"))
        .account(AccountSeed::local(REPORTER, "rep"))
        .rule(1, "No spam")
        .rule(2, "Be kind")
        .status(StatusSeed::new(50, SPAMMER, "<p>buy now</p>").with_image(500, "an ad"))
        .status(StatusSeed::new(51, ALICE, "<p>rude words</p>"))
        .token(TOKEN, &["admin:read", "admin:write"], Some(MOD));
    for r in reports {
        b = b.report(r.clone());
    }
    b.start().await.unwrap()
}

pub fn spam_report(id: u64) -> ReportSeed {
    ReportSeed::new(id, REPORTER, SPAMMER)
        .category("spam")
        .comment("spam again")
        .statuses(&[50])
        .rules(&[1])
}

pub fn rude_report(id: u64) -> ReportSeed {
    ReportSeed::new(id, REPORTER, ALICE)
        .category("violation")
        .statuses(&[51])
        .rules(&[2])
}

pub struct World {
    pub db: Db,
    pub services: Services,
    pub coop: OrgId,
    pub coop_owner: AccountId,
    pub m1: AccountId,
    pub m2: AccountId,
    pub instances: Vec<Inst>,
}

pub struct Inst {
    pub id: i64,
    pub org: OrgId,
    pub owner: AccountId,
}

static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub async fn account(db: &Db, name: &str) -> AccountId {
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    db.create_account(&NewAccount {
        email: format!(
            "{}{n}@guildhall.example",
            name.replace(' ', "-").to_lowercase()
        )
        .parse()
        .unwrap(),
        display_name: name.parse().unwrap(),
        password: "correct horse battery".parse().unwrap(),
        site_admin: false,
    })
    .await
    .unwrap()
    .id
}

pub fn fast_client() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 0,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..ClientConfig::default()
    }
}

pub fn settings() -> LinkSettings {
    LinkSettings {
        templates: vec![NoteTemplate::new(
            "warn",
            "Your account broke rule {{rule}} of {{instance}}.",
        )],
        ..LinkSettings::default()
    }
}

/// A co-op (owner + moderators m1, m2) and one linked instance per fake.
pub async fn world(db: &Db, fakes: &[&FakeMastodon]) -> World {
    let keyring = Arc::new(Keyring::new(SecretKey::generate(), Vec::new()));
    let services = Services {
        db: db.clone(),
        keyring: keyring.clone(),
        client: fast_client(),
    };
    let coop_owner = account(db, "Owner").await;
    let coop = db
        .create_organisation(
            &NewOrganisation::cooperative("Co-op".parse().unwrap()),
            coop_owner,
        )
        .await
        .unwrap()
        .id;
    let m1 = account(db, "Mod one").await;
    let m2 = account(db, "Mod two").await;
    db.add_member(coop, m1, Role::Moderator).await.unwrap();
    db.add_member(coop, m2, Role::Moderator).await.unwrap();
    let mut instances = Vec::new();
    for f in fakes {
        let inst = add_instance(db, &keyring, f).await;
        link_instance(db, inst.owner, coop, inst.id, &settings())
            .await
            .unwrap();
        instances.push(inst);
    }
    World {
        db: db.clone(),
        services,
        coop,
        coop_owner,
        m1,
        m2,
        instances,
    }
}

/// An instance organisation connected to `fake` (not linked to any co-op).
pub async fn add_instance(db: &Db, keyring: &Keyring, fake: &FakeMastodon) -> Inst {
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let owner = account(db, "Admin").await;
    let org = db
        .create_organisation(
            &NewOrganisation::instance(
                "Instance".parse().unwrap(),
                format!("i{n}-{}.example", std::process::id())
                    .parse()
                    .unwrap(),
            ),
            owner,
        )
        .await
        .unwrap()
        .id;
    let inst = db
        .save_instance_connection(
            keyring,
            org,
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
    Inst {
        id: inst.id,
        org,
        owner,
    }
}

impl World {
    pub async fn scope(&self, who: AccountId) -> Scope {
        Scope::for_member(&self.db, who, self.coop).await.unwrap()
    }

    pub fn registry(&self) -> Registry {
        let mut r = Registry::new();
        guildhall_moderation::register_jobs(&mut r, &self.services);
        r
    }
}

pub fn worker_config(name: &str) -> WorkerConfig {
    WorkerConfig {
        name: name.to_owned(),
        concurrency: 2,
        poll_interval: Duration::from_millis(10),
        lease: Duration::from_secs(30),
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
    }
}

/// Jobs running or due within two seconds (retries waiting out a short backoff).
pub async fn busy_jobs(db: &Db) -> i64 {
    let now = Timestamp::now().0 + 2000;
    on_pool!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE (state = 'queued' AND run_at <= $1) OR state = 'running'")
        .bind(now).fetch_one(p).await)
    .unwrap()
}

/// Runs a worker with `services`' handlers until no job is due or running (bounded).
pub async fn drain(services: &Services) {
    let mut r = Registry::new();
    guildhall_moderation::register_jobs(&mut r, services);
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(run_worker(
        services.db.clone(),
        r,
        worker_config("drain"),
        async move {
            let _ = rx.wait_for(|v| *v).await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..1000 {
        if busy_jobs(&services.db).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tx.send(true);
    h.await.unwrap();
}

/// Every audit action recorded, in order.
pub async fn audit_actions(db: &Db) -> Vec<String> {
    let mut v: Vec<String> = db
        .audit_entries(None, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    v.reverse();
    v
}
