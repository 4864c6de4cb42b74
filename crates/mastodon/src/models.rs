//! The entities the admin API returns, as tolerant serde models.
//!
//! Unknown fields are ignored; fields that some servers omit or send as `null` are `Option`
//! or fall back to a default; ids are accepted as strings or numbers (GoToSocial, Akkoma and
//! old Mastodon versions differ). Field names follow `mastodon-api.md` §6–§9.

use serde::{Deserialize, Deserializer, Serialize};

use crate::access::Permissions;
use crate::secret::Secret;

/// Deserialises `null` (or a missing field, with `#[serde(default)]`) as `T::default()`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Accepts a string or an integer id and keeps it as a string.
pub(crate) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::I(i) => i.to_string(),
        Id::U(u) => u.to_string(),
    })
}

/// Like [`id_string`] for optional ids.
fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::S(s) => s,
        Id::I(i) => i.to_string(),
        Id::U(u) => u.to_string(),
    }))
}

/// A public `Account` (the parts Guildhall uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The account id on its instance.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The username, without domain.
    #[serde(default, deserialize_with = "null_default")]
    pub username: String,
    /// `username` for local accounts, `username@domain` for remote ones.
    #[serde(default, deserialize_with = "null_default")]
    pub acct: String,
    /// The display name.
    #[serde(default, deserialize_with = "null_default")]
    pub display_name: String,
    /// The profile page.
    #[serde(default)]
    pub url: Option<String>,
    /// Whether the account is a bot (or an instance actor).
    #[serde(default, deserialize_with = "null_default")]
    pub bot: bool,
    /// When the account was created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The user's role (only on `CredentialAccount`, Mastodon 4.0+).
    #[serde(default)]
    pub role: Option<Role>,
}

/// A user role (`Role` entity, Mastodon 4.0+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// The role id.
    #[serde(default, deserialize_with = "opt_id_string")]
    pub id: Option<String>,
    /// The role name, e.g. "Moderator".
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The permission bitmask (sent as a decimal string; numbers are accepted too).
    #[serde(default, deserialize_with = "Permissions::deserialize_lenient")]
    pub permissions: Option<Permissions>,
}

/// An IP address an account used (`Admin::Ip`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminIp {
    /// The address.
    #[serde(default, deserialize_with = "null_default")]
    pub ip: String,
    /// When it was last used.
    #[serde(default)]
    pub used_at: Option<String>,
}

/// `Admin::Account`: an account as moderators see it. Remote accounts have `domain` set and
/// most user fields `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminAccount {
    /// The account id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The username.
    #[serde(default, deserialize_with = "null_default")]
    pub username: String,
    /// The domain of a remote account; `None` for local ones.
    #[serde(default)]
    pub domain: Option<String>,
    /// When the account was created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The e-mail address (local accounts only).
    #[serde(default)]
    pub email: Option<String>,
    /// The most recent IP (local accounts only).
    #[serde(default)]
    pub ip: Option<String>,
    /// All known IPs (local accounts only).
    #[serde(default)]
    pub ips: Option<Vec<AdminIp>>,
    /// The interface locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// The text of the invite request.
    #[serde(default)]
    pub invite_request: Option<String>,
    /// The user's role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Whether the e-mail address was confirmed (`None` for remote accounts).
    #[serde(default)]
    pub confirmed: Option<bool>,
    /// Whether the account was approved (`None` for remote accounts).
    #[serde(default)]
    pub approved: Option<bool>,
    /// Whether login is disabled (`None` for remote accounts).
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Whether media is forced sensitive.
    #[serde(default, deserialize_with = "null_default")]
    pub sensitized: bool,
    /// Whether the account is silenced (limited).
    #[serde(default, deserialize_with = "null_default")]
    pub silenced: bool,
    /// Whether the account is suspended.
    #[serde(default, deserialize_with = "null_default")]
    pub suspended: bool,
    /// The public account.
    #[serde(default)]
    pub account: Option<Account>,
}

impl AdminAccount {
    /// `username` for local accounts, `username@domain` for remote ones.
    pub fn acct(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{}", self.username, d),
            None => self.username.clone(),
        }
    }
}

