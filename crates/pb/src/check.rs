//! pabulib-checker style validation of a whole election (beyond the line-level checks the
//! reader already makes).

use crate::model::{Election, VoteType};
use crate::number::{fmt_q, parse_decimal, Q};
use crate::profile::Profile;
use crate::reader::{Issue, Severity};
use crate::rules::{greedy, total_cost, Explanation, GreedyKey, GreedyVariant, TieOrder, Ties};
use num_traits::Zero;

fn err(line: Option<usize>, code: &'static str, message: String) -> Issue {
    Issue {
        severity: Severity::Error,
        line,
        code,
        message,
    }
}
fn warn(line: Option<usize>, code: &'static str, message: String) -> Issue {
    Issue {
        severity: Severity::Warning,
        line,
        code,
        message,
    }
}

/// Runs the election-level checks; returns the new issues.
pub fn check_election(e: &Election) -> Vec<Issue> {
    let mut out = Vec::new();
    let prof = Profile::new(e);
    // counts
    if let Some(v) = e.meta("num_projects") {
        if v.parse::<usize>().ok() != Some(e.projects.len()) {
            out.push(err(
                None,
                "num-projects",
                format!(
                    "META num_projects is {v}, the file has {} projects",
                    e.projects.len()
                ),
            ));
        }
    }
    if let Some(v) = e.meta("num_votes") {
        if v.parse::<usize>().ok() != Some(e.voters.len()) {
            out.push(err(
                None,
                "num-votes",
                format!(
                    "META num_votes is {v}, the file has {} votes",
                    e.voters.len()
                ),
            ));
        }
    }
    // per-project votes / score (votes count every listing, as pabulib-checker does)
    let mut listings = vec![0u64; e.projects.len()];
    for v in &e.voters {
        for &p in &v.ballot {
            listings[p as usize] += 1;
        }
    }
    for (p, proj) in e.projects.iter().enumerate() {
        if let Some(v) = e.project_cell(p, "votes") {
            if let Ok(q) = parse_decimal(v) {
                if q != Q::from_integer(listings[p].into()) {
                    out.push(err(
                        Some(proj.line),
                        "votes-mismatch",
                        format!("project {}: votes {v}, counted {}", proj.id, listings[p]),
                    ));
                }
            }
        }
        if let Some(v) = e.project_cell(p, "score") {
            if let Ok(q) = parse_decimal(v) {
                let counted = match e.vote_type {
                    VoteType::Cumulative | VoteType::Scoring => prof.points[p],
                    VoteType::Ordinal => prof.ordinal_score[p],
                    _ => prof.approvals[p] as i64,
                };
                if q != Q::from_integer(counted.into()) {
                    out.push(err(
                        Some(proj.line),
                        "score-mismatch",
                        format!("project {}: score {v}, counted {counted}", proj.id),
                    ));
                }
            }
        }
        if proj.cost > e.budget {
            out.push(err(
                Some(proj.line),
                "project-over-budget",
                format!(
                    "project {} costs {}, more than the budget {}",
                    proj.id,
                    fmt_q(&proj.cost),
                    fmt_q(&e.budget)
                ),
            ));
        }
    }
    // per-voter cost limits (approval)
    let min_sc = e.meta("min_sum_cost").and_then(|v| parse_decimal(v).ok());
    let max_sc = e.meta("max_sum_cost").and_then(|v| parse_decimal(v).ok());
    if min_sc.is_some() || max_sc.is_some() {
        for v in &e.voters {
            let mut c = Q::zero();
            for &p in &v.ballot {
                c += &e.projects[p as usize].cost;
            }
            if min_sc.as_ref().is_some_and(|m| &c < m) {
                out.push(err(
                    Some(v.line),
                    "vote-cost",
                    format!("vote costs {}, below min_sum_cost", fmt_q(&c)),
                ));
            }
            if max_sc.as_ref().is_some_and(|m| &c > m) {
                out.push(err(
                    Some(v.line),
                    "vote-cost",
                    format!("vote costs {}, above max_sum_cost", fmt_q(&c)),
                ));
            }
        }
    }
    let all = total_cost(e, &(0..e.projects.len()).collect::<Vec<_>>());
    if e.meta("fully_funded") == Some("1") && all > e.budget {
        out.push(err(
            None,
            "fully-funded",
            format!(
                "fully_funded is 1 but all projects cost {} > budget {}",
                fmt_q(&all),
                fmt_q(&e.budget)
            ),
        ));
    }
    if e.meta("fully_funded") != Some("1") && all <= e.budget && !e.projects.is_empty() {
        out.push(warn(
            None,
            "fully-funded",
            "all projects fit in the budget but fully_funded is not 1".into(),
        ));
    }
    // the official outcome
    if let Some(sel) = e.official_selected() {
        let cost = total_cost(e, &sel);
        if cost > e.budget {
            out.push(err(
                None,
                "selected-over-budget",
                format!(
                    "selected projects cost {} > budget {}",
                    fmt_q(&cost),
                    fmt_q(&e.budget)
                ),
            ));
        }
        let rule = e.meta("rule").unwrap_or("");
        let variant = match rule {
            "greedy" => Some(GreedyVariant::Skip),
            "greedy-threshold" => Some(GreedyVariant::Threshold),
            "greedy-no-skip" => Some(GreedyVariant::NoSkip),
            _ => None,
        };
        if let Some(var) = variant {
            let ties = TieOrder::new(e, &prof, Ties::File);
            if var != GreedyVariant::NoSkip {
                let threshold = e
                    .meta("min_project_score_threshold")
                    .and_then(|v| parse_decimal(v).ok());
                let keys = crate::rules::basic_keys(e, &prof);
                let left = &e.budget - &cost;
                for (p, proj) in e.projects.iter().enumerate() {
                    if sel.contains(&p) || threshold.as_ref().is_some_and(|t| &keys[p] < t) {
                        continue;
                    }
                    if proj.cost <= left {
                        out.push(err(
                            Some(proj.line),
                            "unused-budget",
                            format!(
                                "project {} (cost {}) fits into the unused {}",
                                proj.id,
                                fmt_q(&proj.cost),
                                fmt_q(&left)
                            ),
                        ));
                    }
                }
            }
            let mut ex = Explanation::default();
            if let Ok(g) = greedy(e, &prof, var, GreedyKey::FileColumns, &ties, &mut ex) {
                let mut a = g.clone();
                let mut b = sel.clone();
                a.sort_unstable();
                b.sort_unstable();
                if a != b {
                    out.push(warn(
                        None,
                        "greedy-not-followed",
                        format!(
                            "the selected projects differ from rule `{rule}` applied to the file"
                        ),
                    ));
                }
            }
        } else if rule != "unknown" && !rule.starts_with("equalshares") {
            out.push(warn(
                None,
                "rule-unchecked",
                format!("rule `{rule}` not validated"),
            ));
        }
    } else {
        out.push(warn(
            None,
            "no-selected",
            "no `selected` column: the official outcome is unknown".into(),
        ));
    }
    out
}
