//! Connecting an instance organisation's Mastodon (or GoToSocial, Akkoma) instance: the OAuth
//! authorization-code flow with PKCE or a pasted service-account token, the access check that
//! tells the admin in plain words what is missing, disconnecting (revoking where the server
//! allows), the per-instance webhook secret (shown once), and the webhook endpoint that
//! records signed deliveries before acknowledging them.
//!
//! Tokens, client secrets, PKCE verifiers and webhook secrets are sealed in the database's
//! `secrets` table (AEAD, [`Keyring`]); they are never logged and never shown back (the
//! webhook secret is shown once, when made).

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use guildhall_core::{OrgId, OrgKind};
use guildhall_db::audit::NewAuditEntry;
use guildhall_db::instances::{CheckResult, ConnectMethod, Instance, NewConnection};
use guildhall_db::secrets::{Keyring, SecretValue};
use guildhall_mastodon::models::RegisteredApp;
use guildhall_mastodon::webhook::{verify_signature, SignatureError};
use guildhall_mastodon::{AccessReport, Area, Client, ClientConfig, Pkce, Secret};
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::AppError;
use crate::input::{Fields, Input};
use crate::pages::{fmt_time_or, layout, Layout};
use crate::AppState;

/// How long an OAuth authorisation may take between the redirect and the callback.
const OAUTH_TTL: Duration = Duration::from_secs(15 * 60);

/// What connecting instances needs beyond [`crate::WebConfig`]: the keyring that seals tokens
/// and the Mastodon client's settings.
#[derive(Debug, Clone, Default)]
pub struct InstanceSettings {
    /// The keyring for sealed secrets. Without one, connecting is refused (409) with a
    /// message saying so.
    pub keyring: Option<Arc<Keyring>>,
    /// The Mastodon client's timeouts and retries.
    pub client: ClientConfig,
    /// Follow counts recent blocklist push previews asked the instances for (shared by every
    /// request; the push itself always asks).
    pub follow_cache: guildhall_lists::push::FollowCache,
}

impl AppState {
    /// The same state with the keyring that seals instance tokens and webhook secrets (the
    /// binary passes the server's keyring).
    pub fn with_keyring(mut self, keys: Keyring) -> AppState {
        let mut s = (*self.instances).clone();
        s.keyring = Some(Arc::new(keys));
        self.instances = Arc::new(s);
        self
    }

    /// The same state with this cache of previews' follow counts (tests keep a handle on it).
    pub fn with_follow_cache(mut self, cache: guildhall_lists::push::FollowCache) -> AppState {
        let mut s = (*self.instances).clone();
        s.follow_cache = cache;
        self.instances = Arc::new(s);
        self
    }

    /// The same state with other Mastodon client settings (tests shorten the waits).
    pub fn with_mastodon_client(mut self, client: ClientConfig) -> AppState {
        let mut s = (*self.instances).clone();
        s.client = client;
        self.instances = Arc::new(s);
        self
    }
}

fn keyring(st: &AppState) -> Result<Arc<Keyring>, AppError> {
    st.instances.keyring.clone().ok_or_else(|| {
        AppError::Conflict(
            "this Guildhall has no secret key configured, so it cannot store instance tokens"
                .to_owned(),
        )
    })
}

fn mastodon_err(field: &str, e: guildhall_mastodon::Error) -> AppError {
    AppError::invalid(field, format!("the instance answered: {e}"))
}

/// The organisation of the route, which must be an instance organisation.
async fn instance_org(st: &AppState, ctx: &Ctx) -> Result<OrgId, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    if o.kind != OrgKind::Instance {
        return Err(AppError::Conflict(
            "only an instance organisation can connect an instance".to_owned(),
        ));
    }
    Ok(org)
}

async fn connected_instance(st: &AppState, org: OrgId) -> Result<Instance, AppError> {
    match st.db.instance_of_org(org).await? {
        Some(i) if i.connected => Ok(i),
        _ => Err(AppError::Conflict("no instance is connected".to_owned())),
    }
}

