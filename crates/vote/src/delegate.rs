//! Liquid delegation with LiquidFeedback semantics (core 2.2.4, `core.sql`).
//!
//! - A voter may delegate per **unit**, per **area** or per **issue**; for a given issue the
//!   most specific of their delegations wins (issue > area > unit).
//! - An explicit "no delegation" (trustee `None`) at area or issue scope blocks the
//!   inheritance of a less specific delegation.
//! - A **direct vote overrides** any delegation: a direct voter's own vote counts, and the
//!   weight delegated to them is added to it.
//! - Delegation is transitive: weight flows along the chain to the first direct voter.
//!   A chain that ends at a voter who neither votes nor delegates is not cast, and a chain
//!   caught in a **cycle** is not cast either (cycles end harmlessly; nothing loops).
//! - Every voter's effective chain can be explained ([`Resolver::explain`]).
//!
//! Resolution is linear in voters + delegations: each voter's chain is walked once, with
//! the outcome memoised for every voter on the walk.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// Where a delegation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "scope", content = "id", rename_all = "lowercase")]
pub enum Scope {
    /// The whole unit (organisation).
    Unit(u32),
    /// One subject area of the unit.
    Area(u32),
    /// One issue.
    Issue(u32),
}

impl Scope {
    fn rank(self) -> u8 {
        match self {
            Scope::Unit(_) => 1,
            Scope::Area(_) => 2,
            Scope::Issue(_) => 3,
        }
    }
}

/// One delegation record: `truster` delegates at `scope` to `trustee` (`None` = explicit
/// "no delegation here").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Delegation {
    /// The voter who delegates.
    pub truster: u32,
    /// Where the delegation applies.
    pub scope: Scope,
    /// To whom (`None`: do not delegate at this scope).
    pub trustee: Option<u32>,
}

/// The issue being decided, with the area and unit it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// The unit (organisation) the area belongs to.
    pub unit: u32,
    /// The area the issue belongs to.
    pub area: u32,
    /// The issue.
    pub issue: u32,
}

/// What happened to one voter's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "voter", rename_all = "snake_case")]
pub enum Outcome {
    /// Voted directly.
    Direct,
    /// Cast by this direct voter at the end of the chain.
    Via(u32),
    /// Neither voted nor delegated (or delegated "no one" here): not cast.
    Abstained,
    /// The chain ends at this voter, who neither votes nor delegates: not cast.
    DeadEnd(u32),
    /// The chain runs into a cycle with no direct voter: not cast.
    Cycle,
}

/// One link of an explained chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The voter at this point of the chain.
    pub voter: u32,
    /// The delegation that applies to them for this issue (scope and trustee), if any.
    pub via: Option<(Scope, Option<u32>)>,
    /// Whether this voter voted directly (the chain stops here).
    pub direct: bool,
}

/// Totals of a resolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Voters who voted directly.
    pub direct: u64,
    /// Voters whose vote was cast through delegation.
    pub delegated: u64,
    /// Voters who neither voted nor delegated.
    pub abstained: u64,
    /// Votes lost at a delegate who neither voted nor delegated.
    pub dead_end: u64,
    /// Votes lost in cycles.
    pub cycle: u64,
}

/// Delegations indexed for one issue, and the resolved outcome of every voter.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// The delegation in force for each voter for this issue.
    effective: Vec<Option<(Scope, Option<u32>)>>,
    direct: Vec<bool>,
    /// Each voter's outcome.
    pub outcomes: Vec<Outcome>,
    /// Each direct voter's weight (1 + votes delegated to them); 0 for others.
    pub weights: Vec<u64>,
    /// Totals.
    pub summary: Summary,
}

