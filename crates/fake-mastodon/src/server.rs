//! Routes, middleware and handlers.

// Handlers return `Result<_, Response>` so an early error answer is a plain `?`-style return;
// the size of `Response` does not matter for a test server.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::seed::{Flavor, PublicBlocksMode, WebhookFault};
use crate::state::{
    format_us, hex, normalize_domain, now_string, obfuscate_domain, sha256_hex, Allow, App,
    AuthCode, Block, Delivery, RequestRecord, State, Token, Window,
};
use crate::state::{ActionRecord, BlockWrite};

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const ADMIN: u64 = 0x1;
const VIEW_DASHBOARD: u64 = 0x8;
const MANAGE_REPORTS: u64 = 0x10;
const MANAGE_FEDERATION: u64 = 0x20;
const MANAGE_USERS: u64 = 0x400;

/// Every scope the fake knows (for app registration).
const KNOWN_SCOPES: &[&str] = &[
    "read",
    "write",
    "follow",
    "push",
    "profile",
    "read:accounts",
    "write:reports",
    "admin:read",
    "admin:write",
    "admin:read:accounts",
    "admin:read:reports",
    "admin:read:domain_allows",
    "admin:read:domain_blocks",
    "admin:read:ip_blocks",
    "admin:read:email_domain_blocks",
    "admin:read:canonical_email_blocks",
    "admin:write:accounts",
    "admin:write:reports",
    "admin:write:domain_allows",
    "admin:write:domain_blocks",
    "admin:write:ip_blocks",
    "admin:write:email_domain_blocks",
    "admin:write:canonical_email_blocks",
];

// ---------- responses ----------

fn json_resp(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    json_resp(StatusCode::OK, v)
}

fn err(status: u16, msg: &str) -> Response {
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({ "error": msg }),
    )
}

fn not_found(st: &State) -> Response {
    match st.flavor {
        Flavor::Mastodon => err(404, "Record not found"),
        Flavor::GoToSocial => err(404, "Not Found"),
    }
}

fn oauth_err(status: u16, error: &str, description: &str) -> Response {
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({ "error": error, "error_description": description }),
    )
}

fn html(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
}

// ---------- parameters: query + form or JSON body, flattened ----------

