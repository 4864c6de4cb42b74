//! Linking an instance to a co-op, on both databases: refused (naming what is missing) while the
//! instance has no working admin connection; a changed sync interval moves the sync that is
//! already scheduled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use guildhall_core::{AccountId, OrgId, Timestamp};
use guildhall_db::instances::{CheckResult, ConnectMethod, NewConnection};
use guildhall_db::secrets::SecretValue;
use guildhall_db::{db_test, on_pool, Db};
use guildhall_moderation::*;

/// The queued sync jobs of an instance: (run_at, created_at).
async fn queued_syncs(db: &Db, instance_id: i64) -> Vec<(i64, i64)> {
    on_pool!(db, p => sqlx::query_as::<_, (i64, i64)>(
        "SELECT run_at, created_at FROM jobs WHERE kind = 'moderation.sync' AND state = 'queued' \
         AND dedup_key IN ($1, $2)")
        .bind(format!("mod-sync:{instance_id}:0")).bind(format!("mod-sync:{instance_id}:1"))
        .fetch_all(p).await)
    .unwrap()
}

/// A sync handler computes the next run a moment before the job row is written.
fn about(scheduled_after: i64, interval: i64) -> bool {
    (interval - 5_000..=interval).contains(&scheduled_after)
}

async fn links_made(db: &Db) -> i64 {
    on_pool!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM moderation_links").fetch_one(p).await)
        .unwrap()
}

/// Why linking `instance` to `coop` (by `who`) is refused for want of a connection.
async fn refusal(db: &Db, who: AccountId, coop: OrgId, instance: i64) -> String {
    let err = link_instance(db, who, coop, instance, &settings())
        .await
        .unwrap_err();
    match err {
        ModError::ConnectionNeeded(msg) => msg,
        other => panic!("{other:?}"),
    }
}

db_test!(linking_needs_a_working_admin_connection, |db| async move {
    let a = fake(&[rude_report(11)]).await;
    let w = world(&db, &[]).await;
    let inst = add_instance(&db, &w.services.keyring, &a).await;

    // No token stored (disconnected): refused, nothing written, nothing scheduled.
    db.disconnect_instance(inst.id).await.unwrap();
    let msg = refusal(&db, inst.owner, w.coop, inst.id).await;
    assert!(msg.contains("not connected"), "{msg}");
    assert!(msg.contains("token"), "{msg}");
    assert_eq!(links_made(&db).await, 0);
    assert!(queued_syncs(&db, inst.id).await.is_empty());
    assert!(!audit_actions(&db)
        .await
        .contains(&"moderation.link".to_owned()));

    // Connected, but its last check found a scope missing: refused, naming the problem.
    db.save_instance_connection(
        &w.services.keyring,
        inst.org,
        &NewConnection {
            base_url: a.url().to_owned(),
            method: ConnectMethod::Token,
            client: None,
            token: SecretValue::new(TOKEN.as_bytes().to_vec()),
            scopes: None,
        },
    )
    .await
    .unwrap();
    let problem = "The token may not read reports (admin:read:reports).".to_owned();
    db.record_instance_check(inst.id, false, std::slice::from_ref(&problem), None)
        .await
        .unwrap();
    let msg = refusal(&db, inst.owner, w.coop, inst.id).await;
    assert!(msg.contains(&problem), "{msg}");
    assert_eq!(links_made(&db).await, 0);

    // Missing something moderation needs and something only the blocklists need: refused,
    // naming only what moderation needs.
    let blocks =
        "To change domain blocks, the token needs the scope \"admin:write:domain_blocks\".";
    let reports = "To read reports, the token needs the scope \"admin:read:reports\".".to_owned();
    let check = CheckResult {
        ok: false,
        moderation_ok: false,
        problems: vec![reports.clone(), blocks.to_owned()],
        account: None,
    };
    db.record_instance_check_audited(inst.id, &check, |_| None)
        .await
        .unwrap();
    let msg = refusal(&db, inst.owner, w.coop, inst.id).await;
    assert!(msg.contains(&reports), "{msg}");
    assert!(!msg.contains(blocks), "not a reason to refuse: {msg}");
    assert_eq!(links_made(&db).await, 0);

    // Someone who may not link learns nothing about the connection.
    let err = link_instance(&db, w.m1, w.coop, inst.id, &settings())
        .await
        .unwrap_err();
    assert!(matches!(err, ModError::Forbidden(_)), "{err:?}");

    // The check passes: linked, shown as connected, first sync scheduled.
    db.record_instance_check(inst.id, true, &[], Some("@svc"))
        .await
        .unwrap();
    let link = link_instance(&db, inst.owner, w.coop, inst.id, &settings())
        .await
        .unwrap();
    assert!(link.connected);
    assert_eq!(queued_syncs(&db, inst.id).await.len(), 1);

    // Disconnected after linking: the link stays and says it cannot sync.
    db.disconnect_instance(inst.id).await.unwrap();
    let s = w.scope(w.m1).await;
    let l = links(&db, &s).await.unwrap();
    assert_eq!(l.len(), 1);
    assert!(!l[0].connected);
});

