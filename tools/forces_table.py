"""The Markdown table of PFML's forces in docs/reproduction.md §8, one column per report of
``python -m pfml_jax.analysis.force_report`` (shares: tangent gradient on the embeddings).

    python -m tools.forces_table "pretrained, init=forces/a.json" "pretrained, end=forces/b.json"
"""

import json
from pathlib import Path

from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags

_ROWS = (
    ("same-class pair distance, median",
     lambda d: f"{d['distances']['embedding_embedding']['same_class_distance']['q50']:.2f}"),
    ("other-class pair distance, median",
     lambda d: f"{d['distances']['embedding_embedding']['other_class_distance']['q50']:.2f}"),
    ("same-class pairs inside delta_att (no pull)",
     lambda d: _percent(d["distances"]["embedding_embedding"]["same_class_inside_delta_att"])),
    ("other-class pairs inside delta_rep (pushed)",
     lambda d: _percent(d["distances"]["embedding_embedding"]["other_class_inside_delta_rep"])),
    ("embedding-proxy distance, median (own class)",
     lambda d: f"{d['distances']['embedding_proxy']['same_class_distance']['q50']:.2f}"
     if "embedding_proxy" in d["distances"] else "— (no proxies)"),
    *((f"gradient share: {label}",
       lambda d, key=key: _percent(d["gradient"]["on_embeddings"]["tangent"][key]["share"]))
      for label, key in (("attraction between embeddings", "attraction_from_embeddings"),
                         ("repulsion between embeddings", "repulsion_from_embeddings"),
                         ("attraction from proxies", "attraction_from_proxies"),
                         ("repulsion from proxies", "repulsion_from_proxies"))),
)


def _percent(fraction: float) -> str:
  value = 100 * fraction
  return f"{value:.1f} %" if 0 < value < 10 else f"{value:.0f} %"


def table(columns: list[tuple[str, dict]]) -> str:
  lines = ["| | " + " | ".join(label for label, _ in columns) + " |",
           "|---|" + "---|" * len(columns)]
  lines += [f"| {name} | " + " | ".join(cell(report) for _, report in columns) + " |"
            for name, cell in _ROWS]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  columns = parse_tool_flags(flags.FlagValues(), argv, __doc__)
  if not columns or any("=" not in column for column in columns):
    fail('give one "LABEL=REPORT.json" argument per column.')
  pairs = [column.rsplit("=", 1) for column in columns]
  print(table([(label, json.loads(Path(path).read_text())) for label, path in pairs]))


if __name__ == "__main__":
  main()
