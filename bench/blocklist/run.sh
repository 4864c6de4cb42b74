#!/usr/bin/env bash
# Side-by-side benchmark of FediBlockHole 0.4.6 and `guildhall blocklist merge`.
# Installs FediBlockHole in bench/blocklist/.venv, builds the release binary, generates the
# synthetic lists (once; kept in bench/blocklist/out/), compares both tools on real and
# synthetic inputs in several configurations, then measures speed and memory.
# Usage: bench/blocklist/run.sh   (from anywhere; results on stdout and in out/results.md)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${GUILDHALL_SHARED:-$(cd "$root/../shared" && pwd)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-blocklist}"
cd "$here"
mkdir -p out
# FediBlockHole runs on the distribution's Python by default: on this machine it ran
# FediBlockHole about a fifth faster than pyenv's source build (--enable-shared), so it is the
# fairer baseline. FBH_PYTHON picks another interpreter.
py="${FBH_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"
py="$(readlink -f "$py")"
if [ ! -x .venv/bin/fediblock-sync ] || ! grep -qxF "executable = $py" .venv/pyvenv.cfg; then
  rm -rf .venv
  "$py" -m venv .venv
  .venv/bin/pip install -q fediblockhole==0.4.6
fi
(cd "$root" && cargo build -q --release -p guildhall-blocklist --example blocklist)
gh="$CARGO_TARGET_DIR/release/examples/blocklist"
fbh="$here/.venv/bin/fediblock-sync"
gen="$shared/bench/gen_blocklists.py"
[ -f out/rows1k/list0199.csv ] || python3 "$gen" out/rows1k --lists 200 --per-list 1000
[ -f out/big/list0199.csv ] || python3 "$gen" out/big --lists 200 --per-list 20000
{
  echo "# Results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo '## Differences (compare.py)'
  echo
  echo '```'
  python3 compare.py "$gh" "$fbh" "$shared/data/blocklists" out/rows1k out/compare || true
  echo '```'
  echo
  python3 speed.py "$gh" "$fbh" out/rows1k out/big out/speed
} | tee out/results.md
