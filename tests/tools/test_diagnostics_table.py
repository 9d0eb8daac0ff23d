"""tools/diagnostics_table.py on written diagnostics files, against numbers computed here."""

import json
import statistics

from tools import diagnostics_table


def _report(w2, own, ratio, spread):
  return {"proxy_data_w2": {"mean": w2} if w2 is not None else None,
          "nearest_proxy": {"own_class": own, "chance": 0.02} if own is not None else None,
          "proxy_spread": {"ratio": ratio} if ratio is not None else None,
          "test": {"spread": spread, "margin": -spread / 2, "margin_positive": 0.1}}


def _write(study, cell, seed, report):
  folder = study / cell / f"seed_{seed}" / "eval"
  folder.mkdir(parents=True)
  (folder / "diagnostics.json").write_text(json.dumps(report))


def test_rows_hold_each_cells_mean_and_sd_and_dash_where_a_loss_has_no_proxies(tmp_path):
  pfml = [(0.61, 0.50, 0.70, 0.20), (0.65, 0.40, 0.60, 0.30), (0.70, 0.45, 0.62, 0.25)]
  for seed, values in enumerate(pfml):
    _write(tmp_path, "s-method_pfml", seed, _report(*values))
  _write(tmp_path, "s-method_triplet", 0, _report(None, None, None, 0.4))
  lines = diagnostics_table.table(tmp_path).splitlines()
  assert len(lines) == 4
  cells = [c.strip() for c in lines[2].split("|")[1:-1]]
  columns = list(zip(*pfml))
  expected = [f"{statistics.mean(c):.3f} ± {statistics.stdev(c):.3f}" for c in columns]
  assert cells[0] == "s-method_pfml" and cells[1] == "3"
  assert cells[2] == expected[0] and cells[3] == f"{expected[1]} (0.020)"
  assert cells[4] == expected[2] and cells[5] == expected[3]
  triplet = [c.strip() for c in lines[3].split("|")[1:-1]]
  assert triplet[1:6] == ["1", "—", "—", "—", "0.400"]
