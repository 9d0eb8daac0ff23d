"""PFML's forces in a trained run: ``field_report`` (``evaluation/field_forces.py``) of its
embeddings and proxies at a checkpoint or at the state the run started from.

    python -m pfml_jax.analysis.force_report --workdir=RUN [--checkpoint=latest] [--at_init]
        [--split=train] [--batches=8] [--out=forces.json]
"""

import json
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.data.run_splits import read_split
from pfml_jax.evaluation.evaluator import make_evaluator
from pfml_jax.evaluation.field_forces import field_report
from pfml_jax.evaluation.trained_model import load_trained_model
from pfml_jax.losses import LOSSES
from pfml_jax.losses.potentials import FieldParams
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.settings import derived
from pfml_jax.training import setup as setup_lib
from pfml_jax.user_errors import MissingFileError, UserInputError


def _field_settings(config) -> tuple[FieldParams, dict, str]:
  """PFML's field and options of the run, or PFML's defaults for a run of another loss."""
  if config.loss.name == "pfml":
    settings, source = config.loss.pfml, "the run's config.loss.pfml"
  else:
    settings = LOSSES["pfml"].defaults
    source = f"PFML defaults: the run trained {config.loss.name!r}, not PFML"
  field = FieldParams(*(settings[key] for key in FieldParams._fields))
  options = {key: settings[key] for key in ("normalize_proxies", "proxy_self_attraction")}
  return field, options, source


def _run_points(workdir: Path, checkpoint: str, split_name: str, at_init: bool):
  """(config, step, embeddings, labels, proxies, proxy_labels) of the run's model."""
  model = load_trained_model(workdir, checkpoint)
  config = model.config
  split = read_split(config, split_name)
  if not at_init:
    evaluator = make_evaluator(model.embedder, mesh_lib.make_mesh(config.mesh), config.eval)
    embeddings, labels = evaluator.embeddings(model.variables, split)
    return config, model.step, embeddings, labels, model.proxies, model.proxy_labels
  setup = setup_lib.build(config)
  state = setup_lib.fresh_state(setup)  # as the trainer starts the run
  variables = jax.device_get(state.variables())
  embeddings, labels = setup.evaluator.embeddings(variables, split)
  proxies = state.proxies
  proxies = (np.zeros((0, embeddings.shape[1])) if proxies is None else np.asarray(proxies))
  return config, 0, embeddings, labels, proxies, np.asarray(setup.proxy_labels)[:len(proxies)]


def run_field_report(workdir: str | Path, checkpoint: str = "latest", split: str = "train",
                     at_init: bool = False, batches: int = 8) -> dict[str, Any]:
  """``field_report`` of a run's embeddings of ``split`` (eval transform, no augmentation).

  The gradient is averaged over ``batches`` of the run's own sampler (its batch size and
  classes per batch): the first steps' batches at init, the checkpoint's last steps' at the
  end, each with all proxies, as the loss sees them in training.
  """
  workdir = Path(workdir)
  if not (workdir / "checkpoints").is_dir():
    raise MissingFileError(f"{workdir}: no checkpoints/ folder; pass the --workdir of a run "
                           "that saved a checkpoint.")
  if batches < 1:
    raise UserInputError(f"--batches={batches}: need at least 1 batch.")
  config, step, embeddings, labels, proxies, proxy_labels = _run_points(workdir, checkpoint,
                                                                        split, at_init)
  field, options, source = _field_settings(config)
  sampler = derived(config).sampler.build(labels)
  first = max(step - batches, 0)
  report = field_report(embeddings, labels, proxies if len(proxies) else None, proxy_labels,
                        field, **options,
                        batches=[sampler.batch(s) for s in range(first, first + batches)])
  report["run"] = {"workdir": str(workdir), "state": "init" if at_init else f"step {step}",
                   "split": split, "loss": config.loss.name, "field_settings": source,
                   "labels": "the split's labels as read (no label noise applied)"}
  return report


_FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "the run's --workdir", flag_values=_FLAGS)
flags.DEFINE_string("checkpoint", "latest", "best | latest | a step", flag_values=_FLAGS)
flags.DEFINE_enum("split", "train", ["train", "val", "test"], "the split embedded",
                  flag_values=_FLAGS)
flags.DEFINE_bool("at_init", False, "the state the run started from instead of the "
                  "checkpoint's", flag_values=_FLAGS)
# 8 batches: our choice, enough for stable means at a few seconds per batch.
flags.DEFINE_integer("batches", 8, "sampler batches averaged", flag_values=_FLAGS)
flags.DEFINE_string("out", "", "also write the JSON here", flag_values=_FLAGS)
flags.mark_flag_as_required("workdir", flag_values=_FLAGS)


def main(argv: Sequence[str] | None = None) -> None:
  if parse_tool_flags(_FLAGS, argv, __doc__):
    fail("force_report takes flags only (--help lists them).")
  try:
    report = run_field_report(_FLAGS.workdir, _FLAGS.checkpoint, _FLAGS.split, _FLAGS.at_init,
                              _FLAGS.batches)
  except UserInputError as error:
    fail(str(error))
  text = json.dumps(report, indent=1)
  if _FLAGS.out:
    Path(_FLAGS.out).write_text(text + "\n")
  print(text)


if __name__ == "__main__":
  main()
