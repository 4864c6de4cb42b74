//! The moderation vocabulary: actions, categories, case and decision states, SLA states, the
//! per-instance settings of a co-op link, and note templates whose placeholders must all be
//! filled ([`FilledNote`] can only be made by [`NoteTemplate::fill`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use guildhall_core::Timestamp;
use guildhall_mastodon::models::{ActionType, ReportCategory};
use serde::{Deserialize, Serialize};

/// Declares a fieldless enum with a stable string form (`as_str`, `FromStr`, `Display`, serde).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $v:ident = $t:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $t)] $v),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// The stable string form (database, URLs, forms, JSON).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $t),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim() {
                    $($t => Ok($name::$v),)+
                    other => Err(format!(
                        "unknown {} {:?} (expected one of: {})",
                        $what,
                        other.chars().take(40).collect::<String>(),
                        [$($t),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a decision does to the reported account on its instance (Mastodon's account
    /// action types, `mastodon-api.md` §7).
    Action, "action" {
        /// A warning only (the note is sent; nothing else changes).
        None = "none",
        /// Force the account's media sensitive.
        Sensitive = "sensitive",
        /// Disable the account's login (local accounts only).
        Disable = "disable",
        /// Limit (silence) the account.
        Silence = "silence",
        /// Suspend the account.
        Suspend = "suspend",
    }
);

impl Action {
    /// The actions Mastodon offers for a target: every action for a local account; only
    /// `sensitive`, `silence` and `suspend` for a remote one (`types_for_account`, §7).
    pub fn allowed_for(target_remote: bool) -> &'static [Action] {
        if target_remote {
            &[Action::Sensitive, Action::Silence, Action::Suspend]
        } else {
            Action::ALL
        }
    }

    /// The API's action type.
    pub fn api_type(self) -> ActionType {
        match self {
            Action::None => ActionType::None,
            Action::Sensitive => ActionType::Sensitive,
            Action::Disable => ActionType::Disable,
            Action::Silence => ActionType::Silence,
            Action::Suspend => ActionType::Suspend,
        }
    }
}

text_enum!(
    /// A report's category (Mastodon's; unknown categories count as `other`).
    Category, "category" {
        /// Spam.
        Spam = "spam",
        /// Illegal content.
        Legal = "legal",
        /// Violates the instance's rules.
        Violation = "violation",
        /// Anything else.
        Other = "other",
    }
);

impl Category {
    /// How urgent the category is, for ordering the queue (higher first): legal 4, violation
    /// 3, spam 2, other 1.
    pub fn severity(self) -> i64 {
        match self {
            Category::Legal => 4,
            Category::Violation => 3,
            Category::Spam => 2,
            Category::Other => 1,
        }
    }

    /// The category of a Mastodon report (unknown ones are `other`).
    pub fn from_api(c: &ReportCategory) -> Category {
        match c {
            ReportCategory::Spam => Category::Spam,
            ReportCategory::Legal => Category::Legal,
            ReportCategory::Violation => Category::Violation,
            ReportCategory::Other | ReportCategory::Unknown(_) => Category::Other,
        }
    }
}

text_enum!(
    /// Where a case is.
    CaseState, "case state" {
        /// In the queue, to be worked.
        Open = "open",
        /// Decided with a severe action; waits for a second moderator.
        AwaitingApproval = "awaiting_approval",
        /// Handed to the instance's in-house moderators.
        Escalated = "escalated",
        /// Finished (see [`Outcome`]).
        Closed = "closed",
    }
);

text_enum!(
    /// How a closed case ended.
    Outcome, "outcome" {
        /// A decision was taken (its delivery state is on the decision).
        Decided = "decided",
        /// Every report was resolved on the instance itself.
        ResolvedOnInstance = "resolved_on_instance",
    }
);

text_enum!(
    /// A case's SLA state relative to now.
    SlaState, "SLA state" {
        /// More than [`DUE_SOON`] left.
        Ok = "ok",
        /// Due within [`DUE_SOON`].
        DueSoon = "due_soon",
        /// Past its deadline.
        Overdue = "overdue",
    }
);

/// How close to its deadline a case is "due soon".
pub const DUE_SOON: Duration = Duration::from_secs(2 * 3600);

impl SlaState {
    /// The state of a deadline at `now`.
    pub fn of(due: Timestamp, now: Timestamp) -> SlaState {
        if due.0 < now.0 {
            SlaState::Overdue
        } else if due.0 < now.plus(DUE_SOON).0 {
            SlaState::DueSoon
        } else {
            SlaState::Ok
        }
    }
}

text_enum!(
    /// Where a decision is.
    DecisionState, "decision state" {
        /// Waits for a second moderator's approval; nothing has been sent.
        AwaitingApproval = "awaiting_approval",
        /// The second moderator rejected it; nothing was sent.
        Rejected = "rejected",
        /// Being delivered to the instance (jobs queued or retrying).
        Pending = "pending",
        /// The action reached the instance and the reports are resolved.
        Delivered = "delivered",
        /// Delivery failed for good; `failure` holds the server's message.
        Failed = "failed",
    }
);

text_enum!(
    /// Where one delivery step (the action, or resolving one report) is.
    StepState, "step state" {
        /// Not done yet.
        Pending = "pending",
        /// Done.
        Delivered = "delivered",
        /// Failed for good.
        Failed = "failed",
    }
);

text_enum!(
    /// What a delivery step does.
    StepKind, "step kind" {
        /// The account action (with the report's id).
        Action = "action",
        /// Resolving one report.
        Resolve = "resolve",
    }
);

text_enum!(
    /// How far a reported media item's bytes were copied.
    CopyState, "copy state" {
        /// Not fetched yet (the media job does it).
        Pending = "pending",
        /// The bytes are stored.
        Copied = "copied",
        /// Fetching failed (see the error).
        Failed = "failed",
        /// Larger than the cap; only the URLs are kept.
        TooLarge = "too_large",
    }
);

/// Hours to answer a case, per category (the case's deadline is its earliest report's time
/// plus the hours of that report's category).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaHours {
    /// Spam.
    pub spam: u32,
    /// Illegal content.
    pub legal: u32,
    /// Rule violations.
    pub violation: u32,
    /// Other.
    pub other: u32,
}

impl Default for SlaHours {
    fn default() -> Self {
        SlaHours {
            spam: 48,
            legal: 24,
            violation: 24,
            other: 72,
        }
    }
}

impl SlaHours {
    /// The hours for a category.
    pub fn hours(&self, c: Category) -> u32 {
        match c {
            Category::Spam => self.spam,
            Category::Legal => self.legal,
            Category::Violation => self.violation,
            Category::Other => self.other,
        }
    }

    /// The milliseconds for a category.
    pub fn millis(&self, c: Category) -> i64 {
        i64::from(self.hours(c)) * 3_600_000
    }
}

/// A co-op's settings for one linked instance (stored on the link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSettings {
    /// Actions that wait for a second moderator's approval (default: suspend).
    pub second_review: Vec<Action>,
    /// How long a claim lasts without being renewed, in minutes (default 30).
    pub claim_minutes: u32,
    /// SLA hours per category.
    pub sla_hours: SlaHours,
    /// Note templates to the user; a decision's note must come from one of them.
    pub templates: Vec<NoteTemplate>,
    /// How often reports are pulled from the instance, in minutes (default 5).
    pub sync_minutes: u32,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            second_review: vec![Action::Suspend],
            claim_minutes: 30,
            sla_hours: SlaHours::default(),
            templates: Vec::new(),
            sync_minutes: 5,
        }
    }
}

