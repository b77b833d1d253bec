#!/usr/bin/env bash
# This project against Redis and etcd, one closed-loop driver (`loadgen`), one system at a time,
# in one run; writes bench/results/peers.md (and peers.jsonl beside it).
#
#   bash bench/peers.sh                    # every system, every workload, 1 and 50 connections
#   WARMUP=5 MEASURE=30 bash bench/peers.sh
#   SYSTEMS="redis dynamo" bash bench/peers.sh
#
# Installs Debian's redis-server, etcd-server and etcd-client when missing (needs root and apt).
# Redis runs from memory only (no RDB, no AOF); etcd runs 3 members on localhost with its default
# fsync; this project runs 3 nodes (N=3, R=W=2), durable (the default) and --buffered, each
# storage engine named in STORAGES. Every server is started fresh, waited for with a request
# that must succeed (no sleeps), measured, and stopped before the next. Disk bytes written and
# syscalls are counted on the server processes during each measured window (`perf` for the
# syscalls, when installed).
#
# Knobs (environment): ROUNDS (1: every system runs that many times, one after another in each
# round; the table gives each cell's median run and each ratio's median over the rounds with its
# range: this machine's figures move by a quarter from run to run, so compare ratios of 3 rounds
# or more), WARMUP and MEASURE seconds per run (default 3 and 15), KEYS preloaded
# (10000), CONNS ("1,50"), WORKLOADS ("get,put,rmw,mix,zipf"), SYSTEMS ("redis etcd dynamo"),
# STORAGES (this project's engines, default "fjall redb"; "default" passes no --storage flag),
# ENCRYPT (1: this project encrypts its links, as by default; 0, the default here: plaintext like
# Redis and etcd), READ_FANOUT (2: each engine also runs durable with gets asking that many
# replicas at once, named dynamo-<engine>-fanout2; empty: not), PORT_BASE (21000), OUT (bench/results/peers.md), BASELINE_DYNAMO (another
# build's `dynamo` binary: each storage engine also runs durable on it, named
# dynamo-<engine>-baseline, in the same run, so that a change is measured against the code before
# it; BASELINE_LOADGEN, that build's `loadgen`, when the two builds speak different protocol
# versions). With
# bench/results/before/peers-baseline.jsonl present, peers.md ends with that run beside this one.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

WARMUP=${WARMUP:-3}
MEASURE=${MEASURE:-15}
KEYS=${KEYS:-10000}
CONNS=${CONNS:-1,50}
WORKLOADS=${WORKLOADS:-get,put,rmw,mix,zipf}
SYSTEMS=${SYSTEMS:-redis etcd dynamo}
STORAGES=${STORAGES:-fjall redb}
READ_FANOUT=${READ_FANOUT-2}
ENCRYPT=${ENCRYPT:-0}
PORT_BASE=${PORT_BASE:-21000}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-$root/bench/results/peers.md}
JSONL=${OUT%.md}.jsonl

need() { command -v "$1" >/dev/null 2>&1; }
if ! need redis-server || ! need redis-cli || ! need etcd || ! need etcdctl; then
  echo "peers: installing redis-server, etcd-server and etcd-client with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server redis-tools etcd-server etcd-client >/dev/null
fi

echo "peers: building (release)" >&2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q -p dynamo-node --bin dynamo -p dynamo-bench --bin loadgen
dynamo=$CARGO_TARGET_DIR/release/dynamo
loadgen=$CARGO_TARGET_DIR/release/loadgen

work=$(mktemp -d /tmp/dynamo-peers.XXXXXX)
# shellcheck source=bench/cluster.sh
. "$root/bench/cluster.sh"
cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$JSONL"
common=(--workloads "$WORKLOADS" --connections "$CONNS" --keys "$KEYS" --warmup "$WARMUP"
  --seconds "$MEASURE" --value-size 100 --json "$JSONL")

run_redis() {
  local port=$((PORT_BASE + 379))
  ports_free "$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$work" --logfile "$work/redis.log" &
  pids+=($!)
  ready redis redis-cli -p "$port" ping
  "$loadgen" --system redis --name redis --endpoints "127.0.0.1:$port" --pids "${pids[*]}" "${common[@]}"
  stop_all
}

