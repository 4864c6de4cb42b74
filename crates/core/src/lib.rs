//! Guildhall domain types shared by every crate: ids, validated values (`Email`, `Domain`,
//! `Password`), organisation kinds, roles, the permission matrix and API-token scopes.
//!
//! Nothing here does I/O. Values are parsed once at the edge (`FromStr`, `TryFrom`) and are
//! valid from then on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod time;
pub use time::Timestamp;

/// Why a value was refused. The message names what was wrong; it never echoes secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An e-mail address that is not of the form `local@domain`.
    #[error("invalid e-mail address: {0}")]
    Email(String),
    /// A domain name that is not a valid host name.
    #[error("invalid domain: {0}")]
    Domain(String),
    /// A password that is too short or too long.
    #[error("invalid password: {0}")]
    Password(String),
    /// An unknown name for an enumerated value (role, kind, scope, …).
    #[error("unknown {what}: {value:?} (expected one of: {expected})")]
    Unknown {
        /// What was being parsed ("role", "organisation kind", …).
        what: &'static str,
        /// The text that was given.
        value: String,
        /// The accepted names, comma-separated.
        expected: String,
    },
    /// A name that is empty or too long.
    #[error("invalid name: {0}")]
    Name(String),
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// An account (a person who can sign in).
    AccountId
);
id_type!(
    /// An organisation (a cooperative or an instance).
    OrgId
);
id_type!(
    /// An invitation link.
    InvitationId
);
id_type!(
    /// An API token.
    ApiTokenId
);
id_type!(
    /// A background job.
    JobId
);
id_type!(
    /// An entry of the audit log (its position in the chain, from 1).
    AuditId
);

/// A validated, lower-cased e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |why: &str| ParseError::Email(why.to_string());
        if s.len() > 254 {
            return Err(bad("longer than 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| bad("missing '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before '@' must have 1 to 64 characters"));
        }
        if local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == '<' || c == '>')
        {
            return Err(bad("the part before '@' has a forbidden character"));
        }
        let domain: Domain = domain
            .parse()
            .map_err(|_| bad("the part after '@' is not a valid domain"))?;
        Ok(Email(format!(
            "{}@{}",
            local.to_lowercase(),
            domain.as_str()
        )))
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated, lower-cased DNS host name, such as an instance's domain (`social.example`).
/// At least two labels; labels of letters, digits and hyphens, not starting or ending with a
/// hyphen; at most 253 characters. A trailing dot is removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_suffix('.').unwrap_or(t).to_ascii_lowercase();
        let bad = |why: &str| ParseError::Domain(format!("{s:?}: {why}"));
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if t.len() > 253 {
            return Err(bad("longer than 253 characters"));
        }
        let labels: Vec<&str> = t.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("needs at least two labels (like social.example)"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("each label must have 1 to 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "only letters, digits, '-' and '_' are allowed (use punycode for others)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label may not start or end with '-'"));
            }
        }
        Ok(Domain(t))
    }
}

impl TryFrom<String> for Domain {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed, 8 to 1024 characters. Its `Debug` output is redacted and it has no
/// `Display`, so it cannot end up in logs by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl Password {
    /// Shortest accepted password, in characters.
    pub const MIN_CHARS: usize = 8;
    /// Longest accepted password, in characters.
    pub const MAX_CHARS: usize = 1024;

