//! The HTML pages (server-rendered with askama; templates in `crates/web/templates`, checked
//! at compile time), the probes and the static files.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use guildhall_core::{Email, OrgId, Permission, Role, Timestamp};
use guildhall_db::SecretToken;
use serde::Deserialize;

use crate::auth::{set_cookie, Ctx, Principal, SESSION_COOKIE};
use crate::error::{AppError, ErrorBody};
use crate::input::Input;
use crate::AppState;
use crate::{ops, store};

/// What the layout shows around every page.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The page title.
    pub title: String,
    /// The CSRF token for the page's forms.
    pub csrf: String,
    /// The signed-in person, if any.
    pub user: Option<UserNav>,
}

/// The signed-in person, for the navigation and the organisation switcher.
#[derive(Debug, Clone)]
pub struct UserNav {
    /// Display name.
    pub name: String,
    /// Whether they run this Guildhall.
    pub site_admin: bool,
    /// Their organisations.
    pub orgs: Vec<OrgNav>,
    /// The current organisation.
    pub current: Option<OrgNav>,
}

/// One organisation in the switcher.
#[derive(Debug, Clone)]
pub struct OrgNav {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The person's role.
    pub role: String,
    /// Whether it is the current one.
    pub current: bool,
    /// Whether the person may manage it (invitations, audit log).
    pub manage: bool,
}

/// The page layout: title, CSRF token, and the signed-in person's navigation (their
/// organisations, the current one marked).
pub(crate) async fn layout(st: &AppState, ctx: &Ctx, title: &str) -> Result<Layout, AppError> {
    let user = match &ctx.principal {
        None => None,
        Some(p) => {
            let current_id = ctx
                .org
                .map(|(o, _)| o)
                .or_else(|| p.session().and_then(|s| s.current_org));
            let orgs: Vec<OrgNav> = st
                .db
                .organisations_of(p.account.id)
                .await?
                .into_iter()
                .map(|(o, role)| OrgNav {
                    id: o.id.0,
                    name: o.name,
                    role: role.to_string(),
                    current: Some(o.id) == current_id,
                    manage: role.allows(Permission::ManageInvitations),
                })
                .collect();
            let current = orgs.iter().find(|o| o.current).cloned();
            Some(UserNav {
                name: p.account.display_name.clone(),
                site_admin: p.account.site_admin,
                orgs,
                current,
            })
        }
    };
    Ok(Layout {
        title: title.to_owned(),
        csrf: ctx.csrf.clone(),
        user,
    })
}

/// Renders a template as an HTML response.
pub(crate) fn render<T: Template>(t: &T) -> Result<Response, AppError> {
    t.render()
        .map(|html| Html(html).into_response())
        .map_err(|e| AppError::Internal(format!("template: {e}")))
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Percent-encodes a string for a query parameter.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A time for people: `2026-11-26T14:05:09.123Z` → `2026-11-26 14:05 UTC`.
pub(crate) fn fmt_time(t: Timestamp) -> String {
    let s = t.to_string();
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(h)) => format!("{d} {h} UTC"),
        _ => s,
    }
}

/// [`fmt_time`], or `none` when there is no time.
pub(crate) fn fmt_time_or(t: Option<Timestamp>, none: &str) -> String {
    t.map(fmt_time).unwrap_or_else(|| none.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    heading: String,
    message: String,
    field: Option<String>,
    code: String,
}

/// The HTML error page for a status and error body.
pub(crate) fn error_page(status: StatusCode, body: &ErrorBody) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found".to_owned(),
        StatusCode::FORBIDDEN => "Not allowed".to_owned(),
        StatusCode::BAD_REQUEST => "Please check the form".to_owned(),
        s if s.is_server_error() => "Something went wrong".to_owned(),
        s => s.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let page = ErrorPage {
        l: Layout {
            title: heading.clone(),
            ..Layout::default()
        },
        heading,
        message: body.message.clone(),
        field: body.field.clone(),
        code: body.code.clone(),
    };
    let html = page
        .render()
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".to_owned());
    (status, Html(html)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Probes and static files

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers.
pub(crate) async fn readyz(State(st): State<AppState>) -> Result<Response, AppError> {
    match st.db.ping().await {
        Ok(()) => Ok(axum::Json(serde_json::json!({"status": "ready"})).into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(AppError::Unavailable)
        }
    }
}

static HTMX_JS: &str = include_str!("../static/htmx.min.js");
static APP_CSS: &str = include_str!("../static/app.css");

/// `GET /static/htmx.min.js` (htmx 2, vendored from the npm registry; 0BSD licence).
pub(crate) async fn htmx_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX_JS,
    )
        .into_response()
}

