//! Who is calling, and whether they may: the ONE check every route goes through.
//!
//! [`guard`] runs in front of every route of the [route table](crate::routes::ROUTES): it
//! authenticates the caller (session cookie for pages, `Authorization: Bearer` API token for
//! `/api/v1`), applies the route's [`Access`] (for organisation routes: the caller's role in the
//! organisation named by the `{org}` path segment, through [`Role::allows`], and the token's
//! scope), checks the CSRF token of every state-changing page request, and hands the handler a
//! [`Ctx`].
//!
//! A person who is not a member of an organisation gets `404 not_found` for it — the same answer
//! as for an organisation that does not exist — so nothing is learnt about other organisations.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use guildhall_core::{scopes_allow, OrgId, Permission, Role, Scope};
use guildhall_db::accounts::Account;
use guildhall_db::sessions::Session;
use guildhall_db::SecretToken;

use crate::error::AppError;
use crate::input::{read_body, Fields};
use crate::routes::{RouteSpec, Surface};
use crate::AppState;

/// The session cookie's name (its value is an opaque random token).
pub const SESSION_COOKIE: &str = "gh_session";
/// The cookie that carries the CSRF token of people who are not signed in (login, setup and
/// invitation forms): a double-submit token, compared with the form's `csrf_token`.
pub const ANON_CSRF_COOKIE: &str = "gh_csrf";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The request header that may carry the CSRF token instead (htmx requests).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Only from the local machine (loopback peer address), and only while no account exists.
    Setup,
    /// Any signed-in person; an API token needs this scope.
    Account(Scope),
    /// Site administrators only (the people who run this Guildhall); a token needs this scope.
    Site(Scope),
    /// Members of the organisation in the `{org}` path segment whose role allows this
    /// permission ([`Role::allows`]); a token needs [`Permission::scope`].
    Org(Permission),
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    /// A browser session (cookie).
    Session {
        /// The session row.
        session: Session,
        /// The cookie's token (to end the session at logout).
        token: SecretToken,
    },
    /// An API token with these scopes.
    Token(Vec<Scope>),
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Their account.
    pub account: Account,
    /// How they signed in.
    pub via: Via,
}

impl Principal {
    /// The session, when signed in through the browser.
    pub fn session(&self) -> Option<&Session> {
        match &self.via {
            Via::Session { session, .. } => Some(session),
            Via::Token(_) => None,
        }
    }

    /// The token's scopes (all scopes for a browser session).
    pub fn scopes(&self) -> Vec<Scope> {
        match &self.via {
            Via::Session { .. } => Scope::ALL.to_vec(),
            Via::Token(s) => s.clone(),
        }
    }
}

/// What the guard learnt about a request, for its handler (request extension).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller, when signed in.
    pub principal: Option<Principal>,
    /// For organisation routes: the organisation and the caller's role in it.
    pub org: Option<(OrgId, Role)>,
    /// The CSRF token to put into this page's forms.
    pub csrf: String,
    /// The path parameters of the route.
    pub params: HashMap<String, String>,
}

impl Ctx {
    /// The caller (the guard has already refused anonymous callers on non-public routes).
    pub fn who(&self) -> Result<&Principal, AppError> {
        self.principal.as_ref().ok_or(AppError::Unauthenticated)
    }

    /// The organisation of an organisation route.
    pub fn org_id(&self) -> Result<OrgId, AppError> {
        self.org.map(|(o, _)| o).ok_or(AppError::NotFound)
    }

    /// A numeric path parameter; anything else is `404` (as an unknown id would be).
    pub fn id(&self, name: &str) -> Result<i64, AppError> {
        self.params
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or(AppError::NotFound)
    }

    /// A text path parameter.
    pub fn param(&self, name: &str) -> Result<&str, AppError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or(AppError::NotFound)
    }
}

/// The request body as parsed by the guard (request extension, read by
/// [`Input`](crate::input::Input)).
#[derive(Debug, Clone)]
pub struct ParsedBody(pub Fields);

/// The state of the guard of one route.
#[derive(Clone)]
pub(crate) struct GuardState {
    pub app: AppState,
    pub spec: &'static RouteSpec,
}

/// Reads one cookie from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when configured.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if state.config.secure_cookies {
        c.push_str("; Secure");
    }
    c
}