    /// The password text (for hashing only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl FromStr for Password {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.chars().count();
        if n < Self::MIN_CHARS {
            return Err(ParseError::Password(format!(
                "must have at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if n > Self::MAX_CHARS {
            return Err(ParseError::Password(format!(
                "must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Password(s.to_owned()))
    }
}

impl TryFrom<String> for Password {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A display name (of an organisation or a person): trimmed, 1 to 200 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseError::Name("must not be empty".into()));
        }
        if t.chars().count() > 200 {
            return Err(ParseError::Name("must have at most 200 characters".into()));
        }
        if t.chars().any(char::is_control) {
            return Err(ParseError::Name(
                "must not contain control characters".into(),
            ));
        }
        Ok(Name(t.to_owned()))
    }
}

impl TryFrom<String> for Name {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a fieldless enum with stable string forms (`as_str`, `FromStr`, `Display`,
/// serde as the string) and an `ALL` list.
macro_rules! string_enum {
    (
        $(#[$doc:meta])* $name:ident, $what:literal {
            $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable string form (used in the database, URLs, forms and JSON).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($text => Ok($name::$variant),)+
                    other => Err(ParseError::Unknown {
                        what: $what,
                        value: other.chars().take(64).collect(),
                        expected: [$($text),+].join(", "),
                    }),
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

string_enum!(
    /// What an organisation is.
    OrgKind, "organisation kind" {
        /// A moderation cooperative (or a federation of instances and co-ops).
        Cooperative = "cooperative",
        /// A Fediverse instance; it has a domain.
        Instance = "instance",
    }
);

string_enum!(
    /// A person's role in one organisation.
    Role, "role" {
        /// Holds the organisation: everything, including naming other owners.
        Owner = "owner",
        /// Runs the organisation day to day: members, invitations, settings, audit, jobs.
        Admin = "admin",
        /// Works the moderation queue.
        Moderator = "moderator",
        /// An ordinary member: sees the organisation, votes.
        Member = "member",
        /// Steward or treasurer: budgets, elections, sortition, ledger, legal requests.
        Steward = "steward",
        /// Rapid-response team: incidents and emergency measures.
        Responder = "responder",
        /// After-attack care team: check-ins and care notes (visible only to them).
        Care = "care",
    }
);

string_enum!(
    /// What an API token may be used for. A request needs the scope of the permission it
    /// exercises ([`Permission::scope`]) as well as a role that allows it.
    Scope, "scope" {
        /// Read-only access.
        Read = "read",
        /// Changes (includes nothing of `admin`).
        Write = "write",
        /// Administration: members, invitations, audit log, jobs.
        Admin = "admin",
    }
);

impl Scope {
    /// Parses a space- or comma-separated list of scopes (as stored and as typed in forms).
    /// Duplicates are removed; the result is sorted.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, ParseError> {
        let mut out = Vec::new();
        for part in s.split(|c: char| c == ',' || c.is_whitespace()) {
            if part.is_empty() {
                continue;
            }
            out.push(part.parse()?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The stored form of a list of scopes: names separated by single spaces.
    pub fn format_list(scopes: &[Scope]) -> String {
        let mut v = scopes.to_vec();
        v.sort();
        v.dedup();
        v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// Something a person may or may not do within one organisation. Every route checks exactly
/// one permission with [`Role::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the organisation itself (name, kind, domain).
    ViewOrganisation,
    /// See who the members are and their roles.
    ViewMembers,
    /// Change the organisation's name or settings.
    EditOrganisation,
    /// Delete the organisation.
    DeleteOrganisation,
    /// Create, list and revoke invitation links.
    ManageInvitations,
    /// Change members' roles and remove members.
    ManageMembers,
    /// Give someone this role (by invitation or by changing a role); only owners may name
    /// owners.
    GrantRole(Role),
    /// Read the audit log.
    ViewAuditLog,
    /// See background jobs, including failed (dead) ones.
    ViewJobs,
    /// Retry a failed job.
    RetryJobs,
    /// Work the moderation queue.
    Moderate,
    /// Run budgets, elections, sortition, the ledger and legal requests.
    Steward,
    /// Declare incidents and raise emergency measures.
    Respond,
    /// Read and write after-attack care notes.
    Care,
    /// Take part: vote, propose, be drawn.
    Participate,
}

impl Permission {
    /// Every permission (with `GrantRole` once per role): for tables that must cover them all.
    pub fn all() -> Vec<Permission> {
        let mut v = vec![
            Permission::ViewOrganisation,
            Permission::ViewMembers,
            Permission::EditOrganisation,
            Permission::DeleteOrganisation,
            Permission::ManageInvitations,
            Permission::ManageMembers,
        ];
        v.extend(Role::ALL.iter().map(|r| Permission::GrantRole(*r)));
        v.extend([
            Permission::ViewAuditLog,
            Permission::ViewJobs,
            Permission::RetryJobs,
            Permission::Moderate,
            Permission::Steward,
            Permission::Respond,
            Permission::Care,
            Permission::Participate,
        ]);
        v
    }

    /// The API-token scope a request needs to exercise this permission.
    pub fn scope(self) -> Scope {
        match self {
            Permission::ViewOrganisation | Permission::ViewMembers => Scope::Read,
            Permission::EditOrganisation
            | Permission::Moderate
            | Permission::Steward
            | Permission::Respond
            | Permission::Care
            | Permission::Participate => Scope::Write,
            Permission::DeleteOrganisation
            | Permission::ManageInvitations
            | Permission::ManageMembers
            | Permission::GrantRole(_)
            | Permission::ViewAuditLog
            | Permission::ViewJobs
            | Permission::RetryJobs => Scope::Admin,
        }
    }
}

impl Role {
    /// THE permission matrix: whether a member with this role may do `p` in their organisation.
    /// People who are not members of an organisation may do nothing in it.
    pub fn allows(self, p: Permission) -> bool {
        use Permission as P;
        use Role as R;
        match p {
            P::ViewOrganisation | P::ViewMembers | P::Participate => true,
            P::EditOrganisation
            | P::ManageInvitations
            | P::ManageMembers
            | P::ViewAuditLog
            | P::ViewJobs
            | P::RetryJobs => matches!(self, R::Owner | R::Admin),
            P::DeleteOrganisation => self == R::Owner,
            P::GrantRole(R::Owner) => self == R::Owner,
            P::GrantRole(_) => matches!(self, R::Owner | R::Admin),
            P::Moderate => matches!(self, R::Owner | R::Admin | R::Moderator),
            P::Steward => matches!(self, R::Owner | R::Admin | R::Steward),
            P::Respond => matches!(self, R::Owner | R::Admin | R::Responder),
            // Care notes are for the care team only: not even owners read them.
            P::Care => self == R::Care,
        }
    }
}

/// Whether a token with `scopes` may be used for `p` (the role check is separate).
pub fn scopes_allow(scopes: &[Scope], p: Permission) -> bool {
    let need = p.scope();
    scopes.iter().any(|s| match need {
        Scope::Read => true,
        Scope::Write => matches!(s, Scope::Write | Scope::Admin),
        Scope::Admin => *s == Scope::Admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_and_lowercased() {
        let e: Email = " Alice@Social.Example ".parse().unwrap();
        assert_eq!(e.as_str(), "alice@social.example");
        for bad in [
            "",
            "alice",
            "@social.example",
            "alice@",
            "alice@localhost",
            "a b@x.example",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn domains_are_validated() {
        let d: Domain = "Mastodon.Social.".parse().unwrap();
        assert_eq!(d.as_str(), "mastodon.social");
        for bad in [
            "",
            "social",
            "-a.example",
            "a-.example",
            "a..example",
            "a b.example",
            "x/y.example",
        ] {
            assert!(bad.parse::<Domain>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_debug_is_redacted() {
        let p: Password = "correct horse battery".parse().unwrap();
        assert!(!format!("{p:?}").contains("horse"));
        assert!("short".parse::<Password>().is_err());
    }

    #[test]
    fn string_forms_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
            assert_eq!(
                serde_json::to_string(r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        for k in OrgKind::ALL {
            assert_eq!(k.as_str().parse::<OrgKind>().unwrap(), *k);
        }
        let err = "king".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("owner") && err.contains("king"), "{err}");
    }

    #[test]
    fn permission_matrix() {
        use Permission as P;
        // Owners can do everything except read care notes; only care reads care notes.
        for p in Permission::all() {
            assert_eq!(Role::Owner.allows(p), p != P::Care, "{p:?}");
        }
        assert!(Role::Care.allows(P::Care));
        assert!(!Role::Admin.allows(P::GrantRole(Role::Owner)));
        assert!(Role::Admin.allows(P::GrantRole(Role::Moderator)));
        assert!(!Role::Admin.allows(P::DeleteOrganisation));
        assert!(!Role::Member.allows(P::ManageInvitations));
        assert!(Role::Moderator.allows(P::Moderate));
        assert!(!Role::Steward.allows(P::Moderate));
        for r in Role::ALL {
            assert!(r.allows(P::ViewOrganisation));
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            Scope::parse_list("write, read read").unwrap(),
            vec![Scope::Read, Scope::Write]
        );
        assert_eq!(
            Scope::format_list(&[Scope::Admin, Scope::Read]),
            "read admin"
        );
        assert!(Scope::parse_list("read, root").is_err());
        assert!(scopes_allow(&[Scope::Read], Permission::ViewMembers));
        assert!(!scopes_allow(&[Scope::Read], Permission::EditOrganisation));
        assert!(scopes_allow(&[Scope::Write], Permission::EditOrganisation));
        assert!(!scopes_allow(&[Scope::Write], Permission::ManageMembers));
        assert!(scopes_allow(&[Scope::Admin], Permission::ManageMembers));
    }
}