impl LinkSettings {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=24 * 60).contains(&self.claim_minutes) {
            return Err(("claim_minutes", "must be between 1 and 1440".into()));
        }
        if !(1..=24 * 60).contains(&self.sync_minutes) {
            return Err(("sync_minutes", "must be between 1 and 1440".into()));
        }
        for c in Category::ALL {
            if !(1..=24 * 365).contains(&self.sla_hours.hours(*c)) {
                return Err(("sla_hours", format!("{c}: must be between 1 and 8760")));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.templates {
            if t.name.trim().is_empty() {
                return Err(("templates", "a template has no name".into()));
            }
            if !names.insert(t.name.as_str()) {
                return Err(("templates", format!("two templates are named {:?}", t.name)));
            }
            t.placeholders()
                .map_err(|e| ("templates", format!("{}: {e}", t.name)))?;
        }
        Ok(())
    }

    /// The template named `name`.
    pub fn template(&self, name: &str) -> Option<&NoteTemplate> {
        self.templates.iter().find(|t| t.name == name)
    }

    /// The claim duration.
    pub fn claim_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.claim_minutes) * 60)
    }
}

/// Why a template or its filling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without its `}}`, or an empty or malformed placeholder name.
    #[error("malformed placeholder at byte {0} (placeholders are {{{{name}}}} with letters, digits, _ or -)")]
    Malformed(usize),
    /// Placeholders left without a (non-empty) value.
    #[error("placeholders not filled: {}", .0.join(", "))]
    Unfilled(Vec<String>),
    /// Values given for placeholders the template does not have.
    #[error("the template has no placeholders named: {}", .0.join(", "))]
    Unknown(Vec<String>),
    /// The decision names a template the instance does not have.
    #[error("the instance has no note template named {0:?}")]
    NoSuchTemplate(String),
}

