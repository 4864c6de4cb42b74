//! The authorisation table: for EVERY route of the router and every kind of caller — each
//! role in the organisation, a person of another organisation, a site administrator who is not
//! a member, and an anonymous visitor — the expected allow or deny, checked by real requests.
//! The test fails when a route exists without an entry here (or an entry names no route).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "authz_tables/lists.rs"]
mod lists_table;
#[path = "authz_tables/moderation.rs"]
mod moderation_table;

use std::collections::{BTreeSet, HashMap};

use axum::http::{Method, StatusCode};
use common::*;
use guildhall_core::{Role, Scope};
use guildhall_db::invitations::NewInvitation;
use guildhall_db::{db_test, Db};
use guildhall_web::auth::Access;
use guildhall_web::routes::{RouteId, Surface, ROUTES};

/// Who may use each route: `all` (even anonymous), `signed` (anyone signed in), `site` (site
/// administrators), `members` (every role of the organisation), `nobody`, or a list of roles.
/// The feature modules' routes are in `authz_tables/` (see [`expected`]).
const CORE_EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "all"),
    ("GET", "/readyz", "all"),
    ("GET", "/metrics", "all"),
    ("GET", "/api/openapi.json", "all"),
    ("GET", "/static/htmx.min.js", "all"),
    ("GET", "/static/app.css", "all"),
    ("GET", "/", "signed"),
    ("GET", "/login", "all"),
    ("POST", "/login", "all"),
    ("POST", "/logout", "all"),
    // Accounts exist, so the setup page is closed to everyone (tested open in `setup.rs`).
    ("GET", "/setup", "nobody"),
    ("POST", "/setup", "nobody"),
    ("GET", "/orgs", "signed"),
    ("POST", "/orgs", "site"),
    ("POST", "/switch", "signed"),
    ("GET", "/orgs/{org}", "members"),
    ("POST", "/orgs/{org}/members/{account}/role", "owner admin"),
    (
        "POST",
        "/orgs/{org}/members/{account}/remove",
        "owner admin",
    ),
    ("GET", "/orgs/{org}/invitations", "owner admin"),
    ("POST", "/orgs/{org}/invitations", "owner admin"),
    ("POST", "/orgs/{org}/invitations/{id}/revoke", "owner admin"),
    ("GET", "/invite/{token}", "all"),
    ("POST", "/invite/{token}", "all"),
    ("GET", "/tokens", "signed"),
    ("POST", "/tokens", "signed"),
    ("POST", "/tokens/{id}/revoke", "signed"),
    ("GET", "/orgs/{org}/audit", "owner admin"),
    ("GET", "/admin/jobs", "site"),
    ("POST", "/admin/jobs/{id}/retry", "site"),
    ("GET", "/admin/audit", "site"),
    ("GET", "/api/v1/me", "signed"),
    ("GET", "/api/v1/orgs", "signed"),
    ("POST", "/api/v1/orgs", "site"),
    ("GET", "/api/v1/orgs/{org}", "members"),
    ("GET", "/api/v1/orgs/{org}/members", "members"),
    ("PUT", "/api/v1/orgs/{org}/members/{account}", "owner admin"),
    (
        "DELETE",
        "/api/v1/orgs/{org}/members/{account}",
        "owner admin",
    ),
    ("GET", "/api/v1/orgs/{org}/invitations", "owner admin"),
    ("POST", "/api/v1/orgs/{org}/invitations", "owner admin"),
    (
        "DELETE",
        "/api/v1/orgs/{org}/invitations/{id}",
        "owner admin",
    ),
    ("POST", "/api/v1/invitations/accept", "signed"),
    ("GET", "/api/v1/tokens", "signed"),
    ("POST", "/api/v1/tokens", "signed"),
    ("DELETE", "/api/v1/tokens/{id}", "signed"),
    ("GET", "/api/v1/orgs/{org}/audit", "owner admin"),
    ("GET", "/api/v1/audit/verify", "site"),
    ("GET", "/api/v1/jobs", "site"),
    ("POST", "/api/v1/jobs/{id}/retry", "site"),
    ("GET", "/orgs/{org}/instance", "owner admin"),
    ("POST", "/orgs/{org}/instance/oauth", "owner admin"),
    ("GET", "/orgs/{org}/instance/callback", "owner admin"),
    ("POST", "/orgs/{org}/instance/token", "owner admin"),
    ("POST", "/orgs/{org}/instance/check", "owner admin"),
    ("POST", "/orgs/{org}/instance/disconnect", "owner admin"),
    ("POST", "/orgs/{org}/instance/webhook-secret", "owner admin"),
    ("GET", "/api/v1/orgs/{org}/instance", "owner admin"),
    ("PUT", "/api/v1/orgs/{org}/instance", "owner admin"),
    ("POST", "/api/v1/orgs/{org}/instance/check", "owner admin"),
    ("DELETE", "/api/v1/orgs/{org}/instance", "owner admin"),
    (
        "POST",
        "/api/v1/orgs/{org}/instance/webhook-secret",
        "owner admin",
    ),
    // Only deliveries signed with the instance's secret (tested in `instances.rs`).
    ("POST", "/webhooks/mastodon/{id}", "nobody"),
];

