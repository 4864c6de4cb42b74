//! The one application error type at the HTTP edge, with stable machine-readable codes.
//!
//! Handlers return [`AppError`]; [`AppError::into_response`] records an [`ErrorBody`] in the
//! response's extensions, and the [`render_errors`] middleware (which knows the request) turns
//! it into JSON (`{"error": {"code", "message", "field"}}`) under `/api/` or into the HTML error
//! page elsewhere. Errors that axum produces itself (405, unmatched routes) go through the same
//! path, so every error response has the same shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use guildhall_db::DbError;
use serde::Serialize;

/// Everything a request can fail with. The `code` of each kind is stable.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field is missing or invalid (400, `invalid_input`); `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (form field or JSON member) that was wrong.
        field: String,
        /// What was wrong with it.
        message: String,
    },
    /// The body could not be parsed at all (400, `malformed_json` or `malformed_form`).
    #[error("{message}")]
    Malformed {
        /// `malformed_json` or `malformed_form`.
        code: &'static str,
        /// What was wrong, with the position where the parser knows it.
        message: String,
        /// The field the parser was reading, or `body`.
        field: String,
    },
    /// Not signed in, or an unknown/expired/revoked API token (401, `unauthenticated`).
    #[error("sign in first")]
    Unauthenticated,
    /// E-mail or password wrong (401, `bad_credentials`).
    #[error("the e-mail address or the password is wrong")]
    BadCredentials,
    /// Signed in but the role (or the token's scope) does not allow this (403, `forbidden`).
    #[error("you are not allowed to do this")]
    Forbidden,
    /// The CSRF token is missing or wrong (403, `csrf_failed`).
    #[error("the form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    /// Nothing here, or nothing the caller may know about (404, `not_found`).
    #[error("not found")]
    NotFound,
    /// The method is not served on this path (405, `method_not_allowed`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state (409, `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// An instance cannot be linked because it has no working admin connection (409,
    /// `instance_not_connected`); the message names what is missing.
    #[error("{0}")]
    NotConnected(String),
    /// An invitation that expired, was used, or was revoked (410, `gone`).
    #[error("{0}")]
    Gone(String),
    /// The body is larger than the configured limit (413, `payload_too_large`).
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The body's content type is not one this route reads (415, `unsupported_media_type`).
    #[error(
        "unsupported content type; send application/json or application/x-www-form-urlencoded"
    )]
    UnsupportedMediaType,
    /// The database is unreachable (503, `unavailable`).
    #[error("the service is unavailable")]
    Unavailable,
    /// A bug or an unexpected failure (500, `internal`). The cause is logged once, never shown.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// A 400 naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid { .. } | AppError::Malformed { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated | AppError::BadCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) | AppError::NotConnected(_) => StatusCode::CONFLICT,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid { .. } => "invalid_input",
            AppError::Malformed { code, .. } => code,
            AppError::Unauthenticated => "unauthenticated",
            AppError::BadCredentials => "bad_credentials",
            AppError::Forbidden => "forbidden",
            AppError::Csrf => "csrf_failed",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::NotConnected(_) => "instance_not_connected",
            AppError::Gone(_) => "gone",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The body shown to the client (never anything internal).
    pub fn body(&self) -> ErrorBody {
        let field = match self {
            AppError::Invalid { field, .. } | AppError::Malformed { field, .. } => {
                Some(field.clone())
            }
            _ => None,
        };
        let message = match self {
            AppError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        };
        ErrorBody {
            code: self.code().to_owned(),
            message,
            field,
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> AppError {
        match e {
            DbError::Conflict(what) => AppError::Conflict(format!("{what} already exists")),
            DbError::NotFound(_) => AppError::NotFound,
            DbError::InvitationExpired | DbError::InvitationUsed | DbError::InvitationRevoked => {
                AppError::Gone(e.to_string())
            }
            DbError::LastOwner => AppError::Conflict(e.to_string()),
            DbError::Invalid { field, message } => AppError::invalid(field, message),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// The client-facing description of an error (the `error` member of a JSON error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (`invalid_input`, `not_found`, …).
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The field that was wrong, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(cause) = &self {
            // The one place a 5xx's cause is logged.
            tracing::error!(cause = %cause, "internal error");
        }
        let mut resp = self.status().into_response();
        resp.extensions_mut().insert(self.body());
        resp
    }
}

/// Whether a request is for the JSON side (errors as JSON).
pub(crate) fn wants_json(path: &str) -> bool {
    path.starts_with("/api/") || path == "/healthz" || path == "/readyz"
}

/// Whether a request is from another server's webhook (errors as plain text, like the
/// receiver's own answers).
fn wants_plain(path: &str) -> bool {
    path.starts_with("/webhooks/")
}

/// Middleware: gives every error response its body (JSON, plain text or the HTML page),
/// including the errors axum makes itself. Anonymous page requests that need a session are
/// redirected to the login page.
pub(crate) async fn render_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let is_get = req.method() == axum::http::Method::GET;
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let body = match resp.extensions().get::<ErrorBody>() {
        Some(b) => b.clone(),
        // A handler's own error page (the login form with its message): leave it alone.
        None if axum::body::HttpBody::size_hint(resp.body()).exact() != Some(0) => return resp,
        None => {
            // An error axum produced (405, 413 from a limit, …) or an empty error response.
            let e = match status {
                StatusCode::NOT_FOUND => AppError::NotFound,
                StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
                StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(0),
                StatusCode::UNAUTHORIZED => AppError::Unauthenticated,
                StatusCode::FORBIDDEN => AppError::Forbidden,
                s if s.is_server_error() => AppError::Internal(format!("status {s}")),
                _ => AppError::invalid("body", "the request could not be read"),
            };
            e.body()
        }
    };
    if wants_plain(&path) {
        let text = match &body.field {
            Some(f) => format!("{} (field: {f})\n", body.message),
            None => format!("{}\n", body.message),
        };
        return (status, text).into_response();
    }
    if wants_json(&path) {
        let json = serde_json::json!({ "error": body });
        let mut out = (status, axum::Json(json)).into_response();
        copy_cookies(&resp, &mut out);
        return out;
    }
    if status == StatusCode::UNAUTHORIZED && body.code == "unauthenticated" {
        let next_url = if is_get {
            path_and_query
        } else {
            "/".to_owned()
        };
        let location = format!("/login?next={}", crate::pages::url_encode(&next_url));
        let mut out = Response::new(Body::empty());
        *out.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&location) {
            out.headers_mut().insert(header::LOCATION, v);
        }
        return out;
    }
    let mut out = crate::pages::error_page(status, &body);
    copy_cookies(&resp, &mut out);
    out
}

fn copy_cookies(from: &Response, to: &mut Response) {
    for v in from.headers().get_all(header::SET_COOKIE) {
        to.headers_mut().append(header::SET_COOKIE, v.clone());
    }
}
