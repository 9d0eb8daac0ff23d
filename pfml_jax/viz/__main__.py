"""Pictures from the command line.

    python -m pfml_jax.viz field --alpha=3 --delta=0.2 --out=field.png [--gif=field.gif]
    python -m pfml_jax.viz plots WORKDIR [--checkpoint=best]

``field`` draws the paper's potential-field picture (``field.py``); ``plots`` writes a run's
pictures into ``WORKDIR/plots/`` (``run_plots.py``), for a finished or a running run.
"""

from typing import Sequence

from absl import flags

from pfml_jax.command_line import fail, parse_subcommand
from pfml_jax.losses.potentials import FieldParams
from pfml_jax.user_errors import UserInputError
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


COMMANDS = {"field": "the potential field of two classes in the plane",
            "plots": "a run's pictures into WORKDIR/plots/ (python -m pfml_jax.viz plots WORKDIR)"}


def _define_flags(command: str, values: flags.FlagValues) -> None:
  if command == "plots":
    flags.DEFINE_string("checkpoint", "best", "best | latest | a step", flag_values=values)
    return
  # Defaults: the paper's alpha = 3 and delta = 0.2 (CUB, Cars); two proxies per class is our
  # choice (enough to show that proxies both feel and make the field).
  flags.DEFINE_float("alpha", 3.0, "decay exponent", flag_values=values)
  flags.DEFINE_float("delta", 0.2, "both radii", flag_values=values)
  flags.DEFINE_float("delta_att", None, "attraction radius (default --delta)", flag_values=values)
  flags.DEFINE_float("delta_rep", None, "repulsion radius (default --delta)", flag_values=values)
  flags.DEFINE_integer("proxies", 2, "proxies per class, 0-3", flag_values=values)
  flags.DEFINE_integer("shown_class", 0, "class whose Psi is drawn", flag_values=values)
  flags.DEFINE_string("out", "field.png", "the PNG", flag_values=values)
  flags.DEFINE_string("gif", "", "also animate gradient steps into this GIF", flag_values=values)
  flags.DEFINE_integer("gif_steps", 20, "frames of the GIF", flag_values=values)


def main(argv: Sequence[str] | None = None) -> None:
  command, args, positional = parse_subcommand(argv, "python -m pfml_jax.viz", COMMANDS,
                                               _define_flags, __doc__)
  try:
    if command == "plots":
      if len(positional) != 1:
        raise UserInputError("plots takes one argument, the run's WORKDIR.")
      written = write_run_plots(positional[0], args.checkpoint)
    else:
      if positional:
        raise UserInputError(f"field takes no arguments, got {' '.join(positional)}.")
      written = _field(args)
  except UserInputError as error:
    fail(str(error))
  for path in written:
    print(path)


if __name__ == "__main__":
  main()
