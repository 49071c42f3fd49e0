"""Shared console objects and option helpers for the commands."""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES

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


MinSize = Annotated[
    int | None,
    typer.Option("--min-size", help="MTCNN-style pyramid: the smallest object to find, in pixels (e.g. 20)."),
]
ScaleFactor = Annotated[
    float | None, typer.Option("--scale-factor", help="MTCNN-style pyramid: size ratio between levels (0.709).")
]


def pyramid(scales: list[str] | None, min_size: int | None, scale_factor: float | None) -> list[str] | None:
    """``--scales``, or the geometric rule ``geo:MIN_SIZE:FACTOR`` from ``--min-size``/``--scale-factor``."""
    if min_size is None and scale_factor is None:
        return scales
    if scales:
        raise InputError("--scales and --min-size/--scale-factor are two ways to give the pyramid; give one")
    return [f"geo:{min_size if min_size is not None else 20}:{scale_factor if scale_factor is not None else 0.709}"]
