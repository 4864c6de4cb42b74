//! The audit log: append-only (the database refuses UPDATE and DELETE on it), each entry chained
//! to the previous one by SHA-256.
//!
//! An entry's hash is SHA-256 over a canonical encoding: the tag `guildhall-audit-v1`, then each
//! field as an 8-byte big-endian length followed by its UTF-8 bytes, in this order: sequence
//! number (decimal), time (milliseconds, decimal), actor id (decimal or empty), actor label,
//! action, organisation id (decimal or empty), before-JSON (or empty), after-JSON (or empty),
//! previous entry's hash (hex; 64 zeros for the first entry). The JSON texts are hashed exactly
//! as stored.
//!
//! Appends are serialised: each first updates the single `audit_head` row (a row lock on
//! PostgreSQL, the single write lock on SQLite), so concurrent appends still form one chain.

use guildhall_core::{AccountId, AuditId, OrgId, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{on_pool, on_tx, Db, DbError, Tx};

/// The previous-hash of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as given by the caller.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    /// Who did it (an account), if a person did.
    pub actor_id: Option<AccountId>,
    /// Who did it, as shown: an e-mail, `cli`, `system`, `worker` …
    pub actor: String,
    /// What was done, dotted: `organisation.create`, `member.role`, `invitation.accept` …
    pub action: String,
    /// The organisation it concerns, if any.
    pub org_id: Option<OrgId>,
    /// The state before, where it applies.
    pub before: Option<serde_json::Value>,
    /// The state after, where it applies.
    pub after: Option<serde_json::Value>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Its position in the chain, from 1.
    pub seq: AuditId,
    /// When it was recorded.
    pub at: Timestamp,
    /// Who did it (an account), if a person did.
    pub actor_id: Option<AccountId>,
    /// Who did it, as shown.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The organisation it concerns.
    pub org_id: Option<OrgId>,
    /// The state before (JSON text as stored).
    pub before_json: Option<String>,
    /// The state after (JSON text as stored).
    pub after_json: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry should have, recomputed from its fields.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"guildhall-audit-v1");
        let opt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        let seq = self.seq.0.to_string();
        let at = self.at.0.to_string();
        let actor_id = opt(self.actor_id.map(|a| a.0));
        let org_id = opt(self.org_id.map(|o| o.0));
        let fields: [&str; 9] = [
            &seq,
            &at,
            &actor_id,
            &self.actor,
            &self.action,
            &org_id,
            self.before_json.as_deref().unwrap_or(""),
            self.after_json.as_deref().unwrap_or(""),
            &self.prev_hash,
        ];
        for f in fields {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The sequence number of the first bad entry (or where one is missing).
    pub seq: i64,
    /// What is wrong there.
    pub reason: String,
}

/// The outcome of [`Db::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// How many entries were checked.
    pub entries: u64,
    /// The first broken link, or `None` when the whole chain holds.
    pub first_broken: Option<BrokenLink>,
}

type EntryRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
    String,
);
const ENTRY_COLUMNS: &str =
    "seq, at, actor_id, actor, action, org_id, before_json, after_json, prev_hash, hash";

fn entry_from_row(r: EntryRow) -> AuditEntry {
    AuditEntry {
        seq: AuditId(r.0),
        at: Timestamp(r.1),
        actor_id: r.2.map(AccountId),
        actor: r.3,
        action: r.4,
        org_id: r.5.map(OrgId),
        before_json: r.6,
        after_json: r.7,
        prev_hash: r.8,
        hash: r.9,
    }
}

/// The audit entry a change records about itself, made from the change's result (`None`: no
/// entry, e.g. when nothing changed). The `*_audited` methods append it in the change's own
/// transaction, so the change is never stored without its entry, nor the entry without it.
pub trait AuditWith<T>: FnOnce(&T) -> Option<NewAuditEntry> + Send {}

impl<T, F: FnOnce(&T) -> Option<NewAuditEntry> + Send> AuditWith<T> for F {}

