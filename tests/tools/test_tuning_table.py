"""tools/tuning_table.py on a folder of searches as `study tune` writes them."""

import json

import pytest

from tools import tuning_table


def write_search(folder, loss, values):
  """A finished search: trials.csv with ``values`` (None: a failed trial) and chosen.json."""
  folder.mkdir(parents=True)
  lines = ["trial,state,recall@1,learning_rate"]
  lines += [f"{n},{'fail' if v is None else 'complete'},{'' if v is None else v},0.001"
            for n, v in enumerate(values)]
  (folder / "trials.csv").write_text("\n".join(lines) + "\n")
  best = max((v, -n) for n, v in enumerate(values) if v is not None)
  (folder / "chosen.json").write_text(json.dumps({
      "loss": loss, "metric": "recall@1", "trial": -best[1], "trials": len(values),
      "complete": sum(v is not None for v in values), "failed": values.count(None),
      "params": {"learning_rate": 0.00123456, "schedule": "cosine"}}))


def test_one_row_per_search_with_the_spread_and_the_chosen_setting(tmp_path, capsys):
  write_search(tmp_path / "pfml", "pfml", [50.0, 71.25, None, 60.0])
  write_search(tmp_path / "triplet", "triplet", [40.0, 45.5, 30.0, 44.0])
  tuning_table.main([str(tmp_path)])
  rows = [[c.strip() for c in line.strip("|").split("|")]
          for line in capsys.readouterr().out.splitlines()[2:]]
  assert [r[0] for r in rows] == ["PFML", "Triplet"]
  assert rows[0][1:5] == ["2", "3 of 4 (1 failed)", "50.0 / 60.0 / 71.2", "1"]
  assert rows[1][3] == "30.0 / 42.0 / 45.5"
  assert rows[0][5] == "learning_rate 0.00123, schedule cosine"


def test_a_folder_without_searches_is_an_error(tmp_path):
  with pytest.raises(SystemExit) as exit_info:
    tuning_table.main([str(tmp_path)])
  assert exit_info.value.code == 2
