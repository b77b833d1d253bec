# Sourced by bench/peers.sh and bench/ab.sh: the server processes they start, and a local
# 3-node cluster of this project. Expects `work` (a scratch directory) to be set.

pids=()

# Stops every server started so far and waits for it.
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# ports_free PORT...: exits if something already listens on one of the ports (a server left over
# from an earlier run would answer the readiness check and be measured under the new name).
ports_free() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$(basename "$0"): port $port is taken (a server left from an earlier run?)" >&2
      exit 1
    fi
  done
}

# ready WHAT COMMAND...: polls the command until it succeeds (at most 60 s), else exits; exits
# too as soon as a server started so far has exited.
ready() {
  local what=$1 p; shift
  for _ in $(seq 1 600); do
    for p in "${pids[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        echo "$(basename "$0"): $what: server process $p exited (see its log in $work)" >&2
        exit 1
      fi
    done
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$(basename "$0"): $what never became ready" >&2
  exit 1
}

# start_dynamo NAME DYNAMO PORT [serve flags...]: starts nodes 1-3 of a cluster (N=3 by
# default) on 127.0.0.1:PORT+1..3, data in $work/NAME/node-I, logs in $work/NAME-I.log, with the
# caller's DYNAMO_PEER_SECRET and DYNAMO_CLIENT_SECRET and nproc/3 tokio workers each; sets
# `nodes` to their addresses.
start_dynamo() {
  local name=$1 dynamo=$2 port=$3 i j workers; shift 3
  # The three nodes share this machine's cores, a share each (as `dynamo cluster` does), unless
  # TOKIO_WORKER_THREADS says otherwise.
  workers=${TOKIO_WORKER_THREADS:-$(( $(nproc) / 3 > 0 ? $(nproc) / 3 : 1 ))}
  nodes=""
  for i in 1 2 3; do nodes+="${nodes:+,}127.0.0.1:$((port + i))"; done
  ports_free $((port + 1)) $((port + 2)) $((port + 3))
  for i in 1 2 3; do
    local peers=()
    for j in 1 2 3; do
      [ "$i" = "$j" ] || peers+=(--peer "$j=127.0.0.1:$((port + j))")
    done
    RUST_LOG=warn TOKIO_WORKER_THREADS=$workers "$dynamo" serve --id "$i" --listen "127.0.0.1:$((port + i))" \
      --data-dir "$work/$name/node-$i" --members 1,2,3 "${peers[@]}" "$@" \
      >"$work/$name-$i.log" 2>&1 &
    pids+=($!)
  done
}
