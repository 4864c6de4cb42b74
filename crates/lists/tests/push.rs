#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pushing: resume after an outage with each change applied once, the follower guard with a
//! correct measure, review mode and rejection.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use guildhall_db::{db_test, on_pool};
use guildhall_lists::lists::{create_list, rebuild_list, ListSource, NewList, Policy};
use guildhall_lists::push::{
    approve_push, awaiting_push, plan_instance, push, push_steps, reject_push, run_push, subscribe,
    Mode, PushStatus, PushStep, StepState,
};
use guildhall_lists::sources::{create_source, upload_source, NewSource, SourceSpec};
use guildhall_lists::ListsError;
use guildhall_mastodon::models::MeasureQuery;
use guildhall_mastodon::{Client, Secret};

async fn upload_list(w: &World, rows: &[(&str, &str)]) -> (i64, i64) {
    let s = create_source(
        &w.db,
        &w.svc.keyring,
        w.coop,
        &actor(w),
        &NewSource {
            name: "up".into(),
            spec: SourceSpec::Upload { format: None },
            refresh_every: Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    upload_source(
        &w.db,
        w.coop,
        &actor(w),
        s.id,
        mastodon_csv(rows).as_bytes(),
    )
    .await
    .unwrap();
    let l = create_list(
        &w.db,
        w.coop,
        &actor(w),
        &NewList {
            name: "L".into(),
            description: String::new(),
            public: true,
            policy: Policy::default(),
            sources: vec![ListSource::new(s.id)],
        },
    )
    .await
    .unwrap();
    rebuild_list(&w.db, l.id).await.unwrap();
    (s.id, l.id)
}

fn posts_ok(fake: &guildhall_fake_mastodon::FakeMastodon) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in fake.block_writes() {
        if w.method == "POST" && w.status == 200 {
            *m.entry(w.domain).or_default() += 1;
        }
    }
    m
}

db_test!(
    a_push_stopped_halfway_resumes_and_applies_each_change_once,
    |db| async move {
        let w = world(db).await;
        let names: Vec<String> = (0..20).map(|i| format!("d{i:02}.example")).collect();
        let rows: Vec<(&str, &str)> = names.iter().map(|d| (d.as_str(), "silence")).collect();
        let (_, list) = upload_list(&w, &rows).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Automatic, 100, None)
            .await
            .unwrap();
        let plan = plan_instance(&w.svc, inst).await.unwrap();
        let push_id = plan.automatic.expect("an automatic push");
        assert_eq!(
            push_steps(&w.db, inst, push_id).await.unwrap().len(),
            20,
            "the plan is recorded before any write"
        );
        assert!(f.block_writes().is_empty());

        // The instance goes down after 8 requests.
        f.outage_after(8, 503);
        let err = run_push(&w.svc, push_id).await.unwrap_err();
        assert!(matches!(err, ListsError::Instance(_)), "{err:?}");
        let p = push(&w.db, inst, push_id).await.unwrap();
        assert_eq!(p.status, PushStatus::Pending);
        assert_eq!(p.counts.done, 8);
        assert!(p.error.as_deref().unwrap().contains("503"), "{:?}", p.error);
        assert_eq!(f.blocked_domains().len(), 8);

        // Simulate a crash right after the instance accepted step 3: the step is pending again.
        on_pool!(&w.db, p => sqlx::query("UPDATE lists_push_steps SET state = 'pending' WHERE push_id = $1 AND domain = 'd03.example'")
        .bind(push_id).execute(p).await.map(|r| r.rows_affected())).unwrap();

        f.set_outage(None);
        let p = run_push(&w.svc, push_id).await.unwrap();
        assert_eq!(p.status, PushStatus::Done);
        assert_eq!(p.counts.done, 20);
        let mut blocked = f.blocked_domains();
        blocked.sort();
        assert_eq!(blocked, names);
        // Every domain was created exactly once; the re-sent create found its own block (422) and
        // adopted it.
        let posts = posts_ok(&f);
        assert_eq!(posts.len(), 20);
        assert!(posts.values().all(|n| *n == 1), "{posts:?}");
        assert!(f
            .block_writes()
            .iter()
            .any(|x| x.domain == "d03.example" && x.status == 422));
        // A further run does nothing.
        let writes = f.block_writes().len();
        run_push(&w.svc, push_id).await.unwrap();
        assert_eq!(f.block_writes().len(), writes);
        // And a new plan finds nothing to do.
        let again = plan_instance(&w.svc, inst).await.unwrap();
        assert_eq!((again.automatic, again.awaiting), (None, None));
        let audit = w.db.audit_entries(Some(inst), None, 100).await.unwrap();
        assert!(audit.iter().any(|a| a.action == "lists.push.done"));
    }
);

