//! The rest of a case's life on both databases: claim expiry and takeover, resolutions and
//! reopenings noticed by the sync alone, a failure for good shown with the server's message
//! and retried, escalation, rejection, media that disappeared, queue filters and counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use guildhall_core::{Role, Timestamp};
use guildhall_db::{db_test, on_pool, Db};
use guildhall_fake_mastodon::{Flavor, ReportSeed};
use guildhall_mastodon::{Client, Secret};
use guildhall_moderation::*;

fn decision(action: Action, rule: &str) -> NewDecision {
    let mut v = BTreeMap::new();
    v.insert("rule".to_owned(), rule.to_owned());
    v.insert("instance".to_owned(), "here".to_owned());
    NewDecision {
        action,
        rule_ids: vec![rule.to_owned()],
        user_note: Some(settings().template("warn").unwrap().fill(&v).unwrap()),
        private_note: String::new(),
        notify_user: false,
    }
}

async fn open_cases(db: &Db, s: &Scope) -> Vec<CaseSummary> {
    queue(db, s, &QueueFilter::default(), PageRequest::default())
        .await
        .unwrap()
        .cases
}

async fn set_case(db: &Db, case_id: i64, column: &str, value: i64) {
    let sql = format!("UPDATE mod_cases SET {column} = $1 WHERE id = $2");
    on_pool!(db, p => sqlx::query(&sql).bind(value).bind(case_id).execute(p).await.map(|r| r.rows_affected())).unwrap();
}

fn client(url: &str) -> Client {
    Client::new(url, Some(Secret::new(TOKEN)), fast_client()).unwrap()
}

db_test!(
    an_expired_claim_can_be_taken_over_and_is_swept,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let (s1, s2) = (w.scope(w.m1).await, w.scope(w.m2).await);
        let id = open_cases(&db, &s1).await[0].id;
        let c = claim(&db, &s1, id).await.unwrap();
        assert!(c.expires_at.0 > Timestamp::now().plus(Duration::from_secs(29 * 60)).0);
        // Mirrored on the instance.
        drain(&w.services).await;
        assert_eq!(a.report_json(10).unwrap()["assigned_account"]["id"], "1");
        // Claiming again renews; the other moderator is refused until it expires.
        claim(&db, &s1, id).await.unwrap();
        assert!(matches!(
            claim(&db, &s2, id).await,
            Err(ModError::ClaimedByOther { .. })
        ));
        set_case(&db, id, "claim_expires_at", 1).await;
        assert_eq!(
            open_cases(&db, &s1).await[0].claimed_by,
            None,
            "an expired claim is not shown"
        );
        claim(&db, &s2, id).await.unwrap();
        assert!(matches!(
            decide(&db, &s1, id, &decision(Action::Silence, "1")).await,
            Err(ModError::NotClaimed)
        ));
        assert!(matches!(
            release(&db, &s1, id).await,
            Err(ModError::NotClaimed)
        ));
        set_case(&db, id, "claim_expires_at", 1).await;
        assert_eq!(expire_claims(&db).await.unwrap(), 1);
        assert_eq!(expire_claims(&db).await.unwrap(), 0);
        drain(&w.services).await;
        let paths: Vec<String> = a.requests().into_iter().map(|r| r.path).collect();
        assert!(paths
            .iter()
            .any(|p| p == "/api/v1/admin/reports/10/assign_to_self"));
        assert!(paths
            .iter()
            .any(|p| p == "/api/v1/admin/reports/10/unassign"));
        assert_eq!(
            a.report_json(10).unwrap()["assigned_account"],
            serde_json::Value::Null
        );
        let audit = audit_actions(&db).await;
        assert_eq!(audit.iter().filter(|x| *x == "moderation.claim").count(), 3);
        assert!(audit.iter().any(|x| x == "moderation.claim_expired"));
    }
);

