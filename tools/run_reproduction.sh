#!/usr/bin/env bash
# Regenerates the runs and tables of docs/reproduction.md on a CPU machine (2 cores: two runs
# at a time, each single-threaded, so that reruns give the same numbers):
#
#     bash tools/run_reproduction.sh [STUDIES_DIR]     # default studies/small
#
# A rerun skips finished runs and trials and resumes partial ones, so it can run in parts
# (kill it, rerun it). Order, in docs/reproduction.md's sections: the fair comparison from
# scratch and pretrained (configs/small/shared_*.py: every loss tuned on validation classes with
# the same budget, then 5 seeds clean and at 20 % noise with the step-0 floor, the noise curve of
# PFML and the two strongest baselines, and PFML's tuned setting with one proxy per class and
# without the proxies' mutual attraction), the opening comparison on its demo recipe
# (demo_recipe, 3 seeds), then each loss on its published recipe in both regimes (clean, 3
# seeds, with the floors) and proxies started on their classes (small_proxy_init), PFML's forces,
# and last PFML's four ablations on its published pretrained recipe (2 seeds). The tables and
# plots land in <study>/aggregate/ and are copied to docs/reproduction/.
set -euo pipefail
OUT=${1:-studies/small}
PARALLEL=${PARALLEL:-2}
PYTHON=${PYTHON:-python}
TRIALS=${TRIALS:-10}  # the tuning budget of every loss [docs/reproduction.md]
LOSSES="pfml proxy_anchor proxy_nca normalized_softmax multi_similarity triplet hist"
export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false"
# Runs that differ only in seed or label noise compile the same programs: JAX's persistent cache
# hands the second one the first one's executable (the same numbers; about 30 s less per run).
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$OUT/.jax_cache}"
study() { "$PYTHON" -m pfml_jax.study "$@"; }