/// A media attachment of a reported status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaAttachment {
    /// The attachment id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// `image`, `video`, `gifv`, `audio` or `unknown`.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub kind: String,
    /// The file on the instance.
    #[serde(default)]
    pub url: Option<String>,
    /// A small preview.
    #[serde(default)]
    pub preview_url: Option<String>,
    /// The file on its origin server (remote media).
    #[serde(default)]
    pub remote_url: Option<String>,
    /// Alt text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A `Status` attached to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The status id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The ActivityPub URI.
    #[serde(default)]
    pub uri: Option<String>,
    /// The web page.
    #[serde(default)]
    pub url: Option<String>,
    /// When it was posted.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The HTML content.
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
    /// The content warning.
    #[serde(default, deserialize_with = "null_default")]
    pub spoiler_text: String,
    /// Whether it is marked sensitive.
    #[serde(default, deserialize_with = "null_default")]
    pub sensitive: bool,
    /// `public`, `unlisted`, `private` or `direct`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// The author.
    #[serde(default)]
    pub account: Option<Account>,
    /// Attached media.
    #[serde(default, deserialize_with = "null_default")]
    pub media_attachments: Vec<MediaAttachment>,
}

/// An instance rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The rule.
    #[serde(default, deserialize_with = "null_default")]
    pub text: String,
    /// A longer explanation (4.3+).
    #[serde(default, deserialize_with = "null_default")]
    pub hint: String,
}

/// A report category. Unknown categories are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ReportCategory {
    /// Spam.
    Spam,
    /// Illegal content (4.2+).
    Legal,
    /// Violates instance rules.
    Violation,
    /// Anything else.
    #[default]
    Other,
    /// A category this client does not know.
    Unknown(String),
}

impl ReportCategory {
    /// The API spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Spam => "spam",
            Self::Legal => "legal",
            Self::Violation => "violation",
            Self::Other => "other",
            Self::Unknown(s) => s,
        }
    }
}

impl From<String> for ReportCategory {
    fn from(s: String) -> Self {
        match s.as_str() {
            "spam" => Self::Spam,
            "legal" => Self::Legal,
            "violation" => Self::Violation,
            "other" => Self::Other,
            _ => Self::Unknown(s),
        }
    }
}

impl From<ReportCategory> for String {
    fn from(c: ReportCategory) -> Self {
        c.as_str().to_owned()
    }
}

/// `Admin::Report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminReport {
    /// The report id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Whether the report is resolved.
    #[serde(default, deserialize_with = "null_default")]
    pub action_taken: bool,
    /// When it was resolved.
    #[serde(default)]
    pub action_taken_at: Option<String>,
    /// The category.
    #[serde(default, deserialize_with = "null_default")]
    pub category: ReportCategory,
    /// The reporter's comment.
    #[serde(default, deserialize_with = "null_default")]
    pub comment: String,
    /// Whether the report was forwarded to the target's server.
    #[serde(default, deserialize_with = "null_default")]
    pub forwarded: bool,
    /// When it was filed.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The reporter (a remote instance actor for forwarded reports).
    pub account: AdminAccount,
    /// The reported account.
    pub target_account: AdminAccount,
    /// The moderator the report is assigned to.
    #[serde(default)]
    pub assigned_account: Option<AdminAccount>,
    /// The moderator who resolved it.
    #[serde(default)]
    pub action_taken_by_account: Option<AdminAccount>,
    /// The reported statuses, with their media.
    #[serde(default, deserialize_with = "null_default")]
    pub statuses: Vec<Status>,
    /// The rules the report cites.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<Rule>,
    /// GoToSocial's resolution comment.
    #[serde(default)]
    pub action_taken_comment: Option<String>,
}

impl AdminReport {
    /// For a forwarded report, the domain it came from (the reporter is the remote instance
    /// actor).
    pub fn forwarded_from(&self) -> Option<&str> {
        self.account.domain.as_deref()
    }
}

/// The severity of a domain block. Unknown values are kept as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Limit (hide from public timelines, follow requests needed).
    Silence,
    /// Suspend: cut all federation.
    Suspend,
    /// No limitation (only `reject_media` / `reject_reports`).
    Noop,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

impl Severity {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Silence => "silence",
            Self::Suspend => "suspend",
            Self::Noop => "noop",
            Self::Unknown => "unknown",
        }
    }
}

