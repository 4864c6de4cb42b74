//! The client's typed errors: each says what happened, on which endpoint.

use std::time::Duration;

use time::OffsetDateTime;

use crate::access::Permissions;
use crate::models::DomainBlock;

/// What went wrong talking to an instance. `endpoint` is `METHOD /path`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 401: the token is invalid, revoked or missing.
    #[error("{endpoint}: the access token is invalid or was revoked ({message})")]
    InvalidToken {
        /// The request.
        endpoint: String,
        /// The server's message.
        message: String,
    },
    /// 403: the token lacks the scope.
    #[error("{endpoint}: the token lacks the scope \"{scope}\" ({message})")]
    MissingScope {
        /// The request.
        endpoint: String,
        /// The scope the endpoint needs (its umbrella would also do).
        scope: String,
        /// The server's message.
        message: String,
    },
    /// 403: the account's role lacks the permission.
    #[error("{endpoint}: the account's role lacks the permission \"{permission}\" ({message})")]
    MissingPermission {
        /// The request.
        endpoint: String,
        /// The permission the endpoint needs.
        permission: Permissions,
        /// The server's message.
        message: String,
    },
    /// 403 for another reason.
    #[error("{endpoint}: forbidden ({message})")]
    Forbidden {
        /// The request.
        endpoint: String,
        /// The server's message.
        message: String,
    },
    /// 404: no such record (or the endpoint does not exist on this server).
    #[error("{endpoint}: not found ({message})")]
    NotFound {
        /// The request.
        endpoint: String,
        /// The server's message (may be empty).
        message: String,
    },
    /// 400/422: the server refused the input.
    #[error("{endpoint}: the server refused the request ({status}): {message}")]
    Validation {
        /// The request.
        endpoint: String,
        /// 400 or 422.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 422 on domain-block creation: a block on the domain or a parent already exists.
    #[error("{endpoint}: {message} (existing block {} on {})", existing.id, existing.domain)]
    StricterBlockExists {
        /// The request.
        endpoint: String,
        /// The server's message.
        message: String,
        /// The existing block that covers the domain.
        existing: Box<DomainBlock>,
    },
    /// An OAuth error (`invalid_grant`, `invalid_client`, `invalid_scope`, …).
    #[error("{endpoint}: OAuth error {error} ({status}): {description}")]
    OAuth {
        /// The request.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth error code.
        error: String,
        /// The description.
        description: String,
    },
    /// 429 (after retries), or the rate-limit window would need a longer wait than allowed.
    #[error("{endpoint}: rate limited{}", reset.map(|r| format!(" until {r}")).unwrap_or_default())]
    RateLimited {
        /// The request.
        endpoint: String,
        /// When the window resets, if the server said.
        reset: Option<OffsetDateTime>,
    },
    /// The server could not be reached (DNS, connection refused, TLS).
    #[error("{endpoint}: the server is unreachable: {message}")]
    Unreachable {
        /// The request.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The request timed out.
    #[error("{endpoint}: no answer within {after:?}")]
    Timeout {
        /// The request.
        endpoint: String,
        /// The timeout.
        after: Duration,
    },
    /// 5xx (after retries).
    #[error("{endpoint}: the server is failing ({status}): {message}")]
    ServerError {
        /// The request.
        endpoint: String,
        /// The status.
        status: u16,
        /// The start of the body.
        message: String,
    },
    /// Another unexpected HTTP status.
    #[error("{endpoint}: unexpected status {status}: {message}")]
    Http {
        /// The request.
        endpoint: String,
        /// The status.
        status: u16,
        /// The start of the body.
        message: String,
    },
    /// The answer was not what the API documents (not JSON, an HTML page, wrong types,
    /// truncated, a bad `Link` header).
    #[error("{endpoint}: bad response: {reason}")]
    BadResponse {
        /// The request.
        endpoint: String,
        /// What was wrong, naming the field where possible.
        reason: String,
    },
    /// The body was larger than the configured cap.
    #[error("{endpoint}: response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The request.
        endpoint: String,
        /// The cap.
        limit: usize,
    },
    /// A URL could not be built or is not allowed.
    #[error("bad URL {url}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("could not set up the HTTP client: {0}")]
    Setup(String),
}

impl Error {
    /// Whether retrying later may help (rate limits, outages, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unreachable { .. }
                | Self::Timeout { .. }
                | Self::ServerError { .. }
        )
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
