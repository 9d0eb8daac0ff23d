#!/usr/bin/env bash
# Regenerates the runs and tables of docs/reproduction.md on a CPU machine (2 cores: two runs
# at a time, each single-threaded, so that reruns give the same numbers):
#
#     bash tools/run_reproduction.sh [STUDIES_DIR]     # default studies/small
#
# A rerun skips finished runs and resumes partial ones. Order: the paper's regime first
# (pretrained: every loss, clean and 20 % noise, 3 seeds), the choice of PFML's from-scratch
# field on the validation classes (small_scratch_tuning, 3 seeds), the from-scratch regime (3
# seeds), the four PFML ablations in the pretrained regime (2 seeds), proxies started on their
# classes (small_proxy_init) and PFML against Proxy Anchor on the demo's one recipe
# (demo_recipe, 3 seeds); the tables and plots land in <study>/aggregate/ and are copied to
# docs/reproduction/.
set -euo pipefail
OUT=${1:-studies/small}
PARALLEL=${PARALLEL:-2}
PYTHON=${PYTHON:-python}
export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false"
study() { "$PYTHON" -m pfml_jax.study "$@"; }

study run small_pretrained --workdir="$OUT/small_pretrained" --parallel="$PARALLEL"
study run small_scratch_tuning --workdir="$OUT/small_scratch_tuning" --parallel="$PARALLEL"
study run small_scratch --workdir="$OUT/small_scratch" --parallel="$PARALLEL"
for ablation in alpha delta proxies delta_gap; do
  study run "$ablation" --config=configs/small/pretrained.py --seeds=0,1 \
      --workdir="$OUT/$ablation" --parallel="$PARALLEL"
done
study run small_proxy_init --workdir="$OUT/small_proxy_init" --parallel="$PARALLEL"
study run demo_recipe --workdir="$OUT/demo_recipe" --parallel="$PARALLEL"
mkdir -p docs/reproduction
for name in small_pretrained small_scratch_tuning small_scratch alpha delta proxies delta_gap \
    small_proxy_init demo_recipe; do
  study aggregate --workdir="$OUT/$name"
  cp "$OUT/$name"/aggregate/* docs/reproduction/
done
for name in small_pretrained small_scratch small_proxy_init demo_recipe; do
  "$PYTHON" -m tools.diagnostics_table "$OUT/$name" > "docs/reproduction/${name}_diagnostics.md"
done
# PFML's forces at the start and the end of seed 0 of each regime (docs/reproduction.md §5).
mkdir -p docs/reproduction/forces
columns=()
for run in "pretrained=small_pretrained/pretrained-pfml-method_pfml-noise_0.0" \
    "pretrained, class-mean proxies=small_proxy_init/pretrained-pfml-method_pfml-init_class_mean-noise_0.0" \
    "scratch (demo)=demo_recipe/demo-method_pfml-noise_0.0"; do
  label=${run%%=*}; folder=$OUT/${run#*=}/seed_0; name=$(basename "${run#*=}")
  for when in init end; do
    flag=(); [ "$when" = init ] && flag=(--at_init)
    "$PYTHON" -m pfml_jax.analysis.force_report --workdir="$folder" "${flag[@]}" \
        --out="docs/reproduction/forces/${name}_$when.json"
    columns+=("$label, $when=docs/reproduction/forces/${name}_$when.json")
  done
done
"$PYTHON" -m tools.forces_table "${columns[@]}" > docs/reproduction/forces.md
