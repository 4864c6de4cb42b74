#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Lists: review holds (approve, reject), tenancy, token-protected outputs, coordinated
//! defederation.

mod common;

use std::time::Duration;

use common::*;
use guildhall_core::{Domain, Name, Timestamp};
use guildhall_db::db_test;
use guildhall_db::orgs::NewOrganisation;
use guildhall_lists::defed::{close_proposal, propose, vote, NewProposal, ProposalStatus, Vote};
use guildhall_lists::feed::{feed, output, Access, OutputFormat};
use guildhall_lists::lists::{
    approve_change, create_list, held_changes, list, list_changes, list_entries, new_feed_token,
    rebuild_list, reject_change, update_list, ChangeStatus, HoldKind, ListSource, NewList, Policy,
};
use guildhall_lists::push::{subscribe, Mode};
use guildhall_lists::sources::{
    create_source, delete_source, source, sources, upload_source, NewSource, SourceSpec,
};
use guildhall_lists::{ChangeOp, ListsError, Severity};

async fn upload(w: &World, org: guildhall_core::OrgId, rows: &[(&str, &str)]) -> i64 {
    let s = create_source(
        &w.db,
        &w.svc.keyring,
        org,
        &actor(w),
        &NewSource {
            name: "up".into(),
            spec: SourceSpec::Upload { format: None },
            refresh_every: Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    upload_source(&w.db, org, &actor(w), s.id, mastodon_csv(rows).as_bytes())
        .await
        .unwrap();
    s.id
}

fn new_list(name: &str, public: bool, src: i64, holds: Vec<HoldKind>) -> NewList {
    NewList {
        name: name.into(),
        description: String::new(),
        public,
        policy: Policy {
            holds,
            ..Policy::default()
        },
        sources: vec![ListSource::new(src)],
    }
}

db_test!(held_changes_wait_for_a_person, |db| async move {
    let w = world(db).await;
    let src = upload(
        &w,
        w.coop,
        &[("quiet.example", "silence"), ("bad.example", "suspend")],
    )
    .await;
    let l = create_list(
        &w.db,
        w.coop,
        &actor(&w),
        &new_list(
            "Reviewed",
            true,
            src,
            vec![HoldKind::Suspend, HoldKind::Removal],
        ),
    )
    .await
    .unwrap();
    let r = rebuild_list(&w.db, l.id).await.unwrap();
    assert_eq!((r.published, r.held, r.seq), (1, 1, 1));
    let held = held_changes(&w.db, w.coop, l.id).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].domain.as_str(), held[0].op),
        ("bad.example", ChangeOp::Add)
    );
    assert_eq!(
        held[0].audit.as_ref().unwrap().sources[0].source_id,
        src,
        "the evidence is shown"
    );
    // Held changes are never published.
    let snap = feed(&w.db, Access::Anonymous, l.id, None, 100)
        .await
        .unwrap();
    assert_eq!(snap.snapshot.unwrap().len(), 1);
    assert!(
        list_changes(&w.db, None, l.id, Some(ChangeStatus::Held), None, 10)
            .await
            .unwrap()
            .is_empty(),
        "others do not see held changes"
    );
    // A rebuild does not hold it twice (a policy save forces one).
    let policy = Policy {
        holds: vec![HoldKind::Suspend, HoldKind::Removal],
        ..Policy::default()
    };
    update_list(
        &w.db,
        w.coop,
        &actor(&w),
        l.id,
        &policy,
        &[ListSource::new(src)],
    )
    .await
    .unwrap();
    let r = rebuild_list(&w.db, l.id).await.unwrap();
    assert_eq!((r.published, r.held), (0, 0));
    let c = approve_change(&w.db, w.coop, &actor(&w), held[0].id)
        .await
        .unwrap();
    assert_eq!((c.status, c.seq), (ChangeStatus::Published, Some(2)));
    assert_eq!(list_entries(&w.db, None, l.id).await.unwrap().len(), 2);
    assert!(
        approve_change(&w.db, w.coop, &actor(&w), held[0].id)
            .await
            .is_err(),
        "not held any more"
    );
    // A removal is held; rejected, it is not proposed again.
    upload_source(
        &w.db,
        w.coop,
        &actor(&w),
        src,
        mastodon_csv(&[("bad.example", "suspend")]).as_bytes(),
    )
    .await
    .unwrap();
    let r = rebuild_list(&w.db, l.id).await.unwrap();
    assert_eq!((r.published, r.held), (0, 1));
    let rm = held_changes(&w.db, w.coop, l.id).await.unwrap().remove(0);
    assert_eq!(
        (rm.domain.as_str(), rm.op),
        ("quiet.example", ChangeOp::Remove)
    );
    reject_change(&w.db, w.coop, &actor(&w), rm.id, "still harmful")
        .await
        .unwrap();
    // The next rebuild publishes an unrelated new domain but does not propose the rejected
    // removal again.
    let rows = [("bad.example", "suspend"), ("new.example", "silence")];
    upload_source(
        &w.db,
        w.coop,
        &actor(&w),
        src,
        mastodon_csv(&rows).as_bytes(),
    )
    .await
    .unwrap();
    let r = rebuild_list(&w.db, l.id).await.unwrap();
    assert_eq!((r.published, r.held, r.seq), (1, 0, 3));
    assert!(held_changes(&w.db, w.coop, l.id).await.unwrap().is_empty());
    assert_eq!(list_entries(&w.db, None, l.id).await.unwrap().len(), 3);
    // A downgrade is not held by this policy: published at once.
    let rows = [("bad.example", "silence"), ("new.example", "silence")];
    upload_source(
        &w.db,
        w.coop,
        &actor(&w),
        src,
        mastodon_csv(&rows).as_bytes(),
    )
    .await
    .unwrap();
    let r = rebuild_list(&w.db, l.id).await.unwrap();
    assert_eq!((r.published, r.seq), (1, 4));
    let audit = w.db.audit_entries(Some(w.coop), None, 100).await.unwrap();
    for action in [
        "lists.change.approve",
        "lists.change.reject",
        "lists.list.create",
    ] {
        assert!(audit.iter().any(|a| a.action == action), "{action}");
    }
});

