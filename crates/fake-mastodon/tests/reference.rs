//! The fake checked against `mastodon-api.md` (§12 checklist), with a plain HTTP client so
//! that other tests can trust it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use guildhall_fake_mastodon::{
    AccountSeed, BlockSeed, FakeMastodon, Flavor, PublicBlocksMode, ReportSeed, StatusSeed,
    ADMINISTRATOR, MANAGE_FEDERATION, MANAGE_REPORTS, MANAGE_USERS, VIEW_DASHBOARD,
};
use serde_json::{json, Value};

const ALL: &[&str] = &["admin:read", "admin:write"];

async fn seeded(flavor: Flavor) -> FakeMastodon {
    let mut b = FakeMastodon::builder()
        .flavor(flavor)
        .account(AccountSeed::local(1, "owner").with_role("Owner", ADMINISTRATOR))
        .account(AccountSeed::local(2, "mod").with_role("Moderator", MANAGE_REPORTS))
        .account(AccountSeed::local(3, "alice"))
        .account(AccountSeed::remote(4, "spammer", "bad.example"))
        .account(AccountSeed::instance_actor(5, "remote.example"))
        .rule(1, "No spam")
        .rule(2, "Be kind")
        .status(StatusSeed::new(70, 4, "<p>buy now</p>").with_image(700, "an ad"))
        .token("owner", ALL, Some(1))
        .token("mod", ALL, Some(2))
        .token("reports-only", &["admin:read:reports"], Some(1))
        .token("app-only", &["read"], None)
        .authorizing_account(1);
    for id in 1..=5u64 {
        b = b.report(ReportSeed::new(id, 3, 4).category("spam").statuses(&[70]));
    }
    b = b.report(ReportSeed::new(6, 5, 3).forwarded().comment("from afar"));
    b = b.report(ReportSeed::new(7, 3, 4).resolved());
    b.start().await.unwrap()
}

struct Http {
    c: reqwest::Client,
    base: String,
}

