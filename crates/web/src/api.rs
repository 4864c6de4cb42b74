//! The JSON API under `/api/v1` (bearer API tokens; described by `/api/openapi.json`). The
//! handlers share their operations with the pages ([`crate::ops`]).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use guildhall_core::{JobId, OrgId};
use guildhall_db::SecretToken;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::AppError;
use crate::input::{Fields, Input};
use crate::{ops, store, AppState};

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /api/v1/me`.
pub(crate) async fn me(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let orgs: Vec<Value> = st
        .db
        .organisations_of(who.account.id)
        .await?
        .into_iter()
        .map(|(o, r)| json!({"organisation": o, "role": r}))
        .collect();
    Ok(ok(json!({
        "account": who.account,
        "scopes": who.scopes(),
        "memberships": orgs,
    })))
}

/// `GET /api/v1/orgs`.
pub(crate) async fn orgs(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let orgs: Vec<Value> = st
        .db
        .organisations_of(who.account.id)
        .await?
        .into_iter()
        .map(|(o, r)| json!({"organisation": o, "role": r}))
        .collect();
    Ok(ok(json!({ "organisations": orgs })))
}

/// `POST /api/v1/orgs`.
pub(crate) async fn create_org(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let org = ops::create_org(&st, ctx.who()?, &f).await?;
    Ok(created(json!({ "organisation": org })))
}

/// `GET /api/v1/orgs/{org}`.
pub(crate) async fn org(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (id, role) = ctx.org.ok_or(AppError::NotFound)?;
    let org = st.db.organisation(id).await?.ok_or(AppError::NotFound)?;
    Ok(ok(json!({ "organisation": org, "role": role })))
}

/// `GET /api/v1/orgs/{org}/members`.
pub(crate) async fn members(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let members = st.db.members(ctx.org_id()?).await?;
    Ok(ok(json!({ "members": members })))
}

/// `PUT /api/v1/orgs/{org}/members/{account}`.
pub(crate) async fn set_role(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    ops::set_role(&st, &ctx, &f).await?;
    Ok(no_content())
}

/// `DELETE /api/v1/orgs/{org}/members/{account}`.
pub(crate) async fn remove_member(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    ops::remove_member(&st, &ctx).await?;
    Ok(no_content())
}

/// `GET /api/v1/orgs/{org}/invitations`.
pub(crate) async fn invitations(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let inv = st.db.invitations(ctx.org_id()?).await?;
    Ok(ok(json!({ "invitations": inv })))
}

/// `POST /api/v1/orgs/{org}/invitations`.
pub(crate) async fn create_invitation(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let (link, inv) = ops::create_invitation(&st, &ctx, &f).await?;
    Ok(created(json!({ "invitation": inv, "link": link })))
}

/// `DELETE /api/v1/orgs/{org}/invitations/{id}`.
pub(crate) async fn revoke_invitation(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    ops::revoke_invitation(&st, &ctx).await?;
    Ok(no_content())
}

/// `POST /api/v1/invitations/accept` (field `token`: the link's last segment or the whole
/// link).
pub(crate) async fn accept_invitation(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let raw = f.required("token")?;
    let raw = raw.rsplit('/').next().unwrap_or(raw);
    let inv = ops::accept_invitation(&st, &who.account, &SecretToken::from_client(raw))
        .await
        .map_err(|e| match e {
            AppError::NotFound => AppError::invalid("token", "no such invitation"),
            other => other,
        })?;
    Ok(ok(json!({ "invitation": inv })))
}

/// `GET /api/v1/tokens`.
pub(crate) async fn tokens(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let toks = st.db.api_tokens(ctx.who()?.account.id).await?;
    Ok(ok(json!({ "tokens": toks })))
}

/// `POST /api/v1/tokens`.
pub(crate) async fn create_token(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let (token, tok) = ops::create_token(&st, ctx.who()?, &f).await?;
    Ok(created(json!({ "token": token.expose(), "info": tok })))
}

/// `DELETE /api/v1/tokens/{id}`.
pub(crate) async fn revoke_token(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    ops::revoke_token(&st, &ctx).await?;
    Ok(no_content())
}

/// The fields of a query string (field-level errors like a form).
fn query(q: &RawQuery) -> Result<Fields, AppError> {
    Fields::from_form(q.0.as_deref().unwrap_or("").as_bytes())
}

/// The `limit` query parameter: 1 to 1000, default 100.
fn limit(f: &Fields) -> Result<u32, AppError> {
    let n: Option<u32> = f.parse_optional("limit")?;
    match n {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid("limit", "must be between 1 and 1000")),
    }
}

/// `GET /api/v1/orgs/{org}/audit`.
pub(crate) async fn audit(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    q: RawQuery,
) -> Result<Response, AppError> {
    let limit = limit(&query(&q)?)?;
    let org: OrgId = ctx.org_id()?;
    let entries = store::audit_entries(&st, Some(org), limit).await?;
    Ok(ok(json!({ "entries": entries })))
}

/// `GET /api/v1/audit/verify`.
pub(crate) async fn verify_audit(State(st): State<AppState>) -> Result<Response, AppError> {
    Ok(match store::verify_audit(&st).await? {
        Ok(n) => ok(json!({ "intact": true, "entries": n })),
        Err(broken) => ok(json!({ "intact": false, "problem": broken })),
    })
}

/// `GET /api/v1/jobs?state=dead`.
pub(crate) async fn jobs(State(st): State<AppState>, q: RawQuery) -> Result<Response, AppError> {
    let f = query(&q)?;
    let state = match f.get("state") {
        Some(s) => store::JobStateView::parse(s)?,
        None => store::JobStateView::Dead,
    };
    let jobs = store::jobs_in_state(&st, state, limit(&f)?).await?;
    Ok(ok(json!({ "jobs": jobs })))
}

/// `POST /api/v1/jobs/{id}/retry`.
pub(crate) async fn retry_job(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    ops::retry_job(&st, &ctx).await?;
    let job = store::job(&st, JobId(ctx.id("id")?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(ok(json!({ "job": job })))
}
