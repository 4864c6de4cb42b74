//! The queue: one list of cases across every instance a co-op moderates (or one instance's
//! own cases), filtered, ordered by urgency, with counts per filter value.

use std::time::Duration;

use guildhall_core::{AccountId, Timestamp};
use guildhall_db::{on_pool, Db};
use serde::Serialize;

use crate::error::Result;
use crate::model::{CaseState, Category, Outcome, SlaState, DUE_SOON};
use crate::scope::Scope;
use crate::sql::{bind_params, stored, Params};

/// A rule of one instance (rule ids are per instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// The instance.
    pub instance_id: i64,
    /// The rule id on that instance.
    pub rule_id: String,
}

/// Filters of [`queue`]. Every `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Cases in this state (default: [`CaseState::Open`]).
    pub state: Option<CaseState>,
    /// Cases of one instance.
    pub instance: Option<i64>,
    /// Cases whose most severe open report has this category.
    pub category: Option<Category>,
    /// Cases with a report citing this rule.
    pub rule: Option<RuleRef>,
    /// Cases with a reported status in this language (ISO 639-1, lower case).
    pub language: Option<String>,
    /// Cases whose first report is at least this old.
    pub older_than: Option<Duration>,
    /// Cases whose first report is at most this old.
    pub newer_than: Option<Duration>,
    /// Cases in this SLA state (relative to now).
    pub sla: Option<SlaState>,
    /// Only unclaimed cases (or with an expired claim).
    pub unclaimed: bool,
}

/// Which page of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Cases to skip.
    pub offset: u32,
    /// Cases to return (at most 200).
    pub limit: u32,
    /// Whether to compute [`QueueCounts`] (they scan every case in the scope and state; leave
    /// them out when only paging, e.g. for "load more").
    pub with_counts: bool,
}

impl Default for PageRequest {
    /// The first 50 cases, with counts.
    fn default() -> Self {
        PageRequest {
            offset: 0,
            limit: 50,
            with_counts: true,
        }
    }
}

/// A case as listed in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    /// The case id.
    pub id: i64,
    /// The instance the case belongs to (its decision applies there).
    pub instance_id: i64,
    /// That instance's base URL.
    pub instance_base_url: String,
    /// The reported account's id on the instance.
    pub target_account_id: String,
    /// The reported account, canonical `user@domain`.
    pub target_acct: String,
    /// Whether the reported account is remote to the instance.
    pub target_remote: bool,
    /// The case's state.
    pub state: CaseState,
    /// How a closed case ended.
    pub outcome: Option<Outcome>,
    /// The category of its most severe open report.
    pub category: Category,
    /// That category's severity.
    pub severity: i64,
    /// The most frequent language of its reported statuses.
    pub language: Option<String>,
    /// When its first (open) report was filed.
    pub opened_at: Timestamp,
    /// When its latest report was filed.
    pub last_report_at: Timestamp,
    /// Its SLA deadline.
    pub sla_due_at: Timestamp,
    /// The deadline's state now.
    pub sla_state: SlaState,
    /// Reports in the case.
    pub report_count: i64,
    /// Reports not yet resolved.
    pub open_report_count: i64,
    /// Who holds the claim (if it has not expired).
    pub claimed_by: Option<AccountId>,
    /// Until when.
    pub claim_expires_at: Option<Timestamp>,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
}

/// Counts of the cases in the scope and state, per filter value (other filters not applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// All cases in the scope and state.
    pub total: i64,
    /// Cases matching every filter.
    pub matching: i64,
    /// Per instance.
    pub by_instance: Vec<(i64, i64)>,
    /// Per category.
    pub by_category: Vec<(Category, i64)>,
    /// Per language.
    pub by_language: Vec<(String, i64)>,
    /// Per SLA state.
    pub by_sla: Vec<(SlaState, i64)>,
    /// Per cited rule.
    pub by_rule: Vec<(RuleRef, i64)>,
    /// Whether a count that needs scanning cases (the SLA states; `matching` with several
    /// filters) stopped at [`COUNT_CAP`]: such a count means "at least that many".
    pub capped: bool,
}

/// The most a count that must scan cases goes up to (so that a page stays fast with a million
/// reports stored); the other counts are exact.
pub const COUNT_CAP: i64 = 10_000;

/// `COUNT(*)` of the cases matching `where_sql`, stopping at [`COUNT_CAP`].
async fn capped_count(db: &Db, where_sql: &str, params: &[crate::sql::Param]) -> Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 AS one FROM mod_cases c WHERE {where_sql} LIMIT {COUNT_CAP}) capped"
    );
    Ok(on_pool!(db, q => bind_params!(sqlx::query_scalar(&sql), params).fetch_one(q).await)?)
}