impl Http {
    fn new(fake: &FakeMastodon) -> Self {
        Self {
            c: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: fake.url().to_owned(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut rb = self.c.request(method, url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(f) = form {
            rb = rb.form(f);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let (s, h, b) = self.send(reqwest::Method::GET, path, token, None).await;
        (s, h, serde_json::from_str(&b).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
        let (s, _, b) = self
            .send(reqwest::Method::POST, path, token, Some(form))
            .await;
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Splits `<url>; rel="x"` pairs (test helper; the client has a real parser).
fn links(h: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let Some(v) = h.get("link") else {
        return vec![];
    };
    v.to_str()
        .unwrap()
        .split(", <")
        .map(|part| {
            let part = part.trim_start_matches('<');
            let (url, rel) = part.split_once(">; rel=\"").unwrap();
            (rel.trim_end_matches('"').to_owned(), url.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn auth_errors_use_the_documented_bodies() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    let (s, _, b) = h.get("/api/v1/admin/reports", None).await;
    assert_eq!(
        (s, b),
        (401, json!({"error": "The access token is invalid"}))
    );
    let (s, _, b) = h.get("/api/v1/admin/reports", Some("nope")).await;
    assert_eq!(
        (s, b),
        (401, json!({"error": "The access token is invalid"}))
    );
    let (s, _, b) = h
        .get("/api/v1/admin/domain_blocks", Some("reports-only"))
        .await;
    assert_eq!(
        (s, b),
        (
            403,
            json!({"error": "This action is outside the authorized scopes"})
        )
    );
    // The moderator has the scope but not Manage Federation.
    let (s, _, b) = h.get("/api/v1/admin/domain_blocks", Some("mod")).await;
    assert_eq!(
        (s, b),
        (403, json!({"error": "This action is not allowed"}))
    );
    let (s, _, b) = h.get("/api/v1/admin/reports/999", Some("owner")).await;
    assert_eq!((s, b), (404, json!({"error": "Record not found"})));
    // Umbrella scope covers granular; Administrator bypasses permissions.
    let (s, _, _) = h.get("/api/v1/admin/domain_blocks", Some("owner")).await;
    assert_eq!(s, 200);
    // Granular scope alone is enough.
    let (s, _, _) = h.get("/api/v1/admin/reports", Some("reports-only")).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn reports_paginate_id_descending_with_mastodon_links() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    // Default: unresolved only (7 is resolved).
    let (_, hd, b) = h.get("/api/v1/admin/reports", Some("owner")).await;
    assert_eq!(ids(&b), ["6", "5", "4", "3", "2", "1"]);
    // Partial page: only prev.
    let l = links(&hd);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "prev");
    assert!(l[0].1.ends_with("/api/v1/admin/reports?min_id=6"), "{l:?}");

    let (_, hd, b) = h
        .get(
            "/api/v1/admin/reports?limit=2&target_account_id=4",
            Some("owner"),
        )
        .await;
    assert_eq!(ids(&b), ["5", "4"]);
    let l = links(&hd);
    assert_eq!(l[0].0, "next", "next comes first, as in Mastodon");
    assert!(
        l[0].1.ends_with("?limit=2&target_account_id=4&max_id=4"),
        "{l:?}"
    );
    assert!(
        l[1].1.ends_with("?limit=2&target_account_id=4&min_id=5"),
        "{l:?}"
    );
    // Follow next twice: 3,2 then 1 (partial: no next).
    let (_, hd, b) = h.get(&l[0].1, Some("owner")).await;
    assert_eq!(ids(&b), ["3", "2"]);
    let next = links(&hd)[0].1.clone();
    let (_, hd, b) = h.get(&next, Some("owner")).await;
    assert_eq!(ids(&b), ["1"]);
    assert!(links(&hd).iter().all(|(rel, _)| rel != "next"));
    // min_id gives the page just above, still descending.
    let (_, _, b) = h
        .get("/api/v1/admin/reports?limit=2&min_id=2", Some("owner"))
        .await;
    assert_eq!(ids(&b), ["4", "3"]);
    // Limit clamping: min(abs(limit), 200); 0 gives an empty page.
    let (_, _, b) = h.get("/api/v1/admin/reports?limit=-3", Some("owner")).await;
    assert_eq!(ids(&b), ["6", "5", "4"]);
    let (_, hd, b) = h.get("/api/v1/admin/reports?limit=0", Some("owner")).await;
    assert!(ids(&b).is_empty());
    assert!(hd.get("link").is_none());
    // Filters.
    let (_, _, b) = h
        .get("/api/v1/admin/reports?resolved=true", Some("owner"))
        .await;
    assert_eq!(ids(&b), ["7"]);
    let (_, _, b) = h
        .get("/api/v1/admin/reports?account_id=5", Some("owner"))
        .await;
    assert_eq!(ids(&b), ["6"]);
}

#[tokio::test]
async fn limit_is_clamped_to_200() {
    let mut b = FakeMastodon::builder()
        .account(AccountSeed::local(1, "owner").with_role("Owner", ADMINISTRATOR))
        .account(AccountSeed::remote(4, "x", "bad.example"))
        .token("owner", ALL, Some(1));
    for id in 1..=250u64 {
        b = b.report(ReportSeed::new(id, 1, 4));
    }
    let fake = b.start().await.unwrap();
    let h = Http::new(&fake);
    let (_, hd, body) = h
        .get("/api/v1/admin/reports?limit=1000", Some("owner"))
        .await;
    assert_eq!(body.as_array().unwrap().len(), 200);
    assert!(links(&hd)[0].1.contains("limit=200&max_id=51"));
    let (_, _, body) = h.get("/api/v1/admin/reports", Some("owner")).await;
    assert_eq!(body.as_array().unwrap().len(), 100, "default limit");
}

#[tokio::test]
async fn report_entities_carry_accounts_statuses_media_and_rules() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    let (_, _, r) = h.get("/api/v1/admin/reports/1", Some("owner")).await;
    assert_eq!(r["category"], "spam");
    assert_eq!(r["action_taken"], false);
    assert_eq!(r["target_account"]["domain"], "bad.example");
    assert_eq!(
        r["target_account"]["email"],
        Value::Null,
        "remote: null email"
    );
    assert_eq!(r["account"]["email"], "alice@mail.example");
    assert_eq!(
        r["statuses"][0]["media_attachments"][0]["description"],
        "an ad"
    );
    assert!(
        r.get("status_ids").is_none(),
        "admin entity has no status_ids"
    );
    // Forwarded report: reporter is the remote instance actor.
    let (_, _, r) = h.get("/api/v1/admin/reports/6", Some("owner")).await;
    assert_eq!(r["forwarded"], true);
    assert_eq!(r["account"]["username"], "remote.example");
    assert_eq!(r["account"]["domain"], "remote.example");
}

#[tokio::test]
async fn report_operations_are_idempotent_and_return_the_report() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    for _ in 0..2 {
        let (s, r) = h
            .post("/api/v1/admin/reports/1/assign_to_self", Some("mod"), &[])
            .await;
        assert_eq!(s, 200);
        assert_eq!(r["assigned_account"]["id"], "2");
    }
    let (_, r) = h
        .post("/api/v1/admin/reports/1/unassign", Some("mod"), &[])
        .await;
    assert_eq!(r["assigned_account"], Value::Null);
    for _ in 0..2 {
        let (_, r) = h
            .post("/api/v1/admin/reports/1/resolve", Some("mod"), &[])
            .await;
        assert_eq!(r["action_taken"], true);
        assert_eq!(r["action_taken_by_account"]["id"], "2");
        assert!(r["action_taken_at"].is_string());
    }
    let (_, r) = h
        .post("/api/v1/admin/reports/1/reopen", Some("mod"), &[])
        .await;
    assert_eq!(r["action_taken"], false);
    assert_eq!(r["action_taken_at"], Value::Null);
    // PUT category and rules.
    let (s, _, b) = h
        .send(
            reqwest::Method::PUT,
            "/api/v1/admin/reports/1",
            Some("mod"),
            Some(&[
                ("category", "violation"),
                ("rule_ids[]", "1"),
                ("rule_ids[]", "2"),
            ]),
        )
        .await;
    let r: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(s, 200);
    assert_eq!(r["category"], "violation");
    assert_eq!(r["rules"][1]["text"], "Be kind");
    let (s, _, _) = h
        .send(
            reqwest::Method::PUT,
            "/api/v1/admin/reports/1",
            Some("mod"),
            Some(&[("category", "bogus")]),
        )
        .await;
    assert_eq!(s, 422);
}

#[tokio::test]
async fn account_actions_resolve_reports_as_documented() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    let (s, b) = h
        .post(
            "/api/v1/admin/accounts/4/action",
            Some("owner"),
            &[("type", "bogus")],
        )
        .await;
    assert_eq!((s, b), (422, json!({"error": "Record invalid"})));
    let (s, _) = h
        .post("/api/v1/admin/accounts/4/action", Some("owner"), &[])
        .await;
    assert_eq!(s, 422);
    // none + report_id: only that report.
    let (s, b) = h
        .post(
            "/api/v1/admin/accounts/4/action",
            Some("owner"),
            &[("type", "none"), ("report_id", "2")],
        )
        .await;
    assert_eq!((s, b), (200, json!({})));
    assert_eq!(fake.report_resolved(2), Some(true));
    assert_eq!(fake.report_resolved(1), Some(false));
    // silence: every open report on the target.
    h.post(
        "/api/v1/admin/accounts/4/action",
        Some("owner"),
        &[("type", "silence")],
    )
    .await;
    for id in [1, 3, 4, 5] {
        assert_eq!(fake.report_resolved(id), Some(true), "report {id}");
    }
    assert_eq!(
        fake.report_resolved(6),
        Some(false),
        "other target untouched"
    );
    assert!(fake.account(4).unwrap().silenced);
    // Reversal.
    let (s, a) = h
        .post("/api/v1/admin/accounts/4/unsilence", Some("owner"), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(a["silenced"], false);
    let (s, _) = h
        .post(
            "/api/v1/admin/accounts/99/action",
            Some("owner"),
            &[("type", "suspend")],
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn domain_blocks_normalise_digest_and_refuse_covered_domains() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    let (s, b) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", " Bücher.Example. ")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["domain"], "xn--bcher-kva.example");
    assert_eq!(b["severity"], "silence", "default severity");
    assert_eq!(b["digest"], sha256_hex("xn--bcher-kva.example"));
    // A subdomain of a blocked domain: 422 with the existing block.
    let (s, b) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[
                ("domain", "sub.xn--bcher-kva.example"),
                ("severity", "suspend"),
            ],
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        b["error"],
        "You have already imposed stricter limits on xn--bcher-kva.example."
    );
    assert_eq!(
        b["existing_domain_block"]["domain"],
        "xn--bcher-kva.example"
    );
    let id = b["existing_domain_block"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Validation.
    let (s, b) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "")],
        )
        .await;
    assert_eq!(
        (s, b),
        (
            422,
            json!({"error": "Validation failed: Domain can't be blank"})
        )
    );
    let (s, b) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "ok.example"), ("severity", "nuke")],
        )
        .await;
    assert_eq!(
        (s, b),
        (
            422,
            json!({"error": "Validation failed: Severity is not included in the list"})
        )
    );
    // PUT cannot change the domain.
    let (_, _, b) = h
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/admin/domain_blocks/{id}"),
            Some("owner"),
            Some(&[("domain", "other.example"), ("severity", "suspend")]),
        )
        .await;
    let b: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(b["domain"], "xn--bcher-kva.example");
    assert_eq!(b["severity"], "suspend");
    // DELETE answers {} and then 404.
    let (s, _, b) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/domain_blocks/{id}"),
            Some("owner"),
            None,
        )
        .await;
    assert_eq!((s, b.as_str()), (200, "{}"));
    let (s, _, _) = h
        .get(&format!("/api/v1/admin/domain_blocks/{id}"), Some("owner"))
        .await;
    assert_eq!(s, 404);
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn public_domain_block_list_has_three_modes_and_obfuscates() {
    let fake = FakeMastodon::builder()
        .account(AccountSeed::local(1, "u"))
        .token("user", &["read"], Some(1))
        .domain_block(
            BlockSeed::new("ap.abc.st", "suspend")
                .obfuscated()
                .public_comment("spam"),
        )
        .domain_block(BlockSeed::new("quiet.example", "silence"))
        .domain_block(BlockSeed::new("noop.example", "noop"))
        .start()
        .await
        .unwrap();
    let h = Http::new(&fake);
    let (s, _, b) = h.get("/api/v1/instance/domain_blocks", None).await;
    assert_eq!(s, 200);
    let list = b.as_array().unwrap();
    assert_eq!(list.len(), 2, "noop blocks are not listed");
    assert_eq!(list[0]["domain"], "ap.***.st");
    assert_eq!(list[0]["digest"], sha256_hex("ap.abc.st"));
    assert_eq!(list[0]["comment"], "spam");
    assert!(list[1].get("comment").is_none());
    fake.set_public_domain_blocks(PublicBlocksMode::UsersOnly);
    let (s, _, b) = h.get("/api/v1/instance/domain_blocks", None).await;
    assert_eq!(
        (s, b),
        (401, json!({"error": "The access token is invalid"}))
    );
    let (s, _, _) = h.get("/api/v1/instance/domain_blocks", Some("user")).await;
    assert_eq!(s, 200);
    fake.set_public_domain_blocks(PublicBlocksMode::Disabled);
    let (s, _, b) = h
        .send(
            reqwest::Method::GET,
            "/api/v1/instance/domain_blocks",
            Some("user"),
            None,
        )
        .await;
    assert_eq!((s, b.as_str()), (404, ""));
}

#[tokio::test]
async fn rate_limit_headers_real_limits_and_injected_429s() {
    let fake = seeded(Flavor::Mastodon).await;
    fake.set_rate_limit(3, Duration::from_secs(300));
    let h = Http::new(&fake);
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let (s, hd, _) = h.get("/api/v2/instance", Some("owner")).await;
        remaining.push((s, hd["x-ratelimit-remaining"].to_str().unwrap().to_owned()));
        assert_eq!(hd["x-ratelimit-limit"], "3");
        let reset = hd["x-ratelimit-reset"].to_str().unwrap();
        assert!(reset.ends_with('Z') && reset.len() == "2026-01-01T00:00:00.000000Z".len());
    }
    assert_eq!(
        remaining,
        [
            (200, "2".into()),
            (200, "1".into()),
            (200, "0".into()),
            (429, "0".into())
        ]
    );
    // Another account has its own budget.
    let (s, _, _) = h.get("/api/v2/instance", Some("mod")).await;
    assert_eq!(s, 200);
    fake.inject_429(1, Duration::from_millis(10));
    let (s, _, _) = h.get("/api/v2/instance", Some("mod")).await;
    assert_eq!(s, 429);
    let (s, _, _) = h.get("/api/v2/instance", Some("mod")).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn outages_and_failures_on_demand() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    fake.set_outage(Some(503));
    let (s, hd, b) = h
        .send(reqwest::Method::GET, "/api/v2/instance", None, None)
        .await;
    assert_eq!(s, 503);
    assert!(hd["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(b.contains("<html>"));
    fake.set_outage(None);
    fake.fail_next(1, 502);
    assert_eq!(h.get("/api/v2/instance", None).await.0, 502);
    assert_eq!(h.get("/api/v2/instance", None).await.0, 200);
}

#[tokio::test]
async fn oauth_registration_code_flow_and_revocation() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    let (s, app) = h
        .post(
            "/api/v1/apps",
            None,
            &[
                ("client_name", "Guildhall"),
                ("redirect_uris", "https://hall.example/cb"),
                ("scopes", "admin:read:reports admin:write:reports"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        app["scopes"],
        json!(["admin:read:reports", "admin:write:reports"])
    );
    assert_eq!(app["redirect_uris"], json!(["https://hall.example/cb"]));
    let (s, b) = h
        .post(
            "/api/v1/apps",
            None,
            &[("client_name", "x"), ("redirect_uris", "not a uri")],
        )
        .await;
    assert_eq!(
        (s, b),
        (
            422,
            json!({"error": "Validation failed: Redirect URI must be an absolute URI."})
        )
    );
    let cid = app["client_id"].as_str().unwrap();
    let secret = app["client_secret"].as_str().unwrap();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={cid}&redirect_uri=https%3A%2F%2Fhall.example%2Fcb&scope=admin%3Aread%3Areports&state=xyz"
    );
    let (s, hd, _) = h.send(reqwest::Method::GET, &authorize, None, None).await;
    assert_eq!(s, 302);
    let loc = url::Url::parse(hd["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    let code = q["code"].clone();
    // Wrong redirect URI → invalid_grant; wrong secret → invalid_client.
    let (s, b) = h
        .post(
            "/oauth/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", cid),
                ("client_secret", secret),
                ("redirect_uri", "https://elsewhere.example/cb"),
            ],
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let (s, b) = h
        .post(
            "/oauth/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", cid),
                ("client_secret", "x"),
            ],
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    let (s, tok) = h
        .post(
            "/oauth/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", cid),
                ("client_secret", secret),
                ("redirect_uri", "https://hall.example/cb"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(tok["scope"], "admin:read:reports");
    assert_eq!(tok["token_type"], "Bearer");
    let token = tok["access_token"].as_str().unwrap();
    assert_eq!(h.get("/api/v1/admin/reports", Some(token)).await.0, 200);
    // Codes are single-use.
    let (s, _) = h
        .post(
            "/oauth/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", cid),
                ("client_secret", secret),
                ("redirect_uri", "https://hall.example/cb"),
            ],
        )
        .await;
    assert_eq!(s, 400);
    // A scope outside the registration → redirect with invalid_scope.
    let bad = authorize.replace("admin%3Aread%3Areports", "admin%3Awrite%3Adomain_blocks");
    let (s, hd, _) = h.send(reqwest::Method::GET, &bad, None, None).await;
    assert_eq!(s, 302);
    assert!(hd["location"]
        .to_str()
        .unwrap()
        .contains("error=invalid_scope"));
    // Revoke: a token the client does not own → 403; its own → {} and then invalid.
    let (s, b) = h
        .post(
            "/oauth/revoke",
            None,
            &[
                ("client_id", cid),
                ("client_secret", secret),
                ("token", "owner"),
            ],
        )
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("unauthorized_client")));
    let (s, b) = h
        .post(
            "/oauth/revoke",
            None,
            &[
                ("client_id", cid),
                ("client_secret", secret),
                ("token", token),
            ],
        )
        .await;
    assert_eq!((s, b), (200, json!({})));
    assert_eq!(h.get("/api/v1/admin/reports", Some(token)).await.0, 401);
    // Metadata.
    let (s, _, m) = h.get("/.well-known/oauth-authorization-server", None).await;
    assert_eq!(s, 200);
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
}

