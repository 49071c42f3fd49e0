"""Shared console objects and option helpers for the commands."""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from typing_extensions import Annotated, get_type_hints

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES
from overfeat_edge.stream.control import close_all  # noqa: F401 - used by the commands
from overfeat_edge.validate import check_number, check_output, check_outputs  # noqa: F401 - the commands' validators

# markup off: paths and messages may hold [brackets] (e.g. "overfeat-edge[torch]"); to a file or a
# pipe, wide lines (rich would wrap at 80 columns there, splitting paths)
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 250)
err_console = Console(stderr=True, markup=False, highlight=False, width=None if sys.stderr.isatty() else 250)


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


Scales = Annotated[Optional[List[str]], typer.Option("--scales", "-s", help="Pyramid (default: the model's).")]
Threshold = Annotated[
    Optional[float], typer.Option(help="Per-window class probability to keep a box (default: the model's).")
]
MinSize = Annotated[
    Optional[int],
    typer.Option("--min-size", help="MTCNN-style pyramid: the smallest object to find, in pixels (e.g. 20)."),
]
ScaleFactor = Annotated[
    Optional[float], typer.Option("--scale-factor", help="MTCNN-style pyramid: size ratio between levels (0.709).")
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
    """A new command: nothing said yet about what it keeps."""
    _KEPT.clear()


def kept() -> str:
    return _KEPT[0] if _KEPT else "no output was left half-written"


def command(app: typer.Typer, fn: Callable[..., Any], name: str | None = None) -> None:
    """Register ``fn`` as a command with its annotations evaluated. Typer reads a command's
    ``Annotated[..., typer.Option(...)]`` as objects, and before Python 3.10 it does not evaluate the
    strings that ``from __future__ import annotations`` leaves (JetPack 5 runs Python 3.8)."""
    fn.__annotations__ = get_type_hints(fn, include_extras=True)
    app.command(name)(fn)


BackendOption = Annotated[
    str,
    typer.Option(
        help="auto (the fastest CPU backend installed, measured once per model and machine), onnxruntime, "
        "openvino, torch, or tensorrt (an .engine)."
    ),
]
OvPrecision = Annotated[
    Optional[str], typer.Option(help="openvino: f32, bf16 or f16 (default: the device's own, bf16 on AMX CPUs).")
]
OvDevice = Annotated[Optional[str], typer.Option(help="openvino: CPU (default), GPU (an Intel iGPU) or NPU.")]
