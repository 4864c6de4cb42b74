//! Test support: the app in-process (tower `oneshot`) with a small cookie-keeping client, and
//! fixtures made directly in the database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use guildhall_core::{AccountId, OrgId, Role, Scope};
use guildhall_db::accounts::NewAccount;
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::Db;
use guildhall_web::{AppState, WebConfig};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub mod browser;

/// The body limit used by the tests' app.
pub const BODY_LIMIT: usize = 4096;

/// The app over `db` with a small body limit.
pub fn state(db: &Db) -> AppState {
    AppState::new(
        db.clone(),
        WebConfig {
            base_url: "http://127.0.0.1:1".to_owned(),
            body_limit: BODY_LIMIT,
            ..WebConfig::default()
        },
    )
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The `csrf_token` hidden field of a page.
    pub fn csrf(&self) -> Option<String> {
        let i = self.body.find("name=\"csrf_token\" value=\"")?;
        let rest = &self.body[i + "name=\"csrf_token\" value=\"".len()..];
        Some(rest[..rest.find('"')?].to_owned())
    }

    /// The error code of a JSON error.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A client of the in-process app that keeps cookies, like a browser.
#[derive(Clone)]
pub struct Client {
    pub app: Router,
    pub cookies: HashMap<String, String>,
    pub bearer: Option<String>,
    pub csrf: Option<String>,
    pub peer: SocketAddr,
}

impl Client {
    pub fn new(app: Router) -> Client {
        Client {
            app,
            cookies: HashMap::new(),
            bearer: None,
            csrf: None,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        if let Some(t) = &self.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for v in headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let kv = v.split(';').next().unwrap();
            let (k, val) = kv.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Method::GET, path, None, Vec::new(), &[]).await
    }

    /// Posts a form, adding the client's CSRF token.
    pub async fn post_form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let mut body = String::new();
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(pairs);
        for (k, v) in all {
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(&enc(k));
            body.push('=');
            body.push_str(&enc(v));
        }
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
            &[],
        )
        .await
    }

    pub async fn json(&mut self, method: Method, path: &str, v: serde_json::Value) -> Resp {
        self.send(
            method,
            path,
            Some("application/json"),
            serde_json::to_vec(&v).unwrap(),
            &[],
        )
        .await
    }

    /// Loads a page and remembers its CSRF token.
    pub async fn load_csrf(&mut self, path: &str) -> Resp {
        let r = self.get(path).await;
        if let Some(t) = r.csrf() {
            self.csrf = Some(t);
        }
        r
    }

    /// Signs in through the login form.
    pub async fn login(&mut self, email: &str, password: &str) -> Resp {
        self.load_csrf("/login").await;
        let r = self
            .post_form("/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "login failed: {}", r.body);
        self.load_csrf("/orgs").await;
        r
    }
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub const PASSWORD: &str = "correct horse battery";

pub async fn account(db: &Db, email: &str, site_admin: bool) -> AccountId {
    db.create_account(&NewAccount {
        email: email.parse().unwrap(),
        display_name: email.split('@').next().unwrap().parse().unwrap(),
        password: PASSWORD.parse().unwrap(),
        site_admin,
    })
    .await
    .unwrap()
    .id
}

pub async fn org(db: &Db, name: &str, owner: AccountId) -> OrgId {
    db.create_organisation(&NewOrganisation::cooperative(name.parse().unwrap()), owner)
        .await
        .unwrap()
        .id
}

/// A signed-in client made without the login form (session and token straight from the
/// database): the session cookie, its CSRF secret, and an API token with every scope.
pub async fn signed_in(db: &Db, app: &Router, who: AccountId) -> Client {
    let mut c = Client::new(app.clone());
    let (token, session) = db
        .create_session(who, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    c.cookies
        .insert("gh_session".to_owned(), token.expose().to_owned());
    c.csrf = Some(session.csrf_secret.clone());
    let (api, _) = db
        .create_api_token(
            who,
            &"test".parse().unwrap(),
            &[Scope::Read, Scope::Write, Scope::Admin],
            None,
        )
        .await
        .unwrap();
    c.bearer = Some(api.expose().to_owned());
    c
}

/// Roles in a fixed order for tables.
pub fn roles() -> Vec<Role> {
    Role::ALL.to_vec()
}

/// A job that failed its only attempt (dead), of a kind of its own.
pub async fn dead_job(db: &Db, kind: &str) -> i64 {
    use guildhall_db::jobs::{Backoff, NewJob};
    let id = db
        .enqueue(&NewJob::new(kind, serde_json::json!({"n": 1})).max_attempts(1))
        .await
        .unwrap()
        .unwrap();
    let job = db
        .claim_job(
            "test-worker",
            &[kind.to_owned()],
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, id);
    db.fail_job(id, "test-worker", "boom", &Backoff::default())
        .await
        .unwrap();
    id.0
}