/// The audit entry of the caller's `action` on the instance of `org`; the database method
/// making the change stores it in the same transaction.
fn audit_entry(
    ctx: &Ctx,
    org: OrgId,
    action: &str,
    after: Value,
) -> Result<NewAuditEntry, AppError> {
    let who = ctx.who()?;
    Ok(crate::ops::audit_entry(
        Some(&who.account),
        action,
        Some(org),
        None,
        Some(after),
    ))
}

fn client(st: &AppState, base_url: &str, token: Option<Secret>) -> Result<Client, AppError> {
    Client::new(base_url, token, st.instances.client.clone())
        .map_err(|e| AppError::invalid("base_url", e.to_string()))
}

/// Runs the access check with the stored token and records the result (with the caller's
/// `instance.check` audit entry).
async fn check(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
    inst: &Instance,
) -> Result<Instance, AppError> {
    let keys = keyring(st)?;
    let token = st
        .db
        .get_secret(&keys, &guildhall_db::instances::token_secret_name(inst.id))
        .await?
        .and_then(|v| v.expose_str().map(Secret::new))
        .ok_or_else(|| AppError::Conflict("no token is stored for this instance".to_owned()))?;
    let c = client(st, &inst.base_url, Some(token))?;
    let scopes: Option<Vec<String>> = inst
        .scopes
        .as_deref()
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    let check = match c.check_access(scopes.as_deref()).await {
        Ok(report) => summarise(&report),
        Err(guildhall_mastodon::Error::InvalidToken { .. }) => failed_check(
            "The instance does not accept the token: it is invalid or was revoked.".to_owned(),
        ),
        Err(e) => failed_check(format!("Could not check the token: {e}")),
    };
    let entry = audit_entry(
        ctx,
        org,
        "instance.check",
        json!({ "check_ok": check.ok, "moderation_ok": check.moderation_ok, "problems": check.problems }),
    )?;
    st.db
        .record_instance_check_audited(inst.id, &check, |_| Some(entry))
        .await?;
    st.db
        .instance(inst.id)
        .await?
        .ok_or_else(|| AppError::Internal("instance vanished".to_owned()))
}

/// A check that could not run (`why`): nothing is known to work.
fn failed_check(why: String) -> CheckResult {
    CheckResult {
        ok: false,
        moderation_ok: false,
        problems: vec![why],
        account: None,
    }
}

/// The check's result, overall and for the moderation co-op. A capability the server did not
/// let Guildhall verify (write scopes of a pasted token, which cannot be probed without side
/// effects) is listed but does not fail the check.
fn summarise(r: &AccessReport) -> CheckResult {
    CheckResult {
        ok: r.ready_for(Area::Moderation) && r.ready_for(Area::Blocklists),
        moderation_ok: r.ready_for(Area::Moderation),
        problems: r.problems(),
        account: r.account.as_ref().map(|a| format!("@{}", a.acct)),
    }
}

/// Stores a connection with its `instance.connect` audit entry, then checks it at once (an
/// `instance.check` entry with the result).
async fn connect(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
    conn: NewConnection,
) -> Result<Instance, AppError> {
    let keys = keyring(st)?;
    let entry = audit_entry(
        ctx,
        org,
        "instance.connect",
        json!({ "base_url": conn.base_url, "method": conn.method, "scopes": conn.scopes }),
    )?;
    let inst = st
        .db
        .save_instance_connection_audited(&keys, org, &conn, |_| Some(entry))
        .await?;
    check(st, ctx, org, &inst).await
}

