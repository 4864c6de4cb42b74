//! The fake's data and how it renders as Mastodon JSON.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::seed::{
    AccountSeed, Flavor, Injected, PublicBlocksMode, ReportSeed, StatusSeed, WebhookFault,
};

/// A report as stored.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub seed: ReportSeed,
    pub action_taken_at: Option<String>,
    pub action_taken_by: Option<u64>,
    pub action_taken_comment: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A domain block as stored.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub id: u64,
    pub domain: String,
    pub severity: String,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub obfuscate: bool,
    pub public_comment: Option<String>,
    pub private_comment: Option<String>,
    pub created_at: String,
    pub created_by: Option<u64>,
}

/// A domain allow as stored.
#[derive(Debug, Clone)]
pub(crate) struct Allow {
    pub id: u64,
    pub domain: String,
    pub created_at: String,
}

/// A bearer token as stored.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub scopes: Vec<String>,
    pub account_id: Option<u64>,
    pub app_id: Option<u64>,
}

/// A registered OAuth app.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub id: u64,
    pub name: String,
    pub website: Option<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
}

/// An issued authorisation code.
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub app_id: u64,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub challenge: Option<String>,
    pub account_id: u64,
}

/// A webhook delivery the fake made (or dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `report.created` or `report.updated`.
    pub event: String,
    /// The raw body sent.
    pub body: Vec<u8>,
    /// The `X-Hub-Signature` sent.
    pub signature: String,
    /// The receiver's status; `None` when dropped or unreachable.
    pub status: Option<u16>,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// The answer's status.
    pub status: u16,
}

/// A write to the domain-block API that reached the handler (for exactly-once checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockWrite {
    /// `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// The (normalised) domain written.
    pub domain: String,
    /// The answer's status (200, or 422 when a block already covered the domain).
    pub status: u16,
}

/// An account action that the API accepted (for exactly-once checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// The target account.
    pub account_id: u64,
    /// `none`, `sensitive`, `disable`, `silence` or `suspend`.
    pub kind: String,
    /// The `report_id` sent, if any.
    pub report_id: Option<String>,
    /// The `text` sent, if any.
    pub text: Option<String>,
    /// The `send_email_notification` sent, if any.
    pub send_email_notification: Option<String>,
}

/// A rate-limit window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub started: Instant,
    pub started_utc: OffsetDateTime,
    pub count: u64,
}

