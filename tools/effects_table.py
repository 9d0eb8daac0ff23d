"""Paired effects of a study with a 95 % interval: each loss against the step-0 floor, PFML
against each other loss, and (with label noise) PFML's drop under noise against each other's.

    python -m tools.effects_table STUDY_DIR [STUDY_DIR ...] [--metric=recall@1] \
        [--result=best] > docs/reproduction/<study>_effects.md

Several folders (e.g. a study and the noise levels another added) are read as one. Cells of one
loss that differ otherwise are named by their other labels (``pfml:field=opening``);
``--reference`` names the cell the others are compared with (default ``pfml``). Without a floor
cell the floor table is left out.

Runs are paired by seed: within a study every cell of a seed shares its initialisation seed
and, under ``data.split_per_seed``, its validation classes. For each contrast: n (the seeds
both sides finished), the mean difference in points, its 95 % interval (Student t, n - 1
degrees of freedom), the two-sided p of the paired t-test, and a verdict: ``> 0`` or ``< 0``
where the interval excludes zero, else ``inconclusive``; equal differences over every seed
leave the t-test undefined, and are inconclusive. ``--result``: ``best`` is the test
result of the checkpoint chosen on validation (the validated protocol's reported number),
``final`` the last step's, ``validation`` the chosen checkpoint's validation result, and
``diagnostics`` a mean of the run's ``eval/diagnostics.json`` (``--metric=proxy_data_w2``:
proxy-data W2, in its own units, not points).
"""

import json
import math
import statistics
from pathlib import Path

from absl import flags
from scipy import stats

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.study import manifest as manifest_lib
from pfml_jax.study.aggregate import METHOD_NAMES, run_results
from pfml_jax.study.grid import FLOOR, Study
from pfml_jax.study.runner import SUMMARY
from pfml_jax.user_errors import UserInputError

NOISE = "label_noise"
REFERENCE = "pfml"
DIAGNOSTICS = "eval/diagnostics.json"


def run_value(run_dir: Path, result: str, metric: str) -> float | None:
  """One run's ``metric`` of ``result`` (None if unfinished, or a diagnostic it lacks)."""
  path = run_dir / SUMMARY
  if not path.exists():
    return None
  if result == "diagnostics":
    report = json.loads((run_dir / DIAGNOSTICS).read_text()).get(metric)
    return report["mean"] if report else None
  return run_results(json.loads(path.read_text()))[1][result][metric]


def per_seed(study: Study, workdir: Path, result: str, metric: str) -> dict[tuple, dict]:
  """{(method, noise): {seed: value}} over the study's finished runs."""
  values: dict[tuple, dict] = {}
  for run in study.runs():
    value = run_value(workdir / run.folder, result, metric)
    if value is None:
      continue
    labels = dict(run.cell.values)
    noise = labels.pop(NOISE, labels.pop("noise", 0.0))
    method = labels.pop("method", REFERENCE)
    # Cells of one loss that differ otherwise (e.g. PFML's field) are told apart by their
    # other labels: "pfml:field=opening".
    variant = ",".join(f"{label}={v}" for label, v in labels.items())
    values.setdefault((f"{method}:{variant}" if variant else method, noise), {})[run.seed] = value
  return values


def studies_per_seed(folders: list[str], result: str, metric: str) -> dict[tuple, dict]:
  """``per_seed`` of several study folders, merged; one ``error:`` line for a folder that is
  no study or has no finished run."""
  values: dict[tuple, dict] = {}
  for folder in folders:
    try:
      study = manifest_lib.study_from_manifest(folder)
    except UserInputError as error:
      fail(str(error))
    found = per_seed(study, Path(folder), result, metric)
    if not found:
      fail(f"{folder}: no finished run; run the study first.")
    for key, runs in found.items():
      values.setdefault(key, {}).update(runs)
  return values


def paired(left: dict, right: dict) -> dict | None:
  """The paired difference left - right over the seeds both have (None below two)."""
  seeds = sorted(set(left) & set(right))
  if len(seeds) < 2:
    return None
  differences = [left[s] - right[s] for s in seeds]
  mean, sd, n = statistics.fmean(differences), statistics.stdev(differences), len(seeds)
  if sd <= 1e-9 * max(1.0, abs(mean)):  # equal differences up to rounding: t is undefined
    return {"n": n, "mean": mean, "low": None, "high": None, "p": None,
            "verdict": "inconclusive (equal differences, no t-interval)"}
  half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
  p = 2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)
  verdict = "> 0" if mean - half > 0 else "< 0" if mean + half < 0 else "inconclusive"
  return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "p": p,
          "verdict": verdict}


