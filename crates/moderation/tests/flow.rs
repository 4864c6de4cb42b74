//! The moderation co-op's whole path on both databases: ingestion from two fake instances,
//! one queue, claims (and their race), decisions with second review, delivery through an
//! outage and a restart, webhooks, tenancy, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use guildhall_core::{Role, Timestamp};
use guildhall_db::jobs::run_worker;
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::{db_test, on_pool, Db};
use guildhall_fake_mastodon::Injected;
use guildhall_mastodon::{Client, Secret};
use guildhall_moderation::*;

fn note(settings: &LinkSettings, rule: &str) -> FilledNote {
    let mut v = BTreeMap::new();
    v.insert("rule".to_owned(), rule.to_owned());
    v.insert("instance".to_owned(), "our instance".to_owned());
    settings.template("warn").unwrap().fill(&v).unwrap()
}

fn decision(action: Action, rule: &str) -> NewDecision {
    NewDecision {
        action,
        rule_ids: vec![rule.to_owned()],
        user_note: Some(note(&settings(), rule)),
        private_note: "seen it before".into(),
        notify_user: true,
    }
}

async fn open_cases(db: &Db, s: &Scope) -> Vec<CaseSummary> {
    queue(db, s, &QueueFilter::default(), PageRequest::default())
        .await
        .unwrap()
        .cases
}

