#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Sources: conditional refresh, stored changes, failures keeping the last good state,
//! malformed uploads keeping their good rows, the refresh schedule.

mod common;

use std::time::Duration;

use common::*;
use guildhall_db::db_test;
use guildhall_db::jobs::JobState;
use guildhall_lists::sources::{
    self, create_source, refresh_source, request_refresh, source, source_changes, source_entries,
    upload_source, Health, NewSource, RefreshOutcome, SourceSpec,
};
use guildhall_lists::{ChangeOp, Severity};

fn url_source(name: &str, url: String) -> NewSource {
    NewSource {
        name: name.into(),
        spec: SourceSpec::Url {
            url,
            format: None,
            bearer: None,
        },
        refresh_every: Duration::from_secs(3600),
    }
}

db_test!(
    conditional_refresh_stores_changes_and_failures_keep_the_last_good_state,
    |db| async move {
        let w = world(db).await;
        let srv = source_server().await;
        srv.set(
            "a.csv",
            &mastodon_csv(&[
                ("one.example", "suspend"),
                ("two.example", "silence"),
                ("three.example", "suspend"),
            ]),
            Some("\"v1\""),
        );
        let s = create_source(
            &w.db,
            &w.svc.keyring,
            w.coop,
            &actor(&w),
            &url_source("A", srv.url_of("a.csv")),
        )
        .await
        .unwrap();
        let r1 = refresh_source(&w.svc, s.id).await.unwrap();
        assert_eq!(r1.outcome, RefreshOutcome::Changed);
        assert_eq!((r1.added, r1.changed, r1.removed), (3, 0, 0));
        let ch = source_changes(&w.db, w.coop, s.id, Some(r1.id), None, 100)
            .await
            .unwrap();
        assert_eq!(ch.len(), 3);
        assert!(ch
            .iter()
            .all(|c| c.op == ChangeOp::Add && c.before.is_none()));

        // Second time: the server answers 304 to If-None-Match; nothing is stored.
        let r2 = refresh_source(&w.svc, s.id).await.unwrap();
        assert_eq!(r2.outcome, RefreshOutcome::NotModified);
        assert_eq!(srv.statuses("a.csv"), vec![200, 304]);
        assert_eq!(
            source_changes(&w.db, w.coop, s.id, None, None, 100)
                .await
                .unwrap()
                .len(),
            3
        );

        // A new version: one removed, one changed, one added.
        srv.set(
            "a.csv",
            &mastodon_csv(&[
                ("one.example", "suspend"),
                ("two.example", "suspend"),
                ("four.example", "silence"),
            ]),
            Some("\"v2\""),
        );
        let r3 = refresh_source(&w.svc, s.id).await.unwrap();
        assert_eq!(
            (r3.outcome, r3.added, r3.changed, r3.removed),
            (RefreshOutcome::Changed, 1, 1, 1)
        );
        let ch = source_changes(&w.db, w.coop, s.id, Some(r3.id), None, 100)
            .await
            .unwrap();
        let two = ch.iter().find(|c| c.domain == "two.example").unwrap();
        assert_eq!(two.op, ChangeOp::Change);
        assert_eq!(two.before.as_ref().unwrap().severity, Severity::Silence);
        assert_eq!(two.after.as_ref().unwrap().severity, Severity::Suspend);
        assert!(ch
            .iter()
            .any(|c| c.domain == "three.example" && c.op == ChangeOp::Remove));

        // The server fails: the last good state is kept and the error shown.
        srv.fail("a.csv", 500);
        let r4 = refresh_source(&w.svc, s.id).await.unwrap();
        assert_eq!(r4.outcome, RefreshOutcome::Failed);
        let st = source(&w.db, w.coop, s.id).await.unwrap();
        assert_eq!(st.health, Health::Error);
        assert!(
            st.last_error.as_deref().unwrap().contains("500"),
            "{:?}",
            st.last_error
        );
        let names: Vec<String> = source_entries(&w.db, w.coop, s.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.domain)
            .collect();
        assert_eq!(names, ["four.example", "one.example", "two.example"]);

        // An HTML page served with 200 is not a list: refused, state kept.
        srv.set("a.csv", "<html><body>maintenance</body></html>", None);
        let r5 = refresh_source(&w.svc, s.id).await.unwrap();
        assert_eq!(r5.outcome, RefreshOutcome::Failed);
        assert!(
            r5.error.as_deref().unwrap().contains("no usable entry"),
            "{:?}",
            r5.error
        );
        assert_eq!(source_entries(&w.db, w.coop, s.id).await.unwrap().len(), 3);

        // Recovery clears the error.
        srv.set(
            "a.csv",
            &mastodon_csv(&[("one.example", "suspend")]),
            Some("\"v3\""),
        );
        let r6 = refresh_source(&w.svc, s.id).await.unwrap();
        assert_eq!((r6.outcome, r6.removed), (RefreshOutcome::Changed, 2));
        let st = source(&w.db, w.coop, s.id).await.unwrap();
        assert_eq!((st.health, st.last_error), (Health::Ok, None));
        assert_eq!(st.etag.as_deref(), Some("\"v3\""));
        let hist = sources::refreshes(&w.db, w.coop, s.id, 10).await.unwrap();
        assert_eq!(hist.len(), 6);
        assert_eq!(hist[0].id, r6.id, "newest first");
        // Failures are in the audit log.
        let audit = w.db.audit_entries(Some(w.coop), None, 100).await.unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "lists.source.refresh_failed")
                .count(),
            2
        );
    }
);