db_test!(
    suspending_a_followed_domain_waits_for_the_admin,
    |db| async move {
        let w = world(db).await;
        let (_, list) = upload_list(
            &w,
            &[("followed.example", "suspend"), ("free.example", "suspend")],
        )
        .await;
        // A follow made years ago and still in place.
        let f = fake(|b| b.follow("followed.example", "2019-05-02")).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Automatic, 100, None)
            .await
            .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(f.blocked_domains(), ["free.example"]);
        let p = guildhall_lists::push::pushes(&w.db, inst, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.counts.held == 1)
            .unwrap();
        let steps = push_steps(&w.db, inst, p.id).await.unwrap();
        let held = steps.iter().find(|s| s.state == StepState::Held).unwrap();
        assert_eq!(held.domain, "followed.example");
        assert!(
            held.note.as_deref().unwrap().contains("1 follow"),
            "{:?}",
            held.note
        );
        // FediBlockHole's question (follows made recently) would have said nobody follows it.
        let c = Client::new(f.url(), Some(Secret::new("tok")), client_config()).unwrap();
        let recent = c
            .measures(&MeasureQuery {
                keys: vec!["instance_follows".into()],
                start_at: "2026-01-01".into(),
                end_at: "2026-12-31".into(),
                domain: Some("followed.example".into()),
            })
            .await
            .unwrap();
        assert_eq!(recent[0].total_value(), Some(0));
        // Re-planning does not propose the held step again.
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert!(awaiting_push(&w.db, inst).await.unwrap().is_none());
        // The admin decides to suspend anyway.
        approve_push(&w.db, inst, &actor(&w), p.id, true)
            .await
            .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        let mut b = f.blocked_domains();
        b.sort();
        assert_eq!(b, ["followed.example", "free.example"]);
    }
);

db_test!(
    review_mode_waits_and_a_rejection_is_not_proposed_again,
    |db| async move {
        let w = world(db).await;
        let (src, list) = upload_list(&w, &[("one.example", "silence")]).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Review, 0, None)
            .await
            .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            f.block_writes().is_empty(),
            "review mode writes nothing by itself"
        );
        let a = awaiting_push(&w.db, inst).await.unwrap().unwrap();
        reject_push(&w.db, inst, &actor(&w), a.id).await.unwrap();
        assert!(approve_push(&w.db, inst, &actor(&w), a.id, false)
            .await
            .is_err());
        plan_instance(&w.svc, inst).await.unwrap();
        assert!(
            awaiting_push(&w.db, inst).await.unwrap().is_none(),
            "the rejected diff is not proposed again"
        );
        // A new domain is proposed on its own.
        upload_source(
            &w.db,
            w.coop,
            &actor(&w),
            src,
            mastodon_csv(&[("one.example", "silence"), ("two.example", "silence")]).as_bytes(),
        )
        .await
        .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        let a = awaiting_push(&w.db, inst).await.unwrap().unwrap();
        let steps = push_steps(&w.db, inst, a.id).await.unwrap();
        assert_eq!(
            steps.iter().map(|s| s.domain.as_str()).collect::<Vec<_>>(),
            ["two.example"]
        );
        approve_push(&w.db, inst, &actor(&w), a.id, false)
            .await
            .unwrap();
        drain(&w.svc, 50).await;
        assert_eq!(f.blocked_domains(), ["two.example"]);
    }
);

