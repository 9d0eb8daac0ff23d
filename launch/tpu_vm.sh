#!/usr/bin/env bash
# Train on a Cloud TPU VM or pod slice: create it (or reuse it), copy this repository to every
# worker, install, and start the same command on all workers (one JAX process per worker;
# jax.distributed finds the others by itself).
#
#   TPU_NAME=pfml ZONE=us-central2-b ACCELERATOR=v4-32 \
#     launch/tpu_vm.sh configs/sop_vit.py gs://bucket/runs/sop_vit [--config.x=y ...]
#
# Preemptible/spot VMs: add SPOT=1; on preemption the run saves a checkpoint on SIGTERM, and
# rerunning this script resumes it. The workdir should be a gs:// path (or shared storage),
# and the dataset must be readable from every worker (--config.data.root).
set -euo pipefail
config=${1:?usage: launch/tpu_vm.sh CONFIG WORKDIR [flags]}
workdir=${2:?usage: launch/tpu_vm.sh CONFIG WORKDIR [flags]}
shift 2
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
accelerator=${ACCELERATOR:-v4-8}
# The runtime image must provide Python >= 3.11 (JAX 0.10+), e.g. v2-alpha-tpuv6e.
runtime=${RUNTIME_VERSION:-v2-alpha-tpuv6e}
remote_dir=pfml_jax
tpu() { gcloud compute tpus tpu-vm "$@" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"}; }

if ! tpu describe "$TPU_NAME" >/dev/null 2>&1; then
  tpu create "$TPU_NAME" --accelerator-type="$accelerator" --version="$runtime" ${SPOT:+--spot}
fi
git ls-files -z | tar --null -czf /tmp/pfml_jax_src.tgz -T -
tpu scp /tmp/pfml_jax_src.tgz "$TPU_NAME":/tmp/ --worker=all
tpu ssh "$TPU_NAME" --worker=all --command="set -e
  mkdir -p $remote_dir && tar -xzf /tmp/pfml_jax_src.tgz -C $remote_dir && cd $remote_dir
  python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt -e . 'jax[tpu]'"
args=$(printf ' %q' "$@")
tpu ssh "$TPU_NAME" --worker=all --command="cd $remote_dir && .venv/bin/python -m pfml_jax.main \
  --config=$config --workdir=$workdir$args"
