//! The shared blocklists' pages and JSON API (issue 6): sources, lists, published feeds,
//! subscriptions, pushes and coordinated defederation.
//!
//! Its routes are [`ROUTES`], part of the one [route table](crate::routes::ROUTES); the guard
//! checks each entry's access before [`handler`]'s handlers run. Everything is done by
//! `guildhall_lists`; the handlers here parse input, call it, and render the result.
//!
//! Who may do what: viewing an organisation's sources and lists, and approving or rejecting
//! held changes, is for its owners, admins and moderators (`Moderate`); managing sources and
//! lists is for owners and admins (`EditOrganisation`); an instance organisation's
//! subscriptions, locks and pushes are for its owners and admins; defederation proposals are
//! visible to every member, proposing and voting is for owners and admins.
//!
//! The published feeds (`/lists/{list}/…`) are public routes: a public list is served to
//! anyone; a token-protected list only with `Authorization: Bearer <token>` or `?token=`,
//! otherwise `404`, as for a list that does not exist. Every feed has an ETag and answers
//! `If-None-Match` with `304`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Extension, Json};
use guildhall_core::{OrgId, OrgKind, Permission, Timestamp};
use guildhall_db::secrets::{Keyring, SecretKey};
use guildhall_lists::defed::{self, NewProposal, Proposal, ProposalStatus, Vote};
use guildhall_lists::feed::{self, Access as FeedAccess, OutputFormat};
use guildhall_lists::lists::{
    self as lists_api, ChangeStatus, DomainAudit, HoldKind, List, ListChange, ListSource, NewList,
    Plan, Policy, ThresholdKind,
};
use guildhall_lists::push::{self, Mode, Push, PushStep};
use guildhall_lists::sources::{self, NewSource, Source, SourceKind, SourceSpec};
use guildhall_lists::{parse_severity, Actor, ChangeOp, Entry, ListsError, Severity};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::auth::{Access, Ctx};
use crate::error::AppError;
use crate::input::{Encoding, Fields, Input};
use crate::pages::{fmt_time, fmt_time_or, layout, Layout};
use crate::routes::{route, Field, FieldType, RouteId, RouteSpec};
use crate::AppState;

/// Identifies a handler of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Route {
    FeedMastodon,
    FeedFbh,
    FeedJson,
    FeedChanges,
    Lists,
    CreateList,
    ListPage,
    ListPolicy,
    ListVisibility,
    ListToken,
    ListDelete,
    ApproveChange,
    RejectChange,
    Sources,
    CreateSource,
    SourcePage,
    SourceUpload,
    SourceRefresh,
    SourceDelete,
    Subscriptions,
    Subscribe,
    Unsubscribe,
    Lock,
    Unlock,
    PushPage,
    ApprovePush,
    RejectPush,
    Defederation,
    Propose,
    CastVote,
    ApiSources,
    ApiCreateSource,
    ApiSource,
    ApiSourceEntries,
    ApiSourceChanges,
    ApiSourceUpload,
    ApiSourceRefresh,
    ApiSourceDelete,
    ApiLists,
    ApiCreateList,
    ApiList,
    ApiUpdateList,
    ApiListVisibility,
    ApiListToken,
    ApiListEntries,
    ApiListChanges,
    ApiListHeld,
    ApiApproveChange,
    ApiRejectChange,
    ApiListDelete,
    ApiSubscriptions,
    ApiSubscribe,
    ApiUnsubscribe,
    ApiLocks,
    ApiLock,
    ApiUnlock,
    ApiManaged,
    ApiPushes,
    ApiPush,
    ApiApprovePush,
    ApiRejectPush,
    ApiProposals,
    ApiPropose,
    ApiVote,
}

const fn req(name: &'static str) -> Field {
    Field {
        name,
        required: true,
        ty: FieldType::Text,
    }
}

const fn opt(name: &'static str) -> Field {
    Field {
        name,
        required: false,
        ty: FieldType::Text,
    }
}