db_test!(the_registered_jobs_run_in_a_real_worker, |db| async move {
    use guildhall_db::jobs::{run_worker, Registry, WorkerConfig};
    let w = world(db).await;
    let mut registry = Registry::new();
    guildhall_lists::register_jobs(&mut registry, &w.svc);
    let mut kinds: Vec<&str> = guildhall_lists::JOB_KINDS.to_vec();
    kinds.sort_unstable();
    assert_eq!(registry.kinds(), kinds);
    let (_, list) = upload_list(&w, &[("w1.example", "silence"), ("w2.example", "noop")]).await;
    let f = fake(|b| b).await;
    let inst = instance_org(&w, "inst.example", &f).await;
    subscribe(&w.db, inst, &actor(&w), list, Mode::Automatic, 10, None)
        .await
        .unwrap();
    let config = WorkerConfig {
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::new()
    };
    let fk = &f;
    run_worker(w.db.clone(), registry, config, async move {
        for _ in 0..500 {
            if fk.blocked_domains().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut b = f.blocked_domains();
    b.sort();
    assert_eq!(b, ["w1.example", "w2.example"]);
});

db_test!(
    a_managed_block_an_admin_edited_or_deleted_is_handed_over,
    |db| async move {
        use guildhall_lists::push::managed_blocks;
        use guildhall_mastodon::models::{DomainBlockParams, Severity as MSeverity};
        let w = world(db).await;
        let (src, list) = upload_list(
            &w,
            &[
                ("edited.example", "silence"),
                ("deleted.example", "silence"),
            ],
        )
        .await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Automatic, 10, None)
            .await
            .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(managed_blocks(&w.db, inst).await.unwrap().len(), 2);
        // The instance's admin edits one block and deletes the other, by hand.
        let c = Client::new(f.url(), Some(Secret::new("tok")), client_config()).unwrap();
        for b in c.all_domain_blocks().await.unwrap() {
            if b.domain == "edited.example" {
                let p = DomainBlockParams {
                    severity: Some(MSeverity::Noop),
                    ..DomainBlockParams::default()
                };
                c.update_domain_block(&b.id, &p).await.unwrap();
            } else {
                c.delete_domain_block(&b.id).await.unwrap();
            }
        }
        // The list now wants both suspended: Guildhall writes neither and stops managing them.
        let writes = f.block_writes().len();
        upload_source(
            &w.db,
            w.coop,
            &actor(&w),
            src,
            mastodon_csv(&[
                ("edited.example", "suspend"),
                ("deleted.example", "suspend"),
            ])
            .as_bytes(),
        )
        .await
        .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            f.block_writes().len(),
            writes,
            "no write to blocks the admin took over"
        );
        assert!(managed_blocks(&w.db, inst).await.unwrap().is_empty());
        let blocks = c.all_domain_blocks().await.unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].effective_severity(), MSeverity::Noop);
    }
);

/// A list named `name` from an uploaded source of `rows`.
async fn named_list(w: &World, name: &str, rows: &[(&str, &str)]) -> i64 {
    let s = create_source(
        &w.db,
        &w.svc.keyring,
        w.coop,
        &actor(w),
        &NewSource {
            name: format!("{name}-src"),
            spec: SourceSpec::Upload { format: None },
            refresh_every: Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    upload_source(
        &w.db,
        w.coop,
        &actor(w),
        s.id,
        mastodon_csv(rows).as_bytes(),
    )
    .await
    .unwrap();
    let l = create_list(
        &w.db,
        w.coop,
        &actor(w),
        &NewList {
            name: name.into(),
            description: String::new(),
            public: true,
            policy: Policy::default(),
            sources: vec![ListSource::new(s.id)],
        },
    )
    .await
    .unwrap();
    rebuild_list(&w.db, l.id).await.unwrap();
    l.id
}

/// Every write the fake received, counted per (method, domain), whatever the answer.
fn writes_by_domain(f: &guildhall_fake_mastodon::FakeMastodon) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for w in f.block_writes() {
        *m.entry((w.method, w.domain)).or_default() += 1;
    }
    m
}

db_test!(
    two_concurrent_runs_of_one_push_send_each_change_once,
    |db| async move {
        let w = world(db).await;
        let names: Vec<String> = (0..12).map(|i| format!("c{i:02}.example")).collect();
        let rows: Vec<(&str, &str)> = names.iter().map(|d| (d.as_str(), "silence")).collect();
        let list = named_list(&w, "C", &rows).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Automatic, 100, None)
            .await
            .unwrap();
        let push_id = plan_instance(&w.svc, inst)
            .await
            .unwrap()
            .automatic
            .unwrap();
        // Two runs at once (a job whose lease ran out and its successor, say), each on its own
        // task, plus a plan of the same instance in the middle.
        let (s1, s2, s3) = (w.svc.clone(), w.svc.clone(), w.svc.clone());
        let a = tokio::spawn(async move { run_push(&s1, push_id).await });
        let b = tokio::spawn(async move { run_push(&s2, push_id).await });
        let c = tokio::spawn(async move { plan_instance(&s3, inst).await });
        let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
        assert_eq!(a.unwrap().status, PushStatus::Done);
        assert_eq!(b.unwrap().status, PushStatus::Done);
        let planned = c.unwrap();
        // The plan either waited for the push (then found nothing to do) or went first (and
        // deferred to the active push): it never proposes a change that push makes.
        assert_eq!((planned.automatic, planned.awaiting), (None, None));
        let writes = writes_by_domain(&f);
        assert_eq!(writes.len(), 12, "{writes:?}");
        for d in &names {
            assert_eq!(
                writes.get(&("POST".to_string(), d.clone())),
                Some(&1),
                "{d}: {writes:?}"
            );
        }
        let p = push(&w.db, inst, push_id).await.unwrap();
        assert_eq!(p.counts.done, 12);
        let audit = w.db.audit_entries(Some(inst), None, 100).await.unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "lists.push.done")
                .count(),
            1,
            "one run did the work, the other found it done"
        );
        let done = audit
            .iter()
            .find(|a| a.action == "lists.push.done")
            .unwrap();
        let after: serde_json::Value =
            serde_json::from_str(done.after_json.as_deref().unwrap()).unwrap();
        assert_eq!(after["counts"]["done"], 12, "{after}");
        assert_eq!(after["counts"]["pending"], 0, "{after}");
        // The lease was released: a later plan runs at once and finds nothing to do.
        let again = plan_instance(&w.svc, inst).await.unwrap();
        assert_eq!(
            (again.automatic, again.awaiting, again.deferred),
            (None, None, false)
        );
        assert!(guildhall_lists::push::locks(&w.db, inst)
            .await
            .unwrap()
            .is_empty());
    }
);

