//! OAuth scopes and role permissions (`mastodon-api.md` §3): what Guildhall asks for, what
//! each endpoint needs, and a plain-words account of what a token lacks.

use serde::{Deserialize, Deserializer, Serialize};

/// The scopes Guildhall registers its app with and asks admins to grant: the minimal set for
/// moderation and blocklists (`mastodon-api.md` §3.1). Domain allows and measures need more
/// (see [`DOMAIN_ALLOW_SCOPES`] and [`MEASURES_SCOPE`]) and are asked for only when used.
pub const GUILDHALL_SCOPES: &[&str] = &[
    "admin:read:reports",
    "admin:write:reports",
    "admin:read:accounts",
    "admin:write:accounts",
    "admin:read:domain_blocks",
    "admin:write:domain_blocks",
];

/// The scopes for domain allows (allowlist federation).
pub const DOMAIN_ALLOW_SCOPES: &[&str] = &["admin:read:domain_allows", "admin:write:domain_allows"];

/// The umbrella scope that measures need (there is no granular one).
pub const MEASURES_SCOPE: &str = "admin:read";

/// [`GUILDHALL_SCOPES`] as the space-separated string OAuth wants.
pub fn guildhall_scope_string() -> String {
    GUILDHALL_SCOPES.join(" ")
}

/// Whether a granted scope list covers `needed`: the scope itself, or an umbrella above it
/// (`admin:read` covers `admin:read:reports`; `read` covers `read:accounts`).
pub fn scope_covers(granted: &[String], needed: &str) -> bool {
    granted.iter().any(|g| {
        g == needed
            || (needed.starts_with(g.as_str()) && needed.as_bytes().get(g.len()) == Some(&b':'))
    })
}

/// A role permission bitmask (`Role.permissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Permissions(pub u64);

/// Flag names, in bit order.
const PERMISSION_NAMES: &[(u64, &str)] = &[
    (0x1, "Administrator"),
    (0x2, "Devops"),
    (0x4, "View Audit Log"),
    (0x8, "View Dashboard"),
    (0x10, "Manage Reports"),
    (0x20, "Manage Federation"),
    (0x40, "Manage Settings"),
    (0x80, "Manage Blocks"),
    (0x100, "Manage Taxonomies"),
    (0x200, "Manage Appeals"),
    (0x400, "Manage Users"),
    (0x800, "Manage Invites"),
    (0x1000, "Manage Rules"),
    (0x2000, "Manage Announcements"),
    (0x4000, "Manage Custom Emojis"),
    (0x8000, "Manage Webhooks"),
    (0x10000, "Invite Users"),
    (0x20000, "Manage Roles"),
    (0x40000, "Manage User Access"),
    (0x80000, "Delete User Data"),
    (0x100000, "View live and topic feeds"),
];

impl Permissions {
    /// No permission.
    pub const NONE: Self = Self(0);
    /// Bypasses every permission check.
    pub const ADMINISTRATOR: Self = Self(0x1);
    /// Dashboard and measures.
    pub const VIEW_DASHBOARD: Self = Self(0x8);
    /// Review reports and act on them.
    pub const MANAGE_REPORTS: Self = Self(0x10);
    /// Domain blocks and allows.
    pub const MANAGE_FEDERATION: Self = Self(0x20);
    /// E-mail and IP blocks.
    pub const MANAGE_BLOCKS: Self = Self(0x80);
    /// View users' details and act on them.
    pub const MANAGE_USERS: Self = Self(0x400);
    /// Set up webhooks.
    pub const MANAGE_WEBHOOKS: Self = Self(0x8000);
    /// Delete users' data without delay.
    pub const DELETE_USER_DATA: Self = Self(0x80000);

    /// Whether a role with these permissions may do what `needed` requires (Administrator
    /// bypasses every check).
    pub fn allows(self, needed: Permissions) -> bool {
        self.0 & Self::ADMINISTRATOR.0 != 0 || self.0 & needed.0 == needed.0
    }

    /// The names of the flags set, e.g. `["Manage Reports"]`.
    pub fn names(self) -> Vec<&'static str> {
        PERMISSION_NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| *name)
            .collect()
    }

    /// Parses the decimal string (or number) servers send; anything else becomes `None`.
    pub(crate) fn deserialize_lenient<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Permissions>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum V {
            S(String),
            N(u64),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Option::<V>::deserialize(d)? {
            Some(V::S(s)) => s.trim().parse().ok().map(Permissions),
            Some(V::N(n)) => Some(Permissions(n)),
            Some(V::Other(_)) | None => None,
        })
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::fmt::Display for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("no permission")
        } else {
            f.write_str(&names.join(" + "))
        }
    }
}

/// What an endpoint needs: a scope (granular; its umbrella also works) and a role permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The granular scope.
    pub scope: &'static str,
    /// The role permission.
    pub permission: Permissions,
}

