//! The HTTP core: timeouts, retries with backoff, `X-RateLimit-*` pacing, a body-size cap,
//! and the mapping of error bodies to [`Error`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;

use crate::access::need_for;
use crate::error::{Error, Result};
use crate::link::{find_rel, parse_link_header};
use crate::models::DomainBlock;
use crate::net::{self, Outbound};
use crate::secret::Secret;

/// How the client behaves. The defaults suit production; tests shorten the waits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Timeout for one whole request (connect, send, read the body).
    pub timeout: Duration,
    /// Timeout for connecting.
    pub connect_timeout: Duration,
    /// How many times a failed request is retried (429, outages; 5xx and timeouts only for
    /// requests that are safe to repeat).
    pub max_retries: u32,
    /// The first backoff; it doubles each retry.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// The longest the client waits for a rate-limit window to reset before giving up with
    /// [`Error::RateLimited`].
    pub max_rate_limit_wait: Duration,
    /// Requests left in the window at which the client waits for the reset instead of
    /// sending (leaves room for the instance's own moderators on the same account).
    pub rate_limit_reserve: u64,
    /// The largest response body accepted.
    pub max_body_bytes: usize,
    /// The most pages the `all_*` helpers follow.
    pub max_pages: usize,
    /// The `User-Agent`.
    pub user_agent: String,
    /// Which addresses requests may reach. The default, [`Outbound::Any`], suits tests (the
    /// fakes listen on `127.0.0.1`); production uses [`Outbound::PublicOnly`] (see [`net`]).
    ///
    /// [`net`]: crate::net
    pub outbound: Outbound,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(330),
            rate_limit_reserve: 5,
            max_body_bytes: 16 * 1024 * 1024,
            max_pages: 1000,
            user_agent: concat!("Guildhall/", env!("CARGO_PKG_VERSION")).to_owned(),
            outbound: Outbound::Any,
        }
    }
}

/// What the server last said about the rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: u64,
    /// `X-RateLimit-Reset`.
    pub reset: Option<OffsetDateTime>,
}

/// A page of a list endpoint, with its `Link` targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, id-descending.
    pub items: Vec<T>,
    /// The next (older) page.
    pub next: Option<Url>,
    /// The previous (newer) page.
    pub prev: Option<Url>,
}

/// The body of a request.
pub(crate) enum Body {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// A request to send.
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub body: Body,
    /// Send the bearer token.
    pub auth: bool,
    /// Safe to repeat after a 5xx or a timeout.
    pub idempotent: bool,
}

/// A received response with its (capped) body.
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub url: Url,
    pub endpoint: String,
}

/// A client for one instance, optionally with a bearer token. Cheap to clone; clones share
/// the connection pool and the rate-limit state.
#[derive(Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) token: Option<Secret>,
    pub(crate) config: ClientConfig,
    rate: Arc<Mutex<Option<RateLimit>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Parses an instance base URL (`https://social.example`); only http and https are allowed.
pub fn parse_base_url(base: &str) -> Result<Url> {
    let mut url = Url::parse(base.trim()).map_err(|e| Error::InvalidUrl {
        url: base.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::InvalidUrl {
            url: base.to_owned(),
            reason: "needs an http(s) URL with a host".to_owned(),
        });
    }
    url.set_query(None);
    url.set_fragment(None);
    url.set_path("/");
    Ok(url)
}

impl Client {
    /// A client for the instance at `base` (e.g. `https://social.example`).
    pub fn new(base: &str, token: Option<Secret>, config: ClientConfig) -> Result<Self> {
        let base = parse_base_url(base)?;
        net::check_url(&base, config.outbound).map_err(|e| Error::InvalidUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        let builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::limited(5));
        let http = net::apply(builder, config.outbound)
            .build()
            .map_err(|e| Error::Setup(e.to_string()))?;
        Ok(Self {
            http,
            base,
            token,
            config,
            rate: Arc::new(Mutex::new(None)),
        })
    }

