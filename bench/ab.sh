#!/usr/bin/env bash
# Two builds of this project, A and B, measured in alternation on one machine: A, B, A, B, ...
# ROUNDS times per workload, each on a fresh 3-node cluster (N=3, R=W=2, default storage, durable,
# no link encryption), with one closed-loop driver. Prints every run and, per workload, the
# median ops/s and CPU µs per operation of each build and their ratio B/A. Alternation spreads a
# noisy machine's drift over both builds, which one run after the other (bench/peers.sh) does not.
#
#   bash bench/ab.sh A_DYNAMO A_LOADGEN B_DYNAMO B_LOADGEN
#   ROUNDS=5 WORKLOADS=get,put CONNS=50 SECONDS_PER_RUN=10 bash bench/ab.sh ...
#   A_FLAGS=--buffered bash bench/ab.sh D L D L    # one build, two sets of `serve` flags
#
# A_FLAGS and B_FLAGS are extra `dynamo serve` flags (split on spaces). To compare environment
# variables, give a wrapper script as the build: `#!/bin/sh` then `VAR=x exec target/release/dynamo "$@"`.
# Each build runs with its own loadgen (the two may speak different protocol versions).
set -euo pipefail
[ $# -eq 4 ] || { sed -n 2,14p "$0"; exit 2; }
a_dynamo=$1 a_loadgen=$2 b_dynamo=$3 b_loadgen=$4
ROUNDS=${ROUNDS:-5}
WORKLOADS=${WORKLOADS:-get,put,rmw}
CONNS=${CONNS:-50}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
WARMUP=${WARMUP:-2}
KEYS=${KEYS:-10000}
PORT_BASE=${PORT_BASE:-23100}
work=$(mktemp -d /tmp/dynamo-ab.XXXXXX)
# shellcheck source=bench/cluster.sh
. "$(dirname "$0")/cluster.sh"
trap 'stop_all; rm -rf "$work"' EXIT

# run NAME DYNAMO LOADGEN WORKLOAD: one measured run; appends its JSON line to $work/NAME.jsonl.
run() {
  local name=$1 dynamo=$2 loadgen=$3 workload=$4 var flags
  var=${name}_FLAGS
  read -r -a flags <<<"${!var:-}"
  DYNAMO_PEER_SECRET=ab-peer DYNAMO_CLIENT_SECRET=ab-client \
    start_dynamo "$name" "$dynamo" "$PORT_BASE" --no-encryption ${flags[@]+"${flags[@]}"}
  ready "$name" env DYNAMO_CLIENT_SECRET=ab-client "$dynamo" put ab-ready 1 --nodes "$nodes" \
    --no-encryption
  DYNAMO_CLIENT_SECRET=ab-client "$loadgen" --system dynamo --name "$name" --endpoints "$nodes" \
    --no-encryption --pids "$(echo "${pids[*]}" | tr ' ' ,)" --workloads "$workload" \
    --connections "$CONNS" --keys "$KEYS" --warmup "$WARMUP" --seconds "$SECONDS_PER_RUN" \
    --value-size 100 --json "$work/$name.jsonl" 2>/dev/null | tail -n 1
  stop_all
  rm -rf "${work:?}/$name"
}

IFS=, read -r -a workloads <<<"$WORKLOADS"
for w in "${workloads[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    run A "$a_dynamo" "$a_loadgen" "$w"
    run B "$b_dynamo" "$b_loadgen" "$w"
  done
done

python3 - "$work" "$ROUNDS" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for build in "AB":
    for line in open(f"{work}/{build}.jsonl"):
        r = json.loads(line)
        rows.setdefault(r["workload"], {}).setdefault(build, []).append(r)
def med(rs, key):
    vals = [r["all"][key] if key == "p99_ms" else r.get(key) for r in rs]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else float("nan")
print(f"\nmedians of {rounds} alternating runs per build")
print("| workload | A ops/s | B ops/s | B/A | A CPU µs/op | B CPU µs/op | B/A | A p99 ms | B p99 ms |")
print("|---|---|---|---|---|---|---|---|---|")
for w, by in rows.items():
    a, b = by.get("A", []), by.get("B", [])
    ao, bo = med(a, "ops_per_sec"), med(b, "ops_per_sec")
    ac, bc = med(a, "cpu_us_per_op"), med(b, "cpu_us_per_op")
    ap, bp = med(a, "p99_ms"), med(b, "p99_ms")
    print(f"| {w} | {ao:,.0f} | {bo:,.0f} | {bo/ao:.2f} | {ac:.1f} | {bc:.1f} | {bc/ac:.2f} | {ap:.2f} | {bp:.2f} |")
# A build that answers fast with errors is not faster: say so beside the medians.
for w, by in rows.items():
    for build, rs in sorted(by.items()):
        errors = sum(r.get("errors") or 0 for r in rs)
        if errors:
            print(f"warning: {w}: build {build} had {errors} failed operations over its runs")
EOF
