//! The diff between a merged list and an instance's current blocks, honouring ownership:
//! only blocks Guildhall manages are changed or retracted; blocks the admin made are never
//! touched; locked domains are left alone (reference §6.1).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::parents;
use crate::hash;
use crate::types::{BlockEntry, Severity};

/// The fields Guildhall pushes and compares (the private comment is Guildhall's stamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// Severity (`noop`, `silence`, `suspend`).
    pub severity: String,
    /// Reject media.
    #[serde(default)]
    pub reject_media: bool,
    /// Reject reports.
    #[serde(default)]
    pub reject_reports: bool,
    /// Obfuscate.
    #[serde(default)]
    pub obfuscate: bool,
    /// Public comment.
    #[serde(default)]
    pub public_comment: String,
}

impl Pushed {
    /// The pushed fields of a block.
    pub fn of(e: &BlockEntry) -> Pushed {
        Pushed {
            severity: e.severity.as_str().to_string(),
            reject_media: e.reject_media,
            reject_reports: e.reject_reports,
            obfuscate: e.obfuscate,
            public_comment: e.public_comment.clone(),
        }
    }
}

/// Who owns which block on one instance: what Guildhall pushed last, and the domains the admin
/// locked. A domain not in `managed` is the admin's (every block found on connection is).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// Domains Guildhall manages, with what it last pushed.
    #[serde(default)]
    pub managed: BTreeMap<String, Pushed>,
    /// Domains the admin locked: never written by Guildhall.
    #[serde(default)]
    pub locked: BTreeSet<String>,
}

/// Why a domain needs no write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The admin made this block (or took it over): reported, never touched.
    AdminOwned,
    /// The admin locked the domain.
    Locked,
    /// An admin edited a block Guildhall pushed: it is handed over to the admin.
    AdminEdited,
    /// An admin deleted a block Guildhall pushed: the deletion is respected.
    AdminDeleted,
    /// A parent-domain block on the instance already covers it (Mastodon's `rule_for`).
    CoveredBy(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::AdminOwned => f.write_str("admin-made block, not touched"),
            SkipReason::Locked => f.write_str("locked by the admin"),
            SkipReason::AdminEdited => f.write_str("edited by an admin: handed over"),
            SkipReason::AdminDeleted => f.write_str("deleted by an admin: deletion respected"),
            SkipReason::CoveredBy(p) => write!(f, "covered by the block on {p}"),
        }
    }
}

/// Options of the diff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Retract by downgrading to `noop` (keeping the record) instead of deleting.
    pub keep_record: bool,
}

/// The changes to make, in domain order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// New blocks to create.
    pub creates: Vec<BlockEntry>,
    /// `(current, desired)` for managed blocks to update (including `noop` retractions).
    pub updates: Vec<(BlockEntry, BlockEntry)>,
    /// Managed blocks to delete.
    pub removals: Vec<BlockEntry>,
    /// Domains that differ but are not written, with why.
    pub skipped: Vec<(String, SkipReason)>,
    /// The ownership after the changes are applied.
    pub ownership: Ownership,
}

fn same(a: &BlockEntry, b: &BlockEntry) -> bool {
    Pushed::of(a) == Pushed::of(b)
}

fn at_least_as_strict(p: &BlockEntry, d: &BlockEntry) -> bool {
    p.severity >= d.severity
        && p.reject_media >= d.reject_media
        && p.reject_reports >= d.reject_reports
}