db_test!(
    the_sync_alone_notices_resolutions_and_reopenings,
    |db| async move {
        let a = fake(&[spam_report(10), rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        let inst = w.instances[0].id;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        assert_eq!(open_cases(&db, &s1).await.len(), 2);
        let spam_case = open_cases(&db, &s1)
            .await
            .into_iter()
            .find(|c| c.target_remote)
            .unwrap()
            .id;
        // Resolved by the instance's own team, no webhook: the next (incremental) sync sees it.
        client(a.url()).resolve_report("10", None).await.unwrap();
        let r = sync_instance(&w.services, inst).await.unwrap();
        assert!(!r.full, "{r:?}");
        assert_eq!(r.refetched, 1, "{r:?}");
        let v = case(&db, &s1, spam_case).await.unwrap();
        assert_eq!(
            (v.case.state, v.case.outcome),
            (CaseState::Closed, Some(Outcome::ResolvedOnInstance))
        );
        assert_eq!(open_cases(&db, &s1).await.len(), 1);
        // Reopened there: back in the queue, with the closed case in its history.
        client(a.url()).reopen_report("10").await.unwrap();
        sync_instance(&w.services, inst).await.unwrap();
        let open = open_cases(&db, &s1).await;
        assert_eq!(open.len(), 2);
        let again = open.iter().find(|c| c.target_remote).unwrap();
        let v = case(&db, &s1, again.id).await.unwrap();
        assert_eq!(v.reports.len(), 1);
        assert_eq!(v.history.len(), 1);
        assert_eq!(v.history[0].case.id, spam_case);
        // Idempotent: nothing changes on a sync without news.
        let r = sync_instance(&w.services, inst).await.unwrap();
        assert_eq!((r.stored, r.refetched, r.errors), (0, 0, 0), "{r:?}");
        let n: i64 = on_pool!(&db, p => sqlx::query_scalar("SELECT COUNT(*) FROM mod_reports").fetch_one(p).await).unwrap();
        assert_eq!(n, 2);
    }
);

db_test!(
    a_refused_action_fails_with_the_servers_message_and_can_be_retried,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        a.set_flavor(Flavor::GoToSocial);
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let id = open_cases(&db, &s1).await[0].id;
        claim(&db, &s1, id).await.unwrap();
        let out = decide(&db, &s1, id, &decision(Action::Silence, "2"))
            .await
            .unwrap();
        drain(&w.services).await;
        let admin = Scope::for_member(&db, w.instances[0].owner, w.instances[0].org)
            .await
            .unwrap();
        let ds = decisions(&db, &admin, Some(DecisionState::Failed), 10)
            .await
            .unwrap();
        assert_eq!(ds.len(), 1);
        let failure = ds[0].failure.clone().unwrap();
        assert!(
            failure.contains("not supported for this endpoint"),
            "{failure}"
        );
        let seen_by_mod = case(&db, &s1, id).await.unwrap().decisions[0]
            .failure
            .clone();
        assert_eq!(seen_by_mod.as_deref(), Some(failure.as_str()));
        assert!(audit_actions(&db)
            .await
            .iter()
            .any(|x| x == "moderation.delivery_failed"));
        assert!(a.account_actions().is_empty());
        // The instance is fixed (here: becomes a Mastodon); its admin retries.
        a.set_flavor(Flavor::Mastodon);
        retry_decision(&db, &admin, out.decision_id).await.unwrap();
        assert!(
            retry_decision(&db, &admin, out.decision_id).await.is_err(),
            "only failed decisions"
        );
        drain(&w.services).await;
        let d = &decisions(&db, &admin, None, 10).await.unwrap()[0];
        assert_eq!(d.state, DecisionState::Delivered);
        assert_eq!(a.account_actions().len(), 1);
        assert_eq!(a.report_resolved(11), Some(true));
    }
);

db_test!(
    escalation_hands_the_case_to_the_instance_moderators,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let id = open_cases(&db, &s1).await[0].id;
        assert!(matches!(
            escalate(&db, &s1, id, "local context").await,
            Err(ModError::NotClaimed)
        ));
        claim(&db, &s1, id).await.unwrap();
        assert!(matches!(
            escalate(&db, &s1, id, "  ").await,
            Err(ModError::Invalid { field: "note", .. })
        ));
        escalate(&db, &s1, id, "needs someone who knows the local scene")
            .await
            .unwrap();
        assert!(open_cases(&db, &s1).await.is_empty());
        let inhouse = account(&db, "In house").await;
        db.add_member(w.instances[0].org, inhouse, Role::Moderator)
            .await
            .unwrap();
        let sm = Scope::for_member(&db, inhouse, w.instances[0].org)
            .await
            .unwrap();
        let esc = escalations(&db, &sm).await.unwrap();
        assert_eq!(esc.len(), 1);
        assert_eq!(esc[0].0.note, "needs someone who knows the local scene");
        assert_eq!(esc[0].1.state, CaseState::Escalated);
        assert!(matches!(
            claim(&db, &sm, id).await,
            Err(ModError::Forbidden(_))
        ));
        // The private notes are for the co-op and the instance's admins, not its moderators.
        assert!(audit_actions(&db)
            .await
            .iter()
            .any(|x| x == "moderation.escalate"));
    }
);

