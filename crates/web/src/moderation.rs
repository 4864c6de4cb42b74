//! The moderation co-op's pages and JSON API (issue 4): the queue, cases, claims, decisions,
//! second review, retrying a failed delivery, instance admins' view of their cases and of the
//! cases escalated to them, and the co-op link (an instance's owners and admins link their
//! instance to a co-op, unlink it and change its settings; a co-op sees the instances it
//! serves).
//!
//! Its routes are [`ROUTES`], part of the one [route table](crate::routes::ROUTES); the guard
//! checks each entry's access before [`handler`]'s handlers run. Every handler then builds a
//! [`guildhall_moderation::Scope`] from the caller's membership, so a co-op's moderators see the
//! cases of the instances linked to their co-op only, and an instance organisation's owners and
//! admins see their own instance's cases and decisions only (anything else is 404).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Extension, Json};
use guildhall_core::{AccountId, OrgId, OrgKind, Permission, Timestamp};
use guildhall_moderation::model::{StepKind, StepState};
use guildhall_moderation::{
    Action, CaseState, CaseSummary, Category, DecisionState, DecisionView, LinkSettings, ModError,
    NewDecision, NoteTemplate, PageRequest, QueueFilter, QueueResult, RuleRef, Scope, ScopeKind,
    SlaState,
};
use serde_json::json;

use crate::auth::{Access, Ctx};
use crate::error::AppError;
use crate::input::{Fields, Input};
use crate::pages::{fmt_time, layout, render, Layout};
use crate::routes::{Field, FieldType, RouteId, RouteSpec};
use crate::AppState;

/// Identifies a handler of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The queue page.
    Queue,
    /// One case's page.
    Case,
    /// The copied bytes of a reported media item.
    Media,
    /// Claim a case (page form).
    Claim,
    /// Release a claim (page form).
    Release,
    /// Decide a case (page form).
    Decide,
    /// Escalate a case (page form).
    Escalate,
    /// The second-review list.
    Review,
    /// Approve a decision awaiting review (page form).
    Approve,
    /// Reject a decision awaiting review (page form).
    Reject,
    /// An instance's cases and decisions (page).
    Instance,
    /// The queue (JSON).
    ApiQueue,
    /// One case (JSON).
    ApiCase,
    /// Claim a case (JSON).
    ApiClaim,
    /// Release a claim (JSON).
    ApiRelease,
    /// Decide a case (JSON).
    ApiDecide,
    /// Escalate a case (JSON).
    ApiEscalate,
    /// The second-review list (JSON).
    ApiReview,
    /// Approve a decision (JSON).
    ApiApprove,
    /// Reject a decision (JSON).
    ApiReject,
    /// Decisions with their outcomes (JSON; an instance admin's view).
    ApiDecisions,
    /// The co-op link of an instance, or the instances a co-op serves (page).
    Links,
    /// Link the instance to a co-op (page form).
    Link,
    /// End the co-op's moderation of the instance (page form).
    Unlink,
    /// Change the link's settings (page form).
    Settings,
    /// The links visible to the organisation (JSON).
    ApiLinks,
    /// Link the instance to a co-op (JSON).
    ApiLink,
    /// End the co-op's moderation of the instance (JSON).
    ApiUnlink,
    /// Change the link's settings (JSON).
    ApiSettings,
    /// Try a failed delivery again (page form).
    Retry,
    /// Try a failed delivery again (JSON).
    ApiRetry,
    /// Cases escalated to the instance's own moderators, with the notes (JSON).
    ApiEscalations,
}

const fn text(name: &'static str, required: bool) -> Field {
    Field {
        name,
        required,
        ty: FieldType::Text,
    }
}

const ACTIONS: &[&str] = &["none", "sensitive", "disable", "silence", "suspend"];
const DECIDE_FIELDS: &[Field] = &[
    Field {
        name: "action",
        required: true,
        ty: FieldType::OneOf(ACTIONS),
    },
    Field {
        name: "rule_ids",
        required: true,
        ty: FieldType::ManyOf(&[]),
    },
    text("template", false),
    text("private_note", false),
    Field {
        name: "notify_user",
        required: false,
        ty: FieldType::OneOf(&["true", "false", "on"]),
    },
];
const NOTE_FIELD: &[Field] = &[text("note", true)];
/// The settings of a link; every field is optional (absent ones keep their value; an empty
/// string clears a list). Templates are the pairs `template_name[i]`, `template_text[i]`.
const SETTINGS_FIELDS: &[Field] = &[
    text("claim_minutes", false),
    text("sync_minutes", false),
    text("sla_spam", false),
    text("sla_legal", false),
    text("sla_violation", false),
    text("sla_other", false),
    Field {
        name: "second_review",
        required: false,
        ty: FieldType::ManyOf(ACTIONS),
    },
    Field {
        name: "template_name",
        required: false,
        ty: FieldType::ManyOf(&[]),
    },
    Field {
        name: "template_text",
        required: false,
        ty: FieldType::ManyOf(&[]),
    },
];
const LINK_FIELDS: &[Field] = &[text("coop", true)];
const API_LINK_FIELDS: &[Field] = &[
    text("coop", true),
    text("claim_minutes", false),
    text("sync_minutes", false),
    text("sla_spam", false),
    text("sla_legal", false),
    text("sla_violation", false),
    text("sla_other", false),
    Field {
        name: "second_review",
        required: false,
        ty: FieldType::ManyOf(ACTIONS),
    },
    Field {
        name: "template_name",
        required: false,
        ty: FieldType::ManyOf(&[]),
    },
    Field {
        name: "template_text",
        required: false,
        ty: FieldType::ManyOf(&[]),
    },
];
const REJECT_FIELDS: &[Field] = &[text("note", false)];

use crate::routes::route;
use Access::Org;
use Permission as P;
use Route as R;

