#!/usr/bin/env python3
"""Side-by-side: Guildhall's STV counts against established PyPI implementations.

Peers (installed into bench/vote/.venv by ./setup.sh):
  - pref_voting 1.18.2: stv_meek, stv_wig (quota "nb" = exact Droop, as our WIGM), stv_scottish
  - votekit 3.5.0: FastSTV(transfer="fractional", quota="droop")  (WIG-style, float)
  - STVPoll 0.5.6: calculate_scottish_stv (Scottish STV, 5-decimal rounding)

Peer budgets for `bench` (seconds, env): PEER_BUDGET (default 900) for votekit on the 1M file
and for votekit Schulze; PEER_MEEK_BUDGET (default 120) for pref_voting's stv_meek on the 1M file.

Usage:
  .venv/bin/python compare.py real            # the 9 real wards in shared/data/ballots
  .venv/bin/python compare.py random [N]      # N random profiles (gen_ballots.py), default 30
  .venv/bin/python compare.py bench           # timings (see README.md)

Our side runs the release example `vote_bench` (built by this script). Winners are compared
as sets; a mismatch is printed with both sets and makes the script exit 1.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHARED = ROOT.parent / "shared"
OUT = HERE / "out"
TARGET = os.environ.get("CARGO_TARGET_DIR", str(ROOT.parent / "target-vote"))
BIN = Path(TARGET) / "release" / "examples" / "vote_bench"


def build():
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "guildhall-vote", "--example", "vote_bench"],
        cwd=ROOT, check=True, env={**os.environ, "CARGO_TARGET_DIR": TARGET},
    )


def read_blt(path):
    """Minimal BLT reader: (candidates, seats, [(weight, [names])])."""
    lines = [l.strip() for l in Path(path).read_text().splitlines() if l.strip()]
    n, seats = map(int, lines[0].split())
    i = 1
    withdrawn = set()
    while lines[i].startswith("-"):
        withdrawn |= {int(t[1:]) for t in lines[i].split()}
        i += 1
    raw = []
    while lines[i] != "0":
        t = lines[i].split()
        raw.append((int(t[0]), [int(x) for x in t[1:-1]]))
        i += 1
    names = [l.strip('"') for l in lines[i + 1 : i + 1 + n]]
    ballots = [(w, [names[c - 1] for c in p if c not in withdrawn]) for w, p in raw]
    cands = [names[c - 1] for c in range(1, n + 1) if c not in withdrawn]
    return cands, seats, ballots


def ours(rule, path):
    out = subprocess.run([str(BIN), "stv", rule, str(path)], capture_output=True, text=True, check=True).stdout
    fields = dict(l.split("\t", 1) for l in out.splitlines())
    t = fields["read_s"].split("\t")
    return set(fields["elected"].split("|")), float(t[0]), float(t[2])


def pv_profile(cands, ballots):
    from pref_voting.profiles_with_ties import ProfileWithTies
    rankings = [{c: r for r, c in enumerate(p)} for _, p in ballots]
    return ProfileWithTies(rankings, rcounts=[w for w, _ in ballots], candidates=cands)


def pv_meek(cands, seats, ballots):
    from pref_voting.proportional_methods import stv_meek
    return set(stv_meek(pv_profile(cands, ballots), num_seats=seats))


def pv_wig(cands, seats, ballots):
    from pref_voting.proportional_methods import stv_wig
    return set(stv_wig(pv_profile(cands, ballots), num_seats=seats, quota_rule="nb"))


def pv_scottish(cands, seats, ballots):
    import random
    from pref_voting.proportional_methods import stv_scottish
    return set(stv_scottish(pv_profile(cands, ballots), num_seats=seats, rng=random.Random(0)))


def votekit_fractional(cands, seats, ballots):
    from votekit import RankBallot, RankProfile
    from votekit.elections import FastSTV
    prof = RankProfile(
        ballots=[RankBallot(ranking=tuple(frozenset({c}) for c in p), weight=w) for w, p in ballots if p],
        candidates=cands,
    )
    e = FastSTV(prof, n_seats=seats, transfer="fractional", quota="droop")
    return {c for s in e.get_elected() for c in s}


def stvpoll_scottish(cands, seats, ballots):
    from stvpoll.scottish_stv import calculate_scottish_stv
    data = [(tuple(p), w) for w, p in ballots]
    return set(calculate_scottish_stv(tuple(cands), data, seats, random_shuffle=False))


PAIRS = [
    ("meek", "pref_voting stv_meek", pv_meek),
    ("wigm", "pref_voting stv_wig(nb)", pv_wig),
    ("wigm", "votekit FastSTV fractional", votekit_fractional),
    ("scottish", "pref_voting stv_scottish", pv_scottish),
    ("scottish", "STVPoll ScottishSTV", stvpoll_scottish),
]


def compare(path, label):
    cands, seats, ballots = read_blt(path)
    mismatches = 0
    ours_cache = {}
    row = [label]
    for rule, peer_name, peer in PAIRS:
        if rule not in ours_cache:
            ours_cache[rule] = ours(rule, path)[0]
        mine = ours_cache[rule]
        t = time.perf_counter()
        theirs = peer(cands, seats, ballots)
        dt = time.perf_counter() - t
        ok = mine == theirs
        row.append(("same" if ok else "DIFF") + f" ({dt:.2f}s)")
        if not ok:
            mismatches += 1
            print(f"  {label}: ours {rule} {sorted(mine)} vs {peer_name} {sorted(theirs)}")
    print(" | ".join(row), flush=True)
    return mismatches


def real():
    files = sorted((SHARED / "data/ballots/scotland-2017").glob("*.blt")) + sorted(
        (SHARED / "data/ballots/glasgow-2007").glob("*.blt")
    )
    print("file | " + " | ".join(f"{r} vs {p}" for r, p, _ in PAIRS))
    bad = sum(compare(f, f.stem) for f in files)
    print(f"real files: {len(files)}, mismatching comparisons: {bad}")
    return bad


def random_profiles(n):
    OUT.mkdir(exist_ok=True)
    bad = 0
    print("profile | " + " | ".join(f"{r} vs {p}" for r, p, _ in PAIRS))
    for seed in range(1, n + 1):
        cands = 4 + seed % 7
        seats = 1 + seed % 4
        ballots = 200 + 100 * (seed % 8)
        f = OUT / f"random-{seed}.blt"
        subprocess.run(
            [sys.executable, str(SHARED / "bench/gen_ballots.py"), str(f), "--ballots", str(ballots),
             "--candidates", str(cands), "--seats", str(seats), "--seed", str(seed)],
            check=True,
        )
        bad += compare(f, f"seed{seed} c{cands} s{seats} b{ballots}")
    print(f"random profiles: {n}, mismatching comparisons: {bad}")
    return bad


def timed(fn, *args):
    t = time.perf_counter()
    r = fn(*args)
    return r, time.perf_counter() - t


def bench():
    OUT.mkdir(exist_ok=True)
    big = OUT / "meek-1m.blt"
    if not big.exists():
        subprocess.run([sys.executable, str(SHARED / "bench/gen_ballots.py"), str(big), "--ballots", "1000000",
                        "--candidates", "30", "--seats", "7", "--seed", "5"], check=True)
    sch = OUT / "schulze-100x100k.blt"
    if not sch.exists():
        subprocess.run([sys.executable, str(SHARED / "bench/gen_ballots.py"), str(sch), "--ballots", "100000",
                        "--candidates", "100", "--seats", "1", "--seed", "7"], check=True)
    for rule in ("meek", "wigm", "scottish"):
        won, rd, ct = ours(rule, big)
        print(f"ours {rule} 1M ballots/30 cands/7 seats: read {rd:.3f}s count {ct:.3f}s elected {sorted(won)}", flush=True)
    cands, seats, ballots = read_blt(big)
    peer_budget = float(os.environ.get("PEER_BUDGET", "900"))
    meek_budget = float(os.environ.get("PEER_MEEK_BUDGET", "120"))
    for name, fn, budget in (
        ("votekit FastSTV fractional", votekit_fractional, peer_budget),
        ("pref_voting stv_meek", pv_meek, meek_budget),
    ):
        # Each peer in its own process with a time budget.
        code = (
            "import sys, time; sys.path.insert(0, %r); import compare as c; "
            "cands, seats, ballots = c.read_blt(%r); t = time.perf_counter(); "
            "w = c.%s(cands, seats, ballots); print('%%.3f' %% (time.perf_counter() - t), sorted(w))"
        ) % (str(HERE), str(big), fn.__name__)
        try:
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=budget)
            print(f"peer {name} 1M ballots: {r.stdout.strip() or r.stderr.strip()[-300:]}", flush=True)
        except subprocess.TimeoutExpired:
            print(f"peer {name} 1M ballots: did not finish within {budget:.0f}s", flush=True)
    out = subprocess.run([str(BIN), "schulze", str(sch)], capture_output=True, text=True, check=True).stdout
    print("ours schulze 100 cands x 100k ballots:", out.replace("\n", "  "))
    code = (
        "import sys, time; sys.path.insert(0, %r); import compare as c; "
        "from votekit import RankBallot, RankProfile; from votekit.elections import Schulze; "
        "cands, seats, ballots = c.read_blt(%r); t = time.perf_counter(); "
        "p = RankProfile(ballots=[RankBallot(ranking=tuple(frozenset({x}) for x in b), weight=w) for w, b in ballots], candidates=cands); "
        "e = Schulze(p); print('%%.3f' %% (time.perf_counter() - t), [sorted(s) for s in e.get_elected()])"
    ) % (str(HERE), str(sch))
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=peer_budget)
        print(f"peer votekit Schulze 100x100k: {r.stdout.strip() or r.stderr.strip()[-300:]}")
    except subprocess.TimeoutExpired:
        print(f"peer votekit Schulze 100x100k: did not finish within {peer_budget:.0f}s")
    out = subprocess.run([str(BIN), "delegate", "1000000", "1000"], capture_output=True, text=True, check=True).stdout
    print("ours delegation 1M voters, chains 1000 deep:", out.replace("\n", "  "))


if __name__ == "__main__":
    build()
    what = sys.argv[1] if len(sys.argv) > 1 else "real"
    if what == "real":
        sys.exit(1 if real() else 0)
    elif what == "random":
        sys.exit(1 if random_profiles(int(sys.argv[2]) if len(sys.argv) > 2 else 30) else 0)
    elif what == "bench":
        bench()
    else:
        print(__doc__)
        sys.exit(2)
