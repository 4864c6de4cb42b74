//! Who is asking: every read and write of this crate takes a [`Scope`], made only by
//! [`Scope::for_member`] from a person's membership, so one tenant never reads another's data.

use guildhall_core::{AccountId, OrgId, OrgKind, Role};
use guildhall_db::Db;

use crate::error::{ModError, Result};
use crate::sql::Params;

/// What a scope may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// A co-op's moderator, admin or owner: sees and works the cases of the instances linked
    /// to the co-op, and nothing else.
    Coop {
        /// The co-op.
        org: OrgId,
    },
    /// An instance organisation's owner or admin (sees its instance's cases and decisions), or
    /// its own moderators (`admin: false`; they also receive escalations).
    Instance {
        /// The instance organisation.
        org: OrgId,
        /// Its connected instance (`None` if it never connected one: sees nothing).
        instance_id: Option<i64>,
        /// Owner or admin (rather than moderator).
        admin: bool,
    },
}

/// The caller of a moderation function: a person acting within one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub(crate) account: AccountId,
    pub(crate) actor: String,
    pub(crate) kind: ScopeKind,
}

impl Scope {
    /// The scope of `account` acting in `org`, from their membership: a co-op's
    /// owner/admin/moderator → [`ScopeKind::Coop`]; an instance organisation's owner/admin or
    /// moderator → [`ScopeKind::Instance`]. Anyone else is refused with
    /// [`ModError::Forbidden`].
    pub async fn for_member(db: &Db, account: AccountId, org: OrgId) -> Result<Scope> {
        let role = db
            .role_of(account, org)
            .await?
            .ok_or_else(|| ModError::Forbidden("not a member of this organisation".into()))?;
        let organisation = db
            .organisation(org)
            .await?
            .ok_or(ModError::NotFound("organisation"))?;
        let actor = db
            .account(account)
            .await?
            .map(|a| a.email.to_string())
            .unwrap_or_else(|| format!("account {account}"));
        let kind = match organisation.kind {
            OrgKind::Cooperative => {
                if !matches!(role, Role::Owner | Role::Admin | Role::Moderator) {
                    return Err(ModError::Forbidden(
                        "only the co-op's moderators, admins and owners work its queue".into(),
                    ));
                }
                ScopeKind::Coop { org }
            }
            OrgKind::Instance => {
                if !matches!(role, Role::Owner | Role::Admin | Role::Moderator) {
                    return Err(ModError::Forbidden(
                        "only the instance's owners, admins and moderators see its cases".into(),
                    ));
                }
                let instance_id = db.instance_of_org(org).await?.map(|i| i.id);
                ScopeKind::Instance {
                    org,
                    instance_id,
                    admin: matches!(role, Role::Owner | Role::Admin),
                }
            }
        };
        Ok(Scope {
            account,
            actor,
            kind,
        })
    }

    /// The person.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// What the scope covers.
    pub fn kind(&self) -> ScopeKind {
        self.kind
    }

    /// The organisation acted in.
    pub fn org(&self) -> OrgId {
        match self.kind {
            ScopeKind::Coop { org } | ScopeKind::Instance { org, .. } => org,
        }
    }

    /// Whether this scope works cases (claims, decides, approves, escalates): co-op scopes.
    pub fn works_cases(&self) -> bool {
        matches!(self.kind, ScopeKind::Coop { .. })
    }

    pub(crate) fn require_worker(&self) -> Result<OrgId> {
        match self.kind {
            ScopeKind::Coop { org } => Ok(org),
            ScopeKind::Instance { .. } => Err(ModError::Forbidden(
                "only the co-op's moderators work cases".into(),
            )),
        }
    }

    /// The SQL condition limiting cases (alias `c`) to this scope, binding into `p`.
    pub(crate) fn case_condition(&self, p: &mut Params) -> String {
        match self.kind {
            ScopeKind::Coop { org } => format!("c.coop_org_id = {}", p.int(org.0)),
            ScopeKind::Instance { instance_id, .. } => {
                format!("c.instance_id = {}", p.int(instance_id.unwrap_or(-1)))
            }
        }
    }

    /// Whether a case of `instance_id` moderated by `coop` is visible in this scope.
    pub(crate) fn sees(&self, instance_id: i64, coop: Option<i64>) -> bool {
        match self.kind {
            ScopeKind::Coop { org } => coop == Some(org.0),
            ScopeKind::Instance { instance_id: i, .. } => i == Some(instance_id),
        }
    }
}
