"""Shared console objects and option helpers for the commands."""

from __future__ import annotations

import copy
import glob
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup
from typer.models import OptionInfo, ParameterInfo
from typing_extensions import Annotated, get_args, get_origin, get_type_hints

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES
from overfeat_edge.stream.control import close_all  # noqa: F401 - used by the commands
from overfeat_edge.validate import check_number, check_output, check_outputs, when_stdout_is_output  # noqa: F401

# markup off: paths and messages may hold [brackets] (e.g. "overfeat-edge[torch]"); to a file or a
# pipe, wide lines (rich would wrap at 80 columns there, splitting paths)
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 250)
err_console = Console(stderr=True, markup=False, highlight=False, width=None if sys.stderr.isatty() else 250)
when_stdout_is_output(lambda: setattr(console, "stderr", True))  # until forget()


def expand_images(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths, in the order given."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"folder {p} has no images ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif p.is_file():
            out.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"no image matches {item!r}")
            out += found
        else:
            raise InputError(f"image not found: {item}")
    return out


Scales = Annotated[
    Optional[List[str]], typer.Option("--scales", "-s", help="Pyramid: sides (320), HxW or paper; repeatable.")
]
Threshold = Annotated[Optional[float], typer.Option(help="Window probability to keep a box (default: the model's).")]
MinSize = Annotated[
    Optional[int],
    typer.Option("--min-size", help="Geometric pyramid: the smallest object, in pixels (20)."),
]
ScaleFactor = Annotated[
    Optional[float], typer.Option("--scale-factor", help="Geometric pyramid: ratio between levels (0.709).")
]


def pyramid(scales: list[str] | None, min_size: int | None, scale_factor: float | None) -> list[str] | None:
    """``--scales``, or the geometric rule ``geo:MIN_SIZE:FACTOR`` from ``--min-size``/``--scale-factor``."""
    if min_size is None and scale_factor is None:
        return scales
    if scales:
        raise InputError("--scales and --min-size/--scale-factor are two ways to give the pyramid; give one")
    return [f"geo:{min_size if min_size is not None else 20}:{scale_factor if scale_factor is not None else 0.709}"]


# ---- what an interruption leaves behind ----------------------------------------------------------
_KEPT: list[str] = []


def keep(what: str) -> None:
    """Say what is kept if the command is interrupted now (the last call wins)."""
    _KEPT[:] = [what]


def forget() -> None:
    """A new command: nothing said yet about what it keeps, and our lines on stdout again."""
    _KEPT.clear()
    console.stderr = False


def kept() -> str:
    return _KEPT[0] if _KEPT else "no output was left half-written"


def command(app: typer.Typer, fn: Callable[..., Any], name: str | None = None) -> None:
    """Register ``fn`` as a command with its annotations evaluated. Typer reads a command's
    ``Annotated[..., typer.Option(...)]`` as objects, and before Python 3.10 it does not evaluate the
    strings that ``from __future__ import annotations`` leaves (JetPack 5 runs Python 3.8).
    Every parameter gets a word for its value and a help panel (:func:`dress`)."""
    hints = get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    defaults = {k: p.default for k, p in signature.parameters.items()}
    fn.__annotations__ = {k: dress(k, hint, defaults.get(k)) for k, hint in hints.items()}
    if hasattr(fn, "__signature__"):  # built by @backend_options: Typer reads the signature, not __annotations__
        params = [
            p.replace(annotation=fn.__annotations__.get(k, p.annotation)) for k, p in signature.parameters.items()
        ]
        fn.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    app.command(name, cls=HelpCommand)(fn)


def _backend_option() -> Any:
    from overfeat_edge.commands.backend_options import PANEL, backend_help

    return Annotated[str, typer.Option(help=backend_help(), rich_help_panel=PANEL)]


BackendOption = _backend_option()  # --backend; the backends' own options: commands/backend_options.py


# ---- help: panels, words for values ------------------------------------------------------------
INPUT_PANEL = "Input"
MODEL_PANEL = "Model and backend"
PYRAMID_PANEL = "Pyramid and merge"
OUTPUT_PANEL = "Outputs"
PERFORMANCE_PANEL = "Performance"
TRAINING_PANEL = "Training"
PANELS = (INPUT_PANEL, MODEL_PANEL, PYRAMID_PANEL, OUTPUT_PANEL, PERFORMANCE_PANEL, TRAINING_PANEL)