/// Every entry: the core table and each feature module's.
fn expected() -> Vec<(&'static str, &'static str, &'static str)> {
    CORE_EXPECTED
        .iter()
        .chain(moderation_table::EXPECTED)
        .chain(lists_table::EXPECTED)
        .copied()
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// Owner of another organisation, not a member of this one.
    OtherOrg,
    /// A site administrator who is not a member of this organisation.
    SiteAdmin,
    Member(Role),
}

fn callers() -> Vec<Caller> {
    let mut v = vec![Caller::Anonymous, Caller::OtherOrg, Caller::SiteAdmin];
    v.extend(Role::ALL.iter().map(|r| Caller::Member(*r)));
    v
}

fn expected_allow(rule: &str, c: Caller) -> bool {
    match rule {
        "all" => true,
        "nobody" => false,
        "signed" => c != Caller::Anonymous,
        "site" => c == Caller::SiteAdmin,
        "members" => matches!(c, Caller::Member(_)),
        roles => match c {
            Caller::Member(r) => roles.split(' ').any(|n| n == r.as_str()),
            _ => false,
        },
    }
}

#[test]
fn the_table_covers_every_route_and_nothing_else() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let expected = expected();
    let table: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&table).collect();
    let extra: Vec<_> = table.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes without an authorisation entry: {missing:?}"
    );
    assert!(extra.is_empty(), "entries naming no route: {extra:?}");
    assert_eq!(expected.len(), ROUTES.len(), "an entry is listed twice");
}

/// What one caller's probes need: ids in a fresh organisation.
struct Fixture {
    client: Client,
    ids: HashMap<&'static str, String>,
}