db_test!(
    end_to_end_two_instances_one_queue_claim_decide_review,
    |db| async move {
        let a = fake(&[spam_report(10), rude_report(11)]).await;
        let b = fake(&[spam_report(20)]).await;
        let w = world(&db, &[&a, &b]).await;
        let (ia, ib) = (w.instances[0].id, w.instances[1].id);
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let s2 = w.scope(w.m2).await;

        // One queue with both instances' cases, most urgent (violation: 24 h) first.
        let q = queue(&db, &s1, &QueueFilter::default(), PageRequest::default())
            .await
            .unwrap();
        assert_eq!(q.cases.len(), 3, "{:?}", q.cases);
        assert_eq!(q.counts.total, 3);
        assert!(q.cases.iter().all(|c| c.instance_base_url
            == if c.instance_id == ia {
                a.url()
            } else {
                b.url()
            }));
        assert_eq!(q.counts.by_instance, vec![(ia, 2), (ib, 1)]);
        assert!(
            q.cases[0].target_acct.starts_with("alice@"),
            "{:?}",
            q.cases[0]
        );
        assert_eq!(q.cases[0].category, Category::Violation);
        assert!(q.counts.by_category.contains(&(Category::Spam, 2)));
        assert!(q.counts.by_language.contains(&("en".to_owned(), 3)));
        let only_b = QueueFilter {
            instance: Some(ib),
            ..QueueFilter::default()
        };
        let qb = queue(&db, &s1, &only_b, PageRequest::default())
            .await
            .unwrap();
        assert_eq!(qb.cases.len(), 1);
        assert_eq!(qb.counts.matching, 1);
        let rule1 = QueueFilter {
            rule: Some(RuleRef {
                instance_id: ia,
                rule_id: "1".into(),
            }),
            ..QueueFilter::default()
        };
        assert_eq!(
            queue(&db, &s1, &rule1, PageRequest::default())
                .await
                .unwrap()
                .cases
                .len(),
            1
        );

        // The case view: copied status and media bytes, history on the other instance.
        let case_a = q
            .cases
            .iter()
            .find(|c| c.instance_id == ia && c.target_remote)
            .unwrap()
            .clone();
        let case_b = q
            .cases
            .iter()
            .find(|c| c.instance_id == ib)
            .unwrap()
            .clone();
        assert_eq!(case_a.target_acct, "spammer@bad.example");
        let view = case(&db, &s1, case_a.id).await.unwrap();
        assert_eq!(view.reports.len(), 1);
        assert_eq!(view.reports[0].remote_id, "10");
        let st = &view.reports[0].statuses[0];
        assert_eq!(st.content, "<p>buy now</p>");
        assert_eq!(st.media.len(), 1);
        assert_eq!(st.media[0].copy_state, model::CopyState::Copied);
        let (ct, bytes) = media(&db, &s1, st.media[0].id).await.unwrap();
        assert_eq!(ct.as_deref(), Some("image/png"));
        assert!(bytes.starts_with(b"\x89PNG"));
        assert_eq!(view.history.len(), 1);
        assert_eq!(view.history[0].case.id, case_b.id);
        assert_eq!(
            view.allowed_actions,
            vec![Action::Sensitive, Action::Silence, Action::Suspend]
        );
        assert_eq!(
            view.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["1", "2"]
        );

        // Claims: deciding needs one; a second moderator cannot take it.
        assert!(matches!(
            decide(&db, &s1, case_a.id, &decision(Action::Silence, "1")).await,
            Err(ModError::NotClaimed)
        ));
        claim(&db, &s1, case_a.id).await.unwrap();
        drain(&w.services).await;
        assert_eq!(a.report_json(10).unwrap()["assigned_account"]["id"], "1");
        assert!(matches!(
            claim(&db, &s2, case_a.id).await,
            Err(ModError::ClaimedByOther { .. })
        ));
        // Only what a remote target allows; only the instance's rules.
        assert!(matches!(
            decide(&db, &s1, case_a.id, &decision(Action::Disable, "1")).await,
            Err(ModError::Invalid {
                field: "action",
                ..
            })
        ));
        assert!(matches!(
            decide(&db, &s1, case_a.id, &decision(Action::Silence, "9")).await,
            Err(ModError::Invalid {
                field: "rule_ids",
                ..
            })
        ));
        let out = decide(&db, &s1, case_a.id, &decision(Action::Silence, "1"))
            .await
            .unwrap();
        assert_eq!(out.state, DecisionState::Pending);
        // A sync before the delivery does not reopen the case of the still-open report.
        sync_instance(&w.services, ia).await.unwrap();
        assert!(open_cases(&db, &s1)
            .await
            .iter()
            .all(|c| c.id != case_a.id && !(c.instance_id == ia && c.target_remote)));
        drain(&w.services).await;
        let acts = a.account_actions();
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0].account_id, SPAMMER);
        assert_eq!(acts[0].kind, "silence");
        assert_eq!(acts[0].report_id.as_deref(), Some("10"));
        assert_eq!(
            acts[0].text.as_deref(),
            Some("Your account broke rule 1 of our instance.")
        );
        assert_eq!(a.report_resolved(10), Some(true));
        assert!(a
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/admin/reports/10/assign_to_self"));
        let view = case(&db, &s1, case_a.id).await.unwrap();
        assert_eq!(view.case.state, CaseState::Closed);
        assert_eq!(view.decisions[0].state, DecisionState::Delivered);
        assert!(view.decisions[0]
            .steps
            .iter()
            .all(|s| s.state == model::StepState::Delivered));

        // A suspend waits for a second moderator: nothing is sent before approval.
        claim(&db, &s2, case_b.id).await.unwrap();
        let out = decide(&db, &s2, case_b.id, &decision(Action::Suspend, "1"))
            .await
            .unwrap();
        assert_eq!(out.state, DecisionState::AwaitingApproval);
        drain(&w.services).await;
        assert!(b.account_actions().is_empty());
        assert_eq!(b.report_resolved(20), Some(false));
        assert!(matches!(
            approve(&db, &s2, out.decision_id).await,
            Err(ModError::SelfReview)
        ));
        let reviews = review_list(&db, &s1).await.unwrap();
        assert_eq!(reviews.len(), 1);
        assert_eq!(reviews[0].case.id, case_b.id);
        approve(&db, &s1, out.decision_id).await.unwrap();
        drain(&w.services).await;
        let acts = b.account_actions();
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(
            (acts[0].kind.as_str(), acts[0].report_id.as_deref()),
            ("suspend", Some("20"))
        );
        assert_eq!(b.report_resolved(20), Some(true));
        assert!(b.account(SPAMMER).unwrap().suspended);

        // The instance admin sees their instance's decisions and their delivery.
        let admin_b = Scope::for_member(&db, w.instances[1].owner, w.instances[1].org)
            .await
            .unwrap();
        let ds = decisions(&db, &admin_b, None, 50).await.unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(
            (ds[0].action, ds[0].state),
            (Action::Suspend, DecisionState::Delivered)
        );

        let audit = audit_actions(&db).await;
        for a in [
            "moderation.link",
            "moderation.claim",
            "moderation.decide",
            "moderation.approve",
            "moderation.delivered",
        ] {
            assert!(audit.iter().any(|x| x == a), "{a} missing from {audit:?}");
        }
        assert!(db.verify_audit().await.unwrap().first_broken.is_none());
    }
);

