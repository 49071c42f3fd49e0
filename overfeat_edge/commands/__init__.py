"""The Typer app. Commands parse options and call the library, nothing else.

Every :class:`~overfeat_edge.errors.OverfeatEdgeError` becomes one ``error: ...`` line on stderr
and the error's exit code; Ctrl-C exits 130. No traceback reaches the user.
"""

from __future__ import annotations

import signal
import sys
import threading

import typer
from typing_extensions import Annotated, get_type_hints

from overfeat_edge import __version__
from overfeat_edge.commands import backends, bench, build, calibrate, data, demo, detect, doctor, model, train
from overfeat_edge.commands import run as run_command
from overfeat_edge.commands.common import HelpGroup, console, err_console, forget, kept
from overfeat_edge.errors import OverfeatEdgeError
from overfeat_edge.io import release_all

app = typer.Typer(
    name="overfeat-edge",
    help="OverFeat detectors on the edge: export, build engines, calibrate, detect.\n\n"
    "Start with: overfeat-edge demo (a generated video through the whole pipeline on the CPU).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=HelpGroup,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"overfeat-edge {__version__}")
        raise typer.Exit()


def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."),
    ] = False,
) -> None:
    """OverFeat detectors on the edge: export, build engines, calibrate, detect."""


# evaluated first, as command() does for the commands: Typer before Python 3.10 does not read the
# strings that `from __future__ import annotations` leaves
_main.__annotations__ = get_type_hints(_main, include_extras=True)
app.callback()(_main)


demo.register(app)
model.register(app)
detect.register(app)
build.register(app)
doctor.register(app)
bench.register(app)
calibrate.register(app)
run_command.register(app)
backends.register(app)
data.register(app)
train.register(app)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a command as Ctrl-C does: temporary files removed, outputs closed


def _interrupted() -> int:
    err_console.print(f"interrupted: {kept()}", soft_wrap=True)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising. Ctrl-C and SIGTERM exit 130 with one
    line saying what was kept."""
    forget()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if main_thread else None
    try:
        rv = app(args=argv, prog_name="overfeat-edge", standalone_mode=False)
        if rv == 130:  # typer turns KeyboardInterrupt into an exit code of 130
            return _interrupted()
        return int(rv) if isinstance(rv, int) else 0
    except OverfeatEdgeError as exc:
        err_console.print(f"error: {exc}", style="bold red", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Exit as exc:  # --help and friends
        return int(exc.exit_code or 0)
    except typer.Abort:
        return _interrupted()
    except Exception as exc:  # usage errors of the click inside typer (vendored in typer >= 0.20)
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show(file=sys.stderr)
            return code
        raise
    finally:
        release_all()  # the output locks (the kernel drops them anyway when the process ends)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