db_test!(
    two_pushes_of_one_instance_do_not_interleave,
    |db| async move {
        let w = world(db).await;
        let auto_names: Vec<String> = (0..8).map(|i| format!("a{i}.example")).collect();
        let review_names: Vec<String> = (0..8).map(|i| format!("r{i}.example")).collect();
        let ar: Vec<(&str, &str)> = auto_names.iter().map(|d| (d.as_str(), "silence")).collect();
        let rr: Vec<(&str, &str)> = review_names
            .iter()
            .map(|d| (d.as_str(), "silence"))
            .collect();
        let auto_list = named_list(&w, "A", &ar).await;
        let review_list = named_list(&w, "R", &rr).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(
            &w.db,
            inst,
            &actor(&w),
            auto_list,
            Mode::Automatic,
            100,
            None,
        )
        .await
        .unwrap();
        subscribe(&w.db, inst, &actor(&w), review_list, Mode::Review, 0, None)
            .await
            .unwrap();
        let plan = plan_instance(&w.svc, inst).await.unwrap();
        let (p1, p2) = (plan.automatic.unwrap(), plan.awaiting.unwrap());
        approve_push(&w.db, inst, &actor(&w), p2, false)
            .await
            .unwrap();
        // A second approval of the same push is refused (it is no longer awaiting).
        assert!(matches!(
            approve_push(&w.db, inst, &actor(&w), p2, false).await,
            Err(ListsError::Conflict(_))
        ));
        let (s1, s2) = (w.svc.clone(), w.svc.clone());
        let a = tokio::spawn(async move { run_push(&s1, p1).await });
        let b = tokio::spawn(async move { run_push(&s2, p2).await });
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert_eq!((a.status, b.status), (PushStatus::Done, PushStatus::Done));
        assert_eq!((a.counts.done, b.counts.done), (8, 8));
        let writes = f.block_writes();
        assert_eq!(writes.len(), 16, "{writes:?}");
        assert!(writes.iter().all(|x| x.method == "POST" && x.status == 200));
        // One push ran after the other: the writes form two runs, one per list.
        let first_is_auto = writes[0].domain.starts_with('a');
        let split = writes
            .iter()
            .position(|x| x.domain.starts_with('a') != first_is_auto)
            .unwrap();
        assert_eq!(split, 8, "interleaved: {writes:?}");
        assert!(writes[8..]
            .iter()
            .all(|x| x.domain.starts_with('a') != first_is_auto));
    }
);