/// This module's routes.
pub(crate) static ROUTES: &[RouteSpec] = &[
    route!([RouteId::Moderation(R::Queue)], GET, "/orgs/{org}/moderation", Page, Org(P::Moderate), "The moderation queue (filters and counts in the query)", &[]),
    route!([RouteId::Moderation(R::Case)], GET, "/orgs/{org}/moderation/cases/{case}", Page, Org(P::Moderate), "A case: reports, statuses, media, history, decisions and their delivery", &[]),
    route!([RouteId::Moderation(R::Media)], GET, "/orgs/{org}/moderation/media/{media}", Page, Org(P::Moderate), "The copied bytes of a reported media item", &[]),
    route!([RouteId::Moderation(R::Claim)], POST, "/orgs/{org}/moderation/cases/{case}/claim", Page, Org(P::Moderate), "Claim a case (or renew the claim)", &[]),
    route!([RouteId::Moderation(R::Release)], POST, "/orgs/{org}/moderation/cases/{case}/release", Page, Org(P::Moderate), "Release a claim", &[]),
    route!([RouteId::Moderation(R::Decide)], POST, "/orgs/{org}/moderation/cases/{case}/decide", Page, Org(P::Moderate), "Decide a claimed case", DECIDE_FIELDS),
    route!([RouteId::Moderation(R::Escalate)], POST, "/orgs/{org}/moderation/cases/{case}/escalate", Page, Org(P::Moderate), "Escalate a claimed case to the instance's own moderators", NOTE_FIELD),
    route!([RouteId::Moderation(R::Review)], GET, "/orgs/{org}/moderation/review", Page, Org(P::Moderate), "Decisions waiting for a second moderator", &[]),
    route!([RouteId::Moderation(R::Approve)], POST, "/orgs/{org}/moderation/decisions/{decision}/approve", Page, Org(P::Moderate), "Approve a decision (not by its decider)", &[]),
    route!([RouteId::Moderation(R::Reject)], POST, "/orgs/{org}/moderation/decisions/{decision}/reject", Page, Org(P::Moderate), "Reject a decision (not by its decider)", REJECT_FIELDS),
    route!([RouteId::Moderation(R::Instance)], GET, "/orgs/{org}/moderation/instance", Page, Org(P::Moderate), "The instance's cases and the decisions taken on them", &[]),
    route!([RouteId::Moderation(R::ApiQueue)], GET, "/api/v1/orgs/{org}/moderation/queue", Api, Org(P::Moderate), "The moderation queue: query instance, category, rule (instance:id), language, older_than_hours, newer_than_hours, sla, state, unclaimed, offset, limit", &[]),
    route!([RouteId::Moderation(R::ApiCase)], GET, "/api/v1/orgs/{org}/moderation/cases/{case}", Api, Org(P::Moderate), "A case with its reports, decisions, escalations and history", &[]),
    route!([RouteId::Moderation(R::ApiClaim)], POST, "/api/v1/orgs/{org}/moderation/cases/{case}/claim", Api, Org(P::Moderate), "Claim a case (or renew the claim)", &[]),
    route!([RouteId::Moderation(R::ApiRelease)], POST, "/api/v1/orgs/{org}/moderation/cases/{case}/release", Api, Org(P::Moderate), "Release a claim", &[]),
    route!([RouteId::Moderation(R::ApiDecide)], POST, "/api/v1/orgs/{org}/moderation/cases/{case}/decide", Api, Org(P::Moderate), "Decide a claimed case (placeholders of the note template as ph_NAME)", DECIDE_FIELDS),
    route!([RouteId::Moderation(R::ApiEscalate)], POST, "/api/v1/orgs/{org}/moderation/cases/{case}/escalate", Api, Org(P::Moderate), "Escalate a claimed case to the instance's own moderators", NOTE_FIELD),
    route!([RouteId::Moderation(R::ApiReview)], GET, "/api/v1/orgs/{org}/moderation/review", Api, Org(P::Moderate), "Decisions waiting for a second moderator", &[]),
    route!([RouteId::Moderation(R::ApiApprove)], POST, "/api/v1/orgs/{org}/moderation/decisions/{decision}/approve", Api, Org(P::Moderate), "Approve a decision (not by its decider)", &[]),
    route!([RouteId::Moderation(R::ApiReject)], POST, "/api/v1/orgs/{org}/moderation/decisions/{decision}/reject", Api, Org(P::Moderate), "Reject a decision (not by its decider)", REJECT_FIELDS),
    route!([RouteId::Moderation(R::ApiDecisions)], GET, "/api/v1/orgs/{org}/moderation/decisions", Api, Org(P::Moderate), "Decisions on the visible cases with their delivery (query state, limit)", &[]),
    route!([RouteId::Moderation(R::Links)], GET, "/orgs/{org}/moderation/links", Page, Org(P::Moderate), "The instance's co-op link and its settings, or the instances a co-op moderates", &[]),
    route!([RouteId::Moderation(R::Link)], POST, "/orgs/{org}/moderation/link", Page, Org(P::EditOrganisation), "Link the organisation's instance to a co-op (its id or exact name)", LINK_FIELDS),
    route!([RouteId::Moderation(R::Unlink)], POST, "/orgs/{org}/moderation/unlink", Page, Org(P::EditOrganisation), "End the co-op's moderation of the organisation's instance", &[]),
    route!([RouteId::Moderation(R::Settings)], POST, "/orgs/{org}/moderation/settings", Page, Org(P::EditOrganisation), "Change the instance's moderation settings (second review, claim expiry, SLA, note templates)", SETTINGS_FIELDS),
    route!([RouteId::Moderation(R::ApiLinks)], GET, "/api/v1/orgs/{org}/moderation/links", Api, Org(P::Moderate), "The instance's co-op link, or the instances a co-op moderates, with their settings", &[]),
    route!([RouteId::Moderation(R::ApiLink)], PUT, "/api/v1/orgs/{org}/moderation/link", Api, Org(P::EditOrganisation), "Link the organisation's instance to a co-op (its id or exact name), optionally with settings", API_LINK_FIELDS),
    route!([RouteId::Moderation(R::ApiUnlink)], DELETE, "/api/v1/orgs/{org}/moderation/link", Api, Org(P::EditOrganisation), "End the co-op's moderation of the organisation's instance", &[]),
    route!([RouteId::Moderation(R::Retry)], POST, "/orgs/{org}/moderation/decisions/{decision}/retry", Page, Org(P::Moderate), "Try a failed delivery again (the co-op's moderators or the instance's owners and admins)", &[]),
    route!([RouteId::Moderation(R::ApiRetry)], POST, "/api/v1/orgs/{org}/moderation/decisions/{decision}/retry", Api, Org(P::Moderate), "Try a failed delivery again (the co-op's moderators or the instance's owners and admins)", &[]),
    route!([RouteId::Moderation(R::ApiEscalations)], GET, "/api/v1/orgs/{org}/moderation/escalations", Api, Org(P::Moderate), "Escalated cases with their escalation notes (an instance's own moderators and admins; a co-op sees those it escalated)", &[]),
    route!([RouteId::Moderation(R::ApiSettings)], PUT, "/api/v1/orgs/{org}/moderation/link/settings", Api, Org(P::EditOrganisation), "Change the instance's moderation settings (absent fields keep their value; \"\" clears second_review or the templates)", SETTINGS_FIELDS),
];

