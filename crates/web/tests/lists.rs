//! The shared blocklists over HTTP, on both backends: the published feeds (exact formats,
//! ETag and 304, token protection, the change feed replayed from the start equals the list,
//! re-imported through the engine), the pages and held changes, subscriptions, locks and
//! defederation votes of an instance organisation, and other organisations kept out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use common::*;
use guildhall_core::{OrgId, Role};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::{db_test, Db};
use guildhall_lists::feed::{replay, FeedDocument};
use guildhall_lists::lists::rebuild_list;
use guildhall_lists::sources::{self, NewSource, SourceSpec};
use guildhall_lists::{Actor, Entry};
use serde_json::{json, Value};

const MASTODON_HEADER: &str =
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate";

const FIRST: &str = "domain,severity,reject_media,public_comment\n\
    spam.example,suspend,true,spam wave\n\
    rude.example,silence,false,\n\
    gone-soon.example,suspend,false,\n\
    changes.example,silence,false,\n";

const SECOND: &str = "domain,severity,reject_media,public_comment\n\
    spam.example,suspend,true,spam wave\n\
    rude.example,silence,false,\n\
    changes.example,suspend,false,now worse\n\
    new.example,silence,false,\n";

/// An upload source with `contents` and a list over it (threshold 0, no holds), made through
/// the API by `c`; returns (source id, list id).
async fn source_and_list(c: &mut Client, org: OrgId, public: bool, contents: &str) -> (i64, i64) {
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org}/sources"),
            json!({"name": "pasted", "kind": "upload", "contents": contents}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let source = r.json()["source"]["id"].as_i64().unwrap();
    assert_eq!(r.json()["refresh"]["added"], 4, "{}", r.body);
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org}/lists"),
            json!({"name": "shared", "public": public, "threshold": "0",
                   "sources": [format!("{source}:1:suspend")]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let list = r.json()["list"]["id"].as_i64().unwrap();
    (source, list)
}

async fn upload(c: &mut Client, org: OrgId, source: i64, contents: &str) {
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org}/sources/{source}/upload"),
            json!({ "contents": contents }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Reads `bytes` through the engine, as an upload source of `org`: what a consumer importing
/// the published file would get.
async fn reimport(db: &Db, org: OrgId, bytes: &[u8]) -> BTreeMap<String, Entry> {
    let keys = guildhall_db::secrets::Keyring::new(
        guildhall_db::secrets::SecretKey::generate(),
        Vec::new(),
    );
    let s = sources::create_source(
        db,
        &keys,
        org,
        &Actor::worker(),
        &NewSource {
            name: format!("reimport {}", bytes.len()),
            spec: SourceSpec::Upload { format: None },
            refresh_every: std::time::Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    let r = sources::upload_source(db, org, &Actor::worker(), s.id, bytes)
        .await
        .unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    sources::source_entries(db, org, s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.domain.clone(), e))
        .collect()
}

/// The pages' accessibility rules (as `http.rs` checks the core pages): landmarks, the
/// labelled navigation, and every visible control with an id and a `<label for>`.
fn check_accessible(path: &str, html: &str) {
    for needle in [
        "<main id=\"main\"",
        "class=\"skip\" href=\"#main\"",
        "<html lang=\"en\">",
        "<nav aria-label=\"Main\">",
    ] {
        assert!(html.contains(needle), "{path}: no {needle}");
    }
    for tag in ["<input", "<select", "<textarea"] {
        for (i, _) in html.match_indices(tag) {
            let end = html[i..].find('>').map(|e| i + e).unwrap_or(html.len());
            let el = &html[i..end];
            if el.contains("type=\"hidden\"") {
                continue;
            }
            let id_at = el
                .find(" id=\"")
                .unwrap_or_else(|| panic!("{path}: control without id: {el}"));
            let id = &el[id_at + 5..];
            let id = &id[..id.find('"').unwrap_or(id.len())];
            assert!(
                html.contains(&format!("<label for=\"{id}\"")),
                "{path}: no label for #{id}"
            );
        }
    }
}

fn by_domain(entries: Vec<Entry>) -> BTreeMap<String, Entry> {
    entries.into_iter().map(|e| (e.domain.clone(), e)).collect()
}

/// The published entries from the API (the list's own view).
async fn api_entries(c: &mut Client, org: OrgId, list: i64) -> BTreeMap<String, Entry> {
    let r = c
        .get(&format!("/api/v1/orgs/{org}/lists/{list}/entries"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v: Vec<Entry> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_value(e["entry"].clone()).unwrap())
        .collect();
    by_domain(v)
}

db_test!(
    feeds_have_exact_formats_etags_and_token_protection,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let owner = account(&db, "owner@a.example", false).await;
        let org_a = org(&db, "Co-op A", owner).await;
        let mut c = signed_in(&db, &app, owner).await;
        let (_, list) = source_and_list(&mut c, org_a, false, FIRST).await;
        rebuild_list(&db, list).await.unwrap();
        let csv = format!("/lists/{list}/mastodon.csv");

        // Token-protected: without the token, or with a wrong one, the list does not exist.
        let mut anon = Client::new(app.clone());
        assert_eq!(anon.get(&csv).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            anon.get(&format!("{csv}?token=wrong")).await.status,
            StatusCode::NOT_FOUND
        );
        let r = c
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/lists/{list}/token"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let token = r.json()["token"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {token}");
        let r = anon
            .send(
                Method::GET,
                &csv,
                None,
                Vec::new(),
                &[("authorization", &bearer)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
        assert_eq!(r.body.lines().next(), Some(MASTODON_HEADER));
        assert_eq!(r.body.lines().count(), 5, "{}", r.body);
        let etag = r.headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        let by_query = anon.get(&format!("{csv}?token={token}")).await;
        assert_eq!(by_query.status, StatusCode::OK);
        assert_eq!(by_query.body, r.body);

        // The Mastodon CSV re-imports through the engine to the same list.
        let published = api_entries(&mut c, org_a, list).await;
        assert_eq!(published.len(), 4);
        let back = reimport(&db, org_a, r.body.as_bytes()).await;
        assert_eq!(back, published);

        // If-None-Match: 304 without a body, until the list changes.
        let r304 = anon
            .send(
                Method::GET,
                &csv,
                None,
                Vec::new(),
                &[("authorization", &bearer), ("if-none-match", &etag)],
            )
            .await;
        assert_eq!(r304.status, StatusCode::NOT_MODIFIED);
        assert!(r304.body.is_empty());
        assert_eq!(r304.headers["etag"].to_str().unwrap(), etag);

        // FediBlockHole CSV and JSON.
        let r = anon
            .get(&format!("/lists/{list}/fediblockhole.csv?token={token}"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
        assert!(
            r.body.starts_with(
                "domain,severity,reject_media,reject_reports,public_comment,obfuscate\r\n"
            ),
            "{}",
            r.body
        );
        assert_ne!(r.headers["etag"].to_str().unwrap(), etag);
        let r = anon
            .get(&format!("/lists/{list}/blocklist.json?token={token}"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "application/json");
        let arr = r.json();
        let arr = arr.as_array().unwrap();
        assert_eq!(arr.len(), 4);
        assert!(arr
            .iter()
            .any(|e| e["domain"] == "spam.example" && e["severity"] == "suspend"));

        // A changed list has a new ETag; the old one no longer gives 304.
        let snapshot = anon
            .get(&format!("/lists/{list}/changes?token={token}"))
            .await;
        assert_eq!(snapshot.status, StatusCode::OK, "{}", snapshot.body);
        let snap: FeedDocument = serde_json::from_str(&snapshot.body).unwrap();
        assert_eq!(snap.snapshot.as_ref().map(Vec::len), Some(4));
        let source = source_id(&mut c, org_a).await;
        upload(&mut c, org_a, source, SECOND).await;
        rebuild_list(&db, list).await.unwrap();
        let r = anon
            .send(
                Method::GET,
                &csv,
                None,
                Vec::new(),
                &[("authorization", &bearer), ("if-none-match", &etag)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_ne!(r.headers["etag"].to_str().unwrap(), etag);

        // The changes since the snapshot include the retraction, and the cursor moves on.
        let r = anon
            .get(&format!(
                "/lists/{list}/changes?token={token}&cursor={}",
                snap.cursor
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let doc: FeedDocument = serde_json::from_str(&r.body).unwrap();
        assert!(doc.cursor > snap.cursor);
        let ops: Vec<(String, String)> = doc
            .changes
            .iter()
            .map(|c| (c.domain.clone(), format!("{:?}", c.op)))
            .collect();
        assert!(
            ops.contains(&("gone-soon.example".to_owned(), "Remove".to_owned())),
            "{ops:?}"
        );
        assert!(ops.contains(&("new.example".to_owned(), "Add".to_owned())));
        assert!(ops.contains(&("changes.example".to_owned(), "Change".to_owned())));
        let etag2 = r.headers["etag"].to_str().unwrap().to_owned();
        let again = anon
            .send(
                Method::GET,
                &format!("/lists/{list}/changes?cursor={}", snap.cursor),
                None,
                Vec::new(),
                &[("authorization", &bearer), ("if-none-match", &etag2)],
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);

        // Replayed from the start, one change per page, the feed rebuilds the current list,
        // which is also what the published CSV re-imports to.
        let mut docs = Vec::new();
        let mut cursor = 0;
        loop {
            let r = anon
                .get(&format!(
                    "/lists/{list}/changes?token={token}&cursor={cursor}&limit=1"
                ))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let d: FeedDocument = serde_json::from_str(&r.body).unwrap();
            assert!(d.changes.len() <= 1);
            cursor = d.cursor;
            let more = d.more;
            docs.push(d);
            if !more {
                break;
            }
            assert!(docs.len() < 100, "the feed does not end");
        }
        let replayed = by_domain(replay(&docs));
        let published = api_entries(&mut c, org_a, list).await;
        assert_eq!(replayed, published);
        assert!(!replayed.contains_key("gone-soon.example"));
        assert_eq!(replayed["changes.example"].public_comment, "now worse");
        let csv_now = anon.get(&format!("{csv}?token={token}")).await;
        let back = reimport(&db, org_a, csv_now.body.as_bytes()).await;
        assert_eq!(back, replayed);

        // Bad cursors name the field; a cursor beyond the list's is refused.
        let r = anon
            .get(&format!("/lists/{list}/changes?token={token}&cursor=abc"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = anon
            .get(&format!(
                "/lists/{list}/changes?token={token}&cursor=999999"
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        // Made public, the feeds need no token; a new token replaces the old one.
        let r = c
            .json(
                Method::PUT,
                &format!("/api/v1/orgs/{org_a}/lists/{list}/visibility"),
                json!({"public": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(anon.get(&csv).await.status, StatusCode::OK);
        c.json(
            Method::PUT,
            &format!("/api/v1/orgs/{org_a}/lists/{list}/visibility"),
            json!({"public": false}),
        )
        .await;
        c.json(
            Method::POST,
            &format!("/api/v1/orgs/{org_a}/lists/{list}/token"),
            json!({}),
        )
        .await;
        assert_eq!(
            anon.get(&format!("{csv}?token={token}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            anon.get("/lists/999999/mastodon.csv").await.status,
            StatusCode::NOT_FOUND
        );
    }
);

async fn source_id(c: &mut Client, org: OrgId) -> i64 {
    let r = c.get(&format!("/api/v1/orgs/{org}/sources")).await;
    r.json()["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pasted")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

db_test!(
    pages_show_health_and_held_changes_with_evidence,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let owner = account(&db, "owner@a.example", false).await;
        let org_a = org(&db, "Co-op A", owner).await;
        let modr = account(&db, "mod@a.example", false).await;
        db.add_member(org_a, modr, Role::Moderator).await.unwrap();
        let mut c = signed_in(&db, &app, owner).await;

        // An upload source through the form; a bad row is reported with its line.
        let r = c
            .post_form(
                &format!("/orgs/{org_a}/sources"),
                &[
                    ("name", "Garden list"),
                    ("kind", "upload"),
                    (
                        "contents",
                        "domain,severity\nevil.example,suspend\nmeh.example,silence\nnot a domain!,suspend\n",
                    ),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = r.location().unwrap().to_owned();
        let r = c.get(&page).await;
        assert_eq!(r.status, StatusCode::OK);
        check_accessible("source page", &r.body);
        assert!(r.body.contains("Garden list"));
        assert!(r.body.contains("warnings"), "{}", r.body);
        assert!(r.body.contains("line 4"), "{}", r.body);
        let source: i64 = page.rsplit('/').next().unwrap().parse().unwrap();
        let r = c.get(&format!("/orgs/{org_a}/sources")).await;
        check_accessible("sources page", &r.body);
        assert!(r.body.contains("Garden list") && r.body.contains("warnings"));

        // A URL source without a URL is refused, naming the field.
        let r = c
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/sources"),
                json!({"name": "x", "kind": "url"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"]["field"], "url");

        // A list through the form that holds new suspends.
        let use_key = format!("use_{source}");
        let weight_key = format!("weight_{source}");
        let r = c
            .post_form(
                &format!("/orgs/{org_a}/lists"),
                &[
                    ("name", "Reviewed"),
                    ("threshold", "1"),
                    ("holds", "suspend"),
                    (use_key.as_str(), "block"),
                    (weight_key.as_str(), "2"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let list_page = r.location().unwrap().to_owned();
        let list: i64 = list_page.rsplit('/').next().unwrap().parse().unwrap();
        let summary = rebuild_list(&db, list).await.unwrap();
        assert_eq!((summary.published, summary.held), (1, 1));

        // The moderator sees the held suspend with its evidence and approves it.
        let mut m = signed_in(&db, &app, modr).await;
        let r = m.get(&list_page).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        check_accessible("list page (moderator)", &r.body);
        assert!(r.body.contains("evil.example"));
        assert!(r.body.contains("Garden list says suspend"), "{}", r.body);
        assert!(r.body.contains("meh.example"));
        // …but may not edit the list or add sources.
        assert_eq!(
            m.post_form(&format!("/orgs/{org_a}/sources"), &[("name", "x")])
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        let r = m
            .get(&format!("/api/v1/orgs/{org_a}/lists/{list}/held"))
            .await;
        let held = r.json()["changes"].as_array().unwrap().clone();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0]["domain"], "evil.example");
        assert_eq!(held[0]["audit"]["sources"][0]["name"], "Garden list");
        let change = held[0]["id"].as_i64().unwrap();
        let r = m
            .post_form(
                &format!("/orgs/{org_a}/lists/{list}/changes/{change}/approve"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = m.get(&format!("/api/v1/orgs/{org_a}/lists/{list}")).await;
        assert_eq!(r.json()["list"]["size"], 2);
        assert_eq!(r.json()["list"]["held"], 0);
        // Approving it again is a conflict, not a second publication.
        let r = m
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/lists/{list}/changes/{change}/approve"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

        // A new suspend held, then rejected with a reason (required).
        upload_form(
            &mut c,
            org_a,
            source,
            "domain,severity\nevil.example,suspend\nmeh.example,silence\nworse.example,suspend\n",
        )
        .await;
        let r = c.get(&format!("/orgs/{org_a}/sources/{source}")).await;
        check_accessible("source page after an upload", &r.body);
        assert!(r.body.contains("last-changes"), "{}", r.body);
        assert!(r.body.contains("worse.example"));
        let r = c
            .get(&format!("/api/v1/orgs/{org_a}/sources/{source}/changes"))
            .await;
        let ops: Vec<String> = r.json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["op"].as_str().unwrap(),
                    c["domain"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            ops,
            ["add evil.example", "add meh.example", "add worse.example"],
            "every refresh is kept as changes"
        );
        rebuild_list(&db, list).await.unwrap();
        let held = m
            .get(&format!("/api/v1/orgs/{org_a}/lists/{list}/held"))
            .await
            .json()["changes"]
            .clone();
        assert_eq!(held[0]["domain"], "worse.example");
        let change = held[0]["id"].as_i64().unwrap();
        let path = format!("/api/v1/orgs/{org_a}/lists/{list}/changes/{change}/reject");
        let r = m.json(Method::POST, &path, json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"]["field"], "reason");
        let r = m
            .json(
                Method::POST,
                &path,
                json!({"reason": "not enough evidence"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["change"]["status"], "rejected");
        let r = c.get(&list_page).await;
        assert!(r.body.contains("not enough evidence"), "{}", r.body);
        let r = c
            .get(&format!(
                "/api/v1/orgs/{org_a}/lists/{list}/changes?status=published"
            ))
            .await;
        assert_eq!(r.json()["changes"].as_array().unwrap().len(), 2);

        // Policy edit through the form: the holds go, the list is rebuilt with the change.
        let r = c
            .post_form(
                &format!("/orgs/{org_a}/lists/{list}/policy"),
                &[
                    ("plan", "max"),
                    ("threshold", "1"),
                    (use_key.as_str(), "block"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        rebuild_list(&db, list).await.unwrap();
        let r = c.get(&format!("/api/v1/orgs/{org_a}/lists/{list}")).await;
        assert_eq!(r.json()["list"]["policy"]["holds"], json!([]));
        assert_eq!(r.json()["list"]["size"], 3, "{}", r.body);
        // The page lists the entries with why each is there.
        let r = c.get(&list_page).await;
        assert!(r.body.contains("worse.example"), "{}", r.body);
        assert!(
            r.body
                .contains("1 source(s), score 100% of the trust weight"),
            "{}",
            r.body
        );

        // The index pages.
        let r = c.get(&format!("/orgs/{org_a}/lists")).await;
        assert_eq!(r.status, StatusCode::OK);
        check_accessible("lists page", &r.body);
        check_accessible("list page (owner)", &c.get(&list_page).await.body);
        assert!(r.body.contains("Reviewed"));
        assert_eq!(
            m.get(&format!("/orgs/{org_a}/lists")).await.status,
            StatusCode::OK
        );

        // Deleting needs the name typed.
        let r = c
            .post_form(
                &format!("/orgs/{org_a}/lists/{list}/delete"),
                &[("confirm", "wrong")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = c
            .post_form(
                &format!("/orgs/{org_a}/lists/{list}/delete"),
                &[("confirm", "Reviewed")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(c.get(&list_page).await.status, StatusCode::NOT_FOUND);
    }
);

async fn upload_form(c: &mut Client, org: OrgId, source: i64, contents: &str) {
    let r = c
        .post_form(
            &format!("/orgs/{org}/sources/{source}/upload"),
            &[("contents", contents)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

db_test!(another_organisations_admin_gets_404, |db| async move {
    let app = guildhall_web::router(state(&db));
    let owner = account(&db, "owner@a.example", false).await;
    let org_a = org(&db, "Co-op A", owner).await;
    let mut a = signed_in(&db, &app, owner).await;
    let (source, list) = source_and_list(&mut a, org_a, false, FIRST).await;
    let mut policy = guildhall_lists::lists::list(&db, Some(org_a), list)
        .await
        .unwrap()
        .policy;
    policy.holds = vec![guildhall_lists::lists::HoldKind::Any];
    let sources = vec![guildhall_lists::lists::ListSource::new(source)];
    guildhall_lists::lists::update_list(&db, org_a, &Actor::worker(), list, &policy, &sources)
        .await
        .unwrap();
    rebuild_list(&db, list).await.unwrap();
    let change = guildhall_lists::lists::held_changes(&db, org_a, list)
        .await
        .unwrap()[0]
        .id;

    let other = account(&db, "admin@b.example", false).await;
    let org_b = org(&db, "Co-op B", other).await;
    let mut b = signed_in(&db, &app, other).await;
    // Through their own organisation's paths, A's things do not exist.
    for path in [
        format!("/api/v1/orgs/{org_b}/lists/{list}"),
        format!("/api/v1/orgs/{org_b}/lists/{list}/entries"),
        format!("/api/v1/orgs/{org_b}/lists/{list}/held"),
        format!("/api/v1/orgs/{org_b}/lists/{list}/changes"),
        format!("/api/v1/orgs/{org_b}/sources/{source}"),
        format!("/api/v1/orgs/{org_b}/sources/{source}/entries"),
        format!("/orgs/{org_b}/lists/{list}"),
        format!("/orgs/{org_b}/sources/{source}"),
        // Through A's paths, A does not exist for them.
        format!("/api/v1/orgs/{org_a}/lists/{list}"),
        format!("/orgs/{org_a}/lists"),
        // A's token-protected feed without the token.
        format!("/lists/{list}/mastodon.csv"),
        format!("/lists/{list}/changes"),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/orgs/{org_b}/lists/{list}/changes/{change}/approve"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org_b}/lists/{list}/changes/{change}/reject"),
            json!({"reason": "x"}),
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org_b}/sources/{source}/upload"),
            json!({"contents": "domain\nx.example\n"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/orgs/{org_b}/lists/{list}"),
            json!({"plan": "min"}),
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org_b}/lists/{list}/token"),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/{org_b}/lists/{list}"),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/{org_b}/sources/{source}"),
            json!({}),
        ),
    ] {
        let r = b.json(method.clone(), &path, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.body
        );
    }
    // B's own list cannot take A's source.
    let r = b
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{org_b}/lists"),
            json!({"name": "steal", "sources": [source.to_string()]}),
        )
        .await;
    assert!(
        r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
        "{}",
        r.body
    );
    // Nothing changed for A.
    let held = guildhall_lists::lists::held_changes(&db, org_a, list)
        .await
        .unwrap();
    assert!(held.iter().any(|c| c.id == change));
    let r = a.get(&format!("/api/v1/orgs/{org_a}/lists/{list}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["list"]["policy"]["plan"], "max");
    assert_eq!(r.json()["list"]["has_token"], false);
});

db_test!(an_instance_subscribes_locks_and_votes, |db| async move {
    let app = guildhall_web::router(state(&db));
    let owner = account(&db, "owner@coop.example", false).await;
    let coop = org(&db, "Co-op", owner).await;
    let mut c = signed_in(&db, &app, owner).await;
    let (_, public_list) = source_and_list(&mut c, coop, true, FIRST).await;
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{coop}/lists"),
            json!({"name": "private", "public": false}),
        )
        .await;
    let private_list = r.json()["list"]["id"].as_i64().unwrap();
    let token = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{coop}/lists/{private_list}/token"),
            json!({}),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let admin = account(&db, "admin@social.example", false).await;
    let inst = db
        .create_organisation(
            &NewOrganisation::instance(
                "Social".parse().unwrap(),
                "social.example".parse().unwrap(),
            ),
            admin,
        )
        .await
        .unwrap()
        .id;
    let mut i = signed_in(&db, &app, admin).await;

    // Subscribe (automatic, limit 5) to the public list; the private one needs its token.
    let r = i
        .json(
            Method::PUT,
            &format!("/api/v1/orgs/{inst}/subscriptions/{public_list}"),
            json!({"mode": "automatic", "auto_limit": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["subscription"]["mode"], "automatic");
    assert_eq!(r.json()["subscription"]["auto_limit"], 5);
    let path = format!("/api/v1/orgs/{inst}/subscriptions/{private_list}");
    let r = i.json(Method::PUT, &path, json!({"mode": "review"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = i
        .json(
            Method::PUT,
            &path,
            json!({"mode": "review", "token": "nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = i
        .json(
            Method::PUT,
            &path,
            json!({"mode": "review", "token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = i
        .json(Method::PUT, &path, json!({"mode": "sometimes"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["field"], "mode");
    let r = i.get(&format!("/api/v1/orgs/{inst}/subscriptions")).await;
    assert_eq!(r.json()["subscriptions"].as_array().unwrap().len(), 2);

    // A co-op cannot subscribe: it has no instance.
    let r = c
        .json(
            Method::PUT,
            &format!("/api/v1/orgs/{coop}/subscriptions/{public_list}"),
            json!({"mode": "review"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Locks, through the API and the page.
    let r = i
        .json(
            Method::PUT,
            &format!("/api/v1/orgs/{inst}/locks/Friends.Example"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["lock"]["domain"], "friends.example");
    let r = i
        .post_form(
            &format!("/orgs/{inst}/locks"),
            &[("domain", "pals.example")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = i.get(&format!("/api/v1/orgs/{inst}/locks")).await;
    let locks: Vec<Value> = r.json()["locks"].as_array().unwrap().clone();
    assert_eq!(locks.len(), 2);
    let r = i.get(&format!("/orgs/{inst}/subscriptions")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("friends.example") && r.body.contains("pals.example"));
    assert!(r.body.contains("shared") && r.body.contains("private"));
    assert!(r.body.contains("Nothing is waiting for your approval"));
    let path = format!("/api/v1/orgs/{inst}/locks/friends.example");
    assert_eq!(
        i.send(Method::DELETE, &path, None, Vec::new(), &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        i.send(Method::DELETE, &path, None, Vec::new(), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = i
        .json(
            Method::PUT,
            &format!("/api/v1/orgs/{inst}/locks/not%20a%20domain"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // No instance is connected, so nothing was planned: no pending diff, no history.
    let r = i.get(&format!("/api/v1/orgs/{inst}/pushes")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["awaiting"], Value::Null);
    assert_eq!(r.json()["pushes"], json!([]));
    let r = i.get(&format!("/api/v1/orgs/{inst}/pushes/12345")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Unsubscribe through the page.
    let r = i
        .post_form(
            &format!("/orgs/{inst}/subscriptions/remove"),
            &[("list", &private_list.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = i.get(&format!("/api/v1/orgs/{inst}/subscriptions")).await;
    assert_eq!(r.json()["subscriptions"].as_array().unwrap().len(), 1);

    // Coordinated defederation: the co-op proposes on its list; the instance votes.
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{coop}/defederation"),
            json!({"list": public_list.to_string(), "domain": "Harass.Example",
                       "severity": "suspend", "evidence": "a wave of harassment",
                       "links": ["https://evidence.example/1"], "deadline_hours": "24",
                       "quorum": "1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let proposal = r.json()["proposal"]["id"].as_i64().unwrap();
    assert_eq!(r.json()["proposal"]["domain"], "harass.example");
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{coop}/defederation"),
            json!({"list": public_list.to_string(), "domain": "x.example",
                       "severity": "suspend", "evidence": "e", "deadline_hours": "0"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["field"], "deadline_hours");
    let r = i
        .post_form(
            &format!("/orgs/{inst}/defederation/{proposal}/vote"),
            &[("vote", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = i
        .get(&format!("/api/v1/orgs/{inst}/defederation?open=true"))
        .await;
    let p = &r.json()["proposals"][0];
    assert_eq!((p["yes"].as_i64(), p["no"].as_i64()), (Some(1), Some(0)));
    // Changing the vote replaces it.
    let r = i
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{inst}/defederation/{proposal}/vote"),
            json!({"vote": "no"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["proposal"]["yes"], 0);
    assert_eq!(r.json()["proposal"]["no"], 1);
    // A co-op does not vote.
    let r = c
        .json(
            Method::POST,
            &format!("/api/v1/orgs/{coop}/defederation/{proposal}/vote"),
            json!({"vote": "yes"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = i.get(&format!("/orgs/{inst}/defederation")).await;
    assert_eq!(r.status, StatusCode::OK);
    check_accessible("defederation page (instance)", &r.body);
    check_accessible(
        "defederation page (co-op)",
        &c.get(&format!("/orgs/{coop}/defederation")).await.body,
    );
    assert!(r.body.contains("harass.example") && r.body.contains("a wave of harassment"));
});

/// Runs every due job of the lists' kinds (plans and pushes), as the worker would.
async fn drain(svc: &guildhall_lists::Services) -> Vec<String> {
    let kinds: Vec<String> = guildhall_lists::JOB_KINDS
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut ran = Vec::new();
    for _ in 0..50 {
        let Some(job) = svc
            .db
            .claim_job("test", &kinds, std::time::Duration::from_secs(60))
            .await
            .unwrap()
        else {
            break;
        };
        guildhall_lists::run_job(svc, &job)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", job.kind));
        svc.db.complete_job(job.id, "test").await.unwrap();
        ran.push(job.kind.clone());
    }
    ran
}

db_test!(
    an_instance_previews_approves_and_sees_what_was_pushed,
    |db| async move {
        use guildhall_db::instances::{ConnectMethod, NewConnection};
        use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
        use guildhall_fake_mastodon::{AccountSeed, BlockSeed, FakeMastodon, ADMINISTRATOR};

        let keys = Keyring::new(SecretKey::generate(), Vec::new());
        let svc = guildhall_lists::Services {
            db: db.clone(),
            keyring: std::sync::Arc::new(keys.clone()),
            client: guildhall_mastodon::ClientConfig {
                max_retries: 0,
                ..guildhall_mastodon::ClientConfig::default()
            },
        };
        let app = guildhall_web::router(state(&db).with_keyring(keys.clone()));
        let owner = account(&db, "owner@coop.example", false).await;
        let coop = org(&db, "Co-op", owner).await;
        let mut c = signed_in(&db, &app, owner).await;
        let (_, list) = source_and_list(&mut c, coop, true, FIRST).await;
        rebuild_list(&db, list).await.unwrap();

        // The instance: its admin already silenced rude.example by hand.
        let fake = FakeMastodon::builder()
            .account(AccountSeed::local(1, "admin").with_role("Owner", ADMINISTRATOR))
            .token(
                "tok",
                &["read", "write", "admin:read", "admin:write"],
                Some(1),
            )
            .domain_block(BlockSeed::new("rude.example", "silence"))
            .start()
            .await
            .unwrap();
        let admin = account(&db, "admin@social.example", false).await;
        let inst = db
            .create_organisation(
                &NewOrganisation::instance(
                    "Social".parse().unwrap(),
                    "social.example".parse().unwrap(),
                ),
                admin,
            )
            .await
            .unwrap()
            .id;
        db.save_instance_connection(
            &keys,
            inst,
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
        let mut i = signed_in(&db, &app, admin).await;
        let r = i
            .post_form(
                &format!("/orgs/{inst}/locks"),
                &[("domain", "changes.example")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = i
            .post_form(
                &format!("/orgs/{inst}/subscriptions"),
                &[("list", &list.to_string()), ("mode", "review")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        drain(&svc).await;

        // The pending diff: only the two blocks Guildhall may write.
        let r = i.get(&format!("/api/v1/orgs/{inst}/pushes")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        assert_eq!(v["awaiting"]["status"], "awaiting", "{v}");
        let push = v["awaiting"]["id"].as_i64().unwrap();
        let mut planned: Vec<String> = v["preview"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s["op"].as_str().unwrap(),
                    s["domain"].as_str().unwrap()
                )
            })
            .collect();
        planned.sort();
        assert_eq!(planned, ["create gone-soon.example", "create spam.example"]);
        let page = i.get(&format!("/orgs/{inst}/subscriptions")).await;
        check_accessible("subscriptions page with a pending diff", &page.body);
        assert!(page.body.contains("Apply this diff"), "{}", page.body);
        assert!(page.body.contains("spam.example") && page.body.contains("gone-soon.example"));
        assert!(
            fake.block_writes().is_empty(),
            "nothing written before approval"
        );

        // Another instance's admin cannot approve it.
        let r = c
            .post_form(&format!("/orgs/{coop}/pushes/{push}/approve"), &[])
            .await;
        assert_ne!(r.status, StatusCode::SEE_OTHER);

        // Approved through the page, the push runs and is in the history.
        let r = i
            .post_form(&format!("/orgs/{inst}/pushes/{push}/approve"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        drain(&svc).await;
        let mut blocked = fake.blocked_domains();
        blocked.sort();
        assert_eq!(
            blocked,
            ["gone-soon.example", "rude.example", "spam.example"],
            "the admin's block stays and the locked domain is left alone"
        );
        assert_eq!(fake.block_writes().len(), 2);
        let r = i.get(&format!("/api/v1/orgs/{inst}/pushes/{push}")).await;
        assert_eq!(r.json()["push"]["status"], "done", "{}", r.body);
        assert_eq!(r.json()["push"]["counts"]["done"], 2);
        let r = i.get(&format!("/api/v1/orgs/{inst}/managed")).await;
        let managed: Vec<String> = r.json()["managed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["domain"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(managed, ["gone-soon.example", "spam.example"]);
        let r = i.get(&format!("/orgs/{inst}/pushes/{push}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        check_accessible("push page", &r.body);
        assert!(r.body.contains("spam.example") && r.body.contains(">done<"));
        let r = i.get(&format!("/orgs/{inst}/subscriptions")).await;
        assert!(r.body.contains(&format!("/orgs/{inst}/pushes/{push}")));
        assert!(
            r.body.contains("Nothing is waiting for your approval"),
            "{}",
            r.body
        );
    }
);

/// A blocklist of about 1 MB in Mastodon's CSV format: the real rows of a published list
/// (oliphant's tier-3 unified list, May 2023), then generated rows in the same format. Returns
/// the text and each domain's severity.
fn big_list() -> (String, BTreeMap<String, String>) {
    let real = std::fs::read_to_string(
        "/work/shared/data/blocklists/oliphant-2023-05/blocklists/mastodon/_unified_tier3_blocklist.csv",
    )
    .unwrap();
    let mut text = String::new();
    let mut want = BTreeMap::new();
    for (i, line) in real.lines().enumerate() {
        text.push_str(line);
        text.push('\n');
        if i > 0 {
            let mut cols = line.split(',');
            let domain = cols.next().unwrap().to_owned();
            want.insert(domain, cols.next().unwrap().to_owned());
        }
    }
    let mut n = 0;
    while text.len() < 1_000_000 {
        let (domain, severity) = (
            format!("bulk-{n:06}.example"),
            ["suspend", "silence"][n % 2],
        );
        text.push_str(&format!(
            "{domain},{severity},False,False,generated row {n} for the upload test,False\n"
        ));
        want.insert(domain, severity.to_owned());
        n += 1;
    }
    (text, want)
}

/// A source's entries from the API: domain → severity.
async fn source_severities(c: &mut Client, org: OrgId, source: i64) -> BTreeMap<String, String> {
    let r = c
        .get(&format!("/api/v1/orgs/{org}/sources/{source}/entries"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e: Entry = serde_json::from_value(e.clone()).unwrap();
            (e.domain.clone(), e.severity.to_string())
        })
        .collect()
}

db_test!(
    a_megabyte_list_uploads_through_page_and_api,
    |db| async move {
        let st = state(&db);
        let config = (*st.config).clone();
        let app = guildhall_web::router(st);
        let owner = account(&db, "owner@a.example", false).await;
        let org_a = org(&db, "Co-op A", owner).await;
        let (text, want) = big_list();
        assert!(text.len() >= 1_000_000 && text.len() > 16 * config.body_limit);
        assert!(want.len() > 10_000);

        // The API: a new upload source with the contents, then new contents for it.
        // One signed-in client: session and CSRF for the pages, bearer token for the API.
        let mut c = signed_in(&db, &app, owner).await;
        let r = c
            .json(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/sources"),
                json!({"name": "big-api", "kind": "upload", "contents": text}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let api_source = r.json()["source"]["id"].as_i64().unwrap();
        assert_eq!(r.json()["refresh"]["added"], want.len(), "{}", r.body);
        assert_eq!(r.json()["source"]["entry_count"], want.len());
        assert_eq!(source_severities(&mut c, org_a, api_source).await, want);
        let smaller: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        upload(&mut c, org_a, api_source, &smaller).await;
        assert_eq!(source_severities(&mut c, org_a, api_source).await.len(), 1);
        upload(&mut c, org_a, api_source, &text).await;
        assert_eq!(source_severities(&mut c, org_a, api_source).await, want);

        // The pages: the form that adds a source with pasted contents, and the upload form.
        let r = c
            .post_form(
                &format!("/orgs/{org_a}/sources"),
                &[
                    ("name", "big-page"),
                    ("kind", "upload"),
                    ("contents", &text),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let id_of = |v: &Value, name: &str| {
            v["sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let all = c.get(&format!("/api/v1/orgs/{org_a}/sources")).await.json();
        let page_source = id_of(&all, "big-page");
        assert_eq!(source_severities(&mut c, org_a, page_source).await, want);
        upload_form(&mut c, org_a, page_source, &smaller).await;
        assert_eq!(source_severities(&mut c, org_a, page_source).await.len(), 1);
        upload_form(&mut c, org_a, page_source, &text).await;
        assert_eq!(source_severities(&mut c, org_a, page_source).await, want);

        // One byte over the upload limit: 413 on the upload routes, page and API; the source
        // keeps its contents.
        let over = vec![b'a'; config.upload_limit + 1];
        let csrf = c.csrf.clone().unwrap();
        for (path, ct, hdr) in [
            (
                format!("/api/v1/orgs/{org_a}/sources/{api_source}/upload"),
                "application/json",
                vec![],
            ),
            (
                format!("/orgs/{org_a}/sources/{page_source}/upload"),
                "application/x-www-form-urlencoded",
                vec![("x-csrf-token", csrf.as_str())],
            ),
        ] {
            let r = c
                .send(Method::POST, &path, Some(ct), over.clone(), &hdr)
                .await;
            assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        }
        assert_eq!(source_severities(&mut c, org_a, api_source).await, want);
        // A route that takes no upload still refuses a body one byte over the general limit
        // (the same size an upload route reads).
        let r = c
            .send(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/lists"),
                Some("application/json"),
                vec![b' '; config.body_limit + 1],
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        let r = c
            .send(
                Method::POST,
                &format!("/api/v1/orgs/{org_a}/sources/{api_source}/upload"),
                Some("application/json"),
                vec![b' '; config.body_limit + 1],
                &[],
            )
            .await;
        assert_ne!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
);

/// An instance organisation of `admin` connected to `fake` (token `tok`) under `keys`.
async fn connected_instance(
    db: &Db,
    keys: &guildhall_db::secrets::Keyring,
    admin: guildhall_core::AccountId,
    fake: &guildhall_fake_mastodon::FakeMastodon,
) -> OrgId {
    use guildhall_db::instances::{ConnectMethod, NewConnection};
    use guildhall_db::secrets::SecretValue;
    let inst = db
        .create_organisation(
            &NewOrganisation::instance(
                "Social".parse().unwrap(),
                "social.example".parse().unwrap(),
            ),
            admin,
        )
        .await
        .unwrap()
        .id;
    db.save_instance_connection(
        keys,
        inst,
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
    inst
}

db_test!(
    the_preview_shows_local_follows_of_each_proposed_suspend,
    |db| async move {
        use guildhall_db::secrets::{Keyring, SecretKey};
        use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ADMINISTRATOR};

        let keys = Keyring::new(SecretKey::generate(), Vec::new());
        let quick = guildhall_mastodon::ClientConfig {
            max_retries: 0,
            ..guildhall_mastodon::ClientConfig::default()
        };
        let svc = guildhall_lists::Services {
            db: db.clone(),
            keyring: std::sync::Arc::new(keys.clone()),
            client: quick.clone(),
        };
        let follow_cache = guildhall_lists::push::FollowCache::default();
        let app = guildhall_web::router(
            state(&db)
                .with_keyring(keys.clone())
                .with_mastodon_client(quick)
                .with_follow_cache(follow_cache.clone()),
        );
        let owner = account(&db, "owner@coop.example", false).await;
        let coop = org(&db, "Co-op", owner).await;
        let mut c = signed_in(&db, &app, owner).await;
        // Suspends: spam.example and gone-soon.example; silences: rude, changes.
        let (_, list) = source_and_list(&mut c, coop, true, FIRST).await;
        rebuild_list(&db, list).await.unwrap();
        // Two local follows of accounts on spam.example, one of them years old.
        let fake = FakeMastodon::builder()
            .account(AccountSeed::local(1, "admin").with_role("Owner", ADMINISTRATOR))
            .token(
                "tok",
                &["read", "write", "admin:read", "admin:write"],
                Some(1),
            )
            .follow("spam.example", "2018-04-01")
            .follow("spam.example", "2026-01-10")
            .start()
            .await
            .unwrap();
        let admin = account(&db, "admin@social.example", false).await;
        let inst = connected_instance(&db, &keys, admin, &fake).await;
        let mut i = signed_in(&db, &app, admin).await;
        let r = i
            .post_form(
                &format!("/orgs/{inst}/subscriptions"),
                &[("list", &list.to_string()), ("mode", "review")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        drain(&svc).await;

        // The API: the suspends are checked, the silences are not.
        let r = i.get(&format!("/api/v1/orgs/{inst}/pushes")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        let checked: BTreeMap<String, i64> = v["follows"]["checked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["domain"].as_str().unwrap().to_owned(),
                    d["follows"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            checked,
            BTreeMap::from([
                ("gone-soon.example".to_owned(), 0),
                ("spam.example".to_owned(), 2)
            ]),
            "{v}"
        );
        assert_eq!(v["follows"]["unchecked"], 0);
        assert!(v["follows"]["error"].is_null(), "{v}");
        assert!(fake.block_writes().is_empty(), "a preview writes nothing");

        // The page: the count beside spam.example, 0 beside gone-soon.example, nothing beside
        // the silences.
        let page = i.get(&format!("/orgs/{inst}/subscriptions")).await;
        assert_eq!(page.status, StatusCode::OK);
        check_accessible("subscriptions page with follow counts", &page.body);
        let row_of = |d: &str| -> String {
            let at = page
                .body
                .find(&format!("<td class=\"domain\">{d}</td>"))
                .unwrap_or_else(|| panic!("{d} not in the preview"));
            let end = page.body[at..].find("</tr>").unwrap();
            page.body[at..at + end].to_owned()
        };
        assert!(
            row_of("spam.example").contains("<td class=\"follows\">2</td>"),
            "{}",
            row_of("spam.example")
        );
        assert!(row_of("gone-soon.example").contains("<td class=\"follows\">0</td>"));
        assert!(row_of("rude.example").contains("<td class=\"follows\"></td>"));
        assert!(!page.body.contains("id=\"follow-error\""));
        // The awaiting push's own page and API entry show the same.
        let push = v["awaiting"]["id"].as_i64().unwrap();
        let r = i.get(&format!("/api/v1/orgs/{inst}/pushes/{push}")).await;
        assert_eq!(r.json()["follows"], v["follows"], "{}", r.body);
        let pp = i.get(&format!("/orgs/{inst}/pushes/{push}")).await;
        assert_eq!(pp.status, StatusCode::OK);
        check_accessible("awaiting push page with follow counts", &pp.body);
        let at = pp
            .body
            .find("<td class=\"domain\">spam.example</td>")
            .unwrap();
        let end = pp.body[at..].find("</tr>").unwrap();
        assert!(
            pp.body[at..at + end].contains("<td class=\"follows\">2</td>"),
            "{}",
            &pp.body[at..at + end]
        );

        // The instance goes down. Within the cache's lifetime the views show the counts asked
        // before and ask nothing.
        fake.set_outage(Some(503));
        let measures = || {
            fake.requests()
                .iter()
                .filter(|r| r.path.contains("measures"))
                .count()
        };
        let before = measures();
        let page = i.get(&format!("/orgs/{inst}/subscriptions")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!page.body.contains("id=\"follow-error\""), "{}", page.body);
        assert!(page.body.contains("<td class=\"follows\">2</td>"));
        assert_eq!(measures(), before, "cached counts are not asked again");
        // Once the counts are gone, the page still renders and says it could not ask.
        follow_cache.clear();
        let page = i.get(&format!("/orgs/{inst}/subscriptions")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("id=\"follow-error\""), "{}", page.body);
        assert!(page.body.contains("2 proposed suspend(s) were not checked"));
        assert!(page.body.contains("not checked"));
        let r = i.get(&format!("/api/v1/orgs/{inst}/pushes")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["follows"]["unchecked"], 2);
        assert!(r.json()["follows"]["error"].is_string());
    }
);

/// A `multipart/form-data` body of text fields and file parts `(field, file name, bytes)`.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----guildhall-test-boundary-7d1f";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, name, data) in files {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n\
                 Content-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

fn severities(m: &BTreeMap<String, Entry>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(d, e)| (d.clone(), e.severity.to_string()))
        .collect()
}

db_test!(
    a_list_file_uploads_through_the_page_forms,
    |db| async move {
        let app = guildhall_web::router(state(&db));
        let owner = account(&db, "owner@coop.example", false).await;
        let coop = org(&db, "Co-op", owner).await;
        let mut c = signed_in(&db, &app, owner).await;
        let csrf = c.csrf.clone().unwrap();
        let dir = "/work/shared/data/blocklists/gardenfence";
        let first = std::fs::read(format!("{dir}/gardenfence-mastodon.csv")).unwrap();
        let second = std::fs::read(
            "/work/shared/data/blocklists/oliphant-2023-05/blocklists/mastodon.art.csv",
        )
        .unwrap();
        let want_first = severities(&reimport(&db, coop, &first).await);
        let want_second = severities(&reimport(&db, coop, &second).await);
        assert!(want_first.len() > 100, "{}", want_first.len());
        assert_ne!(want_first, want_second);

        // The page forms are multipart forms with a file input.
        let page = c.get(&format!("/orgs/{coop}/sources")).await;
        assert!(page.body.contains("enctype=\"multipart/form-data\""));
        assert!(page.body.contains("type=\"file\" accept="));
        check_accessible("sources page with the file input", &page.body);

        // A new upload source from a file, without a name: the file's name is its name.
        let (ct, body) = multipart(
            &[("csrf_token", &csrf), ("kind", "upload")],
            &[("file", "gardenfence-mastodon.csv", &first)],
        );
        let r = c
            .send(
                Method::POST,
                &format!("/orgs/{coop}/sources"),
                Some(&ct),
                body,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let s = sources::sources(&db, coop)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name == "gardenfence-mastodon.csv")
            .expect("a source named after the file");
        assert_eq!(source_severities(&mut c, coop, s.id).await, want_first);
        let page = c.get(&format!("/orgs/{coop}/sources/{}", s.id)).await;
        assert!(page.body.contains("enctype=\"multipart/form-data\""));
        check_accessible("upload source page with the file input", &page.body);

        // Replaced by another file through the upload form: every row of the new file.
        let path = format!("/orgs/{coop}/sources/{}/upload", s.id);
        let (ct, body) = multipart(
            &[("csrf_token", &csrf)],
            &[("file", "mastodon.art.csv", &second)],
        );
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(source_severities(&mut c, coop, s.id).await, want_second);

        // The textarea still works in the same multipart form (no file chosen).
        let (ct, body) = multipart(
            &[("csrf_token", &csrf), ("contents", "only.example\n")],
            &[("file", "", b"")],
        );
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(source_severities(&mut c, coop, s.id).await.len(), 1);

        // No file and no contents: 400 naming the file field; the source is unchanged.
        let (ct, body) = multipart(&[("csrf_token", &csrf)], &[]);
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.body.contains("Field: <code>file</code>"), "{}", r.body);
        // A file that is not UTF-8: 400 naming the field, the source is unchanged.
        let mut latin1 = b"caf".to_vec();
        latin1.extend_from_slice(&[0xE9, b'.', b'e', b'x', b'\n']);
        let (ct, body) = multipart(&[("csrf_token", &csrf)], &[("file", "latin1.txt", &latin1)]);
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.body.contains("Field: <code>file</code>"), "{}", r.body);
        assert!(r.body.contains("UTF-8"), "{}", r.body);
        // Without the CSRF token the multipart form is refused too.
        let (ct, body) = multipart(&[], &[("file", "x.csv", &first)]);
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // A broken multipart body: 400.
        let r = c
            .send(
                Method::POST,
                &path,
                Some("multipart/form-data; boundary=nope"),
                b"--other\r\nnot a part".to_vec(),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(source_severities(&mut c, coop, s.id).await.len(), 1);
    }
);

db_test!(
    a_multipart_upload_keeps_the_routes_upload_limit,
    |db| async move {
        let base = state(&db);
        let config = guildhall_web::WebConfig {
            upload_limit: 3 * 1024 * 1024,
            ..(*base.config).clone()
        };
        let app = guildhall_web::router(guildhall_web::AppState::new(db.clone(), config));
        let owner = account(&db, "owner@coop.example", false).await;
        let coop = org(&db, "Co-op", owner).await;
        let mut c = signed_in(&db, &app, owner).await;
        let csrf = c.csrf.clone().unwrap();
        let (source, _) = source_and_list(&mut c, coop, false, FIRST).await;
        let path = format!("/orgs/{coop}/sources/{source}/upload");
        // Over axum's default multipart limit (2 MB), within the route's upload limit (3 MiB).
        let mut small = b"domain,severity\n".to_vec();
        let mut i = 0;
        while small.len() < 2_300_000 {
            small.extend_from_slice(format!("domain-{i:07}.example,silence\n").as_bytes());
            i += 1;
        }
        let (ct, body) = multipart(&[("csrf_token", &csrf)], &[("file", "s.csv", &small)]);
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(source_severities(&mut c, coop, source).await.len(), i);
        let mut big = small.clone();
        big.extend_from_slice(&small);
        let (ct, body) = multipart(&[("csrf_token", &csrf)], &[("file", "b.csv", &big)]);
        let r = c.send(Method::POST, &path, Some(&ct), body, &[]).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    }
);
