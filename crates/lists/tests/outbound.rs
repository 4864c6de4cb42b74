#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The outbound guard on URL sources: with `Outbound::PublicOnly` a source on a loopback
//! address (by IP literal or by a name resolving there) is never fetched and the refusal is
//! shown as the source's error; with `Outbound::Any` (tests, private deployments) it is.

mod common;

use std::time::Duration;

use common::*;
use guildhall_db::db_test;
use guildhall_lists::sources::{
    create_source, refresh_source, source, Health, NewSource, RefreshOutcome, SourceSpec,
};
use guildhall_mastodon::Outbound;

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
    public_only_refuses_loopback_sources_and_any_fetches_them,
    |db| async move {
        let w = world(db).await;
        let srv = source_server().await;
        srv.set("a.csv", &mastodon_csv(&[("bad.example", "suspend")]), None);
        let literal = srv.url_of("a.csv");
        let name = literal.replace("127.0.0.1", "localhost");
        let mut guarded = w.svc.clone();
        guarded.client.outbound = Outbound::PublicOnly;

        for (label, url, expected) in [
            (
                "literal",
                literal.clone(),
                "127.0.0.1 is not a public address (loopback)",
            ),
            (
                "name",
                name,
                "localhost resolves only to non-public addresses",
            ),
        ] {
            let s = create_source(
                &w.db,
                &w.svc.keyring,
                w.coop,
                &actor(&w),
                &url_source(label, url),
            )
            .await
            .unwrap();
            let r = refresh_source(&guarded, s.id).await.unwrap();
            assert_eq!(r.outcome, RefreshOutcome::Failed, "{label}");
            let st = source(&w.db, w.coop, s.id).await.unwrap();
            assert_eq!(st.health, Health::Error);
            let err = st.last_error.unwrap();
            assert!(err.contains(expected), "{label}: {err}");
        }
        assert!(srv.statuses("a.csv").is_empty(), "the server was reached");

        // With Any the same source is fetched.
        let s = create_source(
            &w.db,
            &w.svc.keyring,
            w.coop,
            &actor(&w),
            &url_source("any", literal),
        )
        .await
        .unwrap();
        let r = refresh_source(&w.svc, s.id).await.unwrap();
        assert_ne!(r.outcome, RefreshOutcome::Failed);
        assert_eq!(source(&w.db, w.coop, s.id).await.unwrap().entry_count, 1);
        assert_eq!(srv.statuses("a.csv"), [200]);
    }
);