#[tokio::test]
async fn measures_and_instance_information() {
    let fake = FakeMastodon::builder()
        .account(AccountSeed::local(1, "dash").with_role("Dash", VIEW_DASHBOARD))
        .account(AccountSeed::local(2, "fed").with_role("Fed", MANAGE_FEDERATION | MANAGE_USERS))
        .token("dash", &["admin:read"], Some(1))
        .token("granular", &["admin:read:reports"], Some(1))
        .token("fed", &["admin:read"], Some(2))
        .measure("instance_follows", Some("bad.example"), 12)
        .rule(1, "No spam")
        .start()
        .await
        .unwrap();
    let h = Http::new(&fake);
    let r = h
        .c
        .post(format!("{}/api/v1/admin/measures", fake.url()))
        .bearer_auth("dash")
        .json(
            &json!({"keys": ["instance_follows"], "start_at": "2026-01-01", "end_at": "2026-01-31",
                      "instance_follows": {"domain": "bad.example"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["total"], "12");
    assert_eq!(v[0]["data"][0]["value"], "12");
    let (s, _) = h
        .post(
            "/api/v1/admin/measures",
            Some("granular"),
            &[("keys[]", "opened_reports")],
        )
        .await;
    assert_eq!(s, 403, "measures need the umbrella admin:read");
    let (s, b) = h
        .post(
            "/api/v1/admin/measures",
            Some("fed"),
            &[
                ("keys[]", "opened_reports"),
                ("start_at", "2026-01-01"),
                ("end_at", "2026-01-02"),
            ],
        )
        .await;
    assert_eq!(
        (s, b),
        (403, json!({"error": "This action is not allowed"}))
    );
    let (_, _, i) = h.get("/api/v2/instance", None).await;
    assert_eq!(i["rules"][0]["text"], "No spam");
    let (_, _, links) = h.get("/.well-known/nodeinfo", None).await;
    let href = links["links"][0]["href"].as_str().unwrap().to_owned();
    let (_, _, ni) = h.get(&href, None).await;
    assert_eq!(ni["software"]["name"], "mastodon");
}

#[tokio::test]
async fn gotosocial_quirks() {
    let fake = seeded(Flavor::GoToSocial).await;
    let h = Http::new(&fake);
    let (s, b) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "Gts.Example"), ("severity", "silence")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["domain"], "gts.example");
    assert!(b.get("severity").is_none() && b.get("digest").is_none());
    let id = b["id"].as_str().unwrap().to_owned();
    let (s, again) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "gts.example")],
        )
        .await;
    assert_eq!(
        (s, again["id"].as_str()),
        (200, Some(id.as_str())),
        "existing block, 200"
    );
    let (s, _) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "*.wild.example")],
        )
        .await;
    assert_eq!(s, 500);
    let (s, _, b) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/domain_blocks/{id}"),
            Some("owner"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(b.contains("gts.example"), "DELETE answers the block");
    assert_eq!(
        h.get(&format!("/api/v1/admin/domain_blocks/{id}"), Some("owner"))
            .await
            .0,
        500
    );
    assert_eq!(
        h.post("/api/v1/admin/reports/1/assign_to_self", Some("owner"), &[])
            .await
            .0,
        404
    );
    let (s, b) = h
        .post(
            "/api/v1/admin/accounts/4/action",
            Some("owner"),
            &[("type", "silence")],
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("not supported"));
    let (s, b) = h
        .post(
            "/api/v1/admin/accounts/4/action",
            Some("owner"),
            &[("type", "suspend"), ("report_id", "1")],
        )
        .await;
    assert_eq!((s, b), (200, json!({"message": "OK"})));
    assert_eq!(
        fake.report_resolved(1),
        Some(false),
        "GoToSocial does not resolve"
    );
    let (_, r) = h
        .post(
            "/api/v1/admin/reports/1/resolve",
            Some("mod"),
            &[("action_taken_comment", "done")],
        )
        .await;
    assert_eq!(r["action_taken_comment"], "done");
    assert_eq!(r["assigned_account"]["id"], "2");
    let (s, _, b) = h
        .get("/api/v1/admin/domain_blocks", Some("reports-only"))
        .await;
    assert_eq!(
        (s, b),
        (
            403,
            json!({"error": "token has insufficient scope permission"})
        )
    );
}

