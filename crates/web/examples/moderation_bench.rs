//! Moderation benchmark (not a test): ingests reports from fake instances through the real sync
//! path, fills the database up to a target number of stored reports by copying the ingested
//! cases and reports in SQL, then times the queue page (through the real router, signed in)
//! with filters. Run by `bench/moderation/run.sh`; prints one JSON object.
//!
//! ```sh
//! moderation_bench --db sqlite:///tmp/b.db --instances 50 --reports 100000 --stored 1000000 --queries 200
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use guildhall_core::Role;
use guildhall_db::accounts::NewAccount;
use guildhall_db::instances::{ConnectMethod, NewConnection};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
use guildhall_db::{on_pool, Db};
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ReportSeed, StatusSeed, ADMINISTRATOR};
use guildhall_moderation::{link_instance, LinkSettings, Services};
use guildhall_web::{AppState, WebConfig};
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "tok-bench";
const TARGETS: u64 = 400;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

async fn fake(n: u64, reports: u64) -> FakeMastodon {
    let mut b = FakeMastodon::builder()
        .account(AccountSeed::local(1, "svc").with_role("Admin", ADMINISTRATOR))
        .account(AccountSeed::local(2, "reporter"))
        .rule(1, "No spam")
        .rule(2, "Be kind")
        .rule(3, "No illegal content")
        .token(TOKEN, &["admin:read", "admin:write"], Some(1));
    for t in 0..TARGETS {
        let id = 10 + t;
        b = if t % 4 == 0 {
            b.account(AccountSeed::remote(
                id,
                &format!("far{t}"),
                "elsewhere.example",
            ))
        } else {
            b.account(AccountSeed::local(id, &format!("user{t}")))
        };
        b = b.status(StatusSeed::new(100_000 + id, id, "<p>reported words</p>"));
    }
    let cats = ["spam", "violation", "legal", "other"];
    for r in 0..reports {
        let t = 10 + (r * 7 + n) % TARGETS;
        b = b.report(
            ReportSeed::new(r + 1, 2, t)
                .category(cats[(r % 4) as usize])
                .comment("bench")
                .statuses(&[100_000 + t])
                .rules(&[1 + r % 3]),
        );
    }
    b.start().await.unwrap()
}

async fn count(db: &Db, sql: &str) -> i64 {
    on_pool!(db, p => sqlx::query_scalar(sql).fetch_one(p).await).unwrap()
}

async fn exec(db: &Db, sql: &str) -> u64 {
    on_pool!(db, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected())).unwrap()
}