db_test!(
    two_moderators_claiming_at_once_exactly_one_holds_it,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let s2 = w.scope(w.m2).await;
        let case_id = open_cases(&db, &s1).await[0].id;
        for round in 0..25 {
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let mut tasks = Vec::new();
            for s in [s1.clone(), s2.clone()] {
                let (db, barrier) = (db.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    claim(&db, &s, case_id).await
                }));
            }
            let mut winners = Vec::new();
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await.unwrap() {
                    Ok(c) => winners.push((i, c)),
                    Err(ModError::ClaimedByOther { .. }) => {}
                    Err(e) => panic!("round {round}: unexpected error {e}"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            let holder = open_cases(&db, &s1).await[0].claimed_by;
            assert_eq!(holder, Some(winners[0].1.moderator));
            let s = if winners[0].0 == 0 { &s1 } else { &s2 };
            release(&db, s, case_id).await.unwrap();
        }
        let audit = audit_actions(&db).await;
        assert_eq!(
            audit.iter().filter(|x| *x == "moderation.claim").count(),
            25
        );
        assert_eq!(
            audit.iter().filter(|x| *x == "moderation.release").count(),
            25
        );
    }
);

db_test!(
    outage_then_restart_delivers_the_action_exactly_once,
    |db| async move {
        let a = fake(&[rude_report(11)]).await;
        let w = world(&db, &[&a]).await;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let case_id = open_cases(&db, &s1).await[0].id;
        claim(&db, &s1, case_id).await.unwrap();
        a.set_outage(Some(503));
        let out = decide(&db, &s1, case_id, &decision(Action::Disable, "2"))
            .await
            .unwrap();

        // A first worker tries while the instance is down, then "Guildhall restarts".
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let h = tokio::spawn(run_worker(
            db.clone(),
            w.registry(),
            worker_config("before-restart"),
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        ));
        let mut attempts = 0;
        for _ in 0..500 {
            attempts = on_pool!(&db, p => sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(MAX(attempts), 0) FROM jobs WHERE kind = 'moderation.apply'")
            .fetch_one(p).await)
            .unwrap();
            if attempts >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(true);
        h.await.unwrap();
        assert!(attempts >= 3, "the job was retried during the outage");
        assert!(a.account_actions().is_empty());
        let view = case(&db, &s1, case_id).await.unwrap();
        assert_eq!(view.decisions[0].state, DecisionState::Pending);
        let err = view.decisions[0].steps[0].last_error.clone().unwrap();
        assert!(err.contains("503"), "{err}");

        // The instance comes back; a new process (new pool, new services) finishes the work.
        a.set_outage(None);
        let url = guildhall_db::testing::url_of(&db);
        let db2 = Db::connect(&url).await.unwrap();
        let services2 = Services {
            db: db2.clone(),
            keyring: w.services.keyring.clone(),
            client: fast_client(),
        };
        drop(w);
        drain(&services2).await;
        let acts = a.account_actions();
        assert_eq!(
            acts.iter().filter(|x| x.kind == "disable").count(),
            1,
            "{acts:?}"
        );
        assert_eq!(acts[0].report_id.as_deref(), Some("11"));
        assert_eq!(a.report_resolved(11), Some(true));
        let view = case(&db2, &s1, case_id).await.unwrap();
        assert_eq!(view.decisions[0].id, out.decision_id);
        assert_eq!(view.decisions[0].state, DecisionState::Delivered);
        db2.close().await;
    }
);

db_test!(
    webhook_created_and_updated_reach_the_queue_and_the_case,
    |db| async move {
        let a = fake(&[]).await;
        let w = world(&db, &[&a]).await;
        let inst = w.instances[0].id;
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        assert!(open_cases(&db, &s1).await.is_empty());
        // Deliveries go to a closed port; the test takes the signed body and records it as the
        // webhook endpoint does.
        let secret = b"webhook-secret";
        a.set_webhook("http://127.0.0.1:9/hook", secret);
        a.file_report(spam_report(30));
        let d = a.wait_for_deliveries(1, Duration::from_secs(10)).await;
        assert_eq!(d[0].event, "report.created");
        guildhall_mastodon::webhook::verify_signature(secret, &d[0].body, Some(&d[0].signature))
            .unwrap();
        db.record_webhook_delivery(inst, "report.created", None, &d[0].body)
            .await
            .unwrap()
            .unwrap();
        drain(&w.services).await;
        let cases = open_cases(&db, &s1).await;
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].target_acct, "spammer@bad.example");
        let case_id = cases[0].id;

        // Resolved by the instance's own moderators: report.updated closes the case.
        let client = Client::new(a.url(), Some(Secret::new(TOKEN)), fast_client()).unwrap();
        client.resolve_report("30", None).await.unwrap();
        let d = a.wait_for_deliveries(2, Duration::from_secs(10)).await;
        assert_eq!(d[1].event, "report.updated");
        db.record_webhook_delivery(inst, "report.updated", None, &d[1].body)
            .await
            .unwrap()
            .unwrap();
        drain(&w.services).await;
        assert!(open_cases(&db, &s1).await.is_empty());
        let view = case(&db, &s1, case_id).await.unwrap();
        assert_eq!(view.case.state, CaseState::Closed);
        assert_eq!(view.case.outcome, Some(Outcome::ResolvedOnInstance));
        assert!(view.reports[0].resolved);
        assert!(ingest_errors(&db, &s1, 10).await.unwrap().is_empty());
    }
);

