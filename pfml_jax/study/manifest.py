"""The study manifest, ``<study workdir>/study.json``: the definition, the site and each run's
last status, so that a study's folder says what it is and ``aggregate`` needs no name."""

import json
import time
from pathlib import Path
from typing import Any

from pfml_jax.study.commands import Site
from pfml_jax.study.grid import Study
from pfml_jax.user_errors import UserInputError

MANIFEST = "study.json"


def read_manifest(workdir: str | Path) -> dict[str, Any] | None:
  path = Path(workdir) / MANIFEST
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as error:
    raise UserInputError(f"{path} is not valid JSON ({error}); move it aside to start the "
                         "manifest afresh (the runs' folders are kept).") from error


def check_same_study(workdir: str | Path, study: Study) -> dict[str, Any]:
  """The run records of an existing manifest; an error if the workdir holds another study."""
  manifest = read_manifest(workdir)
  if manifest is None:
    return {}
  if manifest["study"]["name"] != study.name:
    raise UserInputError(
        f"--workdir={workdir} holds study {manifest['study']['name']!r}, not {study.name!r}; "
        "give each study its own workdir.")
  return manifest.get("runs", {})


def write_manifest(workdir: str | Path, study: Study, site: Site,
                   runs: dict[str, dict[str, Any]]) -> Path:
  """Writes the manifest atomically (temporary file, then rename)."""
  path = Path(workdir) / MANIFEST
  path.parent.mkdir(parents=True, exist_ok=True)
  record = {"study": study.to_json(), "site": {"data_root": site.data_root,
                                               "weights_dir": site.weights_dir,
                                               "extra": list(site.extra)},
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": runs}
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(json.dumps(record, indent=2) + "\n")
  temporary.replace(path)
  return path


def study_from_manifest(workdir: str | Path) -> Study:
  manifest = read_manifest(workdir)
  if manifest is None:
    raise UserInputError(f"--workdir={workdir} has no {MANIFEST}: name the study (or give "
                         "--config and --sweep) as when it was run.")
  return Study.from_json(manifest["study"])
