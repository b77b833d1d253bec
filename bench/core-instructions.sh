#!/usr/bin/env bash
# Instructions per request of the in-process core benchmark (bench/benches/core.rs), counted by
# cachegrind, for one or more builds of that benchmark: exact counts where timings are too noisy.
# For each binary and each kind, the preload alone is subtracted (a run with 0 requests).
#
#   bash bench/core-instructions.sh BENCH_BINARY...        (OPS=2000 KINDS=get,put,fanout-get)
#
# Build a binary with `cargo bench -p dynamo-bench --bench core --no-run` and copy the
# executable it names before switching commits.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,9p "$0"; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
OPS=${OPS:-2000}
KINDS=${KINDS:-get,put,fanout-get}
out=$(mktemp -d /tmp/core-instructions.XXXXXX)
trap 'rm -rf "$out"' EXIT
# instructions BINARY SPEC: total instructions of one run.
instructions() {
  CORE_OPS=$2 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out/cg" "$1" \
    2>"$out/log" >/dev/null
  grep -E '^summary:' "$out/cg" | awk '{print $2}'
}
IFS=, read -r -a kinds <<<"$KINDS"
echo "| build | request | instructions per request |"
echo "|---|---|---|"
for bin in "$@"; do
  for kind in "${kinds[@]}"; do
    base=$(instructions "$bin" "$kind:0")
    total=$(instructions "$bin" "$kind:$OPS")
    echo "| $(basename "$bin") | $kind | $(( (total - base) / OPS )) |"
  done
done