/// The handler of one of this module's routes, answering `filter`.
pub(crate) fn handler(id: Route, filter: MethodFilter) -> MethodRouter<AppState> {
    match id {
        R::Queue => on(filter, queue_page),
        R::Case => on(filter, case_page),
        R::Media => on(filter, media),
        R::Claim => on(filter, claim_page),
        R::Release => on(filter, release_page),
        R::Decide => on(filter, decide_page),
        R::Escalate => on(filter, escalate_page),
        R::Review => on(filter, review_page),
        R::Approve => on(filter, approve_page),
        R::Reject => on(filter, reject_page),
        R::Instance => on(filter, instance_page),
        R::ApiQueue => on(filter, api_queue),
        R::ApiCase => on(filter, api_case),
        R::ApiClaim => on(filter, api_claim),
        R::ApiRelease => on(filter, api_release),
        R::ApiDecide => on(filter, api_decide),
        R::ApiEscalate => on(filter, api_escalate),
        R::ApiReview => on(filter, api_review),
        R::ApiApprove => on(filter, api_approve),
        R::ApiReject => on(filter, api_reject),
        R::ApiDecisions => on(filter, api_decisions),
        R::Links => on(filter, links_page),
        R::Link => on(filter, link_page),
        R::Unlink => on(filter, unlink_page),
        R::Settings => on(filter, settings_page),
        R::ApiLinks => on(filter, api_links),
        R::ApiLink => on(filter, api_link),
        R::ApiUnlink => on(filter, api_unlink),
        R::ApiSettings => on(filter, api_settings),
        R::Retry => on(filter, retry_page),
        R::ApiRetry => on(filter, api_retry),
        R::ApiEscalations => on(filter, api_escalations),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared

/// The application error of a moderation error (stable codes: `invalid_input` naming the field,
/// `not_found`, `conflict` for claims and states, `forbidden` for the wrong kind of
/// organisation and for a decider reviewing their own decision; linking an instance without a
/// working admin connection is answered by [`not_connected`] instead).
fn mod_err(e: ModError) -> AppError {
    match e {
        ModError::Db(e) => e.into(),
        ModError::Sqlx(e) => AppError::Internal(e.to_string()),
        ModError::Forbidden(_) | ModError::SelfReview => AppError::Forbidden,
        ModError::NotFound(_) => AppError::NotFound,
        ModError::Invalid { field, message } => AppError::invalid(field, message),
        ModError::Template(t) => AppError::invalid("template", t.to_string()),
        e @ (ModError::ClaimedByOther { .. }
        | ModError::NotClaimed
        | ModError::WrongState(_)
        | ModError::NotAwaitingApproval
        | ModError::NotConnected(_)) => AppError::Conflict(e.to_string()),
        ModError::ConnectionNeeded(m) => AppError::Conflict(m),
        ModError::Mastodon(e) => AppError::Conflict(format!("the instance answered: {e}")),
    }
}

async fn scope(st: &AppState, ctx: &Ctx) -> Result<Scope, AppError> {
    let who = ctx.who()?;
    Scope::for_member(&st.db, who.account.id, ctx.org_id()?)
        .await
        .map_err(mod_err)
}

fn hours(f: &Fields, name: &str) -> Result<Option<Duration>, AppError> {
    Ok(f.parse_optional::<u32>(name)?
        .map(|h| Duration::from_secs(u64::from(h) * 3600)))
}

/// The queue's filters and page from a query string (the same names for pages and the API).
fn parse_queue(q: Option<&str>) -> Result<(QueueFilter, PageRequest), AppError> {
    let f = Fields::from_form(q.unwrap_or_default().as_bytes())?;
    let rule = match f.get("rule") {
        None => None,
        Some(r) => {
            let (i, id) = r
                .split_once(':')
                .ok_or_else(|| AppError::invalid("rule", "expected INSTANCE:RULE_ID"))?;
            let instance_id = i
                .trim()
                .parse()
                .map_err(|_| AppError::invalid("rule", "expected INSTANCE:RULE_ID"))?;
            Some(RuleRef {
                instance_id,
                rule_id: id.trim().to_owned(),
            })
        }
    };
    let language = match f.get("language") {
        Some(l) if l.len() > 16 || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            return Err(AppError::invalid("language", "expected a language code"))
        }
        l => l.map(|l| l.to_ascii_lowercase()),
    };
    let filter = QueueFilter {
        state: f.parse_optional::<CaseState>("state")?,
        instance: f.parse_optional::<i64>("instance")?,
        category: f.parse_optional::<Category>("category")?,
        rule,
        language,
        older_than: hours(&f, "older_than_hours")?,
        newer_than: hours(&f, "newer_than_hours")?,
        sla: f.parse_optional::<SlaState>("sla")?,
        unclaimed: matches!(f.get("unclaimed"), Some("true" | "on" | "1")),
    };
    let limit = f.parse_optional::<u32>("limit")?.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit", "must be between 1 and 200"));
    }
    let page = PageRequest {
        offset: f.parse_optional::<u32>("offset")?.unwrap_or(0),
        limit,
        with_counts: true,
    };
    Ok((filter, page))
}

/// A decision from the form or JSON fields, checked against the case's rules and templates by
/// [`guildhall_moderation::decide`]. The note's placeholders are the fields `ph_NAME`.
async fn new_decision(
    st: &AppState,
    scope: &Scope,
    case_id: i64,
    f: &Fields,
) -> Result<NewDecision, AppError> {
    let action: Action = f.parse_required("action")?;
    let rule_ids: Vec<String> = f
        .all("rule_ids")
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if rule_ids.is_empty() {
        return Err(AppError::invalid(
            "rule_ids",
            "cite at least one of the instance's rules",
        ));
    }
    let user_note = match f.get("template") {
        None => None,
        Some(name) => {
            let view = guildhall_moderation::case(&st.db, scope, case_id)
                .await
                .map_err(mod_err)?;
            let t = view.settings.template(name).ok_or_else(|| {
                AppError::invalid("template", format!("the instance has no template {name:?}"))
            })?;
            let mut values = BTreeMap::new();
            for p in t
                .placeholders()
                .map_err(|e| AppError::invalid("template", e.to_string()))?
            {
                if let Some(v) = f.get(&format!("ph_{p}")) {
                    values.insert(p, v.to_owned());
                }
            }
            Some(
                t.fill(&values)
                    .map_err(|e| AppError::invalid("template", format!("note to the user: {e}")))?,
            )
        }
    };
    Ok(NewDecision {
        action,
        rule_ids,
        user_note,
        private_note: f.get("private_note").unwrap_or_default().to_owned(),
        notify_user: matches!(f.get("notify_user"), Some("true" | "on" | "1")),
    })
}

/// Account display names, looked up once each.
struct Names {
    db: guildhall_db::Db,
    known: HashMap<i64, String>,
}

impl Names {
    fn new(st: &AppState) -> Names {
        Names {
            db: st.db.clone(),
            known: HashMap::new(),
        }
    }

    async fn of(&mut self, id: Option<AccountId>) -> Result<String, AppError> {
        let Some(id) = id else {
            return Ok(String::new());
        };
        if let Some(n) = self.known.get(&id.0) {
            return Ok(n.clone());
        }
        let n = self
            .db
            .account(id)
            .await?
            .map(|a| a.display_name)
            .unwrap_or_else(|| format!("account {id}"));
        self.known.insert(id.0, n.clone());
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

fn fmt_opt_time(t: Option<Timestamp>) -> String {
    t.map(fmt_time).unwrap_or_default()
}

/// How far from now, in words ("3 h ago", "in 20 min").
fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = t.0 - now.0;
    let m = d.abs() / 60_000;
    let words = if m < 60 {
        format!("{m} min")
    } else if m < 48 * 60 {
        format!("{} h", m / 60)
    } else {
        format!("{} days", m / (24 * 60))
    };
    if d < 0 {
        format!("{words} ago")
    } else {
        format!("in {words}")
    }
}

/// The text of a status's HTML (as the instance sent it): tags dropped, paragraphs and line
/// breaks kept as new lines, the common entities decoded (the template escapes the result).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        if tag.starts_with("br") || tag == "/p" {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

fn state_label(s: CaseState) -> &'static str {
    match s {
        CaseState::Open => "open",
        CaseState::AwaitingApproval => "awaiting second review",
        CaseState::Escalated => "escalated to the instance",
        CaseState::Closed => "closed",
    }
}

fn decision_label(s: DecisionState) -> &'static str {
    match s {
        DecisionState::AwaitingApproval => "waiting for a second moderator",
        DecisionState::Rejected => "rejected in review (nothing sent)",
        DecisionState::Pending => "being delivered to the instance",
        DecisionState::Delivered => "delivered",
        DecisionState::Failed => "delivery failed",
    }
}

fn sla_label(s: SlaState) -> &'static str {
    match s {
        SlaState::Ok => "on time",
        SlaState::DueSoon => "due soon",
        SlaState::Overdue => "overdue",
    }
}

struct CaseRow {
    id: i64,
    instance: String,
    acct: String,
    remote: bool,
    state: &'static str,
    outcome: String,
    category: &'static str,
    language: String,
    opened: String,
    due: String,
    sla: &'static str,
    sla_class: &'static str,
    reports: i64,
    open_reports: i64,
    claimed_by: String,
}

