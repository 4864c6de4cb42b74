#!/usr/bin/env python3
"""Side by side with pabutools 1.2.3: outcomes of every rule both implement, on every file of
the data folder and on random elections; then one timed MES (cost utilities, Add1) run on
Poland_Lodz_2022.pb with peak memory; then a table of our time against voters and projects.

Run from the repository root:  bench/pb/run.sh   (creates bench/pb/.venv, builds, runs this)
Writes bench/pb/out/ (git-ignored); prints Markdown to stdout.
"""
import os
import random
import resource
import re
import statistics
import subprocess
import sys
import time
from fractions import Fraction

from pabutools.election import (
    parse_pabulib,
    Cost_Sat,
    Cardinality_Sat,
    Additive_Cardinal_Sat,
    ApprovalProfile,
    CumulativeProfile,
    CardinalProfile,
)
from pabutools.rules import (
    greedy_utilitarian_welfare,
    method_of_equal_shares,
    sequential_phragmen,
    max_additive_utilitarian_welfare,
    completion_by_rule_combination,
    popularity_comparison,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data", "pabulib")
OUT = os.path.join(ROOT, "bench", "pb", "out")
BIN = os.environ.get("PB_BIN", "/work/target-pb/release/examples/pb")
# pabutools is slow: the Add1-based rules run only up to ADD1_MAX voters, the other costly ones up
# to MID_MAX voters; greedy and plain MES run on every file (keeps the whole script < 15 min).
# PB_ADD1_MAX / PB_MID_MAX raise the limits; PB_FILES (comma-separated substrings) picks files;
# PB_ONLY_SKIPPED=1 runs only what the default limits leave out.
ADD1_MAX = int(os.environ.get("PB_ADD1_MAX", "3000"))
MID_MAX = int(os.environ.get("PB_MID_MAX", "10000"))
ONLY_SKIPPED = os.environ.get("PB_ONLY_SKIPPED") == "1"
FILES = [x for x in os.environ.get("PB_FILES", "").split(",") if x]


def child_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def ours(path, *args):
    """Our outcome (ids in selection order); without --json, so the time excludes explanations."""
    r = subprocess.run([BIN, "tally", path, *args], capture_output=True, text=True)
    if r.returncode != 0:
        return ("error", r.stderr.strip()[-200:])
    return {"selected_ids": r.stdout.splitlines()}


def names(alloc):
    return [p.name for p in alloc]


def welfare_of(inst, prof, sel, sat):
    sp = prof.as_sat_profile(sat)
    chosen = [p for p in inst if p.name in set(sel)]
    return sp.total_satisfaction(chosen)


def rules_for(inst, prof, n, vote_type, add1_max, mid_max):
    """(label, our CLI args, pabutools thunk, compare mode)."""
    mp = prof.as_multiprofile()
    approval_like = isinstance(prof, ApprovalProfile)
    out = [
        ("greedy-utilitarian cost", ["--rule", "greedy-utilitarian", "--utility", "cost"],
         lambda: greedy_utilitarian_welfare(inst, mp, sat_class=Cost_Sat), "ordered"),
        ("greedy-utilitarian approval", ["--rule", "greedy-utilitarian", "--utility", "approval"],
         lambda: greedy_utilitarian_welfare(inst, mp, sat_class=Cardinality_Sat), "ordered"),
        ("mes cost", ["--rule", "mes", "--utility", "cost"],
         lambda: method_of_equal_shares(inst, mp, sat_class=Cost_Sat), "ordered"),
    ]
    if n <= mid_max:
        out += [
            ("mes approval", ["--rule", "mes", "--utility", "approval"],
             lambda: method_of_equal_shares(inst, mp, sat_class=Cardinality_Sat), "ordered"),
            ("max-welfare cost (welfare value)", ["--rule", "max-welfare", "--utility", "cost"],
             lambda: max_additive_utilitarian_welfare(inst, mp, sat_class=Cost_Sat), "welfare:cost"),
            ("max-welfare approval (welfare value)", ["--rule", "max-welfare", "--utility", "approval"],
             lambda: max_additive_utilitarian_welfare(inst, mp, sat_class=Cardinality_Sat), "welfare:approval"),
        ]
        if approval_like:
            out.append(("phragmen", ["--rule", "phragmen"], lambda: sequential_phragmen(inst, mp), "set"))  # pabutools returns it sorted
        if vote_type in ("cumulative", "scoring"):
            out.append(("mes cardinal", ["--rule", "mes", "--utility", "cardinal"],
                        lambda: method_of_equal_shares(inst, mp, sat_class=Additive_Cardinal_Sat), "ordered"))
    if n <= add1_max:
        out += [
            ("mes cost add1", ["--rule", "mes", "--utility", "cost", "--completion", "add1"],
             lambda: method_of_equal_shares(inst, mp, sat_class=Cost_Sat, voter_budget_increment=1), "ordered"),
            ("mes cost add1+utilitarian",
             ["--rule", "mes", "--utility", "cost", "--completion", "add1-utilitarian"],
             lambda: completion_by_rule_combination(
                 inst, mp, [method_of_equal_shares, greedy_utilitarian_welfare],
                 [{"sat_class": Cost_Sat, "voter_budget_increment": 1}, {"sat_class": Cost_Sat}]), "set"),
            ("mes add1+utilitarian, comparison (pabutools recipe)",
             ["--rule", "mes", "--utility", "cost", "--completion", "add1-utilitarian",
              "--comparison", "cardinality"],
             lambda: popularity_comparison(
                 inst, mp, Cardinality_Sat,
                 [completion_by_rule_combination, greedy_utilitarian_welfare],
                 [{"rule_sequence": [method_of_equal_shares, greedy_utilitarian_welfare],
                   "rule_params": [{"sat_class": Cost_Sat, "voter_budget_increment": 1},
                                   {"sat_class": Cost_Sat}]},
                  {"sat_class": Cardinality_Sat}])[0], "set"),
        ]
    return out


def compare_file(path, rows, diffs):
    inst, prof = parse_pabulib(path)
    n = prof.num_ballots()
    vt = inst.meta.get("vote_type", "")
    # PB_ONLY_SKIPPED=1: only what the default limits leave out (the default run covers the rest)
    default_labels = {r[0] for r in rules_for(inst, prof, n, vt, 3000, 10000)}
    for label, args, thunk, mode in rules_for(inst, prof, n, vt, ADD1_MAX, MID_MAX):
        if ONLY_SKIPPED and label in default_labels:
            continue
        t0 = time.process_time()
        try:
            ref = thunk()
            ref_sel = names(ref)
        except Exception as ex:  # pabutools cannot run this combination
            rows.append((os.path.basename(path), label, "pabutools error: %s" % type(ex).__name__, "", ""))
            continue
        t_ref = time.process_time() - t0
        t0 = child_cpu()
        got = ours(path, *args)
        t_ours = child_cpu() - t0
        if isinstance(got, tuple):
            rows.append((os.path.basename(path), label, "ours error: " + got[1], "%.2f" % t_ref, ""))
            diffs.append((path, label))
            continue
        sel = got["selected_ids"]
        if mode == "ordered":
            same = sel == ref_sel
        elif mode == "set":
            same = sorted(sel) == sorted(ref_sel)
        else:
            sat = Cost_Sat if mode.endswith("cost") else Cardinality_Sat
            same = welfare_of(inst, prof, sel, sat) == welfare_of(inst, prof, ref_sel, sat)
        if not same:
            diffs.append((path, label, sel, ref_sel))
        rows.append((os.path.basename(path), label, "same" if same else "DIFFERENT",
                     "%.2f" % t_ref, "%.3f" % t_ours))
        print("progress:", *rows[-1], file=sys.stderr, flush=True)


def random_election(path, rng, n, m, ties):
    costs = [rng.choice([1, 2, 3, 4, 5]) * 1000 if ties else rng.randint(5, 200) * 100 for _ in range(m)]
    budget = max(max(costs), sum(costs) * rng.choice([2, 3, 4]) // 10)
    pop = [rng.random() ** 2 for _ in range(m)]
    lines = ["META", "key;value", "description;random", "country;none", "unit;none", "instance;r",
             "num_projects;%d" % m, "num_votes;%d" % n, "budget;%d" % budget, "vote_type;approval",
             "rule;unknown", "date_begin;2026", "date_end;2026", "PROJECTS", "project_id;cost"]
    for j in range(m):
        lines.append("p%d;%d" % (j + 1, costs[j]))
    lines += ["VOTES", "voter_id;vote"]
    for i in range(n):
        k = rng.randint(1, min(m, 5))
        chosen = set()
        while len(chosen) < k:
            chosen.add(rng.choices(range(m), weights=pop)[0])
        lines.append("v%d;%s" % (i, ",".join("p%d" % (j + 1) for j in sorted(chosen))))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def peak(cmd):
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    el = re.search(r"Elapsed \(wall clock\) time.*: (.*)", r.stderr).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", r.stderr).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", r.stderr).group(1))
    parts = [float(x) for x in el.split(":")]
    secs = sum(x * 60 ** i for i, x in enumerate(reversed(parts)))
    return secs, user + sys_, rss, r.stdout


