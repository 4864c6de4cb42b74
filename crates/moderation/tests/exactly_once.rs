//! Exactly-once delivery across a crash, on both databases: an account action that reached the
//! instance but was never recorded as delivered (the answer was lost, or the write recording
//! it) is confirmed on the instance instead of being sent again; an attempt that never reached
//! the instance is still sent; a resolve the server refuses for an already-resolved report
//! does not fail the decision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use guildhall_db::jobs::NewJob;
use guildhall_db::{db_test, on_pool, Db};
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, Injected, ADMINISTRATOR};
use guildhall_mastodon::{Client, Secret};
use guildhall_moderation::model::StepState;
use guildhall_moderation::*;

fn decision(action: Action) -> NewDecision {
    let mut v = BTreeMap::new();
    v.insert("rule".to_owned(), "2".to_owned());
    v.insert("instance".to_owned(), "our instance".to_owned());
    NewDecision {
        action,
        rule_ids: vec!["2".to_owned()],
        user_note: Some(settings().template("warn").unwrap().fill(&v).unwrap()),
        private_note: "seen it before".into(),
        notify_user: true,
    }
}

/// Ingests, claims the only case and decides `action` on it; returns the decision's id.
async fn decided(w: &World, action: Action) -> i64 {
    drain(&w.services).await;
    let s1 = w.scope(w.m1).await;
    let q = queue(&w.db, &s1, &QueueFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(q.cases.len(), 1, "{:?}", q.cases);
    let case_id = q.cases[0].id;
    claim(&w.db, &s1, case_id).await.unwrap();
    decide(&w.db, &s1, case_id, &decision(action))
        .await
        .unwrap()
        .decision_id
}

async fn decision_state(w: &World, decision_id: i64) -> (DecisionState, Vec<StepView>) {
    let case_id: i64 = on_pool!(&w.db, p => sqlx::query_scalar(
        "SELECT case_id FROM mod_decisions WHERE id = $1")
        .bind(decision_id).fetch_one(p).await)
    .unwrap();
    let s1 = w.scope(w.m1).await;
    let view = case(&w.db, &s1, case_id).await.unwrap();
    let d = view
        .decisions
        .into_iter()
        .find(|d| d.id == decision_id)
        .unwrap();
    (d.state, d.steps)
}

/// As if the writes recording the delivery were lost: the steps pending again (their attempts
/// kept), the decision pending, and its apply job queued again (as the retry would be).
async fn forget_delivery(db: &Db, decision_id: i64) {
    on_pool!(db, p => sqlx::query(
        "UPDATE mod_delivery_steps SET state = 'pending' WHERE decision_id = $1")
        .bind(decision_id).execute(p).await.map(|r| r.rows_affected()))
    .unwrap();
    on_pool!(db, p => sqlx::query(
        "UPDATE mod_decisions SET state = 'pending', delivered_at = NULL WHERE id = $1")
        .bind(decision_id).execute(p).await.map(|r| r.rows_affected()))
    .unwrap();
    db.enqueue(
        &NewJob::new(
            APPLY_JOB_KIND,
            serde_json::json!({ "decision_id": decision_id }),
        )
        .dedup(format!("mod-apply:{decision_id}"))
        .max_attempts(20),
    )
    .await
    .unwrap()
    .unwrap();
}

fn count(actions: &[String], name: &str) -> usize {
    actions.iter().filter(|a| *a == name).count()
}

fn actions_of(f: &FakeMastodon, kind: &str) -> usize {
    f.account_actions()
        .iter()
        .filter(|a| a.kind == kind)
        .count()
}

db_test!(
    lost_answer_after_the_action_is_confirmed_not_repeated,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        // The instance applies the action, then its answer is lost (a 500 after the commit).
        a.lose_response_next(&format!("/api/v1/admin/accounts/{ALICE}/action"), 500);
        let id = decided(&w, Action::Disable).await;
        drain(&w.services).await;

        assert_eq!(actions_of(&a, "disable"), 1, "{:?}", a.account_actions());
        assert!(a.account(ALICE).unwrap().disabled);
        assert_eq!(a.report_resolved(11), Some(true));
        let (state, steps) = decision_state(&w, id).await;
        assert_eq!(state, DecisionState::Delivered);
        assert!(
            steps.iter().all(|s| s.state == StepState::Delivered),
            "{steps:?}"
        );
        let audit = audit_actions(&db).await;
        assert_eq!(
            count(&audit, "moderation.delivery_confirmed"),
            1,
            "{audit:?}"
        );
        assert_eq!(count(&audit, "moderation.delivered"), 1, "{audit:?}");
        // The lost answer was seen: the action was attempted once, then confirmed.
        let posts = a
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/action"))
            .count();
        assert_eq!(posts, 1);
    }
);