db_test!(
    a_coop_not_linked_to_an_instance_sees_none_of_its_cases,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let b = fake(&[spam_report(20)]).await;
        let w = world(&db, &[&a]).await;
        // A second co-op moderates instance B.
        let owner2 = account(&db, "Other owner").await;
        let coop2 = db
            .create_organisation(
                &NewOrganisation::cooperative("Other".parse().unwrap()),
                owner2,
            )
            .await
            .unwrap()
            .id;
        let inst_b = add_instance(&db, &w.services.keyring, &b).await;
        link_instance(&db, inst_b.owner, coop2, inst_b.id, &settings())
            .await
            .unwrap();
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let s_other = Scope::for_member(&db, owner2, coop2).await.unwrap();
        let mine = open_cases(&db, &s1).await;
        let theirs = open_cases(&db, &s_other).await;
        assert_eq!(mine.len(), 1);
        assert_eq!(theirs.len(), 1);
        assert_eq!(mine[0].instance_id, w.instances[0].id);
        assert_eq!(theirs[0].instance_id, inst_b.id);
        // Same account on both instances, but the history stays within each co-op.
        assert!(case(&db, &s1, mine[0].id).await.unwrap().history.is_empty());
        assert!(matches!(
            case(&db, &s1, theirs[0].id).await,
            Err(ModError::NotFound(_))
        ));
        assert!(matches!(
            claim(&db, &s1, theirs[0].id).await,
            Err(ModError::NotFound(_))
        ));
        let q = queue(
            &db,
            &s1,
            &QueueFilter {
                instance: Some(inst_b.id),
                ..QueueFilter::default()
            },
            PageRequest::default(),
        )
        .await
        .unwrap();
        assert!(q.cases.is_empty() && q.counts.total == 1);
        let their_media =
            case(&db, &s_other, theirs[0].id).await.unwrap().reports[0].statuses[0].media[0].id;
        assert!(matches!(
            media(&db, &s1, their_media).await,
            Err(ModError::NotFound(_))
        ));
        assert!(rules(&db, &s1, inst_b.id).await.is_err());
        // Instance admins see their own instance only; other people are refused.
        let admin_a = Scope::for_member(&db, w.instances[0].owner, w.instances[0].org)
            .await
            .unwrap();
        let seen = open_cases(&db, &admin_a).await;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].instance_id, w.instances[0].id);
        assert!(matches!(
            case(&db, &admin_a, theirs[0].id).await,
            Err(ModError::NotFound(_))
        ));
        assert!(matches!(
            claim(&db, &admin_a, seen[0].id).await,
            Err(ModError::Forbidden(_))
        ));
        let member = account(&db, "Member").await;
        db.add_member(w.coop, member, Role::Member).await.unwrap();
        assert!(matches!(
            Scope::for_member(&db, member, w.coop).await,
            Err(ModError::Forbidden(_))
        ));
        assert!(matches!(
            Scope::for_member(&db, member, coop2).await,
            Err(ModError::Forbidden(_))
        ));
        // Linking needs the instance's owner or admin.
        assert!(matches!(
            link_instance(&db, w.m1, w.coop, inst_b.id, &settings()).await,
            Err(ModError::Forbidden(_))
        ));
    }
);