const fn one_of(name: &'static str, required: bool, v: &'static [&'static str]) -> Field {
    Field {
        name,
        required,
        ty: FieldType::OneOf(v),
    }
}

const SOURCE_KINDS: &[&str] = &["url", "upload", "instance", "feed"];
const FORMATS: &[&str] = &[
    "csv",
    "mastodon_csv",
    "json",
    "mastodon_api_public",
    "rapidblock.csv",
    "rapidblock.json",
    "text",
];
const SEVERITIES: &[&str] = &["noop", "silence", "suspend"];
const BOOLS: &[&str] = &["true", "false"];
const HOLDS: &[&str] = &["add", "suspend", "downgrade", "removal", "any"];
const MODES: &[&str] = &["review", "automatic"];
const VOTES: &[&str] = &["yes", "no", "abstain"];

const SOURCE_FIELDS: &[Field] = &[
    req("name"),
    one_of("kind", true, SOURCE_KINDS),
    opt("url"),
    Field {
        name: "format",
        required: false,
        ty: FieldType::OneOf(FORMATS),
    },
    opt("bearer"),
    opt("instance_id"),
    one_of("admin", false, BOOLS),
    opt("refresh_minutes"),
    opt("contents"),
    opt("file"),
];
const LIST_FIELDS: &[Field] = &[
    req("name"),
    opt("description"),
    one_of("public", false, BOOLS),
    one_of("plan", false, &["max", "min"]),
    opt("threshold"),
    one_of("threshold_type", false, &["count", "pct"]),
    one_of("subdomains", false, BOOLS),
    Field {
        name: "holds",
        required: false,
        ty: FieldType::ManyOf(HOLDS),
    },
    // A string or an array of strings (FieldType has no free-form array).
    opt("sources"),
];
const POLICY_FIELDS: &[Field] = &[
    one_of("plan", true, &["max", "min"]),
    opt("threshold"),
    one_of("threshold_type", false, &["count", "pct"]),
    one_of("subdomains", false, BOOLS),
    Field {
        name: "holds",
        required: false,
        ty: FieldType::ManyOf(HOLDS),
    },
    // A string or an array of strings (FieldType has no free-form array).
    opt("sources"),
];
const PUBLIC_FIELD: &[Field] = &[one_of("public", true, BOOLS)];
const CONFIRM_FIELD: &[Field] = &[req("confirm")];
const REASON_FIELD: &[Field] = &[req("reason")];
/// An upload's list: a file (field `file`, `multipart/form-data`) or the pasted `contents`.
const CONTENTS_FIELD: &[Field] = &[opt("file"), opt("contents")];
const SUBSCRIBE_FIELDS: &[Field] = &[
    req("list"),
    one_of("mode", true, MODES),
    opt("auto_limit"),
    opt("token"),
];
const API_SUBSCRIBE_FIELDS: &[Field] =
    &[one_of("mode", true, MODES), opt("auto_limit"), opt("token")];
const LIST_FIELD: &[Field] = &[req("list")];
const DOMAIN_FIELD: &[Field] = &[req("domain")];
const FORCE_FIELD: &[Field] = &[one_of("force_followed", false, BOOLS)];
const PROPOSAL_FIELDS: &[Field] = &[
    req("list"),
    req("domain"),
    one_of("severity", true, SEVERITIES),
    req("evidence"),
    // A string or an array of strings (FieldType has no free-form array).
    opt("links"),
    req("deadline_hours"),
    opt("quorum"),
];
const VOTE_FIELD: &[Field] = &[one_of("vote", true, VOTES)];

use Access::{Org, Public};
use Permission as P;

macro_rules! lr {
    ($id:ident, $m:ident, $path:literal, $surface:ident, $access:expr, $summary:literal, $fields:expr) => {
        route!(
            [RouteId::Lists(Route::$id)],
            $m,
            $path,
            $surface,
            $access,
            $summary,
            $fields
        )
    };
}

/// This module's routes. Deleting routes come last (the authorisation probes run in this
/// order, and later probes need the fixture's list and source).
pub(crate) static ROUTES: &[RouteSpec] = &[
    // Published feeds.
    lr!(
        FeedMastodon,
        GET,
        "/lists/{list}/mastodon.csv",
        Plain,
        Public,
        "A list as Mastodon's domain-block CSV (public, or with the list's token)",
        &[]
    ),
    lr!(
        FeedFbh,
        GET,
        "/lists/{list}/fediblockhole.csv",
        Plain,
        Public,
        "A list as FediBlockHole CSV (public, or with the list's token)",
        &[]
    ),
    lr!(
        FeedJson,
        GET,
        "/lists/{list}/blocklist.json",
        Plain,
        Public,
        "A list as JSON in the shape of Mastodon's admin API (public, or with the list's token)",
        &[]
    ),
    lr!(
        FeedChanges,
        GET,
        "/lists/{list}/changes",
        Plain,
        Public,
        "A list's change feed: a snapshot, or the changes after ?cursor= (retractions included)",
        &[]
    ),
    // Pages.
    lr!(
        Lists,
        GET,
        "/orgs/{org}/lists",
        Page,
        Org(P::Moderate),
        "The organisation's blocklists",
        &[]
    ),
    lr!(
        CreateList,
        POST,
        "/orgs/{org}/lists",
        Page,
        Org(P::EditOrganisation),
        "Create a list",
        LIST_FIELDS
    ),
    lr!(
        ListPage,
        GET,
        "/orgs/{org}/lists/{list}",
        Page,
        Org(P::Moderate),
        "A list: policy, size, recent and held changes",
        &[]
    ),
    lr!(
        ListPolicy,
        POST,
        "/orgs/{org}/lists/{list}/policy",
        Page,
        Org(P::EditOrganisation),
        "Change a list's policy and sources",
        POLICY_FIELDS
    ),
    lr!(
        ListVisibility,
        POST,
        "/orgs/{org}/lists/{list}/visibility",
        Page,
        Org(P::EditOrganisation),
        "Make a list public or token-protected",
        PUBLIC_FIELD
    ),
    lr!(
        ListToken,
        POST,
        "/orgs/{org}/lists/{list}/token",
        Page,
        Org(P::EditOrganisation),
        "Make a new feed token for a list (shown once)",
        &[]
    ),
    lr!(
        ApproveChange,
        POST,
        "/orgs/{org}/lists/{list}/changes/{change}/approve",
        Page,
        Org(P::Moderate),
        "Approve a held change (it is published)",
        &[]
    ),
    lr!(
        RejectChange,
        POST,
        "/orgs/{org}/lists/{list}/changes/{change}/reject",
        Page,
        Org(P::Moderate),
        "Reject a held change",
        REASON_FIELD
    ),
    lr!(
        Sources,
        GET,
        "/orgs/{org}/sources",
        Page,
        Org(P::Moderate),
        "Blocklist sources and their health",
        &[]
    ),
    lr!(
        CreateSource,
        POST,
        "/orgs/{org}/sources",
        Page,
        Org(P::EditOrganisation),
        "Add a source (URL, upload, instance, change feed)",
        SOURCE_FIELDS
    )
    .uploading(),
    lr!(
        SourcePage,
        GET,
        "/orgs/{org}/sources/{source}",
        Page,
        Org(P::Moderate),
        "A source: health, problems, refresh history",
        &[]
    ),
    lr!(
        SourceUpload,
        POST,
        "/orgs/{org}/sources/{source}/upload",
        Page,
        Org(P::EditOrganisation),
        "Give an upload source new contents",
        CONTENTS_FIELD
    )
    .uploading(),
    lr!(
        SourceRefresh,
        POST,
        "/orgs/{org}/sources/{source}/refresh",
        Page,
        Org(P::EditOrganisation),
        "Refresh a source now",
        &[]
    ),
    lr!(
        Subscriptions,
        GET,
        "/orgs/{org}/subscriptions",
        Page,
        Org(P::EditOrganisation),
        "The instance's subscriptions, pending diff, locks and push history",
        &[]
    ),
    lr!(
        Subscribe,
        POST,
        "/orgs/{org}/subscriptions",
        Page,
        Org(P::EditOrganisation),
        "Subscribe the instance to a list (or change the mode)",
        SUBSCRIBE_FIELDS
    ),
    lr!(
        Unsubscribe,
        POST,
        "/orgs/{org}/subscriptions/remove",
        Page,
        Org(P::EditOrganisation),
        "End a subscription",
        LIST_FIELD
    ),
    lr!(
        Lock,
        POST,
        "/orgs/{org}/locks",
        Page,
        Org(P::EditOrganisation),
        "Lock a domain (Guildhall leaves it alone)",
        DOMAIN_FIELD
    ),
    lr!(
        Unlock,
        POST,
        "/orgs/{org}/locks/remove",
        Page,
        Org(P::EditOrganisation),
        "Unlock a domain",
        DOMAIN_FIELD
    ),
    lr!(
        PushPage,
        GET,
        "/orgs/{org}/pushes/{push}",
        Page,
        Org(P::EditOrganisation),
        "A push and its steps",
        &[]
    ),
    lr!(
        ApprovePush,
        POST,
        "/orgs/{org}/pushes/{push}/approve",
        Page,
        Org(P::EditOrganisation),
        "Approve a pending diff (or force steps held for followed domains)",
        FORCE_FIELD
    ),
    lr!(
        RejectPush,
        POST,
        "/orgs/{org}/pushes/{push}/reject",
        Page,
        Org(P::EditOrganisation),
        "Reject a pending diff",
        &[]
    ),
    lr!(
        Defederation,
        GET,
        "/orgs/{org}/defederation",
        Page,
        Org(P::ViewOrganisation),
        "Coordinated defederation proposals and votes",
        &[]
    ),
    lr!(
        Propose,
        POST,
        "/orgs/{org}/defederation",
        Page,
        Org(P::EditOrganisation),
        "Propose blocking a domain across the federation",
        PROPOSAL_FIELDS
    ),
    lr!(
        CastVote,
        POST,
        "/orgs/{org}/defederation/{proposal}/vote",
        Page,
        Org(P::EditOrganisation),
        "Vote on a proposal for the instance",
        VOTE_FIELD
    ),
    // JSON API.
    lr!(
        ApiSources,
        GET,
        "/api/v1/orgs/{org}/sources",
        Api,
        Org(P::Moderate),
        "Blocklist sources and their health",
        &[]
    ),
    lr!(
        ApiCreateSource,
        POST,
        "/api/v1/orgs/{org}/sources",
        Api,
        Org(P::EditOrganisation),
        "Add a source (URL, upload, instance, change feed)",
        SOURCE_FIELDS
    )
    .uploading(),
    lr!(
        ApiSource,
        GET,
        "/api/v1/orgs/{org}/sources/{source}",
        Api,
        Org(P::Moderate),
        "A source with its refresh history",
        &[]
    ),
    lr!(
        ApiSourceEntries,
        GET,
        "/api/v1/orgs/{org}/sources/{source}/entries",
        Api,
        Org(P::Moderate),
        "A source's current entries",
        &[]
    ),
    lr!(
        ApiSourceChanges,
        GET,
        "/api/v1/orgs/{org}/sources/{source}/changes",
        Api,
        Org(P::Moderate),
        "A source's stored changes (?after=, ?refresh=, ?limit=)",
        &[]
    ),
    lr!(
        ApiSourceUpload,
        POST,
        "/api/v1/orgs/{org}/sources/{source}/upload",
        Api,
        Org(P::EditOrganisation),
        "Give an upload source new contents",
        CONTENTS_FIELD
    )
    .uploading(),
    lr!(
        ApiSourceRefresh,
        POST,
        "/api/v1/orgs/{org}/sources/{source}/refresh",
        Api,
        Org(P::EditOrganisation),
        "Refresh a source now (a job)",
        &[]
    ),
    lr!(
        ApiLists,
        GET,
        "/api/v1/orgs/{org}/lists",
        Api,
        Org(P::Moderate),
        "The organisation's lists",
        &[]
    ),
    lr!(
        ApiCreateList,
        POST,
        "/api/v1/orgs/{org}/lists",
        Api,
        Org(P::EditOrganisation),
        "Create a list (sources: \"ID[:weight][:max_severity][:allow]\")",
        LIST_FIELDS
    ),
    lr!(
        ApiList,
        GET,
        "/api/v1/orgs/{org}/lists/{list}",
        Api,
        Org(P::Moderate),
        "A list and its policy",
        &[]
    ),
    lr!(
        ApiUpdateList,
        PUT,
        "/api/v1/orgs/{org}/lists/{list}",
        Api,
        Org(P::EditOrganisation),
        "Change a list's policy and sources",
        POLICY_FIELDS
    ),
    lr!(
        ApiListVisibility,
        PUT,
        "/api/v1/orgs/{org}/lists/{list}/visibility",
        Api,
        Org(P::EditOrganisation),
        "Make a list public or token-protected",
        PUBLIC_FIELD
    ),
    lr!(
        ApiListToken,
        POST,
        "/api/v1/orgs/{org}/lists/{list}/token",
        Api,
        Org(P::EditOrganisation),
        "Make a new feed token (returned once)",
        &[]
    ),
    lr!(
        ApiListEntries,
        GET,
        "/api/v1/orgs/{org}/lists/{list}/entries",
        Api,
        Org(P::Moderate),
        "A list's published entries with their audit records",
        &[]
    ),
    lr!(
        ApiListChanges,
        GET,
        "/api/v1/orgs/{org}/lists/{list}/changes",
        Api,
        Org(P::Moderate),
        "A list's changes, newest first (?status=, ?before=, ?limit=)",
        &[]
    ),
    lr!(
        ApiListHeld,
        GET,
        "/api/v1/orgs/{org}/lists/{list}/held",
        Api,
        Org(P::Moderate),
        "A list's changes held for approval, with their evidence",
        &[]
    ),
    lr!(
        ApiApproveChange,
        POST,
        "/api/v1/orgs/{org}/lists/{list}/changes/{change}/approve",
        Api,
        Org(P::Moderate),
        "Approve a held change (it is published)",
        &[]
    ),
    lr!(
        ApiRejectChange,
        POST,
        "/api/v1/orgs/{org}/lists/{list}/changes/{change}/reject",
        Api,
        Org(P::Moderate),
        "Reject a held change",
        REASON_FIELD
    ),
    lr!(
        ApiSubscriptions,
        GET,
        "/api/v1/orgs/{org}/subscriptions",
        Api,
        Org(P::EditOrganisation),
        "The instance's subscriptions",
        &[]
    ),
    lr!(
        ApiSubscribe,
        PUT,
        "/api/v1/orgs/{org}/subscriptions/{list}",
        Api,
        Org(P::EditOrganisation),
        "Subscribe the instance to a list (or change the mode)",
        API_SUBSCRIBE_FIELDS
    ),
    lr!(
        ApiUnsubscribe,
        DELETE,
        "/api/v1/orgs/{org}/subscriptions/{list}",
        Api,
        Org(P::EditOrganisation),
        "End a subscription",
        &[]
    ),
    lr!(
        ApiLocks,
        GET,
        "/api/v1/orgs/{org}/locks",
        Api,
        Org(P::EditOrganisation),
        "The instance's locked domains",
        &[]
    ),
    lr!(
        ApiLock,
        PUT,
        "/api/v1/orgs/{org}/locks/{domain}",
        Api,
        Org(P::EditOrganisation),
        "Lock a domain (Guildhall leaves it alone)",
        &[]
    ),
    lr!(
        ApiUnlock,
        DELETE,
        "/api/v1/orgs/{org}/locks/{domain}",
        Api,
        Org(P::EditOrganisation),
        "Unlock a domain",
        &[]
    ),
    lr!(
        ApiManaged,
        GET,
        "/api/v1/orgs/{org}/managed",
        Api,
        Org(P::EditOrganisation),
        "The blocks Guildhall manages on the instance",
        &[]
    ),
    lr!(
        ApiPushes,
        GET,
        "/api/v1/orgs/{org}/pushes",
        Api,
        Org(P::EditOrganisation),
        "The pending diff and the push history",
        &[]
    ),
    lr!(
        ApiPush,
        GET,
        "/api/v1/orgs/{org}/pushes/{push}",
        Api,
        Org(P::EditOrganisation),
        "A push and its steps",
        &[]
    ),
    lr!(
        ApiApprovePush,
        POST,
        "/api/v1/orgs/{org}/pushes/{push}/approve",
        Api,
        Org(P::EditOrganisation),
        "Approve a pending diff (or force steps held for followed domains)",
        FORCE_FIELD
    ),
    lr!(
        ApiRejectPush,
        POST,
        "/api/v1/orgs/{org}/pushes/{push}/reject",
        Api,
        Org(P::EditOrganisation),
        "Reject a pending diff",
        &[]
    ),
    lr!(
        ApiProposals,
        GET,
        "/api/v1/orgs/{org}/defederation",
        Api,
        Org(P::ViewOrganisation),
        "Coordinated defederation proposals (?open=true for open ones)",
        &[]
    ),
    lr!(
        ApiPropose,
        POST,
        "/api/v1/orgs/{org}/defederation",
        Api,
        Org(P::EditOrganisation),
        "Propose blocking a domain across the federation",
        PROPOSAL_FIELDS
    ),
    lr!(
        ApiVote,
        POST,
        "/api/v1/orgs/{org}/defederation/{proposal}/vote",
        Api,
        Org(P::EditOrganisation),
        "Vote on a proposal for the instance",
        VOTE_FIELD
    ),
    // Deleting, last.
    lr!(
        SourceDelete,
        POST,
        "/orgs/{org}/sources/{source}/delete",
        Page,
        Org(P::EditOrganisation),
        "Delete a source (confirm with its name)",
        CONFIRM_FIELD
    ),
    lr!(
        ListDelete,
        POST,
        "/orgs/{org}/lists/{list}/delete",
        Page,
        Org(P::EditOrganisation),
        "Delete a list (confirm with its name)",
        CONFIRM_FIELD
    ),
    lr!(
        ApiSourceDelete,
        DELETE,
        "/api/v1/orgs/{org}/sources/{source}",
        Api,
        Org(P::EditOrganisation),
        "Delete a source",
        &[]
    ),
    lr!(
        ApiListDelete,
        DELETE,
        "/api/v1/orgs/{org}/lists/{list}",
        Api,
        Org(P::EditOrganisation),
        "Delete a list",
        &[]
    ),
];

/// The handler of one of this module's routes, answering `filter`.
pub(crate) fn handler(id: Route, filter: MethodFilter) -> MethodRouter<AppState> {
    use Route as R;
    match id {
        R::FeedMastodon => on(filter, feed_mastodon),
        R::FeedFbh => on(filter, feed_fbh),
        R::FeedJson => on(filter, feed_json),
        R::FeedChanges => on(filter, feed_changes),
        R::Lists => on(filter, lists_page),
        R::CreateList => on(filter, create_list_page),
        R::ListPage => on(filter, list_page),
        R::ListPolicy => on(filter, list_policy_page),
        R::ListVisibility => on(filter, list_visibility_page),
        R::ListToken => on(filter, list_token_page),
        R::ListDelete => on(filter, list_delete_page),
        R::ApproveChange => on(filter, approve_change_page),
        R::RejectChange => on(filter, reject_change_page),
        R::Sources => on(filter, sources_page),
        R::CreateSource => on(filter, create_source_page),
        R::SourcePage => on(filter, source_page),
        R::SourceUpload => on(filter, source_upload_page),
        R::SourceRefresh => on(filter, source_refresh_page),
        R::SourceDelete => on(filter, source_delete_page),
        R::Subscriptions => on(filter, subscriptions_page),
        R::Subscribe => on(filter, subscribe_page),
        R::Unsubscribe => on(filter, unsubscribe_page),
        R::Lock => on(filter, lock_page),
        R::Unlock => on(filter, unlock_page),
        R::PushPage => on(filter, push_page),
        R::ApprovePush => on(filter, approve_push_page),
        R::RejectPush => on(filter, reject_push_page),
        R::Defederation => on(filter, defederation_page),
        R::Propose => on(filter, propose_page),
        R::CastVote => on(filter, vote_page),
        R::ApiSources => on(filter, api_sources),
        R::ApiCreateSource => on(filter, api_create_source),
        R::ApiSource => on(filter, api_source),
        R::ApiSourceEntries => on(filter, api_source_entries),
        R::ApiSourceChanges => on(filter, api_source_changes),
        R::ApiSourceUpload => on(filter, api_source_upload),
        R::ApiSourceRefresh => on(filter, api_source_refresh),
        R::ApiSourceDelete => on(filter, api_source_delete),
        R::ApiLists => on(filter, api_lists),
        R::ApiCreateList => on(filter, api_create_list),
        R::ApiList => on(filter, api_list),
        R::ApiUpdateList => on(filter, api_update_list),
        R::ApiListVisibility => on(filter, api_list_visibility),
        R::ApiListToken => on(filter, api_list_token),
        R::ApiListEntries => on(filter, api_list_entries),
        R::ApiListChanges => on(filter, api_list_changes),
        R::ApiListHeld => on(filter, api_list_held),
        R::ApiApproveChange => on(filter, api_approve_change),
        R::ApiRejectChange => on(filter, api_reject_change),
        R::ApiListDelete => on(filter, api_list_delete),
        R::ApiSubscriptions => on(filter, api_subscriptions),
        R::ApiSubscribe => on(filter, api_subscribe),
        R::ApiUnsubscribe => on(filter, api_unsubscribe),
        R::ApiLocks => on(filter, api_locks),
        R::ApiLock => on(filter, api_lock),
        R::ApiUnlock => on(filter, api_unlock),
        R::ApiManaged => on(filter, api_managed),
        R::ApiPushes => on(filter, api_pushes),
        R::ApiPush => on(filter, api_push),
        R::ApiApprovePush => on(filter, api_approve_push),
        R::ApiRejectPush => on(filter, api_reject_push),
        R::ApiProposals => on(filter, api_proposals),
        R::ApiPropose => on(filter, api_propose),
        R::ApiVote => on(filter, api_vote),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and input

impl From<ListsError> for AppError {
    fn from(e: ListsError) -> AppError {
        match e {
            ListsError::Db(e) => AppError::from(e),
            ListsError::NotFound(_) => AppError::NotFound,
            ListsError::Forbidden(_) => AppError::Forbidden,
            ListsError::Invalid { field, message } => AppError::invalid(field, message),
            ListsError::Conflict(m) | ListsError::Fetch(m) | ListsError::Busy(m) => {
                AppError::Conflict(m)
            }
            ListsError::Instance(e) => AppError::Conflict(format!("the instance answered: {e}")),
        }
    }
}

/// Parses a snake_case enum value by its serde name, naming the field when it is not one.
fn parse_enum<T: DeserializeOwned>(field: &str, s: &str, allowed: &[&str]) -> Result<T, AppError> {
    serde_json::from_value(Value::String(s.trim().to_owned()))
        .map_err(|_| AppError::invalid(field, format!("must be one of {}", allowed.join(", "))))
}

/// The serde name of an enum value.
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A boolean field: `true`/`on`/`yes`/`1` or `false`/`off`/`no`/`0`; absent is `default`.
fn bool_field(f: &Fields, name: &str, default: bool) -> Result<bool, AppError> {
    match f.get(name).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(s) => match s.as_str() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(AppError::invalid(name, "must be true or false")),
        },
    }
}

fn num_field<T: std::str::FromStr>(
    f: &Fields,
    name: &str,
    default: T,
    check: impl Fn(&T) -> bool,
    what: &str,
) -> Result<T, AppError> {
    match f.get(name) {
        None => Ok(default),
        Some(s) => match s.trim().parse::<T>() {
            Ok(v) if check(&v) => Ok(v),
            _ => Err(AppError::invalid(name, format!("must be {what}"))),
        },
    }
}

fn query(q: Option<String>) -> Result<Fields, AppError> {
    Fields::from_form(q.unwrap_or_default().as_bytes())
}

fn actor(ctx: &Ctx) -> Result<Actor, AppError> {
    let who = ctx.who()?;
    Ok(Actor::person(who.account.id, who.account.email.to_string()))
}

/// The organisation of the route, which must be an instance organisation (subscriptions,
/// locks, pushes, votes).
async fn instance_org(st: &AppState, ctx: &Ctx) -> Result<OrgId, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    if o.kind != OrgKind::Instance {
        return Err(AppError::Conflict(
            "only an instance organisation subscribes to lists, locks domains and receives pushes"
                .to_owned(),
        ));
    }
    Ok(org)
}