/// A page of the queue and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueResult {
    /// The cases, most urgent first.
    pub cases: Vec<CaseSummary>,
    /// The counts.
    pub counts: QueueCounts,
}

pub(crate) const SUMMARY_COLUMNS: &str =
    "c.id, c.instance_id, '' AS base_url, c.target_account_id, \
     c.target_acct, c.target_remote, c.state, c.outcome, c.category, c.severity, c.language, \
     c.opened_at, c.last_report_at, c.sla_due_at, c.report_count, c.open_report_count, \
     c.claimed_by, c.claim_expires_at, c.closed_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: i64,
    instance_id: i64,
    base_url: String,
    target_account_id: String,
    target_acct: String,
    target_remote: bool,
    state: String,
    outcome: Option<String>,
    category: String,
    severity: i64,
    language: Option<String>,
    opened_at: i64,
    last_report_at: i64,
    sla_due_at: i64,
    report_count: i64,
    open_report_count: i64,
    claimed_by: Option<i64>,
    claim_expires_at: Option<i64>,
    closed_at: Option<i64>,
}

pub(crate) fn summary_from_row(r: SummaryRow, now: Timestamp) -> Result<CaseSummary> {
    let live_claim = r.claim_expires_at.is_some_and(|t| t >= now.0);
    Ok(CaseSummary {
        id: r.id,
        instance_id: r.instance_id,
        instance_base_url: r.base_url,
        target_account_id: r.target_account_id,
        target_acct: r.target_acct,
        target_remote: r.target_remote,
        state: stored("mod_cases.state", &r.state)?,
        outcome: crate::ingest::outcome_of(r.outcome.as_deref())?,
        category: stored("mod_cases.category", &r.category)?,
        severity: r.severity,
        language: r.language,
        opened_at: Timestamp(r.opened_at),
        last_report_at: Timestamp(r.last_report_at),
        sla_due_at: Timestamp(r.sla_due_at),
        sla_state: SlaState::of(Timestamp(r.sla_due_at), now),
        report_count: r.report_count,
        open_report_count: r.open_report_count,
        claimed_by: if live_claim {
            r.claimed_by.map(AccountId)
        } else {
            None
        },
        claim_expires_at: if live_claim {
            r.claim_expires_at.map(Timestamp)
        } else {
            None
        },
        closed_at: r.closed_at.map(Timestamp),
    })
}

/// Cases of one case id list, in the given order (for the review and escalation lists).
pub(crate) async fn summaries(
    db: &Db,
    where_sql: &str,
    params: &Params,
) -> Result<Vec<CaseSummary>> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM mod_cases c WHERE {where_sql}");
    let now = Timestamp::now();
    let rows: Vec<SummaryRow> =
        on_pool!(db, p => bind_params!(sqlx::query_as(&sql), &params.0).fetch_all(p).await)?;
    let mut out = rows
        .into_iter()
        .map(|r| summary_from_row(r, now))
        .collect::<Result<Vec<_>>>()?;
    fill_base_urls(db, &mut out).await?;
    Ok(out)
}