/// `Admin::DomainBlock`. GoToSocial omits `severity`, `reject_media`, `reject_reports` and
/// `digest` (every GoToSocial block is a suspension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainBlock {
    /// The block id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The blocked domain (normalised: lower-case, punycode).
    pub domain: String,
    /// SHA-256 hex of the domain (4.3+).
    #[serde(default)]
    pub digest: Option<String>,
    /// When the block was made.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The severity; `None` when the server does not say (GoToSocial).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Whether media from the domain is rejected.
    #[serde(default)]
    pub reject_media: Option<bool>,
    /// Whether reports from the domain are rejected.
    #[serde(default)]
    pub reject_reports: Option<bool>,
    /// The moderators' note.
    #[serde(default)]
    pub private_comment: Option<String>,
    /// The public reason.
    #[serde(default)]
    pub public_comment: Option<String>,
    /// Whether the domain is obfuscated in the public list.
    #[serde(default, deserialize_with = "null_default")]
    pub obfuscate: bool,
}

impl DomainBlock {
    /// The severity in force: what the server says, or `Suspend` when it says nothing
    /// (GoToSocial blocks are always suspensions).
    pub fn effective_severity(&self) -> Severity {
        self.severity.unwrap_or(Severity::Suspend)
    }
}

/// The fields of a domain block to create or update. `None` fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DomainBlockParams {
    /// The severity (`silence` is the server's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Reject media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_media: Option<bool>,
    /// Reject reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_reports: Option<bool>,
    /// Moderators' note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_comment: Option<String>,
    /// Public reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_comment: Option<String>,
    /// Obfuscate in the public list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub obfuscate: Option<bool>,
}

/// `Admin::DomainAllow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainAllow {
    /// The allow id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The allowed domain.
    pub domain: String,
    /// When it was made.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// An entry of the public `/api/v1/instance/domain_blocks` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicDomainBlock {
    /// The domain, possibly obfuscated with `*`.
    pub domain: String,
    /// SHA-256 hex of the real domain.
    #[serde(default)]
    pub digest: Option<String>,
    /// `silence` or `suspend`.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// The public reason.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The type of an account action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    /// A warning only.
    None,
    /// Force media sensitive (3.3+).
    Sensitive,
    /// Disable login.
    Disable,
    /// Limit the account.
    Silence,
    /// Suspend the account.
    Suspend,
}

impl ActionType {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sensitive => "sensitive",
            Self::Disable => "disable",
            Self::Silence => "silence",
            Self::Suspend => "suspend",
        }
    }
}

/// An account action (`POST /api/v1/admin/accounts/:id/action`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountAction {
    /// What to do.
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// The report this action answers. With `none` only that report is resolved; any other
    /// type resolves every open report on the account (Mastodon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_id: Option<String>,
    /// A stored warning preset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning_preset_id: Option<String>,
    /// Explanation to the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Whether to e-mail the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_email_notification: Option<bool>,
}

impl AccountAction {
    /// An action of the given type with no other parameters.
    pub fn new(kind: ActionType) -> Self {
        Self {
            kind,
            report_id: None,
            warning_preset_id: None,
            text: None,
            send_email_notification: None,
        }
    }

    /// Attach the report this action answers.
    pub fn for_report(mut self, report_id: impl Into<String>) -> Self {
        self.report_id = Some(report_id.into());
        self
    }
}

/// Filters for `GET /api/v1/admin/reports`. Without `resolved: Some(true)` servers return
/// only unresolved reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportFilter {
    /// `Some(true)`: only resolved; otherwise only unresolved.
    pub resolved: Option<bool>,
    /// Reports filed by this account.
    pub account_id: Option<String>,
    /// Reports about this account.
    pub target_account_id: Option<String>,
    /// Page size (servers clamp to 200).
    pub limit: Option<u32>,
}

/// Contact information of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceContact {
    /// The contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// The contact account.
    #[serde(default)]
    pub account: Option<Account>,
}

/// `GET /api/v2/instance` (the parts Guildhall shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance's domain.
    #[serde(default, deserialize_with = "null_default")]
    pub domain: String,
    /// Its title.
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    /// The software version string (GoToSocial and Akkoma put their own here).
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Source code URL.
    #[serde(default)]
    pub source_url: Option<String>,
    /// Short description.
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    /// Contact information.
    #[serde(default)]
    pub contact: Option<InstanceContact>,
    /// The rules.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<Rule>,
}

/// `GET /api/v1/instance` (the older shape), read only to fill an [`Instance`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InstanceV1 {
    /// The domain (v1 calls it `uri`).
    #[serde(default, deserialize_with = "null_default")]
    pub uri: String,
    /// The title.
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    /// The version string.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// The short description.
    #[serde(default, deserialize_with = "null_default")]
    pub short_description: String,
    /// The contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// The contact account.
    #[serde(default)]
    pub contact_account: Option<Account>,
    /// The rules (3.4+).
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<Rule>,
}

