#!/usr/bin/env bash
# Where the machine goes during one workload: a fresh 3-node cluster (N=3, R=W=2, default storage,
# no link encryption) under one closed-loop driver, and over 6 s of the measured window the
# machine's CPU per operation by kind (/proc/stat: user, system, softirq, idle, iowait) and each
# kind of thread's CPU and context switches per operation (/proc/PID/task/*/stat and status),
# summed over the processes: the nodes' request threads (`dynamo:dynamo`), the blocking pool that
# runs their fsyncs (`dynamo:tokio-rt-worker`), fjall's flushers and compactors, the driver.
#
#   bash bench/threads.sh WORKLOAD [DYNAMO] [serve flags...]
#   bash bench/threads.sh put target/release/dynamo --buffered
#   CONNS=10 bash bench/threads.sh put
#   PERF=1 bash bench/threads.sh put      # also `perf record -g` of the nodes (perf.data here)
#   PERF=1 PERF_CALLS="--call-graph dwarf" bash bench/threads.sh put   # callers through libc
#
# LOADGEN (default target/release/loadgen), CONNS (50), KEYS (10000), PORT_BASE (23300).
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,16p "$0"; exit 2; }
workload=$1
dynamo=${2:-target/release/dynamo}
shift $(($# < 2 ? $# : 2))
loadgen=${LOADGEN:-target/release/loadgen}
work=$(mktemp -d /tmp/dynamo-threads.XXXXXX)
# shellcheck source=bench/cluster.sh
. "$(dirname "$0")/cluster.sh"
trap 'stop_all; rm -rf "$work"' EXIT

DYNAMO_PEER_SECRET=threads-peer DYNAMO_CLIENT_SECRET=threads-client \
  start_dynamo T "$dynamo" "${PORT_BASE:-23300}" --no-encryption "$@"
ready cluster env DYNAMO_CLIENT_SECRET=threads-client "$dynamo" put ready 1 --nodes "$nodes" --no-encryption
node_pids=$(echo "${pids[*]}" | tr ' ' ,)

# snapshot: one line per thread of the nodes and the driver: pid tid process:thread ticks vcs ivcs
snapshot() {
  local p t s
  for p in "${pids[@]}" $(pgrep -f "$loadgen --system" || true); do
    for t in /proc/"$p"/task/*; do
      [ -r "$t/stat" ] || continue
      s=($(sed 's/.*) //' "$t/stat" 2>/dev/null)) || continue
      echo "$p $(basename "$t") $(cat /proc/"$p"/comm 2>/dev/null):$(tr ' ' _ < "$t/comm")" \
        "$((s[11] + s[12]))" \
        "$(awk '/^voluntary_ctxt/{print $2}' "$t/status")" \
        "$(awk '/^nonvoluntary_ctxt/{print $2}' "$t/status")"
    done
  done
}

(
  sleep 3
  if [ -n "${PERF:-}" ]; then
    perf record -F 999 ${PERF_CALLS:--g} -o perf.data -p "$node_pids" -- sleep 6 >/dev/null 2>&1 &
  fi
  head -1 /proc/stat > "$work/stat-a"; snapshot > "$work/threads-a"
  sleep 6
  head -1 /proc/stat > "$work/stat-b"; snapshot > "$work/threads-b"
  wait
) &
sampler=$!
DYNAMO_CLIENT_SECRET=threads-client "$loadgen" --system dynamo --name T --endpoints "$nodes" \
  --no-encryption --pids "$node_pids" --workloads "$workload" --connections "${CONNS:-50}" \
  --keys "${KEYS:-10000}" --warmup 2 --seconds 8 --value-size 100 --json "$work/run.jsonl" \
  2>/dev/null | tail -n 1
wait "$sampler"

python3 - "$work" <<'PY'
import collections, json, os, sys
work = sys.argv[1]
ops = json.loads(open(os.path.join(work, "run.jsonl")).readlines()[-1])["ops_per_sec"] or 1
window = 6.0  # seconds between the two snapshots
tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
per_op = lambda ticks: ticks * tick_us / (ops * window)

def stat(name):
    return [int(x) for x in open(os.path.join(work, name)).read().split()[1:]]
delta = [b - a for a, b in zip(stat("stat-a"), stat("stat-b"))]
kinds = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
print(f"ops/s {ops:.0f}")
print("machine CPU µs per op: " + " ".join(f"{k} {per_op(d):.1f}" for k, d in zip(kinds, delta)))

def threads(name):
    rows = {}
    for line in open(os.path.join(work, name)):
        pid, tid, kind, ticks, vcs, ivcs = line.split()
        rows[(pid, tid)] = (kind, int(ticks), int(vcs), int(ivcs))
    return rows
before, after = threads("threads-a"), threads("threads-b")
sums = collections.defaultdict(lambda: [0, 0, 0, 0])
for key, (kind, ticks, vcs, ivcs) in after.items():
    _, t0, v0, i0 = before.get(key, (kind, 0, 0, 0))
    s = sums[kind]
    s[0] += ticks - t0; s[1] += vcs - v0; s[2] += ivcs - i0; s[3] += 1
for kind, (ticks, vcs, ivcs, n) in sorted(sums.items(), key=lambda kv: -kv[1][0]):
    print(f"{kind:24s} threads {n:3d}  CPU µs/op {per_op(ticks):6.1f}"
          f"  voluntary switches/op {vcs / (ops * window):5.2f}"
          f"  involuntary/op {ivcs / (ops * window):5.2f}")
PY
