//! HTTP behaviour on both backends: bad input on every route (400 with a field, 413 over the
//! limit, never 500), CSRF refusals, the one-time local setup page, probes, metrics, the
//! OpenAPI document, the audit log and failed jobs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use axum::http::{Method, StatusCode};
use common::*;
use guildhall_db::db_test;
use guildhall_web::auth::Access;
use guildhall_web::routes::{BodySize, RouteSpec, Surface, ROUTES};

/// `spec.path` with `{org}` set to `org`, `{token}` to an invitation-like token and every
/// other `{param}` to `1`, so handlers get past their path parameters to the body checks.
fn concrete(spec: &RouteSpec, org: &str) -> String {
    let mut out = String::new();
    let mut rest = spec.path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(match &rest[start + 1..start + len] {
            "org" => org,
            "token" => "inv_x",
            _ => "1",
        });
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The tests' app, with an upload limit above the body limit (but small enough to send).
fn upload_state(db: &guildhall_db::Db) -> guildhall_web::AppState {
    let base = state(db);
    let config = guildhall_web::WebConfig {
        upload_limit: 4 * BODY_LIMIT,
        ..(*base.config).clone()
    };
    guildhall_web::AppState::new(db.clone(), config)
}

/// Sends `spec` a malformed body and one byte over its own limit; checks 400 naming a field
/// and 413. An upload route must also take a body over the general limit (no 413).
async fn check_bad_bodies(
    c: &mut Client,
    spec: &RouteSpec,
    path: &str,
    config: &guildhall_web::WebConfig,
    failures: &mut Vec<String>,
) {
    let csrf = c.csrf.clone().unwrap_or_default();
    let hdr = [("x-csrf-token", csrf.as_str())];
    let (ct, bad): (&str, &[u8]) = match spec.surface {
        Surface::Api => ("application/json", b"{\"name\": "),
        _ => ("application/x-www-form-urlencoded", b"name=%ZZ&x=1"),
    };
    let r = c
        .send(spec.method.clone(), path, Some(ct), bad.to_vec(), &hdr)
        .await;
    let what = format!("{} {}", spec.method, spec.path);
    if r.status != StatusCode::BAD_REQUEST {
        failures.push(format!(
            "{what}: malformed body gave {} {}",
            r.status, r.body
        ));
    } else if spec.path.starts_with("/webhooks/") {
        // Plain text for the sending server.
        if !r.body.contains("(field: ") || r.body.contains('<') {
            failures.push(format!(
                "{what}: the plain answer names no field: {}",
                r.body
            ));
        }
    } else if !r.body.starts_with('{') {
        if !r.body.contains("Field: <code>") {
            failures.push(format!("{what}: the error page names no field"));
        }
    } else {
        let j = r.json();
        if j["error"]["field"].as_str().is_none()
            || !j["error"]["code"]
                .as_str()
                .unwrap_or("")
                .starts_with("malformed_")
        {
            failures.push(format!("{what}: error without field/code: {j}"));
        }
    }
    let limit = spec.body_limit(config);
    let big = vec![b'a'; limit + 1];
    let r = c.send(spec.method.clone(), path, Some(ct), big, &hdr).await;
    if r.status != StatusCode::PAYLOAD_TOO_LARGE {
        failures.push(format!("{what}: oversized body gave {}", r.status));
    }
    if spec.path.starts_with("/webhooks/") && r.body.contains('<') {
        failures.push(format!(
            "{what}: an HTML page for the sending server: {}",
            r.body
        ));
    }
    if spec.body == BodySize::Upload {
        // Over the general limit but within the upload limit: read (then refused as
        // malformed, not as too large).
        let r = c
            .send(
                spec.method.clone(),
                path,
                Some(ct),
                vec![b'a'; config.body_limit + 1],
                &hdr,
            )
            .await;
        if r.status == StatusCode::PAYLOAD_TOO_LARGE {
            failures.push(format!("{what}: upload route refused body_limit+1"));
        }
        // A form with a file: a broken multipart body is 400 naming a field, one over the
        // route's limit is 413.
        let mp = "multipart/form-data; boundary=gh-test";
        let r = c
            .send(
                spec.method.clone(),
                path,
                Some(mp),
                b"--gh-test\r\nno headers, no end".to_vec(),
                &hdr,
            )
            .await;
        if r.status != StatusCode::BAD_REQUEST {
            failures.push(format!("{what}: malformed multipart gave {}", r.status));
        }
        let mut big = b"--gh-test\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.csv\"\r\n\r\n".to_vec();
        big.resize(limit + 1, b'a');
        let r = c.send(spec.method.clone(), path, Some(mp), big, &hdr).await;
        if r.status != StatusCode::PAYLOAD_TOO_LARGE {
            failures.push(format!("{what}: oversized multipart gave {}", r.status));
        }
    }
    // A well-formed body without the required fields: 400 naming one of them.
    let required: Vec<&str> = spec
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    if !required.is_empty() {
        let r = match spec.surface {
            Surface::Api => {
                c.json(spec.method.clone(), path, serde_json::json!({}))
                    .await
            }
            _ => c.post_form(path, &[]).await,
        };
        let field_ok = match spec.surface {
            Surface::Api => {
                r.status == StatusCode::BAD_REQUEST
                    && required.contains(&r.json()["error"]["field"].as_str().unwrap_or(""))
            }
            _ => {
                r.status == StatusCode::BAD_REQUEST
                    && required
                        .iter()
                        .any(|f| r.body.contains(&format!("Field: <code>{f}</code>")))
            }
        };
        if !field_ok {
            failures.push(format!(
                "{what}: missing fields gave {} {}",
                r.status,
                r.body.chars().take(200).collect::<String>()
            ));
        }
    }
}

db_test!(
    every_route_refuses_malformed_and_oversized_bodies,
    |db| async move {
        let st = upload_state(&db);
        let config = (*st.config).clone();
        assert!(config.upload_limit > config.body_limit);
        let app = guildhall_web::router(st);
        let mut failures = Vec::new();
        // The setup routes first, while no account exists (from the local machine).
        let mut anon = Client::new(app.clone());
        anon.load_csrf("/setup").await;
        for spec in ROUTES.iter().filter(|r| r.access == Access::Setup) {
            check_bad_bodies(&mut anon, spec, spec.path, &config, &mut failures).await;
        }
        // Everything else as a site administrator who owns the organisation.
        let admin = account(&db, "admin@a.example", true).await;
        let org_a = org(&db, "Org A", admin).await.to_string();
        let mut c = signed_in(&db, &app, admin).await;
        for spec in ROUTES.iter().filter(|r| r.access != Access::Setup) {
            let path = concrete(spec, &org_a);
            check_bad_bodies(&mut c, spec, &path, &config, &mut failures).await;
        }
        // The upload routes exist (and only they take the larger limit).
        assert!(ROUTES.iter().filter(|r| r.body == BodySize::Upload).count() >= 2);
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
);

db_test!(
    state_changing_forms_need_the_sessions_csrf_token,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let admin = account(&db, "admin@a.example", true).await;
        let mut c = Client::new(app.clone());
        c.login("admin@a.example", PASSWORD).await;
        let good = c.csrf.clone().unwrap();
        // Without a token.
        c.csrf = None;
        let r = c
            .post_form("/orgs", &[("name", "X"), ("kind", "cooperative")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.body.contains("csrf_failed"));
        // With a wrong one (another session's).
        let other = signed_in(&db, &app, admin).await;
        c.csrf = other.csrf.clone();
        assert_ne!(c.csrf.as_deref(), Some(good.as_str()));
        let r = c
            .post_form("/orgs", &[("name", "X"), ("kind", "cooperative")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(db.organisations_of(admin).await.unwrap().is_empty());
        // With the right one.
        c.csrf = Some(good);
        let r = c
            .post_form("/orgs", &[("name", "X"), ("kind", "cooperative")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(db.organisations_of(admin).await.unwrap().len(), 1);
        // The anonymous login form needs its double-submit cookie too.
        let mut anon = Client::new(app.clone());
        let r = anon
            .post_form(
                "/login",
                &[("email", "admin@a.example"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // The JSON API needs no CSRF token (bearer tokens are not sent by browsers on their own).
        let mut api = signed_in(&db, &app, admin).await;
        api.cookies.clear();
        let r = api
            .json(
                Method::POST,
                "/api/v1/orgs",
                serde_json::json!({"name": "Y", "kind": "instance", "domain": "y.example"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // A session cookie alone does not authenticate the JSON API.
        let mut cookie_only = signed_in(&db, &app, admin).await;
        cookie_only.bearer = None;
        assert_eq!(
            cookie_only.get("/api/v1/me").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
);

db_test!(setup_page_is_local_and_one_time, |db| async move {
    let app = guildhall_web::router(state(&db));
    let mut remote = Client::new(app.clone());
    // Only the peer address differs; no traffic leaves the process.
    remote.peer = SocketAddr::from(([192, 0, 2, 7], 50000));
    assert_eq!(remote.get("/setup").await.status, StatusCode::NOT_FOUND);
    let mut local = Client::new(app.clone());
    let r = local.load_csrf("/setup").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("<label for=\"email\">"));
    // A bad password is refused naming the field, and creates nothing.
    let r = local
        .post_form(
            "/setup",
            &[
                ("email", "ada@a.example"),
                ("display_name", "Ada"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Field: <code>password</code>"));
    assert!(!db.any_account_exists().await.unwrap());
    let r = local
        .post_form(
            "/setup",
            &[
                ("email", "ada@a.example"),
                ("display_name", "Ada"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let ada = db
        .account_by_email(&"ada@a.example".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(ada.site_admin);
    // Closed from now on.
    assert_eq!(local.get("/setup").await.status, StatusCode::NOT_FOUND);
    let r = local
        .post_form(
            "/setup",
            &[
                ("email", "eve@a.example"),
                ("display_name", "Eve"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(db.list_accounts().await.unwrap().len(), 1);
    // Wrong password: the login page again, with a message, and no session.
    let mut c = Client::new(app.clone());
    c.load_csrf("/login").await;
    let r = c
        .post_form(
            "/login",
            &[
                ("email", "ada@a.example"),
                ("password", "wrong horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("role=\"alert\""));
    assert!(!c.cookies.contains_key("gh_session"));
    c.login("ada@a.example", PASSWORD).await;
    assert!(c.cookies.contains_key("gh_session"));
    // Logout ends the session in the database, not just the cookie.
    let stolen = c.cookies.clone();
    let r = c.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut replay = Client::new(app.clone());
    replay.cookies = stolen;
    let r = replay.get("/orgs").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/login?next="));
});

async fn metrics_text(c: &mut Client) -> String {
    let r = c.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

db_test!(probes_metrics_openapi_audit_and_jobs, |db| async move {
    let app = guildhall_web::router(state(&db));
    let mut anon = Client::new(app.clone());
    assert_eq!(anon.get("/healthz").await.status, StatusCode::OK);
    let r = anon.get("/readyz").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = anon.get("/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = anon.get("/api/v1/nothing").await;
    assert_eq!(r.error_code(), "not_found");
    let r = anon
        .send(Method::PATCH, "/api/v1/me", None, Vec::new(), &[])
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "method_not_allowed");
    let doc = anon.get("/api/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/orgs/{org}/invitations"]["post"]["requestBody"].is_object());
    let js = anon.get("/static/htmx.min.js").await;
    assert!(js.body.contains("htmx"));

    let admin = account(&db, "admin@a.example", true).await;
    let mut c = Client::new(app.clone());
    c.login("admin@a.example", PASSWORD).await;
    let r = c
        .post_form(
            "/orgs",
            &[
                ("name", "Social"),
                ("kind", "instance"),
                ("domain", "Social.Example"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let org_id = db.organisations_of(admin).await.unwrap()[0].0.id;
    // An instance needs its domain; a cooperative has none.
    let r = c
        .post_form("/orgs", &[("name", "X"), ("kind", "instance")])
        .await;
    assert!(r.body.contains("Field: <code>domain</code>"), "{}", r.body);
    let r = c
        .post_form(
            "/orgs",
            &[
                ("name", "X"),
                ("kind", "cooperative"),
                ("domain", "x.example"),
            ],
        )
        .await;
    assert!(r.body.contains("Field: <code>domain</code>"));
    // The same domain twice is a conflict, not a 500.
    let r = c
        .post_form(
            "/orgs",
            &[
                ("name", "Dup"),
                ("kind", "instance"),
                ("domain", "social.example"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Audit: the creation is logged with who, and the chain verifies.
    let r = c.get(&format!("/orgs/{org_id}/audit")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("organisation.create") && r.body.contains("admin@a.example"));
    assert!(r.body.contains("The hash chain is intact"));
    let mut api = signed_in(&db, &app, admin).await;
    let v = api.get("/api/v1/audit/verify").await.json();
    assert_eq!(v["intact"], true);
    assert!(v["entries"].as_u64().unwrap() >= 1);
    let entries = api
        .get(&format!("/api/v1/orgs/{org_id}/audit?limit=5"))
        .await
        .json();
    assert_eq!(entries["entries"][0]["action"], "organisation.create");
    assert_eq!(
        api.get(&format!("/api/v1/orgs/{org_id}/audit?limit=abc"))
            .await
            .json()["error"]["field"],
        "limit"
    );

    // Failed jobs: listed, retried through htmx (the row comes back queued), counted.
    let job = dead_job(&db, "test.kind").await;
    let m = metrics_text(&mut anon).await;
    assert!(m.contains("guildhall_jobs{state=\"dead\"} 1"), "{m}");
    let page = c.get("/admin/jobs").await;
    assert!(page.body.contains(&format!("id=\"job-{job}\"")) && page.body.contains("boom"));
    let csrf = c.csrf.clone().unwrap();
    let r = c
        .send(
            Method::POST,
            &format!("/admin/jobs/{job}/retry"),
            None,
            Vec::new(),
            &[("hx-request", "true"), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.starts_with("<tr") && r.body.contains("queued"));
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/jobs/{job}/retry"),
            None,
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "only dead jobs can be retried"
    );
    let listed = api.get("/api/v1/jobs?state=queued").await.json();
    assert_eq!(listed["jobs"][0]["id"], job);
    assert_eq!(
        api.get("/api/v1/jobs?state=zombie").await.json()["error"]["field"],
        "state"
    );
    let m = metrics_text(&mut anon).await;
    assert!(m.contains("guildhall_jobs{state=\"dead\"} 0"));
    assert!(m.contains("guildhall_jobs{state=\"queued\"} 1"));
    assert!(m.contains("guildhall_http_requests_total{method=\"POST\",route=\"/admin/jobs/{id}/retry\",status=\"200\"} 1"), "{m}");
    assert!(m.contains("guildhall_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",status=\"200\",le=\"+Inf\"} 1"));
    assert!(m.contains("route=\"unmatched\""));
});

/// Every visible form control of a page has an `id` and a `<label for=…>`; the page has a
/// `<main>` landmark, a skip link, and (signed in) a labelled navigation.
fn check_accessible(path: &str, html: &str, signed_in: bool, failures: &mut Vec<String>) {
    for needle in [
        "<main id=\"main\"",
        "class=\"skip\" href=\"#main\"",
        "<html lang=\"en\">",
    ] {
        if !html.contains(needle) {
            failures.push(format!("{path}: no {needle}"));
        }
    }
    if signed_in && !html.contains("<nav aria-label=\"Main\">") {
        failures.push(format!("{path}: no labelled navigation"));
    }
    for tag in ["<input", "<select"] {
        for (i, _) in html.match_indices(tag) {
            let end = html[i..].find('>').map(|e| i + e).unwrap_or(html.len());
            let el = &html[i..end];
            if el.contains("type=\"hidden\"") {
                continue;
            }
            let Some(id_at) = el.find(" id=\"") else {
                failures.push(format!("{path}: control without id: {el}"));
                continue;
            };
            let id = &el[id_at + 5..];
            let id = &id[..id.find('"').unwrap_or(id.len())];
            if !html.contains(&format!("<label for=\"{id}\"")) {
                failures.push(format!("{path}: no label for #{id}"));
            }
        }
    }
}

db_test!(
    pages_have_landmarks_and_labelled_controls,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let mut failures = Vec::new();
        let mut anon = Client::new(app.clone());
        let r = anon.get("/setup").await;
        check_accessible("/setup", &r.body, false, &mut failures);
        let admin = account(&db, "admin@a.example", true).await;
        let org_a = org(&db, "Org A", admin).await;
        let mut c = signed_in(&db, &app, admin).await;
        let r = c
            .post_form(&format!("/orgs/{org_a}/invitations"), &[("role", "member")])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        check_accessible("invitation created", &r.body, true, &mut failures);
        let link = r.body.split("/invite/").nth(1).unwrap();
        let token = &link[..link.find('"').unwrap()];
        let r = anon.get(&format!("/invite/{token}")).await;
        assert_eq!(r.status, StatusCode::OK);
        check_accessible("/invite/…", &r.body, false, &mut failures);
        dead_job(&db, "a11y").await;
        for path in [
            "/orgs".to_owned(),
            format!("/orgs/{org_a}"),
            format!("/orgs/{org_a}/invitations"),
            format!("/orgs/{org_a}/audit"),
            "/tokens".to_owned(),
            "/admin/jobs".to_owned(),
            "/admin/audit".to_owned(),
        ] {
            let r = c.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
            check_accessible(&path, &r.body, true, &mut failures);
        }
        let r = anon.get("/login").await;
        check_accessible("/login", &r.body, false, &mut failures);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
);

db_test!(
    invitations_roles_and_owners_follow_the_rules,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let owner = account(&db, "owner@a.example", true).await;
        let org_a = org(&db, "Org A", owner).await;
        let admin = account(&db, "admin@a.example", false).await;
        db.add_member(org_a, admin, guildhall_core::Role::Admin)
            .await
            .unwrap();
        let mut as_admin = signed_in(&db, &app, admin).await;
        // An admin may invite moderators but not owners.
        let r = as_admin
            .post_form(&format!("/orgs/{org_a}/invitations"), &[("role", "owner")])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("Field: <code>role</code>"));
        let r = as_admin
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/invitations"),
                serde_json::json!({"role": "moderator", "email": "not an address"}),
            )
            .await;
        assert_eq!(r.json()["error"]["field"], "email");
        let r = as_admin
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/invitations"),
                serde_json::json!({"role": "moderator"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let link = r.json()["link"].as_str().unwrap().to_owned();
        let path = &link[link.find("/invite/").unwrap()..];
        // An admin may not demote or remove the owner.
        let r = as_admin
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{org_a}/members/{owner}"),
                serde_json::json!({"role": "member"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // The last owner cannot leave the organisation ownerless.
        let mut as_owner = signed_in(&db, &app, owner).await;
        let r = as_owner
            .send(
                Method::DELETE,
                &format!("/api/v1/orgs/{org_a}/members/{owner}"),
                None,
                Vec::new(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        // Accepting creates the account and the membership, once.
        let mut newcomer = Client::new(app.clone());
        newcomer.load_csrf(path).await;
        let r = newcomer
            .post_form(
                path,
                &[
                    ("email", "new@a.example"),
                    ("display_name", "New"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let new = db
            .account_by_email(&"new@a.example".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.role_of(new.id, org_a).await.unwrap(),
            Some(guildhall_core::Role::Moderator)
        );
        let r = newcomer.get(path).await;
        assert_eq!(r.status, StatusCode::GONE);
        let r = newcomer
            .post_form(
                path,
                &[
                    ("email", "late@a.example"),
                    ("display_name", "Late"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::GONE);
        assert!(db
            .account_by_email(&"late@a.example".parse().unwrap())
            .await
            .unwrap()
            .is_none());
        // The audit log recorded the invitation and its acceptance, with who.
        let v = as_owner
            .get(&format!("/api/v1/orgs/{org_a}/audit"))
            .await
            .json();
        let actions: Vec<&str> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(
            actions.contains(&"invitation.create") && actions.contains(&"invitation.accept"),
            "{actions:?}"
        );
        // An unknown invitation is a plain 404.
        assert_eq!(
            newcomer.get("/invite/inv_unknown").await.status,
            StatusCode::NOT_FOUND
        );
    }
);
