//! The moderation crate's errors.

use guildhall_core::{AccountId, Timestamp};
use guildhall_db::DbError;

use crate::model::{CaseState, TemplateError};

/// What can go wrong in a moderation operation. Messages are meant for the moderator.
#[derive(Debug, thiserror::Error)]
pub enum ModError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A statement failed.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// The caller may not do this (wrong organisation or role).
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The thing does not exist, or is not visible in the caller's scope.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An input value is not acceptable; names the field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Another moderator holds the case.
    #[error("the case is claimed by account {by} until {until}")]
    ClaimedByOther {
        /// Who holds it.
        by: AccountId,
        /// Until when (unless renewed).
        until: Timestamp,
    },
    /// The caller does not hold (or no longer holds) the claim on the case.
    #[error("you do not hold the claim on this case (claim it first; claims expire)")]
    NotClaimed,
    /// The case is not in a state that allows this.
    #[error("the case is {0}")]
    WrongState(CaseState),
    /// The decision is not awaiting approval.
    #[error("the decision is not awaiting approval")]
    NotAwaitingApproval,
    /// The decider tried to approve their own decision.
    #[error(
        "a second moderator must review this decision: its decider cannot approve or reject it"
    )]
    SelfReview,
    /// The note to the user is not acceptable.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Talking to the instance failed.
    #[error(transparent)]
    Mastodon(#[from] guildhall_mastodon::Error),
    /// The instance cannot be reached with a token (not connected, no token stored).
    #[error("instance {0} is not connected (no access token stored)")]
    NotConnected(i64),
    /// The instance has no working admin connection, so a co-op could not pull its reports or
    /// deliver decisions to it; the message says what is missing.
    #[error("{0}")]
    ConnectionNeeded(String),
}

impl ModError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ModError {
        ModError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = ModError> = std::result::Result<T, E>;