#[tokio::test]
async fn webhooks_are_signed_and_faults_injectable() {
    use axum::routing::post;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Option<String>, Vec<u8>)>();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let sig = headers
                        .get("x-hub-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let _ = tx.send((sig, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let fake = seeded(Flavor::Mastodon).await;
    fake.set_webhook(&format!("http://{addr}/hook"), b"s3cret");
    fake.file_report(ReportSeed::new(50, 3, 4).category("spam"));
    let (sig, body) = recv(&mut rx).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "report.created");
    assert_eq!(v["object"]["id"], "50");
    let mac = {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        m.update(&body);
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(sig.unwrap(), format!("sha256={mac}"));
    // An API change emits report.updated; a duplicate fault sends it twice.
    fake.inject_webhook_fault(guildhall_fake_mastodon::WebhookFault::Duplicate);
    Http::new(&fake)
        .post("/api/v1/admin/reports/50/resolve", Some("owner"), &[])
        .await;
    let (_, b1) = recv(&mut rx).await;
    let (_, b2) = recv(&mut rx).await;
    assert_eq!(b1, b2);
    let v: Value = serde_json::from_slice(&b1).unwrap();
    assert_eq!(v["event"], "report.updated");
    assert_eq!(v["object"]["action_taken"], true);
    // A dropped delivery is logged but never arrives; the next one does.
    fake.inject_webhook_fault(guildhall_fake_mastodon::WebhookFault::Drop);
    fake.file_report(ReportSeed::new(51, 3, 4));
    fake.file_report(ReportSeed::new(52, 3, 4));
    let (_, b) = recv(&mut rx).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["object"]["id"], "52");
    let log = fake.wait_for_deliveries(5, Duration::from_secs(5)).await;
    let dropped: Vec<_> = log.iter().filter(|d| d.status.is_none()).collect();
    assert_eq!(dropped.len(), 1);
    assert!(String::from_utf8_lossy(&dropped[0].body).contains("\"51\""));
}