/// What a request needs, from its method and path (`mastodon-api.md` §3.2). `None` for
/// endpoints without admin requirements.
pub fn need_for(method: &str, path: &str) -> Option<Need> {
    let write = method != "GET";
    let p = path.trim_end_matches('/');
    let rw = |read: &'static str, wr: &'static str| if write { wr } else { read };
    if p.starts_with("/api/v1/admin/reports") {
        return Some(Need {
            scope: rw("admin:read:reports", "admin:write:reports"),
            permission: Permissions::MANAGE_REPORTS,
        });
    }
    if p.starts_with("/api/v1/admin/accounts") || p.starts_with("/api/v2/admin/accounts") {
        let permission = if p.ends_with("/action") {
            Permissions::MANAGE_REPORTS
        } else if method == "DELETE" {
            Permissions::DELETE_USER_DATA
        } else {
            Permissions::MANAGE_USERS
        };
        return Some(Need {
            scope: rw("admin:read:accounts", "admin:write:accounts"),
            permission,
        });
    }
    if p.starts_with("/api/v1/admin/domain_blocks") {
        return Some(Need {
            scope: rw("admin:read:domain_blocks", "admin:write:domain_blocks"),
            permission: Permissions::MANAGE_FEDERATION,
        });
    }
    if p.starts_with("/api/v1/admin/domain_allows") {
        return Some(Need {
            scope: rw("admin:read:domain_allows", "admin:write:domain_allows"),
            permission: Permissions::MANAGE_FEDERATION,
        });
    }
    if p.starts_with("/api/v1/admin/measures") {
        return Some(Need {
            scope: MEASURES_SCOPE,
            permission: Permissions::VIEW_DASHBOARD,
        });
    }
    if p == "/api/v1/accounts/verify_credentials" {
        return Some(Need {
            scope: "read:accounts",
            permission: Permissions::NONE,
        });
    }
    None
}

/// Whether a token can do one thing Guildhall needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Both scope and permission are there.
    Yes,
    /// The token lacks the scope.
    MissingScope,
    /// The account's role lacks the permission.
    MissingPermission,
    /// Both are missing.
    MissingBoth,
    /// The server did not let us tell.
    Unknown,
}

/// What part of Guildhall needs a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// The moderation co-op: reading and resolving reports, acting on accounts.
    Moderation,
    /// Shared blocklists: reading and changing the instance's domain blocks.
    Blocklists,
}

/// One capability Guildhall needs, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capability {
    /// What it is for, in plain words.
    pub purpose: &'static str,
    /// The part of Guildhall that needs it.
    pub area: Area,
    /// The scope it needs.
    pub scope: &'static str,
    /// The permission it needs.
    pub permission: Permissions,
    /// Whether the token has it.
    pub grant: Grant,
}

impl Capability {
    /// A plain-words sentence for an admin, or `None` when nothing is missing.
    pub fn problem(&self) -> Option<String> {
        match self.grant {
            Grant::Yes => None,
            Grant::MissingScope => Some(format!(
                "To {}, the token needs the scope \"{}\".",
                self.purpose, self.scope
            )),
            Grant::MissingPermission => Some(format!(
                "To {}, the account's role needs the permission \"{}\".",
                self.purpose, self.permission
            )),
            Grant::MissingBoth => Some(format!(
                "To {}, the token needs the scope \"{}\" and the account's role the permission \"{}\".",
                self.purpose, self.scope, self.permission
            )),
            Grant::Unknown => Some(format!(
                "Could not tell whether the token may {} (scope \"{}\", permission \"{}\").",
                self.purpose, self.scope, self.permission
            )),
        }
    }
}

/// What Guildhall needs, as (purpose, area, scope, permission, read probe path).
pub(crate) const CAPABILITIES: &[(&str, Area, &str, Permissions, Option<&str>)] = &[
    (
        "read reports",
        Area::Moderation,
        "admin:read:reports",
        Permissions::MANAGE_REPORTS,
        Some("/api/v1/admin/reports"),
    ),
    (
        "assign and resolve reports",
        Area::Moderation,
        "admin:write:reports",
        Permissions::MANAGE_REPORTS,
        None,
    ),
    (
        "read accounts",
        Area::Moderation,
        "admin:read:accounts",
        Permissions::MANAGE_USERS,
        Some("/api/v1/admin/accounts"),
    ),
    (
        "act on accounts",
        Area::Moderation,
        "admin:write:accounts",
        Permissions::MANAGE_USERS,
        None,
    ),
    (
        "read domain blocks",
        Area::Blocklists,
        "admin:read:domain_blocks",
        Permissions::MANAGE_FEDERATION,
        Some("/api/v1/admin/domain_blocks"),
    ),
    (
        "change domain blocks",
        Area::Blocklists,
        "admin:write:domain_blocks",
        Permissions::MANAGE_FEDERATION,
        None,
    ),
];

