#!/usr/bin/env bash
# Shared-blocklist benchmark: one list refreshed from 50 URL sources of 20,000 rows each
# (gen_blocklists.py) and pushed to 20 fake Mastodon instances, then a second round in which
# 5 sources changed, pushed as diffs. Prints a Markdown table (wall and CPU time per phase).
#
# The fakes and the file server run in their own process (examples/bench_fakes.rs), so the CPU
# time is Guildhall's alone; the fakes have no effective rate limit, so no time goes to
# rate-limit waits.
#
# Environment: OUT (work folder, default /tmp/guildhall-lists-bench), LISTS, ROWS, INSTANCES,
# CHANGED, PCT (threshold, percent of the total trust weight), GEN (the generator), DB (a
# database URL; default a temporary SQLite file), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/guildhall-lists-bench}
LISTS=${LISTS:-50}
ROWS=${ROWS:-20000}
INSTANCES=${INSTANCES:-20}
CHANGED=${CHANGED:-5}
PCT=${PCT:-50}
GEN=${GEN:-/work/shared/bench/gen_blocklists.py}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
[ -d "$OUT/v1" ] || python3 "$GEN" "$OUT/v1" --lists "$LISTS" --per-list "$ROWS" --seed 1
[ -d "$OUT/v2" ] || python3 "$GEN" "$OUT/v2" --lists "$LISTS" --per-list "$ROWS" --seed 2
rm -rf "$OUT/work"
cp -r "$OUT/v1" "$OUT/work"
CARGO_TARGET_DIR="$TARGET" cargo build --release -p guildhall-lists --examples
db_args=()
if [ -n "${DB:-}" ]; then db_args=(--db "$DB"); fi
uptime
"$TARGET/release/examples/bench" --data "$OUT/work" --update "$OUT/v2" --changed "$CHANGED" \
  --instances "$INSTANCES" --pct "$PCT" "${db_args[@]}"
uptime
