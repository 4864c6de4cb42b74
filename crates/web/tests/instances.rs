//! Connecting member instances against a real in-process fake Mastodon, on both backends: the
//! OAuth flow end to end (with the sealed token read back raw), a pasted token that lacks a
//! role permission, disconnecting (revocation at the fake), webhook deliveries (valid,
//! tampered, wrong secret, unsigned, replayed), and other organisations kept out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::*;
use guildhall_core::{AccountId, OrgId, Role};
use guildhall_db::instances::{token_secret_name, ConnectMethod, WEBHOOK_JOB_KIND};
use guildhall_db::jobs::JobState;
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey};
use guildhall_db::{db_test, on_pool, Db};
use guildhall_fake_mastodon::{
    AccountSeed, FakeMastodon, ReportSeed, WebhookFault, MANAGE_FEDERATION, MANAGE_REPORTS,
    MANAGE_USERS,
};
use guildhall_mastodon::webhook::sign;
use guildhall_mastodon::{ClientConfig, GUILDHALL_SCOPES};
use guildhall_web::AppState;

const ALL_PERMS: u64 = MANAGE_REPORTS | MANAGE_USERS | MANAGE_FEDERATION;
const TEST_BASE: &str = "http://127.0.0.1:1";

fn client_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        max_retries: 0,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..ClientConfig::default()
    }
}

fn keyring() -> Keyring {
    Keyring::new(SecretKey::generate(), Vec::new())
}

fn app_state(db: &Db, keys: &Keyring) -> AppState {
    state(db)
        .with_keyring(keys.clone())
        .with_mastodon_client(client_config())
}

async fn instance_org(db: &Db, name: &str, domain: &str, owner: AccountId) -> OrgId {
    db.create_organisation(
        &NewOrganisation::instance(name.parse().unwrap(), domain.parse().unwrap()),
        owner,
    )
    .await
    .unwrap()
    .id
}

async fn fake() -> FakeMastodon {
    FakeMastodon::builder()
        .account(AccountSeed::local(1, "admin").with_role("Admin", ALL_PERMS))
        .account(AccountSeed::local(2, "svc").with_role("Half", MANAGE_REPORTS | MANAGE_FEDERATION))
        .account(AccountSeed::local(3, "full").with_role("Full", ALL_PERMS))
        .account(AccountSeed::local(4, "troll"))
        .account(AccountSeed::local(5, "modsvc").with_role("Mod", MANAGE_REPORTS | MANAGE_USERS))
        .authorizing_account(1)
        .token("half-token", GUILDHALL_SCOPES, Some(2))
        .token("full-token", GUILDHALL_SCOPES, Some(3))
        .token("mod-token", GUILDHALL_SCOPES, Some(5))
        .start()
        .await
        .unwrap()
}

/// The owner of an instance organisation, signed in, and a fake instance to connect.
struct Owner {
    fake: FakeMastodon,
    keys: Keyring,
    app: axum::Router,
    owner: AccountId,
    org: OrgId,
    c: Client,
}

async fn owner_session(db: &Db) -> Owner {
    let fake = fake().await;
    let keys = keyring();
    let app = guildhall_web::router(app_state(db, &keys));
    let owner = account(db, "owner@a.example", false).await;
    let org = instance_org(db, "Social", "social.example", owner).await;
    let c = signed_in(db, &app, owner).await;
    Owner {
        fake,
        keys,
        app,
        owner,
        org,
        c,
    }
}

/// The raw stored row of a secret: (key id, nonce, ciphertext).
async fn raw_secret(db: &Db, name: &str) -> Option<(String, Vec<u8>, Vec<u8>)> {
    on_pool!(db, p => sqlx::query_as(
        "SELECT key_id, nonce, ciphertext FROM secrets WHERE name = $1")
        .bind(name).fetch_optional(p).await)
    .unwrap()
}

