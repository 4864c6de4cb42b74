#!/usr/bin/env python3
"""Side-by-side comparison of FediBlockHole 0.4.6 and `guildhall blocklist merge`.

For each (input set, configuration) this writes one FediBlockHole TOML config, runs both tools
on it (`fediblock-sync -c CONF -o OUT -b AUDIT --no-fetch-instance --no-push-instance` and
`blocklist merge -c CONF -o OUT -b AUDIT`), and compares the merged CSVs and the audit CSVs.
Identical bytes count as a match; otherwise every differing domain is listed with a reason
(why FediBlockHole is wrong there) or as UNEXPLAINED.

Usage: compare.py GUILDHALL_BIN FEDIBLOCK_SYNC DATA_DIR SYNTH_DIR OUT_DIR
Exit status 1 if any difference is UNEXPLAINED.
"""
import csv
import io
import os
import re
import subprocess
import sys

guildhall, fbh, data, synth, outdir = sys.argv[1:6]
os.makedirs(outdir, exist_ok=True)

IMPORT = ["public_comment", "reject_media", "reject_reports", "obfuscate"]
EXPORT = ["reject_media", "reject_reports", "public_comment", "obfuscate"]

def fmt_of(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return "mastodon_csv" if head.startswith(b"#domain") else "csv"

o23 = os.path.join(data, "oliphant-2023-05/blocklists")
o26 = os.path.join(data, "oliphant/blocklists")
council = [os.path.join(o23, f"{n}.csv") for n in
           ["pleroma.envs.net", "union.place", "sunny.garden", "toot.wales", "mastodon.art",
            "rage.love", "artisan.chat", "solarpunk.moe"]]
final = [os.path.join(o26, n) for n in ["seirdy-tier0.csv", "gardenfence.csv", "dni.csv", "iftas-aud.csv"]]
mixed = [os.path.join(o26, n) for n in ["mastodon.social.csv", "seirdy-tier0.csv", "gardenfence.csv",
                                       "dni.csv", "iftas-aud.csv"]] + \
        [os.path.join(data, "gardenfence/gardenfence-fediblocksync.csv"),
         os.path.join(data, "iftas/DNI/dni.csv")]
synth = os.path.abspath(synth)
outdir = os.path.abspath(outdir)
synthetic = sorted(os.path.join(synth, f) for f in os.listdir(synth) if f.endswith(".csv"))
allow23 = [os.path.join(o23, "__allowlist.csv"), os.path.join(o23, "birdsite.csv")]
allow26 = [os.path.join(o26, "__allowlist.csv")]
synth_allow = os.path.join(outdir, "synth-allow.csv")
with open(synthetic[0]) as f:  # allow a few popular synthetic domains
    rows = list(csv.reader(f))[1:40:4]
with open(synth_allow, "w") as f:
    f.write("domain,\n" + "".join(r[0] + ",\n" for r in rows if "*" not in r[0]))

SETS = [
    ("council2023", council, allow23),
    ("final2026", final, allow26),
    ("final2026-noallow", final, []),
    ("mixed-real", mixed, allow26),
    ("synthetic", synthetic, [synth_allow]),
]
CONFIGS = [
    ("max", None, None), ("min", None, None),
    ("max", "count", 2), ("min", "count", 3),
    ("max", "pct", 33), ("min", "pct", 80), ("min", "pct", 100),
]

def toml_list(items):
    return "[" + ", ".join(f"'{x}'" for x in items) + "]"

def write_conf(path, inputs, allows, plan, ttype, thr):
    lines = ["blocklist_url_sources = ["]
    for p in inputs:
        lines.append(f"  {{ url = 'file://{p}', format = '{fmt_of(p)}' }},")
    lines.append("]")
    lines.append("allowlist_url_sources = [")
    for p in allows:
        lines.append(f"  {{ url = 'file://{p}', format = 'csv' }},")
    lines.append("]")
    lines.append(f"import_fields = {toml_list(IMPORT)}")
    lines.append(f"export_fields = {toml_list(EXPORT)}")
    lines.append(f"mergeplan = '{plan}'")
    if ttype:
        lines.append(f"merge_threshold_type = '{ttype}'")
        lines.append(f"merge_threshold = {thr}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")

def norm(d):
    """Guildhall's normalisation, for classifying differences."""
    d2 = d.strip().rstrip("/").strip()
    if d2.endswith("."):
        d2 = d2[:-1]
    try:
        d2 = d2.encode("idna").decode("ascii") if not d2.isascii() else d2
    except Exception:
        pass
    return d2.lower()

def is_canary(d):
    return (d == "invalid" or d.endswith(".invalid")
            or (d.startswith("canary.") and d.endswith(".example.com"))
            or (d.startswith("000") and (d.endswith(".example.com") or d.endswith("seirdy.one"))))

def invalid(d):
    n = norm(d)
    if "*" in n:
        return False
    if not re.fullmatch(r"[a-z0-9_.-]+", n) or any(not l or len(l) > 63 for l in n.split(".")):
        return True
    for label in n.split("."):
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except Exception:
                return True
    return False

def reason(d):
    if d.lstrip().startswith("."):
        return "leading-dot entry: FediBlockHole merges it verbatim; Guildhall quarantines it for review"
    if invalid(d):
        return ("invalid domain (bad characters or punycode that does not round-trip): Guildhall "
                "reports it with file and line and drops the row; FediBlockHole merges it verbatim")
    if is_canary(norm(d)):
        return "canary/sentinel row: FediBlockHole keeps it unless an allowlist removes it"
    if d.lstrip().startswith("."):
        return "leading-dot entry: FediBlockHole merges it verbatim; Guildhall quarantines it for review"
    if norm(d) != d:
        return "FediBlockHole does not normalise domains (case, whitespace, trailing dot, IDNA)"
    return None

def load(path):
    with open(path, newline="") as f:
        text = f.read()
    r = list(csv.reader(io.StringIO(text)))
    return text, {row[0]: row[1:] for row in r[1:] if row}

total = unexplained = explained = identical = 0
report = []
for set_name, inputs, allows in SETS:
    for plan, ttype, thr in CONFIGS:
        tag = f"{set_name}-{plan}-{ttype or 'none'}{thr or ''}"
        conf = os.path.join(outdir, tag + ".toml")
        write_conf(conf, inputs, allows, plan, ttype, thr)
        outs = {}
        for tool, cmd in [("fbh", [fbh]), ("gh", [guildhall, "merge"])]:
            o = os.path.join(outdir, f"{tag}.{tool}.csv")
            a = os.path.join(outdir, f"{tag}.{tool}.audit.csv")
            args = cmd + ["-c", conf, "-o", o, "-b", a]
            if tool == "fbh":
                args += ["--no-fetch-instance", "--no-push-instance", "--loglevel", "error"]
            p = subprocess.run(args, capture_output=True, text=True)
            if p.returncode != 0:
                outs[tool] = None
                report.append(f"{tag}: {tool} FAILED (exit {p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
            else:
                outs[tool] = (o, a)
        total += 1
        if outs["fbh"] is None or outs["gh"] is None:
            unexplained += 1
            continue
        diffs = []
        for kind, idx in [("list", 0), ("audit", 1)]:
            ft, fr = load(outs["fbh"][idx])
            gt, gr = load(outs["gh"][idx])
            if ft == gt:
                continue
            for d in sorted(set(fr) | set(gr)):
                if fr.get(d) != gr.get(d):
                    # A normalised domain on our side matching FediBlockHole's raw one.
                    raw = [x for x in fr if norm(x) == d and x != d] if d not in fr else []
                    why = reason(d) or (reason(raw[0]) if raw else None)
                    if why is None and d in gr and d not in fr and any(norm(x) == d for x in fr):
                        why = "FediBlockHole does not normalise domains"
                    diffs.append((kind, d, fr.get(d), gr.get(d), why))
        if not diffs:
            identical += 1
            report.append(f"{tag}: identical (list and audit, byte for byte)")
            continue
        bad = [x for x in diffs if x[4] is None]
        if bad:
            unexplained += 1
        else:
            explained += 1
        report.append(f"{tag}: {len(diffs)} differing rows ({len(bad)} unexplained)")
        for kind, d, a, b, why in diffs[:12]:
            report.append(f"    {kind} {d!r}: fbh={a} guildhall={b} -- {why or 'UNEXPLAINED'}")
        if len(diffs) > 12:
            report.append(f"    ... {len(diffs) - 12} more")

print("\n".join(report))
print(f"\n{total} runs: {identical} identical, {explained} differing only where FediBlockHole is wrong, "
      f"{unexplained} with unexplained differences")
sys.exit(1 if unexplained else 0)