async fn case_row(c: &CaseSummary, names: &mut Names, now: Timestamp) -> Result<CaseRow, AppError> {
    Ok(CaseRow {
        id: c.id,
        instance: guildhall_domain(&c.instance_base_url),
        acct: c.target_acct.clone(),
        remote: c.target_remote,
        state: state_label(c.state),
        outcome: c
            .outcome
            .map(|o| o.as_str().replace('_', " "))
            .unwrap_or_default(),
        category: c.category.as_str(),
        language: c.language.clone().unwrap_or_default(),
        opened: relative(c.opened_at, now),
        due: relative(c.sla_due_at, now),
        sla: sla_label(c.sla_state),
        sla_class: c.sla_state.as_str(),
        reports: c.report_count,
        open_reports: c.open_report_count,
        claimed_by: names.of(c.claimed_by).await?,
    })
}

fn guildhall_domain(base_url: &str) -> String {
    base_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// One option of a filter with its count.
struct Opt {
    value: String,
    label: String,
    count: i64,
    selected: bool,
}

#[derive(Template)]
#[template(path = "moderation/queue.html")]
struct QueuePage {
    l: Layout,
    org_id: i64,
    org_name: String,
    coop: bool,
    cases: Vec<CaseRow>,
    total: i64,
    matching: i64,
    instances: Vec<Opt>,
    categories: Vec<Opt>,
    languages: Vec<Opt>,
    rules: Vec<Opt>,
    slas: Vec<Opt>,
    states: Vec<Opt>,
    older: Vec<Opt>,
    newer: Vec<Opt>,
    unclaimed: bool,
    prev: Option<String>,
    next: Option<String>,
    from: u32,
    to: u32,
}

fn query_string(filter: &QueueFilter, offset: u32, limit: u32) -> String {
    let mut q: Vec<String> = Vec::new();
    if let Some(s) = filter.state {
        q.push(format!("state={s}"));
    }
    if let Some(i) = filter.instance {
        q.push(format!("instance={i}"));
    }
    if let Some(c) = filter.category {
        q.push(format!("category={c}"));
    }
    if let Some(r) = &filter.rule {
        q.push(format!(
            "rule={}",
            crate::pages::url_encode(&format!("{}:{}", r.instance_id, r.rule_id))
        ));
    }
    if let Some(l) = &filter.language {
        q.push(format!("language={}", crate::pages::url_encode(l)));
    }
    if let Some(d) = filter.older_than {
        q.push(format!("older_than_hours={}", d.as_secs() / 3600));
    }
    if let Some(d) = filter.newer_than {
        q.push(format!("newer_than_hours={}", d.as_secs() / 3600));
    }
    if let Some(s) = filter.sla {
        q.push(format!("sla={s}"));
    }
    if filter.unclaimed {
        q.push("unclaimed=true".to_owned());
    }
    q.push(format!("offset={offset}"));
    q.push(format!("limit={limit}"));
    q.join("&")
}

const AGES: &[u32] = &[1, 6, 24, 72, 168];

async fn queue_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let (filter, page) = parse_queue(q.as_deref())?;
    let QueueResult { cases, counts } = guildhall_moderation::queue(&st.db, &s, &filter, page)
        .await
        .map_err(mod_err)?;
    let links = guildhall_moderation::links(&st.db, &s)
        .await
        .map_err(mod_err)?;
    let domain = |id: i64| {
        links
            .iter()
            .find(|l| l.instance_id == id)
            .map(|l| l.domain.clone())
            .unwrap_or_else(|| format!("instance {id}"))
    };
    let now = Timestamp::now();
    let mut names = Names::new(&st);
    let mut rows = Vec::with_capacity(cases.len());
    for c in &cases {
        rows.push(case_row(c, &mut names, now).await?);
    }
    let org = st
        .db
        .organisation(s.org())
        .await?
        .ok_or(AppError::NotFound)?;
    let n = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    let page_view = QueuePage {
        l: layout(&st, &ctx, "Moderation queue").await?,
        org_id: s.org().0,
        org_name: org.name,
        coop: s.works_cases(),
        total: counts.total,
        matching: counts.matching,
        instances: counts
            .by_instance
            .iter()
            .map(|(i, n)| Opt {
                value: i.to_string(),
                label: domain(*i),
                count: *n,
                selected: filter.instance == Some(*i),
            })
            .collect(),
        categories: counts
            .by_category
            .iter()
            .map(|(c, n)| Opt {
                value: c.to_string(),
                label: c.to_string(),
                count: *n,
                selected: filter.category == Some(*c),
            })
            .collect(),
        languages: counts
            .by_language
            .iter()
            .map(|(l, n)| Opt {
                value: l.clone(),
                label: l.clone(),
                count: *n,
                selected: filter.language.as_deref() == Some(l.as_str()),
            })
            .collect(),
        rules: counts
            .by_rule
            .iter()
            .map(|(r, n)| Opt {
                value: format!("{}:{}", r.instance_id, r.rule_id),
                label: format!("{} rule {}", domain(r.instance_id), r.rule_id),
                count: *n,
                selected: filter.rule.as_ref() == Some(r),
            })
            .collect(),
        slas: counts
            .by_sla
            .iter()
            .map(|(x, n)| Opt {
                value: x.to_string(),
                label: sla_label(*x).to_owned(),
                count: *n,
                selected: filter.sla == Some(*x),
            })
            .collect(),
        states: CaseState::ALL
            .iter()
            .map(|x| Opt {
                value: x.to_string(),
                label: state_label(*x).to_owned(),
                count: -1,
                selected: filter.state.unwrap_or(CaseState::Open) == *x,
            })
            .collect(),
        older: AGES
            .iter()
            .map(|h| Opt {
                value: h.to_string(),
                label: format!("{h} h"),
                count: -1,
                selected: filter.older_than == Some(Duration::from_secs(u64::from(*h) * 3600)),
            })
            .collect(),
        newer: AGES
            .iter()
            .map(|h| Opt {
                value: h.to_string(),
                label: format!("{h} h"),
                count: -1,
                selected: filter.newer_than == Some(Duration::from_secs(u64::from(*h) * 3600)),
            })
            .collect(),
        unclaimed: filter.unclaimed,
        prev: (page.offset > 0)
            .then(|| query_string(&filter, page.offset.saturating_sub(page.limit), page.limit)),
        next: (n == page.limit)
            .then(|| query_string(&filter, page.offset + page.limit, page.limit)),
        from: if n == 0 { 0 } else { page.offset + 1 },
        to: page.offset + n,
        cases: rows,
    };
    render(&page_view)
}

struct MediaItem {
    id: i64,
    kind: String,
    description: String,
    copied: bool,
    image: bool,
    note: String,
    url: String,
}

struct StatusItem {
    remote_id: String,
    url: String,
    text: String,
    spoiler: String,
    language: String,
    sensitive: bool,
    created_at: String,
    media: Vec<MediaItem>,
}

struct ReportItem {
    remote_id: String,
    category: &'static str,
    rules: String,
    comment: String,
    reporter: String,
    forwarded_from: String,
    resolved: bool,
    assigned: String,
    created_at: String,
    statuses: Vec<StatusItem>,
}

struct StepItem {
    what: String,
    state: &'static str,
    attempts: i64,
    error: String,
}

struct DecisionItem {
    id: i64,
    case_id: i64,
    action: &'static str,
    rules: String,
    user_note: String,
    private_note: String,
    decided_by: String,
    decided_at: String,
    state: &'static str,
    state_class: &'static str,
    reviewed_by: String,
    review_note: String,
    failure: String,
    delivered_at: String,
    steps: Vec<StepItem>,
    mine: bool,
    can_retry: bool,
}

/// Whether `s` may retry a failed delivery: the co-op's moderators, the instance's owners and
/// admins.
fn may_retry(s: &Scope) -> bool {
    match s.kind() {
        ScopeKind::Coop { .. } => true,
        ScopeKind::Instance { admin, .. } => admin,
    }
}