impl Resolver {
    /// Resolves the delegations of `voters` voters (ids `0..voters`) for `subject` (an
    /// issue in an area of a unit); `direct_voters` lists the direct voters. Delegations for
    /// other units, areas or issues, and those naming voters out of range or delegating to
    /// themselves, are ignored; at equal specificity the later record wins.
    pub fn resolve(
        voters: usize,
        delegations: &[Delegation],
        subject: Subject,
        direct_voters: &[u32],
    ) -> Resolver {
        let mut effective: Vec<Option<(Scope, Option<u32>)>> = vec![None; voters];
        for d in delegations {
            let applies = match d.scope {
                Scope::Unit(u) => u == subject.unit,
                Scope::Area(a) => a == subject.area,
                Scope::Issue(i) => i == subject.issue,
            };
            let t = d.truster as usize;
            if !applies || t >= voters || d.trustee.is_some_and(|x| x as usize >= voters) {
                continue;
            }
            if d.trustee == Some(d.truster) {
                continue;
            }
            let better = match effective[t] {
                None => true,
                Some((s, _)) => d.scope.rank() >= s.rank(),
            };
            if better {
                effective[t] = Some((d.scope, d.trustee));
            }
        }
        let mut direct = vec![false; voters];
        for &v in direct_voters {
            if let Some(slot) = direct.get_mut(v as usize) {
                *slot = true;
            }
        }
        let mut r = Resolver {
            effective,
            direct,
            outcomes: vec![Outcome::Abstained; voters],
            weights: vec![0; voters],
            summary: Summary::default(),
        };
        r.run();
        r
    }

    fn trustee(&self, v: usize) -> Option<usize> {
        self.effective[v].and_then(|(_, t)| t).map(|t| t as usize)
    }

    fn run(&mut self) {
        let n = self.direct.len();
        // 0 = unvisited, 1 = on the current walk, 2 = resolved.
        let mut state = vec![0u8; n];
        let mut path: Vec<usize> = Vec::new();
        for s in 0..n {
            if state[s] == 2 {
                continue;
            }
            path.clear();
            let mut x = s;
            // The outcome for every voter on the path (they all share the chain's end).
            let shared = loop {
                if state[x] == 2 {
                    break match self.outcomes[x] {
                        Outcome::Direct => Outcome::Via(x as u32),
                        Outcome::Abstained => Outcome::DeadEnd(x as u32),
                        other => other,
                    };
                }
                if state[x] == 1 {
                    break Outcome::Cycle;
                }
                if self.direct[x] {
                    self.outcomes[x] = Outcome::Direct;
                    state[x] = 2;
                    break Outcome::Via(x as u32);
                }
                match self.trustee(x) {
                    None => {
                        self.outcomes[x] = Outcome::Abstained;
                        state[x] = 2;
                        break Outcome::DeadEnd(x as u32);
                    }
                    Some(t) => {
                        state[x] = 1;
                        path.push(x);
                        x = t;
                    }
                }
            };
            for &p in &path {
                self.outcomes[p] = shared;
                state[p] = 2;
            }
        }
        let mut sum = Summary::default();
        for v in 0..n {
            match self.outcomes[v] {
                Outcome::Direct => {
                    sum.direct += 1;
                    self.weights[v] += 1;
                }
                Outcome::Via(d) => {
                    sum.delegated += 1;
                    self.weights[d as usize] += 1;
                }
                Outcome::Abstained => sum.abstained += 1,
                Outcome::DeadEnd(_) => sum.dead_end += 1,
                Outcome::Cycle => sum.cycle += 1,
            }
        }
        self.summary = sum;
    }

    /// The chain from `voter`: each voter reached, the delegation applied, until a direct
    /// voter, a voter without delegation, or a voter already on the chain (a cycle: that
    /// voter is repeated as the last link).
    pub fn explain(&self, voter: u32) -> Vec<Link> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut x = voter as usize;
        while x < self.direct.len() {
            let direct = self.direct[x];
            let via = if direct { None } else { self.effective[x] };
            out.push(Link {
                voter: x as u32,
                via,
                direct,
            });
            if direct || !seen.insert(x) {
                break;
            }
            match self.trustee(x) {
                Some(t) => x = t,
                None => break,
            }
        }
        out
    }
}

/// A delegation table read from CSV, with string ids interned.
#[derive(Debug, Default)]
struct Ids {
    map: HashMap<String, u32>,
    names: Vec<String>,
}

impl Ids {
    fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.map.insert(s.to_string(), i);
        self.names.push(s.to_string());
        i
    }
}

/// An unusable row of an input table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// 1-based line.
    pub line: usize,
    /// Why it was rejected.
    pub reason: String,
}