async fn fixture(db: &Db, app: &axum::Router, caller: Caller, n: usize) -> Fixture {
    let founder = account(db, &format!("founder{n}@a.example"), false).await;
    let org_a = org(db, &format!("Org A {n}"), founder).await;
    let target = account(db, &format!("target{n}@a.example"), false).await;
    db.add_member(org_a, target, Role::Member).await.unwrap();
    // A second one for the API's removal (the page's removal takes the first).
    let target2 = account(db, &format!("target2-{n}@a.example"), false).await;
    db.add_member(org_a, target2, Role::Member).await.unwrap();
    let inv = NewInvitation {
        org_id: org_a,
        role: Role::Member,
        email: None,
        invited_by: founder,
        ttl: std::time::Duration::from_secs(3600),
    };
    let (_, revocable) = db.create_invitation(&inv).await.unwrap();
    let (accept_token, _) = db.create_invitation(&inv).await.unwrap();
    let job = make_dead_job(db, n).await;

    let (client, token_owner) = match caller {
        Caller::Anonymous => (Client::new(app.clone()), founder),
        Caller::OtherOrg => {
            let p = account(db, &format!("other{n}@b.example"), false).await;
            org(db, &format!("Org B {n}"), p).await;
            (signed_in(db, app, p).await, p)
        }
        Caller::SiteAdmin => {
            let p = account(db, &format!("site{n}@a.example"), true).await;
            (signed_in(db, app, p).await, p)
        }
        Caller::Member(role) => {
            let p = account(db, &format!("{role}{n}@a.example"), false).await;
            db.add_member(org_a, p, role).await.unwrap();
            (signed_in(db, app, p).await, p)
        }
    };
    let (_, tok) = db
        .create_api_token(token_owner, &"probe".parse().unwrap(), &[Scope::Read], None)
        .await
        .unwrap();
    let mut client = client;
    if caller == Caller::Anonymous {
        // The anonymous double-submit CSRF cookie, so that CSRF is not what refuses.
        client.load_csrf("/login").await;
    }
    let mut ids = HashMap::new();
    ids.insert("org", org_a.to_string());
    ids.insert("account", target.to_string());
    ids.insert("account2", target2.to_string());
    ids.insert("invitation", revocable.id.to_string());
    ids.insert("token", accept_token.expose().to_owned());
    ids.insert("api_token", tok.id.to_string());
    ids.insert("job", job.to_string());
    moderation_table::add_ids(db, org_a, n, &mut ids).await;
    lists_table::add_ids(db, org_a, n, &mut ids).await;
    Fixture { client, ids }
}

/// A job that has used up its attempts.
async fn make_dead_job(db: &Db, n: usize) -> i64 {
    dead_job(db, &format!("probe-{n}")).await
}

fn concrete_path(path: &str, id: RouteId, ids: &HashMap<&'static str, String>) -> String {
    let id_kind = match id {
        RouteId::RevokeInvitation | RouteId::ApiRevokeInvitation => "invitation",
        RouteId::RevokeToken | RouteId::ApiRevokeToken => "api_token",
        _ => "job",
    };
    let account = match id {
        RouteId::ApiSetRole | RouteId::ApiRemoveMember => "account2",
        _ => "account",
    };
    let mut path = path
        .replace("{org}", &ids["org"])
        .replace("{account}", &ids[account])
        .replace("{token}", &ids["token"])
        .replace("{id}", &ids[id_kind]);
    // Any other parameter is named after its fixture id (e.g. `{case}`: see `authz_tables/`).
    while let Some(start) = path.find('{') {
        let end = start + path[start..].find('}').expect("a closing brace");
        let name = &path[start + 1..end];
        let value = ids
            .get(name)
            .unwrap_or_else(|| panic!("no fixture id for {{{name}}}: add it in authz_tables/"));
        path.replace_range(start..=end, &value.clone());
    }
    path
}

fn is_denied(r: &Resp) -> bool {
    matches!(
        r.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) || (r.status == StatusCode::SEE_OTHER
        && r.location().is_some_and(|l| l.starts_with("/login?next")))
}