/// The keyring for sealing credentials: the server's; without one, a throwaway key when there
/// is nothing to seal, else 409.
fn keyring_for(st: &AppState, needed: bool) -> Result<Arc<Keyring>, AppError> {
    match (&st.instances.keyring, needed) {
        (Some(k), _) => Ok(k.clone()),
        (None, false) => Ok(Arc::new(Keyring::new(SecretKey::generate(), Vec::new()))),
        (None, true) => Err(AppError::Conflict(
            "this Guildhall has no secret key configured, so it cannot store credentials"
                .to_owned(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations shared by pages and the API

/// The list text of an upload: the file (field `file`) or else the pasted `contents`. Missing
/// both, the error names `file` for a form with a file, else `contents`.
fn upload_text(f: &Fields) -> Result<&str, AppError> {
    if let Some(c) = f.get("file").or_else(|| f.get("contents")) {
        return Ok(c);
    }
    Err(if f.encoding == Encoding::Multipart {
        AppError::invalid(
            "file",
            "is required: choose a list file (or paste the list into contents)",
        )
    } else {
        AppError::invalid(
            "contents",
            "is required (or send the list as a file in field file)",
        )
    })
}

async fn do_create_source(
    st: &AppState,
    ctx: &Ctx,
    f: &Fields,
) -> Result<(Source, Option<sources::Refresh>), AppError> {
    let org = ctx.org_id()?;
    // An uploaded file's name is the default name.
    let name = f
        .get("name")
        .or_else(|| f.file_name("file"))
        .ok_or_else(|| AppError::invalid("name", "is required"))?
        .trim()
        .to_owned();
    let kind: SourceKind = parse_enum("kind", f.required("kind")?, SOURCE_KINDS)?;
    let format = f.get("format").map(|s| s.trim().to_owned());
    if let Some(fm) = &format {
        if !FORMATS.contains(&fm.as_str()) {
            return Err(AppError::invalid(
                "format",
                format!("must be one of {}", FORMATS.join(", ")),
            ));
        }
    }
    let minutes: u64 = num_field(
        f,
        "refresh_minutes",
        60,
        |m| (1..=10_080).contains(m),
        "a whole number of minutes from 1 to 10080",
    )?;
    let secret = |k: &str| f.get(k).map(|s| s.trim().to_owned());
    let spec = match kind {
        SourceKind::Url => SourceSpec::Url {
            url: f.required("url")?.trim().to_owned(),
            format,
            bearer: secret("bearer"),
        },
        SourceKind::Feed => SourceSpec::Feed {
            url: f.required("url")?.trim().to_owned(),
            token: secret("bearer").or_else(|| secret("token")),
        },
        SourceKind::Upload => SourceSpec::Upload { format },
        SourceKind::Instance => {
            let instance_id = match f.get("instance_id") {
                Some(s) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| AppError::invalid("instance_id", "must be an instance id"))?,
                None => {
                    st.db
                        .instance_of_org(org)
                        .await?
                        .ok_or_else(|| {
                            AppError::invalid(
                                "instance_id",
                                "is required (this organisation has no instance)",
                            )
                        })?
                        .id
                }
            };
            SourceSpec::Instance {
                instance_id,
                admin: bool_field(f, "admin", false)?,
            }
        }
        SourceKind::Decisions => {
            return Err(AppError::invalid(
                "kind",
                format!("must be one of {}", SOURCE_KINDS.join(", ")),
            ))
        }
    };
    let needs_key = matches!(
        &spec,
        SourceSpec::Url {
            bearer: Some(_),
            ..
        } | SourceSpec::Feed { token: Some(_), .. }
    );
    let keys = keyring_for(st, needs_key)?;
    let new = NewSource {
        name,
        spec,
        refresh_every: Duration::from_secs(minutes * 60),
    };
    let who = actor(ctx)?;
    let s = sources::create_source(&st.db, &keys, org, &who, &new).await?;
    let mut refresh = None;
    if s.kind == SourceKind::Upload {
        if let Some(c) = f.get("file").or_else(|| f.get("contents")) {
            refresh = Some(sources::upload_source(&st.db, org, &who, s.id, c.as_bytes()).await?);
        }
    }
    let s = sources::source(&st.db, org, s.id).await?;
    Ok((s, refresh))
}

/// Parses `ID[:weight][:max_severity][:allow]`.
fn parse_source_spec(s: &str) -> Result<ListSource, AppError> {
    let mut parts = s.trim().split(':');
    let bad = || {
        AppError::invalid(
            "sources",
            format!("{s:?} is not \"ID[:weight][:max_severity][:allow]\""),
        )
    };
    let id: i64 = parts
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(bad)?;
    let mut ls = ListSource::new(id);
    for p in parts {
        let p = p.trim();
        if p == "allow" {
            ls.allowlist = true;
        } else if let Ok(w) = p.parse::<f64>() {
            ls.weight = w;
        } else if let Some(sev) = Severity::parse(p) {
            ls.max_severity = sev;
        } else {
            return Err(bad());
        }
    }
    Ok(ls)
}

/// A policy and its sources from a body: `sources` as spec strings (API), or the form's
/// per-source rows `use_ID` (`block`/`allow`), `weight_ID`, `max_ID`.
async fn policy_from(
    st: &AppState,
    org: OrgId,
    f: &Fields,
) -> Result<(Policy, Vec<ListSource>), AppError> {
    let plan: Plan = match f.get("plan") {
        Some(p) => parse_enum("plan", p, &["max", "min"])?,
        None => Plan::Max,
    };
    let threshold_type: ThresholdKind = match f.get("threshold_type") {
        Some(p) => parse_enum("threshold_type", p, &["count", "pct"])?,
        None => ThresholdKind::Count,
    };
    let threshold: f64 = num_field(
        f,
        "threshold",
        0.0,
        |t: &f64| t.is_finite() && *t >= 0.0,
        "a number ≥ 0",
    )?;
    let mut holds = Vec::new();
    for h in f.all("holds") {
        if h.trim().is_empty() {
            continue;
        }
        let k: HoldKind = parse_enum("holds", h, HOLDS)?;
        if !holds.contains(&k) {
            holds.push(k);
        }
    }
    let policy = Policy {
        plan,
        threshold,
        threshold_type,
        subdomains: bool_field(f, "subdomains", false)?,
        holds,
    };
    let mut chosen = Vec::new();
    for s in f.all("sources") {
        if !s.trim().is_empty() {
            chosen.push(parse_source_spec(s)?);
        }
    }
    for s in sources::sources(&st.db, org).await? {
        let key = format!("use_{}", s.id);
        let allowlist = match f.get(&key) {
            Some("block") => false,
            Some("allow") => true,
            Some("no") | None => continue,
            Some(_) => return Err(AppError::invalid(&key, "must be no, block or allow")),
        };
        let weight: f64 = num_field(
            f,
            &format!("weight_{}", s.id),
            1.0,
            |w: &f64| w.is_finite() && *w >= 0.0,
            "a number ≥ 0",
        )?;
        let max_severity = match f.get(&format!("max_{}", s.id)) {
            Some(m) => parse_severity("max_severity", m)?,
            None => Severity::Suspend,
        };
        chosen.push(ListSource {
            source_id: s.id,
            weight,
            max_severity,
            allowlist,
        });
    }
    Ok((policy, chosen))
}

async fn do_create_list(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<List, AppError> {
    let org = ctx.org_id()?;
    let name = f.required("name")?.trim().to_owned();
    let (policy, sources) = policy_from(st, org, f).await?;
    let new = NewList {
        name,
        description: f.get("description").unwrap_or_default().trim().to_owned(),
        public: bool_field(f, "public", false)?,
        policy,
        sources,
    };
    Ok(lists_api::create_list(&st.db, org, &actor(ctx)?, &new).await?)
}

async fn do_update_list(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<List, AppError> {
    f.required("plan")?;
    let org = ctx.org_id()?;
    let id = ctx.id("list")?;
    let (policy, sources) = policy_from(st, org, f).await?;
    Ok(lists_api::update_list(&st.db, org, &actor(ctx)?, id, &policy, &sources).await?)
}

/// A change of the route's list, checked to belong to it.
async fn held_change_of(st: &AppState, ctx: &Ctx) -> Result<(OrgId, i64), AppError> {
    let org = ctx.org_id()?;
    let list = ctx.id("list")?;
    let change = ctx.id("change")?;
    let known = lists_api::list_changes(&st.db, Some(org), list, None, Some(change + 1), 1)
        .await?
        .into_iter()
        .any(|c| c.id == change);
    if !known {
        return Err(AppError::NotFound);
    }
    Ok((org, change))
}

async fn do_approve_change(st: &AppState, ctx: &Ctx) -> Result<ListChange, AppError> {
    let (org, change) = held_change_of(st, ctx).await?;
    Ok(lists_api::approve_change(&st.db, org, &actor(ctx)?, change).await?)
}

async fn do_reject_change(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<ListChange, AppError> {
    let reason = f.required("reason")?.trim().to_owned();
    let (org, change) = held_change_of(st, ctx).await?;
    Ok(lists_api::reject_change(&st.db, org, &actor(ctx)?, change, &reason).await?)
}

async fn do_subscribe(
    st: &AppState,
    ctx: &Ctx,
    list: i64,
    f: &Fields,
) -> Result<push::Subscription, AppError> {
    let org = instance_org(st, ctx).await?;
    let mode: Mode = parse_enum("mode", f.required("mode")?, MODES)?;
    let limit: u32 = num_field(
        f,
        "auto_limit",
        20,
        |n| *n <= 100_000,
        "a whole number from 0 to 100000",
    )?;
    let token = f.get("token").map(str::trim);
    Ok(push::subscribe(&st.db, org, &actor(ctx)?, list, mode, limit, token).await?)
}

fn list_id_field(f: &Fields) -> Result<i64, AppError> {
    f.required("list")?
        .trim()
        .parse()
        .map_err(|_| AppError::invalid("list", "must be a list id"))
}

/// A push of the route's instance organisation.
async fn push_of(st: &AppState, ctx: &Ctx) -> Result<(OrgId, Push), AppError> {
    let org = instance_org(st, ctx).await?;
    let p = push::push(&st.db, org, ctx.id("push")?).await?;
    Ok((org, p))
}

async fn do_propose(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<Proposal, AppError> {
    let org = ctx.org_id()?;
    let hours: i64 = num_field(
        f,
        "deadline_hours",
        0,
        |h| (1..=24 * 90).contains(h),
        "a whole number of hours from 1 to 2160",
    )?;
    f.required("deadline_hours")?;
    let quorum: u32 = num_field(f, "quorum", 1, |q| *q >= 1, "a whole number ≥ 1")?;
    let links: Vec<String> = f
        .all("links")
        .iter()
        .flat_map(|l| l.split_whitespace())
        .map(str::to_owned)
        .collect();
    let new = NewProposal {
        list_id: list_id_field(f)?,
        domain: f.required("domain")?.trim().to_owned(),
        severity: parse_severity("severity", f.required("severity")?)?,
        evidence: f.required("evidence")?.to_owned(),
        links,
        deadline: Timestamp(Timestamp::now().0 + hours * 3_600_000),
        quorum,
    };
    Ok(defed::propose(&st.db, org, &actor(ctx)?, &new).await?)
}

async fn do_vote(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<Proposal, AppError> {
    let v: Vote = parse_enum("vote", f.required("vote")?, VOTES)?;
    let org = instance_org(st, ctx).await?;
    Ok(defed::vote(&st.db, org, &actor(ctx)?, ctx.id("proposal")?, v).await?)
}

// ---------------------------------------------------------------------------------------------
// Published feeds

/// The token a reader presents: `Authorization: Bearer …` or `?token=`.
fn presented_token(headers: &HeaderMap, q: &Fields) -> Option<String> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    h.or_else(|| q.get("token").map(|t| t.trim().to_owned()))
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn feed_response(
    headers: &HeaderMap,
    etag: &str,
    content_type: &str,
    private: bool,
    body: Vec<u8>,
) -> Response {
    let cache = if private {
        "private, no-cache"
    } else {
        "public, no-cache"
    };
    let mut resp = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    resp
}

async fn serve_output(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    q: Option<String>,
    format: OutputFormat,
) -> Result<Response, AppError> {
    let id = ctx.id("list")?;
    let q = query(q)?;
    let token = presented_token(headers, &q);
    let access = match &token {
        Some(t) => FeedAccess::Token(t),
        None => FeedAccess::Anonymous,
    };
    let out = feed::output(&st.db, access, id, format).await?;
    Ok(feed_response(
        headers,
        &out.etag,
        out.content_type,
        token.is_some(),
        out.body,
    ))
}

/// `GET /lists/{list}/mastodon.csv`.
async fn feed_mastodon(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    serve_output(&st, &ctx, &headers, q, OutputFormat::MastodonCsv).await
}

/// `GET /lists/{list}/fediblockhole.csv`.
async fn feed_fbh(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    serve_output(&st, &ctx, &headers, q, OutputFormat::FediBlockHoleCsv).await
}

/// `GET /lists/{list}/blocklist.json`.
async fn feed_json(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    serve_output(&st, &ctx, &headers, q, OutputFormat::Json).await
}

/// `GET /lists/{list}/changes[?cursor=N][&limit=M]`: without a cursor, a snapshot and the
/// cursor it corresponds to; with one, the published changes after it (retractions included),
/// ascending, and the next cursor (`more` says whether to ask again at once). `since` is
/// accepted for `cursor`.
async fn feed_changes(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let id = ctx.id("list")?;
    let q = query(q)?;
    let token = presented_token(&headers, &q);
    let access = match &token {
        Some(t) => FeedAccess::Token(t),
        None => FeedAccess::Anonymous,
    };
    let field = if q.get("cursor").is_some() {
        "cursor"
    } else {
        "since"
    };
    let since: Option<i64> = match q.get(field) {
        None => None,
        Some(c) => Some(
            c.trim()
                .parse()
                .map_err(|_| AppError::invalid(field, "must be a cursor (a whole number)"))?,
        ),
    };
    let limit: u32 = num_field(
        &q,
        "limit",
        1000,
        |l| (1..=10_000).contains(l),
        "a whole number from 1 to 10000",
    )?;
    let doc = match feed::feed(&st.db, access, id, since, limit).await {
        Err(ListsError::Invalid { message, .. }) => return Err(AppError::invalid(field, message)),
        r => r?,
    };
    let body = serde_json::to_vec(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(feed_response(
        &headers,
        &doc.etag,
        "application/json",
        token.is_some(),
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// Page helpers

fn html<T: Template>(page: &T) -> Result<Response, AppError> {
    let s = page
        .render()
        .map_err(|e| AppError::Internal(format!("template: {e}")))?;
    Ok(Html(s).into_response())
}

fn can(ctx: &Ctx, p: Permission) -> bool {
    ctx.org.is_some_and(|(_, r)| r.allows(p))
}

fn see_other(to: String) -> Response {
    Redirect::to(&to).into_response()
}

fn entry_text(e: &Option<Entry>) -> String {
    match e {
        None => "—".to_owned(),
        Some(e) => {
            let mut s = e.severity.as_str().to_owned();
            if e.reject_media {
                s.push_str(", reject media");
            }
            if e.reject_reports {
                s.push_str(", reject reports");
            }
            if e.obfuscate {
                s.push_str(", obfuscated");
            }
            if !e.public_comment.is_empty() {
                s.push_str(&format!(" — “{}”", e.public_comment));
            }
            s
        }
    }
}

fn evidence_text(a: &Option<DomainAudit>) -> Vec<String> {
    let Some(a) = a else {
        return Vec::new();
    };
    let mut v = vec![format!(
        "{} source(s), score {:.0}% of the trust weight, merged severity {}",
        a.count,
        a.score * 100.0,
        a.severity.as_str()
    )];
    for s in &a.sources {
        v.push(format!("{} says {}", s.name, s.severity.as_str()));
    }
    if let Some(d) = &a.decision {
        v.push(format!(
            "Defederation vote {}: {} yes, {} no, {} abstain — {}",
            d.proposal_id, d.yes, d.no, d.abstain, d.evidence
        ));
        for l in &d.links {
            v.push(l.clone());
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Pages: lists

struct ListRowView {
    id: i64,
    name: String,
    public: bool,
    size: i64,
    held: i64,
    seq: i64,
    built: String,
}

struct SourceRowView {
    id: i64,
    name: String,
    kind: String,
    location: String,
    health: String,
    entries: i64,
    last_success: String,
    last_attempt: String,
    error: String,
    problems: usize,
}

fn source_row(s: &Source) -> SourceRowView {
    SourceRowView {
        id: s.id,
        name: s.name.clone(),
        kind: s.kind.as_str().to_owned(),
        location: match (s.kind, &s.url, s.instance_id) {
            (_, Some(u), _) => u.clone(),
            (SourceKind::Instance, _, Some(i)) => format!(
                "instance {i} ({})",
                if s.instance_admin { "admin" } else { "public" }
            ),
            _ => String::new(),
        },
        health: name_of(&s.health),
        entries: s.entry_count,
        last_success: fmt_time_or(s.last_success_at, "never"),
        last_attempt: fmt_time_or(s.last_attempt_at, "never"),
        error: s.last_error.clone().unwrap_or_default(),
        problems: s.problems.len(),
    }
}

#[derive(Template)]
#[template(path = "lists/index.html")]
struct ListsPage {
    l: Layout,
    org_id: i64,
    org_name: String,
    edit: bool,
    lists: Vec<ListRowView>,
    sources: Vec<SourceRowView>,
    holds: &'static [&'static str],
}

/// `GET /orgs/{org}/lists`.
async fn lists_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    let lists = lists_api::lists(&st.db, org)
        .await?
        .into_iter()
        .map(|l| ListRowView {
            id: l.id,
            name: l.name,
            public: l.public,
            size: l.size,
            held: l.held,
            seq: l.seq,
            built: fmt_time_or(l.last_built_at, "never"),
        })
        .collect();
    let sources = sources::sources(&st.db, org)
        .await?
        .iter()
        .filter(|s| s.kind != SourceKind::Decisions)
        .map(source_row)
        .collect();
    html(&ListsPage {
        l: layout(&st, &ctx, "Blocklists").await?,
        org_id: org.0,
        org_name: o.name,
        edit: can(&ctx, P::EditOrganisation),
        lists,
        sources,
        holds: HOLDS,
    })
}

/// `POST /orgs/{org}/lists`.
async fn create_list_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let l = do_create_list(&st, &ctx, &f).await?;
    Ok(see_other(format!("/orgs/{}/lists/{}", l.org_id.0, l.id)))
}

struct ChangeView {
    id: i64,
    seq: String,
    domain: String,
    op: String,
    before: String,
    after: String,
    status: String,
    reason: String,
    at: String,
    decided: String,
    evidence: Vec<String>,
}

fn change_view(c: &ListChange) -> ChangeView {
    ChangeView {
        id: c.id,
        seq: c.seq.map(|s| s.to_string()).unwrap_or_default(),
        domain: c.domain.clone(),
        op: match c.op {
            ChangeOp::Add => "add",
            ChangeOp::Change => "change",
            ChangeOp::Remove => "retract",
        }
        .to_owned(),
        before: entry_text(&c.before),
        after: entry_text(&c.after),
        status: name_of(&c.status),
        reason: c.reason.clone().unwrap_or_default(),
        at: fmt_time(c.created_at),
        decided: match (&c.decided_by, c.decided_at) {
            (Some(b), t) => format!("{b}, {}", fmt_time_or(t, "never")),
            (None, Some(t)) => fmt_time(t),
            _ => String::new(),
        },
        evidence: evidence_text(&c.audit),
    }
}

struct PolicySourceView {
    id: i64,
    name: String,
    use_as: &'static str,
    weight: String,
    max: &'static str,
}

#[derive(Template)]
#[template(path = "lists/list.html")]
struct ListPageT {
    l: Layout,
    org_id: i64,
    list: List,
    edit: bool,
    feeds: Vec<(String, String)>,
    plan: String,
    threshold_type: String,
    holds: Vec<String>,
    all_holds: &'static [&'static str],
    sources: Vec<PolicySourceView>,
    held: Vec<ChangeView>,
    recent: Vec<ChangeView>,
    entries: Vec<(String, String, String)>,
    new_token: Option<String>,
}

/// Entries shown on a list's page (the feeds have all of them).
const PAGE_ENTRIES: usize = 500;

impl ListPageT {
    fn holds_has(&self, h: &&str) -> bool {
        self.holds.iter().any(|x| x == h)
    }
}

async fn render_list_page(
    st: &AppState,
    ctx: &Ctx,
    new_token: Option<String>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let id = ctx.id("list")?;
    let list = lists_api::list(&st.db, Some(org), id).await?;
    if list.org_id != org {
        return Err(AppError::NotFound);
    }
    let base = &st.config.base_url;
    let feeds = vec![
        (
            "Mastodon CSV".to_owned(),
            format!("{base}/lists/{id}/mastodon.csv"),
        ),
        (
            "FediBlockHole CSV".to_owned(),
            format!("{base}/lists/{id}/fediblockhole.csv"),
        ),
        (
            "JSON".to_owned(),
            format!("{base}/lists/{id}/blocklist.json"),
        ),
        (
            "Change feed".to_owned(),
            format!("{base}/lists/{id}/changes"),
        ),
    ];
    let chosen: HashMap<i64, &ListSource> = list.sources.iter().map(|s| (s.source_id, s)).collect();
    let sources = sources::sources(&st.db, org)
        .await?
        .into_iter()
        .filter(|s| s.kind != SourceKind::Decisions)
        .map(|s| {
            let c = chosen.get(&s.id);
            PolicySourceView {
                id: s.id,
                name: s.name,
                use_as: match c {
                    None => "no",
                    Some(c) if c.allowlist => "allow",
                    Some(_) => "block",
                },
                weight: c
                    .map(|c| c.weight.to_string())
                    .unwrap_or_else(|| "1".into()),
                max: c.map(|c| c.max_severity.as_str()).unwrap_or("suspend"),
            }
        })
        .collect();
    let held = lists_api::held_changes(&st.db, org, id)
        .await?
        .iter()
        .map(change_view)
        .collect();
    let recent = lists_api::list_changes(&st.db, Some(org), id, None, None, 50)
        .await?
        .iter()
        .filter(|c| c.status != ChangeStatus::Held)
        .map(change_view)
        .collect();
    let entries = lists_api::list_entries(&st.db, Some(org), id)
        .await?
        .into_iter()
        .take(PAGE_ENTRIES)
        .map(|e| {
            let why = evidence_text(&e.audit).join("; ");
            (e.entry.domain.clone(), entry_text(&Some(e.entry)), why)
        })
        .collect();
    let page = ListPageT {
        l: layout(st, ctx, &format!("List {}", list.name)).await?,
        org_id: org.0,
        edit: can(ctx, P::EditOrganisation),
        feeds,
        plan: name_of(&list.policy.plan),
        threshold_type: name_of(&list.policy.threshold_type),
        holds: list.policy.holds.iter().map(name_of).collect(),
        all_holds: HOLDS,
        sources,
        held,
        recent,
        entries,
        new_token,
        list,
    };
    html(&page)
}

/// `GET /orgs/{org}/lists/{list}`.
async fn list_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    render_list_page(&st, &ctx, None).await
}

fn back_to_list(ctx: &Ctx) -> Result<Response, AppError> {
    Ok(see_other(format!(
        "/orgs/{}/lists/{}",
        ctx.org_id()?.0,
        ctx.id("list")?
    )))
}

/// `POST /orgs/{org}/lists/{list}/policy`.
async fn list_policy_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    do_update_list(&st, &ctx, &f).await?;
    back_to_list(&ctx)
}

/// `POST /orgs/{org}/lists/{list}/visibility`.
async fn list_visibility_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    f.required("public")?;
    let public = bool_field(&f, "public", false)?;
    lists_api::set_list_public(
        &st.db,
        ctx.org_id()?,
        &actor(&ctx)?,
        ctx.id("list")?,
        public,
    )
    .await?;
    back_to_list(&ctx)
}

/// `POST /orgs/{org}/lists/{list}/token`: the page shows the new token once.
async fn list_token_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let t =
        lists_api::new_feed_token(&st.db, ctx.org_id()?, &actor(&ctx)?, ctx.id("list")?).await?;
    render_list_page(&st, &ctx, Some(t)).await
}

/// `POST /orgs/{org}/lists/{list}/delete` (field `confirm`: the list's name).
async fn list_delete_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let confirm = f.required("confirm")?;
    let org = ctx.org_id()?;
    let id = ctx.id("list")?;
    let l = lists_api::list(&st.db, Some(org), id).await?;
    if l.org_id != org {
        return Err(AppError::NotFound);
    }
    if confirm.trim() != l.name {
        return Err(AppError::invalid(
            "confirm",
            "type the list's name to delete it",
        ));
    }
    lists_api::delete_list(&st.db, org, &actor(&ctx)?, id).await?;
    Ok(see_other(format!("/orgs/{}/lists", org.0)))
}

/// `POST /orgs/{org}/lists/{list}/changes/{change}/approve`.
async fn approve_change_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    do_approve_change(&st, &ctx).await?;
    back_to_list(&ctx)
}

/// `POST /orgs/{org}/lists/{list}/changes/{change}/reject` (field `reason`).
async fn reject_change_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    do_reject_change(&st, &ctx, &f).await?;
    back_to_list(&ctx)
}

// ---------------------------------------------------------------------------------------------
// Pages: sources

#[derive(Template)]
#[template(path = "lists/sources.html")]
struct SourcesPage {
    l: Layout,
    org_id: i64,
    org_name: String,
    edit: bool,
    sources: Vec<SourceRowView>,
    formats: &'static [&'static str],
}

/// `GET /orgs/{org}/sources`.
async fn sources_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    let sources = sources::sources(&st.db, org)
        .await?
        .iter()
        .filter(|s| s.kind != SourceKind::Decisions)
        .map(source_row)
        .collect();
    html(&SourcesPage {
        l: layout(&st, &ctx, "Blocklist sources").await?,
        org_id: org.0,
        org_name: o.name,
        edit: can(&ctx, P::EditOrganisation),
        sources,
        formats: FORMATS,
    })
}

/// `POST /orgs/{org}/sources`.
async fn create_source_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let (s, _) = do_create_source(&st, &ctx, &f).await?;
    Ok(see_other(format!("/orgs/{}/sources/{}", s.org_id.0, s.id)))
}

struct RefreshView {
    at: String,
    outcome: String,
    added: i64,
    changed: i64,
    removed: i64,
    error: String,
    problems: usize,
}

struct ProblemView {
    location: String,
    level: String,
    message: String,
}

#[derive(Template)]
#[template(path = "lists/source.html")]
struct SourcePageT {
    l: Layout,
    org_id: i64,
    edit: bool,
    s: SourceRowView,
    is_upload: bool,
    refresh_minutes: i64,
    problems: Vec<ProblemView>,
    refreshes: Vec<RefreshView>,
    last_changes: Vec<(String, String, String, String)>,
}

/// Changes of the last refresh shown on a source's page (the API pages through all).
const PAGE_SOURCE_CHANGES: u32 = 200;

/// `GET /orgs/{org}/sources/{source}`.
async fn source_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let id = ctx.id("source")?;
    let s = sources::source(&st.db, org, id).await?;
    let refreshes = sources::refreshes(&st.db, org, id, 30).await?;
    let last_changes = match refreshes
        .iter()
        .find(|r| r.added + r.changed + r.removed > 0)
    {
        Some(r) => sources::source_changes(&st.db, org, id, Some(r.id), None, PAGE_SOURCE_CHANGES)
            .await?
            .into_iter()
            .map(|c| {
                (
                    c.domain,
                    name_of(&c.op),
                    entry_text(&c.before),
                    entry_text(&c.after),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let refreshes = refreshes
        .into_iter()
        .map(|r| RefreshView {
            at: fmt_time(r.at),
            outcome: name_of(&r.outcome),
            added: r.added,
            changed: r.changed,
            removed: r.removed,
            error: r.error.unwrap_or_default(),
            problems: r.problems.len(),
        })
        .collect();
    let problems = s
        .problems
        .iter()
        .take(200)
        .map(|p| ProblemView {
            location: p.location.clone(),
            level: p.level.clone(),
            message: p.message.clone(),
        })
        .collect();
    html(&SourcePageT {
        l: layout(&st, &ctx, &format!("Source {}", s.name)).await?,
        org_id: org.0,
        edit: can(&ctx, P::EditOrganisation),
        is_upload: s.kind == SourceKind::Upload,
        refresh_minutes: s.refresh_secs / 60,
        problems,
        refreshes,
        last_changes,
        s: source_row(&s),
    })
}

fn back_to_source(ctx: &Ctx) -> Result<Response, AppError> {
    Ok(see_other(format!(
        "/orgs/{}/sources/{}",
        ctx.org_id()?.0,
        ctx.id("source")?
    )))
}

/// `POST /orgs/{org}/sources/{source}/upload` (field `contents`).
async fn source_upload_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let c = upload_text(&f)?;
    sources::upload_source(
        &st.db,
        ctx.org_id()?,
        &actor(&ctx)?,
        ctx.id("source")?,
        c.as_bytes(),
    )
    .await?;
    back_to_source(&ctx)
}

/// `POST /orgs/{org}/sources/{source}/refresh`.
async fn source_refresh_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    sources::request_refresh(&st.db, ctx.org_id()?, ctx.id("source")?).await?;
    back_to_source(&ctx)
}

/// `POST /orgs/{org}/sources/{source}/delete` (field `confirm`: the source's name).
async fn source_delete_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let confirm = f.required("confirm")?;
    let org = ctx.org_id()?;
    let id = ctx.id("source")?;
    let s = sources::source(&st.db, org, id).await?;
    if confirm.trim() != s.name {
        return Err(AppError::invalid(
            "confirm",
            "type the source's name to delete it",
        ));
    }
    sources::delete_source(&st.db, org, &actor(&ctx)?, id).await?;
    Ok(see_other(format!("/orgs/{}/sources", org.0)))
}

// ---------------------------------------------------------------------------------------------
// Pages: an instance's subscriptions and pushes

struct SubView {
    list_id: i64,
    list_name: String,
    mode: String,
    auto_limit: i64,
    since: String,
}

struct PushView {
    id: i64,
    status: String,
    reason: String,
    created: String,
    decided: String,
    finished: String,
    error: String,
    pending: i64,
    done: i64,
    held: i64,
    skipped: i64,
    failed: i64,
}

fn push_view(p: &Push) -> PushView {
    PushView {
        id: p.id,
        status: name_of(&p.status),
        reason: p.reason.clone(),
        created: fmt_time(p.created_at),
        decided: match &p.decided_by {
            Some(b) => format!("{b}, {}", fmt_time_or(p.decided_at, "never")),
            None => String::new(),
        },
        finished: p.finished_at.map(fmt_time).unwrap_or_default(),
        error: p.error.clone().unwrap_or_default(),
        pending: p.counts.pending,
        done: p.counts.done,
        held: p.counts.held,
        skipped: p.counts.skipped,
        failed: p.counts.failed,
    }
}

struct StepView {
    position: i64,
    op: String,
    domain: String,
    before: String,
    desired: String,
    list: String,
    state: String,
    note: String,
    /// For a proposed suspend in a preview: local accounts' follow relationships with the
    /// domain, or why they are not known.
    follows: String,
}

/// The follower check of a previewed diff; without a keyring the instance cannot be asked.
async fn preview_follows(st: &AppState, org: OrgId, steps: &[PushStep]) -> push::FollowPreview {
    match &st.instances.keyring {
        Some(k) => {
            let svc = guildhall_lists::Services {
                db: st.db.clone(),
                keyring: k.clone(),
                client: st.instances.client.clone(),
            };
            push::preview_follows(&svc, &st.instances.follow_cache, org, steps).await
        }
        None => push::FollowPreview::not_asked(
            steps,
            "this Guildhall has no secret key configured, so it cannot ask the instance",
        ),
    }
}

/// The preview's rows, each proposed suspend with its follower check.
fn preview_views(steps: &[PushStep], f: &push::FollowPreview) -> Vec<StepView> {
    steps
        .iter()
        .map(|s| {
            let mut v = step_view(s);
            if push::proposes_suspend(s) {
                v.follows = match f.follows_of(&s.domain) {
                    Some(n) => n.to_string(),
                    None => "not checked".to_owned(),
                };
            }
            v
        })
        .collect()
}

fn step_view(s: &PushStep) -> StepView {
    StepView {
        position: s.position,
        op: name_of(&s.op),
        domain: s.domain.clone(),
        before: entry_text(&s.before),
        desired: entry_text(&s.desired),
        list: s.list_name.clone(),
        state: if s.forced {
            format!("{} (forced)", name_of(&s.state))
        } else {
            name_of(&s.state)
        },
        note: s.note.clone().unwrap_or_default(),
        follows: String::new(),
    }
}

struct ManagedView {
    domain: String,
    list: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "lists/subscriptions.html")]
struct SubscriptionsPage {
    l: Layout,
    org_id: i64,
    org_name: String,
    is_instance: bool,
    subs: Vec<SubView>,
    readable: Vec<(i64, String)>,
    awaiting: Option<PushView>,
    preview: Vec<StepView>,
    follows_unchecked: usize,
    follows_error: String,
    follow_limit: usize,
    locks: Vec<(String, String, String)>,
    managed: Vec<ManagedView>,
    history: Vec<PushView>,
}

/// `GET /orgs/{org}/subscriptions`.
async fn subscriptions_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    let subs = push::subscriptions(&st.db, org)
        .await?
        .into_iter()
        .map(|s| SubView {
            list_id: s.list_id,
            list_name: s.list_name,
            mode: name_of(&s.mode),
            auto_limit: s.auto_limit,
            since: fmt_time(s.created_at),
        })
        .collect();
    let mut readable: Vec<(i64, String)> = lists_api::public_lists(&st.db)
        .await?
        .into_iter()
        .chain(lists_api::lists(&st.db, org).await?)
        .map(|l| (l.id, l.name))
        .collect();
    readable.sort();
    readable.dedup();
    let awaiting = push::awaiting_push(&st.db, org).await?;
    let (preview, follows) = match &awaiting {
        Some(p) => {
            let steps = push::push_steps(&st.db, org, p.id).await?;
            let f = preview_follows(&st, org, &steps).await;
            (preview_views(&steps, &f), f)
        }
        None => (Vec::new(), push::FollowPreview::default()),
    };
    let locks = push::locks(&st.db, org)
        .await?
        .into_iter()
        .map(|l| (l.domain, l.created_by, fmt_time(l.created_at)))
        .collect();
    let managed = push::managed_blocks(&st.db, org)
        .await?
        .into_iter()
        .map(|m| ManagedView {
            domain: m.domain,
            list: m.list_name,
            updated: fmt_time(m.updated_at),
        })
        .collect();
    let history = push::pushes(&st.db, org, 30)
        .await?
        .iter()
        .map(push_view)
        .collect();
    html(&SubscriptionsPage {
        l: layout(&st, &ctx, "Subscriptions").await?,
        org_id: org.0,
        org_name: o.name,
        is_instance: o.kind == OrgKind::Instance,
        subs,
        readable,
        awaiting: awaiting.as_ref().map(push_view),
        preview,
        follows_unchecked: follows.unchecked,
        follows_error: follows.error.unwrap_or_default(),
        follow_limit: push::PREVIEW_FOLLOW_LIMIT,
        locks,
        managed,
        history,
    })
}