# The fair comparison in the shared setup of one regime: $1 = scratch | pretrained.
fair() {
  local regime=$1 dir=$OUT/fair_$1
  for loss in $LOSSES; do
    study tune --config="configs/small/shared_$regime.py" --loss="$loss" --trials="$TRIALS" \
        --workdir="$dir/tune/$loss" --parallel="$PARALLEL"
  done
  study run --tuned="$dir/tune" --floor --sweep=data.label_noise=0.0,0.2 --seeds=0,1,2,3,4 \
      --name="fair_$regime" --workdir="$dir/tuned" --parallel="$PARALLEL"
  local strongest
  strongest=$("$PYTHON" -m tools.strongest_losses "$dir/tuned")
  study run --tuned="$dir/tune/pfml,$dir/tune/${strongest/,/,$dir/tune/}" \
      --sweep=data.label_noise=0.1,0.4 --seeds=0,1,2,3,4 --name="noise_curve_$regime" \
      --workdir="$dir/noise_curve" --parallel="$PARALLEL"
  mkdir -p docs/reproduction
  study aggregate --workdir="$dir/tuned"
  cp "$dir/tuned"/aggregate/* docs/reproduction/
  "$PYTHON" -m tools.effects_table "$dir/tuned" "$dir/noise_curve" \
      > "docs/reproduction/fair_${regime}_effects.md"
  "$PYTHON" -m tools.effects_table "$dir/tuned" --result=diagnostics --metric=proxy_data_w2 \
      > "docs/reproduction/fair_${regime}_w2_effects.md"
  "$PYTHON" -m tools.diagnostics_table "$dir/tuned" > "docs/reproduction/fair_${regime}_diagnostics.md"
  "$PYTHON" -m tools.noise_curve "$dir/tuned" "$dir/noise_curve" --losses="pfml,$strongest" \
      --out="docs/reproduction/noise_curve_$regime.png" > "docs/reproduction/noise_curve_$regime.md"
  "$PYTHON" -m tools.tuning_table "$dir/tune" > "docs/reproduction/fair_${regime}_tuning.md"
  # Proxy collapse (docs/reproduction.md §8c): PFML's tuned setting with one proxy per class,
  # and without same-class proxy-proxy attraction, against its tuned cell, on validation.
  study run --tuned="$dir/tune/pfml" --sweep=loss.pfml.proxies_per_class=1 --seeds=0,1,2,3,4 \
      --name="one_proxy_$regime" --workdir="$dir/one_proxy" --parallel="$PARALLEL"
  study run --tuned="$dir/tune/pfml" --sweep=loss.pfml.proxy_self_attraction=False \
      --seeds=0,1,2,3,4 --name="no_self_attraction_$regime" --workdir="$dir/no_self_attraction" \
      --parallel="$PARALLEL"
  "$PYTHON" -m tools.effects_table "$dir/tuned" "$dir/one_proxy" "$dir/no_self_attraction" \
      --result=validation \
      > "docs/reproduction/fair_${regime}_proxy_effects.md"
  for variant in one_proxy no_self_attraction; do
    study aggregate --workdir="$dir/$variant"
    cp "$dir/$variant"/aggregate/* docs/reproduction/
    "$PYTHON" -m tools.diagnostics_table "$dir/$variant" \
        > "docs/reproduction/fair_${regime}_${variant}_diagnostics.md"
  done
  for loss in $LOSSES; do
    cp "$dir/tune/$loss/trials.csv" "docs/reproduction/tune_${regime}_$loss.csv"
  done
}

fair scratch
study run demo_recipe --workdir="$OUT/demo_recipe" --parallel="$PARALLEL"
fair pretrained

for regime in pretrained scratch; do
  study run "small_$regime" --workdir="$OUT/small_$regime" --parallel="$PARALLEL"
  # The published recipes' floor: the PFML recipe's step-0 model (grid.FLOOR_OVERRIDES).
  study run --config="configs/small/$regime.py" --name="floor_$regime" --seeds=0,1,2 \
      --config.steps=1 --config.optim.backbone_lr_mult=0.0 --config.optim.head_lr_mult=0.0 \
      --config.model.frozen_bn=true --workdir="$OUT/floor_published_$regime" --parallel="$PARALLEL"
done
study run small_proxy_init --workdir="$OUT/small_proxy_init" --parallel="$PARALLEL"
mkdir -p docs/reproduction
for name in small_pretrained small_scratch small_proxy_init demo_recipe floor_published_scratch \
    floor_published_pretrained; do
  study aggregate --workdir="$OUT/$name"
  cp "$OUT/$name"/aggregate/* docs/reproduction/
done
for name in small_pretrained small_scratch small_proxy_init demo_recipe; do
  "$PYTHON" -m tools.diagnostics_table "$OUT/$name" > "docs/reproduction/${name}_diagnostics.md"
done
"$PYTHON" -m tools.effects_table "$OUT/demo_recipe" --reference=pfml:field=validation \
    > docs/reproduction/demo_recipe_effects.md
# PFML's forces at the start and the end of seed 0 (docs/reproduction.md §8).
mkdir -p docs/reproduction/forces
columns=()
for run in "scratch, tuned=fair_scratch/tuned/shared_scratch-method_pfml-label_noise_0.0" \
    "pretrained, tuned=fair_pretrained/tuned/shared_pretrained-method_pfml-label_noise_0.0" \
    "published pretrained=small_pretrained/pretrained-pfml-method_pfml" \
    "published pretrained, class-mean proxies=small_proxy_init/pretrained-pfml-method_pfml-init_class_mean"; do
  label=${run%%=*}; folder=$OUT/${run#*=}/seed_0; name=$(basename "${run#*=}")
  for when in init end; do
    flag=(); [ "$when" = init ] && flag=(--at_init)
    "$PYTHON" -m pfml_jax.analysis.force_report --workdir="$folder" "${flag[@]}" \
        --out="docs/reproduction/forces/${name}_$when.json"
    columns+=("$label, $when=docs/reproduction/forces/${name}_$when.json")
  done
done
"$PYTHON" -m tools.forces_table "${columns[@]}" > docs/reproduction/forces.md
# PFML's four ablations on its published pretrained recipe (docs/reproduction.md §6), each
# point paired with the paper's (alpha 3, delta 0.2, M 15, no gap) on validation and on test.
for ablation in alpha:alpha=3 delta:delta=0.2 proxies:M=15 delta_gap:gap=0.0; do
  name=${ablation%%:*}
  study run "$name" --config=configs/small/pretrained.py --seeds=0,1 \
      --workdir="$OUT/$name" --parallel="$PARALLEL"
  study aggregate --workdir="$OUT/$name"
  cp "$OUT/$name"/aggregate/* docs/reproduction/
  for result in validation best; do
    "$PYTHON" -m tools.effects_table "$OUT/$name" --result="$result" \
        --reference="pfml:${ablation#*:}"
  done > "docs/reproduction/${name}_effects.md"
done