db_test!(
    every_route_allows_and_denies_as_the_table_says,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let rules: HashMap<(String, &str), &str> = expected()
            .into_iter()
            .map(|(m, p, r)| ((m.to_string(), p), r))
            .collect();
        // Routes that change who the caller is go last: accepting an invitation (makes the caller
        // a member) and signing out.
        let mut order: Vec<_> = ROUTES.iter().collect();
        order.sort_by_key(|r| match r.id {
            RouteId::AcceptInvitation => 1,
            RouteId::Logout => 2,
            _ => 0,
        });
        let mut failures = Vec::new();
        for (n, caller) in callers().into_iter().enumerate() {
            let mut fx = fixture(&db, &app, caller, n).await;
            for spec in &order {
                let Some(rule) = rules.get(&(spec.method.to_string(), spec.path)) else {
                    panic!(
                        "{} {} has no entry in EXPECTED: add who may use it",
                        spec.method, spec.path
                    );
                };
                let path = concrete_path(spec.path, spec.id, &fx.ids);
                // An empty body: when the caller is allowed, the handler refuses it with 400 (or
                // acts, for routes without fields); a refusal by the guard is 401/403/404.
                let r = match spec.surface {
                    Surface::Page if spec.method != Method::GET => {
                        fx.client.post_form(&path, &[]).await
                    }
                    Surface::Api if spec.method != Method::GET => {
                        fx.client
                            .json(spec.method.clone(), &path, serde_json::json!({}))
                            .await
                    }
                    _ => {
                        fx.client
                            .send(spec.method.clone(), &path, None, Vec::new(), &[])
                            .await
                    }
                };
                let want = expected_allow(rule, caller);
                let got = !is_denied(&r);
                if want != got {
                    failures.push(format!(
                        "{caller:?} {} {}: expected {}, got {} {}",
                        spec.method,
                        spec.path,
                        if want { "allow" } else { "deny" },
                        r.status,
                        r.body.chars().take(160).collect::<String>()
                    ));
                }
                if r.status.is_server_error() {
                    failures.push(format!(
                        "{caller:?} {} {}: {}",
                        spec.method, spec.path, r.status
                    ));
                }
                // A person of another organisation learns nothing: the same 404 as for an
                // organisation that does not exist.
                if caller == Caller::OtherOrg && matches!(spec.access, Access::Org(_)) {
                    if r.status != StatusCode::NOT_FOUND {
                        failures.push(format!("other org got {} on {}", r.status, spec.path));
                    }
                    let missing = path.replacen(&fx.ids["org"], "999999", 1);
                    let r2 = match spec.method {
                        Method::GET => fx.client.get(&missing).await,
                        _ if spec.surface == Surface::Page => {
                            fx.client.post_form(&missing, &[]).await
                        }
                        _ => {
                            fx.client
                                .json(spec.method.clone(), &missing, serde_json::json!({}))
                                .await
                        }
                    };
                    if (r2.status, &r2.body) != (r.status, &r.body) {
                        failures.push(format!(
                            "other org's 404 differs from a missing org's on {}",
                            spec.path
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
);

db_test!(token_scopes_limit_what_a_token_may_do, |db| async move {
    let app = guildhall_web::router(state(&db));
    let owner = account(&db, "owner@a.example", true).await;
    let org_a = org(&db, "Org A", owner).await;
    let mut c = Client::new(app.clone());
    let (read_only, _) = db
        .create_api_token(owner, &"ro".parse().unwrap(), &[Scope::Read], None)
        .await
        .unwrap();
    c.bearer = Some(read_only.expose().to_owned());
    assert_eq!(
        c.get(&format!("/api/v1/orgs/{org_a}/members")).await.status,
        StatusCode::OK
    );
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org_a}/invitations"),
            serde_json::json!({"role": "member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_code(), "forbidden");
    // A read token may not mint an admin token.
    let r = c
        .json(
            Method::POST,
            "/api/v1/tokens",
            serde_json::json!({"name": "x", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Unknown and revoked tokens are 401.
    c.bearer = Some("gh_nonsense".to_owned());
    assert_eq!(c.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
    let (admin, tok) = db
        .create_api_token(owner, &"adm".parse().unwrap(), &[Scope::Admin], None)
        .await
        .unwrap();
    c.bearer = Some(admin.expose().to_owned());
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org_a}/invitations"),
            serde_json::json!({"role": "moderator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.json()["link"].as_str().unwrap().contains("/invite/inv_"));
    let r = c
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", tok.id),
            None,
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(c.get("/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
});
