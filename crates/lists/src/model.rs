//! Shared value types: entries as stored and served, who acts, errors, and small helpers.

use guildhall_blocklist::{BlockEntry, Severity};
use guildhall_core::{AccountId, OrgId, Timestamp};
use guildhall_db::audit::NewAuditEntry;
use guildhall_db::DbError;
use serde::{Deserialize, Serialize};

/// Everything that can go wrong in this crate. Another tenant's rows are reported as
/// [`ListsError::NotFound`], never as forbidden, so that their existence does not leak.
#[derive(Debug, thiserror::Error)]
pub enum ListsError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No such thing, or not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Visible to the caller but not theirs to change (e.g. another organisation's public list).
    #[error("{0}")]
    Forbidden(String),
    /// A value given is not acceptable; names the field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The request conflicts with the current state (e.g. a change that is no longer held).
    #[error("{0}")]
    Conflict(String),
    /// Fetching a source failed (network, HTTP status, unreadable body); the source keeps its
    /// last good state.
    #[error("{0}")]
    Fetch(String),
    /// Another push or plan of the same instance holds its lease; try again later (a job is
    /// retried).
    #[error("busy: {0}")]
    Busy(String),
    /// A member instance refused or failed a request.
    #[error(transparent)]
    Instance(#[from] guildhall_mastodon::Error),
}

impl From<sqlx::Error> for ListsError {
    fn from(e: sqlx::Error) -> ListsError {
        ListsError::Db(DbError::from(e))
    }
}

impl ListsError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ListsError {
        ListsError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = ListsError> = std::result::Result<T, E>;

/// Who does something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The account, when a person acts.
    pub account: Option<AccountId>,
    /// As shown in the audit log: an e-mail, `worker`, `system` …
    pub name: String,
}

impl Actor {
    /// A person.
    pub fn person(account: AccountId, name: impl Into<String>) -> Actor {
        Actor {
            account: Some(account),
            name: name.into(),
        }
    }

    /// The job worker.
    pub fn worker() -> Actor {
        Actor {
            account: None,
            name: "worker".into(),
        }
    }

    pub(crate) fn audit(
        &self,
        action: &str,
        org: Option<OrgId>,
        after: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            actor_id: self.account,
            actor: self.name.clone(),
            action: action.to_string(),
            org_id: org,
            before: None,
            after: Some(after),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One domain block as stored, served and pushed (the engine's [`BlockEntry`] with serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The normalised domain.
    pub domain: String,
    /// `noop`, `silence` or `suspend`.
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// Reject media.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reject_media: bool,
    /// Reject reports.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reject_reports: bool,
    /// Obfuscate in the public list.
    #[serde(default, skip_serializing_if = "is_false")]
    pub obfuscate: bool,
    /// Public comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public_comment: String,
    /// Private comment (kept for sources; lists do not import it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_comment: String,
}

impl From<&BlockEntry> for Entry {
    fn from(e: &BlockEntry) -> Entry {
        Entry {
            domain: e.domain.clone(),
            severity: e.severity,
            reject_media: e.reject_media,
            reject_reports: e.reject_reports,
            obfuscate: e.obfuscate,
            public_comment: e.public_comment.clone(),
            private_comment: e.private_comment.clone(),
        }
    }
}

impl From<&Entry> for BlockEntry {
    fn from(e: &Entry) -> BlockEntry {
        BlockEntry {
            domain: e.domain.clone(),
            severity: e.severity,
            reject_media: e.reject_media,
            reject_reports: e.reject_reports,
            obfuscate: e.obfuscate,
            public_comment: e.public_comment.clone(),
            private_comment: e.private_comment.clone(),
        }
    }
}

/// Serde for the engine's [`Severity`] as its name.
pub mod severity_serde {
    use guildhall_blocklist::Severity;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the name.
    pub fn serialize<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    /// Reads a name (`noop`, `silence`, `suspend`, also `limit`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown severity {s:?}")))
    }
}

/// Parses a severity name, naming the field when it is not one.
pub fn parse_severity(field: &'static str, s: &str) -> Result<Severity> {
    Severity::parse(s)
        .ok_or_else(|| ListsError::invalid(field, format!("{s:?} is not noop, silence or suspend")))
}

/// What a change does to one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// A new block.
    Add,
    /// A block whose fields changed.
    Change,
    /// A block removed (a retraction).
    Remove,
}

impl ChangeOp {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Add => "add",
            ChangeOp::Change => "change",
            ChangeOp::Remove => "remove",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<ChangeOp> {
        match s {
            "add" => Ok(ChangeOp::Add),
            "change" => Ok(ChangeOp::Change),
            "remove" => Ok(ChangeOp::Remove),
            other => Err(corrupt("op", other)),
        }
    }
}

pub(crate) fn corrupt(column: &str, value: &str) -> ListsError {
    ListsError::Db(DbError::Corrupt(format!(
        "lists {column}: unexpected value {value:?}"
    )))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| ListsError::invalid("json", e.to_string()))
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(column: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| ListsError::Db(DbError::Corrupt(format!("{column}: {e}"))))
}

pub(crate) fn opt_json<T: for<'de> Deserialize<'de>>(
    column: &str,
    s: &Option<String>,
) -> Result<Option<T>> {
    s.as_deref().map(|s| from_json(column, s)).transpose()
}

pub(crate) fn now() -> i64 {
    Timestamp::now().0
}

/// SHA-256 hex of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The UTC calendar date (`YYYY-MM-DD`) of a timestamp.
pub(crate) fn utc_date(t: Timestamp) -> String {
    // Howard Hinnant's civil-from-days.
    let days = t.0.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(Timestamp(0)), "1970-01-01");
        assert_eq!(utc_date(Timestamp(951_782_400_000)), "2000-02-29");
        assert_eq!(utc_date(Timestamp(1_795_000_000_000)), "2026-11-18");
    }

    #[test]
    fn entry_json_round_trip_is_compact() {
        let e = Entry::from(&BlockEntry::new("a.example", Severity::Silence));
        let s = to_json(&e).unwrap();
        assert_eq!(s, r#"{"domain":"a.example","severity":"silence"}"#);
        let back: Entry = from_json("x", &s).unwrap();
        assert_eq!(back, e);
        assert!(from_json::<Entry>("x", r#"{"domain":"a","severity":"bad"}"#).is_err());
    }
}