db_test!(
    bad_reports_and_webhooks_are_recorded_and_the_good_ones_kept,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world(&db, &[&a]).await;
        let inst = w.instances[0].id;
        let good = a.report_json(10).unwrap();
        let mut no_target = good.clone();
        no_target["id"] = serde_json::json!("99");
        no_target.as_object_mut().unwrap().remove("target_account");
        let body =
            serde_json::json!([good, no_target, "not a report", {"id": 98, "account": null}]);
        a.inject_response(
            "/api/v1/admin/reports",
            Injected::json(200, body.to_string()),
        );
        a.inject_response(
            "/api/v1/instance/rules",
            Injected::json(404, r#"{"error":"Record not found"}"#),
        );
        drain(&w.services).await;
        let s1 = w.scope(w.m1).await;
        let cases = open_cases(&db, &s1).await;
        assert_eq!(cases.len(), 1, "the good report is kept");
        let errs = ingest_errors(&db, &s1, 50).await.unwrap();
        assert!(
            errs.iter()
                .any(|e| e.remote_id.as_deref() == Some("99")
                    && e.message.contains("target_account")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.message.starts_with("the instance's rules")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.message.contains("JSON object")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.remote_id.as_deref() == Some("98")),
            "{errs:?}"
        );

        for (i, body) in [
            "not json at all",
            r#"{"event":"report.created"}"#,
            r#"{"event":"report.created","object":{"id":"77","account":{"id":"1"}}}"#,
        ]
        .iter()
        .enumerate()
        {
            let id = db
                .record_webhook_delivery(
                    inst,
                    "report.created",
                    Some(&format!("k{i}")),
                    body.as_bytes(),
                )
                .await
                .unwrap();
            assert!(id.is_some());
        }
        drain(&w.services).await;
        let errs = ingest_errors(&db, &s1, 50).await.unwrap();
        let hooks: Vec<&IngestError> = errs
            .iter()
            .filter(|e| e.source.starts_with("webhook delivery"))
            .collect();
        assert_eq!(hooks.len(), 3, "{hooks:?}");
        assert!(hooks.iter().any(|e| e.message.contains("not JSON")));
        assert!(hooks.iter().any(|e| e.message.contains("no `object`")));
        assert!(hooks
            .iter()
            .any(|e| e.remote_id.as_deref() == Some("77") && e.message.contains("target_account")));
        // No webhook job is left failing, and the queue is intact.
        let dead: i64 = on_pool!(&db, p => sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'dead'").fetch_one(p).await).unwrap();
        assert_eq!(dead, 0);
        assert_eq!(open_cases(&db, &s1).await.len(), 1);
        let _ = Timestamp::now();
    }
);
