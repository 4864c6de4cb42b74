#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Three sources → a weighted list → two subscribed fake instances; ownership, locks,
//! retractions, automatic and held pushes; the published CSV and the change feed rebuild the
//! same list.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use guildhall_blocklist::{read_bytes, Format};
use guildhall_db::db_test;
use guildhall_fake_mastodon::{BlockSeed, FakeMastodon};
use guildhall_lists::feed::{self, feed, output, replay, Access, OutputFormat};
use guildhall_lists::lists::{
    create_list, list, list_entries, ListSource, NewList, Plan, Policy, ThresholdKind,
};
use guildhall_lists::push::{
    approve_push, awaiting_push, lock_domain, managed_blocks, push_steps, pushes, subscribe, Mode,
    PushStatus, StepOp, STAMP_PREFIX,
};
use guildhall_lists::sources::{create_source, refresh_source, NewSource, SourceSpec};
use guildhall_lists::{Entry, Severity};
use guildhall_mastodon::{Client, Secret};

async fn blocks(fake: &FakeMastodon) -> BTreeMap<String, (String, Option<String>)> {
    let c = Client::new(fake.url(), Some(Secret::new("tok")), client_config()).unwrap();
    c.all_domain_blocks()
        .await
        .unwrap()
        .into_iter()
        .map(|b| {
            (
                b.domain.clone(),
                (
                    b.effective_severity().as_str().to_owned(),
                    b.private_comment,
                ),
            )
        })
        .collect()
}