/// Reads a delegation table `truster,scope,target,trustee` for one issue; returns the
/// delegations (with scope targets interned as 1 = this unit / area / issue, 0 = another;
/// a unit row without a target, or any unit row when `unit` is `None`, is this unit) and
/// the rejected rows.
fn read_delegations(
    text: &str,
    unit: Option<&str>,
    issue: &str,
    area: &str,
    voters: &mut Ids,
) -> (Vec<Delegation>, Vec<BadRow>) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                bad.push(BadRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        if rec.iter().all(str::is_empty) || rec.get(0).is_some_and(|f| f.starts_with('#')) {
            continue;
        }
        if line == 1 && rec.get(0) == Some("truster") {
            continue;
        }
        if rec.len() != 4 {
            bad.push(BadRow {
                line,
                reason: format!(
                    "expected 4 fields (truster,scope,target,trustee), found {}",
                    rec.len()
                ),
            });
            continue;
        }
        let (truster, scope, target, trustee) = (&rec[0], &rec[1], &rec[2], &rec[3]);
        if truster.is_empty() {
            bad.push(BadRow {
                line,
                reason: "empty truster".into(),
            });
            continue;
        }
        let sc = match scope {
            "unit" => Scope::Unit(u32::from(
                target.is_empty() || unit.is_none_or(|u| u == target),
            )),
            "area" => Scope::Area(u32::from(target == area)),
            "issue" => Scope::Issue(u32::from(target == issue)),
            other => {
                bad.push(BadRow {
                    line,
                    reason: format!("scope {other:?} is not unit, area or issue"),
                });
                continue;
            }
        };
        if scope != "unit" && target.is_empty() {
            bad.push(BadRow {
                line,
                reason: format!("{scope} delegation without a target {scope} id"),
            });
            continue;
        }
        if truster == trustee {
            bad.push(BadRow {
                line,
                reason: format!("{truster} delegates to themself"),
            });
            continue;
        }
        let key = (truster.to_string(), scope.to_string(), target.to_string());
        if let Some(first) = seen.get(&key) {
            bad.push(BadRow {
                line,
                reason: format!(
                    "second {scope} delegation of {truster} (first on line {first}); ignored"
                ),
            });
            continue;
        }
        seen.insert(key, line);
        let t = voters.get(truster);
        let to = if trustee.is_empty() {
            None
        } else {
            Some(voters.get(trustee))
        };
        out.push(Delegation {
            truster: t,
            scope: sc,
            trustee: to,
        });
    }
    (out, bad)
}