/// A note template: text with `{{placeholder}}`s, e.g. `"Your post broke rule {{rule}}."`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteTemplate {
    /// Its name (unique per instance).
    pub name: String,
    /// Its text.
    pub text: String,
}

fn valid_placeholder(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl NoteTemplate {
    /// A template.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> NoteTemplate {
        NoteTemplate {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The placeholder names, in order of first appearance.
    pub fn placeholders(&self) -> Result<Vec<String>, TemplateError> {
        let mut out: Vec<String> = Vec::new();
        let mut rest = self.text.as_str();
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(TemplateError::Malformed(offset + start));
            };
            let name = after[..end].trim();
            if !valid_placeholder(name) {
                return Err(TemplateError::Malformed(offset + start));
            }
            if !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        Ok(out)
    }

    /// Fills every placeholder from `values`. Fails unless each placeholder has a non-blank
    /// value and every value names a placeholder.
    pub fn fill(&self, values: &BTreeMap<String, String>) -> Result<FilledNote, TemplateError> {
        let names = self.placeholders()?;
        let unfilled: Vec<String> = names
            .iter()
            .filter(|n| values.get(*n).is_none_or(|v| v.trim().is_empty()))
            .cloned()
            .collect();
        if !unfilled.is_empty() {
            return Err(TemplateError::Unfilled(unfilled));
        }
        let unknown: Vec<String> = values
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(TemplateError::Unknown(unknown));
        }
        let mut text = String::with_capacity(self.text.len());
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find("{{") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Malformed(start))?;
            let name = after[..end].trim();
            text.push_str(values.get(name).map(String::as_str).unwrap_or_default());
            rest = &after[end + 2..];
        }
        text.push_str(rest);
        Ok(FilledNote {
            template: self.name.clone(),
            text,
        })
    }
}

/// A note to the user made from a template with every placeholder filled. The only way to make
/// one is [`NoteTemplate::fill`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilledNote {
    template: String,
    text: String,
}

impl FilledNote {
    /// The template it was made from.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The finished text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A rule of an instance (as fetched from `GET /api/v1/instance/rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceRule {
    /// The rule id on the instance.
    pub id: String,
    /// The rule.
    pub text: String,
    /// The longer explanation.
    pub hint: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_must_be_filled_completely() {
        let t = NoteTemplate::new("w", "Hello {{name}}, rule {{ rule }} and {{name}} again.");
        assert_eq!(t.placeholders().unwrap(), vec!["name", "rule"]);
        let mut v = BTreeMap::new();
        v.insert("name".to_owned(), "Ann".to_owned());
        assert_eq!(
            t.fill(&v).unwrap_err(),
            TemplateError::Unfilled(vec!["rule".into()])
        );
        v.insert("rule".to_owned(), "  ".to_owned());
        assert!(matches!(t.fill(&v), Err(TemplateError::Unfilled(_))));
        v.insert("rule".to_owned(), "2".to_owned());
        let n = t.fill(&v).unwrap();
        assert_eq!(n.text(), "Hello Ann, rule 2 and Ann again.");
        assert_eq!(n.template(), "w");
        v.insert("extra".to_owned(), "x".to_owned());
        assert_eq!(
            t.fill(&v).unwrap_err(),
            TemplateError::Unknown(vec!["extra".into()])
        );
        assert!(matches!(
            NoteTemplate::new("b", "oops {{x").placeholders(),
            Err(TemplateError::Malformed(5))
        ));
        assert!(NoteTemplate::new("b", "bad {{a b}}")
            .placeholders()
            .is_err());
    }

    #[test]
    fn remote_accounts_get_only_what_mastodon_allows() {
        assert_eq!(
            Action::allowed_for(true),
            &[Action::Sensitive, Action::Silence, Action::Suspend]
        );
        assert_eq!(Action::allowed_for(false).len(), 5);
        assert_eq!("suspend".parse::<Action>(), Ok(Action::Suspend));
        assert!("ban"
            .parse::<Action>()
            .unwrap_err()
            .contains("expected one of"));
    }

    #[test]
    fn sla_states() {
        let now = Timestamp(10_000_000);
        assert_eq!(SlaState::of(Timestamp(9_999_999), now), SlaState::Overdue);
        assert_eq!(SlaState::of(now, now), SlaState::DueSoon);
        assert_eq!(SlaState::of(now.plus(DUE_SOON), now), SlaState::Ok);
    }

    #[test]
    fn settings_are_validated() {
        assert!(LinkSettings::default().validate().is_ok());
        let mut s = LinkSettings {
            claim_minutes: 0,
            ..LinkSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "claim_minutes");
        s.claim_minutes = 30;
        s.templates = vec![NoteTemplate::new("a", "x"), NoteTemplate::new("a", "y")];
        assert_eq!(s.validate().unwrap_err().0, "templates");
    }
}