fn names(m: &BTreeMap<String, (String, Option<String>)>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

db_test!(three_sources_weighted_list_two_instances, |db| async move {
    let w = world(db).await;
    let srv = source_server().await;
    srv.set(
        "s1.csv",
        &mastodon_csv(&[
            ("a.example", "suspend"),
            ("c.example", "suspend"),
            ("admin.example", "silence"),
            ("retract.example", "silence"),
        ]),
        Some("\"1\""),
    );
    srv.set(
        "s2.csv",
        &mastodon_csv(&[("a.example", "silence"), ("admin.example", "silence")]),
        Some("\"1\""),
    );
    srv.set(
        "s3.csv",
        &mastodon_csv(&[
            ("b.example", "silence"),
            ("locked.example", "suspend"),
            ("retract.example", "silence"),
        ]),
        Some("\"1\""),
    );
    let mut ids = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let s = create_source(
            &w.db,
            &w.svc.keyring,
            w.coop,
            &actor(&w),
            &NewSource {
                name: name.into(),
                spec: SourceSpec::Url {
                    url: srv.url_of(&format!("{name}.csv")),
                    format: None,
                    bearer: None,
                },
                refresh_every: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        ids.push(s.id);
    }
    // s3 is trusted twice as much: alone it reaches the threshold of 2; s1 alone does not.
    let weights = [1.0, 1.0, 2.0];
    let l = create_list(
        &w.db,
        w.coop,
        &actor(&w),
        &NewList {
            name: "Shared".into(),
            description: "test".into(),
            public: true,
            policy: Policy {
                plan: Plan::Max,
                threshold: 2.0,
                threshold_type: ThresholdKind::Count,
                subdomains: false,
                holds: vec![],
            },
            sources: ids
                .iter()
                .zip(weights)
                .map(|(id, wt)| ListSource {
                    weight: wt,
                    ..ListSource::new(*id)
                })
                .collect(),
        },
    )
    .await
    .unwrap();

    let f1 = fake(|b| b.domain_block(BlockSeed::new("admin.example", "silence"))).await;
    let f2 = fake(|b| b).await;
    let i1 = instance_org(&w, "one.example", &f1).await;
    let i2 = instance_org(&w, "two.example", &f2).await;
    lock_domain(&w.db, i2, &actor(&w), "Locked.Example.")
        .await
        .unwrap();
    subscribe(&w.db, i1, &actor(&w), l.id, Mode::Automatic, 10, None)
        .await
        .unwrap();
    subscribe(&w.db, i2, &actor(&w), l.id, Mode::Automatic, 10, None)
        .await
        .unwrap();

    let (_, errors) = drain(&w.svc, 100).await;
    assert!(errors.is_empty(), "{errors:?}");
    let entries = list_entries(&w.db, None, l.id).await.unwrap();
    let got: Vec<(&str, Severity)> = entries
        .iter()
        .map(|e| (e.entry.domain.as_str(), e.entry.severity))
        .collect();
    assert_eq!(
        got,
        [
            ("a.example", Severity::Suspend),
            ("admin.example", Severity::Silence),
            ("b.example", Severity::Silence),
            ("locked.example", Severity::Suspend),
            ("retract.example", Severity::Silence),
        ]
    );
    // The audit record names the sources and their severities.
    let a = entries[0].audit.as_ref().unwrap();
    assert_eq!(
        a.sources
            .iter()
            .map(|s| (s.source_id, s.severity))
            .collect::<Vec<_>>(),
        [(ids[0], Severity::Suspend), (ids[1], Severity::Silence)]
    );
    assert!((a.score - 0.5).abs() < 1e-9, "{a:?}");

    let b1 = blocks(&f1).await;
    assert_eq!(
        names(&b1),
        [
            "a.example",
            "admin.example",
            "b.example",
            "locked.example",
            "retract.example"
        ]
    );
    assert_eq!(
        b1["admin.example"],
        ("silence".to_owned(), None),
        "the admin's block is untouched"
    );
    assert_eq!(
        b1["a.example"].1.as_deref(),
        Some(format!("{STAMP_PREFIX}Shared").as_str())
    );
    let b2 = blocks(&f2).await;
    assert_eq!(
        names(&b2),
        ["a.example", "admin.example", "b.example", "retract.example"],
        "the locked domain is left alone"
    );
    assert_eq!(managed_blocks(&w.db, i1).await.unwrap().len(), 4);
    assert!(!managed_blocks(&w.db, i1)
        .await
        .unwrap()
        .iter()
        .any(|m| m.domain == "admin.example"));

    // Upstream retractions: retract.example loses s3 (weight 1 left), admin.example loses s2.
    srv.set(
        "s1.csv",
        &mastodon_csv(&[
            ("a.example", "suspend"),
            ("c.example", "suspend"),
            ("retract.example", "silence"),
        ]),
        Some("\"2\""),
    );
    srv.set(
        "s2.csv",
        &mastodon_csv(&[("a.example", "silence")]),
        Some("\"2\""),
    );
    srv.set(
        "s3.csv",
        &mastodon_csv(&[("b.example", "silence"), ("locked.example", "suspend")]),
        Some("\"2\""),
    );
    for id in &ids {
        refresh_source(&w.svc, *id).await.unwrap();
    }
    let writes_before = f1.block_writes().len();
    let (_, errors) = drain(&w.svc, 100).await;
    assert!(errors.is_empty(), "{errors:?}");
    let b1 = blocks(&f1).await;
    assert_eq!(
        names(&b1),
        ["a.example", "admin.example", "b.example", "locked.example"]
    );
    assert_eq!(
        b1["admin.example"],
        ("silence".to_owned(), None),
        "a retraction never removes the admin's block"
    );
    let w1: Vec<_> = f1.block_writes()[writes_before..]
        .iter()
        .map(|x| (x.method.clone(), x.domain.clone()))
        .collect();
    assert_eq!(w1, [("DELETE".to_owned(), "retract.example".to_owned())]);
    assert!(
        !f1.block_writes()
            .iter()
            .any(|x| x.domain == "admin.example"),
        "no write ever touched the admin's block"
    );
    let b2 = blocks(&f2).await;
    assert_eq!(
        names(&b2),
        ["a.example", "b.example"],
        "managed blocks retracted on the other instance"
    );

    // A large change (12 new domains > limit 10) is held for approval on both instances.
    let mut rows: Vec<(String, &str)> = (0..12)
        .map(|i| (format!("big{i:02}.example"), "silence"))
        .collect();
    rows.push(("b.example".into(), "silence"));
    rows.push(("locked.example".into(), "suspend"));
    let rows_ref: Vec<(&str, &str)> = rows.iter().map(|(d, s)| (d.as_str(), *s)).collect();
    srv.set("s3.csv", &mastodon_csv(&rows_ref), Some("\"3\""));
    refresh_source(&w.svc, ids[2]).await.unwrap();
    let writes_before = (f1.block_writes().len(), f2.block_writes().len());
    let (_, errors) = drain(&w.svc, 100).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        (f1.block_writes().len(), f2.block_writes().len()),
        writes_before,
        "nothing written before approval"
    );
    let held = awaiting_push(&w.db, i1)
        .await
        .unwrap()
        .expect("a push awaiting approval");
    assert_eq!(held.status, PushStatus::Awaiting);
    let preview = push_steps(&w.db, i1, held.id).await.unwrap();
    assert_eq!(preview.len(), 12);
    assert!(preview
        .iter()
        .all(|s| s.op == StepOp::Create && s.domain.starts_with("big")));
    approve_push(&w.db, i1, &actor(&w), held.id, false)
        .await
        .unwrap();
    let (_, errors) = drain(&w.svc, 100).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(blocks(&f1).await.len(), 4 + 12);
    assert_eq!(blocks(&f2).await.len(), 2, "the other instance still waits");
    assert!(awaiting_push(&w.db, i2).await.unwrap().is_some());
    let hist = pushes(&w.db, i1, 10).await.unwrap();
    assert!(hist
        .iter()
        .any(|p| p.id == held.id && p.status == PushStatus::Done && p.counts.done == 12));
    // Another instance's push is not visible.
    assert!(push_steps(&w.db, i2, held.id).await.is_err());

    // The published Mastodon CSV re-imports through the engine to the same list.
    let want: Vec<Entry> = list_entries(&w.db, None, l.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry)
        .collect();
    let csv = output(&w.db, Access::Anonymous, l.id, OutputFormat::MastodonCsv)
        .await
        .unwrap();
    assert!(csv.body.starts_with(
        b"#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
    ));
    let back = read_bytes(&csv.body, "published.csv", None);
    assert!(back.problems.is_empty(), "{:?}", back.problems);
    let mut back: Vec<Entry> = back.entries.iter().map(Entry::from).collect();
    back.sort_by(|a, b| a.domain.cmp(&b.domain));
    assert_eq!(back, want);
    let fbh = output(
        &w.db,
        Access::Anonymous,
        l.id,
        OutputFormat::FediBlockHoleCsv,
    )
    .await
    .unwrap();
    let fbh = read_bytes(&fbh.body, "fbh.csv", Some(Format::Csv));
    assert_eq!(fbh.entries.len(), want.len());
    // The change feed replayed from the start (cursor 0), in small pages, rebuilds it too.
    let mut docs = Vec::new();
    let mut cursor = 0;
    loop {
        let d = feed(&w.db, Access::Anonymous, l.id, Some(cursor), 3)
            .await
            .unwrap();
        cursor = d.cursor;
        let more = d.more;
        docs.push(d);
        if !more {
            break;
        }
    }
    assert!(
        docs.iter()
            .flat_map(|d| &d.changes)
            .any(|c| c.op == guildhall_lists::ChangeOp::Remove),
        "retractions are in the feed"
    );
    assert_eq!(replay(&docs), want);
    let l_now = list(&w.db, None, l.id).await.unwrap();
    assert_eq!(cursor, l_now.seq);
    let snap = feed(&w.db, Access::Anonymous, l.id, None, 10)
        .await
        .unwrap();
    assert_eq!(
        (snap.cursor, snap.snapshot.clone().unwrap()),
        (l_now.seq, want.clone())
    );
    // ETags follow the sequence number.
    let again = output(&w.db, Access::Anonymous, l.id, OutputFormat::MastodonCsv)
        .await
        .unwrap();
    assert_eq!(again.etag, csv.etag);
    assert_ne!(
        feed::etag(l.id, l_now.seq, "mastodon_csv"),
        feed::etag(l.id, l_now.seq - 1, "mastodon_csv")
    );
    assert!(
        feed(&w.db, Access::Anonymous, l.id, Some(l_now.seq + 1), 10)
            .await
            .is_err()
    );
});
