#!/usr/bin/env bash
# Before/after check for speed work: runs two builds of the `blocklist` example binary on the
# same inputs and compares everything they write byte for byte: merged list, `-b` audit,
# `--audit`, stderr and exit status, for every compare.py configuration (out/compare/*.toml)
# in several variants, every speed.py configuration (out/speed/*.toml), and `check` on every
# file in ../shared/data/blocklists/. Needs the inputs that run.sh generated.
#
# Usage: same_output.sh OLD_BIN NEW_BIN   (exit status 1 if anything differs)
set -u
old=$1 new=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=0 bad=0

one() { # name, args...
  local name=$1
  shift
  for side in old new; do
    local bin=$old
    [ $side = new ] && bin=$new
    local d="$work/$side"
    mkdir -p "$d"
    rm -f "$d"/*
    "$bin" "$@" >"$d/stdout" 2>"$d/stderr"
    echo $? >"$d/rc"
    # Output paths are the same for both sides: move them into the side's folder.
    for f in "$work"/o.csv "$work"/b.csv "$work"/a.csv; do
      [ -e "$f" ] && mv "$f" "$d/"
    done
  done
  runs=$((runs + 1))
  if ! diff -r "$work/old" "$work/new" >/dev/null; then
    bad=$((bad + 1))
    echo "DIFFERS: $name"
  fi
}

for conf in "$here"/out/compare/*.toml; do
  n=$(basename "$conf" .toml)
  one "$n" merge -c "$conf" -o "$work/o.csv" -b "$work/b.csv" --audit "$work/a.csv"
  one "$n/subdomains" merge -c "$conf" -o "$work/o.csv" --audit "$work/a.csv" --subdomains
  one "$n/A" merge -c "$conf" -o "$work/o.csv" -b "$work/b.csv" -A gab.com -A mastodon.social
  one "$n/min2" merge -c "$conf" -o "$work/o.csv" -m min --merge-threshold 2
  one "$n/json" merge -c "$conf" -o "$work/o.csv" --output-format json
  one "$n/mastodon" merge -c "$conf" -o "$work/o.csv" --output-format mastodon
done
for conf in "$here"/out/speed/*.toml; do
  n=$(basename "$conf" .toml)
  one "$n" merge -c "$conf" -o "$work/o.csv"
  one "$n/audit" merge -c "$conf" -o "$work/o.csv" -b "$work/b.csv" --audit "$work/a.csv"
done
while IFS= read -r f; do
  one "check $f" check "$f"
done < <(find "$here/../../../shared/data/blocklists" -type f | sort)
echo "$runs runs, $bad differing"
[ $bad -eq 0 ]