# The panel of an option declared without ``rich_help_panel=``, by its parameter's name; an option of
# a new name goes here (tests/commands/test_help.py finds any left in the catch-all "Options").
_PANEL_OF = {
    INPUT_PANEL: "images sources sources_file data eval_data holdout frames seed width height fps reconnects "
    "calib_images calib_count count limit files format classes names detections split",
    MODEL_PANEL: "model backend weights device ov_precision ov_device precision cuda_graphs num_classes fine_stride "
    "half fine_form trt_version method exclude frame_size dynamic batch dla workspace calib compare int8 backends "
    "check ablation triton_backend max_batch instances",
    PYRAMID_PANEL: "scales min_size scale_factor threshold merge merge_threshold nms_iou top_k_classes min_score "
    "track track_per_class",
    OUTPUT_PANEL: "out output jsonl save_frames save_images display stats_json json_out publish publish_buffer "
    "engines rebuild resume live_view max_frames duration triton",
    PERFORMANCE_PANEL: "threads workers",
    TRAINING_PANEL: "epochs steps_per_epoch batch_size lr box_weight hard_fraction mine_images",
}
PANEL_OF = {name: panel for panel, names in _PANEL_OF.items() for name in names.split()}

# What a value is, in a word, where its type alone says too little (else TEXT, N, NUMBER, PATH)
WORDS = {
    "model": "MODEL",
    "backend": "NAME",
    "scales": "SCALE",
    "merge": "greedy|nms",
    "frame_size": "HxW",
    "device": "DEVICE",
    "ov_device": "DEVICE",
    "ov_precision": "PRECISION",
    "precision": "PRECISION",
    "method": "METHOD",
    "publish": "URL",
    "format": "FORMAT",
    "batch": "N|MIN,OPT,MAX",
    "images": "IMAGES",
    "sources": "SOURCE",
    "files": "FILE",
    "names": "NAME",
    "exclude": "NODE",
    "fine_form": "FORM",
    "trt_version": "VERSION",
}
_TYPE_WORDS = {str: "TEXT", int: "N", float: "NUMBER", Path: "PATH"}


def _value_type(hint: Any) -> Any:
    """``Optional[List[int]]`` -> int: the type one value on the command line has."""
    while get_origin(hint) in (Union, list, List):
        hint = next(a for a in get_args(hint) if a is not type(None))
    return hint


def _default_words(info: OptionInfo, default: Any) -> str:
    """A default in the help text itself (typer would give it a line of its own at 80 columns)."""
    if default is None or default is inspect.Parameter.empty or default is ... or info.show_default is False:
        return ""
    if isinstance(default, bool):  # a --x/--no-x pair says which one is on; a lone flag is off
        decls = (info.default, *(info.param_decls or ()))  # in Annotated[...], typer reads a first str as a name
        names = [n for n in decls if isinstance(n, str) and "/" in n]
        return f"default: {names[0].split('/')[0 if default else 1]}" if names else ""
    return f"default: {default}"


def dress(param: str, hint: Any, default: Any = None) -> Any:
    """``hint`` (an ``Annotated[T, typer.Option(...)]``) with a copy of its option or argument given a word
    for its value (``--threads N``, not ``<int>``; none for a flag), a help panel, and its default at
    the end of its help text, unless the declaration gives them itself."""
    args = get_args(hint)
    found = [a for a in args[1:] if isinstance(a, ParameterInfo)]
    if not found:
        return hint
    info = copy.copy(found[0])  # an alias (Scales, BackendOption...) is shared by several commands
    kind = _value_type(args[0])
    if info.metavar is None:
        info.metavar = "" if kind is bool else WORDS.get(param) or _TYPE_WORDS.get(kind, "VALUE")
    if isinstance(info, OptionInfo):
        if info.rich_help_panel is None:
            info.rich_help_panel = PANEL_OF.get(param)
        words = _default_words(info, default)
        if words and "default" not in (info.help or ""):
            info.help = f"{info.help or ''} ({words})".strip()
        info.show_default = False
    return Annotated[args[0], info]


class _PlainHelpOption:
    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and option.metavar is None:
            option.metavar = ""  # typer 0.29 shows a flag's type: "--help <bool>"
        return option


class HelpGroup(_PlainHelpOption, TyperGroup):
    """The app and its sub-apps (``data``): ``--help`` without ``<bool>``."""


class HelpCommand(_PlainHelpOption, TyperCommand):
    """A command whose help shows words, not Python types: ``--help`` with no ``<bool>``, an argument
    named by its metavar alone (typer 0.29 prints the type, ``<list[str]>``, beside it), and the panels
    in the order of :data:`PANELS`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            if param.param_type_name == "argument" and param.metavar and hasattr(param, "display_type_rich"):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        given = list(self.params)
        order = {panel: k for k, panel in enumerate(PANELS)}  # panels in one order in every command
        self.params.sort(key=lambda p: order.get(getattr(p, "rich_help_panel", None) or "", len(order)))
        try:
            super().format_help(ctx, formatter)
        finally:
            self.params[:] = given
