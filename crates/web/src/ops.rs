//! The operations behind both the pages and the JSON API: each parses its fields into domain
//! types, applies the checks that depend on the data (which roles the caller may grant), calls
//! the database, and records the change in the audit log.

use guildhall_core::{
    AccountId, ApiTokenId, Domain, Email, InvitationId, JobId, Name, OrgKind, Password, Permission,
    Role, Scope,
};
use guildhall_db::accounts::{Account, NewAccount};
use guildhall_db::audit::NewAuditEntry;
use guildhall_db::invitations::{Invitation, NewInvitation};
use guildhall_db::orgs::{NewOrganisation, Organisation};
use guildhall_db::tokens::ApiToken;
use guildhall_db::SecretToken;
use serde_json::json;

use crate::auth::{scope_covers, Ctx, Principal};
use crate::error::AppError;
use crate::input::Fields;
use crate::{store, AppState};

/// The roles `role` may hand out (by invitation or by changing a role).
pub fn grantable(role: Role) -> Vec<Role> {
    Role::ALL
        .iter()
        .copied()
        .filter(|r| role.allows(Permission::GrantRole(*r)))
        .collect()
}

/// The audit entry for an action of `actor`. Each operation below hands it to the database
/// method that makes the change, which stores both in one transaction.
pub fn audit_entry(
    actor: Option<&Account>,
    action: &str,
    org: Option<guildhall_core::OrgId>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> NewAuditEntry {
    NewAuditEntry {
        actor_id: actor.map(|a| a.id),
        actor: actor
            .map(|a| a.email.to_string())
            .unwrap_or_else(|| "anonymous".to_owned()),
        action: action.to_owned(),
        org_id: org,
        before,
        after,
    }
}

/// Creates an organisation with the caller as its owner.
pub async fn create_org(
    st: &AppState,
    who: &Principal,
    f: &Fields,
) -> Result<Organisation, AppError> {
    let name: Name = f.parse_required("name")?;
    let kind: OrgKind = f.parse_required("kind")?;
    let new = match kind {
        OrgKind::Instance => {
            let domain: Domain = f.parse_required("domain")?;
            NewOrganisation::instance(name, domain)
        }
        OrgKind::Cooperative => {
            if f.get("domain").is_some() {
                return Err(AppError::invalid(
                    "domain",
                    "a cooperative has no domain (only instances do)",
                ));
            }
            NewOrganisation::cooperative(name)
        }
    };
    let org = st
        .db
        .create_organisation_audited(&new, who.account.id, |org| {
            Some(audit_entry(
                Some(&who.account),
                "organisation.create",
                Some(org.id),
                None,
                Some(json!({"name": org.name, "kind": org.kind, "domain": org.domain})),
            ))
        })
        .await?;
    Ok(org)
}

/// Checks that the caller may change the membership of `target` (an owner's membership only
/// an owner may change) and that the target is a member.
async fn check_target(st: &AppState, ctx: &Ctx, target: AccountId) -> Result<Role, AppError> {
    let (org, my_role) = ctx.org.ok_or(AppError::NotFound)?;
    let current = st
        .db
        .role_of(target, org)
        .await?
        .ok_or(AppError::NotFound)?;
    if !my_role.allows(Permission::GrantRole(current)) {
        return Err(AppError::Forbidden);
    }
    Ok(current)
}

/// Changes a member's role (field `role`).
pub async fn set_role(st: &AppState, ctx: &Ctx, f: &Fields) -> Result<(), AppError> {
    let who = ctx.who()?;
    let (org, my_role) = ctx.org.ok_or(AppError::NotFound)?;
    let target = AccountId(ctx.id("account")?);
    let role: Role = f.parse_required("role")?;
    let before = check_target(st, ctx, target).await?;
    if !my_role.allows(Permission::GrantRole(role)) {
        return Err(AppError::invalid(
            "role",
            format!("your role ({my_role}) may not grant the role {role}"),
        ));
    }
    let entry = audit_entry(
        Some(&who.account),
        "member.role",
        Some(org),
        Some(json!({"account": target, "role": before})),
        Some(json!({"account": target, "role": role})),
    );
    st.db
        .set_role_audited(org, target, role, |_| Some(entry))
        .await?;
    Ok(())
}

/// Removes a member.
pub async fn remove_member(st: &AppState, ctx: &Ctx) -> Result<(), AppError> {
    let who = ctx.who()?;
    let org = ctx.org_id()?;
    let target = AccountId(ctx.id("account")?);
    let before = check_target(st, ctx, target).await?;
    let entry = audit_entry(
        Some(&who.account),
        "member.remove",
        Some(org),
        Some(json!({"account": target, "role": before})),
        None,
    );
    st.db
        .remove_member_audited(org, target, |_| Some(entry))
        .await?;
    Ok(())
}

/// Creates an invitation (fields `role`, optional `email`). Returns the link (shown once).
pub async fn create_invitation(
    st: &AppState,
    ctx: &Ctx,
    f: &Fields,
) -> Result<(String, Invitation), AppError> {
    let who = ctx.who()?;
    let (org, my_role) = ctx.org.ok_or(AppError::NotFound)?;
    let role: Role = f.parse_required("role")?;
    if !my_role.allows(Permission::GrantRole(role)) {
        return Err(AppError::invalid(
            "role",
            format!("your role ({my_role}) may not grant the role {role}"),
        ));
    }
    let email: Option<Email> = f.parse_optional("email")?;
    let new = NewInvitation {
        org_id: org,
        role,
        email,
        invited_by: who.account.id,
        ttl: st.config.invitation_lifetime,
    };
    let (token, inv) = st
        .db
        .create_invitation_audited(&new, |inv| {
            Some(audit_entry(
                Some(&who.account),
                "invitation.create",
                Some(org),
                None,
                Some(json!({"invitation": inv.id, "role": role, "email": inv.email})),
            ))
        })
        .await?;
    Ok((invitation_link(st, &token), inv))
}

/// The link for an invitation token.
pub fn invitation_link(st: &AppState, token: &SecretToken) -> String {
    format!("{}/invite/{}", st.config.base_url, token.expose())
}

/// Revokes an open invitation of the route's organisation.
pub async fn revoke_invitation(st: &AppState, ctx: &Ctx) -> Result<(), AppError> {
    let who = ctx.who()?;
    let org = ctx.org_id()?;
    let id = InvitationId(ctx.id("id")?);
    if !st.db.invitations(org).await?.iter().any(|i| i.id == id) {
        return Err(AppError::NotFound);
    }
    let revoked = st
        .db
        .revoke_invitation_audited(org, id, |&revoked| {
            revoked.then(|| {
                audit_entry(
                    Some(&who.account),
                    "invitation.revoke",
                    Some(org),
                    None,
                    Some(json!({"invitation": id})),
                )
            })
        })
        .await?;
    if !revoked {
        return Err(AppError::Conflict(
            "the invitation was already used or revoked".into(),
        ));
    }
    Ok(())
}

/// Accepts an invitation as an existing account.
pub async fn accept_invitation(
    st: &AppState,
    account: &Account,
    token: &SecretToken,
) -> Result<Invitation, AppError> {
    let inv = st
        .db
        .accept_invitation_audited(token, account.id, |inv| {
            Some(audit_entry(
                Some(account),
                "invitation.accept",
                Some(inv.org_id),
                None,
                Some(json!({"invitation": inv.id, "account": account.id, "role": inv.role})),
            ))
        })
        .await?;
    Ok(inv)
}

/// Reads the fields of a new account (`email`, `display_name`, `password`).
pub fn new_account(f: &Fields, site_admin: bool) -> Result<NewAccount, AppError> {
    Ok(NewAccount {
        email: f.parse_required::<Email>("email")?,
        display_name: f.parse_required::<Name>("display_name")?,
        password: f.parse_required::<Password>("password")?,
        site_admin,
    })
}

/// Creates an account (the setup page's first owner, or an invited person).
pub async fn create_account(
    st: &AppState,
    new: &NewAccount,
    action: &str,
) -> Result<Account, AppError> {
    let made = st.db.create_account_audited(new, |account| {
        Some(audit_entry(
            Some(account),
            action,
            None,
            None,
            Some(json!({"account": account.id, "email": account.email, "site_admin": account.site_admin})),
        ))
    });
    made.await.map_err(|e| match e {
        guildhall_db::DbError::Conflict(_) => AppError::invalid(
            "email",
            "an account with this e-mail address exists already; sign in instead",
        ),
        other => other.into(),
    })
}

/// Creates an API token for the caller (fields `name`, `scopes`). A token may only create
/// tokens with scopes it has itself.
pub async fn create_token(
    st: &AppState,
    who: &Principal,
    f: &Fields,
) -> Result<(SecretToken, ApiToken), AppError> {
    let name: Name = f.parse_required("name")?;
    let mut scopes = Vec::new();
    for s in f.all("scopes") {
        scopes
            .extend(Scope::parse_list(s).map_err(|e| AppError::invalid("scopes", e.to_string()))?);
    }
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(AppError::invalid("scopes", "choose at least one scope"));
    }
    let mine = who.scopes();
    if let Some(s) = scopes.iter().find(|s| !scope_covers(&mine, **s)) {
        return Err(AppError::invalid(
            "scopes",
            format!("this token may not create a token with scope {s}"),
        ));
    }
    let (token, tok) = st
        .db
        .create_api_token_audited(who.account.id, &name, &scopes, None, |tok| {
            Some(audit_entry(
                Some(&who.account),
                "token.create",
                None,
                None,
                Some(json!({"token": tok.id, "name": tok.name, "scopes": Scope::format_list(&tok.scopes)})),
            ))
        })
        .await?;
    Ok((token, tok))
}