db_test!(
    an_approval_racing_a_new_plan_is_refused_not_applied_twice,
    |db| async move {
        let w = world(db).await;
        let list = named_list(&w, "R", &[("one.example", "silence")]).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Review, 0, None)
            .await
            .unwrap();
        let old = plan_instance(&w.svc, inst).await.unwrap().awaiting.unwrap();
        // The lists change and a new plan replaces the awaiting push before the admin's click
        // lands.
        let src = guildhall_lists::sources::sources(&w.db, w.coop)
            .await
            .unwrap()[0]
            .id;
        upload_source(
            &w.db,
            w.coop,
            &actor(&w),
            src,
            mastodon_csv(&[("one.example", "silence"), ("two.example", "silence")]).as_bytes(),
        )
        .await
        .unwrap();
        rebuild_list(&w.db, list).await.unwrap();
        let new = plan_instance(&w.svc, inst).await.unwrap().awaiting.unwrap();
        assert_ne!(old, new);
        assert!(matches!(
            approve_push(&w.db, inst, &actor(&w), old, false).await,
            Err(ListsError::Conflict(_))
        ));
        assert_eq!(
            push(&w.db, inst, old).await.unwrap().status,
            PushStatus::Superseded
        );
        approve_push(&w.db, inst, &actor(&w), new, false)
            .await
            .unwrap();
        let (_, errors) = drain(&w.svc, 50).await;
        assert!(errors.is_empty(), "{errors:?}");
        let writes = writes_by_domain(&f);
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(writes.values().all(|n| *n == 1), "{writes:?}");
    }
);

/// An instance organisation connected to `f`, subscribed to `list` in review mode, and the
/// steps of the push awaiting its review.
async fn previewed(
    w: &World,
    f: &guildhall_fake_mastodon::FakeMastodon,
    list: i64,
) -> (guildhall_core::OrgId, Vec<PushStep>) {
    let inst = instance_org(w, "inst.example", f).await;
    subscribe(&w.db, inst, &actor(w), list, Mode::Review, 0, None)
        .await
        .unwrap();
    let p = plan_instance(&w.svc, inst).await.unwrap().awaiting.unwrap();
    let steps = push_steps(&w.db, inst, p).await.unwrap();
    (inst, steps)
}

db_test!(
    the_preview_follow_check_is_bounded_counts_only_suspends_and_is_cached_per_organisation,
    |db| async move {
        use guildhall_lists::push::{preview_follows, FollowCache, PREVIEW_FOLLOW_LIMIT};
        use std::time::Duration;
        let w = world(db).await;
        let n = PREVIEW_FOLLOW_LIMIT + 5;
        let names: Vec<String> = (0..n).map(|i| format!("s{i:03}.example")).collect();
        let mut rows: Vec<(&str, &str)> = names.iter().map(|d| (d.as_str(), "suspend")).collect();
        rows.push(("quiet.example", "silence"));
        let list = named_list(&w, "S", &rows).await;
        let f = fake(|b| b.follow("s001.example", "2017-06-01")).await;
        let (inst, steps) = previewed(&w, &f, list).await;
        assert_eq!(steps.len(), n + 1);
        let measures = || {
            f.requests()
                .iter()
                .filter(|r| r.path.contains("measures"))
                .count()
        };
        let cache = FollowCache::default();
        let before = measures();
        let pf = preview_follows(&w.svc, &cache, inst, &steps).await;
        assert_eq!(pf.checked.len(), PREVIEW_FOLLOW_LIMIT);
        assert_eq!(pf.unchecked, 5);
        assert_eq!(pf.error, None);
        assert_eq!(pf.follows_of("s001.example"), Some(1));
        assert_eq!(pf.follows_of("s000.example"), Some(0));
        assert_eq!(
            pf.follows_of("quiet.example"),
            None,
            "a silence is not checked"
        );
        // Asked several at a time, reported in step order.
        let order: Vec<&str> = pf.checked.iter().map(|d| d.domain.as_str()).collect();
        let expected: Vec<&str> = names[..PREVIEW_FOLLOW_LIMIT]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(order, expected);
        assert_eq!(
            measures() - before,
            PREVIEW_FOLLOW_LIMIT,
            "one lookup per checked suspend"
        );

        // Viewing the preview again within the cache's lifetime asks nothing.
        let before = measures();
        let again = preview_follows(&w.svc, &cache, inst, &steps).await;
        assert_eq!(again, pf);
        assert_eq!(measures() - before, 0, "cached counts are not asked again");

        // Another organisation connected to the same instance does not read this one's counts.
        let other = instance_org(&w, "other.example", &f).await;
        let before = measures();
        let theirs = preview_follows(&w.svc, &cache, other, &steps).await;
        assert_eq!(theirs.checked.len(), PREVIEW_FOLLOW_LIMIT);
        assert_eq!(measures() - before, PREVIEW_FOLLOW_LIMIT);

        // Expired counts are asked again.
        let expired = FollowCache::new(Duration::ZERO, 10_000);
        let before = measures();
        let _ = preview_follows(&w.svc, &expired, inst, &steps).await;
        let _ = preview_follows(&w.svc, &expired, inst, &steps).await;
        assert_eq!(measures() - before, 2 * PREVIEW_FOLLOW_LIMIT);

        // A cache never holds more than its capacity.
        let small = FollowCache::new(Duration::from_secs(300), 10);
        let _ = preview_follows(&w.svc, &small, inst, &steps).await;
        assert_eq!(small.len(), 10);
        assert!(f.block_writes().is_empty());
    }
);

