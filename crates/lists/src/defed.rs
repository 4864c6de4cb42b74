//! Coordinated defederation: an organisation proposes blocking a domain (severity, evidence
//! text and links) on one of its lists, with a deadline; the admins of member instances vote
//! (yes, no or abstain; one vote per instance organisation, changeable until the deadline); at
//! the deadline (job `lists.defed.close`) the outcome is decided: with at least `quorum` votes
//! cast, the proposal is accepted when the yes votes outnumber the no votes (a simple majority
//! of the votes cast for or against; abstentions count toward the quorum only). An accepted
//! proposal becomes an entry of the list's built-in "decisions" source, which the list always
//! includes (it overrides the consensus threshold), with the evidence in its audit record.

use std::collections::HashMap;

use guildhall_blocklist::{normalize_domain, Severity};
use guildhall_core::{OrgId, OrgKind, Timestamp};
use guildhall_db::audit::append_in;
use guildhall_db::jobs::NewJob;
use guildhall_db::{on_pool, on_tx, Db, DbError, Tx};
use serde::{Deserialize, Serialize};

use crate::lists::{list_row, DecisionRef};
use crate::model::{
    corrupt, from_json, now, severity_serde, to_json, Actor, ChangeOp, Entry, ListsError, Result,
};
use crate::sources::{insert_refresh, insert_source_changes, mark_lists_dirty, Snapshot};

/// The job kind that closes a proposal at its deadline.
pub const CLOSE_JOB: &str = "lists.defed.close";

/// A vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// For blocking.
    Yes,
    /// Against.
    No,
    /// Counted for the quorum only.
    Abstain,
}

impl Vote {
    fn as_str(self) -> &'static str {
        match self {
            Vote::Yes => "yes",
            Vote::No => "no",
            Vote::Abstain => "abstain",
        }
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Voting is open.
    Open,
    /// Accepted: the block is in the list.
    Accepted,
    /// Rejected by the vote.
    Rejected,
    /// Fewer votes than the quorum.
    NoQuorum,
}

impl ProposalStatus {
    fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Open => "open",
            ProposalStatus::Accepted => "accepted",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::NoQuorum => "no_quorum",
        }
    }

    fn parse(s: &str) -> Result<ProposalStatus> {
        Ok(match s {
            "open" => ProposalStatus::Open,
            "accepted" => ProposalStatus::Accepted,
            "rejected" => ProposalStatus::Rejected,
            "no_quorum" => ProposalStatus::NoQuorum,
            other => return Err(corrupt("lists_proposals.status", other)),
        })
    }
}

/// A proposal to make.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProposal {
    /// The list (of the proposing organisation) the outcome goes to.
    pub list_id: i64,
    /// The domain to block.
    pub domain: String,
    /// The severity.
    pub severity: Severity,
    /// The evidence, in words (required).
    pub evidence: String,
    /// Evidence links.
    pub links: Vec<String>,
    /// When voting closes (in the future).
    pub deadline: Timestamp,
    /// The fewest votes cast (yes, no or abstain) for a valid outcome (at least 1).
    pub quorum: u32,
}

/// A proposal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    /// Its id.
    pub id: i64,
    /// The proposing organisation.
    pub org_id: OrgId,
    /// The list the outcome goes to.
    pub list_id: i64,
    /// The domain.
    pub domain: String,
    /// The severity.
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// The evidence.
    pub evidence: String,
    /// Evidence links.
    pub links: Vec<String>,
    /// Voting closes then.
    pub deadline: Timestamp,
    /// Quorum.
    pub quorum: i64,
    /// Where it stands.
    pub status: ProposalStatus,
    /// Yes votes (counted at closing; live while open).
    pub yes: i64,
    /// No votes.
    pub no: i64,
    /// Abstentions.
    pub abstain: i64,
    /// Who proposed it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
}

/// Proposes blocking a domain on a list of `org`; the close job is enqueued for the deadline.
/// Audit: `lists.defed.propose`.
pub async fn propose(db: &Db, org: OrgId, actor: &Actor, new: &NewProposal) -> Result<Proposal> {
    let l = list_row(db, new.list_id).await?;
    if l.org_id != org.0 {
        return Err(ListsError::NotFound("list"));
    }
    let domain = normalize_domain(&new.domain)
        .map_err(|e| ListsError::invalid("domain", e.to_string()))?
        .domain;
    if new.evidence.trim().is_empty() {
        return Err(ListsError::invalid("evidence", "is required"));
    }
    if new.deadline.0 <= now() {
        return Err(ListsError::invalid("deadline", "must be in the future"));
    }
    if new.quorum == 0 {
        return Err(ListsError::invalid("quorum", "must be at least 1"));
    }
    for link in &new.links {
        let ok = reqwest::Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ListsError::invalid(
                "links",
                format!("{link:?} is not an http(s) URL"),
            ));
        }
    }
    let mut tx = db.begin().await?;
    let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "INSERT INTO lists_proposals (org_id, list_id, domain, severity, evidence, links, deadline, \
         quorum, status, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10) RETURNING id")
        .bind(org.0).bind(new.list_id).bind(&domain).bind(new.severity.as_str())
        .bind(new.evidence.trim()).bind(to_json(&new.links)?).bind(new.deadline.0)
        .bind(i64::from(new.quorum)).bind(&actor.name).bind(now())
        .fetch_one(c).await)
    .map_err(DbError::from)?;
    Db::enqueue_in(
        &mut tx,
        &NewJob::new(CLOSE_JOB, serde_json::json!({ "proposal_id": id }))
            .dedup(format!("{CLOSE_JOB}:{id}"))
            .run_at(new.deadline),
    )
    .await?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.defed.propose",
            Some(org),
            serde_json::json!({"proposal_id": id, "list_id": new.list_id, "domain": domain,
                "severity": new.severity.as_str(), "evidence": new.evidence.trim(),
                "links": new.links, "deadline": new.deadline.0, "quorum": new.quorum}),
        ),
    )
    .await?;
    tx.commit().await?;
    proposal(db, id).await
}

type ProposalRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
);

const PROPOSAL_COLUMNS: &str = "id, org_id, list_id, domain, severity, evidence, links, deadline, \
    quorum, status, created_by, created_at, decided_at";

async fn proposal_from_row(db: &Db, r: ProposalRow) -> Result<Proposal> {
    let status = ProposalStatus::parse(&r.9)?;
    let (yes, no, abstain) = if status == ProposalStatus::Open {
        tally(db, r.0).await?
    } else {
        on_pool!(db, p => sqlx::query_as(
            "SELECT yes, no, abstain FROM lists_proposals WHERE id = $1").bind(r.0).fetch_one(p).await)
        .map_err(DbError::from)?
    };
    Ok(Proposal {
        id: r.0,
        org_id: OrgId(r.1),
        list_id: r.2,
        domain: r.3,
        severity: Severity::parse(&r.4).ok_or_else(|| corrupt("lists_proposals.severity", &r.4))?,
        evidence: r.5,
        links: from_json("lists_proposals.links", &r.6)?,
        deadline: Timestamp(r.7),
        quorum: r.8,
        status,
        yes,
        no,
        abstain,
        created_by: r.10,
        created_at: Timestamp(r.11),
        decided_at: r.12.map(Timestamp),
    })
}

async fn tally(db: &Db, id: i64) -> Result<(i64, i64, i64)> {
    Ok(on_pool!(db, p => sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN vote = 'yes' THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN vote = 'no' THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN vote = 'abstain' THEN 1 ELSE 0 END), 0) \
         FROM lists_votes WHERE proposal_id = $1")
        .bind(id).fetch_one(p).await)
    .map_err(DbError::from)?)
}

/// A proposal (proposals are visible to every organisation of the federation).
pub async fn proposal(db: &Db, id: i64) -> Result<Proposal> {
    let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM lists_proposals WHERE id = $1");
    let row: Option<ProposalRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
            .map_err(DbError::from)?;
    proposal_from_row(db, row.ok_or(ListsError::NotFound("proposal"))?).await
}

/// Proposals, newest first: only open ones when `open_only`.
pub async fn proposals(db: &Db, open_only: bool) -> Result<Vec<Proposal>> {
    let sql = format!(
        "SELECT {PROPOSAL_COLUMNS} FROM lists_proposals WHERE ($1 = FALSE OR status = 'open') \
         ORDER BY id DESC"
    );
    let rows: Vec<ProposalRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(open_only).fetch_all(p).await)
            .map_err(DbError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(proposal_from_row(db, r).await?);
    }
    Ok(out)
}

/// Casts (or changes) the vote of the instance organisation `org` on an open proposal before
/// its deadline. Audit: `lists.defed.vote`.
pub async fn vote(db: &Db, org: OrgId, actor: &Actor, id: i64, v: Vote) -> Result<Proposal> {
    let o = db
        .organisation(org)
        .await?
        .ok_or(ListsError::NotFound("organisation"))?;
    if o.kind != OrgKind::Instance {
        return Err(ListsError::invalid(
            "org",
            "only member instances vote on defederation",
        ));
    }
    let p = proposal(db, id).await?;
    if p.status != ProposalStatus::Open || now() >= p.deadline.0 {
        return Err(ListsError::Conflict(
            "voting on this proposal is closed".into(),
        ));
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO lists_votes (proposal_id, org_id, vote, voter, at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (proposal_id, org_id) DO UPDATE SET vote = excluded.vote, \
         voter = excluded.voter, at = excluded.at")
        .bind(id).bind(org.0).bind(v.as_str()).bind(&actor.name).bind(now())
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.defed.vote",
            Some(org),
            serde_json::json!({"proposal_id": id, "vote": v.as_str()}),
        ),
    )
    .await?;
    tx.commit().await?;
    proposal(db, id).await
}

