"""Shared console objects and option helpers for the commands."""

from __future__ import annotations

import glob
from pathlib import Path

from rich.console import Console

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES

# markup off: paths and messages may hold [brackets] (e.g. "overfeat-edge[torch]")
console = Console(markup=False, highlight=False)
err_console = Console(stderr=True, markup=False, highlight=False)


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