#[derive(Serialize)]
struct CliReport<'a> {
    issue: &'a str,
    area: &'a str,
    summary: Summary,
    weights: Vec<(&'a str, u64)>,
    explanations: Vec<(&'a str, Vec<String>)>,
    rejected_rows: &'a [BadRow],
}

fn describe(link: &Link, names: &[String]) -> String {
    let who = &names[link.voter as usize];
    if link.direct {
        return format!("{who} votes directly");
    }
    match link.via {
        None => format!("{who} neither votes nor delegates"),
        Some((scope, trustee)) => {
            let s = match scope {
                Scope::Unit(_) => "unit",
                Scope::Area(_) => "area",
                Scope::Issue(_) => "issue",
            };
            match trustee {
                Some(t) => format!("{who} delegates ({s} delegation) to {}", names[t as usize]),
                None => format!("{who} chose \"no delegation\" at {s} scope"),
            }
        }
    }
}

/// `guildhall delegate resolve`: reads the tables, resolves, prints.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cli_resolve(
    delegations: &Path,
    unit: Option<&str>,
    voters_file: &Path,
    issue: &str,
    area: &str,
    explain: &[String],
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dtext = std::fs::read_to_string(delegations)
        .with_context(|| format!("reading {}", delegations.display()))?;
    let vtext = std::fs::read_to_string(voters_file)
        .with_context(|| format!("reading {}", voters_file.display()))?;
    let mut ids = Ids::default();
    let (dels, bad) = read_delegations(&dtext, unit, issue, area, &mut ids);
    for b in &bad {
        eprintln!("{}:{}: {}", delegations.display(), b.line, b.reason);
    }
    let direct: Vec<u32> = vtext
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| ids.get(l))
        .collect();
    for e in explain {
        ids.get(e);
    }
    let here = Subject {
        unit: 1,
        area: 1,
        issue: 1,
    };
    let r = Resolver::resolve(ids.names.len(), &dels, here, &direct);
    let mut weights: Vec<(&str, u64)> = (0..ids.names.len())
        .filter(|&v| r.weights[v] > 0)
        .map(|v| (ids.names[v].as_str(), r.weights[v]))
        .collect();
    weights.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let explanations: Vec<(&str, Vec<String>)> = explain
        .iter()
        .map(|e| {
            let v = ids.map.get(e.as_str()).copied().unwrap_or(0);
            let mut steps: Vec<String> = r
                .explain(v)
                .iter()
                .map(|l| describe(l, &ids.names))
                .collect();
            steps.push(match r.outcomes[v as usize] {
                Outcome::Direct => "vote cast directly".to_string(),
                Outcome::Via(d) => format!("vote cast by {}", ids.names[d as usize]),
                Outcome::Abstained => "no vote cast".to_string(),
                Outcome::DeadEnd(d) => format!(
                    "not cast: the chain ends at {}, who neither votes nor delegates",
                    ids.names[d as usize]
                ),
                Outcome::Cycle => "not cast: the chain runs into a cycle".to_string(),
            });
            (e.as_str(), steps)
        })
        .collect();
    let rep = CliReport {
        issue,
        area,
        summary: r.summary,
        weights,
        explanations,
        rejected_rows: &bad,
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &rep)?;
        writeln!(out)?;
    } else {
        let s = rep.summary;
        writeln!(
            out,
            "issue {issue} (area {area}): {} direct, {} delegated, {} abstained, {} lost at dead ends, {} lost in cycles",
            s.direct, s.delegated, s.abstained, s.dead_end, s.cycle
        )?;
        for (name, w) in &rep.weights {
            writeln!(out, "{name}\t{w}")?;
        }
        for (name, steps) in &rep.explanations {
            writeln!(out, "\n{name}:")?;
            for st in steps {
                writeln!(out, "  {st}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(area: u32, issue: u32) -> Subject {
        Subject {
            unit: 0,
            area,
            issue,
        }
    }

    fn d(truster: u32, scope: Scope, trustee: Option<u32>) -> Delegation {
        Delegation {
            truster,
            scope,
            trustee,
        }
    }

    #[test]
    fn most_specific_scope_wins_and_null_blocks() {
        // 0 -> unit 1, area(7) 2, issue(9) 3; 4 -> unit 1 but area(7) none; 5 -> area(8) 2.
        let ds = [
            d(0, Scope::Unit(0), Some(1)),
            d(0, Scope::Issue(9), Some(3)),
            d(0, Scope::Area(7), Some(2)),
            d(4, Scope::Unit(0), Some(1)),
            d(4, Scope::Area(7), None),
            d(5, Scope::Area(8), Some(2)),
        ];
        let r = Resolver::resolve(6, &ds, at(7, 9), &[1, 2, 3]);
        assert_eq!(r.outcomes[0], Outcome::Via(3));
        assert_eq!(r.outcomes[4], Outcome::Abstained);
        assert_eq!(r.outcomes[5], Outcome::Abstained);
        let r = Resolver::resolve(6, &ds, at(7, 10), &[1, 2, 3]);
        assert_eq!(r.outcomes[0], Outcome::Via(2));
        let r = Resolver::resolve(6, &ds, at(8, 10), &[1, 2, 3]);
        assert_eq!(r.outcomes[0], Outcome::Via(1));
        assert_eq!(r.outcomes[4], Outcome::Via(1));
        assert_eq!(r.outcomes[5], Outcome::Via(2));
        assert_eq!(r.weights[1], 3);
    }

    #[test]
    fn delegations_of_other_units_do_not_apply() {
        let ds = [d(0, Scope::Unit(5), Some(1)), d(2, Scope::Unit(0), Some(1))];
        let r = Resolver::resolve(3, &ds, at(0, 0), &[1]);
        assert_eq!(r.outcomes[0], Outcome::Abstained);
        assert_eq!(r.outcomes[2], Outcome::Via(1));
        let mut ids = Ids::default();
        let text = "ann,unit,u1,bob\ncy,unit,u2,bob\ndan,unit,,bob\n";
        let (ds, _) = read_delegations(text, Some("u1"), "i", "a", &mut ids);
        let units: Vec<Scope> = ds.iter().map(|x| x.scope).collect();
        assert_eq!(units, vec![Scope::Unit(1), Scope::Unit(0), Scope::Unit(1)]);
    }

    #[test]
    fn direct_vote_overrides_and_chains_are_transitive() {
        // 0 -> 1 -> 2 -> 3; 2 votes directly.
        let ds = [
            d(0, Scope::Unit(0), Some(1)),
            d(1, Scope::Unit(0), Some(2)),
            d(2, Scope::Unit(0), Some(3)),
        ];
        let r = Resolver::resolve(4, &ds, at(0, 0), &[2, 3]);
        assert_eq!(r.outcomes[2], Outcome::Direct);
        assert_eq!(r.outcomes[0], Outcome::Via(2));
        assert_eq!(r.weights[2], 3);
        assert_eq!(r.weights[3], 1);
        let chain = r.explain(0);
        assert_eq!(
            chain.iter().map(|l| l.voter).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(chain[2].direct);
        // Nobody votes at the end: dead end.
        let r = Resolver::resolve(4, &ds, at(0, 0), &[]);
        assert_eq!(r.outcomes[0], Outcome::DeadEnd(3));
        assert_eq!(r.summary.dead_end, 3);
        assert_eq!(r.summary.abstained, 1);
    }

    #[test]
    fn cycles_end_harmlessly() {
        // 0 -> 1 -> 2 -> 0 cycle, 3 -> 0 leads into it; 4 -> 5 <-> 6 where 6 votes.
        let ds = [
            d(0, Scope::Unit(0), Some(1)),
            d(1, Scope::Unit(0), Some(2)),
            d(2, Scope::Unit(0), Some(0)),
            d(3, Scope::Unit(0), Some(0)),
            d(4, Scope::Unit(0), Some(5)),
            d(5, Scope::Unit(0), Some(6)),
            d(6, Scope::Unit(0), Some(5)),
        ];
        let r = Resolver::resolve(7, &ds, at(0, 0), &[6]);
        for v in 0..4 {
            assert_eq!(r.outcomes[v], Outcome::Cycle, "voter {v}");
        }
        assert_eq!(r.weights[6], 3);
        assert_eq!(r.summary.cycle, 4);
        let chain = r.explain(3);
        assert_eq!(
            chain.iter().map(|l| l.voter).collect::<Vec<_>>(),
            vec![3, 0, 1, 2, 0]
        );
    }

    #[test]
    fn weights_sum_to_cast_votes_on_random_graphs() {
        let mut lot = crate::stv::Lot::new(42);
        for _ in 0..50 {
            let n = 1 + lot.below(60);
            let mut ds = Vec::new();
            for t in 0..n {
                if lot.below(3) > 0 {
                    ds.push(d(t as u32, Scope::Unit(0), Some(lot.below(n) as u32)));
                }
            }
            let direct: Vec<u32> = (0..n as u32).filter(|_| lot.below(4) == 0).collect();
            let r = Resolver::resolve(n, &ds, at(0, 0), &direct);
            let s = r.summary;
            assert_eq!(r.weights.iter().sum::<u64>(), s.direct + s.delegated);
            assert_eq!(
                s.direct + s.delegated + s.abstained + s.dead_end + s.cycle,
                n as u64
            );
            // Every Via outcome agrees with walking the chain naively.
            for v in 0..n {
                if let Outcome::Via(x) = r.outcomes[v] {
                    let chain = r.explain(v as u32);
                    assert_eq!(chain.last().map(|l| l.voter), Some(x));
                }
            }
        }
    }

    #[test]
    fn million_voters_in_thousand_deep_chains() {
        let (n, depth) = (1_000_000u32, 1000u32);
        let ds: Vec<Delegation> = (0..n)
            .filter(|i| i % depth != depth - 1)
            .map(|i| d(i, Scope::Unit(0), Some(i + 1)))
            .collect();
        let direct: Vec<u32> = (0..n).filter(|i| i % depth == depth - 1).collect();
        let r = Resolver::resolve(n as usize, &ds, at(0, 0), &direct);
        assert_eq!(r.summary.direct, 1000);
        assert_eq!(r.summary.delegated, 999_000);
        assert!(direct.iter().all(|&v| r.weights[v as usize] == 1000));
        assert_eq!(r.outcomes[0], Outcome::Via(999));
        assert_eq!(r.explain(0).len(), 1000);
    }

    #[test]
    fn csv_rows_are_validated_by_line() {
        let text = "truster,scope,target,trustee\nann,unit,,bob\nann,unit,,cy\nbob,area,,cy\n\
                    cy,galaxy,x,ann\ndan,issue,i1,dan\neve,issue,i1,\nfay,area,a1,bob\n";
        let mut ids = Ids::default();
        let (ds, bad) = read_delegations(text, None, "i1", "a1", &mut ids);
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[1].trustee, None);
        assert_eq!(ds[2].scope, Scope::Area(1));
    }
}
