"""What a run evaluates during training and reports at the end, by ``eval.protocol``.

paper: all training classes train; test is evaluated at every evaluation step and written to
  ``eval/step_<N>.json``; the report holds the final test metrics and the best test metrics
  over training with their step (the checkpoint chosen on test: the field's practice,
  optimistic).
validated: held-out training classes are evaluated during training and rank the checkpoints;
  the report holds the test metrics of the checkpoint chosen on them, and of the final state.
"""

import json
import math
from pathlib import Path
from typing import Any

from absl import logging

from pfml_jax.data.split import Split
from pfml_jax.evaluation.evaluator import Evaluator


def periodic_evaluation(evaluator: Evaluator, variables: dict, step: int, val: Split | None,
                        test: Split, writer) -> dict[str, float]:
  """The metrics the checkpoint at ``step`` is ranked by: validation, or test (paper)."""
  if val is not None:
    metrics = evaluator(variables, val)
    writer.write_scalars(step, {f"val/{k}": v for k, v in metrics.items()})
    return metrics
  metrics = evaluator(variables, test)
  writer.write_scalars(step, {f"test/{k}": v for k, v in metrics.items()})
  writer.write_json(f"eval/step_{step}.json", {"step": step, "val": None, "test": metrics})
  return metrics


def recorded_test_metrics(workdir: Path) -> dict[int, dict]:
  """Test metrics by step from the run's ``eval/step_<N>.json`` files."""
  history = {}
  for path in (workdir / "eval").glob("step_*.json"):
    record = json.loads(path.read_text())
    if record.get("test"):
      history[int(record["step"])] = record["test"]
  return history


def final_report(*, eval_config, evaluator: Evaluator, variables: dict, step: int,
                 val: Split | None, test: Split, checkpoints, writer) -> dict[str, Any]:
  """The run's report by ``eval_config.protocol`` and ``.selection_metric``, written to
  ``eval/summary.json`` and, as ``final_test/*``, ``best_test/*`` or ``selected_test/*``
  scalars, to metrics.jsonl. ``checkpoints``: the run's channel (``run_checkpoints.py``).
  """
  protocol, selection_metric = eval_config.protocol, eval_config.selection_metric
  history = recorded_test_metrics(writer.workdir)
  final = history.get(step) or evaluator(variables, test)
  result = {"protocol": protocol, "step": step, "val": None, "test": final,
            "selection_metric": selection_metric}
  if val is None:
    history[step] = final
    # A step evaluated before the selection metric changed (it lacks it) ranks last.
    best = max(sorted(history), key=lambda s: history[s].get(selection_metric, -math.inf))
    result["best_on_test"] = {"step": best, "test": history[best],
                              "note": f"checkpoint chosen by test {selection_metric} "
                                      "(optimistic)"}
    scalars = {"final_test": final, "best_test": history[best]}
  else:
    chosen = checkpoints.best_step()
    selected = final if chosen == step else evaluator(checkpoints.restore_variables(chosen), test)
    result.update(step=chosen, val=checkpoints.metrics(chosen), test=selected,
                  final={"step": step, "test": final})
    scalars = {"final_test": final, "selected_test": selected}
  for prefix, metrics in scalars.items():
    writer.write_scalars(step, {f"{prefix}/{k}": v for k, v in metrics.items()})
  writer.write_json(f"eval/step_{result['step']}.json",
                    {"step": result["step"], "val": result["val"], "test": result["test"]})
  writer.write_json("eval/summary.json", result)
  logging.info("Test metrics (%s protocol): %s", protocol, result)
  return result
