//! The client against the fake Mastodon: every endpoint and every error class.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use guildhall_fake_mastodon::{
    AccountSeed, BlockSeed, FakeMastodon, Flavor, Injected, PublicBlocksMode, ReportSeed,
    StatusSeed, ADMINISTRATOR, MANAGE_FEDERATION, MANAGE_REPORTS, MANAGE_USERS, VIEW_DASHBOARD,
};
use guildhall_mastodon::models::{
    AccountAction, ActionType, DomainBlockParams, MeasureQuery, ReportCategory, ReportFilter,
    Severity,
};
use guildhall_mastodon::{
    Client, ClientConfig, Error, Grant, Permissions, Pkce, Secret, GUILDHALL_SCOPES,
};

const ADMIN_SCOPES: &[&str] = &["admin:read", "admin:write", "read:accounts"];

fn config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        max_rate_limit_wait: Duration::from_secs(3),
        rate_limit_reserve: 0,
        max_body_bytes: 64 * 1024,
        ..ClientConfig::default()
    }
}

fn client(fake: &FakeMastodon, token: &str) -> Client {
    Client::new(fake.url(), Some(Secret::new(token)), config()).unwrap()
}

fn base() -> guildhall_fake_mastodon::Builder {
    FakeMastodon::builder()
        .account(AccountSeed::local(1, "owner").with_role("Owner", ADMINISTRATOR))
        .account(AccountSeed::local(2, "mod").with_role("Moderator", MANAGE_REPORTS))
        .account(AccountSeed::local(3, "alice"))
        .account(AccountSeed::remote(4, "spammer", "bad.example"))
        .account(AccountSeed::instance_actor(5, "remote.example"))
        .token("owner", ADMIN_SCOPES, Some(1))
        .token("mod", ADMIN_SCOPES, Some(2))
        .authorizing_account(1)
}

async fn seeded() -> FakeMastodon {
    base()
        .rule(1, "No spam")
        .rule(2, "Be kind")
        .status(StatusSeed::new(70, 4, "<p>buy now</p>").with_image(700, "an ad"))
        .report(
            ReportSeed::new(1, 3, 4)
                .category("spam")
                .statuses(&[70])
                .rules(&[1]),
        )
        .report(ReportSeed::new(2, 3, 4))
        .report(ReportSeed::new(3, 5, 3).forwarded().comment("from afar"))
        .start()
        .await
        .unwrap()
}

fn statuses(fake: &FakeMastodon) -> Vec<u16> {
    fake.requests().iter().map(|r| r.status).collect()
}

// ---------- credentials, instance ----------

