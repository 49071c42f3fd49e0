"""The Typer app. Commands parse options and call the library, nothing else.

Every :class:`~overfeat_edge.errors.OverfeatEdgeError` becomes one ``error: ...`` line on stderr
and the error's exit code; Ctrl-C exits 130. No traceback reaches the user.
"""

from __future__ import annotations

import sys

import typer

from overfeat_edge.commands import bench, build, calibrate, data, demo, detect, doctor, model, train
from overfeat_edge.commands import run as run_command
from overfeat_edge.commands.common import err_console
from overfeat_edge.errors import OverfeatEdgeError

app = typer.Typer(
    name="overfeat-edge",
    help="OverFeat detectors on the edge: export, build engines, calibrate, detect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
demo.register(app)
model.register(app)
detect.register(app)
build.register(app)
doctor.register(app)
bench.register(app)
calibrate.register(app)
run_command.register(app)
data.register(app)
train.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising."""
    try:
        app(args=argv, prog_name="overfeat-edge", standalone_mode=False)
    except OverfeatEdgeError as exc:
        err_console.print(f"error: {exc}", style="bold red", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except typer.Exit as exc:  # --help and friends
        return int(exc.exit_code or 0)
    except typer.Abort:
        return 130
    except Exception as exc:  # usage errors of the click inside typer (vendored in typer >= 0.20)
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show(file=sys.stderr)
            return code
        raise
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