fn back_to_subscriptions(ctx: &Ctx) -> Result<Response, AppError> {
    Ok(see_other(format!(
        "/orgs/{}/subscriptions",
        ctx.org_id()?.0
    )))
}

/// `POST /orgs/{org}/subscriptions` (fields `list`, `mode`, `auto_limit`, `token`).
async fn subscribe_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let list = list_id_field(&f)?;
    do_subscribe(&st, &ctx, list, &f).await?;
    back_to_subscriptions(&ctx)
}

/// `POST /orgs/{org}/subscriptions/remove` (field `list`).
async fn unsubscribe_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let list = list_id_field(&f)?;
    let org = instance_org(&st, &ctx).await?;
    push::unsubscribe(&st.db, org, &actor(&ctx)?, list).await?;
    back_to_subscriptions(&ctx)
}

/// `POST /orgs/{org}/locks` (field `domain`).
async fn lock_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let d = f.required("domain")?;
    let org = instance_org(&st, &ctx).await?;
    push::lock_domain(&st.db, org, &actor(&ctx)?, d).await?;
    back_to_subscriptions(&ctx)
}

/// `POST /orgs/{org}/locks/remove` (field `domain`).
async fn unlock_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let d = f.required("domain")?;
    let org = instance_org(&st, &ctx).await?;
    push::unlock_domain(&st.db, org, &actor(&ctx)?, d).await?;
    back_to_subscriptions(&ctx)
}