/// Computes the changes that bring `current` (the instance's blocks, normalised) towards
/// `desired` (a merged list), given who owns what.
pub fn diff(
    desired: &[BlockEntry],
    current: &[BlockEntry],
    own: &Ownership,
    opts: DiffOptions,
) -> Diff {
    let cur: hash::Map<&str, &BlockEntry> =
        current.iter().map(|e| (e.domain.as_str(), e)).collect();
    let want: hash::Map<&str, &BlockEntry> =
        desired.iter().map(|e| (e.domain.as_str(), e)).collect();
    let mut d = Diff {
        ownership: own.clone(),
        ..Diff::default()
    };
    let mut sorted: Vec<&BlockEntry> = desired.iter().collect();
    sorted.sort_by(|a, b| a.domain.cmp(&b.domain));
    for w in sorted {
        let dom = w.domain.as_str();
        let managed = own.managed.get(dom);
        match cur.get(dom) {
            None => {
                if own.locked.contains(dom) {
                    d.skipped.push((dom.to_string(), SkipReason::Locked));
                } else if managed.is_some() {
                    d.skipped.push((dom.to_string(), SkipReason::AdminDeleted));
                    d.ownership.managed.remove(dom);
                } else if let Some(p) =
                    parents(dom).find(|p| cur.get(p).is_some_and(|pe| at_least_as_strict(pe, w)))
                {
                    d.skipped
                        .push((dom.to_string(), SkipReason::CoveredBy(p.to_string())));
                } else {
                    d.creates.push(w.clone());
                    d.ownership.managed.insert(dom.to_string(), Pushed::of(w));
                }
            }
            Some(row) => {
                if same(row, w) {
                    continue;
                }
                if own.locked.contains(dom) {
                    d.skipped.push((dom.to_string(), SkipReason::Locked));
                } else if let Some(last) = managed {
                    if Pushed::of(row) != *last {
                        d.skipped.push((dom.to_string(), SkipReason::AdminEdited));
                        d.ownership.managed.remove(dom);
                    } else {
                        d.updates.push(((*row).clone(), w.clone()));
                        d.ownership.managed.insert(dom.to_string(), Pushed::of(w));
                    }
                } else {
                    d.skipped.push((dom.to_string(), SkipReason::AdminOwned));
                }
            }
        }
    }
    // Retractions: managed domains no longer wanted.
    for (dom, last) in &own.managed {
        if want.contains_key(dom.as_str()) {
            continue;
        }
        let Some(row) = cur.get(dom.as_str()) else {
            d.ownership.managed.remove(dom); // already gone
            continue;
        };
        if own.locked.contains(dom) {
            d.skipped.push((dom.clone(), SkipReason::Locked));
        } else if Pushed::of(row) != *last {
            d.skipped.push((dom.clone(), SkipReason::AdminEdited));
            d.ownership.managed.remove(dom);
        } else if opts.keep_record {
            if row.severity != Severity::Noop || row.reject_media || row.reject_reports {
                let noop = BlockEntry {
                    domain: dom.clone(),
                    public_comment: row.public_comment.clone(),
                    obfuscate: row.obfuscate,
                    ..BlockEntry::new(dom.clone(), Severity::Noop)
                };
                d.ownership.managed.insert(dom.clone(), Pushed::of(&noop));
                d.updates.push(((*row).clone(), noop));
            }
        } else {
            d.removals.push((*row).clone());
            d.ownership.managed.remove(dom);
        }
    }
    d.updates.sort_by(|a, b| a.0.domain.cmp(&b.0.domain));
    d.skipped.sort_by(|a, b| a.0.cmp(&b.0));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::*;

    fn b(d: &str, s: Severity) -> BlockEntry {
        BlockEntry::new(d, s)
    }

    #[test]
    fn ownership_is_honoured() {
        let desired = [
            b("new.example", Suspend),
            b("admin.example", Suspend),
            b("managed.example", Suspend),
            b("edited.example", Suspend),
            b("locked.example", Suspend),
            b("deleted.example", Suspend),
            b("sub.parent.example", Silence),
        ];
        let current = [
            b("admin.example", Silence),
            b("managed.example", Silence),
            b("edited.example", Noop),
            b("locked.example", Silence),
            b("parent.example", Suspend),
            b("retract.example", Silence),
            b("retract-edited.example", Suspend),
            b("admin-only.example", Suspend),
        ];
        let mut own = Ownership::default();
        for d in [
            "managed.example",
            "edited.example",
            "retract.example",
            "retract-edited.example",
            "deleted.example",
            "locked.example",
        ] {
            own.managed.insert(d.into(), Pushed::of(&b(d, Silence)));
        }
        own.locked.insert("locked.example".into());
        let r = diff(&desired, &current, &own, DiffOptions::default());
        let names = |v: &[BlockEntry]| v.iter().map(|e| e.domain.clone()).collect::<Vec<_>>();
        assert_eq!(names(&r.creates), ["new.example"]);
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.updates[0].0.severity, Silence);
        assert_eq!(r.updates[0].1.domain, "managed.example");
        assert_eq!(names(&r.removals), ["retract.example"]);
        let skipped: Vec<(&str, SkipReason)> = r
            .skipped
            .iter()
            .map(|(d, s)| (d.as_str(), s.clone()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("admin.example", SkipReason::AdminOwned),
                ("deleted.example", SkipReason::AdminDeleted),
                ("edited.example", SkipReason::AdminEdited),
                ("locked.example", SkipReason::Locked),
                ("retract-edited.example", SkipReason::AdminEdited),
                (
                    "sub.parent.example",
                    SkipReason::CoveredBy("parent.example".into())
                ),
            ]
        );
        assert!(r.ownership.managed.contains_key("new.example"));
        assert!(!r.ownership.managed.contains_key("edited.example"));
        assert!(!r.ownership.managed.contains_key("retract.example"));
        assert_eq!(r.ownership.managed["managed.example"].severity, "suspend");
        // Nothing the admin made is ever written.
        let touched: Vec<String> = r
            .updates
            .iter()
            .map(|u| u.0.domain.clone())
            .chain(names(&r.removals))
            .collect();
        assert!(!touched.iter().any(|d| d.starts_with("admin")));
    }

    #[test]
    fn keep_record_downgrades_instead_of_deleting() {
        let current = [b("gone.example", Suspend)];
        let mut own = Ownership::default();
        own.managed
            .insert("gone.example".into(), Pushed::of(&current[0]));
        let r = diff(&[], &current, &own, DiffOptions { keep_record: true });
        assert!(r.removals.is_empty());
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.updates[0].1.severity, Noop);
        // A second run against the downgraded row is a no-op.
        let again = diff(
            &[],
            &[r.updates[0].1.clone()],
            &r.ownership,
            DiffOptions { keep_record: true },
        );
        assert!(again.updates.is_empty() && again.removals.is_empty());
    }
}