db_test!(
    malformed_upload_keeps_good_rows_and_records_problems_with_lines,
    |db| async move {
        let w = world(db).await;
        let s = create_source(
            &w.db,
            &w.svc.keyring,
            w.coop,
            &actor(&w),
            &NewSource {
                name: "Uploaded".into(),
                spec: SourceSpec::Upload { format: None },
                refresh_every: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        let file = "domain,severity,reject_media\n\
                good.example,suspend,false\n\
                bad severity.example,suspend,false\n\
                other.example,explode,false\n\
                fine.example,silence,maybe\n\
                last.example,silence,true\n";
        let r = upload_source(&w.db, w.coop, &actor(&w), s.id, file.as_bytes())
            .await
            .unwrap();
        assert_eq!(r.outcome, RefreshOutcome::Changed);
        assert!(r.added >= 2, "{r:?}");
        let lines: Vec<&str> = r.problems.iter().map(|p| p.location.as_str()).collect();
        assert!(lines.contains(&"line 3"), "{:?}", r.problems);
        assert!(lines.contains(&"line 4"), "{:?}", r.problems);
        let names: Vec<String> = source_entries(&w.db, w.coop, s.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.domain)
            .collect();
        assert!(
            names.contains(&"good.example".to_string())
                && names.contains(&"last.example".to_string()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.contains(' ')));
        let st = source(&w.db, w.coop, s.id).await.unwrap();
        assert_eq!(st.health, Health::Warnings);
        assert_eq!(st.problems, r.problems);
        // Uploads are not fetched.
        assert!(request_refresh(&w.db, w.coop, s.id).await.is_err());
        // A file with nothing usable is a failed refresh and keeps the state.
        let bad = upload_source(
            &w.db,
            w.coop,
            &actor(&w),
            s.id,
            b"domain,severity\n\"unterminated,suspend\n",
        )
        .await
        .unwrap();
        assert_eq!(bad.outcome, RefreshOutcome::Failed);
        assert_eq!(
            source_entries(&w.db, w.coop, s.id).await.unwrap().len(),
            names.len()
        );
        // Both uploads are in the audit log, each naming its refresh.
        let uploads: Vec<serde_json::Value> =
            w.db.audit_entries(Some(w.coop), None, 50)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "lists.source.upload")
                .map(|e| serde_json::from_str(e.after_json.as_deref().unwrap()).unwrap())
                .collect();
        assert_eq!(uploads.len(), 2, "{uploads:?}");
        assert_eq!(uploads[0]["refresh_id"], bad.id);
        assert_eq!(uploads[0]["outcome"], "failed");
        assert_eq!(uploads[1]["refresh_id"], r.id);
        assert_eq!(uploads[1]["added"], r.added);
        // An upload whose audit entry cannot be written is not stored either.
        guildhall_db::on_pool!(&w.db, p => sqlx::query("DELETE FROM audit_head").execute(p).await
            .map(|r| r.rows_affected()))
        .unwrap();
        let file2 = "domain,severity\nnew.example,suspend\n";
        assert!(
            upload_source(&w.db, w.coop, &actor(&w), s.id, file2.as_bytes())
                .await
                .is_err()
        );
        let after: Vec<String> = source_entries(&w.db, w.coop, s.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.domain)
            .collect();
        assert_eq!(after, names);
    }
);

db_test!(refreshes_are_scheduled_by_jobs, |db| async move {
    let w = world(db).await;
    let srv = source_server().await;
    srv.set("s.csv", &mastodon_csv(&[("x.example", "suspend")]), None);
    let s = create_source(
        &w.db,
        &w.svc.keyring,
        w.coop,
        &actor(&w),
        &url_source("S", srv.url_of("s.csv")),
    )
    .await
    .unwrap();
    let (ran, errors) = drain(&w.svc, 10).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ran, ["lists.refresh"]);
    assert_eq!(source(&w.db, w.coop, s.id).await.unwrap().entry_count, 1);
    // The next refresh waits for the interval.
    let queued = w.db.jobs_in_state(JobState::Queued, 10).await.unwrap();
    let next: Vec<_> = queued
        .iter()
        .filter(|j| j.kind == "lists.refresh")
        .collect();
    assert_eq!(next.len(), 1);
    assert!(next[0].run_at.0 > guildhall_core::Timestamp::now().0 + 3_000_000);
    // A manual refresh runs now, without starting a second schedule.
    assert!(request_refresh(&w.db, w.coop, s.id).await.unwrap());
    let (ran, _) = drain(&w.svc, 10).await;
    assert_eq!(ran, ["lists.refresh"]);
    let queued = w.db.jobs_in_state(JobState::Queued, 10).await.unwrap();
    assert_eq!(
        queued.iter().filter(|j| j.kind == "lists.refresh").count(),
        1
    );
});