#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn parse(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Result<Self, Response> {
        let mut out = Vec::new();
        if let Some(q) = uri.query() {
            out.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !body.is_empty() {
            if ct.starts_with("application/json") {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| err(400, &format!("Error while parsing request: {e}")))?;
                flatten("", &v, &mut out);
            } else {
                out.extend(url::form_urlencoded::parse(body).into_owned());
            }
        }
        Ok(Self(out))
    }

    /// The first value of `k` (or `k[]`).
    fn get(&self, k: &str) -> Option<&str> {
        let arr = format!("{k}[]");
        self.0
            .iter()
            .find(|(name, _)| name == k || *name == arr)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `k` / `k[]`.
    fn all(&self, k: &str) -> Vec<&str> {
        let arr = format!("{k}[]");
        self.0
            .iter()
            .filter(|(name, _)| name == k || *name == arr)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    fn bool(&self, k: &str) -> Option<bool> {
        self.get(k)
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "on" | "t"))
    }

    fn non_empty(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.trim().is_empty())
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}[{k}]")
                };
                flatten(&key, val, out);
            }
        }
        Value::Array(items) => {
            let key = format!("{prefix}[]");
            for item in items {
                flatten(&key, item, out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Null => {}
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

// ---------- auth ----------

pub(crate) struct Caller {
    account_id: Option<u64>,
    app_id: Option<u64>,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

fn scope_covers(granted: &[String], needed: &str) -> bool {
    granted.iter().any(|g| {
        g == needed
            || (needed.starts_with(g.as_str()) && needed.as_bytes().get(g.len()) == Some(&b':'))
    })
}

fn permissions_of(st: &State, account_id: Option<u64>) -> u64 {
    account_id
        .and_then(|id| st.accounts.get(&id))
        .and_then(|a| a.role.as_ref())
        .map_or(0, |(_, p)| *p)
}

/// Checks the token has `scope` (or an umbrella) and its user any of `perm_any` (0: none
/// needed). Errors are the exact bodies of §3.3.
fn authorize(
    st: &State,
    headers: &HeaderMap,
    scope: &str,
    perm_any: u64,
) -> Result<Caller, Response> {
    let Some(token) = bearer(headers).and_then(|t| st.tokens.get(&t).cloned()) else {
        return Err(err(401, "The access token is invalid"));
    };
    if !scope.is_empty() && !scope_covers(&token.scopes, scope) {
        return Err(match st.flavor {
            Flavor::Mastodon => err(403, "This action is outside the authorized scopes"),
            Flavor::GoToSocial => err(403, "token has insufficient scope permission"),
        });
    }
    if perm_any != 0 {
        let Some(_) = token.account_id else {
            return Err(err(422, "This method requires an authenticated user"));
        };
        let perms = permissions_of(st, token.account_id);
        if perms & ADMIN == 0 && perms & perm_any == 0 {
            return Err(err(403, "This action is not allowed"));
        }
    }
    Ok(Caller {
        account_id: token.account_id,
        app_id: token.app_id,
    })
}

// ---------- pagination ----------

/// `min(abs(limit), 200)`, default 100.
fn limit_param(p: &Params) -> usize {
    match p.get("limit").and_then(|l| l.trim().parse::<i64>().ok()) {
        Some(l) => usize::try_from(l.unsigned_abs().min(200)).unwrap_or(200),
        None => 100,
    }
}

/// Id-descending pagination with `max_id`, `since_id`, `min_id`, and the `Link` header
/// Mastodon builds (`next` only on a full page, `prev` on any non-empty page; `limit` and the
/// `carry` parameters kept when the request had them).
fn paginate(
    st: &State,
    ids_desc: Vec<u64>,
    p: &Params,
    path: &str,
    carry: &[&str],
) -> (Vec<u64>, Option<String>) {
    let num = |k: &str| p.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    let limit = limit_param(p);
    let mut ids: Vec<u64> = ids_desc
        .into_iter()
        .filter(|id| num("max_id").is_none_or(|m| *id < m))
        .filter(|id| num("since_id").is_none_or(|s| *id > s))
        .collect();
    let page: Vec<u64> = if let Some(min) = num("min_id") {
        ids.retain(|id| *id > min);
        ids.reverse();
        let mut page: Vec<u64> = ids.into_iter().take(limit).collect();
        page.reverse();
        page
    } else {
        ids.into_iter().take(limit).collect()
    };
    let mut base_q: Vec<(String, String)> = Vec::new();
    if p.has("limit") {
        base_q.push(("limit".to_owned(), limit.to_string()));
    }
    for k in carry {
        if let Some(v) = p.get(k) {
            base_q.push(((*k).to_owned(), v.to_owned()));
        }
    }
    let link_to = |extra: (&str, u64)| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &base_q {
            ser.append_pair(k, v);
        }
        ser.append_pair(extra.0, &extra.1.to_string());
        format!("{}{}?{}", st.base_url, path, ser.finish())
    };
    let mut links = Vec::new();
    if let (Some(last), true) = (page.last(), page.len() == limit && limit > 0) {
        links.push(format!("<{}>; rel=\"next\"", link_to(("max_id", *last))));
    }
    if let Some(first) = page.first() {
        links.push(format!("<{}>; rel=\"prev\"", link_to(("min_id", *first))));
    }
    if st.links_prev_first {
        links.reverse();
    }
    let header = (!links.is_empty()).then(|| links.join(", "));
    (page, header)
}

fn with_link(mut resp: Response, link: Option<String>) -> Response {
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

// ---------- middleware: recording, faults, rate limits ----------

pub(crate) async fn middleware(
    AxState(shared): AxState<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let token_key = bearer(req.headers()).unwrap_or_else(|| "ip:127.0.0.1".to_owned());

    let delay = lock(&shared).delay_next.pop_front();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }

    enum Early {
        Resp(Response),
        Go {
            limit: u64,
            remaining: u64,
            reset: String,
        },
    }
    let early = {
        let mut st = lock(&shared);
        if let Some((k, status)) = st.outage_after {
            if k == 0 {
                st.outage = Some(status);
                st.outage_after = None;
            } else {
                st.outage_after = Some((k - 1, status));
            }
        }
        if let Some(status) = st.outage {
            Early::Resp(html(status, "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>"))
        } else if let Some(status) = st.fail_next.pop_front() {
            Early::Resp(html(status, "<!DOCTYPE html><html><head><title>We're sorry, but something went wrong (500)</title></head><body><h1>We're sorry, but something went wrong.</h1></body></html>"))
        } else if st.inject_429 > 0 {
            st.inject_429 -= 1;
            let reset = OffsetDateTime::now_utc() + st.inject_429_reset;
            let limit = st.rate_limit;
            let mut r = err(429, "Too many requests");
            set_rate_headers(&mut r, limit, 0, &format_us(reset));
            Early::Resp(r)
        } else if let Some(pos) = st.injected.iter().position(|(p, _)| *p == path) {
            let (_, inj) = st.injected.remove(pos);
            Early::Resp(
                (
                    StatusCode::from_u16(inj.status).unwrap_or(StatusCode::OK),
                    [(header::CONTENT_TYPE, inj.content_type)],
                    inj.body,
                )
                    .into_response(),
            )
        } else {
            let limit = st.rate_limit;
            let window = st.rate_window;
            let w = st.windows.entry(token_key).or_insert_with(|| Window {
                started: Instant::now(),
                started_utc: OffsetDateTime::now_utc(),
                count: 0,
            });
            if w.started.elapsed() >= window {
                *w = Window {
                    started: Instant::now(),
                    started_utc: OffsetDateTime::now_utc(),
                    count: 0,
                };
            }
            let reset = format_us(w.started_utc + window);
            if w.count >= limit {
                let mut r = err(429, "Too many requests");
                set_rate_headers(&mut r, limit, 0, &reset);
                Early::Resp(r)
            } else {
                w.count += 1;
                Early::Go {
                    limit,
                    remaining: limit - w.count,
                    reset,
                }
            }
        }
    };
    let resp = match early {
        Early::Resp(r) => r,
        Early::Go {
            limit,
            remaining,
            reset,
        } => {
            let mut r = next.run(req).await;
            set_rate_headers(&mut r, limit, remaining, &reset);
            // The request was handled (its effect stays); only the answer is lost.
            let mut st = lock(&shared);
            match st.lost_responses.iter().position(|(p, _)| *p == path) {
                Some(pos) => {
                    let (_, status) = st.lost_responses.remove(pos);
                    html(status, "<!DOCTYPE html><html><head><title>We're sorry, but something went wrong (500)</title></head><body><h1>We're sorry, but something went wrong.</h1></body></html>")
                }
                None => r,
            }
        }
    };
    let deliveries = {
        let mut st = lock(&shared);
        st.requests.push(RequestRecord {
            method,
            path,
            query,
            status: resp.status().as_u16(),
        });
        take_deliveries(&mut st)
    };
    for d in deliveries {
        tokio::spawn(deliver(shared.clone(), d));
    }
    resp
}

fn set_rate_headers(r: &mut Response, limit: u64, remaining: u64, reset: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&limit.to_string()) {
        h.insert("x-ratelimit-limit", v);
    }
    if let Ok(v) = HeaderValue::from_str(&remaining.to_string()) {
        h.insert("x-ratelimit-remaining", v);
    }
    if let Ok(v) = HeaderValue::from_str(reset) {
        h.insert("x-ratelimit-reset", v);
    }
}

// ---------- webhooks ----------

pub(crate) struct Outgoing {
    url: String,
    event: String,
    body: Vec<u8>,
    signature: String,
    fault: Option<WebhookFault>,
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex(&mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Turns queued events into signed deliveries.
pub(crate) fn take_deliveries(st: &mut State) -> Vec<Outgoing> {
    let events = std::mem::take(&mut st.pending_events);
    let Some((url, secret)) = st.webhook.clone() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (event, report_id) in events {
        let Some(r) = st.reports.get(&report_id) else {
            continue;
        };
        let body = json!({
            "event": event,
            "created_at": now_string(),
            "object": st.report_json(r),
        })
        .to_string()
        .into_bytes();
        let fault = st.webhook_faults.pop_front();
        let signature = if fault == Some(WebhookFault::BadSignature) {
            sign(b"not-the-secret", &body)
        } else {
            sign(&secret, &body)
        };
        out.push(Outgoing {
            url: url.clone(),
            event,
            body,
            signature,
            fault,
        });
    }
    out
}

pub(crate) async fn deliver(shared: Shared, d: Outgoing) {
    let times = match d.fault {
        Some(WebhookFault::Drop) => 0,
        Some(WebhookFault::Duplicate) => 2,
        _ => 1,
    };
    if times == 0 {
        lock(&shared).deliveries.push(Delivery {
            event: d.event,
            body: d.body,
            signature: d.signature,
            status: None,
        });
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    for _ in 0..times {
        let mut status = None;
        // A few quick retries on failure, as Sidekiq would (much more slowly).
        for attempt in 0..3u32 {
            let res = client
                .post(&d.url)
                .header("content-type", "application/json")
                .header("x-hub-signature", &d.signature)
                .body(d.body.clone())
                .send()
                .await;
            status = res.ok().map(|r| r.status().as_u16());
            if status.is_some_and(|s| (200..300).contains(&s)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt + 1))).await;
        }
        lock(&shared).deliveries.push(Delivery {
            event: d.event.clone(),
            body: d.body.clone(),
            signature: d.signature.clone(),
            status,
        });
    }
}

// ---------- router ----------

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v1/apps", post(apps_create))
        .route("/api/v1/apps/verify_credentials", get(apps_verify))
        .route("/api/v1/accounts/verify_credentials", get(accounts_verify))
        .route("/oauth/authorize", get(oauth_authorize))
        .route("/oauth/token", post(oauth_token))
        .route("/oauth/revoke", post(oauth_revoke))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth_metadata),
        )
        .route("/.well-known/nodeinfo", get(nodeinfo_links))
        .route("/nodeinfo/2.0", get(nodeinfo))
        .route("/api/v2/instance", get(instance))
        .route("/api/v1/instance/rules", get(instance_rules))
        .route("/api/v1/instance/domain_blocks", get(public_blocks))
        .route("/api/v1/reports", post(user_report_create))
        .route("/api/v1/admin/reports", get(reports_list))
        .route(
            "/api/v1/admin/reports/{id}",
            get(report_show).put(report_update),
        )
        .route("/api/v1/admin/reports/{id}/{op}", post(report_op))
        .route("/api/v1/admin/accounts", get(accounts_list))
        .route("/api/v1/admin/accounts/{id}", get(account_show))
        .route("/api/v1/admin/accounts/{id}/action", post(account_action))
        .route("/api/v1/admin/accounts/{id}/{op}", post(account_op))
        .route(
            "/api/v1/admin/domain_blocks",
            get(blocks_list).post(block_create),
        )
        .route(
            "/api/v1/admin/domain_blocks/{id}",
            get(block_show).put(block_update).delete(block_delete),
        )
        .route(
            "/api/v1/admin/domain_allows",
            get(allows_list).post(allow_create),
        )
        .route(
            "/api/v1/admin/domain_allows/{id}",
            get(allow_show).delete(allow_delete),
        )
        .route("/api/v1/admin/measures", post(measures))
        .route("/system/media/{file}", get(media_file))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            middleware,
        ))
        .with_state(shared)
}