#[derive(Template)]
#[template(path = "lists/push.html")]
struct PushPageT {
    l: Layout,
    org_id: i64,
    p: PushView,
    awaiting: bool,
    steps: Vec<StepView>,
    follows_unchecked: usize,
    follows_error: String,
    follow_limit: usize,
}

/// `GET /orgs/{org}/pushes/{push}`.
async fn push_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (org, p) = push_of(&st, &ctx).await?;
    let awaiting = p.status == push::PushStatus::Awaiting;
    let steps = push::push_steps(&st.db, org, p.id).await?;
    // An awaiting push is a preview: with the follower check of its suspends.
    let follows = if awaiting {
        preview_follows(&st, org, &steps).await
    } else {
        push::FollowPreview::default()
    };
    html(&PushPageT {
        l: layout(&st, &ctx, &format!("Push {}", p.id)).await?,
        org_id: org.0,
        awaiting,
        p: push_view(&p),
        steps: preview_views(&steps, &follows),
        follows_unchecked: follows.unchecked,
        follows_error: follows.error.unwrap_or_default(),
        follow_limit: push::PREVIEW_FOLLOW_LIMIT,
    })
}

/// `POST /orgs/{org}/pushes/{push}/approve` (field `force_followed`).
async fn approve_push_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let force = bool_field(&f, "force_followed", false)?;
    let (org, p) = push_of(&st, &ctx).await?;
    push::approve_push(&st.db, org, &actor(&ctx)?, p.id, force).await?;
    back_to_subscriptions(&ctx)
}

