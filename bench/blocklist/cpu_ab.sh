#!/usr/bin/env bash
# CPU-time A/B of two builds of the `blocklist` example binary on the 200 x 20,000 case
# (out/speed/speed-200x20000.toml, written by run.sh/speed.py): alternates OLD and NEW, ROUNDS
# times, each time RUNS runs, and prints each side's median run (by user+sys CPU) and its
# median wall time, with `uptime` beside it. On a shared machine CPU time is the fairer number; compare only rows
# measured close together.
#
# Usage: cpu_ab.sh OLD_BIN NEW_BIN [ROUNDS] [RUNS]
set -u
old=$1 new=$2 rounds=${3:-3} runs=${4:-5}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/out/speed" || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { # bin -> "wall user sys rss cpu" of the median run by cpu, then the median wall
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S %M" -o "$out/t" "$1" merge -c speed-200x20000.toml -o "$out/o.csv" 2>/dev/null
    read -r w u s m <"$out/t"
    echo "$w $u $s $m $(echo "$u + $s" | bc)"
  done >"$out/runs"
  echo "$(sort -n -k5 "$out/runs" | sed -n "$(((runs + 1) / 2))p") $(sort -n -k1 "$out/runs" | sed -n "$(((runs + 1) / 2))p" | cut -d' ' -f1)"
}
echo "side wall(s) user(s) sys(s) rss(KB) cpu(s) median-wall(s) | uptime"
for _ in $(seq "$rounds"); do
  for side in old new; do
    bin=$old
    [ $side = new ] && bin=$new
    echo "$side $(median "$bin") | $(uptime | sed 's/.*load/load/')"
  done
done
