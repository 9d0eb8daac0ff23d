"""tools/forces_table.py on real field reports: the numbers it prints are the reports'."""

import numpy as np

from pfml_jax.evaluation.field_forces import field_report
from pfml_jax.losses.potentials import FieldParams
from tools.forces_table import table


def test_each_column_shows_its_reports_medians_and_shares():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 4)
  reports = []
  for spread in (0.1, 1.0):  # tight classes, then points all over the sphere
    centres = rng.normal(size=(3, 8))
    embeddings = centres[labels] + spread * rng.normal(size=(12, 8))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    reports.append(field_report(embeddings, labels, np.zeros((0, 8)), np.zeros(0, int),
                                FieldParams(alpha=3.0, delta_att=0.2, delta_rep=0.2)))
  text = table([("tight", reports[0]), ("loose", reports[1])])
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in
          text.splitlines()[2:]}
  for column, report in enumerate(reports):
    median = report["distances"]["embedding_embedding"]["same_class_distance"]["q50"]
    assert rows["same-class pair distance, median"][column].strip(" |") == f"{median:.2f}"
  shares = rows["gradient share: attraction from proxies"]
  assert [s.strip(" |") for s in shares] == ["0 %", "0 %"]  # no proxies, no proxy force
  assert rows["embedding-proxy distance, median (own class)"][0].strip(" |") == "— (no proxies)"
  assert len(text.splitlines()) == 2 + 9
