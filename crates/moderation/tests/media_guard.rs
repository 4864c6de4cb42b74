//! Copying reported media goes through the outbound guard: with `Outbound::PublicOnly`, media
//! whose URL points at a loopback or private address is not fetched (the reason is recorded on
//! the media item) while the report, its statuses and the case are kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use guildhall_db::{db_test, on_pool};
use guildhall_mastodon::net::Outbound;
use guildhall_moderation::model::CopyState;
use guildhall_moderation::*;

db_test!(
    public_only_media_copy_refuses_loopback_and_keeps_the_report,
    |db| async move {
        // The fake instance listens on 127.0.0.1, so its media URLs are loopback addresses.
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        let ia = w.instances[0].id;
        // Ingest with the instance reachable (the media job is queued, not run yet).
        let r = sync_instance(&w.services, ia).await.unwrap();
        assert_eq!(r.stored, 1, "{r:?}");
        let queued: i64 = on_pool!(&db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'moderation.media' AND state = 'queued'")
            .fetch_one(p).await)
        .unwrap();
        assert_eq!(queued, 1);

        // The jobs run with a public-only client: the media job must not fetch the bytes.
        let mut guarded = w.services.clone();
        guarded.client.outbound = Outbound::PublicOnly;
        drain(&guarded).await;

        let s = w.scope(w.m1).await;
        let cases = queue(&db, &s, &QueueFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .cases;
        assert_eq!(cases.len(), 1, "the report is kept: {cases:?}");
        let view = case(&db, &s, cases[0].id).await.unwrap();
        assert_eq!(view.reports.len(), 1);
        let st = &view.reports[0].statuses[0];
        assert_eq!(st.content, "<p>buy now</p>", "the status is kept");
        let m = &st.media[0];
        assert_eq!(m.copy_state, CopyState::Failed, "{m:?}");
        let why = m.copy_error.clone().unwrap_or_default();
        assert!(
            why.contains("not fetched") && why.contains("not a public address"),
            "{why}"
        );
        assert!(m.url.is_some(), "the URL is kept");
        assert!(media(&db, &s, m.id).await.is_err(), "no bytes were stored");
        // Refused once, not retried: no media job is left waiting or dead.
        let left: i64 = on_pool!(&db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'moderation.media' AND state <> 'done'")
            .fetch_one(p).await)
        .unwrap();
        assert_eq!(left, 0);
    }
);

db_test!(any_outbound_still_copies_loopback_media, |db| async move {
    let a = fake(&[spam_report(10)]).await;
    let w = world(&db, &[&a]).await;
    sync_instance(&w.services, w.instances[0].id).await.unwrap();
    assert_eq!(w.services.client.outbound, Outbound::Any);
    drain(&w.services).await;
    let s = w.scope(w.m1).await;
    let cases = queue(&db, &s, &QueueFilter::default(), PageRequest::default())
        .await
        .unwrap()
        .cases;
    let view = case(&db, &s, cases[0].id).await.unwrap();
    let m = &view.reports[0].statuses[0].media[0];
    assert_eq!(m.copy_state, CopyState::Copied, "{m:?}");
});
