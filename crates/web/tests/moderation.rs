//! The moderation pages and JSON API through the router, on both databases: the queue with
//! filters and counts, the case view (blurred media, copied bytes served safely), claims (one
//! holder), decisions (checked fields, second review never by the decider), escalation,
//! release, delivery to a fake instance by the in-process worker, and tenancy (another co-op
//! and another instance's admin get 404).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod moderation_world;

use axum::http::{Method, StatusCode};
use common::*;
use guildhall_db::{db_test, Db};
use moderation_world::*;
use serde_json::{json, Value};

fn api(org: guildhall_core::OrgId, rest: &str) -> String {
    format!("/api/v1/orgs/{}/moderation{rest}", org.0)
}

fn page(org: guildhall_core::OrgId, rest: &str) -> String {
    format!("/orgs/{}/moderation{rest}", org.0)
}

fn case_of(cases: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    cases.iter().find(|c| pred(c)).expect("a case")
}

async fn app_for(db: &Db) -> axum::Router {
    guildhall_web::router(state(db))
}

db_test!(
    moderation_http_queue_claim_decide_review_escalate_deliver,
    |db| async move {
        let a = fake(&[spam_report(10), rude_report(11)]).await;
        let b = fake(&[spam_report(20)]).await;
        let w = world(&db, "coop", &[&a, &b]).await;
        let (ia, ib) = (w.instances[0].id, w.instances[1].id);
        drain(&w.services).await;
        let app = app_for(&db).await;
        let mut m1 = signed_in(&db, &app, w.m1).await;
        let mut m2 = signed_in(&db, &app, w.m2).await;

        // The queue: both instances, counts per filter, most urgent first.
        let r = m1.get(&api(w.coop, "/queue")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let q = r.json();
        let cases = q["cases"].as_array().unwrap().clone();
        assert_eq!(cases.len(), 3, "{q}");
        assert_eq!(q["counts"]["total"], 3);
        assert_eq!(cases[0]["category"], "violation");
        let by_instance = q["counts"]["by_instance"].as_array().unwrap();
        assert!(
            by_instance.contains(&json!({"instance_id": ia, "count": 2})),
            "{q}"
        );
        assert!(
            by_instance.contains(&json!({"instance_id": ib, "count": 1})),
            "{q}"
        );
        let qb = m1
            .get(&api(w.coop, &format!("/queue?instance={ib}")))
            .await
            .json();
        assert_eq!(qb["cases"].as_array().unwrap().len(), 1);
        assert_eq!(qb["counts"]["matching"], 1);
        let qs = m1
            .get(&api(w.coop, "/queue?category=spam&language=en"))
            .await
            .json();
        assert_eq!(qs["cases"].as_array().unwrap().len(), 2, "{qs}");
        let qr = m1
            .get(&api(w.coop, &format!("/queue?rule={ia}%3A1")))
            .await
            .json();
        assert_eq!(qr["cases"].as_array().unwrap().len(), 1, "{qr}");
        let qp = m1.get(&api(w.coop, "/queue?limit=1&offset=1")).await.json();
        assert_eq!(qp["cases"][0]["id"], cases[1]["id"]);
        let r = m1.get(&api(w.coop, "/queue?sla=late")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "invalid_input");
        assert_eq!(r.json()["error"]["field"], "sla");

        // The queue page lists the cases with their counts.
        let r = m1.get(&page(w.coop, "")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("3 of 3 cases match"), "{}", r.body);
        assert!(r.body.contains("spammer@bad.example"));
        let r = m1.get(&page(w.coop, &format!("?instance={ib}"))).await;
        assert!(r.body.contains("1 of 3 cases match"), "{}", r.body);

        // The case view: text of the status, media blurred behind a reveal button, bytes served
        // as an image that cannot run as a page.
        let spam_a = case_of(&cases, |c| {
            c["instance_id"] == ia && c["target_acct"] == "spammer@bad.example"
        })["id"]
            .as_i64()
            .unwrap();
        let spam_b = case_of(&cases, |c| c["instance_id"] == ib)["id"]
            .as_i64()
            .unwrap();
        let rude_a = case_of(&cases, |c| c["category"] == "violation")["id"]
            .as_i64()
            .unwrap();
        let view = m1
            .get(&api(w.coop, &format!("/cases/{spam_a}")))
            .await
            .json();
        assert_eq!(
            view["allowed_actions"],
            json!(["sensitive", "silence", "suspend"])
        );
        assert_eq!(view["history"].as_array().unwrap().len(), 1, "{view}");
        let media_id = view["reports"][0]["statuses"][0]["media"][0]["id"]
            .as_i64()
            .unwrap();
        let r = m1.get(&page(w.coop, &format!("/cases/{spam_a}"))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains("buy now &#38; save"), "{}", r.body);
        assert!(r.body.contains(&format!(
            "<figure class=\"mod-media\" id=\"media-{media_id}\">"
        )));
        assert!(r.body.contains("class=\"mod-reveal\""));
        assert!(r.body.contains("Claim this case"));
        assert!(
            !r.body.contains("id=\"decide-form\""),
            "no decision form before claiming"
        );
        let r = m1.get(&page(w.coop, &format!("/media/{media_id}"))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "image/png");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert!(r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox"));
        assert_eq!(
            m1.get(&page(w.coop, "/media/999999")).await.status,
            StatusCode::NOT_FOUND
        );

        // Claims: one holder; the other gets a conflict and cannot decide.
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{spam_a}/claim")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["claim"]["moderator"], w.m1.0);
        let r = m2
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{spam_a}/claim")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.error_code(), "conflict");
        let good = json!({
            "action": "silence", "rule_ids": ["1"], "template": "warn",
            "ph_rule": "1", "ph_instance": "our instance", "private_note": "again", "notify_user": true,
        });
        let r = m2
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{spam_a}/decide")),
                good.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

        // Decisions are checked field by field.
        for (body, field) in [
            (json!({"action": "silence", "rule_ids": []}), "rule_ids"),
            (json!({"action": "ban", "rule_ids": ["1"]}), "action"),
            (json!({"action": "disable", "rule_ids": ["1"]}), "action"),
            (json!({"action": "silence", "rule_ids": ["9"]}), "rule_ids"),
            (
                json!({"action": "silence", "rule_ids": ["1"], "template": "warn", "ph_rule": "1"}),
                "template",
            ),
            (
                json!({"action": "silence", "rule_ids": ["1"], "template": "nope"}),
                "template",
            ),
        ] {
            let r = m1
                .json(
                    Method::POST,
                    &api(w.coop, &format!("/cases/{spam_a}/decide")),
                    body.clone(),
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
            assert_eq!(r.json()["error"]["field"], field, "{body}: {}", r.body);
        }
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{spam_a}/decide")),
                good,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["decision"]["state"], "pending");

        // The worker delivers it to the fake instance; the case shows it delivered.
        drain(&w.services).await;
        let acts = a.account_actions();
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(
            (acts[0].account_id, acts[0].kind.as_str()),
            (SPAMMER, "silence")
        );
        assert_eq!(acts[0].report_id.as_deref(), Some("10"));
        assert_eq!(
            acts[0].text.as_deref(),
            Some("Your account broke rule 1 of our instance.")
        );
        assert_eq!(a.report_resolved(10), Some(true));
        let view = m1
            .get(&api(w.coop, &format!("/cases/{spam_a}")))
            .await
            .json();
        assert_eq!(view["case"]["state"], "closed");
        assert_eq!(view["decisions"][0]["state"], "delivered", "{view}");
        let r = m1.get(&page(w.coop, &format!("/cases/{spam_a}"))).await;
        assert!(r.body.contains("state-delivered"), "{}", r.body);

        // A suspend through the page forms waits for a second moderator, never its decider.
        m2.load_csrf(&page(w.coop, "")).await;
        let r = m2
            .post_form(&page(w.coop, &format!("/cases/{spam_b}/claim")), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = m2.get(&page(w.coop, &format!("/cases/{spam_b}"))).await;
        assert!(r.body.contains("id=\"decide-form\""));
        assert!(r.body.contains("suspend — waits for a second moderator"));
        let r = m2
            .post_form(
                &page(w.coop, &format!("/cases/{spam_b}/decide")),
                &[
                    ("action", "suspend"),
                    ("rule_ids", "1"),
                    ("template", ""),
                    ("private_note", "bot"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        drain(&w.services).await;
        assert!(b.account_actions().is_empty());
        let review = m2.get(&api(w.coop, "/review")).await.json();
        let pending = review["pending"].as_array().unwrap();
        assert_eq!(pending.len(), 1, "{review}");
        let decision = pending[0]["decision"]["id"].as_i64().unwrap();
        let r = m2
            .json(
                Method::POST,
                &api(w.coop, &format!("/decisions/{decision}/approve")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = m2.get(&page(w.coop, "/review")).await;
        assert!(
            r.body.contains("another moderator must review it"),
            "{}",
            r.body
        );
        assert!(!r.body.contains(&format!("id=\"approve-{decision}\"")));
        m1.load_csrf(&page(w.coop, "/review")).await;
        let r = m1.get(&page(w.coop, "/review")).await;
        assert!(
            r.body.contains(&format!("id=\"approve-{decision}\"")),
            "{}",
            r.body
        );
        let r = m1
            .post_form(
                &page(w.coop, &format!("/decisions/{decision}/approve")),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/decisions/{decision}/reject")),
                json!({"note": "late"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        drain(&w.services).await;
        let acts = b.account_actions();
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(acts[0].kind, "suspend");

        // Release, then escalate with a note (required).
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{rude_a}/claim")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{rude_a}/release")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{rude_a}/escalate")),
                json!({"note": "theirs"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "not claimed: {}", r.body);
        m2.json(
            Method::POST,
            &api(w.coop, &format!("/cases/{rude_a}/claim")),
            json!({}),
        )
        .await;
        let r = m2
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{rude_a}/escalate")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"]["field"], "note");
        let r = m2
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{rude_a}/escalate")),
                json!({"note": "local context"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let view = m1
            .get(&api(w.coop, &format!("/cases/{rude_a}")))
            .await
            .json();
        assert_eq!(view["case"]["state"], "escalated");
        assert_eq!(view["escalations"][0]["note"], "local context");
        let q = m1.get(&api(w.coop, "/queue")).await.json();
        assert_eq!(q["counts"]["total"], 0, "{q}");

        // Audit: claim, decision, approval, escalation.
        let actions: Vec<String> = db
            .audit_entries(None, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        for a in [
            "moderation.claim",
            "moderation.release",
            "moderation.decide",
            "moderation.approve",
            "moderation.escalate",
        ] {
            assert!(
                actions.iter().any(|x| x == a),
                "{a} not audited: {actions:?}"
            );
        }
    }
);

db_test!(moderation_http_tenancy_and_instance_view, |db| async move {
    let a = fake(&[spam_report(10)]).await;
    let b = fake(&[rude_report(20)]).await;
    let other = fake(&[spam_report(30)]).await;
    let w = world(&db, "first", &[&a, &b]).await;
    let w2 = world(&db, "second", &[&other]).await;
    let (ia, ib) = (w.instances[0].id, w.instances[1].id);
    drain(&w.services).await;
    drain(&w2.services).await;
    let app = app_for(&db).await;
    let mut m1 = signed_in(&db, &app, w.m1).await;
    let mut stranger = signed_in(&db, &app, w2.m1).await;
    let q = m1.get(&api(w.coop, "/queue")).await.json();
    let cases = q["cases"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 2, "{q}");
    let case_a = case_of(&cases, |c| c["instance_id"] == ia)["id"]
        .as_i64()
        .unwrap();
    let case_b = case_of(&cases, |c| c["instance_id"] == ib)["id"]
        .as_i64()
        .unwrap();

    // Another co-op's moderator: its own queue has only its own case; ours are 404 even
    // through its own organisation's paths.
    let q2 = stranger.get(&api(w2.coop, "/queue")).await.json();
    assert_eq!(q2["cases"].as_array().unwrap().len(), 1, "{q2}");
    assert_ne!(q2["cases"][0]["id"], case_a);
    for path in [
        api(w2.coop, &format!("/cases/{case_a}")),
        page(w2.coop, &format!("/cases/{case_a}")),
    ] {
        let r = stranger.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    let r = stranger
        .json(
            Method::POST,
            &api(w2.coop, &format!("/cases/{case_a}/claim")),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.error_code(), "not_found");
    let r = stranger
        .get(&api(w.coop, &format!("/cases/{case_a}")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Decide case A (delivered) so that the instance admin has an outcome to see.
    m1.json(
        Method::POST,
        &api(w.coop, &format!("/cases/{case_a}/claim")),
        json!({}),
    )
    .await;
    let r = m1
        .json(
            Method::POST,
            &api(w.coop, &format!("/cases/{case_a}/decide")),
            json!({"action": "sensitive", "rule_ids": ["1"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    drain(&w.services).await;

    // Instance A's admin: only instance A's cases and decisions, with the outcome.
    let admin_a = &w.instances[0];
    let mut adm = signed_in(&db, &app, admin_a.admin).await;
    let q = adm
        .get(&api(admin_a.org, "/queue?state=closed"))
        .await
        .json();
    let ids: Vec<i64> = q["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![case_a], "{q}");
    let r = adm
        .get(&api(admin_a.org, &format!("/cases/{case_b}")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = adm
        .get(&api(admin_a.org, &format!("/cases/{case_a}")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ds = adm.get(&api(admin_a.org, "/decisions")).await.json();
    assert_eq!(ds["instance_id"], ia);
    let list = ds["decisions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{ds}");
    assert_eq!(
        (list[0]["action"].as_str(), list[0]["state"].as_str()),
        (Some("sensitive"), Some("delivered"))
    );
    let r = adm.get(&page(admin_a.org, "/instance")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("state-delivered"), "{}", r.body);
    assert!(r.body.contains(&format!("Case {case_a}")));
    assert!(!r.body.contains(&format!("Case {case_b}<")));
    // The instance admin sees but does not work cases.
    let r = adm
        .json(
            Method::POST,
            &api(admin_a.org, &format!("/cases/{case_a}/claim")),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let dsb = adm.get(&api(w.instances[1].org, "/decisions")).await;
    assert_eq!(
        dsb.status,
        StatusCode::NOT_FOUND,
        "not a member of instance B's organisation"
    );
});

db_test!(
    moderation_http_link_unlink_and_settings_by_the_instance_admin,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let b = fake(&[rude_report(20)]).await;
        let w = world_with(&db, "lk", &[&a, &b], false).await;
        let (ia, ib) = (&w.instances[0], &w.instances[1]);
        let app = app_for(&db).await;
        let mut adm = signed_in(&db, &app, ia.admin).await;
        let mut adm_b = signed_in(&db, &app, ib.admin).await;
        let mut m1 = signed_in(&db, &app, w.m1).await;

        // Not linked yet: the page offers the link form; the co-op serves nothing.
        let r = adm.get(&page(ia.org, "/links")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("Link the instance to a co-op"),
            "{}",
            r.body
        );
        let l = m1.get(&api(w.coop, "/links")).await.json();
        assert_eq!(l["links"].as_array().unwrap().len(), 0, "{l}");

        // An organisation that is not a co-op, or none at all, is refused naming the field.
        let r = adm
            .json(
                Method::PUT,
                &api(ia.org, "/link"),
                json!({"coop": ib.org.0.to_string()}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.json()["error"]["field"], "coop");
        assert!(r.body.contains("not a cooperative"), "{}", r.body);
        for name in ["No such co-op", "Instance 1 of lk"] {
            // Instance organisations are not matched by name.
            let r = adm
                .json(Method::PUT, &api(ia.org, "/link"), json!({ "coop": name }))
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
            assert_eq!(r.json()["error"]["field"], "coop");
            assert!(r.body.contains("no co-op is named"), "{}", r.body);
        }
        let r = adm
            .json(Method::PUT, &api(ia.org, "/link"), json!({}))
            .await;
        assert_eq!(r.json()["error"]["field"], "coop");

        // Linking by id (JSON) and by exact name (page form).
        let r = adm
            .json(
                Method::PUT,
                &api(ia.org, "/link"),
                json!({"coop": w.coop.0.to_string(), "claim_minutes": 40}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let link = &r.json()["link"];
        assert_eq!(link["coop"], w.coop.0);
        assert_eq!(link["instance_id"], ia.id);
        assert_eq!(link["settings"]["claim_minutes"], 40);
        assert_eq!(link["settings"]["second_review"], json!(["suspend"]));
        let r = adm_b
            .post_form(&page(ib.org, "/link"), &[("coop", "co-op LK")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = adm_b.get(&page(ib.org, "/links")).await;
        assert!(r.body.contains("Co-op lk (co-op"), "{}", r.body);
        // The co-op's moderators see both instances, read-only.
        let l = m1.get(&api(w.coop, "/links")).await.json();
        let served: Vec<i64> = l["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["instance_id"].as_i64().unwrap())
            .collect();
        assert_eq!(served, vec![ia.id, ib.id], "{l}");
        let r = m1.get(&page(w.coop, "/links")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(!r.body.contains("settings-form"), "{}", r.body);
        // The first sync was enqueued: the co-op's queue fills.
        drain(&w.services).await;
        let q = m1.get(&api(w.coop, "/queue")).await.json();
        assert_eq!(q["cases"].as_array().unwrap().len(), 2, "{q}");

        // Settings through the API: templates are checked, errors name the field, nothing
        // changes on an error.
        let r = adm
            .json(
                Method::PUT,
                &api(ia.org, "/link/settings"),
                json!({
                    "second_review": ["suspend", "silence"],
                    "sla_legal": "12",
                    "template_name": ["warn"],
                    "template_text": ["Rule {{rule}} was broken."],
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let s = &r.json()["link"]["settings"];
        assert_eq!(s["second_review"], json!(["suspend", "silence"]));
        assert_eq!(s["sla_hours"]["legal"], 12);
        assert_eq!(s["claim_minutes"], 40, "absent fields keep their value");
        assert_eq!(s["templates"][0]["name"], "warn");
        for (body, field) in [
            (
                json!({"template_name": ["a"], "template_text": ["oops {{x"]}),
                "template_text",
            ),
            (
                json!({"template_name": ["a", "a"], "template_text": ["x", "y"]}),
                "template_name",
            ),
            (
                json!({"template_name": ["a", "b"], "template_text": ["x"]}),
                "template_text",
            ),
            (
                json!({"template_name": [""], "template_text": ["text"]}),
                "template_name",
            ),
            (json!({"claim_minutes": 0}), "claim_minutes"),
            (json!({"sla_spam": "many"}), "sla_spam"),
            (json!({"second_review": ["ban"]}), "second_review"),
        ] {
            let r = adm
                .json(Method::PUT, &api(ia.org, "/link/settings"), body.clone())
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
            assert_eq!(r.json()["error"]["field"], field, "{body}: {}", r.body);
        }
        let l = adm.get(&api(ia.org, "/links")).await.json();
        assert_eq!(
            l["links"][0]["settings"]["templates"][0]["text"],
            "Rule {{rule}} was broken."
        );
        // The case view offers the new template.
        let case_a = q["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["instance_id"] == ia.id)
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let v = m1
            .get(&api(w.coop, &format!("/cases/{case_a}")))
            .await
            .json();
        assert_eq!(v["settings"]["templates"][0]["name"], "warn", "{v}");

        // Settings through the page form: an empty second_review clears the list, blank
        // template rows are dropped.
        let r = adm
            .post_form(
                &page(ia.org, "/settings"),
                &[
                    ("second_review", ""),
                    ("claim_minutes", "20"),
                    ("template_name", "warn"),
                    ("template_text", "Rule {{rule}} of {{instance}}."),
                    ("template_name", ""),
                    ("template_text", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let s = adm.get(&api(ia.org, "/links")).await.json()["links"][0]["settings"].clone();
        assert_eq!(s["second_review"], json!([]));
        assert_eq!(s["claim_minutes"], 20);
        assert_eq!(s["templates"].as_array().unwrap().len(), 1);
        let r = adm
            .post_form(
                &page(ia.org, "/settings"),
                &[("template_name", "bad"), ("template_text", "{{no end")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.body.contains("Field: <code>template_text</code>"),
            "{}",
            r.body
        );

        // Tenancy: another instance's admin gets 404 on our paths; the co-op's moderators
        // cannot change the settings (403 in the co-op, 404 in the instance's organisation).
        for r in [
            adm_b.get(&page(ia.org, "/links")).await,
            adm_b
                .json(
                    Method::PUT,
                    &api(ia.org, "/link/settings"),
                    json!({"claim_minutes": 5}),
                )
                .await,
            adm_b
                .json(Method::DELETE, &api(ia.org, "/link"), json!({}))
                .await,
            m1.json(
                Method::PUT,
                &api(ia.org, "/link/settings"),
                json!({"claim_minutes": 5}),
            )
            .await,
        ] {
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        }
        let r = m1
            .json(
                Method::PUT,
                &api(w.coop, "/link/settings"),
                json!({"claim_minutes": 5}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let s = adm.get(&api(ia.org, "/links")).await.json()["links"][0]["settings"].clone();
        assert_eq!(s["claim_minutes"], 20, "unchanged");

        // Unlinking: the co-op stops serving the instance; a second unlink is a conflict.
        let r = adm
            .json(Method::DELETE, &api(ia.org, "/link"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let l = m1.get(&api(w.coop, "/links")).await.json();
        assert_eq!(l["links"].as_array().unwrap().len(), 1, "{l}");
        assert_eq!(l["links"][0]["instance_id"], ib.id);
        let r = adm
            .json(Method::DELETE, &api(ia.org, "/link"), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let r = adm.post_form(&page(ia.org, "/unlink"), &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let r = adm_b.post_form(&page(ib.org, "/unlink"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

        // Every write is in the audit log.
        let actions: Vec<String> = db
            .audit_entries(Some(ia.org), None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        for want in [
            "moderation.link",
            "moderation.settings",
            "moderation.unlink",
        ] {
            assert!(actions.iter().any(|a| a == want), "{want}: {actions:?}");
        }
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "moderation.settings")
                .count(),
            2,
            "only the accepted changes: {actions:?}"
        );
    }
);

db_test!(
    moderation_http_link_refused_until_the_instance_is_connected,
    |db| async move {
        let a = fake(&[spam_report(10)]).await;
        let w = world_with(&db, "nc", &[&a], false).await;
        let ia = &w.instances[0];
        let app = app_for(&db).await;
        let mut adm = signed_in(&db, &app, ia.admin).await;
        let mut m1 = signed_in(&db, &app, w.m1).await;
        let coop = w.coop.0.to_string();

        // No token stored: the page says why instead of offering the form; API and page
        // refuse with 409 `instance_not_connected` naming what is missing; nothing is linked.
        db.disconnect_instance(ia.id).await.unwrap();
        let r = adm.get(&page(ia.org, "/links")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("id=\"link-blocked\""), "{}", r.body);
        assert!(!r.body.contains("id=\"link-form\""), "{}", r.body);
        let r = adm
            .json(Method::PUT, &api(ia.org, "/link"), json!({ "coop": coop }))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let e = &r.json()["error"];
        assert_eq!(e["code"], "instance_not_connected", "{e}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains("not connected") && msg.contains("token"),
            "{msg}"
        );
        let r = adm
            .post_form(&page(ia.org, "/link"), &[("coop", coop.as_str())])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("not connected"), "{}", r.body);
        let l = m1.get(&api(w.coop, "/links")).await.json();
        assert_eq!(l["links"].as_array().unwrap().len(), 0, "{l}");

        // Connected, but its check found a scope missing: refused, naming the problem.
        db.save_instance_connection(
            &w.services.keyring,
            ia.org,
            &guildhall_db::instances::NewConnection {
                base_url: a.url().to_owned(),
                method: guildhall_db::instances::ConnectMethod::Token,
                client: None,
                token: guildhall_db::secrets::SecretValue::new(TOKEN.as_bytes().to_vec()),
                scopes: None,
            },
        )
        .await
        .unwrap();
        let problem = "The token may not read reports (admin:read:reports).";
        db.record_instance_check(ia.id, false, &[problem.to_owned()], None)
            .await
            .unwrap();
        let r = adm
            .json(Method::PUT, &api(ia.org, "/link"), json!({ "coop": coop }))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "instance_not_connected");
        assert!(r.body.contains(problem), "{}", r.body);

        // A working connection: linked, and shown as connected.
        db.record_instance_check(ia.id, true, &[], Some("@svc"))
            .await
            .unwrap();
        let r = adm
            .json(Method::PUT, &api(ia.org, "/link"), json!({ "coop": coop }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["link"]["connected"], true);
        let not_connected = format!("id=\"not-connected-{}\"", ia.id);
        let r = adm.get(&page(ia.org, "/links")).await;
        assert!(!r.body.contains(&not_connected), "{}", r.body);

        // Disconnected after linking: both sides see plainly that it cannot sync.
        db.disconnect_instance(ia.id).await.unwrap();
        let r = adm.get(&page(ia.org, "/links")).await;
        assert!(r.body.contains(&not_connected), "{}", r.body);
        let r = m1.get(&page(w.coop, "/links")).await;
        assert!(r.body.contains(&not_connected), "{}", r.body);
        let l = m1.get(&api(w.coop, "/links")).await.json();
        assert_eq!(l["links"][0]["connected"], false, "{l}");
    }
);

db_test!(
    moderation_http_retry_a_failed_delivery_and_escalations_on_the_instance_page,
    |db| async move {
        let a = fake(&[rude_report(11), spam_report(12)]).await;
        // A server that refuses account actions: the delivery fails for good.
        a.set_flavor(guildhall_fake_mastodon::Flavor::GoToSocial);
        let other = fake(&[spam_report(30)]).await;
        let w = world(&db, "rt", &[&a, &other]).await;
        drain(&w.services).await;
        let app = app_for(&db).await;
        let mut m1 = signed_in(&db, &app, w.m1).await;
        let ia = &w.instances[0];
        let mut adm = signed_in(&db, &app, ia.admin).await;
        let mut adm_other = signed_in(&db, &app, w.instances[1].admin).await;
        let q = m1
            .get(&api(w.coop, &format!("/queue?instance={}", ia.id)))
            .await
            .json();
        let cases = q["cases"].as_array().unwrap().clone();
        let rude = case_of(&cases, |c| c["category"] == "violation")["id"]
            .as_i64()
            .unwrap();
        let spam = case_of(&cases, |c| c["category"] == "spam")["id"]
            .as_i64()
            .unwrap();
        m1.json(
            Method::POST,
            &api(w.coop, &format!("/cases/{rude}/claim")),
            json!({}),
        )
        .await;
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{rude}/decide")),
                json!({"action": "silence", "rule_ids": ["2"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let decision = r.json()["decision"]["decision_id"].as_i64().unwrap();
        drain(&w.services).await;
        let ds = adm.get(&api(ia.org, "/decisions")).await.json();
        assert_eq!(ds["decisions"][0]["state"], "failed", "{ds}");

        // The instance admin's page offers the retry; another instance's admin gets 404; a
        // decision that has not failed cannot be retried.
        let r = adm.get(&page(ia.org, "/instance")).await;
        assert!(
            r.body.contains(&format!("/decisions/{decision}/retry")),
            "{}",
            r.body
        );
        let r = adm_other
            .json(
                Method::POST,
                &api(w.instances[1].org, &format!("/decisions/{decision}/retry")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        // The instance is fixed; its admin retries through the page; the action arrives.
        a.set_flavor(guildhall_fake_mastodon::Flavor::Mastodon);
        let r = adm
            .post_form(&page(ia.org, &format!("/decisions/{decision}/retry")), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/decisions/{decision}/retry")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "pending now: {}", r.body);
        assert_eq!(r.json()["error"]["field"], "decision");
        drain(&w.services).await;
        let ds = adm.get(&api(ia.org, "/decisions")).await.json();
        assert_eq!(ds["decisions"][0]["state"], "delivered", "{ds}");
        assert_eq!(a.account_actions().len(), 1);
        let actions: Vec<String> = db
            .audit_entries(None, None, 500)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(
            actions.iter().any(|x| x == "moderation.retry"),
            "{actions:?}"
        );

        // An escalation shows on the instance's page and in the API, with its note, for the
        // instance only.
        m1.json(
            Method::POST,
            &api(w.coop, &format!("/cases/{spam}/claim")),
            json!({}),
        )
        .await;
        let r = m1
            .json(
                Method::POST,
                &api(w.coop, &format!("/cases/{spam}/escalate")),
                json!({"note": "local context needed"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = adm.get(&page(ia.org, "/instance")).await;
        assert!(
            r.body.contains("Cases the co-op escalated to you"),
            "{}",
            r.body
        );
        assert!(r.body.contains("local context needed"), "{}", r.body);
        let e = adm.get(&api(ia.org, "/escalations")).await.json();
        let list = e["escalations"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{e}");
        assert_eq!(list[0]["case"]["id"], spam);
        assert_eq!(list[0]["escalation"]["note"], "local context needed");
        let e = adm_other
            .get(&api(w.instances[1].org, "/escalations"))
            .await
            .json();
        assert_eq!(e["escalations"].as_array().unwrap().len(), 0, "{e}");
    }
);