/// Revokes one of the caller's tokens (`404` for anyone else's).
pub async fn revoke_token(st: &AppState, ctx: &Ctx) -> Result<(), AppError> {
    let who = ctx.who()?;
    let id = ApiTokenId(ctx.id("id")?);
    let mine = st.db.api_tokens(who.account.id).await?;
    let Some(tok) = mine.iter().find(|t| t.id == id) else {
        return Err(AppError::NotFound);
    };
    if tok.revoked_at.is_some() {
        return Err(AppError::Conflict("the token is already revoked".into()));
    }
    st.db
        .revoke_api_token_audited(who.account.id, id, |&revoked| {
            revoked.then(|| {
                audit_entry(
                    Some(&who.account),
                    "token.revoke",
                    None,
                    None,
                    Some(json!({"token": id})),
                )
            })
        })
        .await?;
    Ok(())
}

/// Puts a dead job back in the queue.
pub async fn retry_job(st: &AppState, ctx: &Ctx) -> Result<(), AppError> {
    let who = ctx.who()?;
    let id = JobId(ctx.id("id")?);
    let entry = audit_entry(
        Some(&who.account),
        "job.retry",
        None,
        None,
        Some(json!({"job": id})),
    );
    let requeued = st
        .db
        .retry_job_audited(id, |&requeued| requeued.then_some(entry))
        .await?;
    if !requeued {
        return Err(match store::job(st, id).await? {
            None => AppError::NotFound,
            Some(_) => AppError::Conflict("only a dead job can be retried".into()),
        });
    }
    Ok(())
}