/// Closes a proposal (what the `lists.defed.close` job runs at the deadline; no tenant check).
/// Before the deadline, or when already closed, nothing changes. Audit: `lists.defed.outcome`.
pub async fn close_proposal(db: &Db, id: i64) -> Result<Proposal> {
    let p = proposal(db, id).await?;
    if p.status != ProposalStatus::Open || now() < p.deadline.0 {
        return Ok(p);
    }
    let (yes, no, abstain) = (p.yes, p.no, p.abstain);
    let status = if yes + no + abstain < p.quorum {
        ProposalStatus::NoQuorum
    } else if yes > no {
        ProposalStatus::Accepted
    } else {
        ProposalStatus::Rejected
    };
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE lists_proposals SET status = $1, yes = $2, no = $3, abstain = $4, decided_at = $5 \
         WHERE id = $6 AND status = 'open'")
        .bind(status.as_str()).bind(yes).bind(no).bind(abstain).bind(now()).bind(id)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    if status == ProposalStatus::Accepted {
        add_decision(&mut tx, &p).await?;
    }
    append_in(
        &mut tx,
        &Actor::worker().audit(
            "lists.defed.outcome",
            Some(p.org_id),
            serde_json::json!({"proposal_id": id, "list_id": p.list_id, "domain": p.domain,
                "severity": p.severity.as_str(), "status": status.as_str(), "yes": yes, "no": no,
                "abstain": abstain, "quorum": p.quorum, "evidence": p.evidence, "links": p.links}),
        ),
    )
    .await?;
    tx.commit().await?;
    proposal(db, id).await
}

async fn add_decision(tx: &mut Tx, p: &Proposal) -> Result<()> {
    let existing: Option<(i64, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT s.id, s.snapshot FROM lists_sources s JOIN lists_list_sources ls ON ls.source_id = s.id \
         WHERE ls.list_id = $1 AND s.kind = 'decisions'")
        .bind(p.list_id).fetch_optional(c).await)
    .map_err(DbError::from)?;
    let (source, snap) = match existing {
        Some((id, text)) => (id, Snapshot::parse(&text)?),
        None => {
            let id: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO lists_sources (org_id, name, kind, refresh_secs, health, created_at) \
                 VALUES ($1, $2, 'decisions', 86400, 'ok', $3) RETURNING id")
                .bind(p.org_id.0).bind(format!("decisions of list {}", p.list_id)).bind(now())
                .fetch_one(c).await)
            .map_err(DbError::from)?;
            on_tx!(tx, c => sqlx::query(
                "INSERT INTO lists_list_sources (list_id, source_id, weight, max_severity, allowlist, \
                 position) VALUES ($1, $2, 1.0, 'suspend', FALSE, 1000000)")
                .bind(p.list_id).bind(id).execute(c).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
            (id, Snapshot::default())
        }
    };
    let mut entries = snap.entries.clone();
    let before = entries.iter().find(|e| e.domain == p.domain).cloned();
    entries.retain(|e| e.domain != p.domain);
    let after = Entry {
        domain: p.domain.clone(),
        severity: p.severity,
        reject_media: false,
        reject_reports: false,
        obfuscate: false,
        public_comment: String::new(),
        private_comment: String::new(),
    };
    entries.push(after.clone());
    let op = if before.is_some() {
        ChangeOp::Change
    } else {
        ChangeOp::Add
    };
    let counts = if before.is_some() {
        (0, 1, 0)
    } else {
        (1, 0, 0)
    };
    let rid = insert_refresh(
        tx,
        source,
        crate::sources::RefreshOutcome::Changed,
        counts,
        None,
        None,
    )
    .await?;
    insert_source_changes(
        tx,
        source,
        rid,
        &[(p.domain.clone(), op, before, Some(after))],
    )
    .await?;
    let snap = Snapshot {
        entries,
        obfuscated: Vec::new(),
    };
    on_tx!(tx, c => sqlx::query(
        "UPDATE lists_sources SET snapshot = $1, entry_count = $2, last_change_at = $3, \
         last_success_at = $3 WHERE id = $4")
        .bind(to_json(&snap)?).bind(i64::try_from(snap.entries.len()).unwrap_or(0)).bind(now())
        .bind(source).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    mark_lists_dirty(tx, source).await?;
    Ok(())
}

/// The accepted proposals of a list, latest per domain (the evidence behind decision entries).
pub(crate) async fn decision_refs(db: &Db, list: i64) -> Result<HashMap<String, DecisionRef>> {
    type Row = (i64, String, i64, i64, i64, String, String);
    let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
        "SELECT id, domain, yes, no, abstain, evidence, links FROM lists_proposals \
         WHERE list_id = $1 AND status = 'accepted' ORDER BY id")
        .bind(list).fetch_all(p).await)
    .map_err(DbError::from)?;
    let mut out = HashMap::new();
    for r in rows {
        out.insert(
            r.1,
            DecisionRef {
                proposal_id: r.0,
                yes: r.2,
                no: r.3,
                abstain: r.4,
                evidence: r.5,
                links: from_json("lists_proposals.links", &r.6)?,
            },
        );
    }
    Ok(out)
}
