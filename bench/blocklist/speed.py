#!/usr/bin/env python3
"""Speed and peak memory of FediBlockHole 0.4.6 vs `guildhall blocklist merge`, side by side.

Each run goes through /usr/bin/time -v (wall clock and maximum resident set size). The
headline case is 200 lists x 20,000 rows, mergeplan max, pct threshold 10; the scaling table
covers 10/50/200 lists of 1,000 and 20,000 rows (FediBlockHole's 200 x 20,000 run is reused,
so it runs once). The two outputs of every run are also compared byte for byte.

The headline case is run REPEAT times per tool (environment variable, default 3), the tools
alternating, and the ratio is that of the medians: on a shared machine one run of either tool
can be off by a fifth or more, and a single pair of runs says little. Every timed run starts
after a pause of COOLDOWN seconds (default 5): in one test, straight after a 40-second
FediBlockHole run, ours measured about a tenth slower than after a pause.

Usage: speed.py GUILDHALL_BIN FEDIBLOCK_SYNC ROWS1K_DIR ROWS20K_DIR OUT_DIR
"""
import os
import re
import statistics
import subprocess
import sys
import time

gh, fbh, d1k, d20k, outdir = sys.argv[1:6]
os.makedirs(outdir, exist_ok=True)

def fmt_of(path):
    with open(path, "rb") as f:
        return "mastodon_csv" if f.read(8).startswith(b"#domain") else "csv"

def conf_for(files, tag):
    path = os.path.join(outdir, f"speed-{tag}.toml")
    with open(path, "w") as f:
        f.write("blocklist_url_sources = [\n")
        for p in files:
            f.write(f"  {{ url = 'file://{os.path.abspath(p)}', format = '{fmt_of(p)}' }},\n")
        f.write("]\nmergeplan = 'max'\nmerge_threshold_type = 'pct'\nmerge_threshold = 10\n")
        f.write("import_fields = ['public_comment', 'reject_media', 'reject_reports', 'obfuscate']\n")
        f.write("export_fields = ['reject_media', 'reject_reports', 'public_comment', 'obfuscate']\n")
    return path

COOLDOWN = float(os.environ.get("COOLDOWN", "5"))

def timed(cmd):
    time.sleep(COOLDOWN)
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", p.stderr).group(1)
    parts = [float(x) for x in wall.split(":")]
    secs = sum(x * 60 ** i for i, x in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): (\S+)", p.stderr).group(1)) for k in ("User", "System"))
    return secs, rss / 1024.0, cpu

def run_pair(files, tag, with_fbh=True, repeat=1):
    """Each tool `repeat` times, alternating; returns each tool's median (wall, rss, cpu) (by
    wall time), every run, and whether the outputs are byte-identical."""
    conf = conf_for(files, tag)
    runs = {"fbh": [], "gh": []}
    for _ in range(repeat):
        for tool in (["fbh"] if with_fbh else []) + ["gh"]:
            o = os.path.join(outdir, f"speed-{tag}.{tool}.csv")
            cmd = ([fbh, "-c", conf, "-o", o, "--no-fetch-instance", "--no-push-instance", "--loglevel", "error"]
                   if tool == "fbh" else [gh, "merge", "-c", conf, "-o", o])
            runs[tool].append(timed(cmd))
    res = {}
    for tool, rs in runs.items():
        if rs:
            walls = sorted(r[0] for r in rs)
            med = statistics.median(walls)
            res[tool] = (med, statistics.median(r[1] for r in rs), statistics.median(r[2] for r in rs))
    same = None
    if with_fbh:
        with open(os.path.join(outdir, f"speed-{tag}.fbh.csv"), "rb") as a, \
             open(os.path.join(outdir, f"speed-{tag}.gh.csv"), "rb") as b:
            same = a.read() == b.read()
    return res, runs, same

def files_of(d, n):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".csv"))[:n]

def fbh_python():
    """The version and executable of the Python that runs FediBlockHole."""
    py = os.path.join(os.path.dirname(fbh), "python3")
    p = subprocess.run([py, "-c", "import sys, sysconfig; print(sys.version.split()[0], sys._base_executable)"],
                       capture_output=True, text=True)
    return p.stdout.strip() or "unknown"

repeat = int(os.environ.get("REPEAT", "3"))
size = sum(os.path.getsize(p) for p in files_of(d20k, 200)) / 1e6
print(f"## Headline: 200 lists x 20,000 rows ({size:.0f} MB), mergeplan max, pct threshold 10\n")
print(f"FediBlockHole runs on Python {fbh_python()}.\n")
load0 = open("/proc/loadavg").read().split()[0]
big, big_runs, same = run_pair(files_of(d20k, 200), "200x20000", repeat=repeat)
(ft, fm, fc), (gt, gm, gc) = big["fbh"], big["gh"]
load = open("/proc/loadavg").read().split()[0]
print(f"Median of {repeat} runs per tool, the tools alternating, each after a {COOLDOWN:g} s pause:\n")
print("| tool | wall time (s) | CPU time, user+sys (s) | peak RSS (MB) |\n|---|---|---|---|")
print(f"| FediBlockHole 0.4.6 | {ft:.2f} | {fc:.2f} | {fm:.0f} |")
print(f"| guildhall blocklist merge | {gt:.2f} | {gc:.2f} | {gm:.0f} |")
print(f"\nSpeed-up (ratio of the medians): **{ft / gt:.1f}x** wall, **{fc / gc:.1f}x** CPU; memory: "
      f"**{gm / fm:.3f}** of FediBlockHole's peak (1/{fm / gm:.1f}). Outputs byte-identical: {same}. "
      f"Load average before / after: {load0} / {load}.\n")
for tool, name in (("fbh", "FediBlockHole"), ("gh", "Guildhall")):
    print(f"Every run, {name} (wall / CPU s): "
          + ", ".join(f"{w:.2f} / {c:.2f}" for w, _, c in big_runs[tool]))
print()

print("## Scaling (mergeplan max, pct 10)\n")
print("| lists | rows/list | FBH wall (s) | FBH CPU (s) | FBH RSS (MB) | Guildhall wall (s) | Guildhall CPU (s) | Guildhall RSS (MB) | speed-up (wall / CPU) | identical |")
print("|---|---|---|---|---|---|---|---|---|---|")
for rows, d in [(1000, d1k), (20000, d20k)]:
    for n in (10, 50, 200):
        if (n, rows) == (200, 20000):
            res, s = big, same
        else:
            res, _, s = run_pair(files_of(d, n), f"{n}x{rows}")
        (ft, fm, fc), (gt, gm, gc) = res["fbh"], res["gh"]
        print(f"| {n} | {rows} | {ft:.2f} | {fc:.2f} | {fm:.0f} | {gt:.3f} | {gc:.2f} | {gm:.0f} | "
              f"{ft / max(gt, 0.01):.1f}x / {fc / max(gc, 0.01):.1f}x | {s} |")