async fn actions(db: &Db, org: OrgId) -> Vec<String> {
    db.audit_entries(Some(org), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

db_test!(oauth_connect_check_store_and_disconnect, |db| async move {
    let Owner {
        fake,
        keys,
        app,
        owner,
        org,
        mut c,
    } = owner_session(&db).await;

    // Start: Guildhall registers its app and sends the browser to the instance.
    let r = c
        .post_form(
            &format!("/orgs/{org}/instance/oauth"),
            &[("base_url", fake.url())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let authorize = r.location().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", fake.url())));
    assert!(authorize.contains("code_challenge_method=S256"));
    let registered: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|q| q.path == "/api/v1/apps")
        .collect();
    assert_eq!(registered.len(), 1);
    let asked: Vec<(String, String)> = reqwest::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(asked.contains(&("scope".to_owned(), GUILDHALL_SCOPES.join(" "))));

    // The admin's browser at the instance: approved, sent back with a code.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = browser.get(&authorize).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let back = resp.headers()["location"].to_str().unwrap().to_owned();
    let path = back
        .strip_prefix(TEST_BASE)
        .unwrap_or_else(|| panic!("redirect to {back}"));
    assert!(path.starts_with(&format!("/orgs/{org}/instance/callback?")));

    // Another session of the same person cannot use this state.
    let mut other_session = signed_in(&db, &app, owner).await;
    let r = other_session.get(path).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // (The state is used up by that attempt, as a state must be used once.) Start again.
    let r = c
        .post_form(
            &format!("/orgs/{org}/instance/oauth"),
            &[("base_url", fake.url())],
        )
        .await;
    let resp = browser.get(r.location().unwrap()).send().await.unwrap();
    let back = resp.headers()["location"].to_str().unwrap().to_owned();
    let path = back.strip_prefix(TEST_BASE).unwrap().to_owned();

    let r = c.get(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("Guildhall has everything it needs."),
        "{}",
        r.body
    );
    // Replaying the callback does nothing.
    assert_eq!(c.get(&path).await.status, StatusCode::BAD_REQUEST);

    let inst = db.instance_of_org(org).await.unwrap().unwrap();
    assert!(inst.connected);
    assert_eq!(inst.method, ConnectMethod::Oauth);
    assert_eq!(inst.check_ok, Some(true));
    assert_eq!(
        inst.scopes.as_deref(),
        Some(GUILDHALL_SCOPES.join(" ").as_str())
    );
    assert!(inst.checked_at.is_some());

    // The stored bytes are not the token, and decrypt to a token the instance accepts.
    let name = token_secret_name(inst.id);
    let (_, _, ciphertext) = raw_secret(&db, &name).await.unwrap();
    let token = db.get_secret(&keys, &name).await.unwrap().unwrap();
    let token = token.expose_str().unwrap().to_owned();
    assert!(fake.token_exists(&token));
    assert!(!token.is_empty());
    assert!(ciphertext
        .windows(token.len())
        .all(|w| w != token.as_bytes()));
    // Never shown back.
    let page = c.get(&format!("/orgs/{org}/instance")).await;
    assert!(!page.body.contains(&token));
    let api = c.get(&format!("/api/v1/orgs/{org}/instance")).await;
    assert!(!api.body.contains(&token));
    assert_eq!(api.json()["instance"]["check"]["ok"], true);

    // Check again (page and API).
    let r = c
        .post_form(&format!("/orgs/{org}/instance/check"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org}/instance/check"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.json()["instance"]["check"]["ok"], true, "{}", r.body);

    // Disconnect revokes at the instance and forgets the token.
    let r = c
        .post_form(&format!("/orgs/{org}/instance/disconnect"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("revoked at the instance"), "{}", r.body);
    assert!(!fake.token_exists(&token));
    assert!(raw_secret(&db, &name).await.is_none());
    assert!(!db.instance_of_org(org).await.unwrap().unwrap().connected);
    let acts = actions(&db, org).await;
    for a in ["instance.connect", "instance.check", "instance.disconnect"] {
        assert!(acts.iter().any(|x| x == a), "{a} not in {acts:?}");
    }
});

db_test!(
    pasted_token_without_a_permission_is_named,
    |db| async move {
        let Owner {
            fake, org, mut c, ..
        } = owner_session(&db).await;

        let r = c
            .post_form(
                &format!("/orgs/{org}/instance/token"),
                &[("base_url", fake.url()), ("token", "half-token")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("Something is missing"), "{}", r.body);
        assert!(
        r.body
            .contains("To read accounts, the account&#39;s role needs the permission &#34;Manage Users&#34;."),
        "{}",
        r.body
    );
        assert!(!r.body.contains("half-token"));

        let r = c
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{org}/instance"),
                serde_json::json!({"base_url": fake.url(), "token": "half-token"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let j = r.json();
        assert_eq!(j["instance"]["check"]["ok"], false);
        assert_eq!(
            j["instance"]["check"]["moderation_ok"], false,
            "acting on accounts is moderation's"
        );
        let problems = j["instance"]["check"]["problems"].as_array().unwrap();
        assert!(
            problems.iter().any(|p| p
                .as_str()
                .unwrap()
                .contains("role needs the permission \"Manage Users\"")),
            "{problems:?}"
        );
        // Only that one is missing: reports and federation are there.
        assert!(!problems.iter().any(|p| {
            let p = p.as_str().unwrap();
            p.contains("role needs the permission \"Manage Reports\"")
                || p.contains("role needs the permission \"Manage Federation\"")
        }));
        assert!(!r.body.contains("half-token"));

        // An unknown token is refused before anything is stored.
        let r = c
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{org}/instance"),
                serde_json::json!({"base_url": fake.url(), "token": "nonsense"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.json()["error"]["field"], "token");

        // A pasted token cannot be revoked by Guildhall: the admin is told, and it is forgotten.
        let r = c
            .send(
                Method::DELETE,
                &format!("/api/v1/orgs/{org}/instance"),
                None,
                Vec::new(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.json()["message"]
            .as_str()
            .unwrap()
            .contains("not revoked"));
        assert!(fake.token_exists("half-token"));
        let inst = db.instance_of_org(org).await.unwrap().unwrap();
        assert!(raw_secret(&db, &token_secret_name(inst.id)).await.is_none());
    }
);

db_test!(
    a_token_for_moderation_only_is_enough_for_the_co_op,
    |db| async move {
        let Owner {
            fake, org, mut c, ..
        } = owner_session(&db).await;
        // The service account may handle reports and accounts but not federation.
        let r = c
            .post_form(
                &format!("/orgs/{org}/instance/token"),
                &[("base_url", fake.url()), ("token", "mod-token")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains(
                "The moderation co-op has what it needs; the shared blocklists miss something:"
            ),
            "{}",
            r.body
        );
        let r = c.get(&format!("/api/v1/orgs/{org}/instance")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let check = &r.json()["instance"]["check"];
        assert_eq!(check["ok"], false, "{check}");
        assert_eq!(check["moderation_ok"], true, "{check}");
        let problems: Vec<&str> = check["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        // Missing: only federation. (The write scopes of a pasted token cannot be verified
        // without side effects: listed as unknown, which does not count as missing.)
        let missing: Vec<&&str> = problems.iter().filter(|p| p.starts_with("To ")).collect();
        assert!(!missing.is_empty(), "{problems:?}");
        assert!(
            missing.iter().all(|p| p.contains("domain blocks")),
            "{problems:?}"
        );
        // So a co-op may moderate it.
        let inst = db.instance_of_org(org).await.unwrap().unwrap();
        assert_eq!(guildhall_moderation::connection_gap(&inst), None);
    }
);

/// Serves the app on a real port (the fake delivers webhooks over HTTP).
async fn serve(st: AppState) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(guildhall_web::serve(listener, st, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

async fn webhook_jobs(db: &Db) -> usize {
    db.jobs_in_state(JobState::Queued, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == WEBHOOK_JOB_KIND)
        .count()
}

db_test!(
    webhooks_are_verified_recorded_and_deduplicated,
    |db| async move {
        let fake = fake().await;
        let keys = keyring();
        let st = app_state(&db, &keys);
        let app = guildhall_web::router(st.clone());
        let owner = account(&db, "owner@a.example", false).await;
        let org = instance_org(&db, "Social", "social.example", owner).await;
        let mut c = signed_in(&db, &app, owner).await;
        let r = c
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{org}/instance"),
                serde_json::json!({"base_url": fake.url(), "token": "full-token"}),
            )
            .await;
        assert_eq!(r.json()["instance"]["check"]["ok"], true, "{}", r.body);
        let id = r.json()["instance"]["id"].as_i64().unwrap();

        // The secret is shown once (API), and the page shows one only when it makes one.
        let r = c
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org}/instance/webhook-secret"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let secret = r.json()["secret"].as_str().unwrap().to_owned();
        let path = format!("/webhooks/mastodon/{id}");
        assert_eq!(
            r.json()["webhook_url"].as_str().unwrap(),
            format!("{TEST_BASE}{path}")
        );
        let page = c.get(&format!("/orgs/{org}/instance")).await;
        assert!(!page.body.contains(&secret));
        assert!(!c
            .get(&format!("/api/v1/orgs/{org}/instance"))
            .await
            .body
            .contains(&secret));

        // Real deliveries from the fake.
        let (base, _stop) = serve(st).await;
        fake.set_webhook(&format!("{base}{path}"), secret.as_bytes());
        fake.file_report(ReportSeed::new(50, 1, 4).category("spam"));
        let d = fake.wait_for_deliveries(1, Duration::from_secs(10)).await;
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].status, Some(200));
        let rows = db.webhook_deliveries(id).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event, "report.created");
        assert_eq!(rows[0].body.as_bytes(), &d[0].body[..]);
        assert_eq!(webhook_jobs(&db).await, 1);

        // Replayed (the fake sends the same delivery twice): acknowledged, handled once.
        fake.inject_webhook_fault(WebhookFault::Duplicate);
        fake.file_report(ReportSeed::new(51, 1, 4));
        let d = fake.wait_for_deliveries(3, Duration::from_secs(10)).await;
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|x| x.status == Some(200)), "{d:?}");
        assert_eq!(db.webhook_deliveries(id).await.unwrap().len(), 2);
        assert_eq!(webhook_jobs(&db).await, 2);

        // Signed with a wrong secret (by the fake): refused, nothing stored.
        fake.inject_webhook_fault(WebhookFault::BadSignature);
        fake.file_report(ReportSeed::new(52, 1, 4));
        let d = fake.wait_for_deliveries(4, Duration::from_secs(10)).await;
        assert_eq!(d[3].status, Some(403));
        assert_eq!(db.webhook_deliveries(id).await.unwrap().len(), 2);

        // By hand: tampered body, wrong secret, missing header, malformed header.
        let body = br#"{"event":"report.created","created_at":"2026-11-26T10:00:00.000Z","object":{"id":"77"}}"#;
        let good = sign(secret.as_bytes(), body);
        let mut tampered = body.to_vec();
        tampered[60] = b'9';
        let anon = Client::new(app.clone());
        let post = |sig: Option<String>, b: Vec<u8>| {
            let mut cl = anon.clone();
            let path = path.clone();
            async move {
                let hdr: Vec<(&str, String)> =
                    sig.into_iter().map(|s| ("x-hub-signature", s)).collect();
                let hdr: Vec<(&str, &str)> = hdr.iter().map(|(k, v)| (*k, v.as_str())).collect();
                cl.send(Method::POST, &path, Some("application/json"), b, &hdr)
                    .await
            }
        };
        let r = post(Some(good.clone()), tampered).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = post(Some(sign(b"not-the-secret", body)), body.to_vec()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = post(None, body.to_vec()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = post(Some("sha1=abc".to_owned()), body.to_vec()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(db.webhook_deliveries(id).await.unwrap().len(), 2);
        assert_eq!(webhook_jobs(&db).await, 2);

        // Valid by hand, then replayed with the same body, then the same event id and time with
        // a different body (re-serialised): one row, one job.
        let r = post(Some(good.clone()), body.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = post(Some(good), body.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK);
        let body2 = br#"{"created_at":"2026-11-26T10:00:00.000Z","event":"report.created","object":{"id":"77"}}"#;
        let r = post(Some(sign(secret.as_bytes(), body2)), body2.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(db.webhook_deliveries(id).await.unwrap().len(), 3);
        assert_eq!(webhook_jobs(&db).await, 3);

        // A report with many statuses is far over the general body limit: read under the
        // webhook limit, stored whole.
        let status = format!(r#"{{"id":"1","content":"<p>{}</p>"}}"#, "x".repeat(2000));
        let statuses = vec![status; 3 * BODY_LIMIT / 2000];
        let big = format!(
            r#"{{"event":"report.created","created_at":"2026-11-26T11:00:00.000Z","object":{{"id":"78","statuses":[{}]}}}}"#,
            statuses.join(",")
        );
        assert!(big.len() > 2 * BODY_LIMIT);
        let r = post(
            Some(sign(secret.as_bytes(), big.as_bytes())),
            big.clone().into_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let rows = db.webhook_deliveries(id).await.unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().any(|w| w.body == big));
        assert_eq!(webhook_jobs(&db).await, 4);

        // No such instance: 404.
        let mut cl = anon.clone();
        let r = cl
            .send(
                Method::POST,
                &format!("/webhooks/mastodon/{}", id + 1000),
                Some("application/json"),
                body.to_vec(),
                &[("x-hub-signature", &sign(secret.as_bytes(), body))],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // The sending server gets plain text, as for the receiver's own answers (not a page).
        assert!(
            !r.body.contains('<') && r.body.ends_with('\n'),
            "{}",
            r.body
        );

        // Rotating the secret: the old one no longer works.
        let r = c
            .post_form(&format!("/orgs/{org}/instance/webhook-secret"), &[])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let fresh = r
            .body
            .split("id=\"webhook-secret\" type=\"text\" readonly value=\"")
            .nth(1)
            .unwrap();
        let fresh = &fresh[..fresh.find('"').unwrap()];
        assert_ne!(fresh, secret);
        let body3 = br#"{"event":"report.updated","created_at":"2026-11-26T11:00:00.000Z","object":{"id":"78"}}"#;
        let r = post(Some(sign(secret.as_bytes(), body3)), body3.to_vec()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = post(Some(sign(fresh.as_bytes(), body3)), body3.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(db.webhook_deliveries(id).await.unwrap().len(), 5);

        // Disconnected: deliveries are refused until the instance is connected again.
        let r = c
            .post_form(&format!("/orgs/{org}/instance/disconnect"), &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let body4 = br#"{"event":"report.updated","created_at":"2026-11-26T12:00:00.000Z","object":{"id":"79"}}"#;
        let r = post(Some(sign(fresh.as_bytes(), body4)), body4.to_vec()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(db.webhook_deliveries(id).await.unwrap().len(), 5);
        assert_eq!(webhook_jobs(&db).await, 5);
    }
);

db_test!(
    other_organisations_cannot_see_or_change_the_instance,
    |db| async move {
        let Owner {
            fake,
            app,
            owner,
            org,
            mut c,
            ..
        } = owner_session(&db).await;
        let r = c
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{org}/instance"),
                serde_json::json!({"base_url": fake.url(), "token": "full-token"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        let stranger = account(&db, "stranger@b.example", false).await;
        let other = instance_org(&db, "Other", "other.example", stranger).await;
        let mut s = signed_in(&db, &app, stranger).await;
        let mut moderator_c = {
            let m = account(&db, "mod@a.example", false).await;
            db.add_member(org, m, Role::Moderator).await.unwrap();
            signed_in(&db, &app, m).await
        };
        for (who, want) in [
            (&mut s, StatusCode::NOT_FOUND),
            (&mut moderator_c, StatusCode::FORBIDDEN),
        ] {
            assert_eq!(who.get(&format!("/orgs/{org}/instance")).await.status, want);
            assert_eq!(
                who.get(&format!("/api/v1/orgs/{org}/instance"))
                    .await
                    .status,
                want
            );
            let r = who
                .json(
                    Method::PUT,
                    &format!("/api/v1/orgs/{org}/instance"),
                    serde_json::json!({"base_url": fake.url(), "token": "half-token"}),
                )
                .await;
            assert_eq!(r.status, want);
            let r = who
                .send(
                    Method::DELETE,
                    &format!("/api/v1/orgs/{org}/instance"),
                    None,
                    Vec::new(),
                    &[],
                )
                .await;
            assert_eq!(r.status, want);
            let r = who
                .post_form(&format!("/orgs/{org}/instance/webhook-secret"), &[])
                .await;
            assert_eq!(r.status, want);
            let r = who
                .post_form(&format!("/orgs/{org}/instance/disconnect"), &[])
                .await;
            assert_eq!(r.status, want);
        }
        // Untouched.
        let inst = db.instance_of_org(org).await.unwrap().unwrap();
        assert!(inst.connected);
        assert!(!inst.webhook_secret_set);
        assert!(fake.token_exists("full-token"));
        // The stranger's own organisation has no instance.
        let r = s.get(&format!("/api/v1/orgs/{other}/instance")).await;
        assert_eq!(r.json()["instance"], serde_json::Value::Null);
        // A cooperative cannot connect an instance.
        let coop = org_coop(&db, owner).await;
        let r = c
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{coop}/instance"),
                serde_json::json!({"base_url": fake.url(), "token": "full-token"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    }
);

async fn org_coop(db: &Db, owner: AccountId) -> OrgId {
    org(db, "Coop", owner).await
}
