#!/usr/bin/env bash
# One training run as N processes on this machine, joined through jax.distributed (CPU devices
# with gloo collectives): the multi-host code path without a cluster.
#
#   launch/local.sh 2 --config=configs/demo.py --workdir=/tmp/demo_2proc [--config.x=y ...]
#
# Each process's output goes to $LOG_DIR/process_<i>.log (default: <workdir>/logs); the script
# exits non-zero if any process fails. PYTHON selects the interpreter (default: python3).
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_PROCESSES --config=... --workdir=... [more pfml_jax.main flags]" >&2
  exit 2
fi
num_processes=$1; shift
python=${PYTHON:-python3}
workdir=""
for arg in "$@"; do [[ $arg == --workdir=* ]] && workdir=${arg#--workdir=}; done
if [[ -z $workdir ]]; then echo "$0: --workdir=DIR is required" >&2; exit 2; fi
log_dir=${LOG_DIR:-$workdir/logs}
mkdir -p "$log_dir"
port=${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pids=()
for ((i = 0; i < num_processes; i++)); do
  JAX_PLATFORMS=cpu "$python" -m pfml_jax.main --coordinator_address="127.0.0.1:$port" \
    --num_processes="$num_processes" --process_id="$i" "$@" >"$log_dir/process_$i.log" 2>&1 &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
if [[ $status -ne 0 ]]; then
  echo "$0: a process failed (exit $status); logs in $log_dir" >&2
fi
exit $status