#[tokio::test]
async fn credentials_instance_rules_and_nodeinfo() {
    let fake = seeded().await;
    let c = client(&fake, "owner");
    let app = c.verify_app().await.unwrap();
    assert!(!app.name.is_empty());
    let me = c.verify_credentials().await.unwrap();
    assert_eq!(me.username, "owner");
    assert_eq!(
        me.role.unwrap().permissions,
        Some(Permissions(ADMINISTRATOR))
    );
    // Without the granted scopes the write side cannot be told (no side-effect probes).
    let unknown = c.check_access(None).await.unwrap();
    assert!(unknown
        .capabilities
        .iter()
        .any(|c| c.grant == Grant::Unknown));
    let granted: Vec<String> = ADMIN_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let report = c.check_access(Some(&granted)).await.unwrap();
    assert!(report.is_complete(), "{:?}", report.problems());
    assert_eq!(report.account.unwrap().username, "owner");
    let inst = c.instance().await.unwrap();
    assert_eq!(inst.rules.len(), 2);
    assert_eq!(inst.title, "Fake Mastodon");
    let rules = c.rules().await.unwrap();
    assert_eq!(rules[1].text, "Be kind");
    // A server without /api/v2/instance: the v1 shape is read instead.
    fake.inject_response(
        "/api/v2/instance",
        Injected::json(404, r#"{"error":"Not Found"}"#),
    );
    fake.inject_response(
        "/api/v1/instance",
        Injected::json(
            200,
            r#"{"uri":"old.example","title":"Old","version":"3.5.3","rules":[]}"#,
        ),
    );
    let old = c.instance().await.unwrap();
    assert_eq!(
        (old.domain.as_str(), old.version.as_str()),
        ("old.example", "3.5.3")
    );
    let ni = c.nodeinfo().await.unwrap();
    assert_eq!(ni.software.name, "mastodon");
    fake.set_flavor(Flavor::GoToSocial);
    assert_eq!(c.nodeinfo().await.unwrap().software.name, "gotosocial");
}

#[tokio::test]
async fn access_check_names_what_is_missing_in_plain_words() {
    let fake = base()
        .account(AccountSeed::local(9, "svc").with_role("Reports", MANAGE_REPORTS))
        // All scopes, but a role without Manage Users / Manage Federation; no read:accounts,
        // so the role is not visible and the probes must tell.
        .token("svc", &["admin:read", "admin:write"], Some(9))
        .token("narrow", &["admin:read:reports"], Some(1))
        .start()
        .await
        .unwrap();
    let r = client(&fake, "svc").check_access(None).await.unwrap();
    assert!(!r.is_complete());
    assert_eq!(
        r.permissions, None,
        "role not readable without read:accounts"
    );
    let grants: Vec<(&str, Grant)> = r.capabilities.iter().map(|c| (c.scope, c.grant)).collect();
    assert_eq!(grants[0], ("admin:read:reports", Grant::Yes));
    assert_eq!(grants[2], ("admin:read:accounts", Grant::MissingPermission));
    assert_eq!(
        grants[4],
        ("admin:read:domain_blocks", Grant::MissingPermission)
    );
    assert_eq!(
        r.missing_permissions(),
        vec![Permissions::MANAGE_USERS, Permissions::MANAGE_FEDERATION]
    );
    let text = r.problems().join("\n");
    assert!(
        text.contains("the permission \"Manage Federation\""),
        "{text}"
    );
    assert!(text.contains("To read accounts"), "{text}");

    // Scopes known from the token exchange: writes can be judged too.
    let granted = vec!["admin:read:reports".to_owned()];
    let r = client(&fake, "narrow")
        .check_access(Some(&granted))
        .await
        .unwrap();
    let missing = r.missing_scopes();
    assert!(missing.contains(&"admin:write:reports"));
    assert!(missing.contains(&"admin:write:domain_blocks"));
    assert!(!missing.contains(&"admin:read:reports"));
    assert!(r.problems()[0].contains("needs the scope \"admin:write:reports\""));

    let err = client(&fake, "wrong").check_access(None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken { .. }), "{err:?}");
}

// ---------- reports ----------