db_test!(
    recording_lost_in_the_database_is_confirmed_for_each_action,
    |db| async move {
        for action in [Action::Silence, Action::Sensitive, Action::None] {
            let a = fake(&[rude_report(11)]).await;
            let w = world(&db, &[&a]).await;
            // Guildhall knows which account its token belongs to (a connection check ran).
            db.record_instance_check(w.instances[0].id, true, &[], Some("@svc"))
                .await
                .unwrap();
            let id = decided(&w, action).await;
            drain(&w.services).await;
            assert_eq!(decision_state(&w, id).await.0, DecisionState::Delivered);
            let kind = action.api_type().as_str().to_owned();
            assert_eq!(actions_of(&a, &kind), 1, "{action:?}");
            let before = count(&audit_actions(&db).await, "moderation.delivery_confirmed");

            forget_delivery(&db, id).await;
            drain(&w.services).await;

            assert_eq!(
                actions_of(&a, &kind),
                1,
                "{action:?} sent again: {:?}",
                a.account_actions()
            );
            let (state, steps) = decision_state(&w, id).await;
            assert_eq!(state, DecisionState::Delivered, "{action:?}");
            assert!(
                steps.iter().all(|s| s.state == StepState::Delivered),
                "{steps:?}"
            );
            let after = count(&audit_actions(&db).await, "moderation.delivery_confirmed");
            assert_eq!(
                after - before,
                steps.len(),
                "{action:?}: every step confirmed"
            );
        }
    }
);

/// As if the worker died after recording an attempt at the action, before the request went
/// out.
async fn attempted_not_sent(db: &Db, decision_id: i64) {
    on_pool!(db, p => sqlx::query(
        "UPDATE mod_delivery_steps SET attempts = 1 WHERE decision_id = $1 AND kind = 'action'")
        .bind(decision_id).execute(p).await.map(|r| r.rows_affected()))
    .unwrap();
}

db_test!(
    an_attempt_that_never_reached_the_instance_is_sent_once,
    |db| async move {
        // Whether or not the report can be read when the job looks (if not, the account is).
        for report_readable in [true, false] {
            let a = fake(&[rude_report(11)]).await;
            let w = world(&db, &[&a]).await;
            let id = decided(&w, Action::Silence).await;
            let confirmed_before =
                count(&audit_actions(&db).await, "moderation.delivery_confirmed");
            attempted_not_sent(&db, id).await;
            if !report_readable {
                hide_report_once(&a);
            }
            drain(&w.services).await;
            assert_eq!(actions_of(&a, "silence"), 1, "{:?}", a.account_actions());
            assert!(a.account(ALICE).unwrap().silenced);
            assert_eq!(decision_state(&w, id).await.0, DecisionState::Delivered);
            assert_eq!(
                count(&audit_actions(&db).await, "moderation.delivery_confirmed"),
                confirmed_before
            );
            assert_eq!(asked_the_account(&a), !report_readable);
        }
    }
);

db_test!(
    a_warning_is_sent_when_someone_else_resolved_the_report,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        a.add_account(AccountSeed::local(9, "house").with_role("Admin", ADMINISTRATOR));
        a.add_token("tok-house", &["admin:read", "admin:write"], Some(9));
        let w = world(&db, &[&a]).await;
        db.record_instance_check(w.instances[0].id, true, &[], Some("@svc"))
            .await
            .unwrap();
        let id = decided(&w, Action::None).await;
        // An attempt was recorded but never sent; meanwhile the instance's own moderator
        // resolved the report: the warning has not reached the user and must still be sent.
        attempted_not_sent(&db, id).await;
        let house = Client::new(
            a.url(),
            Some(Secret::new("tok-house".to_owned())),
            fast_client(),
        )
        .unwrap();
        house.resolve_report("11", None).await.unwrap();
        drain(&w.services).await;
        assert_eq!(actions_of(&a, "none"), 1, "{:?}", a.account_actions());
        let (state, _) = decision_state(&w, id).await;
        assert_eq!(state, DecisionState::Delivered);
    }
);