db_test!(
    a_rejected_review_sends_nothing_and_reopens_the_case,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let (s1, s2) = (w.scope(w.m1).await, w.scope(w.m2).await);
        let id = open_cases(&db, &s1).await[0].id;
        claim(&db, &s1, id).await.unwrap();
        let out = decide(&db, &s1, id, &decision(Action::Suspend, "1"))
            .await
            .unwrap();
        assert!(open_cases(&db, &s1).await.is_empty());
        assert!(matches!(
            reject(&db, &s1, out.decision_id, "no").await,
            Err(ModError::SelfReview)
        ));
        reject(&db, &s2, out.decision_id, "not enough evidence")
            .await
            .unwrap();
        assert!(matches!(
            approve(&db, &s2, out.decision_id).await,
            Err(ModError::NotAwaitingApproval)
        ));
        drain(&w.services).await;
        assert!(a.account_actions().is_empty());
        let v = case(&db, &s1, id).await.unwrap();
        assert_eq!(v.case.state, CaseState::Open);
        assert_eq!(v.decisions[0].state, DecisionState::Rejected);
        assert_eq!(
            v.decisions[0].review_note.as_deref(),
            Some("not enough evidence")
        );
        assert!(review_list(&db, &s1).await.unwrap().is_empty());
        let audit = audit_actions(&db).await;
        assert!(audit.iter().any(|x| x == "moderation.reject"), "{audit:?}");
        // Decisions are checked: a rule must be cited; the note must come from the instance's templates.
        claim(&db, &s2, id).await.unwrap();
        let mut d = decision(Action::Silence, "1");
        d.rule_ids.clear();
        assert!(matches!(
            decide(&db, &s2, id, &d).await,
            Err(ModError::Invalid {
                field: "rule_ids",
                ..
            })
        ));
        let mut d = decision(Action::Silence, "1");
        d.user_note = Some(
            NoteTemplate::new("other", "hi")
                .fill(&BTreeMap::new())
                .unwrap(),
        );
        assert!(matches!(
            decide(&db, &s2, id, &d).await,
            Err(ModError::Template(TemplateError::NoSuchTemplate(_)))
        ));
    }
);

db_test!(
    a_status_deleted_before_its_media_was_copied_stays_readable,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        sync_instance(&w.services, w.instances[0].id).await.unwrap();
        a.delete_status(50);
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let id = open_cases(&db, &s1).await[0].id;
        let v = case(&db, &s1, id).await.unwrap();
        let st = &v.reports[0].statuses[0];
        assert_eq!(st.content, "<p>buy now</p>");
        assert_eq!(st.media[0].copy_state, model::CopyState::Failed);
        assert!(
            st.media[0]
                .copy_error
                .as_deref()
                .unwrap_or("")
                .contains("404"),
            "{:?}",
            st.media[0]
        );
        assert!(st.media[0].url.is_some());
        assert!(matches!(
            media(&db, &s1, st.media[0].id).await,
            Err(ModError::NotFound(_))
        ));
    }
);