db_test!(
    a_failed_follow_lookup_ends_the_preview_check_and_is_not_cached,
    |db| async move {
        use guildhall_lists::push::{preview_follows, FollowCache};
        let w = world(db).await;
        let list = named_list(
            &w,
            "F",
            &[("a.example", "suspend"), ("b.example", "suspend")],
        )
        .await;
        let f = fake(|b| b).await;
        let (inst, steps) = previewed(&w, &f, list).await;
        let cache = FollowCache::default();
        // The instance refuses every request: nothing is checked, the reason is shown.
        f.set_outage(Some(403));
        let pf = preview_follows(&w.svc, &cache, inst, &steps).await;
        assert!(pf.checked.is_empty(), "{pf:?}");
        assert_eq!(pf.unchecked, 2);
        assert!(pf.error.is_some());
        // Nothing was cached: once the instance answers again, both are asked.
        f.set_outage(None);
        let pf = preview_follows(&w.svc, &cache, inst, &steps).await;
        assert_eq!(pf.checked.len(), 2, "{pf:?}");
        assert_eq!(pf.error, None);
    }
);

db_test!(
    an_expired_lease_is_taken_over_and_its_old_holder_cannot_release_it,
    |db| async move {
        use guildhall_lists::push::{locks, InstanceLease};
        let w = world(db).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        let first = InstanceLease::take(&w.db, inst).await.unwrap();
        // Its holder died: the lease ran out.
        on_pool!(&w.db, p => sqlx::query("UPDATE lists_leases SET expires_at = 0 WHERE org_id = $1")
            .bind(inst.0).execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
        let second = InstanceLease::take(&w.db, inst).await.unwrap();
        // The old holder's release leaves the new holder's lease alone.
        first.release().await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(60), InstanceLease::take(&w.db, inst))
            .await
            .unwrap();
        assert!(
            matches!(third, Err(ListsError::Busy(_))),
            "{:?}",
            third.err()
        );
        second.release().await.unwrap();
        InstanceLease::take(&w.db, inst)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        // A lease is not a locked domain.
        assert!(locks(&w.db, inst).await.unwrap().is_empty());
    }
);

db_test!(
    a_plan_defers_while_another_holder_keeps_the_instance_lease,
    |db| async move {
        use guildhall_lists::push::InstanceLease;
        let w = world(db).await;
        let list = named_list(&w, "D", &[("one.example", "silence")]).await;
        let f = fake(|b| b).await;
        let inst = instance_org(&w, "inst.example", &f).await;
        subscribe(&w.db, inst, &actor(&w), list, Mode::Automatic, 100, None)
            .await
            .unwrap();
        // A long push holds the lease: the plan waits (30 s), then defers without asking the
        // instance anything; a second taker is refused as busy.
        let held = InstanceLease::take(&w.db, inst).await.unwrap();
        let svc = w.svc.clone();
        let planning = tokio::spawn(async move { plan_instance(&svc, inst).await });
        let other = InstanceLease::take(&w.db, inst).await;
        assert!(
            matches!(other, Err(ListsError::Busy(_))),
            "{:?}",
            other.err()
        );
        let p = planning.await.unwrap().unwrap();
        assert!(p.deferred && p.automatic.is_none(), "{p:?}");
        assert!(f.requests().is_empty(), "{:?}", f.requests());
        held.release().await.unwrap();
        let p = plan_instance(&w.svc, inst).await.unwrap();
        assert!(!p.deferred && p.automatic.is_some(), "{p:?}");
    }
);