/// Connects with a pasted token (fields `base_url`, `token`).
async fn connect_token(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<Instance, AppError> {
    let base_url = f.required("base_url")?;
    let token = f.required("token")?.trim().to_owned();
    let org = instance_org(st, ctx).await?;
    let base = guildhall_mastodon::parse_base_url(base_url)
        .map_err(|e| AppError::invalid("base_url", e.to_string()))?;
    // The token must at least be a valid token of this server.
    let c = client(st, base.as_str(), Some(Secret::new(token.clone())))?;
    c.verify_app().await.map_err(|e| mastodon_err("token", e))?;
    connect(
        st,
        ctx,
        org,
        NewConnection {
            base_url: base.to_string(),
            method: ConnectMethod::Token,
            client: None,
            token: SecretValue::new(token.into_bytes()),
            scopes: None,
        },
    )
    .await
}

/// Disconnects: revokes the token at the instance where Guildhall can (OAuth connections), and
/// forgets it. Returns a sentence for the admin about revocation.
async fn disconnect(st: &AppState, ctx: &Ctx, org: OrgId) -> Result<String, AppError> {
    use guildhall_db::instances::{client_secret_name, token_secret_name};
    let inst = connected_instance(st, org).await?;
    let keys = keyring(st)?;
    let token = st.db.get_secret(&keys, &token_secret_name(inst.id)).await?;
    let client_secret = st
        .db
        .get_secret(&keys, &client_secret_name(inst.id))
        .await?;
    let revoked = match (&inst.client_id, client_secret, token) {
        (Some(client_id), Some(cs), Some(tok)) => {
            let app = RegisteredApp {
                id: None,
                name: String::new(),
                client_id: client_id.clone(),
                client_secret: Secret::new(cs.expose_str().unwrap_or_default()),
                redirect_uris: Vec::new(),
                redirect_uri: None,
                scopes: None,
            };
            let c = client(st, &inst.base_url, None)?;
            match c
                .revoke_token(&app, &Secret::new(tok.expose_str().unwrap_or_default()))
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => Err("Guildhall did not issue this token, so it cannot revoke it".to_owned()),
    };
    let entry = audit_entry(
        ctx,
        org,
        "instance.disconnect",
        json!({ "base_url": inst.base_url, "revoked": revoked.is_ok() }),
    )?;
    st.db
        .disconnect_instance_audited(inst.id, |_| Some(entry))
        .await?;
    let message = match &revoked {
        Ok(()) => "Disconnected. The token was revoked at the instance.".to_owned(),
        Err(why) => format!(
            "Disconnected, and Guildhall has forgotten the token. It was not revoked at the \
             instance ({why}): revoke it there (Preferences → Account → Authorized apps)."
        ),
    };
    Ok(message)
}

/// Makes (or replaces) the webhook secret; returns it (shown once).
async fn rotate_webhook_secret(
    st: &AppState,
    ctx: &Ctx,
    org: OrgId,
) -> Result<(Instance, String), AppError> {
    let inst = st
        .db
        .instance_of_org(org)
        .await?
        .ok_or_else(|| AppError::Conflict("connect an instance first".to_owned()))?;
    let keys = keyring(st)?;
    let secret = crate::auth::random_token();
    let entry = audit_entry(
        ctx,
        org,
        "instance.webhook_secret",
        json!({ "instance": inst.id }),
    )?;
    st.db
        .set_webhook_secret_audited(
            &keys,
            inst.id,
            &SecretValue::new(secret.clone().into_bytes()),
            |_| Some(entry),
        )
        .await?;
    Ok((inst, secret))
}

fn webhook_url(st: &AppState, inst: &Instance) -> String {
    format!("{}/webhooks/mastodon/{}", st.config.base_url, inst.id)
}

fn instance_json(st: &AppState, inst: &Instance) -> Value {
    json!({
        "id": inst.id,
        "base_url": inst.base_url,
        "method": inst.method,
        "connected": inst.connected,
        "scopes": inst.scopes,
        "account": inst.account,
        "check": {
            "ok": inst.check_ok,
            "moderation_ok": inst.check_moderation_ok,
            "problems": inst.check_problems,
            "checked_at": inst.checked_at,
        },
        "webhook_url": webhook_url(st, inst),
        "webhook_secret_set": inst.webhook_secret_set,
        "connected_at": inst.connected_at,
    })
}

// ---------------------------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "instances/instance.html")]
struct InstancePage {
    l: Layout,
    org_id: i64,
    org_name: String,
    is_instance: bool,
    inst: Option<InstanceView>,
    notice: Option<String>,
    new_webhook_secret: Option<String>,
    scopes: String,
}

struct InstanceView {
    base_url: String,
    method: &'static str,
    connected: bool,
    account: String,
    check: &'static str,
    problems: Vec<String>,
    checked_at: String,
    webhook_url: String,
    webhook_secret_set: bool,
}

async fn render_page(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<String>,
    new_webhook_secret: Option<String>,
) -> Result<Response, AppError> {
    let org = ctx.org_id()?;
    let o = st.db.organisation(org).await?.ok_or(AppError::NotFound)?;
    let inst = st.db.instance_of_org(org).await?.map(|i| InstanceView {
        base_url: i.base_url.clone(),
        method: match i.method {
            ConnectMethod::Oauth => "authorised through OAuth",
            ConnectMethod::Token => "a pasted service-account token",
        },
        connected: i.connected,
        account: i.account.clone().unwrap_or_default(),
        check: match i.check_ok {
            Some(true) if !i.check_problems.is_empty() => {
                "Nothing is known to be missing, but the instance did not let Guildhall verify:"
            }
            Some(true) => "Guildhall has everything it needs.",
            Some(false) if i.check_moderation_ok == Some(true) => {
                "The moderation co-op has what it needs; the shared blocklists miss something:"
            }
            Some(false) => "Something is missing:",
            None => "Not checked yet.",
        },
        problems: i.check_problems.clone(),
        checked_at: fmt_time_or(i.checked_at, "never"),
        webhook_url: webhook_url(st, &i),
        webhook_secret_set: i.webhook_secret_set,
    });
    let page = InstancePage {
        l: layout(st, ctx, "Instance").await?,
        org_id: org.0,
        org_name: o.name,
        is_instance: o.kind == OrgKind::Instance,
        inst,
        notice,
        new_webhook_secret,
        scopes: guildhall_mastodon::GUILDHALL_SCOPES.join(" "),
    };
    let html = page
        .render()
        .map_err(|e| AppError::Internal(format!("template: {e}")))?;
    Ok((status, Html(html)).into_response())
}

/// `GET /orgs/{org}/instance`.
pub(crate) async fn page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    render_page(&st, &ctx, StatusCode::OK, None, None).await
}

/// `POST /orgs/{org}/instance/oauth` (field `base_url`): registers the app and sends the
/// admin's browser to the instance's authorisation page.
pub(crate) async fn start_oauth(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let base_url = f.required("base_url")?;
    let org = instance_org(&st, &ctx).await?;
    let session = ctx.who()?.session().ok_or(AppError::Forbidden)?.id;
    let keys = keyring(&st)?;
    let anon = client(&st, base_url, None)?;
    let redirect = format!("{}/orgs/{}/instance/callback", st.config.base_url, org.0);
    let app = anon
        .register_app(
            "Guildhall",
            std::slice::from_ref(&redirect),
            Some(&st.config.base_url),
            None,
        )
        .await
        .map_err(|e| mastodon_err("base_url", e))?;
    let state = guildhall_mastodon::random_token()
        .map_err(|e| AppError::Internal(format!("randomness: {e}")))?;
    let pkce = Pkce::generate().map_err(|e| AppError::Internal(format!("randomness: {e}")))?;
    let sealed = json!({
        "client_secret": app.client_secret.expose(),
        "verifier": pkce.verifier.expose(),
    });
    st.db
        .put_oauth_pending(
            &keys,
            &state,
            org,
            session,
            anon.base_url().as_str(),
            &app.client_id,
            &SecretValue::new(sealed.to_string().into_bytes()),
            OAUTH_TTL,
        )
        .await?;
    let url = anon
        .authorize_url(&app, &redirect, &state, Some(&pkce), None)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Redirect::to(url.as_str()).into_response())
}