db_test!(
    a_changed_sync_interval_moves_the_scheduled_sync,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        let inst = &w.instances[0];
        let minute = 60_000;
        let mut s = settings();
        assert_eq!(s.sync_minutes, 5);

        // Just linked: the first sync is due now and stays due whatever the interval.
        s.sync_minutes = 60;
        update_settings(&db, inst.owner, inst.id, &s).await.unwrap();
        let q = queued_syncs(&db, inst.id).await;
        assert_eq!(q.len(), 1);
        assert!(q[0].0 <= Timestamp::now().0, "{q:?}");

        // After a sync, the next one is an interval (60 min now) after it.
        drain(&w.services).await;
        let q = queued_syncs(&db, inst.id).await;
        assert_eq!(q.len(), 1, "{q:?}");
        let (run_at, created) = q[0];
        assert!(about(run_at - created, 60 * minute), "{q:?}");

        // Shorter: the scheduled sync moves earlier, counted from when it was scheduled.
        s.sync_minutes = 2;
        update_settings(&db, inst.owner, inst.id, &s).await.unwrap();
        let q = queued_syncs(&db, inst.id).await;
        assert_eq!(q, vec![(created + 2 * minute, created)]);

        // Longer: later.
        s.sync_minutes = 30;
        update_settings(&db, inst.owner, inst.id, &s).await.unwrap();
        let q = queued_syncs(&db, inst.id).await;
        assert_eq!(q, vec![(created + 30 * minute, created)]);

        // Shorter than the time already waited: due now.
        on_pool!(&db, p => sqlx::query(
        "UPDATE jobs SET created_at = created_at - $1 WHERE kind = 'moderation.sync' AND state = 'queued'")
        .bind(10 * minute).execute(p).await.map(|r| r.rows_affected()))
    .unwrap();
        let before = Timestamp::now().0;
        s.sync_minutes = 3;
        update_settings(&db, inst.owner, inst.id, &s).await.unwrap();
        let after = Timestamp::now().0;
        let q = queued_syncs(&db, inst.id).await;
        assert_eq!(q.len(), 1);
        assert!(q[0].0 >= before && q[0].0 <= after, "{q:?}");

        // That sync runs and schedules the next one with the new interval.
        drain(&w.services).await;
        let q = queued_syncs(&db, inst.id).await;
        assert_eq!(q.len(), 1, "{q:?}");
        assert!(about(q[0].0 - q[0].1, 3 * minute), "{q:?}");

        // Other settings leave the schedule alone.
        s.claim_minutes += 5;
        update_settings(&db, inst.owner, inst.id, &s).await.unwrap();
        assert_eq!(queued_syncs(&db, inst.id).await, q);
    }
);

db_test!(
    an_instance_that_grants_only_what_moderation_needs_can_be_linked,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[]).await;
        let inst = add_instance(&db, &w.services.keyring, &a).await;
        // The token may do everything moderation needs, but not touch domain blocks (least
        // privilege): the check is not complete, yet the co-op may link the instance.
        let check = CheckResult {
            ok: false,
            moderation_ok: true,
            problems: vec![
                "To read domain blocks, the token needs the scope \"admin:read:domain_blocks\"."
                    .to_owned(),
            ],
            account: Some("@svc".to_owned()),
        };
        db.record_instance_check_audited(inst.id, &check, |_| None)
            .await
            .unwrap();
        let i = db.instance(inst.id).await.unwrap().unwrap();
        assert_eq!(i.check_ok, Some(false));
        assert_eq!(i.check_moderation_ok, Some(true));
        assert_eq!(connection_gap(&i), None);
        let link = link_instance(&db, inst.owner, w.coop, inst.id, &settings())
            .await
            .unwrap();
        assert!(link.connected, "shown as connected for moderation");
        assert_eq!(queued_syncs(&db, inst.id).await.len(), 1);
    }
);