impl From<InstanceV1> for Instance {
    fn from(v: InstanceV1) -> Self {
        let domain = v
            .uri
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self {
            domain,
            title: v.title,
            version: v.version,
            source_url: None,
            description: v.short_description,
            contact: Some(InstanceContact {
                email: v.email,
                account: v.contact_account,
            }),
            rules: v.rules,
        }
    }
}

/// The software of a NodeInfo document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfoSoftware {
    /// e.g. `mastodon`, `gotosocial`, `akkoma`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The version string.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
}

/// A NodeInfo 2.x document (the parts Guildhall uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The schema version, e.g. `2.0`.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// The server software.
    pub software: NodeInfoSoftware,
    /// Federation protocols.
    #[serde(default, deserialize_with = "null_default")]
    pub protocols: Vec<String>,
    /// Whether sign-ups are open.
    #[serde(default, rename = "openRegistrations")]
    pub open_registrations: Option<bool>,
}

/// One data point of a measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureData {
    /// The day.
    #[serde(default, deserialize_with = "null_default")]
    pub date: String,
    /// The value (a string in Mastodon's JSON).
    #[serde(default, deserialize_with = "number_string")]
    pub value: String,
}

/// `Admin::Measure`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// The key, e.g. `instance_follows`.
    pub key: String,
    /// The unit, if any.
    #[serde(default)]
    pub unit: Option<String>,
    /// The total over the period (a string in Mastodon's JSON).
    #[serde(default, deserialize_with = "number_string")]
    pub total: String,
    /// The total of the previous period, when sent.
    #[serde(default)]
    pub previous_total: Option<serde_json::Value>,
    /// Per-day values.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<MeasureData>,
}

impl Measure {
    /// The total as a number, when it is one.
    pub fn total_value(&self) -> Option<i64> {
        self.total.trim().parse().ok()
    }
}

fn number_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        N(serde_json::Number),
    }
    Ok(match Option::<V>::deserialize(d)? {
        Some(V::S(s)) => s,
        Some(V::N(n)) => n.to_string(),
        None => String::new(),
    })
}

/// A request for `POST /api/v1/admin/measures`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureQuery {
    /// The keys, e.g. `instance_follows`.
    pub keys: Vec<String>,
    /// First day, `YYYY-MM-DD`.
    pub start_at: String,
    /// Last day, `YYYY-MM-DD`.
    pub end_at: String,
    /// The domain for `instance_*` keys.
    pub domain: Option<String>,
}

/// The `Application` of a token (`GET /api/v1/apps/verify_credentials`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// The app name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Its homepage.
    #[serde(default)]
    pub website: Option<String>,
    /// The scopes the app was registered with (4.3+; not necessarily the token's).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A registered OAuth app (`CredentialApplication`). The secret never appears in `Debug`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredApp {
    /// The app id.
    #[serde(default, deserialize_with = "opt_id_string")]
    pub id: Option<String>,
    /// The app name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: Secret,
    /// The registered redirect URIs (older servers send only `redirect_uri`).
    #[serde(default, deserialize_with = "null_default")]
    pub redirect_uris: Vec<String>,
    /// The deprecated single redirect URI (several joined by `\n`).
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// The registered scopes (when the server says).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl RegisteredApp {
    /// The registered redirect URIs, reading the deprecated field when needed.
    pub fn redirect_uris(&self) -> Vec<String> {
        if !self.redirect_uris.is_empty() {
            return self.redirect_uris.clone();
        }
        self.redirect_uri
            .as_deref()
            .map(|s| s.split('\n').map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// The answer of `POST /oauth/token`. The token never appears in `Debug`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The bearer token.
    pub access_token: Secret,
    /// `Bearer`.
    #[serde(default, deserialize_with = "null_default")]
    pub token_type: String,
    /// The granted scopes, space-separated.
    #[serde(default, deserialize_with = "null_default")]
    pub scope: String,
    /// Unix time of issue.
    #[serde(default)]
    pub created_at: Option<i64>,
}

impl TokenGrant {
    /// The granted scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split_whitespace().map(str::to_owned).collect()
    }
}