/// `GET /orgs/{org}/instance/callback?code=…&state=…`: the instance sends the admin back.
pub(crate) async fn callback(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let q = Fields::from_form(q.unwrap_or_default().as_bytes())?;
    if let Some(err) = q.get("error") {
        let why = q.get("error_description").unwrap_or(err).to_owned();
        return render_page(
            &st,
            &ctx,
            StatusCode::BAD_REQUEST,
            Some(format!("The instance did not authorise Guildhall: {why}")),
            None,
        )
        .await;
    }
    let state = q.required("state")?;
    let code = q.required("code")?;
    let org = instance_org(&st, &ctx).await?;
    let keys = keyring(&st)?;
    let session = ctx.who()?.session().ok_or(AppError::Forbidden)?.id;
    let pending = st
        .db
        .take_oauth_pending(&keys, state)
        .await?
        .filter(|p| p.org_id == org && p.session_id == session)
        .ok_or_else(|| {
            AppError::invalid(
                "state",
                "this authorisation is unknown, expired or was started elsewhere; start again",
            )
        })?;
    let sealed: Value = pending
        .sealed
        .expose_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| AppError::Internal("unreadable pending authorisation".to_owned()))?;
    let field = |k: &str| sealed[k].as_str().unwrap_or_default().to_owned();
    let app = RegisteredApp {
        id: None,
        name: String::new(),
        client_id: pending.client_id.clone(),
        client_secret: Secret::new(field("client_secret")),
        redirect_uris: Vec::new(),
        redirect_uri: None,
        scopes: None,
    };
    let pkce = Pkce::from_verifier(&field("verifier"));
    let redirect = format!("{}/orgs/{}/instance/callback", st.config.base_url, org.0);
    let anon = client(&st, &pending.base_url, None)?;
    let grant = anon
        .exchange_code(&app, code, &redirect, Some(&pkce))
        .await
        .map_err(|e| mastodon_err("code", e))?;
    let scopes = grant.scopes().join(" ");
    let inst = connect(
        &st,
        &ctx,
        org,
        NewConnection {
            base_url: pending.base_url.clone(),
            method: ConnectMethod::Oauth,
            client: Some((
                app.client_id.clone(),
                SecretValue::new(app.client_secret.expose().as_bytes().to_vec()),
            )),
            token: SecretValue::new(grant.access_token.expose().as_bytes().to_vec()),
            scopes: Some(scopes),
        },
    )
    .await?;
    let notice = connected_notice(&inst);
    render_page(&st, &ctx, StatusCode::OK, Some(notice), None).await
}

