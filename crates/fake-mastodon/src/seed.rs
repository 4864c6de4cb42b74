//! What tests seed the fake with.

/// Which server the fake imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Mastodon 4.3+ as `mastodon-api.md` documents it.
    #[default]
    Mastodon,
    /// GoToSocial v0.20 (the reference's appendix): blocks without severity, 200 on an
    /// existing block, DELETE answering the block, 500 for deleted ids and wildcards; no
    /// assign/unassign/reopen; only `suspend` account actions, answering `{"message":"OK"}`
    /// and not resolving reports; its own 403 scope message.
    GoToSocial,
}

/// Who may read `/api/v1/instance/domain_blocks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublicBlocksMode {
    /// Anyone.
    #[default]
    Public,
    /// Only requests with a valid user token (401 otherwise).
    UsersOnly,
    /// No one (404 with an empty body).
    Disabled,
}

/// A seeded account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSeed {
    /// Numeric id.
    pub id: u64,
    /// Username.
    pub username: String,
    /// `None` for local accounts.
    pub domain: Option<String>,
    /// Display name.
    pub display_name: String,
    /// E-mail (local accounts).
    pub email: Option<String>,
    /// Role name and permission bitmask (local accounts).
    pub role: Option<(String, u64)>,
    /// Silenced.
    pub silenced: bool,
    /// Suspended.
    pub suspended: bool,
    /// Media forced sensitive.
    pub sensitized: bool,
    /// Login disabled.
    pub disabled: bool,
    /// A bot or instance actor.
    pub bot: bool,
}

impl AccountSeed {
    /// A local account with no role.
    pub fn local(id: u64, username: &str) -> Self {
        Self {
            id,
            username: username.to_owned(),
            domain: None,
            display_name: username.to_owned(),
            email: Some(format!("{username}@mail.example")),
            role: None,
            silenced: false,
            suspended: false,
            sensitized: false,
            disabled: false,
            bot: false,
        }
    }

    /// A remote account.
    pub fn remote(id: u64, username: &str, domain: &str) -> Self {
        Self {
            domain: Some(domain.to_owned()),
            email: None,
            ..Self::local(id, username)
        }
    }

    /// A remote server's instance actor (the reporter of forwarded reports).
    pub fn instance_actor(id: u64, domain: &str) -> Self {
        Self {
            bot: true,
            ..Self::remote(id, domain, domain)
        }
    }

    /// Gives the (local) account a role.
    pub fn with_role(mut self, name: &str, permissions: u64) -> Self {
        self.role = Some((name.to_owned(), permissions));
        self
    }
}

/// A seeded media attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSeed {
    /// Id.
    pub id: u64,
    /// `image`, `video`, …
    pub kind: String,
    /// Alt text.
    pub description: Option<String>,
}

/// A seeded status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSeed {
    /// Id.
    pub id: u64,
    /// Author.
    pub account_id: u64,
    /// HTML content.
    pub content: String,
    /// Attached media.
    pub media: Vec<MediaSeed>,
}

impl StatusSeed {
    /// A status without media.
    pub fn new(id: u64, account_id: u64, content: &str) -> Self {
        Self {
            id,
            account_id,
            content: content.to_owned(),
            media: Vec::new(),
        }
    }

    /// Adds an image.
    pub fn with_image(mut self, id: u64, description: &str) -> Self {
        self.media.push(MediaSeed {
            id,
            kind: "image".to_owned(),
            description: Some(description.to_owned()),
        });
        self
    }
}

/// A seeded report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSeed {
    /// Id.
    pub id: u64,
    /// Reporter (an instance actor for forwarded reports).
    pub account_id: u64,
    /// Reported account.
    pub target_account_id: u64,
    /// `spam`, `legal`, `violation`, `other`.
    pub category: String,
    /// Reporter's comment.
    pub comment: String,
    /// Forwarded flag.
    pub forwarded: bool,
    /// Attached statuses.
    pub status_ids: Vec<u64>,
    /// Cited rules.
    pub rule_ids: Vec<u64>,
    /// Already resolved.
    pub resolved: bool,
    /// Assigned moderator.
    pub assigned_account_id: Option<u64>,
}

impl ReportSeed {
    /// An unresolved `other` report.
    pub fn new(id: u64, account_id: u64, target_account_id: u64) -> Self {
        Self {
            id,
            account_id,
            target_account_id,
            category: "other".to_owned(),
            comment: String::new(),
            forwarded: false,
            status_ids: Vec::new(),
            rule_ids: Vec::new(),
            resolved: false,
            assigned_account_id: None,
        }
    }

    /// Sets the category.
    pub fn category(mut self, c: &str) -> Self {
        self.category = c.to_owned();
        self
    }

    /// Sets the comment.
    pub fn comment(mut self, c: &str) -> Self {
        self.comment = c.to_owned();
        self
    }

    /// Attaches statuses.
    pub fn statuses(mut self, ids: &[u64]) -> Self {
        self.status_ids = ids.to_vec();
        self
    }

    /// Cites rules.
    pub fn rules(mut self, ids: &[u64]) -> Self {
        self.rule_ids = ids.to_vec();
        self
    }

    /// Marks it resolved.
    pub fn resolved(mut self) -> Self {
        self.resolved = true;
        self
    }

    /// Marks it forwarded.
    pub fn forwarded(mut self) -> Self {
        self.forwarded = true;
        self
    }
}

/// A seeded domain block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSeed {
    /// The domain (normalised when seeded).
    pub domain: String,
    /// `silence`, `suspend` or `noop`.
    pub severity: String,
    /// Reject media.
    pub reject_media: bool,
    /// Reject reports.
    pub reject_reports: bool,
    /// Obfuscate in the public list.
    pub obfuscate: bool,
    /// Public comment.
    pub public_comment: Option<String>,
    /// Private comment.
    pub private_comment: Option<String>,
}

impl BlockSeed {
    /// A block with the given severity.
    pub fn new(domain: &str, severity: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            severity: severity.to_owned(),
            reject_media: false,
            reject_reports: false,
            obfuscate: false,
            public_comment: None,
            private_comment: None,
        }
    }

    /// Obfuscates it in the public list.
    pub fn obfuscated(mut self) -> Self {
        self.obfuscate = true;
        self
    }

    /// Sets the public comment.
    pub fn public_comment(mut self, c: &str) -> Self {
        self.public_comment = Some(c.to_owned());
        self
    }
}

/// A bearer token the fake accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSeed {
    /// The token string.
    pub token: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The user's account (`None` for an app-only token).
    pub account_id: Option<u64>,
}

/// A one-shot fault for the next webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFault {
    /// Do not send it.
    Drop,
    /// Sign it with a wrong secret.
    BadSignature,
    /// Send it twice.
    Duplicate,
}

/// A canned answer for the next request to a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Injected {
    /// A JSON-typed answer with an arbitrary (possibly broken) body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8".to_owned(),
            body: body.into(),
        }
    }

    /// An HTML page (what a proxy shows when the app is down).
    pub fn html(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/html".to_owned(),
            body: body.as_bytes().to_vec(),
        }
    }
}