/// Everything the fake knows.
#[derive(Debug)]
pub(crate) struct State {
    pub base_url: String,
    pub flavor: Flavor,
    pub title: String,
    pub accounts: BTreeMap<u64, AccountSeed>,
    pub statuses: BTreeMap<u64, StatusSeed>,
    pub rules: BTreeMap<u64, (String, String)>,
    pub reports: BTreeMap<u64, Report>,
    pub blocks: BTreeMap<u64, Block>,
    pub deleted_blocks: HashSet<u64>,
    pub allows: BTreeMap<u64, Allow>,
    pub measures: HashMap<(String, Option<String>), i64>,
    /// Follow relationships of local accounts to accounts on a domain: (domain, `YYYY-MM-DD`
    /// the follow was made). Unfollowing deletes the row, as Mastodon does.
    pub follows: Vec<(String, String)>,
    pub block_writes: Vec<BlockWrite>,
    pub account_actions: Vec<ActionRecord>,
    pub tokens: HashMap<String, Token>,
    pub apps: BTreeMap<u64, App>,
    pub codes: HashMap<String, AuthCode>,
    pub authorizing_account: Option<u64>,
    pub oauth_metadata: bool,
    pub public_blocks: PublicBlocksMode,
    pub links_prev_first: bool,
    pub next_id: u64,
    pub secret_counter: u64,
    // Faults and limits.
    pub outage: Option<u16>,
    pub outage_after: Option<(usize, u16)>,
    pub fail_next: VecDeque<u16>,
    pub inject_429: u32,
    pub inject_429_reset: Duration,
    pub injected: Vec<(String, Injected)>,
    pub lost_responses: Vec<(String, u16)>,
    pub delay_next: VecDeque<Duration>,
    pub rate_limit: u64,
    pub rate_window: Duration,
    pub windows: HashMap<String, Window>,
    // Webhooks.
    pub webhook: Option<(String, Vec<u8>)>,
    pub webhook_faults: VecDeque<WebhookFault>,
    pub deliveries: Vec<Delivery>,
    pub pending_events: Vec<(String, u64)>,
    pub requests: Vec<RequestRecord>,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            base_url: String::new(),
            flavor: Flavor::Mastodon,
            title: "Fake Mastodon".to_owned(),
            accounts: BTreeMap::new(),
            statuses: BTreeMap::new(),
            rules: BTreeMap::new(),
            reports: BTreeMap::new(),
            blocks: BTreeMap::new(),
            deleted_blocks: HashSet::new(),
            allows: BTreeMap::new(),
            measures: HashMap::new(),
            follows: Vec::new(),
            block_writes: Vec::new(),
            account_actions: Vec::new(),
            tokens: HashMap::new(),
            apps: BTreeMap::new(),
            codes: HashMap::new(),
            authorizing_account: None,
            oauth_metadata: true,
            public_blocks: PublicBlocksMode::Public,
            links_prev_first: false,
            next_id: 100_000,
            secret_counter: 0,
            outage: None,
            outage_after: None,
            fail_next: VecDeque::new(),
            inject_429: 0,
            inject_429_reset: Duration::from_millis(50),
            injected: Vec::new(),
            lost_responses: Vec::new(),
            delay_next: VecDeque::new(),
            rate_limit: 300,
            rate_window: Duration::from_secs(300),
            windows: HashMap::new(),
            webhook: None,
            webhook_faults: VecDeque::new(),
            deliveries: Vec::new(),
            pending_events: Vec::new(),
            requests: Vec::new(),
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A unique, unguessable-enough string for test secrets.
    pub(crate) fn secret(&mut self, prefix: &str) -> String {
        self.secret_counter += 1;
        let digest = Sha256::digest(format!(
            "{prefix}:{}:{}:{:?}",
            self.secret_counter,
            self.base_url,
            Instant::now()
        ));
        format!("{prefix}-{}", hex(&digest[..16]))
    }

    pub(crate) fn add_report(&mut self, seed: ReportSeed) {
        let now = now_string();
        let resolved = seed.resolved;
        let by = if resolved {
            self.authorizing_account
        } else {
            None
        };
        self.reports.insert(
            seed.id,
            Report {
                seed,
                action_taken_at: resolved.then(|| now.clone()),
                action_taken_by: by,
                action_taken_comment: None,
                created_at: now.clone(),
                updated_at: now,
            },
        );
    }

    pub(crate) fn add_block(&mut self, seed: crate::seed::BlockSeed) -> u64 {
        let id = self.next_id();
        let domain = normalize_domain(&seed.domain).unwrap_or(seed.domain);
        self.blocks.insert(
            id,
            Block {
                id,
                domain,
                severity: seed.severity,
                reject_media: seed.reject_media,
                reject_reports: seed.reject_reports,
                obfuscate: seed.obfuscate,
                public_comment: seed.public_comment,
                private_comment: seed.private_comment,
                created_at: now_string(),
                created_by: None,
            },
        );
        id
    }

    pub(crate) fn public_account_json(&self, id: u64) -> Value {
        let Some(a) = self.accounts.get(&id) else {
            return Value::Null;
        };
        let acct = match &a.domain {
            Some(d) => format!("{}@{}", a.username, d),
            None => a.username.clone(),
        };
        let url = match &a.domain {
            Some(d) => format!("https://{d}/@{}", a.username),
            None => format!("{}/@{}", self.base_url, a.username),
        };
        let mut v = json!({
            "id": a.id.to_string(),
            "username": a.username,
            "acct": acct,
            "display_name": a.display_name,
            "locked": false,
            "bot": a.bot,
            "discoverable": null,
            "group": false,
            "created_at": "2022-09-08T00:00:00.000Z",
            "note": "",
            "url": url,
            "avatar": format!("{}/avatars/original/missing.png", self.base_url),
            "header": format!("{}/headers/original/missing.png", self.base_url),
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": 0,
            "last_status_at": null,
            "emojis": [],
            "fields": [],
        });
        if let (Some((name, perms)), Some(obj)) = (&a.role, v.as_object_mut()) {
            obj.insert("role".to_owned(), role_json(name, *perms));
        }
        v
    }