fn connected_notice(inst: &Instance) -> String {
    if inst.check_ok == Some(true) && inst.check_problems.is_empty() {
        "Connected. Guildhall has everything it needs.".to_owned()
    } else {
        "Connected, but something is missing (see below).".to_owned()
    }
}

/// `POST /orgs/{org}/instance/token` (fields `base_url`, `token`).
pub(crate) async fn paste_token(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let inst = connect_token(&st, &ctx, &f).await?;
    render_page(
        &st,
        &ctx,
        StatusCode::OK,
        Some(connected_notice(&inst)),
        None,
    )
    .await
}

/// `POST /orgs/{org}/instance/check`.
pub(crate) async fn recheck(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let inst = recheck_inner(&st, &ctx).await?;
    let notice = format!("Checked at {}.", fmt_time_or(inst.checked_at, "never"));
    render_page(&st, &ctx, StatusCode::OK, Some(notice), None).await
}

async fn recheck_inner(st: &AppState, ctx: &Ctx) -> Result<Instance, AppError> {
    let org = ctx.org_id()?;
    let inst = connected_instance(st, org).await?;
    check(st, ctx, org, &inst).await
}

/// `POST /orgs/{org}/instance/disconnect`.
pub(crate) async fn disconnect_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let msg = disconnect(&st, &ctx, ctx.org_id()?).await?;
    render_page(&st, &ctx, StatusCode::OK, Some(msg), None).await
}