def main():
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[1:]
    rows, diffs = [], []
    files = sorted(f for f in os.listdir(DATA)
                   if f.endswith(".pb") and (not FILES or any(x in f for x in FILES)))
    if not only or "files" in only:
        for f in files:
            compare_file(os.path.join(DATA, f), rows, diffs)
    if not only or "random" in only:
        rng = random.Random(20261126)
        for i in range(60):
            p = os.path.join(OUT, "random_%02d.pb" % i)
            random_election(p, rng, rng.randint(5, 300), rng.randint(3, 14), ties=(i % 2 == 0))
            compare_file(p, rows, diffs)
    print("| file | rule | outcome vs pabutools | pabutools CPU s | ours CPU s (incl. reading the file) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %s | %s | %s |" % r)
    print()
    print("comparisons: %d, differences: %d" % (len(rows), len(diffs)))
    for d in diffs:
        print("DIFF", d)
    if not only or "lodz" in only:
        lodz = os.path.join(DATA, "Poland_Lodz_2022.pb")
        script = ("from pabutools.election import parse_pabulib, Cost_Sat\n"
                  "from pabutools.rules import method_of_equal_shares\n"
                  "i, p = parse_pabulib(%r)\n"
                  "r = method_of_equal_shares(i, p.as_multiprofile(), sat_class=Cost_Sat, voter_budget_increment=1)\n"
                  "print('\\n'.join(x.name for x in r))\n" % lodz)
        ours_cmd = [BIN, "tally", lodz, "--rule", "mes", "--completion", "add1"]
        print()
        print("load average before: %.2f %.2f %.2f" % os.getloadavg())
        # ours is fast and the machine is shared: 11 runs (median), before and after pabutools' run
        runs = [peak(ours_cmd) for _ in range(6)]
        s_ref, u_ref, m_ref, out_ref = peak([sys.executable, "-c", script])
        runs += [peak(ours_cmd) for _ in range(5)]
        print("load average after: %.2f %.2f %.2f" % os.getloadavg())
        s_ours = statistics.median(r[0] for r in runs)
        u_ours = statistics.median(r[1] for r in runs)
        m_ours = max(r[2] for r in runs)
        same = all(r[3].split() == out_ref.split() for r in runs)
        print("ours, 11 runs: wall %s s; user+sys %s s" % (
            " ".join("%.2f" % r[0] for r in runs), " ".join("%.2f" % r[1] for r in runs)))
        print("Lodz 2022 MES cost Add1: pabutools %.2f s wall, %.2f s user+sys, %d KB; ours (median of 11) "
              "%.3f s wall, %.3f s user+sys, %d KB (max); same outcome in the same order: %s; "
              "speed-up %.0fx (wall) %.0fx (CPU); memory 1/%.0f"
              % (s_ref, u_ref, m_ref, s_ours, u_ours, m_ours, same, s_ref / max(s_ours, 1e-9),
                 u_ref / max(u_ours, 1e-9), m_ref / max(m_ours, 1)))
    if not only or "scale" in only:
        rng = random.Random(7)
        print()
        print("| voters | projects | ours: MES cost Add1 s (wall) | user+sys s | peak KB |")
        print("|---|---|---|---|---|")
        for n in (10000, 30000, 100000, 300000):
            for m in (25, 50, 100, 200):
                p = os.path.join(OUT, "scale_%d_%d.pb" % (n, m))
                if not os.path.exists(p):
                    random_election(p, rng, n, m, ties=False)
                s, u, kb, _ = peak([BIN, "tally", p, "--rule", "mes", "--completion", "add1"])
                print("| %d | %d | %.3f | %.3f | %d |" % (n, m, s, u, kb))


if __name__ == "__main__":
    main()
