//! Incoming webhooks: `X-Hub-Signature` verification and `report.*` payloads
//! (`mastodon-api.md` §11). Pure functions: the HTTP endpoint lives in the server.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::models::AdminReport;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature` header.
    #[error("the delivery has no X-Hub-Signature header")]
    Missing,
    /// The header is not `sha256=<64 hex digits>`.
    #[error("X-Hub-Signature is not of the form sha256=<hex>")]
    Malformed,
    /// The signature does not match the body and secret.
    #[error("X-Hub-Signature does not match the body")]
    Mismatch,
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON of the documented shape.
    #[error("webhook payload: {0}")]
    Invalid(String),
}

/// Verifies `X-Hub-Signature: sha256=<hex>` over the **raw** body, constant-time.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Mastodon would send for `body` (for tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut out = String::from("sha256=");
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) {
        mac.update(body);
        for b in mac.finalize().into_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A webhook event Guildhall understands.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// `report.created`.
    ReportCreated {
        /// When the event happened.
        created_at: Option<String>,
        /// The report.
        report: Box<AdminReport>,
    },
    /// `report.updated`.
    ReportUpdated {
        /// When the event happened.
        created_at: Option<String>,
        /// The report.
        report: Box<AdminReport>,
    },
    /// Any other event (`account.created`, …), kept by name only.
    Other {
        /// The event name.
        event: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    object: serde_json::Value,
}

/// Parses a delivery body. Verify the signature first.
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, PayloadError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| PayloadError::Invalid(e.to_string()))?;
    let report = |obj: serde_json::Value| -> Result<Box<AdminReport>, PayloadError> {
        serde_path_to_error::deserialize(obj)
            .map(Box::new)
            .map_err(|e| PayloadError::Invalid(format!("object at `{}`: {}", e.path(), e.inner())))
    };
    Ok(match env.event.as_str() {
        "report.created" => WebhookEvent::ReportCreated {
            created_at: env.created_at,
            report: report(env.object)?,
        },
        "report.updated" => WebhookEvent::ReportUpdated {
            created_at: env.created_at,
            report: report(env.object)?,
        },
        _ => WebhookEvent::Other { event: env.event },
    })
}

/// Verifies and parses in one step.
pub fn verify_and_parse(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<WebhookEvent, WebhookError> {
    verify_signature(secret, body, header)?;
    Ok(parse_event(body)?)
}

/// Either failure of [`verify_and_parse`].
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature was missing or wrong: refuse the delivery.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed correctly but unreadable.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}