/// Copies every ingested case (with its reports and filter tags) `rounds` times, with ids
/// offset by `round * OFFSET`; rounds below `open_rounds` stay open (with a distinct target id),
/// the others are closed as decided.
async fn fill(db: &Db, rounds: i64, open_rounds: i64) {
    const OFFSET: i64 = 100_000_000;
    let now = guildhall_core::Timestamp::now().0;
    for k in 1..=rounds {
        let off = k * OFFSET;
        let open = k <= open_rounds;
        let (state, outcome, closed, taken) = if open {
            ("'open'", "NULL", "NULL", "FALSE")
        } else {
            ("'closed'", "'decided'", "c.updated_at", "TRUE")
        };
        // Spread the copies over the last weeks so that age and SLA filters select parts.
        let shift = k * 3 * 86_400_000;
        exec(db, &format!(
            "INSERT INTO mod_cases (id, instance_id, coop_org_id, target_account_id, target_acct, target_remote, \
             state, outcome, category, severity, language, opened_at, last_report_at, sla_due_at, report_count, \
             open_report_count, created_at, updated_at, closed_at) \
             SELECT c.id + {off}, c.instance_id, c.coop_org_id, c.target_account_id || '~{k}', c.target_acct, \
             c.target_remote, {state}, {outcome}, c.category, c.severity, c.language, c.opened_at - {shift}, \
             c.last_report_at - {shift}, c.sla_due_at - {shift}, c.report_count, \
             CASE WHEN {open} THEN c.open_report_count ELSE 0 END, c.created_at, {now}, {closed} \
             FROM mod_cases c WHERE c.id < {OFFSET}",
            open = if open { "1=1" } else { "1=0" },
        )).await;
        exec(db, &format!(
            "INSERT INTO mod_reports (id, instance_id, remote_id, remote_num, case_id, category, rule_ids, comment, \
             forwarded, action_taken, action_taken_at, assigned_acct, remote_created_at, remote_updated_at, created_ms, \
             target_account_id, target_acct, target_domain, reporter_account_id, reporter_acct, reporter_domain, \
             first_seen_at, last_seen_at) \
             SELECT r.id + {off}, r.instance_id, r.remote_id || '~{k}', r.remote_num + {off}, r.case_id + {off}, \
             r.category, r.rule_ids, r.comment, r.forwarded, {taken}, r.action_taken_at, r.assigned_acct, \
             r.remote_created_at, r.remote_updated_at, r.created_ms - {shift}, r.target_account_id, r.target_acct, \
             r.target_domain, r.reporter_account_id, r.reporter_acct, r.reporter_domain, r.first_seen_at, r.last_seen_at \
             FROM mod_reports r WHERE r.id < {OFFSET}"
        )).await;
        exec(db, &format!(
            "INSERT INTO mod_case_tags (case_id, tag) SELECT t.case_id + {off}, t.tag FROM mod_case_tags t \
             WHERE t.case_id < {OFFSET}"
        )).await;
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = arg("--db", "sqlite:///tmp/guildhall-mod-bench.db");
    let instances: u64 = arg("--instances", "50").parse().unwrap();
    let reports: u64 = arg("--reports", "100000").parse().unwrap();
    let stored: u64 = arg("--stored", "1000000").parse().unwrap();
    let queries: usize = arg("--queries", "200").parse().unwrap();
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let keyring = Arc::new(Keyring::new(SecretKey::generate(), Vec::new()));
    let services = Services {
        db: db.clone(),
        keyring: keyring.clone(),
        client: guildhall_mastodon::ClientConfig::default(),
    };
    let new_account = |email: &str| NewAccount {
        email: email.parse().unwrap(),
        display_name: "Bench".parse().unwrap(),
        password: "correct horse battery".parse().unwrap(),
        site_admin: false,
    };
    let owner = db
        .create_account(&new_account("owner@bench.example"))
        .await
        .unwrap()
        .id;
    let moderator = db
        .create_account(&new_account("mod@bench.example"))
        .await
        .unwrap()
        .id;
    let coop = db
        .create_organisation(
            &NewOrganisation::cooperative("Bench co-op".parse().unwrap()),
            owner,
        )
        .await
        .unwrap()
        .id;
    db.add_member(coop, moderator, Role::Moderator)
        .await
        .unwrap();

    // Fake instances and links (not timed).
    let per = reports / instances;
    let mut fakes = Vec::new();
    let mut ids = Vec::new();
    for n in 0..instances {
        let f = fake(n, per).await;
        let org = db
            .create_organisation(
                &NewOrganisation::instance(
                    format!("Instance {n}").parse().unwrap(),
                    format!("i{n}.bench.example").parse().unwrap(),
                ),
                owner,
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
        link_instance(&db, owner, coop, inst.id, &LinkSettings::default())
            .await
            .unwrap();
        ids.push(inst.id);
        fakes.push(f);
    }

    // Ingest: the first sync of every instance, four at a time.
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let s = services.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            guildhall_moderation::sync_instance(&s, id).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ingest_s = t0.elapsed().as_secs_f64();
    let ingested = count(&db, "SELECT COUNT(*) FROM mod_reports").await;
    let cases = count(&db, "SELECT COUNT(*) FROM mod_cases").await;
    drop(fakes);

    // Fill up to `stored` reports by copying (direct SQL).
    let rounds = (stored as i64 / ingested.max(1)) - 1;
    let t1 = Instant::now();
    fill(&db, rounds.max(0), 2).await;
    let fill_s = t1.elapsed().as_secs_f64();
    // A database that has been running holds vacuumed tables: without this, PostgreSQL's
    // autovacuum of the freshly copied rows runs during the measured requests.
    let settle = if matches!(db, Db::Postgres(_)) {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    exec(&db, settle).await;
    if matches!(db, Db::Postgres(_)) {
        exec(&db, "CHECKPOINT").await;
    }
    let total_reports = count(&db, "SELECT COUNT(*) FROM mod_reports").await;
    let total_cases = count(&db, "SELECT COUNT(*) FROM mod_cases").await;
    let open_cases = count(&db, "SELECT COUNT(*) FROM mod_cases WHERE state = 'open'").await;

    // The queue page, signed in as the moderator, through the router.
    let app = guildhall_web::router(AppState::new(db.clone(), WebConfig::default()));
    let (token, _) = db
        .create_session(moderator, Duration::from_secs(3600))
        .await
        .unwrap();
    let cookie = format!("gh_session={}", token.expose());
    let i0 = ids[0];
    let i7 = ids[7 % ids.len()];
    let filters: Vec<(&str, String)> = vec![
        ("none", String::new()),
        ("instance", format!("instance={i0}")),
        ("category", "category=legal".to_owned()),
        ("rule", format!("rule={i7}%3A2")),
        ("language", "language=en".to_owned()),
        ("sla_overdue", "sla=overdue".to_owned()),
        ("older_than_24h", "older_than_hours=24".to_owned()),
        ("instance+category", format!("instance={i0}&category=spam")),
        ("unclaimed", "unclaimed=true".to_owned()),
        ("page_5", "offset=200&limit=50".to_owned()),
    ];
    let mut all = Vec::new();
    let mut per_filter = Vec::new();
    for (name, q) in &filters {
        let mut lat = Vec::with_capacity(queries);
        for i in 0..queries + 5 {
            let req = Request::builder()
                .uri(format!("/orgs/{}/moderation?{q}", coop.0))
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            if i >= 5 {
                lat.push(ms);
            }
        }
        all.extend_from_slice(&lat);
        lat.sort_by(f64::total_cmp);
        per_filter.push(serde_json::json!({
            "filter": name, "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99), "max_ms": lat[lat.len() - 1],
        }));
    }
    all.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "db": if db.backend() == guildhall_db::Backend::Postgres { "postgres" } else { "sqlite" },
            "instances": instances,
            "ingested_reports": ingested,
            "ingested_cases": cases,
            "ingest_seconds": ingest_s,
            "ingest_reports_per_second": ingested as f64 / ingest_s,
            "fill_seconds": fill_s,
            "stored_reports": total_reports,
            "stored_cases": total_cases,
            "open_cases": open_cases,
            "queries_per_filter": queries,
            "queue_page_all": { "p50_ms": pct(&all, 0.5), "p99_ms": pct(&all, 0.99) },
            "queue_page_by_filter": per_filter,
        })
    );
}