/// The plain-words purposes of the capabilities `area` needs (as [`Capability::problem`]'s
/// sentences name them).
pub fn purposes(area: Area) -> impl Iterator<Item = &'static str> {
    CAPABILITIES
        .iter()
        .filter(move |c| c.1 == area)
        .map(|c| c.0)
}

/// The result of [`crate::Client::check_access`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessReport {
    /// The account the token belongs to, when the token may read it (`read:accounts`).
    pub account: Option<crate::models::Account>,
    /// The scopes the token is known to have (from the token exchange or the server).
    pub scopes: Option<Vec<String>>,
    /// The account's role permissions, when the server showed them.
    pub permissions: Option<Permissions>,
    /// Each capability Guildhall needs, checked.
    pub capabilities: Vec<Capability>,
}

impl AccessReport {
    /// Whether everything Guildhall needs is there.
    pub fn is_complete(&self) -> bool {
        self.capabilities.iter().all(|c| c.grant == Grant::Yes)
    }

    /// Whether nothing `area` needs is known to be missing (a capability the server did not
    /// let us verify counts as there).
    pub fn ready_for(&self, area: Area) -> bool {
        self.capabilities
            .iter()
            .filter(|c| c.area == area)
            .all(|c| matches!(c.grant, Grant::Yes | Grant::Unknown))
    }

    /// Plain-words sentences about what is missing (empty when nothing is).
    pub fn problems(&self) -> Vec<String> {
        self.capabilities
            .iter()
            .filter_map(Capability::problem)
            .collect()
    }

    /// The scopes that are missing.
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        self.capabilities
            .iter()
            .filter(|c| matches!(c.grant, Grant::MissingScope | Grant::MissingBoth))
            .map(|c| c.scope)
            .collect()
    }

    /// The permissions that are missing (each once).
    pub fn missing_permissions(&self) -> Vec<Permissions> {
        let mut out: Vec<Permissions> = Vec::new();
        for c in &self.capabilities {
            if matches!(c.grant, Grant::MissingPermission | Grant::MissingBoth)
                && !out.contains(&c.permission)
            {
                out.push(c.permission);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umbrella_scopes_cover_granular_ones() {
        let granted = vec!["admin:read".to_owned(), "read".to_owned()];
        assert!(scope_covers(&granted, "admin:read:reports"));
        assert!(scope_covers(&granted, "admin:read"));
        assert!(scope_covers(&granted, "read:accounts"));
        assert!(!scope_covers(&granted, "admin:write:reports"));
        // "read" must not cover "readx" or "admin:read:reports" by prefix alone.
        assert!(!scope_covers(&["read".to_owned()], "readx"));
        assert!(!scope_covers(&["admin".to_owned()], "administrator"));
    }

    #[test]
    fn administrator_bypasses_permissions() {
        assert!(Permissions(1).allows(Permissions::MANAGE_REPORTS));
        assert!(Permissions(0x30).allows(Permissions::MANAGE_FEDERATION));
        assert!(!Permissions(0x10).allows(Permissions::MANAGE_FEDERATION));
        assert_eq!(
            Permissions(0x410).names(),
            vec!["Manage Reports", "Manage Users"]
        );
        assert_eq!(Permissions(0x20).to_string(), "Manage Federation");
    }

    #[test]
    fn endpoint_needs_follow_the_reference_table() {
        let n = need_for("GET", "/api/v1/admin/reports/3").unwrap();
        assert_eq!(n.scope, "admin:read:reports");
        let n = need_for("POST", "/api/v1/admin/reports/3/resolve").unwrap();
        assert_eq!(n.scope, "admin:write:reports");
        let n = need_for("POST", "/api/v1/admin/domain_blocks").unwrap();
        assert_eq!(n.scope, "admin:write:domain_blocks");
        assert_eq!(n.permission, Permissions::MANAGE_FEDERATION);
        let n = need_for("POST", "/api/v1/admin/measures").unwrap();
        assert_eq!(n.scope, "admin:read");
        assert_eq!(need_for("GET", "/api/v2/instance"), None);
    }

    #[test]
    fn permissions_parse_from_strings_and_numbers() {
        #[derive(Deserialize)]
        struct R {
            #[serde(deserialize_with = "Permissions::deserialize_lenient")]
            p: Option<Permissions>,
        }
        let r: R = serde_json::from_str(r#"{"p":"1048575"}"#).unwrap();
        assert_eq!(r.p, Some(Permissions(1_048_575)));
        let r: R = serde_json::from_str(r#"{"p":16}"#).unwrap();
        assert_eq!(r.p, Some(Permissions(16)));
        let r: R = serde_json::from_str(r#"{"p":"lots"}"#).unwrap();
        assert_eq!(r.p, None);
        let r: R = serde_json::from_str(r#"{"p":null}"#).unwrap();
        assert_eq!(r.p, None);
    }
}