async fn decision_item(
    d: &DecisionView,
    names: &mut Names,
    s: &Scope,
) -> Result<DecisionItem, AppError> {
    let me = s.account();
    Ok(DecisionItem {
        id: d.id,
        case_id: d.case_id,
        action: d.action.as_str(),
        rules: d.rule_ids.join(", "),
        user_note: d.user_note.clone().unwrap_or_default(),
        private_note: d.private_note.clone(),
        decided_by: names.of(d.decided_by).await?,
        decided_at: fmt_time(d.decided_at),
        state: decision_label(d.state),
        state_class: d.state.as_str(),
        reviewed_by: names.of(d.reviewed_by).await?,
        review_note: d.review_note.clone().unwrap_or_default(),
        failure: d.failure.clone().unwrap_or_default(),
        delivered_at: fmt_opt_time(d.delivered_at),
        steps: d
            .steps
            .iter()
            .map(|s| StepItem {
                what: match s.kind {
                    StepKind::Action => format!("account action (report {})", s.report_remote_id),
                    StepKind::Resolve => format!("resolve report {}", s.report_remote_id),
                },
                state: match s.state {
                    StepState::Pending => "pending",
                    StepState::Delivered => "delivered",
                    StepState::Failed => "failed",
                },
                attempts: s.attempts,
                error: s.last_error.clone().unwrap_or_default(),
            })
            .collect(),
        mine: d.decided_by == Some(me),
        can_retry: d.state == DecisionState::Failed && may_retry(s),
    })
}

struct HistoryItem {
    case: CaseRow,
    decisions: Vec<DecisionItem>,
}

struct RuleItem {
    id: String,
    text: String,
}

struct TemplateItem {
    name: String,
    text: String,
}

struct EscalationItem {
    note: String,
    by: String,
    at: String,
}

#[derive(Template)]
#[template(path = "moderation/case.html")]
struct CasePage {
    l: Layout,
    org_id: i64,
    coop: bool,
    case: CaseRow,
    claimed_by_me: bool,
    claim_until: String,
    open: bool,
    reports: Vec<ReportItem>,
    decisions: Vec<DecisionItem>,
    escalations: Vec<EscalationItem>,
    history: Vec<HistoryItem>,
    actions: Vec<(&'static str, bool)>,
    rules: Vec<RuleItem>,
    templates: Vec<TemplateItem>,
    placeholders: Vec<String>,
}

async fn case_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    let v = guildhall_moderation::case(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    let now = Timestamp::now();
    let mut names = Names::new(&st);
    let org_id = s.org().0;
    let reports = v
        .reports
        .iter()
        .map(|r| ReportItem {
            remote_id: r.remote_id.clone(),
            category: r.category.as_str(),
            rules: r.rule_ids.join(", "),
            comment: r.comment.clone(),
            reporter: r.reporter_acct.clone(),
            forwarded_from: if r.forwarded {
                r.reporter_domain.clone().unwrap_or_default()
            } else {
                String::new()
            },
            resolved: r.resolved,
            assigned: r.assigned_acct.clone().unwrap_or_default(),
            created_at: r.created_at.clone().unwrap_or_default(),
            statuses: r
                .statuses
                .iter()
                .map(|st| StatusItem {
                    remote_id: st.remote_id.clone(),
                    url: st.url.clone().unwrap_or_default(),
                    text: html_to_text(&st.content),
                    spoiler: st.spoiler_text.clone(),
                    language: st.language.clone().unwrap_or_default(),
                    sensitive: st.sensitive,
                    created_at: st.created_at.clone().unwrap_or_default(),
                    media: st
                        .media
                        .iter()
                        .map(|m| {
                            use guildhall_moderation::model::CopyState as C;
                            MediaItem {
                                id: m.id,
                                kind: m.kind.clone(),
                                description: m.description.clone().unwrap_or_default(),
                                copied: m.copy_state == C::Copied,
                                image: matches!(m.kind.as_str(), "image" | "gifv"),
                                note: match m.copy_state {
                                    C::Copied => String::new(),
                                    C::Pending => "not copied yet".to_owned(),
                                    C::TooLarge => "too large to copy".to_owned(),
                                    C::Failed => format!(
                                        "copying failed: {}",
                                        m.copy_error.clone().unwrap_or_default()
                                    ),
                                },
                                url: format!("/orgs/{org_id}/moderation/media/{}", m.id),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let mut decisions = Vec::new();
    for d in &v.decisions {
        decisions.push(decision_item(d, &mut names, &s).await?);
    }
    let mut escalations = Vec::new();
    for e in &v.escalations {
        escalations.push(EscalationItem {
            note: e.note.clone(),
            by: names.of(e.escalated_by).await?,
            at: fmt_time(e.escalated_at),
        });
    }
    let mut history = Vec::new();
    for h in &v.history {
        let mut ds = Vec::new();
        for d in &h.decisions {
            ds.push(decision_item(d, &mut names, &s).await?);
        }
        history.push(HistoryItem {
            case: case_row(&h.case, &mut names, now).await?,
            decisions: ds,
        });
    }
    let mut placeholders: Vec<String> = Vec::new();
    for t in &v.settings.templates {
        for p in t.placeholders().unwrap_or_default() {
            if !placeholders.contains(&p) {
                placeholders.push(p);
            }
        }
    }
    let page = CasePage {
        l: layout(&st, &ctx, &format!("Case {}", v.case.id)).await?,
        org_id,
        coop: s.works_cases(),
        claimed_by_me: v.case.claimed_by == Some(s.account()),
        claim_until: fmt_opt_time(v.case.claim_expires_at),
        open: v.case.state == CaseState::Open,
        case: case_row(&v.case, &mut names, now).await?,
        reports,
        decisions,
        escalations,
        history,
        actions: v
            .allowed_actions
            .iter()
            .map(|a| (a.as_str(), v.second_review.contains(a)))
            .collect(),
        rules: v
            .rules
            .iter()
            .map(|r| RuleItem {
                id: r.id.clone(),
                text: r.text.clone(),
            })
            .collect(),
        templates: v
            .settings
            .templates
            .iter()
            .map(|t| TemplateItem {
                name: t.name.clone(),
                text: t.text.clone(),
            })
            .collect(),
        placeholders,
    };
    render(&page)
}

/// `GET /orgs/{org}/moderation/media/{media}`: the copied bytes, served so that they cannot
/// run as a page of this site (images, video and audio by their type; anything else as a
/// download).
async fn media(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("media")?;
    let (ct, bytes) = guildhall_moderation::media(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    let ct = ct
        .filter(|c| {
            let c = c.to_ascii_lowercase();
            (c.starts_with("image/") && !c.contains("svg"))
                || c.starts_with("video/")
                || c.starts_with("audio/")
        })
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ct).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    if ct == "application/octet-stream" {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    Ok(resp)
}

fn to_case(ctx: &Ctx, case_id: i64) -> Result<Response, AppError> {
    Ok(Redirect::to(&format!(
        "/orgs/{}/moderation/cases/{case_id}",
        ctx.org_id()?.0
    ))
    .into_response())
}

async fn claim_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    guildhall_moderation::claim(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    to_case(&ctx, id)
}

async fn release_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    guildhall_moderation::release(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    to_case(&ctx, id)
}

async fn decide_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    let d = new_decision(&st, &s, id, &f).await?;
    guildhall_moderation::decide(&st.db, &s, id, &d)
        .await
        .map_err(mod_err)?;
    to_case(&ctx, id)
}

async fn escalate_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    let note = f.required("note")?;
    guildhall_moderation::escalate(&st.db, &s, id, note)
        .await
        .map_err(mod_err)?;
    to_case(&ctx, id)
}

struct ReviewItem {
    decision: DecisionItem,
    case: CaseRow,
}

#[derive(Template)]
#[template(path = "moderation/review.html")]
struct ReviewPage {
    l: Layout,
    org_id: i64,
    items: Vec<ReviewItem>,
}

async fn review_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let list = guildhall_moderation::review_list(&st.db, &s)
        .await
        .map_err(mod_err)?;
    let now = Timestamp::now();
    let mut names = Names::new(&st);
    let mut items = Vec::with_capacity(list.len());
    for p in &list {
        items.push(ReviewItem {
            decision: decision_item(&p.decision, &mut names, &s).await?,
            case: case_row(&p.case, &mut names, now).await?,
        });
    }
    render(&ReviewPage {
        l: layout(&st, &ctx, "Second review").await?,
        org_id: s.org().0,
        items,
    })
}

fn to_review(ctx: &Ctx) -> Result<Response, AppError> {
    Ok(Redirect::to(&format!("/orgs/{}/moderation/review", ctx.org_id()?.0)).into_response())
}

async fn approve_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    guildhall_moderation::approve(&st.db, &s, ctx.id("decision")?)
        .await
        .map_err(mod_err)?;
    to_review(&ctx)
}

async fn reject_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let note = f.get("note").unwrap_or_default();
    guildhall_moderation::reject(&st.db, &s, ctx.id("decision")?, note)
        .await
        .map_err(mod_err)?;
    to_review(&ctx)
}

struct StateGroup {
    label: &'static str,
    cases: Vec<CaseRow>,
}

#[derive(Template)]
#[template(path = "moderation/instance.html")]
struct InstancePage {
    l: Layout,
    org_id: i64,
    org_name: String,
    coop: bool,
    linked: Vec<String>,
    groups: Vec<StateGroup>,
    decisions: Vec<DecisionItem>,
    escalated: Vec<EscalatedItem>,
}

struct EscalatedItem {
    case_id: i64,
    acct: String,
    note: String,
    by: String,
    at: String,
}

async fn instance_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let now = Timestamp::now();
    let mut names = Names::new(&st);
    let mut groups = Vec::new();
    for state in CaseState::ALL {
        let q = guildhall_moderation::queue(
            &st.db,
            &s,
            &QueueFilter {
                state: Some(*state),
                ..QueueFilter::default()
            },
            PageRequest {
                offset: 0,
                limit: 100,
                with_counts: false,
            },
        )
        .await
        .map_err(mod_err)?;
        let mut cases = Vec::with_capacity(q.cases.len());
        for c in &q.cases {
            cases.push(case_row(c, &mut names, now).await?);
        }
        groups.push(StateGroup {
            label: state_label(*state),
            cases,
        });
    }
    let ds = guildhall_moderation::decisions(&st.db, &s, None, 200)
        .await
        .map_err(mod_err)?;
    let mut decisions = Vec::with_capacity(ds.len());
    for d in &ds {
        decisions.push(decision_item(d, &mut names, &s).await?);
    }
    let linked = guildhall_moderation::links(&st.db, &s)
        .await
        .map_err(mod_err)?
        .into_iter()
        .map(|l| l.domain)
        .collect();
    let mut escalated = Vec::new();
    for (e, c) in guildhall_moderation::escalations(&st.db, &s)
        .await
        .map_err(mod_err)?
    {
        escalated.push(EscalatedItem {
            case_id: c.id,
            acct: c.target_acct.clone(),
            note: e.note.clone(),
            by: names.of(e.escalated_by).await?,
            at: fmt_time(e.escalated_at),
        });
    }
    let org = st
        .db
        .organisation(s.org())
        .await?
        .ok_or(AppError::NotFound)?;
    render(&InstancePage {
        l: layout(&st, &ctx, "Cases and decisions").await?,
        org_id: s.org().0,
        org_name: org.name,
        coop: s.works_cases(),
        linked,
        groups,
        decisions,
        escalated,
    })
}

// ---------------------------------------------------------------------------------------------
// JSON API

async fn api_queue(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let (filter, page) = parse_queue(q.as_deref())?;
    let r = guildhall_moderation::queue(&st.db, &s, &filter, page)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({
        "cases": r.cases,
        "counts": {
            "total": r.counts.total,
            "matching": r.counts.matching,
            "by_instance": r.counts.by_instance.iter()
                .map(|(i, n)| json!({"instance_id": i, "count": n})).collect::<Vec<_>>(),
            "by_category": r.counts.by_category.iter()
                .map(|(c, n)| json!({"category": c, "count": n})).collect::<Vec<_>>(),
            "by_language": r.counts.by_language.iter()
                .map(|(l, n)| json!({"language": l, "count": n})).collect::<Vec<_>>(),
            "by_sla": r.counts.by_sla.iter()
                .map(|(x, n)| json!({"sla": x, "count": n})).collect::<Vec<_>>(),
            "by_rule": r.counts.by_rule.iter()
                .map(|(x, n)| json!({"instance_id": x.instance_id, "rule_id": x.rule_id, "count": n}))
                .collect::<Vec<_>>(),
        },
        "offset": page.offset,
        "limit": page.limit,
    }))
    .into_response())
}

async fn api_case(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let v = guildhall_moderation::case(&st.db, &s, ctx.id("case")?)
        .await
        .map_err(mod_err)?;
    Ok(Json(v).into_response())
}

async fn api_claim(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let c = guildhall_moderation::claim(&st.db, &s, ctx.id("case")?)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "claim": c })).into_response())
}