/// `POST /orgs/{org}/pushes/{push}/reject`.
async fn reject_push_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (org, p) = push_of(&st, &ctx).await?;
    push::reject_push(&st.db, org, &actor(&ctx)?, p.id).await?;
    back_to_subscriptions(&ctx)
}

// ---------------------------------------------------------------------------------------------
// Pages: coordinated defederation

struct ProposalView {
    id: i64,
    domain: String,
    severity: String,
    evidence: String,
    links: Vec<String>,
    deadline: String,
    quorum: i64,
    status: String,
    open: bool,
    yes: i64,
    no: i64,
    abstain: i64,
    by: String,
}

fn proposal_view(p: &Proposal) -> ProposalView {
    ProposalView {
        id: p.id,
        domain: p.domain.clone(),
        severity: p.severity.as_str().to_owned(),
        evidence: p.evidence.clone(),
        links: p.links.clone(),
        deadline: fmt_time(p.deadline),
        quorum: p.quorum,
        status: name_of(&p.status),
        open: p.status == ProposalStatus::Open && p.deadline.0 > Timestamp::now().0,
        yes: p.yes,
        no: p.no,
        abstain: p.abstain,
        by: p.created_by.clone(),
    }
}

#[derive(Template)]
#[template(path = "lists/defederation.html")]
struct DefedPage {
    l: Layout,
    org_id: i64,
    edit: bool,
    is_instance: bool,
    own_lists: Vec<(i64, String)>,
    proposals: Vec<ProposalView>,
    severities: &'static [&'static str],
}