/// Fills the instances' base URLs (one query; kept out of the case queries so that the planner
/// orders the cases by their index alone).
async fn fill_base_urls(db: &Db, cases: &mut [CaseSummary]) -> Result<()> {
    let mut ids: Vec<i64> = cases.iter().map(|c| c.instance_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let mut p = Params::default();
    let list: Vec<String> = ids.iter().map(|i| p.int(*i)).collect();
    let sql = format!(
        "SELECT id, base_url FROM instances WHERE id IN ({})",
        list.join(", ")
    );
    let rows: Vec<(i64, String)> =
        on_pool!(db, q => bind_params!(sqlx::query_as(&sql), &p.0).fetch_all(q).await)?;
    let urls: std::collections::HashMap<i64, String> = rows.into_iter().collect();
    for c in cases {
        if let Some(u) = urls.get(&c.instance_id) {
            c.instance_base_url.clone_from(u);
        }
    }
    Ok(())
}

/// One page of the queue in `scope`: cases in the filter's state (default open) matching every
/// filter, ordered by SLA deadline (earliest first), then severity (highest first), then id;
/// with [`QueueCounts`]. A co-op scope sees the cases of its linked instances only; an
/// instance scope its own instance's.
pub async fn queue(
    db: &Db,
    scope: &Scope,
    filter: &QueueFilter,
    page: PageRequest,
) -> Result<QueueResult> {
    let now = Timestamp::now();
    let state = filter.state.unwrap_or(CaseState::Open);
    // The base: scope and state (the counts' population).
    let mut base = Params::default();
    let scope_cond = scope.case_condition(&mut base);
    let state_p = base.text(state.as_str());
    let base_where = format!("{scope_cond} AND c.state = {state_p}");

    // The filters.
    let mut p = Params(base.0.clone());
    let mut conds = vec![base_where.clone()];
    if let Some(i) = filter.instance {
        conds.push(format!("c.instance_id = {}", p.int(i)));
    }
    if let Some(c) = filter.category {
        conds.push(format!("c.category = {}", p.text(c.as_str())));
    }
    // Tag filters (rule, language): the most selective one (a rule) drives the page query from
    // the tags' queue index (`mod_case_tags_queue`: tag, state, then the queue's order), the
    // other is an EXISTS.
    let mut tag_conds = Vec::new();
    if let Some(r) = &filter.rule {
        tag_conds.push(p.text(format!("rule:{}:{}", r.instance_id, r.rule_id)));
    }
    if let Some(l) = &filter.language {
        tag_conds.push(p.text(format!("lang:{}", l.trim().to_ascii_lowercase())));
    }
    let tag_exists = |tag: &String| {
        format!("EXISTS (SELECT 1 FROM mod_case_tags t WHERE t.case_id = c.id AND t.tag = {tag})")
    };
    if let Some(d) = filter.older_than {
        conds.push(format!("c.opened_at <= {}", p.int(now.minus(d).0)));
    }
    if let Some(d) = filter.newer_than {
        conds.push(format!("c.opened_at >= {}", p.int(now.minus(d).0)));
    }
    let soon = now.plus(DUE_SOON).0;
    match filter.sla {
        Some(SlaState::Overdue) => conds.push(format!("c.sla_due_at < {}", p.int(now.0))),
        Some(SlaState::DueSoon) => {
            let a = p.int(now.0);
            let b = p.int(soon);
            conds.push(format!("c.sla_due_at >= {a} AND c.sla_due_at < {b}"));
        }
        Some(SlaState::Ok) => conds.push(format!("c.sla_due_at >= {}", p.int(soon))),
        None => {}
    }
    // Bound last (before the page), so that the unclaimed count can leave it out.
    let claim_p = filter.unclaimed.then(|| p.int(now.0));
    let unclaimed_cond = claim_p
        .as_ref()
        .map(|n| format!("(c.claimed_by IS NULL OR c.claim_expires_at < {n})"));
    let where_sql = conds
        .iter()
        .cloned()
        .chain(tag_conds.iter().map(tag_exists))
        .chain(unclaimed_cond.clone())
        .collect::<Vec<_>>()
        .join(" AND ");
    let limit = p.int(i64::from(page.limit.clamp(1, 200)));
    let offset = p.int(i64::from(page.offset));
    let sql = match tag_conds.first() {
        // The tags carry the case's state and sort key (kept by triggers: migration 0040), so
        // the order is the same as the cases' own.
        Some(tag) => {
            let driving = conds
                .iter()
                .cloned()
                .chain(tag_conds.iter().skip(1).map(tag_exists))
                .chain(unclaimed_cond.clone())
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "SELECT {SUMMARY_COLUMNS} FROM mod_case_tags q JOIN mod_cases c ON c.id = q.case_id \
                 WHERE q.tag = {tag} AND q.state = {state_p} AND {driving} \
                 ORDER BY q.sla_due_at, q.severity DESC, q.case_id LIMIT {limit} OFFSET {offset}"
            )
        }
        None => format!(
            "SELECT {SUMMARY_COLUMNS} FROM mod_cases c \
             WHERE {where_sql} ORDER BY c.sla_due_at, c.severity DESC, c.id LIMIT {limit} OFFSET {offset}"
        ),
    };
    let rows: Vec<SummaryRow> =
        on_pool!(db, q => bind_params!(sqlx::query_as(&sql), &p.0).fetch_all(q).await)?;
    let mut cases = rows
        .into_iter()
        .map(|r| summary_from_row(r, now))
        .collect::<Result<Vec<_>>>()?;
    fill_base_urls(db, &mut cases).await?;

    // Counts, from the trigger-kept tag counts (no scan of the cases), except the SLA states
    // (time-dependent: two index range counts) and `matching` with several filters.
    let mut counts = QueueCounts::default();
    if !page.with_counts {
        return Ok(QueueResult { cases, counts });
    }
    let mut kp = Params::default();
    let st = kp.text(state.as_str());
    let cond = match scope.kind {
        crate::ScopeKind::Coop { org } => format!(
            "k.instance_id IN (SELECT l.instance_id FROM moderation_links l WHERE l.coop_org_id = {})",
            kp.int(org.0)
        ),
        crate::ScopeKind::Instance { instance_id, .. } => {
            format!("k.instance_id = {}", kp.int(instance_id.unwrap_or(-1)))
        }
    };
    let ksql = format!(
        "SELECT k.instance_id, k.tag, k.n FROM mod_case_counts k WHERE {cond} AND k.state = {st} AND k.n > 0 \
         ORDER BY k.instance_id, k.tag"
    );
    let rows: Vec<(i64, String, i64)> =
        on_pool!(db, q => bind_params!(sqlx::query_as(&ksql), &kp.0).fetch_all(q).await)?;
    let mut by_cat: std::collections::BTreeMap<Category, i64> = Default::default();
    let mut by_lang: std::collections::BTreeMap<String, i64> = Default::default();
    let mut tag_n: std::collections::BTreeMap<(i64, String), i64> = Default::default();
    for (instance_id, tag, n) in rows {
        tag_n.insert((instance_id, tag.clone()), n);
        if tag == "all" {
            counts.total += n;
            counts.by_instance.push((instance_id, n));
        } else if let Some(c) = tag.strip_prefix("cat:") {
            if let Ok(c) = c.parse::<Category>() {
                *by_cat.entry(c).or_default() += n;
            }
        } else if let Some(l) = tag.strip_prefix("lang:") {
            *by_lang.entry(l.to_owned()).or_default() += n;
        } else if let Some(r) = tag.strip_prefix("rule:") {
            if let Some((i, id)) = r.split_once(':') {
                if let Ok(instance_id) = i.parse() {
                    counts.by_rule.push((
                        RuleRef {
                            instance_id,
                            rule_id: id.to_owned(),
                        },
                        n,
                    ));
                }
            }
        }
    }
    counts.by_category = by_cat.into_iter().collect();
    counts.by_language = by_lang.into_iter().collect();
    let mut op = Params(base.0.clone());
    let overdue_where = format!("{base_where} AND c.sla_due_at < {}", op.int(now.0));
    let overdue = capped_count(db, &overdue_where, &op.0).await?;
    let mut sp = Params(base.0.clone());
    let a = sp.int(now.0);
    let b = sp.int(soon);
    let soon_where = format!("{base_where} AND c.sla_due_at >= {a} AND c.sla_due_at < {b}");
    let due_soon = capped_count(db, &soon_where, &sp.0).await?;
    let ok = if overdue < COUNT_CAP && due_soon < COUNT_CAP {
        (counts.total - overdue - due_soon).max(0)
    } else {
        let mut kp2 = Params(base.0.clone());
        let ok_where = format!("{base_where} AND c.sla_due_at >= {}", kp2.int(soon));
        capped_count(db, &ok_where, &kp2.0).await?
    };
    counts.capped |= overdue >= COUNT_CAP || due_soon >= COUNT_CAP || ok >= COUNT_CAP;
    counts.by_sla = vec![
        (SlaState::Ok, ok),
        (SlaState::DueSoon, due_soon),
        (SlaState::Overdue, overdue),
    ];
    // Cases matching every filter: from the counts when at most one tag-like filter is set.
    let tag_filters = [
        filter.instance.is_some(),
        filter.category.is_some(),
        filter.language.is_some(),
        filter.rule.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let other_filters = filter.older_than.is_some()
        || filter.newer_than.is_some()
        || filter.sla.is_some()
        || filter.unclaimed;
    counts.matching = if other_filters || tag_filters > 1 {
        let fp = &p.0[..p.0.len() - 2];
        let n = match &claim_p {
            // Unclaimed = no claim (partial index `mod_cases_unclaimed`) + an expired claim
            // (`mod_cases_claims`): two index range counts instead of a scan with an OR.
            Some(claim_p) => {
                let rest = conds
                    .iter()
                    .cloned()
                    .chain(tag_conds.iter().map(tag_exists))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let none = capped_count(
                    db,
                    &format!("{rest} AND c.claimed_by IS NULL"),
                    &fp[..fp.len() - 1],
                )
                .await?;
                let expired = capped_count(
                    db,
                    &format!(
                        "{rest} AND c.claimed_by IS NOT NULL AND c.claim_expires_at < {claim_p}"
                    ),
                    fp,
                )
                .await?;
                (none + expired).min(COUNT_CAP)
            }
            None => capped_count(db, &where_sql, fp).await?,
        };
        counts.capped |= n >= COUNT_CAP;
        n
    } else if let Some(i) = filter.instance {
        tag_n.get(&(i, "all".to_owned())).copied().unwrap_or(0)
    } else {
        let tag = if let Some(c) = filter.category {
            Some(format!("cat:{}", c.as_str()))
        } else if let Some(l) = &filter.language {
            Some(format!("lang:{}", l.trim().to_ascii_lowercase()))
        } else {
            filter
                .rule
                .as_ref()
                .map(|r| format!("rule:{}:{}", r.instance_id, r.rule_id))
        };
        match tag {
            Some(t) => tag_n
                .iter()
                .filter(|((_, tag), _)| *tag == t)
                .map(|(_, n)| *n)
                .sum(),
            None => counts.total,
        }
    };
    Ok(QueueResult { cases, counts })
}