async fn api_release(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    guildhall_moderation::release(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "case_id": id, "released": true })).into_response())
}

async fn api_decide(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    let d = new_decision(&st, &s, id, &f).await?;
    let out = guildhall_moderation::decide(&st.db, &s, id, &d)
        .await
        .map_err(mod_err)?;
    Ok((StatusCode::CREATED, Json(json!({ "decision": out }))).into_response())
}

async fn api_escalate(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("case")?;
    let note = f.required("note")?;
    let e = guildhall_moderation::escalate(&st.db, &s, id, note)
        .await
        .map_err(mod_err)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "case_id": id, "escalation_id": e })),
    )
        .into_response())
}

async fn api_review(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let list = guildhall_moderation::review_list(&st.db, &s)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "pending": list })).into_response())
}

async fn api_approve(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("decision")?;
    guildhall_moderation::approve(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "decision_id": id, "state": DecisionState::Pending })).into_response())
}

async fn api_reject(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("decision")?;
    guildhall_moderation::reject(&st.db, &s, id, f.get("note").unwrap_or_default())
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "decision_id": id, "state": DecisionState::Rejected })).into_response())
}

async fn api_decisions(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let f = Fields::from_form(q.unwrap_or_default().as_bytes())?;
    let state = f.parse_optional::<DecisionState>("state")?;
    let limit = f.parse_optional::<u32>("limit")?.unwrap_or(100);
    let ds = guildhall_moderation::decisions(&st.db, &s, state, limit)
        .await
        .map_err(mod_err)?;
    let instance_id = match s.kind() {
        ScopeKind::Instance { instance_id, .. } => instance_id,
        ScopeKind::Coop { .. } => None,
    };
    Ok(Json(json!({
        "organisation": OrgId(s.org().0),
        "instance_id": instance_id,
        "decisions": ds,
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Co-op links: an instance's owners and admins link their instance to a co-op, unlink it and
// change its settings; everyone who works moderation in the organisation sees the links.

/// The most note templates per instance, and the longest name and text.
const MAX_TEMPLATES: usize = 50;
const MAX_TEMPLATE_NAME: usize = 100;
const MAX_TEMPLATE_TEXT: usize = 5000;

/// `settings` with the fields given in `f` applied: numbers replace theirs; `second_review`
/// and the template pairs replace the lists when given (an empty string clears them). Each
/// error names the field it is about.
fn apply_settings(settings: &mut LinkSettings, f: &Fields) -> Result<(), AppError> {
    for (name, slot) in [
        ("claim_minutes", &mut settings.claim_minutes),
        ("sync_minutes", &mut settings.sync_minutes),
    ] {
        if let Some(v) = f.parse_optional::<u32>(name)? {
            if !(1..=24 * 60).contains(&v) {
                return Err(AppError::invalid(name, "must be between 1 and 1440"));
            }
            *slot = v;
        }
    }
    for (name, slot) in [
        ("sla_spam", &mut settings.sla_hours.spam),
        ("sla_legal", &mut settings.sla_hours.legal),
        ("sla_violation", &mut settings.sla_hours.violation),
        ("sla_other", &mut settings.sla_hours.other),
    ] {
        if let Some(v) = f.parse_optional::<u32>(name)? {
            if !(1..=24 * 365).contains(&v) {
                return Err(AppError::invalid(name, "must be between 1 and 8760 hours"));
            }
            *slot = v;
        }
    }
    let review = f.all("second_review");
    if !review.is_empty() {
        let mut actions = Vec::new();
        for v in review.into_iter().map(str::trim).filter(|v| !v.is_empty()) {
            let a: Action = v
                .parse()
                .map_err(|e: String| AppError::invalid("second_review", e))?;
            if !actions.contains(&a) {
                actions.push(a);
            }
        }
        settings.second_review = actions;
    }
    let names = f.all("template_name");
    let texts = f.all("template_text");
    if !names.is_empty() || !texts.is_empty() {
        if names.len() != texts.len() {
            return Err(AppError::invalid(
                "template_text",
                format!(
                    "{} template names but {} texts: give each template a name and a text",
                    names.len(),
                    texts.len()
                ),
            ));
        }
        let mut templates: Vec<NoteTemplate> = Vec::new();
        for (i, (name, text)) in names.iter().zip(&texts).enumerate() {
            let (name, text) = (name.trim(), text.trim());
            if name.is_empty() && text.is_empty() {
                continue;
            }
            let n = i + 1;
            if name.is_empty() {
                return Err(AppError::invalid(
                    "template_name",
                    format!("template {n} has a text but no name"),
                ));
            }
            if name.chars().count() > MAX_TEMPLATE_NAME {
                return Err(AppError::invalid(
                    "template_name",
                    format!("template {n}: at most {MAX_TEMPLATE_NAME} characters"),
                ));
            }
            if templates.iter().any(|t| t.name == name) {
                return Err(AppError::invalid(
                    "template_name",
                    format!("two templates are named {name:?}"),
                ));
            }
            if text.is_empty() {
                return Err(AppError::invalid(
                    "template_text",
                    format!("template {n} ({name:?}) has no text"),
                ));
            }
            if text.chars().count() > MAX_TEMPLATE_TEXT {
                return Err(AppError::invalid(
                    "template_text",
                    format!("template {n} ({name:?}): at most {MAX_TEMPLATE_TEXT} characters"),
                ));
            }
            let t = NoteTemplate::new(name, text);
            t.placeholders().map_err(|e| {
                AppError::invalid("template_text", format!("template {n} ({name:?}): {e}"))
            })?;
            templates.push(t);
        }
        if templates.len() > MAX_TEMPLATES {
            return Err(AppError::invalid(
                "template_name",
                format!("at most {MAX_TEMPLATES} templates"),
            ));
        }
        settings.templates = templates;
    }
    settings
        .validate()
        .map_err(|(field, message)| AppError::invalid(field, message))
}

/// The connected instance of the instance organisation acted in; a co-op (which has none to
/// link) or an organisation without an instance is a conflict saying what to do instead.
async fn own_instance(
    st: &AppState,
    ctx: &Ctx,
) -> Result<guildhall_db::instances::Instance, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    if o.kind == OrgKind::Cooperative {
        return Err(AppError::Conflict(
            "this organisation is a co-op: an instance's owners and admins link their instance \
             to it, and change its settings, from the instance's organisation"
                .to_owned(),
        ));
    }
    match st.db.instance_of_org(org).await? {
        Some(i) => Ok(i),
        None => Err(AppError::Conflict(
            "connect the organisation's instance first (Instance page)".to_owned(),
        )),
    }
}

/// The co-op a `coop` field names: its id (whether that organisation is a cooperative is
/// checked by `link_instance`), or the exact name (case-insensitive) of one cooperative (names
/// of other organisations are not matched, so they are not revealed).
async fn find_coop(st: &AppState, coop: &str) -> Result<OrgId, AppError> {
    let coop = coop.trim();
    if let Ok(id) = coop.parse::<i64>() {
        return match st.db.organisation(OrgId(id)).await? {
            Some(o) => Ok(o.id),
            None => Err(AppError::invalid(
                "coop",
                format!("no organisation has id {id}"),
            )),
        };
    }
    let found: Vec<OrgId> = st
        .db
        .list_organisations()
        .await?
        .into_iter()
        .filter(|o| o.kind == OrgKind::Cooperative && o.name.eq_ignore_ascii_case(coop))
        .map(|o| o.id)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(AppError::invalid(
            "coop",
            format!(
                "no co-op is named {:?} (give the co-op's id or exact name)",
                coop.chars().take(80).collect::<String>()
            ),
        )),
        _ => Err(AppError::invalid(
            "coop",
            "several co-ops have this name: give the co-op's id",
        )),
    }
}

/// Links the instance to the co-op in `f` (keeping its settings when it is linked already,
/// with the settings fields applied). `Ok(Err(message))` when the instance has no working
/// admin connection (the message says what is missing).
async fn do_link(
    st: &AppState,
    ctx: &Ctx,
    f: &Fields,
) -> Result<Result<guildhall_moderation::Link, String>, AppError> {
    let coop = f.required("coop")?;
    let who = ctx.who()?.account.id;
    let inst = own_instance(st, ctx).await?;
    let coop = find_coop(st, coop).await?;
    let owner = Scope::for_member(&st.db, who, ctx.org_id()?)
        .await
        .map_err(mod_err)?;
    let mut settings = guildhall_moderation::links(&st.db, &owner)
        .await
        .map_err(mod_err)?
        .into_iter()
        .next()
        .map(|l| l.settings)
        .unwrap_or_default();
    apply_settings(&mut settings, f)?;
    match guildhall_moderation::link_instance(&st.db, who, coop, inst.id, &settings).await {
        Ok(l) => Ok(Ok(l)),
        Err(ModError::ConnectionNeeded(m)) => Ok(Err(m)),
        Err(e) => Err(mod_err(e)),
    }
}

async fn do_unlink(st: &AppState, ctx: &Ctx) -> Result<i64, AppError> {
    let who = ctx.who()?.account.id;
    let inst = own_instance(st, ctx).await?;
    match guildhall_moderation::unlink_instance(&st.db, who, inst.id).await {
        Ok(()) => Ok(inst.id),
        Err(ModError::NotFound("link")) => Err(AppError::Conflict(
            "the instance is not linked to a co-op".to_owned(),
        )),
        Err(e) => Err(mod_err(e)),
    }
}

async fn do_settings(
    st: &AppState,
    ctx: &Ctx,
    f: &Fields,
) -> Result<guildhall_moderation::Link, AppError> {
    let who = ctx.who()?.account.id;
    let inst = own_instance(st, ctx).await?;
    let owner = Scope::for_member(&st.db, who, ctx.org_id()?)
        .await
        .map_err(mod_err)?;
    let Some(link) = guildhall_moderation::links(&st.db, &owner)
        .await
        .map_err(mod_err)?
        .into_iter()
        .find(|l| l.instance_id == inst.id)
    else {
        return Err(AppError::Conflict(
            "link the instance to a co-op first".to_owned(),
        ));
    };
    let mut settings = link.settings;
    apply_settings(&mut settings, f)?;
    guildhall_moderation::update_settings(&st.db, who, inst.id, &settings)
        .await
        .map_err(mod_err)
}

struct LinkItem {
    instance_id: i64,
    domain: String,
    connected: bool,
    coop_id: i64,
    coop_name: String,
    since: String,
    second_review: String,
    claim_minutes: u32,
    sync_minutes: u32,
    sla: Vec<(&'static str, &'static str, u32)>,
    review_choices: Vec<(&'static str, bool)>,
    templates: Vec<TemplateItem>,
}

#[derive(Template)]
#[template(path = "moderation/links.html")]
struct LinksPage {
    l: Layout,
    org_id: i64,
    org_name: String,
    coop: bool,
    admin: bool,
    has_instance: bool,
    /// Why the instance cannot be linked now (no working admin connection), for its admins.
    link_gap: Option<String>,
    links: Vec<LinkItem>,
}

async fn links_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let links = guildhall_moderation::links(&st.db, &s)
        .await
        .map_err(mod_err)?;
    let mut items = Vec::with_capacity(links.len());
    for l in links {
        let coop_name = st
            .db
            .organisation(l.coop)
            .await?
            .map(|o| o.name)
            .unwrap_or_default();
        let h = l.settings.sla_hours;
        items.push(LinkItem {
            instance_id: l.instance_id,
            domain: l.domain,
            connected: l.connected,
            coop_id: l.coop.0,
            coop_name,
            since: fmt_time(l.created_at),
            second_review: if l.settings.second_review.is_empty() {
                "none".to_owned()
            } else {
                l.settings
                    .second_review
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            claim_minutes: l.settings.claim_minutes,
            sync_minutes: l.settings.sync_minutes,
            sla: vec![
                ("sla_spam", "spam", h.spam),
                ("sla_legal", "legal", h.legal),
                ("sla_violation", "violation", h.violation),
                ("sla_other", "other", h.other),
            ],
            review_choices: Action::ALL
                .iter()
                .map(|a| (a.as_str(), l.settings.second_review.contains(a)))
                .collect(),
            templates: l
                .settings
                .templates
                .iter()
                .map(|t| TemplateItem {
                    name: t.name.clone(),
                    text: t.text.clone(),
                })
                .collect(),
        });
    }
    let (admin, has_instance) = match s.kind() {
        ScopeKind::Instance {
            admin, instance_id, ..
        } => (admin, instance_id.is_some()),
        ScopeKind::Coop { .. } => (false, false),
    };
    let link_gap = if admin && has_instance {
        st.db
            .instance_of_org(s.org())
            .await?
            .and_then(|i| guildhall_moderation::connection_gap(&i))
    } else {
        None
    };
    let org = st
        .db
        .organisation(s.org())
        .await?
        .ok_or(AppError::NotFound)?;
    render(&LinksPage {
        l: layout(&st, &ctx, "Co-op link").await?,
        org_id: s.org().0,
        org_name: org.name,
        coop: s.works_cases(),
        admin,
        has_instance,
        link_gap,
        links: items,
    })
}

fn to_links(ctx: &Ctx) -> Result<Response, AppError> {
    Ok(Redirect::to(&format!("/orgs/{}/moderation/links", ctx.org_id()?.0)).into_response())
}

async fn link_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    match do_link(&st, &ctx, &f).await? {
        Ok(_) => to_links(&ctx),
        Err(m) => Err(AppError::NotConnected(m)),
    }
}

async fn unlink_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    do_unlink(&st, &ctx).await?;
    to_links(&ctx)
}

async fn settings_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    do_settings(&st, &ctx, &f).await?;
    to_links(&ctx)
}

async fn api_links(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let links = guildhall_moderation::links(&st.db, &s)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "organisation": s.org(), "links": links })).into_response())
}