/// `GET /static/app.css`.
pub(crate) async fn app_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        APP_CSS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Sign in and out, first-run setup

/// `GET /`: the current organisation, or the list of organisations.
pub(crate) async fn home(Extension(ctx): Extension<Ctx>) -> Result<Response, AppError> {
    let who = ctx.who()?;
    Ok(match who.session().and_then(|s| s.current_org) {
        Some(org) => see_other(&format!("/orgs/{org}")),
        None => see_other("/orgs"),
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

/// Query of the login page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
}

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let notice = match q.done.as_deref() {
        Some("setup") => Some("The first owner was created. Sign in now.".to_owned()),
        Some("joined") => Some("Your account was created and you joined. Sign in now.".to_owned()),
        Some("logout") => Some("You are signed out.".to_owned()),
        _ => None,
    };
    render(&LoginPage {
        l: layout(&st, &ctx, "Sign in").await?,
        next: safe_next(q.next.as_deref()),
        email: String::new(),
        error: None,
        notice,
    })
}

/// `POST /login`: checks the e-mail and password, starts a session (cookie) and goes on to
/// `next`.
pub(crate) async fn login(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let email: Email = f.parse_required("email")?;
    let password = f.required("password")?;
    let next = safe_next(f.get("next"));
    let Some(account) = st.db.check_login(&email, password).await? else {
        let mut resp = render(&LoginPage {
            l: layout(&st, &ctx, "Sign in").await?,
            next,
            email: email.to_string(),
            error: Some(AppError::BadCredentials.to_string()),
            notice: None,
        })?;
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(resp);
    };
    // A new session on every sign-in (no fixation); the old one, if any, ends.
    if let Some(p) = &ctx.principal {
        if let crate::auth::Via::Session { token, .. } = &p.via {
            st.db.delete_session(token).await?;
        }
    }
    let (token, _session) = st
        .db
        .create_session(account.id, st.config.session_lifetime)
        .await?;
    let mut resp = see_other(&next);
    let cookie = set_cookie(
        &st,
        SESSION_COOKIE,
        token.expose(),
        Some(st.config.session_lifetime.as_secs()),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `POST /logout`: ends the session and clears the cookie.
pub(crate) async fn logout(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    if let Some(Principal {
        via: crate::auth::Via::Session { token, .. },
        ..
    }) = &ctx.principal
    {
        st.db.delete_session(token).await?;
    }
    let mut resp = see_other("/login?done=logout");
    let cookie = set_cookie(&st, SESSION_COOKIE, "", Some(0));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    l: Layout,
}

/// `GET /setup` (local machine only, while no account exists).
pub(crate) async fn setup_form(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    render(&SetupPage {
        l: layout(&st, &ctx, "Set up").await?,
    })
}

/// `POST /setup`: creates the first owner (a site administrator).
pub(crate) async fn setup(
    State(st): State<AppState>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let new = ops::new_account(&f, true)?;
    // The guard checked that no account exists; a concurrent setup loses on the unique
    // e-mail or finds an account here.
    if st.db.any_account_exists().await? {
        return Err(AppError::NotFound);
    }
    ops::create_account(&st, &new, "account.create_owner").await?;
    Ok(see_other("/login?done=setup"))
}

// ---------------------------------------------------------------------------------------------
// Organisations and members

struct OrgRow {
    id: i64,
    name: String,
    kind: String,
    domain: String,
    role: String,
}

#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    l: Layout,
    orgs: Vec<OrgRow>,
    can_create: bool,
}

/// `GET /orgs`.
pub(crate) async fn orgs(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let orgs = st
        .db
        .organisations_of(who.account.id)
        .await?
        .into_iter()
        .map(|(o, r)| OrgRow {
            id: o.id.0,
            name: o.name,
            kind: o.kind.to_string(),
            domain: o.domain.map(|d| d.to_string()).unwrap_or_default(),
            role: r.to_string(),
        })
        .collect();
    render(&OrgsPage {
        l: layout(&st, &ctx, "Organisations").await?,
        orgs,
        can_create: who.account.site_admin,
    })
}

/// `POST /orgs`: creates an organisation and makes it the current one.
pub(crate) async fn create_org(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let org = ops::create_org(&st, who, &f).await?;
    if let Some(s) = who.session() {
        st.db.set_session_org(s.id, Some(org.id)).await?;
    }
    Ok(see_other(&format!("/orgs/{}", org.id)))
}

/// `POST /switch`: chooses the current organisation (field `org`).
pub(crate) async fn switch_org(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let org: OrgId = f.parse_required("org")?;
    if st.db.role_of(who.account.id, org).await?.is_none() {
        return Err(AppError::NotFound);
    }
    if let Some(s) = who.session() {
        st.db.set_session_org(s.id, Some(org)).await?;
    }
    Ok(see_other(&format!("/orgs/{org}")))
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    l: Layout,
    org: guildhall_db::orgs::Organisation,
    my_role: Role,
    members: Vec<guildhall_db::orgs::Member>,
    manage: bool,
    grantable: Vec<&'static str>,
}

impl OrgPage {
    fn same(&self, name: &str, role: &Role) -> bool {
        name == role.as_str()
    }
}

/// `GET /orgs/{org}`: the organisation and its members.
pub(crate) async fn org(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let (id, my_role) = ctx.org.ok_or(AppError::NotFound)?;
    let org = st.db.organisation(id).await?.ok_or(AppError::NotFound)?;
    let members = st.db.members(id).await?;
    render(&OrgPage {
        l: layout(&st, &ctx, &org.name).await?,
        manage: my_role.allows(Permission::ManageMembers),
        grantable: ops::grantable(my_role).iter().map(|r| r.as_str()).collect(),
        org,
        my_role,
        members,
    })
}

/// `POST /orgs/{org}/members/{account}/role`.
pub(crate) async fn set_role(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    ops::set_role(&st, &ctx, &f).await?;
    Ok(see_other(&format!("/orgs/{}", ctx.org_id()?)))
}

/// `POST /orgs/{org}/members/{account}/remove` (htmx: answers an empty row).
pub(crate) async fn remove_member(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    ops::remove_member(&st, &ctx).await?;
    if is_htmx(&headers) {
        return Ok(Html("").into_response());
    }
    Ok(see_other(&format!("/orgs/{}", ctx.org_id()?)))
}

// ---------------------------------------------------------------------------------------------
// Invitations

struct InvitationRow {
    id: i64,
    role: String,
    email: String,
    created: String,
    state: String,
    open: bool,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage {
    l: Layout,
    org_id: i64,
    org_name: String,
    invitations: Vec<InvitationRow>,
    grantable: Vec<(&'static str, bool)>,
    new_link: Option<String>,
}

async fn invitations_page(
    st: &AppState,
    ctx: &Ctx,
    new_link: Option<String>,
) -> Result<Response, AppError> {
    let (id, my_role) = ctx.org.ok_or(AppError::NotFound)?;
    let org = st.db.organisation(id).await?.ok_or(AppError::NotFound)?;
    let now = Timestamp::now();
    let invitations = st
        .db
        .invitations(id)
        .await?
        .into_iter()
        .map(|i| InvitationRow {
            id: i.id.0,
            role: i.role.to_string(),
            email: i.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            created: fmt_time(i.created_at),
            state: if i.accepted_at.is_some() {
                "accepted".to_owned()
            } else if i.revoked_at.is_some() {
                "revoked".to_owned()
            } else if i.expires_at <= now {
                "expired".to_owned()
            } else {
                format!("open until {}", fmt_time(i.expires_at))
            },
            open: i.is_open(now),
        })
        .collect();
    render(&InvitationsPage {
        l: layout(st, ctx, "Invitations").await?,
        org_id: id.0,
        org_name: org.name,
        invitations,
        grantable: ops::grantable(my_role)
            .iter()
            .map(|r| (r.as_str(), *r == Role::Member))
            .collect(),
        new_link,
    })
}

/// `GET /orgs/{org}/invitations`.
pub(crate) async fn invitations(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    invitations_page(&st, &ctx, None).await
}

/// `POST /orgs/{org}/invitations`: creates one and shows its link once.
pub(crate) async fn create_invitation(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let (link, _inv) = ops::create_invitation(&st, &ctx, &f).await?;
    invitations_page(&st, &ctx, Some(link)).await
}

/// `POST /orgs/{org}/invitations/{id}/revoke`.
pub(crate) async fn revoke_invitation(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    ops::revoke_invitation(&st, &ctx).await?;
    Ok(see_other(&format!("/orgs/{}/invitations", ctx.org_id()?)))
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    l: Layout,
    token: String,
    org_name: String,
    role: String,
    email: String,
    signed_in: bool,
}

/// The open invitation behind a link, or the reason it cannot be used.
async fn open_invitation(
    st: &AppState,
    token: &SecretToken,
) -> Result<guildhall_db::invitations::Invitation, AppError> {
    let inv = st
        .db
        .invitation_by_token(token)
        .await?
        .ok_or(AppError::NotFound)?;
    if inv.accepted_at.is_some() {
        return Err(AppError::Gone(
            "this invitation has already been used".into(),
        ));
    }
    if inv.revoked_at.is_some() {
        return Err(AppError::Gone("this invitation was revoked".into()));
    }
    if inv.expires_at <= Timestamp::now() {
        return Err(AppError::Gone("this invitation has expired".into()));
    }
    Ok(inv)
}

/// `GET /invite/{token}`.
pub(crate) async fn invitation_form(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let raw = ctx.param("token")?.to_owned();
    let inv = open_invitation(&st, &SecretToken::from_client(&raw)).await?;
    let org = st
        .db
        .organisation(inv.org_id)
        .await?
        .ok_or(AppError::NotFound)?;
    render(&InvitePage {
        l: layout(&st, &ctx, "Invitation").await?,
        token: raw,
        org_name: org.name,
        role: inv.role.to_string(),
        email: inv.email.map(|e| e.to_string()).unwrap_or_default(),
        signed_in: ctx.principal.is_some(),
    })
}

/// `POST /invite/{token}`: joins as the signed-in person, or creates the account (fields
/// `email`, `display_name`, `password`) and joins; then the new person signs in.
pub(crate) async fn accept_invitation(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let token = SecretToken::from_client(ctx.param("token")?);
    if let Some(p) = &ctx.principal {
        let inv = ops::accept_invitation(&st, &p.account, &token).await?;
        if let Some(s) = p.session() {
            st.db.set_session_org(s.id, Some(inv.org_id)).await?;
        }
        return Ok(see_other(&format!("/orgs/{}", inv.org_id)));
    }
    let new = ops::new_account(&f, false)?;
    open_invitation(&st, &token).await?;
    let account = ops::create_account(&st, &new, "account.create_invited").await?;
    ops::accept_invitation(&st, &account, &token).await?;
    Ok(see_other("/login?done=joined"))
}

// ---------------------------------------------------------------------------------------------
// API tokens

struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    created: String,
    last_used: String,
    state: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    l: Layout,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
}

async fn tokens_page(
    st: &AppState,
    ctx: &Ctx,
    new_token: Option<String>,
) -> Result<Response, AppError> {
    let who = ctx.who()?;
    let now = Timestamp::now();
    let tokens = st
        .db
        .api_tokens(who.account.id)
        .await?
        .into_iter()
        .map(|t| {
            let expired = t.expires_at.is_some_and(|e| e <= now);
            TokenRow {
                id: t.id.0,
                name: t.name,
                scopes: guildhall_core::Scope::format_list(&t.scopes),
                created: fmt_time(t.created_at),
                last_used: fmt_time_or(t.last_used_at, "—"),
                state: if t.revoked_at.is_some() {
                    "revoked".to_owned()
                } else if expired {
                    "expired".to_owned()
                } else {
                    "active".to_owned()
                },
                live: t.revoked_at.is_none() && !expired,
            }
        })
        .collect();
    render(&TokensPage {
        l: layout(st, ctx, "API tokens").await?,
        tokens,
        new_token,
    })
}

/// `GET /tokens`.
pub(crate) async fn tokens(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    tokens_page(&st, &ctx, None).await
}

/// `POST /tokens`: creates a token and shows it once.
pub(crate) async fn create_token(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Input(f): Input,
) -> Result<Response, AppError> {
    let (token, _) = ops::create_token(&st, ctx.who()?, &f).await?;
    tokens_page(&st, &ctx, Some(token.expose().to_owned())).await
}

/// `POST /tokens/{id}/revoke`.
pub(crate) async fn revoke_token(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    ops::revoke_token(&st, &ctx).await?;
    Ok(see_other("/tokens"))
}

// ---------------------------------------------------------------------------------------------
// Audit log and jobs

struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    org: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    heading: String,
    chain_ok: bool,
    chain_state: String,
    entries: Vec<AuditRow>,
}

/// How many entries an audit page shows.
const AUDIT_PAGE: u32 = 200;

async fn audit_page(
    st: &AppState,
    ctx: &Ctx,
    org: Option<OrgId>,
    heading: String,
) -> Result<Response, AppError> {
    let entries = store::audit_entries(st, org, AUDIT_PAGE)
        .await?
        .into_iter()
        .map(|e| AuditRow {
            seq: e.seq,
            at: fmt_time(e.at),
            actor: e.actor,
            action: e.action,
            org: e.org_id.map(|o| o.to_string()).unwrap_or_default(),
            before: e.before.map(|v| v.to_string()).unwrap_or_default(),
            after: e.after.map(|v| v.to_string()).unwrap_or_default(),
        })
        .collect();
    let (chain_ok, chain_state) = chain_state(st).await?;
    render(&AuditPage {
        l: layout(st, ctx, "Audit log").await?,
        heading,
        chain_ok,
        chain_state,
        entries,
    })
}

/// Verifies the hash chain: (intact?, a sentence saying so).
pub(crate) async fn chain_state(st: &AppState) -> Result<(bool, String), AppError> {
    Ok(match store::verify_audit(st).await? {
        Ok(n) => (
            true,
            format!("The hash chain is intact ({n} entries checked)."),
        ),
        Err(broken) => (false, format!("The hash chain is BROKEN: {broken}")),
    })
}

/// `GET /orgs/{org}/audit`.
pub(crate) async fn org_audit(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let id = ctx.org_id()?;
    let org = st.db.organisation(id).await?.ok_or(AppError::NotFound)?;
    audit_page(&st, &ctx, Some(id), format!("Audit log of {}", org.name)).await
}

/// `GET /admin/audit`.
pub(crate) async fn admin_audit(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    audit_page(&st, &ctx, None, "The whole audit log".to_owned()).await
}

/// A job as shown in the failed-jobs table.
pub(crate) struct JobLine {
    id: i64,
    kind: String,
    attempts: i64,
    last_error: String,
    updated: String,
    state: String,
    dead: bool,
}

impl JobLine {
    fn of(j: &store::JobView) -> JobLine {
        JobLine {
            id: j.id.0,
            kind: j.kind.clone(),
            attempts: j.attempts,
            last_error: j.last_error.clone().unwrap_or_default(),
            updated: fmt_time(j.updated_at),
            state: j.state.as_str().to_owned(),
            dead: j.state == store::JobStateView::Dead,
        }
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    l: Layout,
    csrf: String,
    jobs: Vec<JobLine>,
}

#[derive(Template)]
#[template(path = "job_row.html")]
struct JobRow {
    csrf: String,
    j: JobLine,
}

/// How many dead jobs the page lists.
const JOBS_PAGE: u32 = 200;

/// `GET /admin/jobs`: dead jobs.
pub(crate) async fn admin_jobs(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let jobs = store::jobs_in_state(&st, store::JobStateView::Dead, JOBS_PAGE).await?;
    render(&JobsPage {
        l: layout(&st, &ctx, "Failed jobs").await?,
        csrf: ctx.csrf.clone(),
        jobs: jobs.iter().map(JobLine::of).collect(),
    })
}

/// `POST /admin/jobs/{id}/retry` (htmx: answers the updated row).
pub(crate) async fn retry_job(
    State(st): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    ops::retry_job(&st, &ctx).await?;
    if is_htmx(&headers) {
        let id = guildhall_core::JobId(ctx.id("id")?);
        let job = store::job(&st, id).await?.ok_or(AppError::NotFound)?;
        return render(&JobRow {
            csrf: ctx.csrf.clone(),
            j: JobLine::of(&job),
        });
    }
    Ok(see_other("/admin/jobs"))
}
