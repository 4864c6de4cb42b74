#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Instance sources need consent: reading an instance's admin domain-block list (through its
//! stored token) is allowed only to the instance's own organisation and to the co-op it is
//! linked to for moderation; its public list is open to everyone.

mod common;

use std::time::Duration;

use common::*;
use guildhall_core::OrgId;
use guildhall_db::db_test;
use guildhall_lists::sources::{
    create_source, refresh_source, source, NewSource, RefreshOutcome, SourceSpec,
};
use guildhall_lists::ListsError;

fn instance_source(instance_id: i64, admin: bool) -> NewSource {
    NewSource {
        name: format!("instance {instance_id} admin={admin}"),
        spec: SourceSpec::Instance { instance_id, admin },
        refresh_every: Duration::from_secs(3600),
    }
}

async fn create(
    w: &World,
    org: OrgId,
    instance_id: i64,
    admin: bool,
) -> guildhall_lists::Result<guildhall_lists::sources::Source> {
    create_source(
        &w.db,
        &w.svc.keyring,
        org,
        &actor(w),
        &instance_source(instance_id, admin),
    )
    .await
}

db_test!(
    admin_instance_sources_need_the_owner_or_the_linked_coop,
    |db| async move {
        let w = world(db).await;
        let f = fake(|b| b).await;
        let member = instance_org(&w, "member.example", &f).await;
        let inst = w.db.instance_of_org(member).await.unwrap().unwrap();
        let stranger = other_coop(&w, "Stranger Co-op").await;
        let linked = other_coop(&w, "Moderation Co-op").await;
        link_for_moderation(&w, inst.id, linked).await;

        // Another tenant: refused, with the same answer as for a missing instance.
        let refused = create(&w, stranger, inst.id, true).await.unwrap_err();
        assert!(
            matches!(refused, ListsError::NotFound("instance")),
            "{refused:?}"
        );
        let missing = create(&w, stranger, inst.id + 1000, true)
            .await
            .unwrap_err();
        assert_eq!(refused.to_string(), missing.to_string());
        // The co-op the test world starts with is not linked either.
        assert!(matches!(
            create(&w, w.coop, inst.id, true).await,
            Err(ListsError::NotFound("instance"))
        ));

        // The public list stays open to any organisation.
        let public = create(&w, stranger, inst.id, false).await.unwrap();
        assert!(!public.instance_admin);
        assert_eq!(public.instance_id, Some(inst.id));

        // The instance's own organisation and its moderation co-op may read the admin list.
        let own = create(&w, member, inst.id, true).await.unwrap();
        assert!(own.instance_admin);
        let coop = create(&w, linked, inst.id, true).await.unwrap();
        assert!(coop.instance_admin);
        assert_eq!(coop.org_id, linked);
        let r = refresh_source(&w.svc, coop.id).await.unwrap();
        assert_ne!(r.outcome, RefreshOutcome::Failed);

        // Unlinked later: the next refresh no longer reads the admin list.
        let db = &w.db;
        guildhall_db::on_pool!(db, p => sqlx::query("DELETE FROM moderation_links WHERE instance_id = $1")
            .bind(inst.id).execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
        let r = refresh_source(&w.svc, coop.id).await.unwrap();
        assert_eq!(r.outcome, RefreshOutcome::Failed);
        let st = source(&w.db, linked, coop.id).await.unwrap();
        assert_eq!(st.last_error.as_deref(), Some("the instance was removed"));
    }
);