#[tokio::test]
async fn reports_follow_link_pagination_across_several_pages() {
    let mut b = base();
    for id in 1..=25u64 {
        b = b.report(ReportSeed::new(id, 3, 4));
    }
    for id in 26..=30u64 {
        b = b.report(ReportSeed::new(id, 3, 4).resolved());
    }
    let fake = b.start().await.unwrap();
    let c = client(&fake, "owner");
    let filter = ReportFilter {
        limit: Some(10),
        ..ReportFilter::default()
    };
    let page = c.reports(&filter).await.unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.items[0].id, "25");
    let next = page.next.clone().unwrap();
    let page2 = c
        .follow::<guildhall_mastodon::models::AdminReport>(&next)
        .await
        .unwrap();
    assert_eq!(page2.items[0].id, "15");

    let before = fake.requests().len();
    let all = c.all_reports(&filter).await.unwrap();
    let ids: Vec<u64> = all.iter().map(|r| r.id.parse().unwrap()).collect();
    assert_eq!(ids, (1..=25).rev().collect::<Vec<u64>>());
    assert_eq!(fake.requests().len() - before, 3, "10 + 10 + 5");

    let resolved = c
        .all_reports(&ReportFilter {
            resolved: Some(true),
            limit: Some(5),
            ..ReportFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(resolved.len(), 5, "a full last page whose next is empty");
    assert!(resolved.iter().all(|r| r.action_taken));
    let by_target = c
        .all_reports(&ReportFilter {
            target_account_id: Some("3".into()),
            ..ReportFilter::default()
        })
        .await
        .unwrap();
    assert!(by_target.is_empty());
}

#[tokio::test]
async fn pagination_does_not_depend_on_link_order() {
    let mut b = base().links_prev_first(true);
    for id in 1..=7u64 {
        b = b.report(ReportSeed::new(id, 3, 4));
    }
    let fake = b.start().await.unwrap();
    let all = client(&fake, "owner")
        .all_reports(&ReportFilter {
            limit: Some(3),
            ..ReportFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
}

#[tokio::test]
async fn report_show_assign_resolve_reopen_update() {
    let fake = seeded().await;
    let c = client(&fake, "mod");
    let r = c.report("1").await.unwrap();
    assert_eq!(r.category, ReportCategory::Spam);
    assert_eq!(
        r.statuses[0].media_attachments[0].description.as_deref(),
        Some("an ad")
    );
    assert_eq!(r.rules[0].text, "No spam");
    assert_eq!(r.target_account.acct(), "spammer@bad.example");
    let fwd = c.report("3").await.unwrap();
    assert!(fwd.forwarded);
    assert_eq!(fwd.forwarded_from(), Some("remote.example"));

    let r = c.assign_report_to_self("1").await.unwrap();
    assert_eq!(r.assigned_account.unwrap().id, "2");
    let r = c.assign_report_to_self("1").await.unwrap();
    assert_eq!(r.assigned_account.unwrap().id, "2", "idempotent");
    let r = c.unassign_report("1").await.unwrap();
    assert!(r.assigned_account.is_none());
    let r = c.resolve_report("1", None).await.unwrap();
    assert!(r.action_taken);
    assert_eq!(r.action_taken_by_account.unwrap().id, "2");
    let r = c.reopen_report("1").await.unwrap();
    assert!(!r.action_taken);
    let r = c
        .update_report(
            "1",
            Some(&ReportCategory::Violation),
            Some(&["2".to_owned()]),
        )
        .await
        .unwrap();
    assert_eq!(r.category, ReportCategory::Violation);
    assert_eq!(r.rules[0].id, "2");
    let err = c
        .update_report("1", None, Some(&["99".to_owned()]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { status: 422, message, .. } if message.contains("Rule ids")),
        "{err:?}"
    );
    let err = c.report("999").await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { message, .. } if message == "Record not found"));
}

// ---------- accounts ----------

#[tokio::test]
async fn account_actions_and_reversals() {
    let fake = seeded().await;
    let c = client(&fake, "owner");
    let a = c.admin_account("4").await.unwrap();
    assert_eq!(a.domain.as_deref(), Some("bad.example"));
    assert_eq!(a.email, None);
    c.account_action("4", &AccountAction::new(ActionType::None).for_report("2"))
        .await
        .unwrap();
    assert_eq!(fake.report_resolved(2), Some(true));
    assert_eq!(fake.report_resolved(1), Some(false));
    for kind in [
        ActionType::Silence,
        ActionType::Suspend,
        ActionType::Sensitive,
    ] {
        c.account_action("4", &AccountAction::new(kind))
            .await
            .unwrap();
    }
    assert_eq!(
        fake.report_resolved(1),
        Some(true),
        "any type but none resolves all"
    );
    c.account_action("3", &AccountAction::new(ActionType::Disable))
        .await
        .unwrap();
    let a = c.admin_account("4").await.unwrap();
    assert!(a.silenced && a.suspended && a.sensitized);
    assert!(!c.unsilence_account("4").await.unwrap().silenced);
    assert!(!c.unsuspend_account("4").await.unwrap().suspended);
    assert!(!c.unsensitive_account("4").await.unwrap().sensitized);
    assert_eq!(c.enable_account("3").await.unwrap().disabled, Some(false));
    let err = c
        .account_action("99", &AccountAction::new(ActionType::Suspend))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
}

// ---------- domain blocks and allows ----------

#[tokio::test]
async fn domain_block_crud_and_the_stricter_block_error() {
    let fake = base()
        .domain_block(BlockSeed::new("old.example", "suspend"))
        .start()
        .await
        .unwrap();
    let c = client(&fake, "owner");
    let params = DomainBlockParams {
        severity: Some(Severity::Suspend),
        reject_media: Some(true),
        public_comment: Some("spam".into()),
        ..DomainBlockParams::default()
    };
    let b = c
        .create_domain_block("Bad.Example.", &params)
        .await
        .unwrap();
    assert_eq!(b.domain, "bad.example");
    assert_eq!(b.severity, Some(Severity::Suspend));
    assert_eq!(b.reject_media, Some(true));
    assert_eq!(b.digest.as_deref().map(str::len), Some(64));
    let err = c
        .create_domain_block("sub.bad.example", &DomainBlockParams::default())
        .await
        .unwrap_err();
    match err {
        Error::StricterBlockExists {
            message, existing, ..
        } => {
            assert_eq!(existing.id, b.id);
            assert_eq!(existing.domain, "bad.example");
            assert!(message.contains("bad.example"));
        }
        other => panic!("{other:?}"),
    }
    let err = c
        .create_domain_block("", &DomainBlockParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { status: 422, message, .. } if message == "Validation failed: Domain can't be blank"),
        "{err:?}"
    );
    let shown = c.domain_block(&b.id).await.unwrap();
    assert_eq!(shown, b);
    let updated = c
        .update_domain_block(
            &b.id,
            &DomainBlockParams {
                severity: Some(Severity::Silence),
                ..DomainBlockParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.severity, Some(Severity::Silence));
    assert_eq!(updated.domain, "bad.example");
    let all = c.all_domain_blocks().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(c.domain_blocks(Some(1)).await.unwrap().items.len(), 1);
    c.delete_domain_block(&b.id).await.unwrap();
    assert!(matches!(
        c.domain_block(&b.id).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    assert_eq!(fake.blocked_domains(), vec!["old.example".to_owned()]);
}

#[tokio::test]
async fn domain_allow_crud() {
    let fake = base().domain_allow("friend.example").start().await.unwrap();
    let c = client(&fake, "owner");
    let a = c.create_domain_allow("Pal.Example").await.unwrap();
    assert_eq!(a.domain, "pal.example");
    assert_eq!(c.domain_allow(&a.id).await.unwrap(), a);
    assert_eq!(c.all_domain_allows().await.unwrap().len(), 2);
    assert_eq!(c.domain_allows(None).await.unwrap().items[0], a);
    c.delete_domain_allow(&a.id).await.unwrap();
    assert!(matches!(
        c.domain_allow(&a.id).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    let err = c.create_domain_allow("friend.example").await.unwrap_err();
    assert!(matches!(err, Error::Validation { .. }));
}

#[tokio::test]
async fn public_domain_blocks_in_each_mode() {
    let fake = base()
        .domain_block(BlockSeed::new("ap.abc.st", "suspend").obfuscated())
        .start()
        .await
        .unwrap();
    let anon = Client::new(fake.url(), None, config()).unwrap();
    let list = anon.public_domain_blocks().await.unwrap();
    assert_eq!(list[0].domain, "ap.***.st");
    assert_eq!(list[0].severity, Some(Severity::Suspend));
    assert!(list[0].comment.is_none());
    fake.set_public_domain_blocks(PublicBlocksMode::UsersOnly);
    assert!(matches!(
        anon.public_domain_blocks().await.unwrap_err(),
        Error::InvalidToken { .. }
    ));
    assert_eq!(
        client(&fake, "owner")
            .public_domain_blocks()
            .await
            .unwrap()
            .len(),
        1
    );
    fake.set_public_domain_blocks(PublicBlocksMode::Disabled);
    let err = anon.public_domain_blocks().await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { message, .. } if message.is_empty()),
        "{err:?}"
    );
}

#[tokio::test]
async fn measures_for_a_domain() {
    let fake = base()
        .account(AccountSeed::local(8, "dash").with_role("Dash", VIEW_DASHBOARD))
        .token("dash", &["admin:read"], Some(8))
        .measure("instance_follows", Some("bad.example"), 7)
        .start()
        .await
        .unwrap();
    let q = MeasureQuery {
        keys: vec!["instance_follows".into()],
        start_at: "2026-01-01".into(),
        end_at: "2026-01-31".into(),
        domain: Some("bad.example".into()),
    };
    let m = client(&fake, "dash").measures(&q).await.unwrap();
    assert_eq!(m[0].key, "instance_follows");
    assert_eq!(m[0].total_value(), Some(7));
    assert_eq!(m[0].data[0].value, "7");
    let err = client(&fake, "mod").measures(&q).await.unwrap_err();
    assert!(
        matches!(err, Error::MissingPermission { permission, .. } if permission == Permissions::VIEW_DASHBOARD)
    );
}

// ---------- OAuth ----------

#[tokio::test]
async fn oauth_registration_authorization_exchange_check_and_revoke() {
    let fake = base().start().await.unwrap();
    let anon = Client::new(fake.url(), None, config()).unwrap();
    let meta = anon.oauth_metadata().await.unwrap().unwrap();
    assert!(meta.authorization_endpoint.ends_with("/oauth/authorize"));
    let redirect = "https://hall.example/callback".to_owned();
    let app = anon
        .register_app(
            "Guildhall",
            std::slice::from_ref(&redirect),
            Some("https://hall.example"),
            None,
        )
        .await
        .unwrap();
    let registered = app.scopes.clone().unwrap();
    assert_eq!(registered, GUILDHALL_SCOPES);
    assert!(!format!("{app:?}").contains(app.client_secret.expose()));

    let pkce = Pkce::generate().unwrap();
    let url = anon
        .authorize_url(&app, &redirect, "st4te", Some(&pkce), None)
        .unwrap();
    // The admin's browser: the fake auto-approves and redirects.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = browser.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(&redirect));
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st4te");

    let wrong = Pkce::generate().unwrap();
    let err = anon
        .exchange_code(&app, &q["code"], &redirect, Some(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { status: 400, error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
    let grant = anon
        .exchange_code(&app, &q["code"], &redirect, Some(&pkce))
        .await
        .unwrap();
    assert_eq!(grant.scopes(), GUILDHALL_SCOPES);
    assert!(!format!("{grant:?}").contains(grant.access_token.expose()));

    let c = anon.with_token(grant.access_token.clone());
    let report = c.check_access(Some(&grant.scopes())).await.unwrap();
    assert!(report.is_complete(), "{:?}", report.problems());

    anon.revoke_token(&app, &grant.access_token).await.unwrap();
    assert!(matches!(
        c.verify_app().await.unwrap_err(),
        Error::InvalidToken { .. }
    ));
    let mut bad_app = app.clone();
    bad_app.client_secret = Secret::new("nope");
    let err = anon
        .revoke_token(&bad_app, &grant.access_token)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::OAuth { status: 401, error, .. } if error == "invalid_client"));
    let err = anon
        .register_app("x", &["not a uri".to_owned()], None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { message, .. } if message.contains("absolute URI")),
        "{err:?}"
    );
}

#[tokio::test]
async fn oauth_metadata_404_means_an_older_server() {
    let fake = base().oauth_metadata(false).start().await.unwrap();
    let anon = Client::new(fake.url(), None, config()).unwrap();
    assert_eq!(anon.oauth_metadata().await.unwrap(), None);
}

// ---------- error classes ----------

#[tokio::test]
async fn scope_permission_and_token_errors_are_typed() {
    let fake = base()
        .token("reports-only", &["admin:read:reports"], Some(1))
        .start()
        .await
        .unwrap();
    let err = client(&fake, "reports-only")
        .all_domain_blocks()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingScope { scope, .. } if scope == "admin:read:domain_blocks"),
        "{err:?}"
    );
    let err = client(&fake, "mod").all_domain_blocks().await.unwrap_err();
    assert!(
        matches!(err, Error::MissingPermission { permission, .. } if permission == Permissions::MANAGE_FEDERATION)
    );
    let err = client(&fake, "revoked").report("1").await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken { .. }));
    // Messages say what and where.
    assert!(err.to_string().contains("GET /api/v1/admin/reports/1"));
}

