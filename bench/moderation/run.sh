#!/usr/bin/env bash
# Moderation benchmark: 100,000 reports ingested from 50 fake instances (the real sync path),
# then 1,000,000 reports stored (the rest copied from the ingested ones by SQL: see
# crates/web/examples/moderation_bench.rs), then the queue page's latency with filters through
# the router, on SQLite and on a throwaway PostgreSQL cluster (as scripts/test starts one).
#
# Usage: bench/moderation/run.sh [sqlite|postgres|both] [--release]
# Extra environment: REPORTS (100000), STORED (1000000), INSTANCES (50), QUERIES (200).
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-both}
profile=()
bin_dir=debug
if [ "${2:-}" = "--release" ]; then profile=(--release); bin_dir=release; fi
target=${CARGO_TARGET_DIR:-target}
cargo build -p guildhall-web --example moderation_bench "${profile[@]}"
bin="$target/$bin_dir/examples/moderation_bench"
args=(--instances "${INSTANCES:-50}" --reports "${REPORTS:-100000}" --stored "${STORED:-1000000}" --queries "${QUERIES:-200}")
out=bench/moderation/results
mkdir -p "$out"

if [ "$which" = sqlite ] || [ "$which" = both ]; then
  db=$(mktemp -d /tmp/guildhall-mod-bench.XXXXXX)
  "$bin" --db "sqlite://$db/bench.db" "${args[@]}" | tee "$out/sqlite-$bin_dir.json"
  rm -rf "$db"
fi

if [ "$which" = postgres ] || [ "$which" = both ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  pgdir=$(mktemp -d /tmp/guildhall-mod-bench-pg.XXXXXX)
  port=56432
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  as_pg=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$pgdir"; as_pg=(runuser -u postgres --); fi
  cleanup() {
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"
  }
  trap cleanup EXIT
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -U guildhall --auth=trust -E UTF8 >/dev/null
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
  "$bin" --db "postgres://guildhall@127.0.0.1:$port/postgres" "${args[@]}" | tee "$out/postgres-$bin_dir.json"
fi
