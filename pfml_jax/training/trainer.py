"""Training and checkpoint evaluation: the two things ``python -m pfml_jax.main`` runs.

train_and_evaluate: set-up (``setup.py``) -> resume from the workdir's newest readable
checkpoint (refusing changed input unless allowed) or initialise (optionally pretrained) ->
the loop (``loop.py``) -> the protocol's final report (``protocol.py``).
evaluate_checkpoint: a checkpoint's model (``trained_model.py``) on the validation and test
splits, without the training split, the loss or the optimizer.
"""

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from pfml_jax.checkpoint.checkpoints import Checkpoints
from pfml_jax.data.run_splits import read_split, read_splits
from pfml_jax.evaluation.diagnostics import training_diagnostics
from pfml_jax.evaluation.evaluator import make_evaluator
from pfml_jax.evaluation.trained_model import load_trained_model
from pfml_jax.parallel import mesh as mesh_lib
from pfml_jax.settings import resolve
from pfml_jax.training import protocol
from pfml_jax.training.loop import Cadence, NonFiniteLossError, StepRunner, train_loop
from pfml_jax.training.metric_writer import MetricWriter
from pfml_jax.training.resume_check import check_resume
from pfml_jax.training.run_checkpoints import RunCheckpoints
from pfml_jax.training.run_info import run_info
from pfml_jax.training.setup import (TrainSetup, build, compile_train_step, fresh_state,
                                     input_state, open_train_input)

__all__ = ["NonFiniteLossError", "build", "evaluate_checkpoint", "read_splits",
           "train_and_evaluate"]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_input_change: bool = False) -> dict[str, Any]:
  """Trains (resuming from ``workdir`` if it holds a checkpoint), then evaluates on test.

  Returns:
    The report of ``protocol.final_report``: "protocol", "step", "val" (None under "paper"),
    "test", "selection_metric", and "best_on_test" (paper) or "final" (validated); or
    {"step", "preempted": True} after a SIGTERM.
  """
  setup = build(config)
  with MetricWriter(workdir) as writer, Checkpoints(
      workdir, keep=config.checkpoint.keep,
      selection_metric=config.eval.selection_metric) as checkpoints:
    writer.write_json("run_info.json", run_info(
        config, train_images=len(setup.train), train_classes=setup.train.num_classes,
        steps_per_epoch=setup.length.steps_per_epoch, total_steps=setup.length.total_steps))
    if setup.train.label_noise is not None:
      writer.write_json("label_noise.json", setup.train.label_noise.to_json())
    logging.info("config:\n%s", config)

    state, start_step, saved_input = _resume_or_init(setup, checkpoints)
    train_input = open_train_input(setup, start_step)
    if saved_input is not None:
      changed = check_resume(saved_input, input_state(setup, train_input, start_step),
                             start_step, checkpoints.directory, allow_input_change)
      if changed:
        logging.warning("Resuming with changed input (--allow_input_change): %s", changed)
    train_step, device_data = compile_train_step(setup, train_input)
    run_checkpoints = RunCheckpoints(checkpoints, setup, train_input, config.to_dict())

    def evaluate(state, step):
      return protocol.periodic_evaluation(setup.evaluator, state.variables(), step, setup.val,
                                          setup.test, writer)

    end = train_loop(
        state, step_runner=StepRunner(train_step, device_data, jax.random.key(config.seed + 1),
                                      setup.mesh),
        batches=train_input, start_step=start_step, cadence=_cadence(config, setup),
        length=setup.length, writer=writer, checkpoints=run_checkpoints, evaluate=evaluate)
    if end.preempted:
      return {"step": end.step, "preempted": True}
    report = protocol.final_report(
        eval_config=config.eval, evaluator=setup.evaluator, variables=end.state.variables(),
        step=int(jax.device_get(end.state.step)), val=setup.val, test=setup.test,
        checkpoints=run_checkpoints, writer=writer)
    if config.eval.diagnostics:
      writer.write_json("eval/diagnostics.json", _diagnostics(setup, end.state))
  return report


def _diagnostics(setup: TrainSetup, state) -> dict[str, Any]:
  """eval/diagnostics.json: the paper's geometric claims measured on the final state
  (evaluation/diagnostics.py):
  proxy-data W2 on the training classes (with their clean labels under label noise: the
  proxies' data is the class, not its corrupted labels) and spread / margin on train and test."""
  variables = state.variables()
  train = setup.train
  if train.label_noise is not None:
    record = train.label_noise
    clean = np.array(train.labels)
    clean[record.indices] = record.original
    train = dataclasses.replace(train, labels=clean, label_noise=None)
  train_embeddings, train_labels = setup.evaluator.embeddings(variables, train)
  test_embeddings, test_labels = setup.evaluator.embeddings(variables, setup.test)
  proxies = None if state.proxies is None else np.asarray(jax.device_get(state.proxies))
  return training_diagnostics(proxies, np.asarray(setup.proxy_labels), train_embeddings,
                              train_labels, test_embeddings, test_labels)


def _cadence(config, setup: TrainSetup) -> Cadence:
  return Cadence(total_steps=setup.length.total_steps, log_every=config.log_every_steps,
                 eval_every=setup.length.every(config.eval.every_epochs),
                 checkpoint_every=config.checkpoint.every_steps,
                 preemption_every=1 if jax.process_count() == 1 else config.log_every_steps)


def _resume_or_init(setup: TrainSetup, checkpoints: Checkpoints):
  """(state, its step, the checkpointed input state or None) of the newest readable
  checkpoint, or a fresh (optionally pretrained) state."""
  restored = checkpoints.restore_latest_readable(setup.abstract_sharded_state())
  if restored is None:
    return fresh_state(setup), 0, None
  step, state, saved_input = restored
  logging.info("Resumed from step %d (%s).", step, saved_input)
  return state, int(jax.device_get(state.step)), saved_input


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        which: str = "best") -> dict[str, Any]:
  """Checkpoint ``which`` (best | latest | step) on the validation and test splits.

  The model is the checkpoint's own (its recorded config); ``config`` gives the data, the
  mesh and the evaluation settings. Only the evaluated splits are read.
  """
  settings = resolve(config)
  mesh = mesh_lib.make_mesh(config.mesh)
  trained = load_trained_model(workdir, which, mesh_lib.platform(mesh))
  if trained.config.model.to_dict() != config.model.to_dict():
    logging.warning("config.model differs from the one checkpoint %d was trained with; "
                    "evaluating the checkpoint's model.", trained.step)
  evaluator = make_evaluator(trained.embedder, mesh, config.eval, config.data.workers)
  val = read_split(config, "val") if settings.validation_classes > 0 else None
  result = {"step": trained.step, "test": evaluator(trained.variables, read_split(config, "test")),
            "val": evaluator(trained.variables, val) if val is not None else None}
  with MetricWriter(workdir) as writer:
    writer.write_json(f"eval/step_{trained.step}.json", result)
  logging.info("Checkpoint %d: %s", trained.step, result)
  return result
