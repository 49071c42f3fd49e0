"""Detection over a list of image files: the annotated copies' names, one record per image, and the
detections.json payload (`detect`'s work, usable without the CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_bytes, read_image
from overfeat_edge.pipeline.cascade import active_stages
from overfeat_edge.pipeline.detector import Detector
from overfeat_edge.pipeline.preprocess import to_bgr8
from overfeat_edge.pipeline.pyramid import ImageTooSmall
from overfeat_edge.records import frame_record
from overfeat_edge.types import Detections


def annotated_names(paths: list[Path], out: Path) -> dict[Path, Path]:
    """Each input's annotated copy in ``out``: ``<stem>.jpg`` (``.png`` for a PNG: lossless stays lossless),
    numbered (``<stem>-2.jpg``) where two inputs share a stem or the name is an input itself, so no output
    replaces an input or another."""
    inputs = {p.resolve() for p in paths}
    names: dict[Path, Path] = {}
    taken: set[Path] = set()
    for p in paths:
        ext = ".png" if p.suffix.lower() == ".png" else ".jpg"
        k, cand = 1, out / f"{p.stem}{ext}"
        while cand.resolve() in inputs or cand.resolve() in taken:
            k += 1
            cand = out / f"{p.stem}-{k}{ext}"
        names[p] = cand
        taken.add(cand.resolve())
    return names


def detect_images(
    det: Detector,
    paths: list[Path],
    *,
    annotated: dict[Path, Path] | None = None,
    on_image: Callable[[Path, Detections, float], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """``det`` on each image in ``paths``: (one record per image read, the paths that could not be).

    ``annotated`` (from `annotated_names`) writes an annotated copy of each image there; ``on_image``
    hears (path, detections, milliseconds) per image, ``on_skip`` one line per image skipped (unreadable,
    or smaller than the model's window). The runners are activated once for every image."""
    from overfeat_edge.pipeline.draw import draw_detections

    results: list[dict[str, Any]] = []
    failed: list[str] = []
    with det.runner, active_stages(det.steps):  # activated once for every image (a GPU backend allocates here)
        for i, path in enumerate(paths):
            frame = read_image(path)
            if frame is None:
                failed.append(str(path))
                if on_skip is not None:
                    on_skip(f"skipped: {path} is not a readable image (or too large)")
                continue
            frame = to_bgr8(frame)  # once: the detector and the overlay both take it as is
            t0 = time.perf_counter()
            try:
                d = det.detect(frame)
            except ImageTooSmall as exc:  # this image only: skipped and counted
                failed.append(str(path))
                if on_skip is not None:
                    on_skip(f"skipped: {path}: {exc}")
                continue
            ms = (time.perf_counter() - t0) * 1000
            d.metadata.update(stream=path.stem, file=str(path))
            extra: dict[str, Any] = {"image": str(path), **({"annotated": str(annotated[path])} if annotated else {})}
            extra.update(height=int(frame.shape[0]), width=int(frame.shape[1]), time_ms=round(ms, 2))
            results.append(frame_record(i, float(i), d, det.spec.class_names, extra))
            if annotated:
                ok, buf = cv2.imencode(annotated[path].suffix, draw_detections(frame, d, det.spec.class_names))
                if not ok:
                    raise InputError(f"cannot encode the annotated {path}")
                atomic_write_bytes(annotated[path], buf.tobytes())
            if on_image is not None:
                on_image(path, d, ms)
    return results, failed


def detections_payload(model: str, det: Detector, results: list[dict[str, Any]]) -> dict[str, Any]:
    """detections.json: the model, backend, precision, pyramid and merge used, and the images' records."""
    return {
        "model": model,
        "backend": det.runner.describe(),
        "precision": det.runner.precision,
        "scales": [str(s) for s in det.scales],
        "fine_stride": det.spec.fine_stride,
        "merge": det.config.merge,
        "images": results,
    }
