//! The queue's filtered pages on both databases: the rule and language filters (answered from
//! the tags' copy of the sort key, migration 0040) and the unclaimed and age filters (counted
//! in two parts) return the same cases, in the same order, with the same counts, as the
//! unfiltered queue filtered case by case; the copy follows changes of the case's deadline,
//! severity and state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use guildhall_core::Timestamp;
use guildhall_db::{db_test, on_pool, Db};
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ReportSeed, StatusSeed, ADMINISTRATOR};
use guildhall_moderation::*;

const TARGETS: u64 = 12;

/// A fake with `TARGETS` reported accounts; target `t` gets a report of a category, rules and
/// (for every other target) a status, varied by `t`.
async fn many() -> FakeMastodon {
    let mut b = FakeMastodon::builder()
        .account(AccountSeed::local(MOD, "svc").with_role("Admin", ADMINISTRATOR))
        .account(AccountSeed::local(REPORTER, "rep"))
        .rule(1, "No spam")
        .rule(2, "Be kind")
        .token(TOKEN, &["admin:read", "admin:write"], Some(MOD));
    let cats = ["spam", "violation", "legal", "other"];
    for t in 0..TARGETS {
        let id = 10 + t;
        b = b
            .account(AccountSeed::local(id, &format!("user{t}")))
            .status(StatusSeed::new(100 + id, id, "<p>words</p>"));
        let rules: &[u64] = match t % 3 {
            0 => &[1],
            1 => &[2],
            _ => &[1, 2],
        };
        let mut r = ReportSeed::new(1 + t, REPORTER, id)
            .category(cats[(t % 4) as usize])
            .rules(rules);
        if t % 2 == 0 {
            r = r.statuses(&[100 + id]);
        }
        b = b.report(r);
    }
    b.start().await.unwrap()
}