#[tokio::test]
async fn recovers_from_429_and_reports_a_persistent_one() {
    let fake = seeded().await;
    let c = client(&fake, "owner");
    fake.inject_429(2, Duration::from_millis(20));
    let r = c.report("1").await.unwrap();
    assert_eq!(r.id, "1");
    assert_eq!(statuses(&fake), vec![429, 429, 200]);
    fake.inject_429(10, Duration::from_millis(5));
    let err = c.report("1").await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { reset: Some(_), .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn waits_for_the_window_instead_of_hitting_the_limit() {
    let fake = seeded().await;
    fake.set_rate_limit(2, Duration::from_millis(800));
    let c = client(&fake, "owner");
    for _ in 0..5 {
        c.report("1").await.unwrap();
    }
    let s = statuses(&fake);
    assert_eq!(s.len(), 5);
    assert!(s.iter().all(|&x| x == 200), "never hit the limit: {s:?}");
    let rl = c.rate_limit().await.unwrap();
    assert_eq!(rl.limit, Some(2));
}

#[tokio::test]
async fn gives_up_without_sending_when_the_reset_is_too_far() {
    let fake = seeded().await;
    fake.set_rate_limit(1, Duration::from_secs(600));
    let c = client(&fake, "owner");
    c.report("1").await.unwrap();
    let err = c.report("1").await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { reset: Some(_), .. }));
    assert_eq!(fake.requests().len(), 1, "the second request was not sent");
}