/// `POST /orgs/{org}/instance/webhook-secret`.
pub(crate) async fn webhook_secret_page(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (_, secret) = rotate_webhook_secret(&st, &ctx, ctx.org_id()?).await?;
    render_page(&st, &ctx, StatusCode::OK, None, Some(secret)).await
}

// ---------------------------------------------------------------------------------------------
// JSON API

/// `GET /api/v1/orgs/{org}/instance`.
pub(crate) async fn api_get(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let inst = st.db.instance_of_org(ctx.org_id()?).await?;
    let v = inst.map(|i| instance_json(&st, &i));
    Ok(Json(json!({ "instance": v })).into_response())
}

/// `PUT /api/v1/orgs/{org}/instance` (fields `base_url`, `token`): connect with a pasted token.
pub(crate) async fn api_connect(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let inst = connect_token(&st, &ctx, &f).await?;
    Ok(Json(json!({ "instance": instance_json(&st, &inst) })).into_response())
}

/// `POST /api/v1/orgs/{org}/instance/check`.
pub(crate) async fn api_check(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let inst = recheck_inner(&st, &ctx).await?;
    Ok(Json(json!({ "instance": instance_json(&st, &inst) })).into_response())
}

/// `DELETE /api/v1/orgs/{org}/instance`.
pub(crate) async fn api_disconnect(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let msg = disconnect(&st, &ctx, ctx.org_id()?).await?;
    Ok(Json(json!({ "message": msg })).into_response())
}

/// `POST /api/v1/orgs/{org}/instance/webhook-secret`: the secret is in this answer only.
pub(crate) async fn api_webhook_secret(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (inst, secret) = rotate_webhook_secret(&st, &ctx, ctx.org_id()?).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "webhook_url": webhook_url(&st, &inst), "secret": secret })),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Webhooks

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// `POST /webhooks/mastodon/{id}`: verifies `X-Hub-Signature` over the raw body with the
/// instance's webhook secret; records a valid delivery (and enqueues its job) before answering
/// 200. Unsigned deliveries get 401, badly signed ones 403, and nothing is stored. A delivery
/// seen before (same body, or same event, object and time) is acknowledged without a new row.
pub(crate) async fn webhook(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match webhook_inner(&st, &ctx, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn webhook_inner(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, AppError> {
    let id = ctx.id("id")?;
    let inst = st.db.instance(id).await?.ok_or(AppError::NotFound)?;
    // A disconnected instance's deliveries could not be acted on: refused until reconnected
    // (its secret is kept, so reconnecting does not change the webhook's settings).
    if !inst.webhook_secret_set || !inst.connected {
        return Err(AppError::NotFound);
    }
    let keys = st.instances.keyring.clone().ok_or(AppError::Unavailable)?;
    let secret = st
        .db
        .get_secret(&keys, &guildhall_db::instances::webhook_secret_name(id))
        .await?
        .ok_or(AppError::NotFound)?;
    let header = headers
        .get("x-hub-signature")
        .map(|v| v.to_str().unwrap_or(""));
    match verify_signature(secret.expose(), body, header) {
        Ok(()) => {}
        Err(SignatureError::Missing) => {
            return Ok(plain(
                StatusCode::UNAUTHORIZED,
                "missing X-Hub-Signature header\n",
            ))
        }
        Err(SignatureError::Malformed | SignatureError::Mismatch) => {
            return Ok(plain(
                StatusCode::FORBIDDEN,
                "X-Hub-Signature does not match\n",
            ))
        }
    }
    // Signed: keep it even when it is not the default payload (an admin's payload template).
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let event = v["event"].as_str().unwrap_or("unknown").to_owned();
    let object_id = match &v["object"]["id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let event_key = match (object_id, v["created_at"].as_str()) {
        (Some(oid), Some(at)) => Some(format!("{event}|{oid}|{at}")),
        _ => None,
    };
    st.db
        .record_webhook_delivery(id, &event, event_key.as_deref(), body)
        .await?;
    Ok(plain(StatusCode::OK, "ok\n"))
}
