//! Shared test support: a co-op with an owner, instance organisations connected to fake
//! Mastodons, a tiny HTTP server for URL sources, and a job drain.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use guildhall_core::{AccountId, Domain, Name, OrgId};
use guildhall_db::accounts::NewAccount;
use guildhall_db::instances::{ConnectMethod, NewConnection};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
use guildhall_db::Db;
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ADMINISTRATOR};
use guildhall_lists::{Actor, Services};
use guildhall_mastodon::ClientConfig;

pub struct World {
    pub db: Db,
    pub svc: Services,
    pub owner: AccountId,
    pub coop: OrgId,
}

pub fn actor(w: &World) -> Actor {
    Actor::person(w.owner, "owner@coop.example")
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        max_retries: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(5),
        rate_limit_reserve: 0,
        ..ClientConfig::default()
    }
}

pub async fn world(db: Db) -> World {
    let n = std::sync::atomic::AtomicU64::new(0);
    let _ = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let acc = db
        .create_account(&NewAccount {
            email: "owner@coop.example".parse().unwrap(),
            display_name: "Owner".parse().unwrap(),
            password: "correct horse battery".parse().unwrap(),
            site_admin: true,
        })
        .await
        .unwrap();
    let coop = db
        .create_organisation(
            &NewOrganisation::cooperative("Block Co-op".parse::<Name>().unwrap()),
            acc.id,
        )
        .await
        .unwrap();
    let svc = Services {
        db: db.clone(),
        keyring: Arc::new(Keyring::new(SecretKey::generate(), Vec::new())),
        client: client_config(),
    };
    World {
        db,
        svc,
        owner: acc.id,
        coop: coop.id,
    }
}

/// Another co-op (another tenant).
pub async fn other_coop(w: &World, name: &str) -> OrgId {
    w.db.create_organisation(
        &NewOrganisation::cooperative(name.parse::<Name>().unwrap()),
        w.owner,
    )
    .await
    .unwrap()
    .id
}

/// A fake Mastodon with an administrator token `tok`.
pub async fn fake(
    extra: impl FnOnce(guildhall_fake_mastodon::Builder) -> guildhall_fake_mastodon::Builder,
) -> FakeMastodon {
    let b = FakeMastodon::builder()
        .account(AccountSeed::local(1, "admin").with_role("Owner", ADMINISTRATOR))
        .token(
            "tok",
            &["read", "write", "admin:read", "admin:write"],
            Some(1),
        );
    extra(b).start().await.unwrap()
}

/// An instance organisation connected to `fake` with the token `tok`.
pub async fn instance_org(w: &World, domain: &str, fake: &FakeMastodon) -> OrgId {
    let org =
        w.db.create_organisation(
            &NewOrganisation::instance(
                domain.parse::<Name>().unwrap(),
                domain.parse::<Domain>().unwrap(),
            ),
            w.owner,
        )
        .await
        .unwrap();
    w.db.save_instance_connection(
        &w.svc.keyring,
        org.id,
        &NewConnection {
            base_url: fake.url().to_owned(),
            method: ConnectMethod::Token,
            client: None,
            token: SecretValue::new(b"tok".to_vec()),
            scopes: Some("read write admin:read admin:write".into()),
        },
    )
    .await
    .unwrap();
    org.id
}

/// Runs every due job of this crate's kinds until none is left (at most `limit` jobs).
/// Returns the kinds run, in order, and the errors of failed attempts.
pub async fn drain(svc: &Services, limit: usize) -> (Vec<String>, Vec<String>) {
    let kinds: Vec<String> = guildhall_lists::JOB_KINDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut ran = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..limit {
        let Some(job) = svc
            .db
            .claim_job("test", &kinds, Duration::from_secs(60))
            .await
            .unwrap()
        else {
            break;
        };
        ran.push(job.kind.clone());
        match guildhall_lists::run_job(svc, &job).await {
            Ok(()) => {
                svc.db.complete_job(job.id, "test").await.unwrap();
            }
            Err(e) => {
                errors.push(format!("{}: {e}", job.kind));
                svc.db
                    .fail_job(
                        job.id,
                        "test",
                        &e.to_string(),
                        &guildhall_db::jobs::Backoff {
                            base: Duration::from_secs(3600),
                            max: Duration::from_secs(3600),
                        },
                    )
                    .await
                    .unwrap();
            }
        }
    }
    (ran, errors)
}

/// What the tiny source server serves at one path.
#[derive(Clone, Default)]
pub struct Served {
    pub body: Vec<u8>,
    pub etag: Option<String>,
    pub status: u16,
}

#[derive(Clone, Default)]
pub struct SourceServer {
    pub files: Arc<Mutex<HashMap<String, Served>>>,
    pub hits: Arc<Mutex<Vec<(String, u16)>>>,
    pub url: String,
}

impl SourceServer {
    pub fn set(&self, path: &str, body: &str, etag: Option<&str>) {
        self.files.lock().unwrap().insert(
            path.to_owned(),
            Served {
                body: body.as_bytes().to_vec(),
                etag: etag.map(str::to_owned),
                status: 200,
            },
        );
    }

    pub fn fail(&self, path: &str, status: u16) {
        self.files.lock().unwrap().insert(
            path.to_owned(),
            Served {
                body: b"<html>oops</html>".to_vec(),
                etag: None,
                status,
            },
        );
    }

    pub fn url_of(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    pub fn statuses(&self, path: &str) -> Vec<u16> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, s)| *s)
            .collect()
    }
}

async fn serve_file(
    State(s): State<SourceServer>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let f = s.files.lock().unwrap().get(&path).cloned();
    let (status, resp) = match f {
        None => (404, StatusCode::NOT_FOUND.into_response()),
        Some(f) if f.status != 200 => (
            f.status,
            (StatusCode::from_u16(f.status).unwrap(), f.body).into_response(),
        ),
        Some(f) => {
            let inm = headers
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match (&f.etag, inm) {
                (Some(e), Some(i)) if *e == i => (304, StatusCode::NOT_MODIFIED.into_response()),
                (Some(e), _) => (200, ([("etag", e.clone())], f.body).into_response()),
                (None, _) => (200, f.body.into_response()),
            }
        }
    };
    s.hits.lock().unwrap().push((path, status));
    resp
}

pub async fn source_server() -> SourceServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = SourceServer {
        url: format!("http://{addr}"),
        ..SourceServer::default()
    };
    let app = Router::new()
        .route("/{*path}", get(serve_file))
        .with_state(s.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    s
}

/// A Mastodon-format CSV of `(domain, severity)` rows.
pub fn mastodon_csv(rows: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n",
    );
    for (d, sev) in rows {
        s.push_str(&format!("{d},{sev},false,false,,false\n"));
    }
    s
}

/// Links `instance_id` to `coop` for moderation (a `moderation_links` row, as the moderation
/// crate writes it): the co-op may then read the instance's admin domain-block list.
pub async fn link_for_moderation(w: &World, instance_id: i64, coop: OrgId) {
    let db = &w.db;
    guildhall_db::on_pool!(db, p => sqlx::query(
        "INSERT INTO moderation_links (instance_id, coop_org_id, settings, created_by, created_at, updated_at) \
         VALUES ($1, $2, '{}', $3, 0, 0)")
        .bind(instance_id).bind(coop.0).bind(w.owner.0)
        .execute(p).await.map(|r| r.rows_affected()))
    .unwrap();
}