db_test!(queue_filters_order_and_counts, |db| async move {
    let legal = ReportSeed::new(12, ALICE, REPORTER).category("legal");
    let a = fake(&[spam_report(10), rude_report(11), legal]).await;
    let w = world(&db, &[&a]).await;
    let inst = w.instances[0].id;
    drain(&w.services).await;
    let s1 = w.scope(w.m1).await;
    let all = open_cases(&db, &s1).await;
    assert_eq!(all.len(), 3);
    let by_cat = |c: Category| all.iter().find(|x| x.category == c).unwrap().id;
    let (spam, viol, legal) = (
        by_cat(Category::Spam),
        by_cat(Category::Violation),
        by_cat(Category::Legal),
    );
    // Same deadline: the more severe first (legal before violation).
    let due = Timestamp::now().plus(Duration::from_secs(20 * 3600)).0;
    set_case(&db, legal, "sla_due_at", due).await;
    set_case(&db, viol, "sla_due_at", due).await;
    let all = open_cases(&db, &s1).await;
    assert_eq!(all[0].id, legal);
    assert_eq!(all[1].id, viol);
    let now = Timestamp::now();
    set_case(&db, spam, "sla_due_at", now.0 - 1000).await;
    set_case(
        &db,
        viol,
        "sla_due_at",
        now.plus(Duration::from_secs(3600)).0,
    )
    .await;
    let q = queue(&db, &s1, &QueueFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        q.cases.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![spam, viol, legal]
    );
    assert_eq!(
        q.counts.by_sla,
        vec![
            (SlaState::Ok, 1),
            (SlaState::DueSoon, 1),
            (SlaState::Overdue, 1)
        ]
    );
    assert_eq!(
        q.counts.by_category,
        vec![
            (Category::Spam, 1),
            (Category::Legal, 1),
            (Category::Violation, 1)
        ]
    );
    assert!(q.counts.by_rule.contains(&(
        RuleRef {
            instance_id: inst,
            rule_id: "2".into()
        },
        1
    )));
    let f = |f: QueueFilter| {
        let db = db.clone();
        let s1 = s1.clone();
        async move {
            let r = queue(&db, &s1, &f, PageRequest::default()).await.unwrap();
            assert_eq!(r.counts.matching, r.cases.len() as i64, "{f:?}");
            r.cases.into_iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        f(QueueFilter {
            sla: Some(SlaState::Overdue),
            ..Default::default()
        })
        .await,
        vec![spam]
    );
    assert_eq!(
        f(QueueFilter {
            sla: Some(SlaState::DueSoon),
            ..Default::default()
        })
        .await,
        vec![viol]
    );
    assert_eq!(
        f(QueueFilter {
            sla: Some(SlaState::Ok),
            ..Default::default()
        })
        .await,
        vec![legal]
    );
    assert_eq!(
        f(QueueFilter {
            category: Some(Category::Legal),
            ..Default::default()
        })
        .await,
        vec![legal]
    );
    assert_eq!(
        f(QueueFilter {
            language: Some("EN".into()),
            ..Default::default()
        })
        .await,
        vec![spam, viol]
    );
    assert_eq!(
        f(QueueFilter {
            older_than: Some(Duration::from_secs(3600)),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        f(QueueFilter {
            newer_than: Some(Duration::from_secs(3600)),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        f(QueueFilter {
            instance: Some(inst),
            category: Some(Category::Spam),
            ..Default::default()
        })
        .await,
        vec![spam]
    );
    claim(&db, &s1, viol).await.unwrap();
    assert_eq!(
        f(QueueFilter {
            unclaimed: true,
            ..Default::default()
        })
        .await,
        vec![spam, legal]
    );
    let page = |offset| PageRequest {
        offset,
        limit: 2,
        with_counts: false,
    };
    let p1 = queue(&db, &s1, &QueueFilter::default(), page(0))
        .await
        .unwrap();
    let p2 = queue(&db, &s1, &QueueFilter::default(), page(2))
        .await
        .unwrap();
    assert_eq!(p1.cases.len() + p2.cases.len(), 3);
    assert_eq!(p1.counts, QueueCounts::default());
    // Counts follow state changes.
    let out = decide(&db, &s1, viol, &decision(Action::None, "2"))
        .await
        .unwrap();
    assert_eq!(out.state, DecisionState::Pending);
    let q = queue(&db, &s1, &QueueFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!((q.counts.total, q.cases.len()), (2, 2));
    let closed = queue(
        &db,
        &s1,
        &QueueFilter {
            state: Some(CaseState::Closed),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!((closed.counts.total, closed.cases[0].id), (1, viol));
    assert_eq!(closed.counts.by_category, vec![(Category::Violation, 1)]);
    drain(&w.services).await;
    // A warning (`none`) with report_id resolves that report only.
    let acts = a.account_actions();
    assert_eq!(
        (acts[0].kind.as_str(), acts[0].report_id.as_deref()),
        ("none", Some("11"))
    );
    assert_eq!(a.report_resolved(11), Some(true));
    assert_eq!(a.report_resolved(12), Some(false));
});

db_test!(
    dead_jobs_and_lost_schedules_are_recovered,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let id = open_cases(&db, &s1).await[0].id;
        claim(&db, &s1, id).await.unwrap();
        let out = decide(&db, &s1, id, &decision(Action::Silence, "2"))
            .await
            .unwrap();
        // The worker was lost on the last attempt: the job is dead without its handler knowing.
        on_pool!(&db, p => sqlx::query(
        "UPDATE jobs SET state = 'dead', last_error = 'lease expired on the last attempt (worker lost)' \
         WHERE kind = 'moderation.apply'")
        .execute(p).await.map(|r| r.rows_affected())).unwrap();
        assert_eq!(reconcile_dead_deliveries(&db).await.unwrap(), 1);
        let d = &case(&db, &s1, id).await.unwrap().decisions[0];
        assert_eq!(d.id, out.decision_id);
        assert_eq!(d.state, DecisionState::Failed);
        assert!(d.failure.as_deref().unwrap().contains("worker lost"));
        assert_eq!(reconcile_dead_deliveries(&db).await.unwrap(), 0);
        // "Sync now" moves the scheduled sync to now.
        assert!(sync_now(&db, &s1, w.instances[0].id).await.unwrap());
        let due: i64 = on_pool!(&db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'moderation.sync' AND state = 'queued' AND run_at <= $1")
        .bind(Timestamp::now().0).fetch_one(p).await).unwrap();
        assert_eq!(due, 1);
        // A sync chain that died is scheduled again, once.
        on_pool!(&db, p => sqlx::query("UPDATE jobs SET state = 'dead' WHERE kind = 'moderation.sync'")
        .execute(p).await.map(|r| r.rows_affected())).unwrap();
        assert_eq!(schedule_syncs(&db).await.unwrap(), 1);
        assert_eq!(schedule_syncs(&db).await.unwrap(), 0);
        // Unlinked: the co-op no longer sees the instance's cases; its admin still does.
        unlink_instance(&db, w.instances[0].owner, w.instances[0].id)
            .await
            .unwrap();
        assert!(open_cases(&db, &s1).await.is_empty());
        assert!(matches!(
            case(&db, &s1, id).await,
            Err(ModError::NotFound(_))
        ));
        let admin = Scope::for_member(&db, w.instances[0].owner, w.instances[0].org)
            .await
            .unwrap();
        assert_eq!(case(&db, &admin, id).await.unwrap().case.id, id);
        assert_eq!(schedule_syncs(&db).await.unwrap(), 0);
    }
);

db_test!(
    resolved_on_the_instance_during_review_withdraws_the_decision,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let id = open_cases(&db, &s1).await[0].id;
        claim(&db, &s1, id).await.unwrap();
        let out = decide(&db, &s1, id, &decision(Action::Suspend, "1"))
            .await
            .unwrap();
        assert_eq!(review_list(&db, &s1).await.unwrap().len(), 1);
        client(a.url()).resolve_report("10", None).await.unwrap();
        sync_instance(&w.services, w.instances[0].id).await.unwrap();
        assert!(review_list(&db, &s1).await.unwrap().is_empty());
        let s2 = w.scope(w.m2).await;
        assert!(matches!(
            approve(&db, &s2, out.decision_id).await,
            Err(ModError::NotAwaitingApproval)
        ));
        let v = case(&db, &s1, id).await.unwrap();
        assert_eq!(v.case.outcome, Some(Outcome::ResolvedOnInstance));
        assert_eq!(v.decisions[0].state, DecisionState::Rejected);
        drain(&w.services).await;
        assert!(a.account_actions().is_empty());
    }
);

db_test!(
    sync_follows_link_pages_and_runs_incremental_passes,
    |db| async move {
        let mut seeds = Vec::new();
        for i in 0..250u64 {
            seeds.push(
                ReportSeed::new(1000 + i, REPORTER, 10_000 + i % 50).category(if i % 2 == 0 {
                    "spam"
                } else {
                    "other"
                }),
            );
        }
        let a = fake(&seeds).await;
        for i in 0..50u64 {
            a.add_account(guildhall_fake_mastodon::AccountSeed::remote(
                10_000 + i,
                &format!("u{i}"),
                "far.example",
            ));
        }
        let w = world(&db, &[&a]).await;
        let inst = w.instances[0].id;
        let s1 = w.scope(w.m1).await;
        let r = sync_instance(&w.services, inst).await.unwrap();
        assert_eq!(
            (r.full, r.pages, r.seen, r.stored),
            (true, 2, 250, 250),
            "{r:?}"
        );
        let q = queue(
            &db,
            &s1,
            &QueueFilter::default(),
            PageRequest {
                offset: 0,
                limit: 200,
                with_counts: true,
            },
        )
        .await
        .unwrap();
        assert_eq!(q.counts.total, 50);
        assert_eq!(q.cases.iter().map(|c| c.report_count).sum::<i64>(), 250);
        // Nothing new: one page, nothing stored.
        let r = sync_instance(&w.services, inst).await.unwrap();
        assert_eq!((r.full, r.pages, r.stored), (false, 1, 0), "{r:?}");
        // A new report is picked up by the incremental pass (which reads on while a page has news)
        // and joins its account's case.
        a.file_report(ReportSeed::new(5000, REPORTER, 10_003).category("legal"));
        let r = sync_instance(&w.services, inst).await.unwrap();
        assert_eq!((r.full, r.stored), (false, 1), "{r:?}");
        let q = queue(
            &db,
            &s1,
            &QueueFilter {
                category: Some(Category::Legal),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
        assert_eq!(q.cases.len(), 1);
        assert_eq!(q.cases[0].report_count, 6);
        // An old report resolved there (beyond the first page) shows up with the next full pass.
        client(a.url()).resolve_report("1000", None).await.unwrap();
        on_pool!(&db, p => sqlx::query("UPDATE mod_sync_state SET last_full_at = 0").execute(p).await.map(|r| r.rows_affected())).unwrap();
        let r = sync_instance(&w.services, inst).await.unwrap();
        assert!(r.full && r.refetched == 1, "{r:?}");
        let resolved: bool = on_pool!(&db, p => sqlx::query_scalar("SELECT action_taken FROM mod_reports WHERE remote_id = '1000'").fetch_one(p).await).unwrap();
        assert!(resolved);
    }
);