async fn exec(db: &Db, sql: &str, a: i64, b: i64) {
    on_pool!(db, p => sqlx::query(sql).bind(a).bind(b).execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
}

/// Tags of every case, read directly.
async fn tags(db: &Db) -> BTreeMap<i64, BTreeSet<String>> {
    let rows: Vec<(i64, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT case_id, tag FROM mod_case_tags").fetch_all(p).await)
    .unwrap();
    let mut m: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (c, t) in rows {
        m.entry(c).or_default().insert(t);
    }
    m
}

/// The unfiltered queue in `state` (every case: one page of 200).
async fn everything(db: &Db, s: &Scope, state: CaseState) -> Vec<CaseSummary> {
    let f = QueueFilter {
        state: Some(state),
        ..Default::default()
    };
    let page = PageRequest {
        offset: 0,
        limit: 200,
        with_counts: false,
    };
    queue(db, s, &f, page).await.unwrap().cases
}

/// Checks `filter` against the unfiltered queue filtered by `keep`, on the first page and on
/// a page of two from offset 1 (order across ties and paging).
async fn check(
    db: &Db,
    s: &Scope,
    filter: QueueFilter,
    keep: impl Fn(&CaseSummary) -> bool,
) -> Vec<i64> {
    let state = filter.state.unwrap_or(CaseState::Open);
    let want: Vec<i64> = everything(db, s, state)
        .await
        .into_iter()
        .filter(|c| keep(c))
        .map(|c| c.id)
        .collect();
    let r = queue(db, s, &filter, PageRequest::default()).await.unwrap();
    let got: Vec<i64> = r.cases.iter().map(|c| c.id).collect();
    assert_eq!(got, want, "{filter:?}");
    assert_eq!(r.counts.matching, want.len() as i64, "{filter:?}");
    assert!(!r.counts.capped, "{filter:?}");
    let page = PageRequest {
        offset: 1,
        limit: 2,
        with_counts: false,
    };
    let r = queue(db, s, &filter, page).await.unwrap();
    let got: Vec<i64> = r.cases.iter().map(|c| c.id).collect();
    let want_page: Vec<i64> = want.iter().skip(1).take(2).copied().collect();
    assert_eq!(got, want_page, "{filter:?} page");
    want
}

db_test!(
    filtered_queue_same_as_filtering_the_queue,
    |db| async move {
        let a = many().await;
        let w = world(&db, &[&a]).await;
        let inst = w.instances[0].id;
        drain(&w.services).await;
        let s = w.scope(w.m1).await;
        let open = everything(&db, &s, CaseState::Open).await;
        assert_eq!(open.len() as u64, TARGETS);
        // Ties: three deadlines shared by four cases each (then severity, then id decide); the
        // change reaches the tags' copy through the trigger.
        let now = Timestamp::now();
        let deadlines = [
            now.0 - 3_600_000,
            now.plus(Duration::from_secs(3600)).0,
            now.plus(Duration::from_secs(40 * 3600)).0,
        ];
        for (i, c) in open.iter().enumerate() {
            let due = deadlines[i % 3];
            exec(
                &db,
                "UPDATE mod_cases SET sla_due_at = $1 WHERE id = $2",
                due,
                c.id,
            )
            .await;
            // Half the cases were opened two days ago.
            if i % 2 == 1 {
                let old = now.0 - 48 * 3_600_000;
                exec(
                    &db,
                    "UPDATE mod_cases SET opened_at = $1 WHERE id = $2",
                    old,
                    c.id,
                )
                .await;
            }
        }
        let open = everything(&db, &s, CaseState::Open).await;
        // One live claim and one expired claim.
        claim(&db, &s, open[0].id).await.unwrap();
        claim(&db, &s, open[1].id).await.unwrap();
        exec(
            &db,
            "UPDATE mod_cases SET claim_expires_at = $1 WHERE id = $2",
            now.0 - 1000,
            open[1].id,
        )
        .await;
        let t = tags(&db).await;
        let has = |tag: String| {
            let t = t.clone();
            move |c: &CaseSummary| t.get(&c.id).is_some_and(|s| s.contains(&tag))
        };
        let rule = |id: &str| RuleRef {
            instance_id: inst,
            rule_id: id.into(),
        };
        let r1 = check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("1")),
                ..Default::default()
            },
            has(format!("rule:{inst}:1")),
        )
        .await;
        assert!(r1.len() >= 6, "{r1:?}");
        let r2 = check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("2")),
                ..Default::default()
            },
            has(format!("rule:{inst}:2")),
        )
        .await;
        assert!(r2.len() >= 6, "{r2:?}");
        let en = check(
            &db,
            &s,
            QueueFilter {
                language: Some("en".into()),
                ..Default::default()
            },
            has("lang:en".into()),
        )
        .await;
        assert_eq!(en.len() as u64, TARGETS / 2);
        // Rule and language together (the rule drives, the language is checked per case).
        let both = has(format!("rule:{inst}:1"));
        let lang = has("lang:en".into());
        check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("1")),
                language: Some("en".into()),
                ..Default::default()
            },
            |c| both(c) && lang(c),
        )
        .await;
        // Unclaimed: the expired claim counts as unclaimed, the live one does not.
        let live = open[0].id;
        let un = check(
            &db,
            &s,
            QueueFilter {
                unclaimed: true,
                ..Default::default()
            },
            |c| c.id != live,
        )
        .await;
        assert_eq!(un.len() as u64, TARGETS - 1);
        let cutoff = now.minus(Duration::from_secs(24 * 3600));
        let old = check(
            &db,
            &s,
            QueueFilter {
                older_than: Some(Duration::from_secs(24 * 3600)),
                ..Default::default()
            },
            |c| c.opened_at <= cutoff,
        )
        .await;
        assert_eq!(old.len() as u64, TARGETS / 2);
        let has_r2 = has(format!("rule:{inst}:2"));
        check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("2")),
                unclaimed: true,
                older_than: Some(Duration::from_secs(24 * 3600)),
                ..Default::default()
            },
            |c| has_r2(c) && c.id != live && c.opened_at <= cutoff,
        )
        .await;
        check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("1")),
                sla: Some(SlaState::Overdue),
                ..Default::default()
            },
            |c| both(c) && c.sla_state == SlaState::Overdue,
        )
        .await;

        // The copy follows the case: a new deadline moves a case to the front of the rule filter,
        // a new severity reorders a tie, and a state change moves it to the other state's queue.
        let last = *r1.last().unwrap();
        exec(
            &db,
            "UPDATE mod_cases SET sla_due_at = $1 WHERE id = $2",
            now.0 - 7_200_000,
            last,
        )
        .await;
        let r1b = check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("1")),
                ..Default::default()
            },
            has(format!("rule:{inst}:1")),
        )
        .await;
        assert_eq!(r1b[0], last);
        exec(
            &db,
            "UPDATE mod_cases SET severity = $1 WHERE id = $2",
            99,
            r1b[2],
        )
        .await;
        let r1c = check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("1")),
                ..Default::default()
            },
            has(format!("rule:{inst}:1")),
        )
        .await;
        assert_eq!(r1c.len(), r1b.len());
        on_pool!(&db, p => sqlx::query("UPDATE mod_cases SET state = 'escalated' WHERE id = $1")
        .bind(last).execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
        let r1d = check(
            &db,
            &s,
            QueueFilter {
                rule: Some(rule("1")),
                ..Default::default()
            },
            has(format!("rule:{inst}:1")),
        )
        .await;
        assert!(!r1d.contains(&last));
        assert_eq!(r1d.len() + 1, r1b.len());
        let esc = check(
            &db,
            &s,
            QueueFilter {
                state: Some(CaseState::Escalated),
                rule: Some(rule("1")),
                ..Default::default()
            },
            has(format!("rule:{inst}:1")),
        )
        .await;
        assert_eq!(esc, vec![last]);
        // Every tag carries its case's current key.
        let stale: i64 = on_pool!(&db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM mod_case_tags t JOIN mod_cases c ON c.id = t.case_id \
         WHERE t.state <> c.state OR t.sla_due_at <> c.sla_due_at OR t.severity <> c.severity")
        .fetch_one(p).await)
        .unwrap();
        assert_eq!(stale, 0);
    }
);
