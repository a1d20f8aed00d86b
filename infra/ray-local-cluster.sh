#!/usr/bin/env bash
# A multi-node Ray cluster on this machine, on loopback only: a head node that runs no tasks
# (--num-cpus 0) and N worker nodes with one CPU each (and logical GPUs if asked), each with a
# resource "node_<k>": 1 that names it.
#
#   infra/ray-local-cluster.sh start N_WORKERS [--gpus-per-worker G] [--gpu-workers K] [--port P]
#       prints the address (127.0.0.2:P) on stdout; only the first K workers get the G GPUs
#       (default: all of them)
#   infra/ray-local-cluster.sh stop
#
# The cluster's processes run in their own sessions, recorded in the state folder
# ($MEDARENA_RAY_CLUSTER_DIR, default ${TMPDIR:-/tmp}/medarena-ray-cluster); `stop` ends exactly
# those sessions, so other Ray instances on the machine are left alone (`ray stop --force` would
# kill every Ray process of the machine). Join it with MEDARENA_RAY_ADDRESS=<address>.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RAY=${RAY:-$([ -x "$REPO/.venv/bin/ray" ] && echo "$REPO/.venv/bin/ray" || command -v ray)}
PYTHON=$(dirname "$RAY")/python
STATE=${MEDARENA_RAY_CLUSTER_DIR:-${TMPDIR:-/tmp}/medarena-ray-cluster}
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
WAIT_SECONDS=${MEDARENA_RAY_CLUSTER_WAIT:-60}
# Loopback: `ray start` swaps 127.0.0.1 (and localhost) for the machine's outward address, but
# takes any other address of 127.0.0.0/8 as it is.
NODE_IP=127.0.0.2

usage() { echo "usage: $0 start N_WORKERS [--gpus-per-worker G] [--gpu-workers K] [--port P] | stop" >&2; exit 2; }

stop() {
  [ -d "$STATE" ] || return 0
  local sid pids
  for signal in TERM KILL; do
    for sid in $(cat "$STATE"/*.sid 2>/dev/null); do
      pids=$(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s {print $1}')
      [ -n "$pids" ] && kill "-$signal" $pids 2>/dev/null || true
    done
    if [ "$signal" = TERM ]; then sleep 1; fi
  done
  rm -rf "$STATE"
}

# `ray start` detaches its processes; setsid puts them (and the workers their raylet starts) in
# one session per node, named by the pid of the session leader.
start_node() {  # NAME ARGS...
  local name=$1 log="$STATE/$1.log"
  shift
  setsid timeout "$WAIT_SECONDS" "$RAY" start --node-ip-address "$NODE_IP" --disable-usage-stats "$@" >"$log" 2>&1 &
  echo $! >"$STATE/$name.sid"
  wait $! || { echo "ray-local-cluster: $name did not start:" >&2; tail -20 "$log" >&2; return 1; }
}

start() {
  local workers=${1:-}
  [[ "$workers" =~ ^[0-9]+$ ]] || usage
  shift
  local gpus=0 gpu_workers=$workers port=0
  while [ $# -gt 0 ]; do
    case $1 in
      --gpus-per-worker) gpus=$2; shift 2 ;;
      --gpu-workers) gpu_workers=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  if [ -d "$STATE" ] && ls "$STATE"/*.sid >/dev/null 2>&1; then
    echo "ray-local-cluster: a cluster of $STATE is running; stop it first" >&2; exit 1
  fi
  mkdir -p "$STATE"
  local free client_port
  free=$("$PYTHON" -c 'import socket; s = [socket.socket() for _ in "ab"]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  [ "$port" != 0 ] || port=${free% *}
  client_port=${free#* }
  local address="$NODE_IP:$port"
  trap 'stop' ERR
  start_node head --head --port "$port" --num-cpus 0 --num-gpus 0 --include-dashboard false \
    --ray-client-server-port "$client_port" --dashboard-agent-listen-port 0
  local k node_gpus
  for k in $(seq 1 "$workers"); do
    node_gpus=$([ "$k" -le "$gpu_workers" ] && echo "$gpus" || echo 0)
    start_node "node_$k" --address "$address" --num-cpus 1 --num-gpus "$node_gpus" \
      --resources "{\"node_$k\": 1}" --dashboard-agent-listen-port 0
  done
  # wait (bounded) until every worker has joined
  RAY_ADDRESS=$address timeout "$WAIT_SECONDS" "$PYTHON" - "$workers" <<'EOF' >&2 || { stop; exit 1; }
import sys, time
import ray
ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
while sum(1 for n in ray.nodes() if n["Alive"] and any(r.startswith("node_") for r in n["Resources"])) < int(sys.argv[1]):
    time.sleep(0.2)
EOF
  trap - ERR
  echo "$address" >"$STATE/address"
  echo "$address"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) stop ;;
  *) usage ;;
esac
