//! Moderation fixtures for the web tests: a co-op with two moderators, instance organisations
//! connected to in-process fake Mastodons and linked to the co-op, and a job worker run
//! in-process until the queue is idle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use guildhall_core::{AccountId, OrgId, Role, Timestamp};
use guildhall_db::instances::{ConnectMethod, NewConnection};
use guildhall_db::jobs::{run_worker, Backoff, Registry, WorkerConfig};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
use guildhall_db::{on_pool, Db};
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ReportSeed, StatusSeed, ADMINISTRATOR};
use guildhall_mastodon::ClientConfig;
use guildhall_moderation::{link_instance, LinkSettings, NoteTemplate, Services};

use crate::common;

pub const TOKEN: &str = "tok-service";
pub const MOD: u64 = 1;
pub const ALICE: u64 = 2;
pub const SPAMMER: u64 = 3;
pub const REPORTER: u64 = 4;

/// A fake Mastodon with rules 1 and 2, a local account (alice), a remote one
/// (spammer@bad.example) with a status carrying an image, and `reports`.
pub async fn fake(reports: &[ReportSeed]) -> FakeMastodon {
    let mut b = FakeMastodon::builder()
        .account(AccountSeed::local(MOD, "svc").with_role("Admin", ADMINISTRATOR))
        .account(AccountSeed::local(ALICE, "alice"))
        .account(AccountSeed::remote(SPAMMER, "Spammer", "bad.example"))
        .account(AccountSeed::local(REPORTER, "rep"))
        .rule(1, "No spam")
        .rule(2, "Be kind")
        .status(
            StatusSeed::new(50, SPAMMER, "<p>buy <b>now</b> &amp; save</p>")
                .with_image(500, "an ad"),
        )
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

pub struct Inst {
    pub id: i64,
    pub org: OrgId,
    pub admin: AccountId,
    pub admin_email: String,
}

pub struct World {
    pub db: Db,
    pub services: Services,
    pub coop: OrgId,
    pub m1: AccountId,
    pub m2: AccountId,
    pub m1_email: String,
    pub m2_email: String,
    pub instances: Vec<Inst>,
}

/// A co-op named `name` (its owner and moderators have e-mails under `name`.example) and one
/// linked instance organisation per fake.
pub async fn world(db: &Db, name: &str, fakes: &[&FakeMastodon]) -> World {
    world_with(db, name, fakes, true).await
}

/// As [`world`], with the instances connected but linked to the co-op only when `link`.
pub async fn world_with(db: &Db, name: &str, fakes: &[&FakeMastodon], link: bool) -> World {
    // One key for every world of the process: a worker of one world may run another's jobs.
    static KEYS: std::sync::OnceLock<Arc<Keyring>> = std::sync::OnceLock::new();
    let keyring = KEYS
        .get_or_init(|| Arc::new(Keyring::new(SecretKey::generate(), Vec::new())))
        .clone();
    let services = Services {
        db: db.clone(),
        keyring: keyring.clone(),
        client: fast_client(),
    };
    let owner = common::account(db, &format!("owner@{name}.example"), false).await;
    let coop = db
        .create_organisation(
            &NewOrganisation::cooperative(format!("Co-op {name}").parse().unwrap()),
            owner,
        )
        .await
        .unwrap()
        .id;
    let m1_email = format!("mod1@{name}.example");
    let m2_email = format!("mod2@{name}.example");
    let m1 = common::account(db, &m1_email, false).await;
    let m2 = common::account(db, &m2_email, false).await;
    db.add_member(coop, m1, Role::Moderator).await.unwrap();
    db.add_member(coop, m2, Role::Moderator).await.unwrap();
    let mut instances = Vec::new();
    for (i, f) in fakes.iter().enumerate() {
        let admin_email = format!("admin{i}@{name}-inst.example");
        let admin = common::account(db, &admin_email, false).await;
        let org = db
            .create_organisation(
                &NewOrganisation::instance(
                    format!("Instance {i} of {name}").parse().unwrap(),
                    format!("i{i}-{name}.example").parse().unwrap(),
                ),
                admin,
            )
            .await
            .unwrap()
            .id;
        let inst = db
            .save_instance_connection(
                &keyring,
                org,
                &NewConnection {
                    base_url: f.url().to_owned(),
                    method: ConnectMethod::Token,
                    client: None,
                    token: SecretValue::new(TOKEN.as_bytes().to_vec()),
                    scopes: None,
                },
            )
            .await
            .unwrap();
        if link {
            link_instance(db, admin, coop, inst.id, &settings())
                .await
                .unwrap();
        }
        instances.push(Inst {
            id: inst.id,
            org,
            admin,
            admin_email,
        });
    }
    World {
        db: db.clone(),
        services,
        coop,
        m1,
        m2,
        m1_email,
        m2_email,
        instances,
    }
}

pub fn registry(services: &Services) -> Registry {
    let mut r = Registry::new();
    guildhall_moderation::register_jobs(&mut r, services);
    r
}

pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        name: "web-test".to_owned(),
        concurrency: 2,
        poll_interval: Duration::from_millis(10),
        lease: Duration::from_secs(30),
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
    }
}

/// Jobs running or due within two seconds.
pub async fn busy_jobs(db: &Db) -> i64 {
    let now = Timestamp::now().0 + 2000;
    on_pool!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE (state = 'queued' AND run_at <= $1) OR state = 'running'")
        .bind(now).fetch_one(p).await)
    .unwrap()
}

/// Runs `guildhall_db::jobs::run_worker` with the moderation handlers until no job is due or
/// running (bounded).
pub async fn drain(services: &Services) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(run_worker(
        services.db.clone(),
        registry(services),
        worker_config(),
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