def _row(name: str, effect: dict | None, digits: int = 1) -> str:
  if effect is None:
    return f"| {name} | <2 | | | | |"
  if effect["p"] is None:
    return (f"| {name} | {effect['n']} | {effect['mean']:+.{digits}f} | — | — | "
            f"{effect['verdict']} |")
  mean, low, high = (f"{effect[k]:+.{digits}f}" for k in ("mean", "low", "high"))
  return (f"| {name} | {effect['n']} | {mean} | [{low}, {high}] | {effect['p']:.3f} | "
          f"{effect['verdict']} |")


def method_name(method: str) -> str:
  """``pfml`` -> PFML, ``pfml:field=opening`` -> PFML (field=opening)."""
  base, _, variant = method.partition(":")
  return METHOD_NAMES.get(base, base) + (f" ({variant})" if variant else "")


def tables(values: dict[tuple, dict], metric: str, result: str,
           reference: str = REFERENCE) -> str:
  header = ["| contrast | n | mean difference | 95 % interval | p (paired t) | verdict |",
            "|---|---|---|---|---|---|"]
  digits = 3 if result == "diagnostics" else 1
  row = lambda name, effect: _row(name, effect, digits)
  methods = [m for m in dict.fromkeys(m for m, _ in values) if m != FLOOR]
  noises = sorted({noise for _, noise in values})
  floor = values.get((FLOOR, 0.0), {})
  name = method_name
  out = [f"{metric}, {result} result, paired over seeds (differences in points for the "
         "metrics, in the diagnostic's units otherwise).", ""]
  if floor:
    out += ["Each loss minus the step-0 floor:", "", *header]
    out += [row(f"{name(m)}, noise {noise:g}", paired(values[(m, noise)], floor))
            for noise in noises for m in methods if (m, noise) in values]
    out += [""]
  out += [f"{name(reference)} minus each other loss:", "", *header]
  out += [row(f"vs {name(m)}, noise {noise:g}",
               paired(values.get((reference, noise), {}), values[(m, noise)]))
          for noise in noises for m in methods if m != reference and (m, noise) in values]
  if len(noises) > 1:
    drop = {(m, noise): {s: clean[s] - noisy[s] for s in set(clean) & set(noisy)}
            for m in methods for noise in noises[1:]
            if (clean := values.get((m, 0.0), {})) and (noisy := values.get((m, noise), {}))}
    out += ["", "Drop under noise (clean minus noisy), each loss; then "
            f"{name(reference)}'s drop minus each other loss's (negative: "
            f"{name(reference)} degrades less):", "", *header]
    out += [row(f"{name(m)} drop at noise {noise:g}", paired(d, {s: 0.0 for s in d}))
            for (m, noise), d in drop.items()]
    out += [row(f"vs {name(m)}, noise {noise:g}", paired(drop.get((reference, noise), {}), d))
            for (m, noise), d in drop.items() if m != reference]
  return "\n".join(out)


_FLAGS = flags.FlagValues()
flags.DEFINE_string("metric", "recall@1", "the metric compared", flag_values=_FLAGS)
flags.DEFINE_enum("result", "best", ["best", "final", "validation", "diagnostics"],
                  "which result of each run", flag_values=_FLAGS)
flags.DEFINE_string("reference", REFERENCE, "the cell the others are compared with: a loss, "
                    "or loss:label=value,... where a study has several cells of one loss",
                    flag_values=_FLAGS)


def main(argv: list[str] | None = None) -> None:
  folders = parse_tool_flags(_FLAGS, argv, __doc__)
  if not folders:
    fail("give the study's folder (or several).")
  values = studies_per_seed(folders, _FLAGS.result, _FLAGS.metric)
  if not any(method == _FLAGS.reference for method, _ in values):
    fail(f"--reference={_FLAGS.reference}: no such cell; the study has "
         f"{', '.join(sorted({m for m, _ in values}))}.")
  print(tables(values, _FLAGS.metric, _FLAGS.result, _FLAGS.reference))


if __name__ == "__main__":
  main()