db_test!(
    resolving_an_already_resolved_report_does_not_fail,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        // A server that refuses to resolve a resolved report (the action resolved it).
        a.inject_response(
            "/api/v1/admin/reports/11/resolve",
            Injected::json(
                422,
                r#"{"error":"Validation failed: the report is resolved"}"#,
            ),
        );
        let id = decided(&w, Action::Silence).await;
        drain(&w.services).await;
        assert_eq!(actions_of(&a, "silence"), 1);
        let (state, steps) = decision_state(&w, id).await;
        assert_eq!(state, DecisionState::Delivered, "{steps:?}");
        assert!(
            steps.iter().all(|s| s.state == StepState::Delivered),
            "{steps:?}"
        );
        let audit = audit_actions(&db).await;
        assert_eq!(
            count(&audit, "moderation.delivery_confirmed"),
            1,
            "{audit:?}"
        );
        assert_eq!(count(&audit, "moderation.delivery_failed"), 0, "{audit:?}");
    }
);

/// The instance will not show report 11 (as after its deletion) the next time it is asked.
fn hide_report_once(a: &FakeMastodon) {
    a.inject_response(
        "/api/v1/admin/reports/11",
        Injected::json(404, r#"{"error":"Record not found"}"#),
    );
}

/// Whether the job looked at the target account itself.
fn asked_the_account(a: &FakeMastodon) -> bool {
    let path = format!("/api/v1/admin/accounts/{ALICE}");
    a.requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == path)
}

/// The decision's failure message, if it failed.
async fn failure(w: &World, decision_id: i64) -> Option<String> {
    let failure: Option<String> = on_pool!(&w.db, p => sqlx::query_scalar(
        "SELECT failure FROM mod_decisions WHERE id = $1")
        .bind(decision_id).fetch_one(p).await)
    .unwrap();
    failure
}

db_test!(
    an_action_whose_report_cannot_be_read_is_confirmed_on_the_account,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        let id = decided(&w, Action::Silence).await;
        drain(&w.services).await;
        assert_eq!(decision_state(&w, id).await.0, DecisionState::Delivered);
        let before = count(&audit_actions(&db).await, "moderation.delivery_confirmed");
        // The recording was lost, and the report can no longer be read: the account shows
        // the silence, so it is not sent again.
        forget_delivery(&db, id).await;
        hide_report_once(&a);
        drain(&w.services).await;
        assert_eq!(actions_of(&a, "silence"), 1, "{:?}", a.account_actions());
        let (state, steps) = decision_state(&w, id).await;
        assert_eq!(state, DecisionState::Delivered, "{steps:?}");
        let after = count(&audit_actions(&db).await, "moderation.delivery_confirmed");
        assert_eq!(after - before, steps.len(), "every step confirmed");
        assert!(asked_the_account(&a));
    }
);

db_test!(
    a_warning_whose_report_cannot_be_read_is_not_sent_twice,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        let id = decided(&w, Action::None).await;
        drain(&w.services).await;
        assert_eq!(decision_state(&w, id).await.0, DecisionState::Delivered);
        assert_eq!(actions_of(&a, "none"), 1);
        // The recording was lost, and the report can no longer be read: nothing on the
        // account shows a warning, so it is not sent again; the decision fails, saying why.
        forget_delivery(&db, id).await;
        hide_report_once(&a);
        drain(&w.services).await;
        assert_eq!(
            actions_of(&a, "none"),
            1,
            "warned twice: {:?}",
            a.account_actions()
        );
        let (state, steps) = decision_state(&w, id).await;
        assert_eq!(state, DecisionState::Failed, "{steps:?}");
        let why = failure(&w, id).await.unwrap_or_default();
        assert!(why.contains("not sent again"), "{why}");
        assert!(why.contains("report 11"), "{why}");
        assert_eq!(
            count(&audit_actions(&db).await, "moderation.delivery_failed"),
            1
        );
    }
);

db_test!(
    the_service_account_is_learned_from_the_first_delivered_action,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        let inst = w.instances[0].id;
        // No check could read the token's account (no `read:accounts`).
        assert_eq!(db.instance(inst).await.unwrap().unwrap().account, None);
        let id = decided(&w, Action::None).await;
        drain(&w.services).await;
        assert_eq!(decision_state(&w, id).await.0, DecisionState::Delivered);
        // The report the warning resolved names who resolved it: the token's account.
        assert_eq!(
            db.instance(inst).await.unwrap().unwrap().account.as_deref(),
            Some("@svc")
        );
        // Learned once: a known account is not replaced.
        assert!(!db.learn_instance_account(inst, "@other").await.unwrap());
        assert_eq!(
            db.instance(inst).await.unwrap().unwrap().account.as_deref(),
            Some("@svc")
        );
    }
);
