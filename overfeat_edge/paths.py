"""[no torch] Names that become parts of a path, and paths derived under a root, checked in one place.

A stream name in ``{name}``, a model file's stem in ``calibrate``'s and ``build``'s folders: each is
one path component from a safe character set (letters, digits, ``.``, ``_``, ``-``), never ``.`` or
``..`` nor starting with a dot, at most :data:`MAX_NAME` characters; and a path derived from a root
is checked to stay under it (:func:`under`), so no name can write outside the folder chosen.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from overfeat_edge.errors import InputError

MAX_NAME = 64
_SAFE = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")


def is_safe_name(name: str) -> bool:
    return bool(_SAFE.fullmatch(name))


def safe_name(name: str, what: str) -> str:
    """``name`` as is when it is a safe path component, else one :class:`InputError` line."""
    if not is_safe_name(name):
        raise InputError(
            f"{what} {name[:80]!r} must be 1 to {MAX_NAME} letters, digits, '.', '_' or '-', not starting with "
            "'.' (it names files)"
        )
    return name


def slug(text: str) -> str:
    """A safe path component made from any text: ``NVIDIA Jetson AGX Orin`` -> ``nvidia-jetson-agx-orin``,
    ``..`` -> ``unknown``."""
    s = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:MAX_NAME].strip("-.")
    return s or "unknown"


def under(root: str | Path, path: str | Path, what: str) -> Path:
    """``path`` (derived from ``root``) when it stays under ``root`` once resolved, else :class:`InputError`."""
    real_root, real = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise InputError(f"{what} {path} would be outside {root}; refused")
    return Path(path)