db_test!(
    feed_sources_follow_another_guildhalls_change_feed,
    |db| async move {
        use axum::extract::State;
        use axum::http::Uri;
        use axum::routing::get;
        use guildhall_lists::feed::{feed, Access};
        use guildhall_lists::lists::{
            create_list, list_entries, rebuild_list, ListSource, NewList, Policy,
        };

        let w = world(db).await;
        // The publishing side: an uploaded source and a public list, served as a change feed.
        let up = create_source(
            &w.db,
            &w.svc.keyring,
            w.coop,
            &actor(&w),
            &NewSource {
                name: "up".into(),
                spec: SourceSpec::Upload { format: None },
                refresh_every: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        let rows = |r: &[(&str, &str)]| mastodon_csv(r).into_bytes();
        upload_source(
            &w.db,
            w.coop,
            &actor(&w),
            up.id,
            &rows(&[
                ("a.example", "suspend"),
                ("b.example", "silence"),
                ("c.example", "suspend"),
            ]),
        )
        .await
        .unwrap();
        let l = create_list(
            &w.db,
            w.coop,
            &actor(&w),
            &NewList {
                name: "Published".into(),
                description: String::new(),
                public: true,
                policy: Policy::default(),
                sources: vec![ListSource::new(up.id)],
            },
        )
        .await
        .unwrap();
        rebuild_list(&w.db, l.id).await.unwrap();
        #[derive(Clone)]
        struct St(guildhall_db::Db, i64);
        async fn serve_feed(State(St(db, id)): State<St>, uri: Uri) -> axum::response::Response {
            use axum::response::IntoResponse;
            let since = uri
                .query()
                .and_then(|q| q.strip_prefix("since="))
                .and_then(|v| v.parse().ok());
            let doc = feed(&db, Access::Anonymous, id, since, 2).await.unwrap();
            serde_json::to_string(&doc).unwrap().into_response()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/feed", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/feed", get(serve_feed))
            .with_state(St(w.db.clone(), l.id));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // The consuming side.
        let fs = create_source(
            &w.db,
            &w.svc.keyring,
            w.coop,
            &actor(&w),
            &NewSource {
                name: "their feed".into(),
                spec: SourceSpec::Feed { url, token: None },
                refresh_every: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        let want = |w: &World| {
            let db = w.db.clone();
            let id = l.id;
            async move {
                list_entries(&db, None, id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.entry)
                    .collect::<Vec<_>>()
            }
        };
        let r = refresh_source(&w.svc, fs.id).await.unwrap();
        assert_eq!((r.outcome, r.added), (RefreshOutcome::Changed, 3));
        assert_eq!(
            source_entries(&w.db, w.coop, fs.id).await.unwrap(),
            want(&w).await
        );
        let cursor = source(&w.db, w.coop, fs.id)
            .await
            .unwrap()
            .feed_cursor
            .unwrap();
        // Changes upstream, including a retraction, arrive through the cursor (paged by 2).
        upload_source(
            &w.db,
            w.coop,
            &actor(&w),
            up.id,
            &rows(&[
                ("a.example", "silence"),
                ("c.example", "suspend"),
                ("d.example", "suspend"),
                ("e.example", "noop"),
            ]),
        )
        .await
        .unwrap();
        rebuild_list(&w.db, l.id).await.unwrap();
        let r = refresh_source(&w.svc, fs.id).await.unwrap();
        assert_eq!((r.added, r.changed, r.removed), (2, 1, 1));
        assert_eq!(
            source_entries(&w.db, w.coop, fs.id).await.unwrap(),
            want(&w).await
        );
        assert!(
            source(&w.db, w.coop, fs.id)
                .await
                .unwrap()
                .feed_cursor
                .unwrap()
                > cursor
        );
        let r = refresh_source(&w.svc, fs.id).await.unwrap();
        assert_eq!(r.outcome, RefreshOutcome::Unchanged);
    }
);

db_test!(
    instance_sources_read_the_admin_or_the_public_list,
    |db| async move {
        use guildhall_fake_mastodon::BlockSeed;
        let w = world(db).await;
        let f = fake(|b| {
            b.domain_block(BlockSeed {
                private_comment: Some("internal note".into()),
                ..BlockSeed::new("loud.example", "silence").public_comment("spam")
            })
            .domain_block(BlockSeed::new("hidden-domain.example", "suspend").obfuscated())
            .domain_block(BlockSeed::new("gone.example", "suspend"))
        })
        .await;
        let org = instance_org(&w, "member.example", &f).await;
        let inst = w.db.instance_of_org(org).await.unwrap().unwrap();
        // The co-op may read the admin list only as the instance's moderation co-op.
        link_for_moderation(&w, inst.id, w.coop).await;
        let mk = |admin: bool| NewSource {
            name: format!("member admin={admin}"),
            spec: SourceSpec::Instance {
                instance_id: inst.id,
                admin,
            },
            refresh_every: Duration::from_secs(3600),
        };
        let admin = create_source(&w.db, &w.svc.keyring, w.coop, &actor(&w), &mk(true))
            .await
            .unwrap();
        let public = create_source(&w.db, &w.svc.keyring, w.coop, &actor(&w), &mk(false))
            .await
            .unwrap();
        refresh_source(&w.svc, admin.id).await.unwrap();
        refresh_source(&w.svc, public.id).await.unwrap();
        let names =
            |v: Vec<guildhall_lists::Entry>| v.into_iter().map(|e| e.domain).collect::<Vec<_>>();
        assert_eq!(
            names(source_entries(&w.db, w.coop, admin.id).await.unwrap()),
            ["gone.example", "hidden-domain.example", "loud.example"]
        );
        assert!(
            source_entries(&w.db, w.coop, admin.id)
                .await
                .unwrap()
                .iter()
                .all(|e| e.private_comment.is_empty()),
            "the instance's private notes are not copied"
        );
        // The public list obfuscates one domain: kept apart (for digest matching), never a domain.
        assert_eq!(
            names(source_entries(&w.db, w.coop, public.id).await.unwrap()),
            ["gone.example", "loud.example"]
        );
        // A disconnected instance fails the admin source, which keeps its last state.
        w.db.disconnect_instance(inst.id).await.unwrap();
        let r = refresh_source(&w.svc, admin.id).await.unwrap();
        assert_eq!(r.outcome, RefreshOutcome::Failed);
        assert!(r.error.unwrap().contains("not connected"));
        assert_eq!(
            source_entries(&w.db, w.coop, admin.id).await.unwrap().len(),
            3
        );
    }
);