/// `GET /orgs/{org}/defederation`.
async fn defederation_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    let own_lists = lists_api::lists(&st.db, org)
        .await?
        .into_iter()
        .map(|l| (l.id, l.name))
        .collect();
    let proposals = defed::proposals(&st.db, false)
        .await?
        .iter()
        .map(proposal_view)
        .collect();
    html(&DefedPage {
        l: layout(&st, &ctx, "Coordinated defederation").await?,
        org_id: org.0,
        edit: can(&ctx, P::EditOrganisation),
        is_instance: o.kind == OrgKind::Instance,
        own_lists,
        proposals,
        severities: SEVERITIES,
    })
}

/// `POST /orgs/{org}/defederation`.
async fn propose_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    do_propose(&st, &ctx, &f).await?;
    Ok(see_other(format!("/orgs/{}/defederation", ctx.org_id()?.0)))
}

/// `POST /orgs/{org}/defederation/{proposal}/vote` (field `vote`).
async fn vote_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    do_vote(&st, &ctx, &f).await?;
    Ok(see_other(format!("/orgs/{}/defederation", ctx.org_id()?.0)))
}

// ---------------------------------------------------------------------------------------------
// JSON API

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// `GET /api/v1/orgs/{org}/sources`.
async fn api_sources(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = sources::sources(&st.db, ctx.org_id()?).await?;
    Ok(Json(json!({ "sources": s })).into_response())
}

/// `POST /api/v1/orgs/{org}/sources`.
async fn api_create_source(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let (s, r) = do_create_source(&st, &ctx, &f).await?;
    Ok(created(json!({ "source": s, "refresh": r })))
}

/// `GET /api/v1/orgs/{org}/sources/{source}`.
async fn api_source(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let id = ctx.id("source")?;
    let s = sources::source(&st.db, org, id).await?;
    let r = sources::refreshes(&st.db, org, id, 50).await?;
    Ok(Json(json!({ "source": s, "refreshes": r })).into_response())
}

/// `GET /api/v1/orgs/{org}/sources/{source}/entries`.
async fn api_source_entries(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let e = sources::source_entries(&st.db, ctx.org_id()?, ctx.id("source")?).await?;
    Ok(Json(json!({ "entries": e })).into_response())
}

/// `GET /api/v1/orgs/{org}/sources/{source}/changes?after=&refresh=&limit=`.
async fn api_source_changes(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let q = query(q)?;
    let after: Option<i64> = q.parse_optional("after")?;
    let limit: u32 = num_field(
        &q,
        "limit",
        1000,
        |l| (1..=10_000).contains(l),
        "a whole number from 1 to 10000",
    )?;
    let refresh: Option<i64> = q.parse_optional("refresh")?;
    let c = sources::source_changes(
        &st.db,
        ctx.org_id()?,
        ctx.id("source")?,
        refresh,
        after,
        limit,
    )
    .await?;
    Ok(Json(json!({ "changes": c })).into_response())
}

/// `POST /api/v1/orgs/{org}/sources/{source}/upload` (field `contents`).
async fn api_source_upload(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let c = upload_text(&f)?;
    let org = ctx.org_id()?;
    let id = ctx.id("source")?;
    let r = sources::upload_source(&st.db, org, &actor(&ctx)?, id, c.as_bytes()).await?;
    let s = sources::source(&st.db, org, id).await?;
    Ok(Json(json!({ "source": s, "refresh": r })).into_response())
}