/// Appends the entry `audit` makes of `result`, if any, inside `tx`.
pub(crate) async fn append_made<T>(
    tx: &mut Tx,
    audit: impl AuditWith<T>,
    result: &T,
) -> Result<(), DbError> {
    if let Some(entry) = audit(result) {
        append_in(tx, &entry).await?;
    }
    Ok(())
}

/// Appends an entry inside the caller's transaction (so that the entry is recorded if and only
/// if the change it describes is committed).
pub async fn append_in(tx: &mut Tx, new: &NewAuditEntry) -> Result<AuditEntry, DbError> {
    let json = |v: &Option<serde_json::Value>| -> Result<Option<String>, DbError> {
        v.as_ref()
            .map(|v| {
                serde_json::to_string(v).map_err(|e| DbError::Invalid {
                    field: "audit before/after",
                    message: e.to_string(),
                })
            })
            .transpose()
    };
    let before_json = json(&new.before)?;
    let after_json = json(&new.after)?;
    // Taking the head row first serialises appends.
    let (seq, prev_hash): (i64, String) = on_tx!(tx, c => sqlx::query_as(
        "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, last_hash")
        .fetch_one(c).await)?;
    let mut entry = AuditEntry {
        seq: AuditId(seq),
        at: Timestamp::now(),
        actor_id: new.actor_id,
        actor: new.actor.clone(),
        action: new.action.clone(),
        org_id: new.org_id,
        before_json,
        after_json,
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    let sql = format!(
        "INSERT INTO audit_log ({ENTRY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    on_tx!(tx, c => sqlx::query(&sql)
        .bind(entry.seq.0)
        .bind(entry.at.0)
        .bind(entry.actor_id.map(|a| a.0))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(entry.org_id.map(|o| o.0))
        .bind(&entry.before_json)
        .bind(&entry.after_json)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(c).await.map(|r| r.rows_affected()))?;
    on_tx!(tx, c => sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE id = 1")
        .bind(&entry.hash)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(entry)
}

impl Db {
    /// Appends an entry in its own transaction.
    pub async fn append_audit(&self, new: &NewAuditEntry) -> Result<AuditEntry, DbError> {
        let mut tx = self.begin().await?;
        let entry = append_in(&mut tx, new).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Entries newest first: of one organisation (or all when `org` is `None`), with sequence
    /// numbers below `before` (for paging; `None` for the newest), at most `limit`.
    pub async fn audit_entries(
        &self,
        org: Option<OrgId>,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log \
             WHERE ($1 IS NULL OR org_id = $1) AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        let rows: Vec<EntryRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(org.map(|o| o.0))
            .bind(before.map(|b| b.0).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(p).await)?;
        Ok(rows.into_iter().map(entry_from_row).collect())
    }

    /// Checks the whole chain from the first entry: sequence numbers without gaps, each entry's
    /// previous-hash equal to the hash of the entry before, each hash equal to the recomputed
    /// one, and the head equal to the last entry. Returns the first broken link, if any.
    pub async fn verify_audit(&self) -> Result<AuditVerification, DbError> {
        const PAGE: i64 = 1000;
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut last_seq = 0i64;
        let mut last_hash = GENESIS_HASH.to_owned();
        let mut entries = 0u64;
        let broken = |seq: i64, reason: String, entries: u64| AuditVerification {
            entries,
            first_broken: Some(BrokenLink { seq, reason }),
        };
        loop {
            let rows: Vec<EntryRow> = on_pool!(self, p => sqlx::query_as(&sql)
                .bind(last_seq).bind(PAGE).fetch_all(p).await)?;
            let n = rows.len();
            for row in rows {
                let e = entry_from_row(row);
                entries += 1;
                if e.seq.0 != last_seq + 1 {
                    return Ok(broken(
                        last_seq + 1,
                        format!(
                            "entry {} is missing (next present is {})",
                            last_seq + 1,
                            e.seq.0
                        ),
                        entries,
                    ));
                }
                if e.prev_hash != last_hash {
                    return Ok(broken(
                        e.seq.0,
                        "its previous-hash does not match the entry before it".into(),
                        entries,
                    ));
                }
                if e.compute_hash() != e.hash {
                    return Ok(broken(
                        e.seq.0,
                        "its content does not match its hash (altered)".into(),
                        entries,
                    ));
                }
                last_seq = e.seq.0;
                last_hash = e.hash;
            }
            if (n as i64) < PAGE {
                break;
            }
        }
        let (head_seq, head_hash): (i64, String) = on_pool!(self, p => sqlx::query_as(
            "SELECT seq, last_hash FROM audit_head WHERE id = 1").fetch_one(p).await)?;
        if head_seq != last_seq || head_hash != last_hash {
            return Ok(broken(
                last_seq + 1,
                format!(
                    "the chain ends at entry {last_seq} but the head records entry {head_seq} \
                     (entries removed from the end)"
                ),
                entries,
            ));
        }
        Ok(AuditVerification {
            entries,
            first_broken: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db_test;
    use serde_json::json;

    fn entry(i: usize) -> NewAuditEntry {
        NewAuditEntry {
            actor_id: None,
            actor: format!("tester{i}"),
            action: "test.append".into(),
            org_id: None,
            before: Some(json!({"n": i})),
            after: Some(json!({"n": i + 1, "s": "ü\"x"})),
        }
    }

    db_test!(
        a_change_and_its_audit_entry_are_stored_together,
        |db| async move {
            use crate::orgs::tests::account;
            use crate::orgs::NewOrganisation;
            use guildhall_core::Role;
            let ada = account(&db, "ada@example.org").await;
            let bob = account(&db, "bob@example.org").await;
            let coop = NewOrganisation::cooperative("Co-op".parse().unwrap());
            let org = db
                .create_organisation_audited(&coop, ada, |o| Some(entry(o.id.0 as usize)))
                .await
                .unwrap();
            assert_eq!(db.audit_entries(None, None, 10).await.unwrap().len(), 1);
            let invitation = crate::invitations::NewInvitation {
                org_id: org.id,
                role: Role::Member,
                email: None,
                invited_by: ada,
                ttl: std::time::Duration::from_secs(60),
            };
            let (_, inv) = db
                .create_invitation_audited(&invitation, |_| Some(entry(2)))
                .await
                .unwrap();
            assert_eq!(db.audit_entries(None, None, 10).await.unwrap().len(), 2);
            // No entry made: none stored.
            let (token, _) = db
                .create_invitation_audited(&invitation, |_| None)
                .await
                .unwrap();
            db.accept_invitation(&token, bob).await.unwrap();
            db.revoke_invitation_audited(org.id, inv.id, |_| None)
                .await
                .unwrap();
            assert_eq!(db.audit_entries(None, None, 10).await.unwrap().len(), 2);

            // Every append fails once the chain's head is gone: the changes roll back with it.
            on_pool!(&db, p => sqlx::query("DELETE FROM audit_head").execute(p).await.map(|r| r.rows_affected())).unwrap();
            let other = NewOrganisation::cooperative("Other".parse().unwrap());
            assert!(db
                .create_organisation_audited(&other, bob, |_| Some(entry(3)))
                .await
                .is_err());
            assert_eq!(db.organisations_of(bob).await.unwrap().len(), 1);
            let name = "ci".parse().unwrap();
            let scopes = [guildhall_core::Scope::Read];
            assert!(db
                .create_api_token_audited(ada, &name, &scopes, None, |_| Some(entry(4)))
                .await
                .is_err());
            assert!(db.api_tokens(ada).await.unwrap().is_empty());
            assert!(db
                .set_role_audited(org.id, bob, Role::Admin, |_| Some(entry(5)))
                .await
                .is_err());
            assert_eq!(db.role_of(bob, org.id).await.unwrap(), Some(Role::Member));
            // Without an entry to record, the same change goes through.
            db.create_organisation_audited(&other, bob, |_| None)
                .await
                .unwrap();
            assert_eq!(db.organisations_of(bob).await.unwrap().len(), 2);
            assert_eq!(db.audit_entries(None, None, 10).await.unwrap().len(), 2);
        }
    );

    db_test!(
        audit_chain_verifies_and_names_first_altered_entry,
        |db| async move {
            for i in 0..5 {
                let e = db.append_audit(&entry(i)).await.unwrap();
                assert_eq!(e.seq.0, i as i64 + 1);
            }
            let v = db.verify_audit().await.unwrap();
            assert_eq!(
                v,
                AuditVerification {
                    entries: 5,
                    first_broken: None
                }
            );
            let newest = db.audit_entries(None, None, 2).await.unwrap();
            assert_eq!(
                newest.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
                vec![5, 4]
            );
            assert_eq!(
                newest[1].prev_hash,
                db.audit_entries(None, Some(AuditId(4)), 1).await.unwrap()[0].hash
            );

            // The database refuses changes…
            let upd = on_pool!(&db, p => sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
            .execute(p).await.map(|r| r.rows_affected()));
            assert!(upd.is_err());
            let del = on_pool!(&db, p => sqlx::query("DELETE FROM audit_log WHERE seq = 5")
            .execute(p).await.map(|r| r.rows_affected()));
            assert!(del.is_err());
            // …but someone with full access can drop the triggers; verification still catches it.
            for t in ["audit_log_no_update", "audit_log_no_delete"] {
                let sql = match db.backend() {
                    crate::Backend::Sqlite => format!("DROP TRIGGER {t}"),
                    crate::Backend::Postgres => format!("DROP TRIGGER {t} ON audit_log"),
                };
                on_pool!(&db, p => sqlx::query(&sql).execute(p).await.map(|r| r.rows_affected()))
                    .unwrap();
            }
            on_pool!(&db, p => sqlx::query("UPDATE audit_log SET after_json = '{\"n\":99}' WHERE seq = 3")
            .execute(p).await.map(|r| r.rows_affected())).unwrap();
            let v = db.verify_audit().await.unwrap();
            assert_eq!(v.first_broken.as_ref().map(|b| b.seq), Some(3), "{v:?}");
            assert!(v.first_broken.unwrap().reason.contains("altered"));
        }
    );

    db_test!(audit_removal_from_the_end_is_detected, |db| async move {
        for i in 0..3 {
            db.append_audit(&entry(i)).await.unwrap();
        }
        let sql = match db.backend() {
            crate::Backend::Sqlite => "DROP TRIGGER audit_log_no_delete",
            crate::Backend::Postgres => "DROP TRIGGER audit_log_no_delete ON audit_log",
        };
        on_pool!(&db, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected())).unwrap();
        on_pool!(&db, p => sqlx::query("DELETE FROM audit_log WHERE seq = 3")
            .execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
        let v = db.verify_audit().await.unwrap();
        assert_eq!(v.first_broken.map(|b| b.seq), Some(3));
    });

    db_test!(concurrent_appends_form_one_chain, |db| async move {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    db.append_audit(&entry(t * 100 + i)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let v = db.verify_audit().await.unwrap();
        assert_eq!(
            v,
            AuditVerification {
                entries: 80,
                first_broken: None
            }
        );
    });

    db_test!(
        audit_entry_rolls_back_with_its_transaction,
        |db| async move {
            let mut tx = db.begin().await.unwrap();
            append_in(&mut tx, &entry(1)).await.unwrap();
            drop(tx);
            db.append_audit(&entry(2)).await.unwrap();
            let v = db.verify_audit().await.unwrap();
            assert_eq!(
                v,
                AuditVerification {
                    entries: 1,
                    first_broken: None
                }
            );
        }
    );
}