    pub(crate) fn admin_account_json(&self, id: u64) -> Value {
        let Some(a) = self.accounts.get(&id) else {
            return Value::Null;
        };
        let local = a.domain.is_none();
        json!({
            "id": a.id.to_string(),
            "username": a.username,
            "domain": a.domain,
            "created_at": "2022-09-08T00:00:00.000Z",
            "email": if local { json!(a.email) } else { Value::Null },
            "ip": if local { json!("192.0.2.1") } else { Value::Null },
            "ips": if local { json!([{"ip": "192.0.2.1", "used_at": "2022-09-08T00:00:00.000Z"}]) } else { Value::Null },
            "locale": if local { json!("en") } else { Value::Null },
            "invite_request": null,
            "role": match (&a.role, local) {
                (Some((n, p)), true) => role_json(n, *p),
                (None, true) => role_json("", 0),
                _ => Value::Null,
            },
            "confirmed": if local { json!(true) } else { Value::Null },
            "approved": if local { json!(true) } else { Value::Null },
            "disabled": if local { json!(a.disabled) } else { Value::Null },
            "sensitized": a.sensitized,
            "silenced": a.silenced,
            "suspended": a.suspended,
            "account": self.public_account_json(id),
        })
    }

    fn status_json(&self, s: &StatusSeed) -> Value {
        let media: Vec<Value> = s
            .media
            .iter()
            .map(|m| {
                json!({
                    "id": m.id.to_string(),
                    "type": m.kind,
                    "url": format!("{}/system/media/{}.png", self.base_url, m.id),
                    "preview_url": format!("{}/system/media/{}_small.png", self.base_url, m.id),
                    "remote_url": null,
                    "description": m.description,
                    "blurhash": null,
                    "meta": {},
                })
            })
            .collect();
        json!({
            "id": s.id.to_string(),
            "uri": format!("{}/users/x/statuses/{}", self.base_url, s.id),
            "url": format!("{}/@x/{}", self.base_url, s.id),
            "created_at": "2022-09-09T20:00:00.000Z",
            "content": s.content,
            "spoiler_text": "",
            "sensitive": false,
            "visibility": "public",
            "language": "en",
            "account": self.public_account_json(s.account_id),
            "media_attachments": media,
            "mentions": [],
            "tags": [],
            "emojis": [],
        })
    }