/// `POST /api/v1/orgs/{org}/sources/{source}/refresh`.
async fn api_source_refresh(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let queued = sources::request_refresh(&st.db, ctx.org_id()?, ctx.id("source")?).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": queued }))).into_response())
}

/// `DELETE /api/v1/orgs/{org}/sources/{source}`.
async fn api_source_delete(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    sources::delete_source(&st.db, ctx.org_id()?, &actor(&ctx)?, ctx.id("source")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/lists`.
async fn api_lists(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let l = lists_api::lists(&st.db, ctx.org_id()?).await?;
    Ok(Json(json!({ "lists": l })).into_response())
}

/// `POST /api/v1/orgs/{org}/lists`.
async fn api_create_list(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let l = do_create_list(&st, &ctx, &f).await?;
    Ok(created(json!({ "list": l })))
}

/// The route's list, owned by the route's organisation.
async fn own_list(st: &AppState, ctx: &Ctx) -> Result<List, AppError> {
    let org = ctx.org_id()?;
    let l = lists_api::list(&st.db, Some(org), ctx.id("list")?).await?;
    if l.org_id != org {
        return Err(AppError::NotFound);
    }
    Ok(l)
}

/// `GET /api/v1/orgs/{org}/lists/{list}`.
async fn api_list(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let l = own_list(&st, &ctx).await?;
    let base = &st.config.base_url;
    let id = l.id;
    Ok(Json(json!({
        "list": l,
        "feeds": {
            "mastodon_csv": format!("{base}/lists/{id}/mastodon.csv"),
            "fediblockhole_csv": format!("{base}/lists/{id}/fediblockhole.csv"),
            "json": format!("{base}/lists/{id}/blocklist.json"),
            "changes": format!("{base}/lists/{id}/changes"),
        }
    }))
    .into_response())
}

/// `PUT /api/v1/orgs/{org}/lists/{list}`.
async fn api_update_list(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let l = do_update_list(&st, &ctx, &f).await?;
    Ok(Json(json!({ "list": l })).into_response())
}

/// `PUT /api/v1/orgs/{org}/lists/{list}/visibility` (field `public`).
async fn api_list_visibility(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    f.required("public")?;
    let public = bool_field(&f, "public", false)?;
    let l = lists_api::set_list_public(
        &st.db,
        ctx.org_id()?,
        &actor(&ctx)?,
        ctx.id("list")?,
        public,
    )
    .await?;
    Ok(Json(json!({ "list": l })).into_response())
}

/// `POST /api/v1/orgs/{org}/lists/{list}/token`: the token is in this answer only.
async fn api_list_token(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let t =
        lists_api::new_feed_token(&st.db, ctx.org_id()?, &actor(&ctx)?, ctx.id("list")?).await?;
    Ok(created(json!({ "token": t })))
}

/// `GET /api/v1/orgs/{org}/lists/{list}/entries`.
async fn api_list_entries(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    own_list(&st, &ctx).await?;
    let e = lists_api::list_entries(&st.db, Some(ctx.org_id()?), ctx.id("list")?).await?;
    Ok(Json(json!({ "entries": e })).into_response())
}

/// `GET /api/v1/orgs/{org}/lists/{list}/changes?status=&before=&limit=`.
async fn api_list_changes(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    own_list(&st, &ctx).await?;
    let q = query(q)?;
    let status: Option<ChangeStatus> = match q.get("status") {
        Some(s) => Some(parse_enum(
            "status",
            s,
            &["published", "held", "rejected", "superseded"],
        )?),
        None => None,
    };
    let before: Option<i64> = q.parse_optional("before")?;
    let limit: u32 = num_field(
        &q,
        "limit",
        100,
        |l| (1..=1000).contains(l),
        "a whole number from 1 to 1000",
    )?;
    let c = lists_api::list_changes(
        &st.db,
        Some(ctx.org_id()?),
        ctx.id("list")?,
        status,
        before,
        limit,
    )
    .await?;
    Ok(Json(json!({ "changes": c })).into_response())
}

/// `GET /api/v1/orgs/{org}/lists/{list}/held`.
async fn api_list_held(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let c = lists_api::held_changes(&st.db, ctx.org_id()?, ctx.id("list")?).await?;
    Ok(Json(json!({ "changes": c })).into_response())
}

/// `POST /api/v1/orgs/{org}/lists/{list}/changes/{change}/approve`.
async fn api_approve_change(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let c = do_approve_change(&st, &ctx).await?;
    Ok(Json(json!({ "change": c })).into_response())
}

/// `POST /api/v1/orgs/{org}/lists/{list}/changes/{change}/reject` (field `reason`).
async fn api_reject_change(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let c = do_reject_change(&st, &ctx, &f).await?;
    Ok(Json(json!({ "change": c })).into_response())
}

/// `DELETE /api/v1/orgs/{org}/lists/{list}`.
async fn api_list_delete(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    lists_api::delete_list(&st.db, ctx.org_id()?, &actor(&ctx)?, ctx.id("list")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/subscriptions`.
async fn api_subscriptions(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let s = push::subscriptions(&st.db, ctx.org_id()?).await?;
    Ok(Json(json!({ "subscriptions": s })).into_response())
}

/// `PUT /api/v1/orgs/{org}/subscriptions/{list}` (fields `mode`, `auto_limit`, `token`).
async fn api_subscribe(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    f.required("mode")?;
    let s = do_subscribe(&st, &ctx, ctx.id("list")?, &f).await?;
    Ok(Json(json!({ "subscription": s })).into_response())
}

/// `DELETE /api/v1/orgs/{org}/subscriptions/{list}`.
async fn api_unsubscribe(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = instance_org(&st, &ctx).await?;
    push::unsubscribe(&st.db, org, &actor(&ctx)?, ctx.id("list")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/locks`.
async fn api_locks(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let l = push::locks(&st.db, ctx.org_id()?).await?;
    Ok(Json(json!({ "locks": l })).into_response())
}

/// `PUT /api/v1/orgs/{org}/locks/{domain}`.
async fn api_lock(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = instance_org(&st, &ctx).await?;
    let l = push::lock_domain(&st.db, org, &actor(&ctx)?, ctx.param("domain")?).await?;
    Ok(Json(json!({ "lock": l })).into_response())
}

/// `DELETE /api/v1/orgs/{org}/locks/{domain}`.
async fn api_unlock(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let org = instance_org(&st, &ctx).await?;
    push::unlock_domain(&st.db, org, &actor(&ctx)?, ctx.param("domain")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/orgs/{org}/managed`.
async fn api_managed(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let m = push::managed_blocks(&st.db, ctx.org_id()?).await?;
    Ok(Json(json!({ "managed": m })).into_response())
}

/// `GET /api/v1/orgs/{org}/pushes?limit=`: the pending diff (with its steps) and the history.
async fn api_pushes(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let q = query(q)?;
    let limit: u32 = num_field(
        &q,
        "limit",
        50,
        |l| (1..=500).contains(l),
        "a whole number from 1 to 500",
    )?;
    let awaiting = push::awaiting_push(&st.db, org).await?;
    let (preview, follows) = match &awaiting {
        Some(p) => {
            let steps = push::push_steps(&st.db, org, p.id).await?;
            let f = preview_follows(&st, org, &steps).await;
            (Some(steps), Some(f))
        }
        None => (None, None),
    };
    let history = push::pushes(&st.db, org, limit).await?;
    Ok(Json(json!({
        "awaiting": awaiting,
        "preview": preview,
        "follows": follows,
        "pushes": history,
    }))
    .into_response())
}

/// `GET /api/v1/orgs/{org}/pushes/{push}`.
async fn api_push(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (org, p) = push_of(&st, &ctx).await?;
    let steps = push::push_steps(&st.db, org, p.id).await?;
    let follows = if p.status == push::PushStatus::Awaiting {
        Some(preview_follows(&st, org, &steps).await)
    } else {
        None
    };
    Ok(Json(json!({ "push": p, "steps": steps, "follows": follows })).into_response())
}

/// `POST /api/v1/orgs/{org}/pushes/{push}/approve` (field `force_followed`).
async fn api_approve_push(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let force = bool_field(&f, "force_followed", false)?;
    let (org, p) = push_of(&st, &ctx).await?;
    let p = push::approve_push(&st.db, org, &actor(&ctx)?, p.id, force).await?;
    Ok(Json(json!({ "push": p })).into_response())
}

/// `POST /api/v1/orgs/{org}/pushes/{push}/reject`.
async fn api_reject_push(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (org, p) = push_of(&st, &ctx).await?;
    let p = push::reject_push(&st.db, org, &actor(&ctx)?, p.id).await?;
    Ok(Json(json!({ "push": p })).into_response())
}

/// `GET /api/v1/orgs/{org}/defederation?open=true`.
async fn api_proposals(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    ctx.org_id()?;
    let q = query(q)?;
    let open = bool_field(&q, "open", false)?;
    let p = defed::proposals(&st.db, open).await?;
    Ok(Json(json!({ "proposals": p })).into_response())
}

/// `POST /api/v1/orgs/{org}/defederation`.
async fn api_propose(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let p = do_propose(&st, &ctx, &f).await?;
    Ok(created(json!({ "proposal": p })))
}

/// `POST /api/v1/orgs/{org}/defederation/{proposal}/vote` (field `vote`).
async fn api_vote(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let p = do_vote(&st, &ctx, &f).await?;
    Ok(Json(json!({ "proposal": p })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_parse_and_name_the_field() {
        let s = parse_source_spec("12").unwrap();
        assert_eq!((s.source_id, s.weight, s.allowlist), (12, 1.0, false));
        let s = parse_source_spec("3:2.5:silence").unwrap();
        assert_eq!(s.weight, 2.5);
        assert_eq!(s.max_severity, Severity::Silence);
        assert!(parse_source_spec("4:allow").unwrap().allowlist);
        let e = parse_source_spec("x:1").unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("sources"));
        assert!(parse_source_spec("5:loud").is_err());
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(not_modified(&h, "\"a\""));
        assert!(not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
        assert!(!not_modified(&HeaderMap::new(), "\"a\""));
    }

    #[test]
    fn enums_parse_by_their_names() {
        let m: Mode = parse_enum("mode", "automatic", MODES).unwrap();
        assert_eq!(m, Mode::Automatic);
        let e = parse_enum::<Mode>("mode", "sometimes", MODES).unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("mode"));
        assert_eq!(name_of(&HoldKind::Removal), "removal");
    }
}