/// RFC 8414 metadata (`/.well-known/oauth-authorization-server`, Mastodon 4.3+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthMetadata {
    /// The issuer.
    #[serde(default, deserialize_with = "null_default")]
    pub issuer: String,
    /// Where to send the admin to authorise.
    pub authorization_endpoint: String,
    /// Where to exchange codes.
    pub token_endpoint: String,
    /// Mastodon's app registration endpoint.
    #[serde(default)]
    pub app_registration_endpoint: Option<String>,
    /// Where to revoke tokens.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// The scopes the server knows.
    #[serde(default, deserialize_with = "null_default")]
    pub scopes_supported: Vec<String>,
    /// PKCE methods (`S256`).
    #[serde(default, deserialize_with = "null_default")]
    pub code_challenge_methods_supported: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_from_other_servers_parse() {
        // Numeric ids, nulls where lists are expected, unknown fields and category,
        // a role with numeric permissions, missing optional fields.
        let json = r#"{
            "id": 17, "action_taken": null, "category": "impersonation", "comment": null,
            "forwarded": null, "extra_field": {"nested": [1, 2]},
            "account": {"id": 5, "username": "reporter", "domain": null,
                        "role": {"id": 3, "name": "Owner", "permissions": 1048575}},
            "target_account": {"id": "9", "username": "t", "domain": "x.example",
                               "suspended": null, "ips": null},
            "statuses": [{"id": "99", "content": null, "media_attachments": null,
                          "account": {"id": "9"}}],
            "rules": null
        }"#;
        let r: AdminReport = serde_json::from_str(json).unwrap();
        assert_eq!(r.id, "17");
        assert!(!r.action_taken);
        assert_eq!(r.category, ReportCategory::Unknown("impersonation".into()));
        assert_eq!(r.category.as_str(), "impersonation");
        assert_eq!(r.account.id, "5");
        let role = r.account.role.clone().unwrap();
        assert_eq!(role.id.as_deref(), Some("3"));
        assert_eq!(role.permissions, Some(crate::Permissions(1_048_575)));
        assert!(!r.target_account.suspended);
        assert_eq!(r.statuses[0].content, "");
        assert!(r.statuses[0].media_attachments.is_empty());
        assert!(r.rules.is_empty());
        // Serialising keeps the category spelling.
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["category"], "impersonation");
    }

    #[test]
    fn domain_blocks_with_and_without_severity() {
        let gts: DomainBlock = serde_json::from_str(
            r#"{"id":"01H","domain":"gts.example","obfuscate":false,"public_comment":"",
                "private_comment":"","created_by":"01G","created_at":"2024-01-01T00:00:00.000Z"}"#,
        )
        .unwrap();
        assert_eq!(gts.severity, None);
        assert_eq!(gts.effective_severity(), Severity::Suspend);
        let m: DomainBlock = serde_json::from_str(
            r#"{"id":"1","domain":"m.example","severity":"quarantine","obfuscate":null}"#,
        )
        .unwrap();
        assert_eq!(m.severity, Some(Severity::Unknown));
        assert!(!m.obfuscate);
        assert!(serde_json::from_str::<DomainBlock>(r#"{"id":"1"}"#).is_err());
    }

    #[test]
    fn v1_instance_fills_the_v2_shape() {
        let v1: InstanceV1 = serde_json::from_str(
            r#"{"uri":"old.example","title":"Old","version":"3.5.3","short_description":"hi",
                "email":"a@old.example","rules":[{"id":"1","text":"Be nice"}]}"#,
        )
        .unwrap();
        let i = Instance::from(v1);
        assert_eq!(i.domain, "old.example");
        assert_eq!(i.rules[0].text, "Be nice");
        assert_eq!(i.contact.unwrap().email.as_deref(), Some("a@old.example"));
    }

    #[test]
    fn registered_app_reads_the_deprecated_redirect_uri() {
        let app: RegisteredApp = serde_json::from_str(
            r#"{"name":"G","client_id":"c","client_secret":"sekrit-value",
                "redirect_uri":"https://a.example/cb\nhttps://a.example/cb2"}"#,
        )
        .unwrap();
        assert_eq!(
            app.redirect_uris(),
            vec![
                "https://a.example/cb".to_owned(),
                "https://a.example/cb2".to_owned()
            ]
        );
        assert!(!format!("{app:?}").contains("sekrit-value"));
        assert_eq!(app.client_secret.expose(), "sekrit-value");
    }
}