db_test!(tenants_see_and_change_only_their_own, |db| async move {
    let w = world(db).await;
    let other = other_coop(&w, "Other Co-op").await;
    let src = upload(&w, w.coop, &[("x.example", "suspend")]).await;
    let private = create_list(
        &w.db,
        w.coop,
        &actor(&w),
        &new_list("Private", false, src, vec![]),
    )
    .await
    .unwrap();
    let public = create_list(
        &w.db,
        w.coop,
        &actor(&w),
        &new_list("Public", true, src, vec![HoldKind::Any]),
    )
    .await
    .unwrap();
    rebuild_list(&w.db, private.id).await.unwrap();
    rebuild_list(&w.db, public.id).await.unwrap();
    let nf = |r: Result<_, ListsError>| matches!(r, Err(ListsError::NotFound(_)));
    // Sources.
    assert!(nf(source(&w.db, other, src).await.map(|_| ())));
    assert!(sources(&w.db, other).await.unwrap().is_empty());
    assert!(nf(upload_source(
        &w.db,
        other,
        &actor(&w),
        src,
        b"y.example"
    )
    .await
    .map(|_| ())));
    assert!(nf(delete_source(&w.db, other, &actor(&w), src).await));
    assert!(nf(create_list(
        &w.db,
        other,
        &actor(&w),
        &new_list("Stolen", true, src, vec![])
    )
    .await
    .map(|_| ())));
    // A private list is invisible; its outputs need the owner or the token.
    assert!(nf(list(&w.db, Some(other), private.id).await.map(|_| ())));
    assert!(nf(output(
        &w.db,
        Access::Org(other),
        private.id,
        OutputFormat::Json
    )
    .await
    .map(|_| ())));
    assert!(nf(output(
        &w.db,
        Access::Anonymous,
        private.id,
        OutputFormat::Json
    )
    .await
    .map(|_| ())));
    assert!(nf(feed(
        &w.db,
        Access::Token("ghl_wrong"),
        private.id,
        None,
        10
    )
    .await
    .map(|_| ())));
    let token = new_feed_token(&w.db, w.coop, &actor(&w), private.id)
        .await
        .unwrap();
    assert!(nf(new_feed_token(&w.db, other, &actor(&w), private.id)
        .await
        .map(|_| ())));
    let out = output(
        &w.db,
        Access::Token(&token),
        private.id,
        OutputFormat::MastodonCsv,
    )
    .await
    .unwrap();
    assert!(String::from_utf8(out.body)
        .unwrap()
        .contains("x.example,suspend"));
    assert!(
        output(&w.db, Access::Org(w.coop), private.id, OutputFormat::Json)
            .await
            .is_ok()
    );
    // A public list is readable by all, changeable by its owner only.
    assert!(list(&w.db, Some(other), public.id).await.is_ok());
    assert!(
        output(&w.db, Access::Anonymous, public.id, OutputFormat::Json)
            .await
            .is_ok()
    );
    assert!(nf(update_list(
        &w.db,
        other,
        &actor(&w),
        public.id,
        &Policy::default(),
        &[]
    )
    .await
    .map(|_| ())));
    assert!(nf(held_changes(&w.db, other, public.id).await.map(|_| ())));
    let held = held_changes(&w.db, w.coop, public.id).await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(nf(approve_change(&w.db, other, &actor(&w), held[0].id)
        .await
        .map(|_| ())));
    // Only instance organisations subscribe.
    assert!(matches!(
        subscribe(
            &w.db,
            other,
            &actor(&w),
            public.id,
            Mode::Automatic,
            10,
            None
        )
        .await,
        Err(ListsError::Invalid { .. })
    ));
    // Bad input names the field.
    let e = create_list(
        &w.db,
        w.coop,
        &actor(&w),
        &NewList {
            policy: Policy {
                threshold: -1.0,
                ..Policy::default()
            },
            ..new_list("Bad", true, src, vec![])
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("threshold"), "{e}");
});

db_test!(
    defederation_votes_become_a_change_of_the_list,
    |db| async move {
        let w = world(db).await;
        let src = upload(&w, w.coop, &[("listed.example", "silence")]).await;
        // A high threshold: the decision enters regardless of the consensus.
        let mut nl = new_list("Federation", true, src, vec![]);
        nl.policy.threshold = 5.0;
        let l = create_list(&w.db, w.coop, &actor(&w), &nl).await.unwrap();
        rebuild_list(&w.db, l.id).await.unwrap();
        assert!(list_entries(&w.db, None, l.id).await.unwrap().is_empty());
        let mut insts = Vec::new();
        for d in ["i1.example", "i2.example", "i3.example"] {
            insts.push(
                w.db.create_organisation(
                    &NewOrganisation::instance(
                        d.parse::<Name>().unwrap(),
                        d.parse::<Domain>().unwrap(),
                    ),
                    w.owner,
                )
                .await
                .unwrap()
                .id,
            );
        }
        let deadline = Timestamp(Timestamp::now().0 + 1500);
        let p = propose(
            &w.db,
            w.coop,
            &actor(&w),
            &NewProposal {
                list_id: l.id,
                domain: "Harass.Example".into(),
                severity: Severity::Suspend,
                evidence: "coordinated harassment campaign".into(),
                links: vec!["https://evidence.example/thread".into()],
                deadline,
                quorum: 3,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (p.domain.as_str(), p.status),
            ("harass.example", ProposalStatus::Open)
        );
        let other = other_coop(&w, "Not an instance").await;
        assert!(
            vote(&w.db, other, &actor(&w), p.id, Vote::Yes)
                .await
                .is_err(),
            "only instances vote"
        );
        vote(&w.db, insts[0], &actor(&w), p.id, Vote::No)
            .await
            .unwrap();
        vote(&w.db, insts[0], &actor(&w), p.id, Vote::Yes)
            .await
            .unwrap(); // changed: one vote per instance
        vote(&w.db, insts[1], &actor(&w), p.id, Vote::Yes)
            .await
            .unwrap();
        let p2 = vote(&w.db, insts[2], &actor(&w), p.id, Vote::No)
            .await
            .unwrap();
        assert_eq!((p2.yes, p2.no, p2.abstain), (2, 1, 0));
        // Before the deadline nothing is decided.
        assert_eq!(
            close_proposal(&w.db, p.id).await.unwrap().status,
            ProposalStatus::Open
        );
        // A second proposal that misses its quorum.
        let q = propose(
            &w.db,
            w.coop,
            &actor(&w),
            &NewProposal {
                list_id: l.id,
                domain: "quiet.example".into(),
                severity: Severity::Silence,
                evidence: "spam".into(),
                links: vec![],
                deadline,
                quorum: 3,
            },
        )
        .await
        .unwrap();
        vote(&w.db, insts[0], &actor(&w), q.id, Vote::Yes)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(
            vote(&w.db, insts[1], &actor(&w), p.id, Vote::No)
                .await
                .is_err(),
            "closed"
        );
        let (_, errors) = drain(&w.svc, 20).await;
        assert!(errors.is_empty(), "{errors:?}");
        let p = guildhall_lists::defed::proposal(&w.db, p.id).await.unwrap();
        assert_eq!((p.status, p.yes, p.no), (ProposalStatus::Accepted, 2, 1));
        let q = guildhall_lists::defed::proposal(&w.db, q.id).await.unwrap();
        assert_eq!(q.status, ProposalStatus::NoQuorum);
        let entries = list_entries(&w.db, None, l.id).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].entry.domain.as_str(), entries[0].entry.severity),
            ("harass.example", Severity::Suspend)
        );
        let d = entries[0]
            .audit
            .as_ref()
            .unwrap()
            .decision
            .as_ref()
            .unwrap();
        assert_eq!((d.proposal_id, d.yes, d.no), (p.id, 2, 1));
        assert!(d.evidence.contains("harassment"));
        let audit = w.db.audit_entries(None, None, 200).await.unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "lists.defed.outcome")
                .count(),
            2
        );
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "lists.defed.vote")
                .count(),
            5
        );
    }
);