/// Waits for the next webhook the receiver saw (bounded, so a broken emitter fails, not hangs).
async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook delivery within 10 s")
        .expect("receiver open")
}

#[tokio::test]
async fn users_file_reports_and_rules_force_violation() {
    let fake = seeded(Flavor::Mastodon).await;
    fake.add_token("alice", &["write"], Some(3));
    let h = Http::new(&fake);
    let (s, r) = h
        .post(
            "/api/v1/reports",
            Some("alice"),
            &[
                ("account_id", "4"),
                ("category", "spam"),
                ("rule_ids[]", "2"),
                ("comment", "bad"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["category"], "violation", "rule_ids force violation");
    assert_eq!(r["rule_ids"], json!(["2"]));
    assert!(
        r.get("account").is_none(),
        "the user-facing entity has no reporter"
    );
    let id = r["id"].as_str().unwrap().to_owned();
    let (_, _, admin) = h
        .get(&format!("/api/v1/admin/reports/{id}"), Some("owner"))
        .await;
    assert_eq!(admin["account"]["id"], "3");
    assert_eq!(admin["rules"][0]["text"], "Be kind");
    assert_eq!(
        h.post("/api/v1/reports", Some("alice"), &[("account_id", "999")])
            .await
            .0,
        404
    );
    assert_eq!(
        h.post(
            "/api/v1/reports",
            Some("reports-only"),
            &[("account_id", "4")]
        )
        .await
        .0,
        403
    );

    let gts = seeded(Flavor::GoToSocial).await;
    gts.add_token("alice", &["write"], Some(3));
    let (_, r) = Http::new(&gts)
        .post(
            "/api/v1/reports",
            Some("alice"),
            &[("account_id", "4"), ("category", "spam")],
        )
        .await;
    assert_eq!(r["category"], "other", "GoToSocial ignores category");
    assert_eq!(r["status_ids"], Value::Null);
}

#[tokio::test]
async fn instance_follows_counts_existing_follows_made_within_the_period() {
    let fake = FakeMastodon::builder()
        .account(AccountSeed::local(1, "dash").with_role("Dash", VIEW_DASHBOARD))
        .token("dash", &["admin:read"], Some(1))
        .follow("old.example", "2019-05-02")
        .follow("old.example", "2026-01-10")
        .start()
        .await
        .unwrap();
    let h = Http::new(&fake);
    let total = |start: &'static str, end: &'static str| {
        let h = &h;
        async move {
            let r =
                h.c.post(format!("{}/api/v1/admin/measures", h.base))
                    .bearer_auth("dash")
                    .json(
                        &json!({"keys": ["instance_follows"], "start_at": start, "end_at": end,
                              "instance_follows": {"domain": "old.example"}}),
                    )
                    .send()
                    .await
                    .unwrap();
            let v: Value = r.json().await.unwrap();
            v[0]["total"].as_str().unwrap().to_owned()
        }
    };
    // A recent window misses the 2019 follow; a window from before Mastodon existed counts
    // every follow relationship that exists now.
    assert_eq!(total("2026-01-01", "2026-01-31").await, "1");
    assert_eq!(total("2016-03-01", "2026-12-31").await, "2");
    fake.remove_follows("old.example");
    assert_eq!(total("2016-03-01", "2026-12-31").await, "0");
}

#[tokio::test]
async fn outage_after_k_requests_and_block_writes_are_recorded() {
    let fake = seeded(Flavor::Mastodon).await;
    let h = Http::new(&fake);
    fake.outage_after(1, 503);
    let (s, _) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "w1.example"), ("severity", "silence")],
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "w2.example")],
        )
        .await;
    assert_eq!(s, 503);
    fake.set_outage(None);
    let (s, _) = h
        .post(
            "/api/v1/admin/domain_blocks",
            Some("owner"),
            &[("domain", "w1.example")],
        )
        .await;
    assert_eq!(s, 422);
    let w: Vec<(String, String, u16)> = fake
        .block_writes()
        .into_iter()
        .filter(|w| w.domain.starts_with("w"))
        .map(|w| (w.method, w.domain, w.status))
        .collect();
    assert_eq!(
        w,
        [
            ("POST".to_owned(), "w1.example".to_owned(), 200),
            ("POST".to_owned(), "w1.example".to_owned(), 422)
        ]
    );
}