async fn api_link(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    match do_link(&st, &ctx, &f).await? {
        Ok(link) => Ok(Json(json!({ "link": link })).into_response()),
        Err(m) => Err(AppError::NotConnected(m)),
    }
}

async fn api_unlink(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let id = do_unlink(&st, &ctx).await?;
    Ok(Json(json!({ "instance_id": id, "unlinked": true })).into_response())
}

async fn api_settings(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let link = do_settings(&st, &ctx, &f).await?;
    Ok(Json(json!({ "link": link })).into_response())
}

// ---------------------------------------------------------------------------------------------
// Retrying a failed delivery; escalations

async fn retry_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    guildhall_moderation::retry_decision(&st.db, &s, ctx.id("decision")?)
        .await
        .map_err(mod_err)?;
    Ok(Redirect::to(&format!("/orgs/{}/moderation/instance", s.org().0)).into_response())
}

async fn api_retry(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let id = ctx.id("decision")?;
    guildhall_moderation::retry_decision(&st.db, &s, id)
        .await
        .map_err(mod_err)?;
    Ok(Json(json!({ "decision_id": id, "state": DecisionState::Pending })).into_response())
}

async fn api_escalations(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = scope(&st, &ctx).await?;
    let list: Vec<serde_json::Value> = guildhall_moderation::escalations(&st.db, &s)
        .await
        .map_err(mod_err)?
        .into_iter()
        .map(|(e, c)| json!({ "escalation": e, "case": c }))
        .collect();
    Ok(Json(json!({ "escalations": list })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_html_becomes_text() {
        assert_eq!(
            html_to_text("<p>buy <a href=\"x\">now</a> &amp; &lt;b&gt;</p><p>two<br/>three</p>"),
            "buy now & <b>\ntwo\nthree"
        );
        assert_eq!(html_to_text("plain <unclosed"), "plain");
    }

    #[test]
    fn queue_queries_parse_and_name_the_bad_field() {
        let (f, p) = parse_queue(Some(
            "instance=3&category=spam&rule=3%3A1&language=EN&sla=overdue&older_than_hours=24&unclaimed=on&offset=50&limit=25",
        ))
        .unwrap();
        assert_eq!(f.instance, Some(3));
        assert_eq!(f.category, Some(Category::Spam));
        assert_eq!(f.rule.as_ref().map(|r| r.rule_id.as_str()), Some("1"));
        assert_eq!(f.language.as_deref(), Some("en"));
        assert_eq!(f.sla, Some(SlaState::Overdue));
        assert_eq!(f.older_than, Some(Duration::from_secs(24 * 3600)));
        assert!(f.unclaimed);
        assert_eq!((p.offset, p.limit), (50, 25));
        let back = query_string(&f, 75, 25);
        let (f2, p2) = parse_queue(Some(&back)).unwrap();
        assert_eq!(f2, f);
        assert_eq!(p2.offset, 75);
        for (q, field) in [
            ("category=nope", "category"),
            ("rule=1", "rule"),
            ("limit=0", "limit"),
            ("sla=late", "sla"),
            ("language=e%20n", "language"),
        ] {
            match parse_queue(Some(q)) {
                Err(AppError::Invalid { field: got, .. }) => assert_eq!(got, field, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