async fn fallback(AxState(s): AxState<Shared>) -> Response {
    not_found(&lock(&s))
}

type Req = (AxState<Shared>, HeaderMap, Uri, Bytes);

macro_rules! params {
    ($headers:expr, $uri:expr, $body:expr) => {
        match Params::parse(&$headers, &$uri, &$body) {
            Ok(p) => p,
            Err(r) => return r,
        }
    };
}

macro_rules! auth {
    ($st:expr, $headers:expr, $scope:expr, $perm:expr) => {
        match authorize(&$st, &$headers, $scope, $perm) {
            Ok(c) => c,
            Err(r) => return r,
        }
    };
}

fn parse_id(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

// ---------- instance ----------

async fn instance(AxState(s): AxState<Shared>) -> Response {
    let st = lock(&s);
    let (version, source) = match st.flavor {
        Flavor::Mastodon => ("4.4.0", "https://github.com/mastodon/mastodon"),
        Flavor::GoToSocial => (
            "0.20.0-rc1 git-57cb4fe",
            "https://github.com/superseriousbusiness/gotosocial",
        ),
    };
    let rules: Vec<Value> = st
        .rules
        .iter()
        .map(|(id, (t, h))| json!({"id": id.to_string(), "text": t, "hint": h}))
        .collect();
    let domain = url::Url::parse(&st.base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    ok(json!({
        "domain": domain,
        "title": st.title,
        "version": version,
        "source_url": source,
        "description": "A fake instance for tests.",
        "usage": {"users": {"active_month": st.accounts.len()}},
        "thumbnail": {"url": format!("{}/thumb.png", st.base_url)},
        "languages": ["en"],
        "configuration": {"urls": {"streaming": null}},
        "registrations": {"enabled": false, "approval_required": true, "message": null},
        "contact": {"email": "admin@mail.example", "account": null},
        "rules": rules,
    }))
}

async fn instance_rules(AxState(s): AxState<Shared>) -> Response {
    let st = lock(&s);
    ok(Value::Array(
        st.rules
            .iter()
            .map(|(id, (t, h))| json!({"id": id.to_string(), "text": t, "hint": h}))
            .collect(),
    ))
}

async fn nodeinfo_links(AxState(s): AxState<Shared>) -> Response {
    let st = lock(&s);
    ok(json!({"links": [{
        "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
        "href": format!("{}/nodeinfo/2.0", st.base_url),
    }]}))
}

async fn nodeinfo(AxState(s): AxState<Shared>) -> Response {
    let st = lock(&s);
    let (name, version) = match st.flavor {
        Flavor::Mastodon => ("mastodon", "4.4.0"),
        Flavor::GoToSocial => ("gotosocial", "0.20.0-rc1 git-57cb4fe"),
    };
    ok(json!({
        "version": "2.0",
        "software": {"name": name, "version": version},
        "protocols": ["activitypub"],
        "services": {"outbound": [], "inbound": []},
        "usage": {"users": {"total": st.accounts.len()}, "localPosts": 0},
        "openRegistrations": false,
        "metadata": {},
    }))
}

async fn public_blocks((AxState(s), headers, _uri, _body): Req) -> Response {
    let st = lock(&s);
    match st.public_blocks {
        PublicBlocksMode::Disabled => return (StatusCode::NOT_FOUND, "").into_response(),
        PublicBlocksMode::UsersOnly => {
            let valid = bearer(&headers)
                .and_then(|t| st.tokens.get(&t))
                .is_some_and(|t| t.account_id.is_some());
            if !valid {
                return err(401, "The access token is invalid");
            }
        }
        PublicBlocksMode::Public => {}
    }
    let rank = |sev: &str| match sev {
        "suspend" => 0,
        _ => 1,
    };
    let mut blocks: Vec<&Block> = st
        .blocks
        .values()
        .filter(|b| b.severity == "silence" || b.severity == "suspend")
        .collect();
    blocks.sort_by(|a, b| (rank(&a.severity), &a.domain).cmp(&(rank(&b.severity), &b.domain)));
    let list: Vec<Value> = blocks
        .iter()
        .map(|b| {
            let mut v = json!({
                "domain": if b.obfuscate { obfuscate_domain(&b.domain) } else { b.domain.clone() },
                "digest": sha256_hex(&b.domain),
                "severity": b.severity,
            });
            if let (Some(c), Some(obj)) = (&b.public_comment, v.as_object_mut()) {
                obj.insert("comment".to_owned(), json!(c));
            }
            v
        })
        .collect();
    ok(Value::Array(list))
}

// ---------- reports ----------

async fn reports_list((AxState(s), headers, uri, body): Req) -> Response {
    let st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:read:reports", MANAGE_REPORTS);
    let resolved = p.bool("resolved").unwrap_or(false);
    let acct = p.get("account_id").and_then(parse_id);
    let target = p.get("target_account_id").and_then(parse_id);
    let ids: Vec<u64> = st
        .reports
        .values()
        .rev()
        .filter(|r| r.seed.resolved == resolved)
        .filter(|r| acct.is_none_or(|a| r.seed.account_id == a))
        .filter(|r| target.is_none_or(|t| r.seed.target_account_id == t))
        .map(|r| r.seed.id)
        .collect();
    let (page, link) = paginate(
        &st,
        ids,
        &p,
        "/api/v1/admin/reports",
        &["resolved", "account_id", "target_account_id"],
    );
    let items: Vec<Value> = page
        .iter()
        .filter_map(|id| st.reports.get(id))
        .map(|r| st.report_json(r))
        .collect();
    with_link(ok(Value::Array(items)), link)
}

async fn report_show(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&s);
    auth!(st, headers, "admin:read:reports", MANAGE_REPORTS);
    match parse_id(&id).and_then(|i| st.reports.get(&i)) {
        Some(r) => ok(st.report_json(r)),
        None => not_found(&st),
    }
}

async fn report_update(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:write:reports", MANAGE_REPORTS);
    let Some(id) = parse_id(&id).filter(|i| st.reports.contains_key(i)) else {
        return not_found(&st);
    };
    let category = p.get("category").map(str::to_owned);
    if let Some(c) = &category {
        if !["spam", "legal", "violation", "other"].contains(&c.as_str()) {
            return err(
                422,
                "Validation failed: Category is not included in the list",
            );
        }
    }
    let rule_ids: Option<Vec<u64>> = if p.has("rule_ids") {
        let ids: Vec<Option<u64>> = p.all("rule_ids").into_iter().map(parse_id).collect();
        if ids
            .iter()
            .any(|i| i.is_none_or(|i| !st.rules.contains_key(&i)))
        {
            return err(422, "Validation failed: Rule ids is invalid");
        }
        Some(ids.into_iter().flatten().collect())
    } else {
        None
    };
    let now = now_string();
    if let Some(r) = st.reports.get_mut(&id) {
        if let Some(c) = category {
            r.seed.category = c;
        }
        if let Some(ids) = rule_ids {
            r.seed.rule_ids = ids;
        }
        r.updated_at = now;
    }
    st.emit("report.updated", id);
    match st.reports.get(&id) {
        Some(r) => ok(st.report_json(r)),
        None => not_found(&st),
    }
}

async fn report_op(
    AxState(s): AxState<Shared>,
    Path((id, op)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    let gts = st.flavor == Flavor::GoToSocial;
    let known = match op.as_str() {
        "resolve" => true,
        "assign_to_self" | "unassign" | "reopen" => !gts,
        _ => false,
    };
    if !known {
        return not_found(&st);
    }
    let caller = auth!(st, headers, "admin:write:reports", MANAGE_REPORTS);
    let Some(id) = parse_id(&id).filter(|i| st.reports.contains_key(i)) else {
        return not_found(&st);
    };
    let now = now_string();
    let comment = p.get("action_taken_comment").map(str::to_owned);
    if let Some(r) = st.reports.get_mut(&id) {
        match op.as_str() {
            "assign_to_self" => r.seed.assigned_account_id = caller.account_id,
            "unassign" => r.seed.assigned_account_id = None,
            "resolve" => {
                if !r.seed.resolved {
                    r.seed.resolved = true;
                    r.action_taken_at = Some(now.clone());
                    r.action_taken_by = caller.account_id;
                }
                if gts {
                    r.seed.assigned_account_id = caller.account_id;
                    r.action_taken_comment = comment;
                }
            }
            _ => {
                r.seed.resolved = false;
                r.action_taken_at = None;
                r.action_taken_by = None;
            }
        }
        r.updated_at = now;
    }
    st.emit("report.updated", id);
    match st.reports.get(&id) {
        Some(r) => ok(st.report_json(r)),
        None => not_found(&st),
    }
}

/// `POST /api/v1/reports`: a user files a report (§6.4), emitting `report.created`.
async fn user_report_create((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    let caller = auth!(st, headers, "write:reports", 0);
    let Some(reporter) = caller.account_id else {
        return err(422, "This method requires an authenticated user");
    };
    let Some(target) = p
        .get("account_id")
        .and_then(parse_id)
        .filter(|i| st.accounts.contains_key(i))
    else {
        return not_found(&st);
    };
    let gts = st.flavor == Flavor::GoToSocial;
    let status_ids: Vec<u64> = p
        .all("status_ids")
        .into_iter()
        .filter_map(parse_id)
        .collect();
    let rule_ids: Vec<u64> = p.all("rule_ids").into_iter().filter_map(parse_id).collect();
    let comment = p.get("comment").unwrap_or("").to_owned();
    if comment.chars().count() > 1000 {
        return err(
            422,
            "Validation failed: Comment is too long (maximum is 1000 characters)",
        );
    }
    let category = if gts {
        "other".to_owned()
    } else if !rule_ids.is_empty() {
        "violation".to_owned()
    } else {
        match p.get("category") {
            Some(c @ ("spam" | "legal" | "violation" | "other")) => c.to_owned(),
            Some(_) => {
                return err(
                    422,
                    "Validation failed: Category is not included in the list",
                )
            }
            None => "other".to_owned(),
        }
    };
    let id = st.next_id();
    let seed = crate::seed::ReportSeed {
        id,
        account_id: reporter,
        target_account_id: target,
        category: category.clone(),
        comment: comment.clone(),
        forwarded: p.bool("forward").unwrap_or(false),
        status_ids: status_ids.clone(),
        rule_ids: rule_ids.clone(),
        resolved: false,
        assigned_account_id: None,
    };
    let forwarded = seed.forwarded;
    st.add_report(seed);
    st.emit("report.created", id);
    let ids_json = |ids: &[u64], sent: bool| {
        if gts && !sent {
            Value::Null
        } else {
            json!(ids.iter().map(u64::to_string).collect::<Vec<_>>())
        }
    };
    let created = st
        .reports
        .get(&id)
        .map(|r| r.created_at.clone())
        .unwrap_or_default();
    ok(json!({
        "id": id.to_string(),
        "action_taken": false,
        "action_taken_at": null,
        "category": category,
        "comment": comment,
        "forwarded": forwarded,
        "created_at": created,
        "status_ids": ids_json(&status_ids, p.has("status_ids")),
        "rule_ids": ids_json(&rule_ids, p.has("rule_ids")),
        "target_account": st.public_account_json(target),
    }))
}

// ---------- accounts ----------

async fn accounts_list((AxState(s), headers, uri, body): Req) -> Response {
    let st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:read:accounts", MANAGE_USERS);
    let ids: Vec<u64> = st.accounts.keys().rev().copied().collect();
    let (page, link) = paginate(&st, ids, &p, "/api/v1/admin/accounts", &[]);
    let items: Vec<Value> = page.iter().map(|id| st.admin_account_json(*id)).collect();
    with_link(ok(Value::Array(items)), link)
}

async fn account_show(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&s);
    auth!(st, headers, "admin:read:accounts", MANAGE_USERS);
    match parse_id(&id).filter(|i| st.accounts.contains_key(i)) {
        Some(i) => ok(st.admin_account_json(i)),
        None => not_found(&st),
    }
}

async fn account_action(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    // The docs list "Manage Users, Manage Reports"; the fake accepts either (unverified).
    let caller = auth!(
        st,
        headers,
        "admin:write:accounts",
        MANAGE_USERS | MANAGE_REPORTS
    );
    let Some(id) = parse_id(&id).filter(|i| st.accounts.contains_key(i)) else {
        return not_found(&st);
    };
    let kind = p.get("type").unwrap_or("").to_owned();
    if st.flavor == Flavor::GoToSocial {
        if kind != "suspend" {
            return err(
                400,
                &format!("admin action type {kind} is not supported for this endpoint, currently supported types are: [\"suspend\"]"),
            );
        }
        if let Some(a) = st.accounts.get_mut(&id) {
            a.suspended = true;
        }
        let rec = action_record(id, &kind, &p);
        st.account_actions.push(rec);
        return ok(json!({"message": "OK"}));
    }
    if !["none", "sensitive", "disable", "silence", "suspend"].contains(&kind.as_str()) {
        return err(422, "Record invalid");
    }
    let report_id = match p.non_empty("report_id") {
        Some(r) => match parse_id(r).filter(|i| st.reports.contains_key(i)) {
            Some(i) => Some(i),
            None => return not_found(&st),
        },
        None => None,
    };
    let rec = action_record(id, &kind, &p);
    st.account_actions.push(rec);
    if let Some(a) = st.accounts.get_mut(&id) {
        match kind.as_str() {
            "sensitive" => a.sensitized = true,
            "disable" => a.disabled = true,
            "silence" => a.silenced = true,
            "suspend" => a.suspended = true,
            _ => {}
        }
    }
    let to_resolve: Vec<u64> = if kind == "none" {
        report_id.into_iter().collect()
    } else {
        st.reports
            .values()
            .filter(|r| {
                !r.seed.resolved && (r.seed.target_account_id == id || Some(r.seed.id) == report_id)
            })
            .map(|r| r.seed.id)
            .collect()
    };
    let now = now_string();
    for rid in to_resolve {
        if let Some(r) = st.reports.get_mut(&rid) {
            if !r.seed.resolved {
                r.seed.resolved = true;
                r.action_taken_at = Some(now.clone());
                r.action_taken_by = caller.account_id;
                r.updated_at = now.clone();
            }
        }
        st.emit("report.updated", rid);
    }
    ok(json!({}))
}

fn action_record(account_id: u64, kind: &str, p: &Params) -> ActionRecord {
    ActionRecord {
        account_id,
        kind: kind.to_owned(),
        report_id: p.get("report_id").map(str::to_owned),
        text: p.get("text").map(str::to_owned),
        send_email_notification: p.get("send_email_notification").map(str::to_owned),
    }
}

/// A media file of a seeded status (`{id}.png` or `{id}_small.png`): PNG-typed bytes naming
/// the media id; 404 once the status is deleted.
async fn media_file(AxState(s): AxState<Shared>, Path(file): Path<String>) -> Response {
    let st = lock(&s);
    let id = file
        .trim_end_matches(".png")
        .trim_end_matches("_small")
        .parse::<u64>()
        .ok();
    let known = id.is_some_and(|id| {
        st.statuses
            .values()
            .any(|s| s.media.iter().any(|m| m.id == id))
    });
    if !known {
        return not_found(&st);
    }
    let mut body = b"\x89PNG\r\n\x1a\n".to_vec();
    body.extend_from_slice(format!("fake media {file}").as_bytes());
    (StatusCode::OK, [(header::CONTENT_TYPE, "image/png")], body).into_response()
}

async fn account_op(
    AxState(s): AxState<Shared>,
    Path((id, op)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&s);
    let gts = st.flavor == Flavor::GoToSocial;
    let known = match op.as_str() {
        "approve" | "reject" => true,
        "enable" | "unsilence" | "unsuspend" | "unsensitive" => !gts,
        _ => false,
    };
    if !known {
        return not_found(&st);
    }
    auth!(st, headers, "admin:write:accounts", MANAGE_USERS);
    let Some(id) = parse_id(&id).filter(|i| st.accounts.contains_key(i)) else {
        return not_found(&st);
    };
    if let Some(a) = st.accounts.get_mut(&id) {
        match op.as_str() {
            "enable" => a.disabled = false,
            "unsilence" => a.silenced = false,
            "unsuspend" => a.suspended = false,
            "unsensitive" => a.sensitized = false,
            _ => {}
        }
    }
    ok(st.admin_account_json(id))
}

// ---------- domain blocks ----------

async fn blocks_list((AxState(s), headers, uri, body): Req) -> Response {
    let st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:read:domain_blocks", MANAGE_FEDERATION);
    let ids: Vec<u64> = st.blocks.keys().rev().copied().collect();
    let (page, link) = paginate(&st, ids, &p, "/api/v1/admin/domain_blocks", &[]);
    let items: Vec<Value> = page
        .iter()
        .filter_map(|id| st.blocks.get(id))
        .map(|b| st.block_json(b))
        .collect();
    with_link(ok(Value::Array(items)), link)
}

fn severity_param(p: &Params) -> Result<Option<String>, Response> {
    match p.get("severity") {
        None => Ok(None),
        Some(s) if ["silence", "suspend", "noop"].contains(&s) => Ok(Some(s.to_owned())),
        Some(_) => Err(err(
            422,
            "Validation failed: Severity is not included in the list",
        )),
    }
}

async fn block_create((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    let caller = auth!(st, headers, "admin:write:domain_blocks", MANAGE_FEDERATION);
    let raw = p.get("domain").unwrap_or("").to_owned();
    let gts = st.flavor == Flavor::GoToSocial;
    if gts {
        if raw.trim().is_empty() {
            return err(400, "Bad Request: empty domain");
        }
        let Some(domain) = normalize_gts(&raw) else {
            return err(500, "Internal Server Error");
        };
        if let Some(existing) = st.blocks.values().find(|b| b.domain == domain) {
            return ok(st.block_json(existing));
        }
        let id = st.next_id();
        let block = Block {
            id,
            domain,
            severity: "suspend".to_owned(),
            reject_media: false,
            reject_reports: false,
            obfuscate: p.bool("obfuscate").unwrap_or(false),
            public_comment: p.get("public_comment").map(str::to_owned),
            private_comment: p.get("private_comment").map(str::to_owned),
            created_at: now_string(),
            created_by: caller.account_id,
        };
        let v = st.block_json(&block);
        st.blocks.insert(id, block);
        return ok(v);
    }
    if !raw.trim().is_empty() {
        if let Some(domain) = normalize_domain(&raw) {
            if let Some(existing) = st.rule_for(&domain) {
                let body = json!({
                    "error": format!("You have already imposed stricter limits on {}.", existing.domain),
                    "existing_domain_block": st.block_json(existing),
                });
                st.block_writes.push(BlockWrite {
                    method: "POST".to_owned(),
                    domain: domain.clone(),
                    status: 422,
                });
                return json_resp(StatusCode::UNPROCESSABLE_ENTITY, body);
            }
        }
    }
    if raw.trim().is_empty() {
        return err(422, "Validation failed: Domain can't be blank");
    }
    let Some(domain) = normalize_domain(&raw) else {
        return err(422, "Validation failed: Domain is invalid");
    };
    let severity = match severity_param(&p) {
        Ok(s) => s.unwrap_or_else(|| "silence".to_owned()),
        Err(r) => return r,
    };
    let id = st.next_id();
    let block = Block {
        id,
        domain,
        severity,
        reject_media: p.bool("reject_media").unwrap_or(false),
        reject_reports: p.bool("reject_reports").unwrap_or(false),
        obfuscate: p.bool("obfuscate").unwrap_or(false),
        public_comment: p.non_empty("public_comment").map(str::to_owned),
        private_comment: p.non_empty("private_comment").map(str::to_owned),
        created_at: now_string(),
        created_by: caller.account_id,
    };
    let v = st.block_json(&block);
    st.block_writes.push(BlockWrite {
        method: "POST".to_owned(),
        domain: block.domain.clone(),
        status: 200,
    });
    st.blocks.insert(id, block);
    ok(v)
}

/// GoToSocial lower-cases; wildcards and invalid hosts fail (with a 500).
fn normalize_gts(raw: &str) -> Option<String> {
    let d = raw.trim().to_ascii_lowercase();
    if d.contains('*') || d.contains(' ') || d.contains('/') {
        return None;
    }
    if let Some((host, port)) = d.rsplit_once(':') {
        if port.parse::<u16>().is_ok() {
            return normalize_domain(host).map(|h| format!("{h}:{port}"));
        }
        return None;
    }
    normalize_domain(&d)
}

fn block_lookup(st: &State, id: &str) -> Result<u64, Response> {
    match parse_id(id) {
        Some(i) if st.blocks.contains_key(&i) => Ok(i),
        Some(i) if st.flavor == Flavor::GoToSocial && st.deleted_blocks.contains(&i) => {
            Err(err(500, "Internal Server Error"))
        }
        _ => Err(not_found(st)),
    }
}

async fn block_show(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&s);
    auth!(st, headers, "admin:read:domain_blocks", MANAGE_FEDERATION);
    match block_lookup(&st, &id) {
        Ok(i) => match st.blocks.get(&i) {
            Some(b) => ok(st.block_json(b)),
            None => not_found(&st),
        },
        Err(r) => r,
    }
}

async fn block_update(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:write:domain_blocks", MANAGE_FEDERATION);
    let id = match block_lookup(&st, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let severity = match severity_param(&p) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let gts = st.flavor == Flavor::GoToSocial;
    if let Some(b) = st.blocks.get_mut(&id) {
        // The domain never changes.
        if let (Some(sev), false) = (severity, gts) {
            b.severity = sev;
        }
        if !gts {
            if let Some(v) = p.bool("reject_media") {
                b.reject_media = v;
            }
            if let Some(v) = p.bool("reject_reports") {
                b.reject_reports = v;
            }
        }
        if let Some(v) = p.bool("obfuscate") {
            b.obfuscate = v;
        }
        if let Some(v) = p.get("public_comment") {
            b.public_comment = Some(v.to_owned()).filter(|v| !v.is_empty());
        }
        if let Some(v) = p.get("private_comment") {
            b.private_comment = Some(v.to_owned()).filter(|v| !v.is_empty());
        }
    }
    let written = st.blocks.get(&id).map(|b| b.domain.clone());
    if let Some(domain) = written {
        st.block_writes.push(BlockWrite {
            method: "PUT".to_owned(),
            domain,
            status: 200,
        });
    }
    match st.blocks.get(&id) {
        Some(b) => ok(st.block_json(b)),
        None => not_found(&st),
    }
}

async fn block_delete(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&s);
    auth!(st, headers, "admin:write:domain_blocks", MANAGE_FEDERATION);
    let id = match block_lookup(&st, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(b) = st.blocks.remove(&id) else {
        return not_found(&st);
    };
    st.deleted_blocks.insert(id);
    st.block_writes.push(BlockWrite {
        method: "DELETE".to_owned(),
        domain: b.domain.clone(),
        status: 200,
    });
    match st.flavor {
        Flavor::Mastodon => ok(json!({})),
        Flavor::GoToSocial => ok(st.block_json(&b)),
    }
}

// ---------- domain allows ----------

fn allow_json(a: &Allow) -> Value {
    json!({"id": a.id.to_string(), "domain": a.domain, "created_at": a.created_at})
}

async fn allows_list((AxState(s), headers, uri, body): Req) -> Response {
    let st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:read:domain_allows", MANAGE_FEDERATION);
    let ids: Vec<u64> = st.allows.keys().rev().copied().collect();
    let (page, link) = paginate(&st, ids, &p, "/api/v1/admin/domain_allows", &[]);
    let items: Vec<Value> = page
        .iter()
        .filter_map(|id| st.allows.get(id))
        .map(allow_json)
        .collect();
    with_link(ok(Value::Array(items)), link)
}

async fn allow_create((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:write:domain_allows", MANAGE_FEDERATION);
    let raw = p.get("domain").unwrap_or("");
    if raw.trim().is_empty() {
        return err(422, "Validation failed: Domain can't be blank");
    }
    let Some(domain) = normalize_domain(raw) else {
        return err(422, "Validation failed: Domain is invalid");
    };
    if st.allows.values().any(|a| a.domain == domain) {
        return err(422, "Validation failed: Domain has already been taken");
    }
    let id = st.next_id();
    let a = Allow {
        id,
        domain,
        created_at: now_string(),
    };
    let v = allow_json(&a);
    st.allows.insert(id, a);
    ok(v)
}

async fn allow_show(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&s);
    auth!(st, headers, "admin:read:domain_allows", MANAGE_FEDERATION);
    match parse_id(&id).and_then(|i| st.allows.get(&i)) {
        Some(a) => ok(allow_json(a)),
        None => not_found(&st),
    }
}

async fn allow_delete(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&s);
    auth!(st, headers, "admin:write:domain_allows", MANAGE_FEDERATION);
    match parse_id(&id).and_then(|i| st.allows.remove(&i)) {
        Some(a) => ok(allow_json(&a)),
        None => not_found(&st),
    }
}

// ---------- measures ----------

async fn measures((AxState(s), headers, uri, body): Req) -> Response {
    let st = lock(&s);
    let p = params!(headers, uri, body);
    auth!(st, headers, "admin:read", VIEW_DASHBOARD);
    for required in ["keys", "start_at", "end_at"] {
        if p.non_empty(required).is_none() {
            return err(
                400,
                &format!("param is missing or the value is empty: {required}"),
            );
        }
    }
    let start = p.get("start_at").unwrap_or("").to_owned();
    let end = p.get("end_at").unwrap_or("").to_owned();
    let out: Vec<Value> = p
        .all("keys")
        .into_iter()
        .map(|key| {
            let domain = p.get(&format!("{key}[domain]")).map(str::to_owned);
            // `instance_follows` counts the follows (rows that still exist) made within the
            // period, as Mastodon's InstanceFollowsMeasure does; a seeded total overrides it.
            let counted = match (key, &domain) {
                ("instance_follows", Some(d)) => i64::try_from(
                    st.follows
                        .iter()
                        .filter(|(fd, day)| {
                            fd == d && day.as_str() >= &start[..start.len().min(10)]
                                && day.as_str() <= &end[..end.len().min(10)]
                        })
                        .count(),
                )
                .unwrap_or(i64::MAX),
                _ => 0,
            };
            let total = st
                .measures
                .get(&(key.to_owned(), domain))
                .copied()
                .unwrap_or(counted);
            json!({
                "key": key,
                "unit": null,
                "total": total.to_string(),
                "data": [{"date": format!("{start}T00:00:00.000+00:00"), "value": total.to_string()}],
            })
        })
        .collect();
    ok(Value::Array(out))
}

// ---------- OAuth ----------

fn app_json(a: &App, with_secret: bool) -> Value {
    let mut v = json!({
        "id": a.id.to_string(),
        "name": a.name,
        "website": a.website,
        "scopes": a.scopes,
        "redirect_uri": a.redirect_uris.join("\n"),
        "redirect_uris": a.redirect_uris,
    });
    if let (true, Some(obj)) = (with_secret, v.as_object_mut()) {
        obj.insert("client_id".to_owned(), json!(a.client_id));
        obj.insert("client_secret".to_owned(), json!(a.client_secret));
        obj.insert("client_secret_expires_at".to_owned(), json!(0));
    }
    v
}

async fn apps_create((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    let Some(name) = p.non_empty("client_name").map(str::to_owned) else {
        return err(422, "Validation failed: Application name can't be blank");
    };
    let redirect_uris: Vec<String> = p
        .all("redirect_uris")
        .into_iter()
        .flat_map(|v| v.split('\n'))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if redirect_uris.is_empty() {
        return err(422, "Validation failed: Redirect URI can't be blank");
    }
    for u in &redirect_uris {
        if u != "urn:ietf:wg:oauth:2.0:oob" && url::Url::parse(u).is_err() {
            return err(
                422,
                "Validation failed: Redirect URI must be an absolute URI.",
            );
        }
    }
    let scopes: Vec<String> = p
        .get("scopes")
        .unwrap_or("read")
        .split([' ', '+'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return err(
            422,
            &format!("Validation failed: Scopes {bad} is not a known scope"),
        );
    }
    let id = st.next_id();
    let app = App {
        id,
        name,
        website: p.non_empty("website").map(str::to_owned),
        redirect_uris,
        scopes,
        client_id: st.secret("client"),
        client_secret: st.secret("secret"),
    };
    let v = app_json(&app, true);
    st.apps.insert(id, app);
    ok(v)
}

async fn apps_verify((AxState(s), headers, _uri, _body): Req) -> Response {
    let st = lock(&s);
    let caller = auth!(st, headers, "", 0);
    match caller.app_id.and_then(|id| st.apps.get(&id)) {
        Some(app) => ok(app_json(app, false)),
        None => ok(json!({"name": "Seeded test token", "website": null})),
    }
}

async fn accounts_verify((AxState(s), headers, _uri, _body): Req) -> Response {
    let st = lock(&s);
    let Some(token) = bearer(&headers).and_then(|t| st.tokens.get(&t).cloned()) else {
        return err(401, "The access token is invalid");
    };
    if !scope_covers(&token.scopes, "read:accounts") && !scope_covers(&token.scopes, "profile") {
        return err(403, "This action is outside the authorized scopes");
    }
    match token.account_id {
        Some(id) => ok(st.public_account_json(id)),
        None => err(422, "This method requires an authenticated user"),
    }
}

async fn oauth_metadata(AxState(s): AxState<Shared>) -> Response {
    let st = lock(&s);
    if !st.oauth_metadata {
        return not_found(&st);
    }
    let b = &st.base_url;
    ok(json!({
        "issuer": format!("{b}/"),
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": format!("{b}/oauth/authorize"),
        "token_endpoint": format!("{b}/oauth/token"),
        "app_registration_endpoint": format!("{b}/api/v1/apps"),
        "revocation_endpoint": format!("{b}/oauth/revoke"),
        "scopes_supported": KNOWN_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

/// Auto-approves as the configured authorising account and redirects with the code.
async fn oauth_authorize((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    if p.get("response_type") != Some("code") {
        return html(
            400,
            "<p>The authorization server does not support this response type.</p>",
        );
    }
    let Some(app) = p
        .get("client_id")
        .and_then(|c| st.apps.values().find(|a| a.client_id == c))
        .cloned()
    else {
        return html(
            401,
            "<p>Client authentication failed due to unknown client.</p>",
        );
    };
    let redirect = p.get("redirect_uri").unwrap_or("").to_owned();
    if !app.redirect_uris.contains(&redirect) {
        return html(
            400,
            "<p>The requested redirect uri is malformed or doesn't match client redirect URI.</p>",
        );
    }
    let scopes: Vec<String> = p
        .get("scope")
        .unwrap_or("read")
        .split([' ', '+'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let state_param = p.get("state").map(str::to_owned);
    let redirect_with = |pairs: &[(&str, &str)]| -> Response {
        let Ok(mut u) = url::Url::parse(&redirect) else {
            return html(400, "<p>bad redirect</p>");
        };
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(sv) = &state_param {
                q.append_pair("state", sv);
            }
        }
        let mut r = StatusCode::FOUND.into_response();
        if let Ok(v) = HeaderValue::from_str(u.as_str()) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    if scopes.iter().any(|sc| !app.scopes.contains(sc)) {
        return redirect_with(&[
            ("error", "invalid_scope"),
            (
                "error_description",
                "The requested scope is invalid, unknown, or malformed.",
            ),
        ]);
    }
    let challenge = p.get("code_challenge").map(str::to_owned);
    if challenge.is_some() && p.get("code_challenge_method") != Some("S256") {
        return redirect_with(&[
            ("error", "invalid_request"),
            ("error_description", "code_challenge_method must be S256"),
        ]);
    }
    let Some(account_id) = st.authorizing_account else {
        return html(403, "<p>No one is signed in to approve this request.</p>");
    };
    let code = st.secret("code");
    st.codes.insert(
        code.clone(),
        AuthCode {
            app_id: app.id,
            redirect_uri: redirect.clone(),
            scopes,
            challenge,
            account_id,
        },
    );
    if redirect == "urn:ietf:wg:oauth:2.0:oob" {
        return html(
            200,
            &format!(
                "<p>Copy this authorization code: <code class=\"oauth-code\">{code}</code></p>"
            ),
        );
    }
    redirect_with(&[("code", &code)])
}

fn client_auth(st: &State, headers: &HeaderMap, p: &Params) -> Option<App> {
    let (id, secret) = match (p.get("client_id"), p.get("client_secret")) {
        (Some(i), Some(s)) => (i.to_owned(), s.to_owned()),
        _ => {
            let basic = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (i, s) = text.split_once(':')?;
            (i.to_owned(), s.to_owned())
        }
    };
    st.apps
        .values()
        .find(|a| a.client_id == id && a.client_secret == secret)
        .cloned()
}

const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";
const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";

async fn oauth_token((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    let Some(app) = client_auth(&st, &headers, &p) else {
        return oauth_err(401, "invalid_client", INVALID_CLIENT);
    };
    let (scopes, account_id) = match p.get("grant_type") {
        Some("authorization_code") => {
            let Some(code) = p.get("code").and_then(|c| st.codes.get(c)).cloned() else {
                return oauth_err(400, "invalid_grant", INVALID_GRANT);
            };
            if code.app_id != app.id || p.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
                return oauth_err(400, "invalid_grant", INVALID_GRANT);
            }
            if let Some(ch) = &code.challenge {
                let verifier = p.get("code_verifier").unwrap_or("");
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if &computed != ch {
                    return oauth_err(400, "invalid_grant", INVALID_GRANT);
                }
            }
            if let Some(c) = p.get("code") {
                let c = c.to_owned();
                st.codes.remove(&c);
            }
            (code.scopes, Some(code.account_id))
        }
        Some("client_credentials") => {
            let scopes: Vec<String> = p
                .get("scope")
                .unwrap_or("read")
                .split([' ', '+'])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if scopes.iter().any(|sc| !app.scopes.contains(sc)) {
                return oauth_err(
                    400,
                    "invalid_scope",
                    "The requested scope is invalid, unknown, or malformed.",
                );
            }
            (scopes, None)
        }
        _ => {
            return oauth_err(
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            )
        }
    };
    let token = st.secret("token");
    st.tokens.insert(
        token.clone(),
        Token {
            scopes: scopes.clone(),
            account_id,
            app_id: Some(app.id),
        },
    );
    ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "scope": scopes.join(" "),
        "created_at": OffsetDateTime::now_utc().unix_timestamp(),
    }))
}

async fn oauth_revoke((AxState(s), headers, uri, body): Req) -> Response {
    let mut st = lock(&s);
    let p = params!(headers, uri, body);
    let Some(app) = client_auth(&st, &headers, &p) else {
        return oauth_err(401, "invalid_client", INVALID_CLIENT);
    };
    let token = p.get("token").unwrap_or("").to_owned();
    match st.tokens.get(&token) {
        None => ok(json!({})),
        Some(t) if t.app_id != Some(app.id) => oauth_err(
            403,
            "unauthorized_client",
            "You are not authorized to revoke this token",
        ),
        Some(_) => {
            st.tokens.remove(&token);
            ok(json!({}))
        }
    }
}
