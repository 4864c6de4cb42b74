#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fast MES against a direct transcription of pabutools' `mes_inner_algo` (one voter at a
//! time, exact rationals) on random elections with many ties.

use guildhall_pb::number::Q;
use guildhall_pb::rules::{tally, Completion, Rule, TallyOptions, Ties, Utility};
use guildhall_pb::{read_election, Election};
use num_traits::{One, Zero};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn random_pb(r: &mut Lcg, cumulative: bool) -> String {
    let m = 2 + r.next(9) as usize;
    let n = 1 + r.next(60) as usize;
    let costs: Vec<u64> = (0..m)
        .map(|_| (1 + r.next(5)) * 100 + if r.next(3) == 0 { 50 } else { 0 })
        .collect();
    let total: u64 = costs.iter().sum();
    let budget = (total * (2 + r.next(5)) / 10).max(*costs.iter().max().unwrap());
    let mut s = format!(
        "META\nkey;value\ndescription;r\ncountry;x\nunit;x\ninstance;x\nnum_projects;{m}\nnum_votes;{n}\nbudget;{budget}\nvote_type;{}\nrule;unknown\ndate_begin;2026\ndate_end;2026\nPROJECTS\nproject_id;cost\n",
        if cumulative { "cumulative" } else { "approval" }
    );
    for (j, c) in costs.iter().enumerate() {
        s += &format!("p{};{c}\n", j + 1);
    }
    s += if cumulative {
        "VOTES\nvoter_id;vote;points\n"
    } else {
        "VOTES\nvoter_id;vote\n"
    };
    for i in 0..n {
        let k = 1 + r.next(m.min(4) as u64) as usize;
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < k {
            let p = r.next(m as u64) as usize;
            if !chosen.contains(&p) {
                chosen.push(p);
            }
        }
        let ids: Vec<String> = chosen.iter().map(|p| format!("p{}", p + 1)).collect();
        s += &format!("v{i};{}", ids.join(","));
        if cumulative {
            let pts: Vec<String> = chosen.iter().map(|_| (1 + r.next(3)).to_string()).collect();
            s += &format!(";{}", pts.join(","));
        }
        s += "\n";
    }
    s
}

/// pabutools `mes_inner_algo`, resolute, lexicographic ties, one voter per ballot.
fn naive_mes(e: &Election, u: Utility, e0: &Q) -> Vec<usize> {
    let m = e.projects.len();
    let util = |v: usize, p: usize| -> Q {
        let voter = &e.voters[v];
        match voter.ballot.iter().position(|&x| x as usize == p) {
            None => Q::zero(),
            Some(i) => match u {
                Utility::Cost => e.projects[p].cost.clone(),
                Utility::Approval => Q::one(),
                Utility::Cardinal => Q::from_integer(voter.points.as_ref().unwrap()[i].into()),
            },
        }
    };
    let n = e.voters.len();
    let mut b: Vec<Q> = vec![e0.clone(); n];
    let mut remaining: Vec<usize> = (0..m)
        .filter(|&p| (0..n).any(|v| util(v, p) > Q::zero()) && e.projects[p].cost > Q::zero())
        .collect();
    let mut sel = Vec::new();
    loop {
        let mut best: Option<(Q, Vec<usize>)> = None;
        for &p in &remaining {
            let c = &e.projects[p].cost;
            let mut sup: Vec<usize> = (0..n).filter(|&v| util(v, p) > Q::zero()).collect();
            let total: Q = sup
                .iter()
                .map(|&v| b[v].clone())
                .fold(Q::zero(), |a, x| a + x);
            if &total < c {
                continue;
            }
            sup.sort_by(|&x, &y| (&b[x] / util(x, p)).cmp(&(&b[y] / util(y, p))));
            let mut paid = Q::zero();
            let mut den: Q = sup
                .iter()
                .map(|&v| util(v, p))
                .fold(Q::zero(), |a, x| a + x);
            for &v in &sup {
                let rho = (c - &paid) / &den;
                if &rho * util(v, p) <= b[v] {
                    match &mut best {
                        Some((br, t)) if *br == rho => t.push(p),
                        Some((br, _)) if *br < rho => {}
                        _ => best = Some((rho, vec![p])),
                    }
                    break;
                }
                paid += &b[v];
                den -= util(v, p);
            }
        }
        let Some((rho, tied)) = best else { break };
        let win = *tied
            .iter()
            .min_by(|&&x, &&y| e.projects[x].id.cmp(&e.projects[y].id))
            .unwrap();
        for (v, bv) in b.iter_mut().enumerate() {
            let uu = util(v, win);
            if uu > Q::zero() {
                let pay = (&rho * uu).min(bv.clone());
                *bv -= pay;
            }
        }
        sel.push(win);
        remaining.retain(|&p| p != win);
    }
    sel
}

fn naive_add1(e: &Election, u: Utility) -> Vec<usize> {
    let mut e0 = &e.budget / Q::from_integer(e.voters.len().into());
    let cands: Vec<usize> = (0..e.projects.len())
        .filter(|&p| e.voters.iter().any(|v| v.ballot.contains(&(p as u32))))
        .collect();
    let mut prev: Vec<usize> = Vec::new();
    loop {
        let s = naive_mes(e, u, &e0);
        let cost: Q = s
            .iter()
            .map(|&p| e.projects[p].cost.clone())
            .fold(Q::zero(), |a, x| a + x);
        if cost > e.budget {
            return prev;
        }
        let left = &e.budget - &cost;
        if !cands
            .iter()
            .any(|p| !s.contains(p) && e.projects[*p].cost <= left)
        {
            return s;
        }
        prev = s;
        e0 += Q::one();
    }
}

#[test]
fn fast_mes_equals_naive_mes_on_random_elections() {
    let mut r = Lcg(20261126);
    let mut checked = 0;
    for i in 0..150 {
        let cumulative = i % 3 == 2;
        let text = random_pb(&mut r, cumulative);
        let (e, issues) = read_election(text.as_bytes(), "random").unwrap();
        assert!(issues.is_empty(), "{issues:?}\n{text}");
        let utils: &[Utility] = if cumulative {
            &[Utility::Cost, Utility::Approval, Utility::Cardinal]
        } else {
            &[Utility::Cost, Utility::Approval]
        };
        for &u in utils {
            let e0 = &e.budget / Q::from_integer(e.voters.len().into());
            let want = naive_mes(&e, u, &e0);
            let opts = TallyOptions {
                rule: Rule::Mes,
                utility: u,
                ties: Ties::Pabutools,
                ..TallyOptions::default()
            };
            let got = tally(&e, &opts, false).unwrap();
            assert_eq!(got.selected, want, "{u:?}\n{text}");
            if i % 5 == 0 {
                let want = naive_add1(&e, u);
                let got = tally(
                    &e,
                    &TallyOptions {
                        completion: Completion::Add1,
                        ..opts.clone()
                    },
                    false,
                )
                .unwrap();
                assert_eq!(got.selected, want, "add1 {u:?}\n{text}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 350);
}