/// A random token (256 bits, hex).
pub(crate) fn random_token() -> String {
    use rand::RngCore;
    let mut buf = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two strings in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a token with `scopes` may use a route that needs `need` (write includes read; admin
/// includes both).
pub fn scope_covers(scopes: &[Scope], need: Scope) -> bool {
    scopes.iter().any(|s| match need {
        Scope::Read => true,
        Scope::Write => matches!(s, Scope::Write | Scope::Admin),
        Scope::Admin => *s == Scope::Admin,
    })
}

/// Authenticates the caller of a request on `surface`.
async fn authenticate(
    app: &AppState,
    surface: Surface,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    let (account_id, via) = match surface {
        Surface::Plain => return Ok(None),
        Surface::Api => {
            let Some(auth) = headers.get(header::AUTHORIZATION) else {
                return Ok(None);
            };
            let auth = auth.to_str().map_err(|_| AppError::Unauthenticated)?;
            let token = auth
                .strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
                .ok_or(AppError::Unauthenticated)?;
            let tok = app
                .db
                .authenticate_api_token(&SecretToken::from_client(token))
                .await?
                .ok_or(AppError::Unauthenticated)?;
            (tok.account_id, Via::Token(tok.scopes))
        }
        Surface::Page => {
            let Some(raw) = cookie(headers, SESSION_COOKIE) else {
                return Ok(None);
            };
            let token = SecretToken::from_client(raw);
            let Some(session) = app.db.session(&token).await? else {
                return Ok(None);
            };
            (session.account_id, Via::Session { session, token })
        }
    };
    let Some(account) = app.db.account(account_id).await? else {
        return Ok(None);
    };
    Ok(Some(Principal { account, via }))
}

/// Applies a route's access rule. Returns the organisation and role for organisation routes.
pub(crate) async fn authorize(
    app: &AppState,
    access: Access,
    principal: Option<&Principal>,
    params: &HashMap<String, String>,
    peer: Option<SocketAddr>,
) -> Result<Option<(OrgId, Role)>, AppError> {
    match access {
        Access::Public => Ok(None),
        Access::Setup => {
            let local = peer.is_some_and(|p| p.ip().is_loopback());
            if !local || app.db.any_account_exists().await? {
                return Err(AppError::NotFound);
            }
            Ok(None)
        }
        Access::Account(scope) => {
            let p = principal.ok_or(AppError::Unauthenticated)?;
            if !scope_covers(&p.scopes(), scope) {
                return Err(AppError::Forbidden);
            }
            Ok(None)
        }
        Access::Site(scope) => {
            let p = principal.ok_or(AppError::Unauthenticated)?;
            if !p.account.site_admin || !scope_covers(&p.scopes(), scope) {
                return Err(AppError::Forbidden);
            }
            Ok(None)
        }
        Access::Org(permission) => {
            let p = principal.ok_or(AppError::Unauthenticated)?;
            let org: OrgId = params
                .get("org")
                .and_then(|v| v.parse().ok())
                .ok_or(AppError::NotFound)?;
            // Not a member (or no such organisation): the same 404 either way.
            let role = app
                .db
                .role_of(p.account.id, org)
                .await?
                .ok_or(AppError::NotFound)?;
            if !role.allows(permission) || !scopes_allow(&p.scopes(), permission) {
                return Err(AppError::Forbidden);
            }
            Ok(Some((org, role)))
        }
    }
}

/// The guard in front of every route (see the module docs).
pub(crate) async fn guard(State(g): State<GuardState>, req: Request, next: Next) -> Response {
    match guard_inner(&g, req).await {
        Ok((req, new_cookie)) => {
            let mut resp = next.run(req).await;
            if let Some(c) = new_cookie {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn guard_inner(g: &GuardState, req: Request) -> Result<(Request, Option<String>), AppError> {
    let (mut parts, body) = req.into_parts();
    let params: HashMap<String, String> = {
        use axum::extract::FromRequestParts;
        match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(raw) => raw
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(_) => HashMap::new(),
        }
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let principal = authenticate(&g.app, g.spec.surface, &parts.headers).await?;
    let org = authorize(&g.app, g.spec.access, principal.as_ref(), &params, peer).await?;

    // Every body is read (up to the route's limit: 413 beyond) and parsed (400 naming the field
    // when malformed) here, before any handler runs; handlers get the parsed fields.
    let bytes = read_body(body, g.spec.body_limit(&g.app.config)).await?;
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // A webhook's JSON body is read raw by its handler (the signature covers the exact bytes).
    let raw_json = g.spec.id == crate::routes::RouteId::MastodonWebhook
        && ct.is_some_and(|c| c.trim_start().starts_with("application/json"));
    let fields = if raw_json {
        Fields::empty()
    } else if g.spec.body == crate::routes::BodySize::Upload && crate::input::is_multipart(ct) {
        // A form with a file (upload routes): read within the same limit, same CSRF check.
        crate::input::parse_multipart(ct.unwrap_or_default(), bytes.clone()).await?
    } else {
        Fields::parse(ct, &bytes)?
    };

    // CSRF: pages only (the JSON API authenticates by bearer token, which a browser never
    // sends on its own).
    let mut new_cookie = None;
    let csrf = if g.spec.surface == Surface::Page {
        let expected = match principal.as_ref().and_then(|p| p.session()) {
            Some(s) => Some(s.csrf_secret.clone()),
            None => cookie(&parts.headers, ANON_CSRF_COOKIE).map(str::to_owned),
        };
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .or_else(|| fields.get(CSRF_FIELD));
            match (expected.as_deref(), given) {
                (Some(e), Some(g)) if same(e, g) => {}
                _ => return Err(AppError::Csrf),
            }
        }
        match expected {
            Some(e) => e,
            None => {
                let t = random_token();
                new_cookie = Some(set_cookie(&g.app, ANON_CSRF_COOKIE, &t, None));
                t
            }
        }
    } else {
        String::new()
    };
    parts.extensions.insert(ParsedBody(fields));
    let body = Body::from(bytes);
    parts.extensions.insert(Ctx {
        principal,
        org,
        csrf,
        params,
    });
    Ok((Request::from_parts(parts, body), new_cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gh_session=xyz ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn scopes_cover() {
        assert!(scope_covers(&[Scope::Read], Scope::Read));
        assert!(!scope_covers(&[Scope::Read], Scope::Write));
        assert!(scope_covers(&[Scope::Admin], Scope::Write));
        assert!(!scope_covers(&[Scope::Write], Scope::Admin));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