run_etcd() {
  local cluster="" endpoints="" i
  for i in 1 2 3; do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$((PORT_BASE + 10 * i + 1))"
    endpoints+="${endpoints:+,}127.0.0.1:$((PORT_BASE + 10 * i))"
  done
  for i in 1 2 3; do ports_free $((PORT_BASE + 10 * i)) $((PORT_BASE + 10 * i + 1)); done
  for i in 1 2 3; do
    etcd --name "m$i" --data-dir "$work/etcd-$i" \
      --listen-client-urls "http://127.0.0.1:$((PORT_BASE + 10 * i))" \
      --advertise-client-urls "http://127.0.0.1:$((PORT_BASE + 10 * i))" \
      --listen-peer-urls "http://127.0.0.1:$((PORT_BASE + 10 * i + 1))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((PORT_BASE + 10 * i + 1))" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token dynamo-peers --logger zap --log-level error \
      >"$work/etcd-$i.log" 2>&1 &
    pids+=($!)
  done
  ready etcd etcdctl --endpoints "$endpoints" put peers-ready 1
  "$loadgen" --system etcd --name etcd --endpoints "$endpoints" --pids "$(echo "${pids[*]}" | tr ' ' ,)" "${common[@]}"
  stop_all
  # Every round starts etcd on empty data, as the others start fresh.
  for i in 1 2 3; do rm -rf "${work:?}/etcd-$i"; done
}

# run_dynamo NAME STORAGE BINARY [extra serve flags...] (LOADGEN: the driver, default $loadgen)
run_dynamo() {
  local name=$1 storage=$2 dynamo=$3; shift 3
  local driver=${LOADGEN:-$loadgen}
  local flags=()
  [ "$ENCRYPT" = 1 ] || flags+=(--no-encryption)
  local storage_flag=()
  [ "$storage" = default ] || storage_flag=(--storage "$storage")
  DYNAMO_PEER_SECRET=peers-peer-secret DYNAMO_CLIENT_SECRET=peers-client-secret \
    start_dynamo "$name" "$dynamo" $((PORT_BASE + 100)) "${storage_flag[@]}" "${flags[@]}" "$@"
  ready "$name" env DYNAMO_CLIENT_SECRET=peers-client-secret "$dynamo" put peers-ready 1 \
    --nodes "$nodes" "${flags[@]}"
  DYNAMO_CLIENT_SECRET=peers-client-secret "$driver" --system dynamo --name "$name" \
    --endpoints "$nodes" "${flags[@]}" --pids "$(echo "${pids[*]}" | tr ' ' ,)" "${common[@]}"
  stop_all
  rm -rf "${work:?}/$name"
}

for round in $(seq "$ROUNDS"); do
[ "$ROUNDS" = 1 ] || echo "peers: round $round of $ROUNDS" >&2
for system in $SYSTEMS; do
  case $system in
    redis) run_redis ;;
    etcd) run_etcd ;;
    dynamo)
      for storage in $STORAGES; do
        run_dynamo "dynamo-$storage" "$storage" "$dynamo"
        run_dynamo "dynamo-$storage-buffered" "$storage" "$dynamo" --buffered
        if [ -n "$READ_FANOUT" ]; then
          run_dynamo "dynamo-$storage-fanout$READ_FANOUT" "$storage" "$dynamo" \
            --read-fanout "$READ_FANOUT"
        fi
        if [ -n "${BASELINE_DYNAMO:-}" ]; then
          LOADGEN=${BASELINE_LOADGEN:-$loadgen} \
            run_dynamo "dynamo-$storage-baseline" "$storage" "$BASELINE_DYNAMO"
        fi
      done
      ;;
    *) echo "peers: unknown system $system" >&2; exit 2 ;;
  esac
done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
before=()
[ -f "$root/bench/results/before/peers-baseline.jsonl" ] &&
  before=(--before "$root/bench/results/before/peers-baseline.jsonl")
"$loadgen" table --input "$JSONL" --output "$OUT" "${before[@]}" \
  --note "Load average (1, 5, 15 min) before: $load_before; after: $load_after. $(nproc) cores. Warm-up ${WARMUP} s, measured ${MEASURE} s per run, ${KEYS} preloaded keys, 100-byte values; this project's links $( [ "$ENCRYPT" = 1 ] && echo encrypted || echo 'without encryption (--no-encryption), like Redis and etcd here'). Command: \`SYSTEMS=\"$SYSTEMS\" KEYS=$KEYS ENCRYPT=$ENCRYPT ROUNDS=$ROUNDS WARMUP=$WARMUP MEASURE=$MEASURE CONNS=$CONNS WORKLOADS=$WORKLOADS STORAGES=\"$STORAGES\" READ_FANOUT=$READ_FANOUT bash bench/peers.sh\`."
echo "peers: wrote $OUT" >&2