#[tokio::test]
async fn recovers_from_an_outage_and_reports_a_lasting_one() {
    let fake = seeded().await;
    let c = client(&fake, "owner");
    fake.fail_next(2, 503);
    assert_eq!(c.report("1").await.unwrap().id, "1");
    assert_eq!(statuses(&fake), vec![503, 503, 200]);

    fake.set_outage(Some(503));
    let err = c.report("1").await.unwrap_err();
    match &err {
        Error::ServerError {
            status, message, ..
        } => {
            assert_eq!(*status, 503);
            assert!(message.contains("HTML page"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    fake.set_outage(None);
    assert!(c.report("1").await.is_ok());

    // A non-idempotent write is not repeated after a 5xx.
    let before = fake.requests().len();
    fake.fail_next(1, 502);
    let err = c
        .account_action("4", &AccountAction::new(ActionType::Silence))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ServerError { status: 502, .. }));
    assert_eq!(fake.requests().len() - before, 1);
}

#[tokio::test]
async fn unreachable_and_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = Client::new(
        &format!("http://127.0.0.1:{port}"),
        Some(Secret::new("t")),
        config(),
    )
    .unwrap();
    let err = c.instance().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");

    let fake = seeded().await;
    let cfg = ClientConfig {
        timeout: Duration::from_millis(300),
        max_retries: 0,
        ..config()
    };
    let c = Client::new(fake.url(), Some(Secret::new("owner")), cfg).unwrap();
    fake.delay_next(Duration::from_secs(3));
    let err = c.instance().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn bad_responses_are_typed_errors() {
    let fake = seeded().await;
    let c = client(&fake, "owner");
    let path = "/api/v1/admin/reports/1";
    let expect_bad = |err: Error, needle: &str| match err {
        Error::BadResponse { reason, .. } => {
            assert!(reason.contains(needle), "{reason} lacks {needle}")
        }
        other => panic!("{other:?}"),
    };

    fake.inject_response(path, Injected::json(200, r#"{"id":"1","action_taken":fal"#));
    expect_bad(c.report("1").await.unwrap_err(), "truncated JSON");

    fake.inject_response(
        path,
        Injected::html(200, "<!DOCTYPE html><html><body>Maintenance</body></html>"),
    );
    expect_bad(c.report("1").await.unwrap_err(), "HTML page");

    let mut wrong = fake.report_json(1).unwrap();
    wrong["target_account"]["suspended"] = serde_json::json!("yes");
    fake.inject_response(path, Injected::json(200, wrong.to_string()));
    expect_bad(c.report("1").await.unwrap_err(), "target_account.suspended");

    fake.inject_response(path, Injected::json(200, "[1, 2, 3]"));
    expect_bad(c.report("1").await.unwrap_err(), "unexpected JSON");

    fake.inject_response(path, Injected::json(200, ""));
    expect_bad(c.report("1").await.unwrap_err(), "empty body");

    let huge = format!("{{\"id\":\"1\",\"comment\":\"{}\"}}", "x".repeat(200_000));
    fake.inject_response(path, Injected::json(200, huge));
    assert!(matches!(
        c.report("1").await.unwrap_err(),
        Error::BodyTooLarge { limit: 65536, .. }
    ));

    fake.inject_response(
        "/api/v1/admin/domain_blocks",
        Injected::json(422, r#"{"error":"x","existing_domain_block":{"id":7}}"#),
    );
    expect_bad(
        c.create_domain_block("a.example", &DomainBlockParams::default())
            .await
            .unwrap_err(),
        "existing_domain_block",
    );
    // The client keeps working afterwards.
    assert_eq!(c.report("1").await.unwrap().id, "1");
}

#[tokio::test]
async fn tolerates_gotosocial() {
    let fake = base()
        .flavor(Flavor::GoToSocial)
        .report(ReportSeed::new(1, 3, 4))
        .start()
        .await
        .unwrap();
    let c = client(&fake, "owner");
    let b = c
        .create_domain_block(
            "gts.example",
            &DomainBlockParams {
                severity: Some(Severity::Silence),
                ..DomainBlockParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.severity, None);
    assert_eq!(b.effective_severity(), Severity::Suspend);
    assert_eq!(b.digest, None);
    let again = c
        .create_domain_block("gts.example", &DomainBlockParams::default())
        .await
        .unwrap();
    assert_eq!(again.id, b.id, "GoToSocial answers the existing block");
    assert_eq!(c.all_domain_blocks().await.unwrap().len(), 1);
    c.delete_domain_block(&b.id).await.unwrap();
    assert!(matches!(
        c.domain_block(&b.id).await.unwrap_err(),
        Error::ServerError { status: 500, .. }
    ));
    c.account_action(
        "4",
        &AccountAction::new(ActionType::Suspend).for_report("1"),
    )
    .await
    .unwrap();
    assert_eq!(fake.report_resolved(1), Some(false));
    let err = c
        .account_action("4", &AccountAction::new(ActionType::Silence))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { status: 400, message, .. } if message.contains("not supported")),
        "{err:?}"
    );
    assert!(matches!(
        c.assign_report_to_self("1").await.unwrap_err(),
        Error::NotFound { .. }
    ));
    let r = c.resolve_report("1", Some("handled")).await.unwrap();
    assert_eq!(r.action_taken_comment.as_deref(), Some("handled"));
    let narrow = base()
        .flavor(Flavor::GoToSocial)
        .token("narrow", &["admin:read:reports"], Some(1))
        .start()
        .await
        .unwrap();
    let err = client(&narrow, "narrow")
        .all_domain_blocks()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingScope { .. }), "{err:?}");
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let fake = base().start().await.unwrap();
    let c = client(&fake, "super-secret-token-value");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("super-secret-token-value"), "{dbg}");
    assert!(dbg.contains(fake.url().trim_start_matches("http://")));
}

#[tokio::test]
async fn manage_users_role_is_enough_for_account_reads() {
    let fake = base()
        .account(
            AccountSeed::local(9, "users").with_role("Users", MANAGE_USERS | MANAGE_FEDERATION),
        )
        .token("users", ADMIN_SCOPES, Some(9))
        .start()
        .await
        .unwrap();
    let r = client(&fake, "users").check_access(None).await.unwrap();
    assert_eq!(
        r.permissions,
        Some(Permissions(MANAGE_USERS | MANAGE_FEDERATION))
    );
    assert_eq!(r.missing_permissions(), vec![Permissions::MANAGE_REPORTS]);
    assert_eq!(r.missing_scopes(), Vec::<&str>::new());
}

// ---------- webhooks ----------

mod webhooks {
    use super::*;
    use guildhall_fake_mastodon::WebhookFault;
    use guildhall_mastodon::webhook::{
        parse_event, sign, verify_and_parse, verify_signature, SignatureError, WebhookError,
        WebhookEvent,
    };

    const BODY: &[u8] = br#"{"event":"report.created","created_at":"2023-10-26T13:34:00.351Z","object":{"id":"3","action_taken":false,"category":"spam","comment":"","forwarded":false,"account":{"id":"1","username":"a","domain":null},"target_account":{"id":"2","username":"b","domain":"x.example","email":null,"ips":null},"assigned_account":null,"statuses":null,"rules":null}}"#;

    #[test]
    fn valid_tampered_wrong_secret_missing_malformed() {
        let header = sign(b"secret", BODY);
        assert!(header.starts_with("sha256=") && header.len() == 71);
        assert_eq!(verify_signature(b"secret", BODY, Some(&header)), Ok(()));
        let upper = header.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(verify_signature(b"secret", BODY, Some(&upper)), Ok(()));
        let mut tampered = BODY.to_vec();
        tampered[40] ^= 1;
        assert_eq!(
            verify_signature(b"secret", &tampered, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", BODY, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"secret", BODY, None),
            Err(SignatureError::Missing)
        );
        for bad in [
            "",
            "sha1=abc",
            "sha256=zz",
            "sha256=",
            &header[..70],
            "sha256=é",
        ] {
            assert_eq!(
                verify_signature(b"secret", BODY, Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        match verify_and_parse(b"secret", BODY, Some(&header)).unwrap() {
            WebhookEvent::ReportCreated { report, created_at } => {
                assert_eq!(report.id, "3");
                assert!(report.statuses.is_empty(), "null statuses tolerated");
                assert_eq!(created_at.as_deref(), Some("2023-10-26T13:34:00.351Z"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            verify_and_parse(b"secret", &tampered, Some(&header)),
            Err(WebhookError::Signature(SignatureError::Mismatch))
        ));
    }

    #[test]
    fn payloads_other_events_and_garbage() {
        assert_eq!(
            parse_event(br#"{"event":"account.created","object":{}}"#).unwrap(),
            WebhookEvent::Other {
                event: "account.created".into()
            }
        );
        let err = parse_event(br#"{"event":"report.updated","object":{"id":"1"}}"#).unwrap_err();
        assert!(err.to_string().contains("account"), "{err}");
        assert!(parse_event(b"<html>").is_err());
        assert!(parse_event(br#"{"event":"report.created","object":{"id":"#).is_err());
    }

    #[tokio::test]
    async fn deliveries_from_the_fake_verify_and_parse() {
        use axum::routing::post;
        type Got = Result<WebhookEvent, String>;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Got>();
        let app = axum::Router::new().route(
            "/hooks/1",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let tx = tx.clone();
                    async move {
                        let sig = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
                        let got = verify_and_parse(b"per-instance", &body, sig)
                            .map_err(|e| e.to_string());
                        let status = if got.is_ok() { 200 } else { 401 };
                        let _ = tx.send(got);
                        axum::http::StatusCode::from_u16(status).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let fake = seeded().await;
        fake.set_webhook(&format!("http://{addr}/hooks/1"), b"per-instance");
        fake.file_report(ReportSeed::new(40, 3, 4).category("legal"));
        match recv(&mut rx).await.unwrap() {
            WebhookEvent::ReportCreated { report, .. } => {
                assert_eq!(report.id, "40");
                assert_eq!(report.category, ReportCategory::Legal);
            }
            other => panic!("{other:?}"),
        }
        client(&fake, "owner")
            .resolve_report("40", None)
            .await
            .unwrap();
        match recv(&mut rx).await.unwrap() {
            WebhookEvent::ReportUpdated { report, .. } => assert!(report.action_taken),
            other => panic!("{other:?}"),
        }
        fake.inject_webhook_fault(WebhookFault::BadSignature);
        client(&fake, "owner").reopen_report("40").await.unwrap();
        let got = recv(&mut rx).await;
        assert!(got.unwrap_err().contains("does not match"));
        let d = fake.wait_for_deliveries(3, Duration::from_secs(5)).await;
        assert!(
            d.iter().any(|x| x.status == Some(401)),
            "the refused delivery was seen as refused: {d:?}"
        );
    }
}

/// Waits for the next webhook the receiver saw (bounded, so a broken emitter fails, not hangs).
async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook delivery within 10 s")
        .expect("receiver open")
}

/// A one-connection raw HTTP server that answers with `response` bytes, for answers the fake
/// cannot produce (chunked bodies without a length, connections cut mid-body).
async fn raw_server(response: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = sock.write_all(&response).await;
        let _ = sock.shutdown().await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn huge_chunked_body_without_length_is_capped() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = "x".repeat(16 * 1024);
    for _ in 0..8 {
        resp.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    let url = raw_server(resp).await;
    let c = Client::new(&url, Some(Secret::new("t")), config()).unwrap();
    let err = c.instance().await.unwrap_err();
    assert!(
        matches!(err, Error::BodyTooLarge { limit: 65536, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_cut_off_mid_way_is_a_bad_response() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"domain\":\"x.example\",\"tit".to_vec();
    let url = raw_server(resp).await;
    let cfg = ClientConfig {
        max_retries: 0,
        ..config()
    };
    let c = Client::new(&url, Some(Secret::new("t")), cfg).unwrap();
    let err = c.instance().await.unwrap_err();
    assert!(
        matches!(&err, Error::BadResponse { reason, .. } if reason.contains("cut off")),
        "{err:?}"
    );
}
