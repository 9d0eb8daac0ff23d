"""Pictures from the command line.

    python -m pfml_jax.viz field --alpha=3 --delta=0.2 --out=field.png [--gif=field.gif]
    python -m pfml_jax.viz plots WORKDIR [--checkpoint=best]

``field`` draws the paper's potential-field picture (``field.py``); ``plots`` writes a run's
pictures into ``WORKDIR/plots/`` (``run_plots.py``), for a finished or a running run.
"""

import argparse
import sys

from pfml_jax.losses.potentials import FieldParams
from pfml_jax.user_errors import EXIT_STATUS, UserInputError
from pfml_jax.viz import field as field_lib
from pfml_jax.viz.run_plots import write_run_plots


def _field(args) -> list:
  try:
    field = FieldParams(args.alpha, args.delta if args.delta_att is None else args.delta_att,
                        args.delta if args.delta_rep is None else args.delta_rep).validate()
  except ValueError as error:
    raise UserInputError(f"{error} Pass e.g. --alpha=3 --delta=0.2.") from error
  if not 0 <= args.proxies <= field_lib.MAX_PROXIES:
    raise UserInputError(f"--proxies={args.proxies}: choose 0 to {field_lib.MAX_PROXIES} "
                         "proxies per class.")
  if args.shown_class not in (0, 1):
    raise UserInputError(f"--shown_class={args.shown_class}: the picture has classes 0 and 1.")
  configuration = field_lib.demo_configuration(args.proxies)
  written = [field_lib.draw_field(configuration, field, args.out, shown_class=args.shown_class)]
  if args.gif:
    if args.gif_steps < 1:
      raise UserInputError(f"--gif_steps={args.gif_steps}: need at least 1 step.")
    written.append(field_lib.draw_descent(configuration, field, args.gif, steps=args.gif_steps,
                                          shown_class=args.shown_class))
  return written


def _plots(args) -> list:
  return write_run_plots(args.workdir, args.checkpoint)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m pfml_jax.viz", description=__doc__.split(
      "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  field = commands.add_parser("field", help="the potential field of two classes in the plane")
  # Defaults: the paper's alpha = 3 and delta = 0.2 (CUB, Cars); two proxies per class is our
  # choice (enough to show that proxies both feel and make the field).
  field.add_argument("--alpha", type=float, default=3.0, help="decay exponent (3)")
  field.add_argument("--delta", type=float, default=0.2, help="both radii (0.2)")
  field.add_argument("--delta_att", type=float, default=None, help="attraction radius")
  field.add_argument("--delta_rep", type=float, default=None, help="repulsion radius")
  field.add_argument("--proxies", type=int, default=2, help="proxies per class, 0-3 (2)")
  field.add_argument("--shown_class", type=int, default=0, help="class whose Psi is drawn")
  field.add_argument("--out", default="field.png", help="the PNG (field.png)")
  field.add_argument("--gif", default="", help="also animate gradient steps into this GIF")
  field.add_argument("--gif_steps", type=int, default=20, help="frames of the GIF (20)")
  field.set_defaults(run=_field)
  plots = commands.add_parser("plots", help="a run's pictures into WORKDIR/plots/")
  plots.add_argument("workdir", help="the run's --workdir")
  plots.add_argument("--checkpoint", default="best", help="best | latest | a step (best)")
  plots.set_defaults(run=_plots)
  return parser


def main(argv=None) -> None:
  args = _parser().parse_args(argv)
  try:
    written = args.run(args)
  except UserInputError as error:
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(EXIT_STATUS)
  for path in written:
    print(path)


if __name__ == "__main__":
  main()
