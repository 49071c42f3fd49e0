"""Atomic writes: everything we write goes to a temporary name and is renamed when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# image files we read, by suffix (lower case): folders, globs and datasets all use this list
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:  # from here on: an interrupt (Ctrl-C) anywhere, even before the yield, removes the file
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_image(path: str | Path, flags: int | None = None) -> np.ndarray | None:
    """An image file as OpenCV reads it (``flags``: default ``IMREAD_UNCHANGED``), or None when it is
    not a readable image or is larger than ``overfeat_edge.MAX_PIXELS`` (its header is checked by
    OpenCV before it decodes: ``OPENCV_IO_MAX_IMAGE_PIXELS``)."""
    import cv2

    from overfeat_edge import MAX_PIXELS

    try:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if flags is None else flags)
    except (cv2.error, MemoryError):
        return None
    if img is None or img.shape[0] * img.shape[1] > MAX_PIXELS:
        return None
    return img
