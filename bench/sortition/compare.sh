#!/usr/bin/env bash
# Side by side with sortition-algorithms (PyPI, 0.12.x, default solver highspy): maximin on
# generated pools. Prints one JSON line per run (ours, then theirs) and a summary table.
#
# Usage: bench/sortition/compare.sh [SIZES...]     (default: 150 500 1000 2000; panel 22)
# Env:   PANEL=22  SEED=1  HOUSEHOLDS=1 (adds --households to the generator and both runs)
#        OURS=path/to/maximin_timing (skip the release build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${SHARED:-$root/../shared}"
sizes=("${@:-150 500 1000 2000}")
[ $# -eq 0 ] && sizes=(150 500 1000 2000)
panel="${PANEL:-22}"
seed="${SEED:-1}"
hh=()
[ -n "${HOUSEHOLDS:-}" ] && hh=(--households)

if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q 'sortition-algorithms==0.12.15'
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-sortition}"
ours="${OURS:-}"   # a prebuilt maximin_timing binary, or build it now (release)
if [ -z "$ours" ]; then
  (cd "$root" && cargo build -q --release -p guildhall-sortition --example maximin_timing)
  ours="$CARGO_TARGET_DIR/release/examples/maximin_timing"
fi

mkdir -p "$here/out"
results="$here/out/results.jsonl"
: > "$results"
for n in "${sizes[@]}"; do
  dir="$here/out/pool$n"
  python3 "$shared/bench/gen_sortition_pool.py" "$dir" --people "$n" --panel "$panel" --seed "$seed" "${hh[@]}"
  o="$("$ours" "$dir/features.csv" "$dir/people.csv" "$panel" "${hh[@]}")"
  t="$("$here/.venv/bin/python" "$here/theirs.py" "$dir/features.csv" "$dir/people.csv" "$panel" "${hh[@]}" | tail -n 1)"
  echo "ours   $o" | tee -a "$results"
  echo "theirs $t" | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys
rows = [l.split(" ", 1) for l in open(sys.argv[1])]
print("| people | seats | min prob. (ours) | min prob. (theirs) | ours − theirs | ours wall / CPU (s) | theirs wall / CPU (s) | speed-up (wall / CPU) |")
print("|---|---|---|---|---|---|---|---|")
for (_, o), (_, t) in zip(rows[0::2], rows[1::2]):
    o, t = json.loads(o), json.loads(t)
    print(f"| {o['n']} | {o['k']} | {o['min_probability']:.9f} | {t['min_probability']:.9f} | "
          f"{o['min_probability'] - t['min_probability']:+.1e} | {o['seconds']:.2f} / {o['cpu_seconds']:.2f} | "
          f"{t['seconds']:.2f} / {t['cpu_seconds']:.2f} | "
          f"{t['seconds'] / max(o['seconds'], 1e-9):.0f}× / {t['cpu_seconds'] / max(o['cpu_seconds'], 0.01):.0f}× |")
PY