    pub(crate) fn report_json(&self, r: &Report) -> Value {
        let s = &r.seed;
        let statuses: Vec<Value> = s
            .status_ids
            .iter()
            .filter_map(|id| self.statuses.get(id))
            .map(|st| self.status_json(st))
            .collect();
        let rules: Vec<Value> = s
            .rule_ids
            .iter()
            .filter_map(|id| {
                self.rules
                    .get(id)
                    .map(|(t, h)| json!({"id": id.to_string(), "text": t, "hint": h}))
            })
            .collect();
        let opt_acct = |id: Option<u64>| match id {
            Some(i) => self.admin_account_json(i),
            None => Value::Null,
        };
        let mut v = json!({
            "id": s.id.to_string(),
            "action_taken": s.resolved,
            "action_taken_at": r.action_taken_at,
            "category": s.category,
            "comment": s.comment,
            "forwarded": s.forwarded,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "account": self.admin_account_json(s.account_id),
            "target_account": self.admin_account_json(s.target_account_id),
            "assigned_account": opt_acct(s.assigned_account_id),
            "action_taken_by_account": opt_acct(r.action_taken_by),
            "statuses": statuses,
            "rules": rules,
        });
        if self.flavor == Flavor::GoToSocial {
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "action_taken_comment".to_owned(),
                    json!(r.action_taken_comment),
                );
            }
        }
        v
    }

    pub(crate) fn block_json(&self, b: &Block) -> Value {
        match self.flavor {
            Flavor::Mastodon => json!({
                "id": b.id.to_string(),
                "domain": b.domain,
                "digest": sha256_hex(&b.domain),
                "created_at": b.created_at,
                "severity": b.severity,
                "reject_media": b.reject_media,
                "reject_reports": b.reject_reports,
                "private_comment": b.private_comment,
                "public_comment": b.public_comment,
                "obfuscate": b.obfuscate,
            }),
            Flavor::GoToSocial => json!({
                "id": b.id.to_string(),
                "domain": b.domain,
                "obfuscate": b.obfuscate,
                "public_comment": b.public_comment.clone().unwrap_or_default(),
                "private_comment": b.private_comment.clone().unwrap_or_default(),
                "created_by": b.created_by.map(|i| i.to_string()).unwrap_or_default(),
                "created_at": b.created_at,
            }),
        }
    }

    /// `DomainBlock.rule_for`: the block on the domain or its nearest parent.
    pub(crate) fn rule_for(&self, domain: &str) -> Option<&Block> {
        let segments: Vec<&str> = domain.split('.').collect();
        let variants: Vec<String> = (0..segments.len())
            .map(|i| segments[i..].join("."))
            .collect();
        self.blocks
            .values()
            .filter(|b| variants.contains(&b.domain))
            .max_by_key(|b| b.domain.len())
    }

    /// Queues the webhook event for a report (sent by the server after the handler).
    pub(crate) fn emit(&mut self, event: &str, report_id: u64) {
        if self.webhook.is_some() {
            self.pending_events.push((event.to_owned(), report_id));
        }
    }
}

fn role_json(name: &str, perms: u64) -> Value {
    json!({
        "id": if perms == 0 { "-99".to_owned() } else { (perms % 997).to_string() },
        "name": name,
        "color": "",
        "permissions": perms.to_string(),
        "highlighted": perms != 0,
    })
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 hex of a string.
pub(crate) fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// Now, as Mastodon writes timestamps (`2022-09-09T21:19:23.085Z`).
pub(crate) fn now_string() -> String {
    format_ms(OffsetDateTime::now_utc())
}

pub(crate) fn format_ms(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// `X-RateLimit-Reset` form: ISO 8601 with microseconds.
pub(crate) fn format_us(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Mastodon's domain normalisation (§8.4): strip, drop `/`, lower-case, IDNA to ASCII, drop
/// one trailing dot. `None` for an invalid host.
pub fn normalize_domain(raw: &str) -> Option<String> {
    let s: String = raw.trim().chars().filter(|c| *c != '/').collect();
    let s = s.strip_suffix('.').unwrap_or(&s).to_owned();
    if s.is_empty() || s.contains(['*', ' ', '@', ':', '?', '#']) {
        return None;
    }
    match url::Host::parse(&s) {
        Ok(url::Host::Domain(d)) => Some(d.to_ascii_lowercase()),
        Ok(other) => Some(other.to_string()),
        Err(_) => None,
    }
}

/// The obfuscated public form of a domain (§8.1).
pub fn obfuscate_domain(domain: &str) -> String {
    let chars: Vec<char> = domain.chars().collect();
    let n = chars.len();
    let v = n / 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, &ch)| {
            if v < i && i < n - v && ch != '.' {
                '*'
            } else {
                ch
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obfuscation_matches_the_reference_example() {
        assert_eq!(obfuscate_domain("ap.abc.st"), "ap.***.st");
    }

    #[test]
    fn normalisation_lowercases_punycodes_and_drops_the_dot() {
        assert_eq!(
            normalize_domain(" Example.COM. ").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_domain("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(normalize_domain("*.bad.example"), None);
        assert_eq!(normalize_domain(""), None);
    }
}