    /// The same instance with another token (own rate-limit state: limits are per account).
    pub fn with_token(&self, token: Secret) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token),
            config: self.config.clone(),
            rate: Arc::new(Mutex::new(None)),
        }
    }

    /// The instance's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// What the server last said about the rate limit.
    pub async fn rate_limit(&self) -> Option<RateLimit> {
        *self.rate.lock().await
    }

    /// `base` + `path` (+ query pairs).
    pub(crate) fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url> {
        let mut url = self.base.join(path).map_err(|e| Error::InvalidUrl {
            url: path.to_owned(),
            reason: e.to_string(),
        })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Whether `url` is on this instance (so the token may be sent there).
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.config
            .backoff_base
            .saturating_mul(factor)
            .min(self.config.backoff_max)
    }

    /// Waits while the window is (nearly) used up.
    async fn pace(&self, endpoint: &str) -> Result<()> {
        let state = *self.rate.lock().await;
        let Some(rl) = state else { return Ok(()) };
        if rl.remaining > self.config.rate_limit_reserve {
            return Ok(());
        }
        let Some(reset) = rl.reset else { return Ok(()) };
        let wait = reset - OffsetDateTime::now_utc();
        if wait.is_negative() || wait.is_zero() {
            return Ok(());
        }
        let wait = Duration::try_from(wait).unwrap_or(Duration::MAX);
        if wait > self.config.max_rate_limit_wait {
            return Err(Error::RateLimited {
                endpoint: endpoint.to_owned(),
                reset: Some(reset),
            });
        }
        // A little margin: the server's clock decides when the window opens.
        tokio::time::sleep(wait + Duration::from_millis(25)).await;
        // The window has reset; forget it until the next response tells us more.
        *self.rate.lock().await = None;
        Ok(())
    }

    async fn record_rate_limit(&self, headers: &HeaderMap) {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(remaining) = get("x-ratelimit-remaining").and_then(|v| v.trim().parse().ok())
        else {
            return;
        };
        let limit = get("x-ratelimit-limit").and_then(|v| v.trim().parse().ok());
        let reset = get("x-ratelimit-reset").and_then(parse_reset);
        *self.rate.lock().await = Some(RateLimit {
            limit,
            remaining,
            reset,
        });
    }

    /// Sends a request with pacing, retries and the body cap; returns any status.
    pub(crate) async fn send(&self, req: Request) -> Result<Response> {
        let endpoint = format!("{} {}", req.method, req.url.path());
        if req.auth && !self.same_origin(&req.url) {
            return Err(Error::InvalidUrl {
                url: req.url.to_string(),
                reason: "not on this instance; the token is not sent elsewhere".to_owned(),
            });
        }
        net::check_url(&req.url, self.config.outbound).map_err(|e| Error::InvalidUrl {
            url: req.url.to_string(),
            reason: e.to_string(),
        })?;
        let mut attempt = 0u32;
        loop {
            self.pace(&endpoint).await?;
            let mut rb = self.http.request(req.method.clone(), req.url.clone());
            if req.auth {
                if let Some(token) = &self.token {
                    rb = rb.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
                }
            }
            rb = match &req.body {
                Body::None => rb,
                Body::Json(v) => rb.json(v),
                Body::Form(f) => rb.form(f),
            };
            let retries_left = attempt < self.config.max_retries;
            let outcome = rb.send().await;
            let resp = match outcome {
                Ok(resp) => resp,
                Err(e) => {
                    // The outbound guard refused the address: retrying cannot help.
                    if let Some(refused) = net::refusal(&e) {
                        return Err(Error::InvalidUrl {
                            url: req.url.to_string(),
                            reason: refused.to_string(),
                        });
                    }
                    let err = if e.is_timeout() {
                        Error::Timeout {
                            endpoint: endpoint.clone(),
                            after: self.config.timeout,
                        }
                    } else {
                        Error::Unreachable {
                            endpoint: endpoint.clone(),
                            message: error_chain(&e),
                        }
                    };
                    // A refused connection never reached the server: always safe to retry.
                    let safe = req.idempotent || e.is_connect();
                    if safe && retries_left {
                        tokio::time::sleep(self.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            self.record_rate_limit(&headers).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                let reset = headers
                    .get("x-ratelimit-reset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_reset);
                if !retries_left {
                    return Err(Error::RateLimited { endpoint, reset });
                }
                let mut wait = self.backoff(attempt);
                if let Some(r) = reset {
                    let until =
                        Duration::try_from(r - OffsetDateTime::now_utc()).unwrap_or_default();
                    if until > self.config.max_rate_limit_wait {
                        return Err(Error::RateLimited { endpoint, reset });
                    }
                    wait = wait.max(until);
                }
                if let Some(secs) = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    let ra = Duration::from_secs(secs);
                    if ra > self.config.max_rate_limit_wait {
                        return Err(Error::RateLimited { endpoint, reset });
                    }
                    wait = wait.max(ra);
                }
                // The window is known to be exhausted; the wait above covers it.
                *self.rate.lock().await = None;
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            let retry_5xx = matches!(status.as_u16(), 500 | 502 | 503 | 504);
            if retry_5xx && req.idempotent && retries_left {
                tokio::time::sleep(self.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            let url = resp.url().clone();
            let body = match self.read_body(resp, &endpoint).await {
                Ok(b) => b,
                Err(e @ Error::Timeout { .. }) | Err(e @ Error::Unreachable { .. }) => {
                    if req.idempotent && retries_left {
                        tokio::time::sleep(self.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            return Ok(Response {
                status,
                headers,
                body,
                url,
                endpoint,
            });
        }
    }

    async fn read_body(&self, mut resp: reqwest::Response, endpoint: &str) -> Result<Vec<u8>> {
        let limit = self.config.max_body_bytes;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Error::BodyTooLarge {
                endpoint: endpoint.to_owned(),
                limit,
            });
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(Error::BodyTooLarge {
                            endpoint: endpoint.to_owned(),
                            limit,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => {
                    return Err(Error::Timeout {
                        endpoint: endpoint.to_owned(),
                        after: self.config.timeout,
                    })
                }
                Err(e) => {
                    return Err(Error::BadResponse {
                        endpoint: endpoint.to_owned(),
                        reason: format!("body cut off: {}", error_chain(&e)),
                    })
                }
            }
        }
    }

    /// Sends and turns non-2xx statuses into errors.
    pub(crate) async fn call(&self, req: Request) -> Result<Response> {
        let resp = self.send(req).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(classify(&resp))
        }
    }

    /// Sends, checks the status and decodes JSON.
    pub(crate) async fn call_json<T: DeserializeOwned>(&self, req: Request) -> Result<T> {
        let resp = self.call(req).await?;
        decode(&resp)
    }

    /// Fetches one page of a list endpoint.
    pub(crate) async fn page<T: DeserializeOwned>(&self, url: Url) -> Result<Page<T>> {
        let resp = self
            .call(Request {
                method: Method::GET,
                url,
                body: Body::None,
                auth: true,
                idempotent: true,
            })
            .await?;
        let items: Vec<T> = decode(&resp)?;
        let (next, prev) = self.links(&resp)?;
        Ok(Page { items, next, prev })
    }

    fn links(&self, resp: &Response) -> Result<(Option<Url>, Option<Url>)> {
        let Some(value) = resp.headers.get("link") else {
            return Ok((None, None));
        };
        let bad = |reason: String| Error::BadResponse {
            endpoint: resp.endpoint.clone(),
            reason,
        };
        let value = value
            .to_str()
            .map_err(|_| bad("Link header is not ASCII".to_owned()))?;
        let links =
            parse_link_header(value, &resp.url).map_err(|e| bad(format!("Link header: {e}")))?;
        let pick = |rel: &str| -> Result<Option<Url>> {
            match find_rel(&links, rel) {
                None => Ok(None),
                Some(l) if self.same_origin(&l.target) => Ok(Some(l.target.clone())),
                Some(l) => Err(bad(format!(
                    "Link rel=\"{rel}\" points off the instance: {}",
                    l.target
                ))),
            }
        };
        Ok((pick("next")?, pick("prev")?))
    }

    /// Follows `next` links from `first`, collecting every item.
    pub(crate) async fn all_pages<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut url = Some(first);
        let mut seen = std::collections::HashSet::new();
        let mut pages = 0usize;
        while let Some(u) = url {
            if !seen.insert(u.to_string()) {
                return Err(Error::BadResponse {
                    endpoint: format!("GET {}", u.path()),
                    reason: "pagination loops back to a page already fetched".to_owned(),
                });
            }
            pages += 1;
            if pages > self.config.max_pages {
                return Err(Error::BadResponse {
                    endpoint: format!("GET {}", u.path()),
                    reason: format!("more than {} pages", self.config.max_pages),
                });
            }
            let page: Page<T> = self.page(u).await?;
            let empty = page.items.is_empty();
            items.extend(page.items);
            url = if empty { None } else { page.next };
        }
        Ok(items)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Parses `X-RateLimit-Reset` (ISO 8601 / RFC 3339, with microseconds; Unix seconds are
/// accepted too).
pub(crate) fn parse_reset(v: &str) -> Option<OffsetDateTime> {
    let v = v.trim();
    if let Ok(t) = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Some(t);
    }
    if let Ok(t) = OffsetDateTime::parse(v, &time::format_description::well_known::Iso8601::DEFAULT)
    {
        return Some(t);
    }
    v.parse::<i64>()
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

/// The start of a body, for messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn looks_like_html(resp: &Response) -> bool {
    let ct = resp
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.contains("html") || resp.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// Decodes a JSON body, naming the field on a type error.
pub(crate) fn decode<T: DeserializeOwned>(resp: &Response) -> Result<T> {
    let bad = |reason: String| Error::BadResponse {
        endpoint: resp.endpoint.clone(),
        reason,
    };
    if looks_like_html(resp) {
        return Err(bad(format!(
            "an HTML page instead of JSON (status {}): {}",
            resp.status.as_u16(),
            snippet(&resp.body)
        )));
    }
    if resp.body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("empty body".to_owned()));
    }
    let de = &mut serde_json::Deserializer::from_slice(&resp.body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = if inner.is_eof() {
            "truncated JSON".to_owned()
        } else if inner.is_syntax() {
            "invalid JSON".to_owned()
        } else {
            format!("unexpected JSON at `{path}`")
        };
        bad(format!("{what}: {inner}"))
    })
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    existing_domain_block: Option<serde_json::Value>,
}

/// Maps a non-2xx response to an [`Error`] (`mastodon-api.md` §2.4, §3.3, §8.1).
pub(crate) fn classify(resp: &Response) -> Error {
    let endpoint = resp.endpoint.clone();
    let status = resp.status.as_u16();
    let parsed: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
    let message = parsed
        .as_ref()
        .and_then(|b| b.error.as_ref())
        .map(|e| match e {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| {
            if looks_like_html(resp) {
                format!("HTML page: {}", snippet(&resp.body))
            } else {
                snippet(&resp.body)
            }
        });
    if let Some(description) = parsed.as_ref().and_then(|b| b.error_description.clone()) {
        return Error::OAuth {
            endpoint,
            status,
            error: message,
            description,
        };
    }
    let path = resp.url.path().to_owned();
    let method = endpoint.split(' ').next().unwrap_or("GET").to_owned();
    let need = need_for(&method, &path);
    let lower = message.to_ascii_lowercase();
    match status {
        401 => Error::InvalidToken { endpoint, message },
        403 if lower.contains("scope") => Error::MissingScope {
            endpoint,
            scope: need.map(|n| n.scope.to_owned()).unwrap_or_default(),
            message,
        },
        403 if lower.contains("not allowed") => match need {
            Some(n) => Error::MissingPermission {
                endpoint,
                permission: n.permission,
                message,
            },
            None => Error::Forbidden { endpoint, message },
        },
        403 => Error::Forbidden { endpoint, message },
        404 => Error::NotFound { endpoint, message },
        422 => {
            if let Some(existing) = parsed.and_then(|b| b.existing_domain_block) {
                match serde_json::from_value::<DomainBlock>(existing) {
                    Ok(block) => Error::StricterBlockExists {
                        endpoint,
                        message,
                        existing: Box::new(block),
                    },
                    Err(e) => Error::BadResponse {
                        endpoint,
                        reason: format!("unreadable existing_domain_block in a 422: {e}"),
                    },
                }
            } else {
                Error::Validation {
                    endpoint,
                    status,
                    message,
                }
            }
        }
        400 => Error::Validation {
            endpoint,
            status,
            message,
        },
        429 => Error::RateLimited {
            endpoint,
            reset: resp
                .headers
                .get("x-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_reset),
        },
        500..=599 => Error::ServerError {
            endpoint,
            status,
            message,
        },
        _ => Error::Http {
            endpoint,
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_parses_mastodon_and_unix_forms() {
        let t = parse_reset("2026-11-26T15:00:00.123456Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_705_200);
        assert!(parse_reset("1795705200").is_some());
        assert!(parse_reset("soon").is_none());
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(parse_base_url("ftp://x.example").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert_eq!(
            parse_base_url("https://x.example/some/path?q=1")
                .unwrap()
                .as_str(),
            "https://x.example/"
        );
    }
}
