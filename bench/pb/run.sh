#!/bin/sh
# Side-by-side comparison with pabutools 1.2.3 (see compare.py). Usage: bench/pb/run.sh [files|random|lodz|scale]...
set -e
cd "$(dirname "$0")/../.."
if [ ! -x bench/pb/.venv/bin/python ]; then
    python3 -m venv bench/pb/.venv
    bench/pb/.venv/bin/pip install -q pabutools==1.2.3
fi
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-pb} cargo build --release -q -p guildhall-pb --example pb
PB_BIN=${CARGO_TARGET_DIR:-/work/target-pb}/release/examples/pb exec bench/pb/.venv/bin/python bench/pb/compare.py "$@"
