"""detect: images in, annotated images and a JSON file of detections out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import cv2
import typer
from typing_extensions import Annotated

from overfeat_edge.commands.backend_options import backend_options
from overfeat_edge.commands.common import (
    BackendOption,
    MinSize,
    ScaleFactor,
    Scales,
    Threshold,
    check_output,
    check_outputs,
    command,
    console,
    err_console,
    expand_images,
    pyramid,
)
from overfeat_edge.commands.demo import DEMO_MODEL
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_bytes, atomic_write_text, read_image
from overfeat_edge.pipeline.cascade import active_stages
from overfeat_edge.pipeline.detector import DetectorConfig
from overfeat_edge.pipeline.load import describe, load_detector
from overfeat_edge.pipeline.preprocess import to_bgr8
from overfeat_edge.records import frame_record
from overfeat_edge.words import plural

MODEL_SUFFIXES = (".onnx", ".pt", ".pth", ".ckpt", ".engine", ".plan")


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


@backend_options()
def detect(
    images: Annotated[List[str], typer.Argument(help="Image files, folders or globs.")],
    model: Annotated[str, typer.Option(help="A shipped model's name, an .onnx or an .engine.")] = DEMO_MODEL,
    out: Annotated[Path, typer.Option(help="Folder for annotated images and detections.json.")] = Path("runs/detect"),
    backend: BackendOption = "auto",
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    threshold: Threshold = None,
    merge: Annotated[Optional[str], typer.Option(help="greedy (OverFeat's) or nms (default: the model's).")] = None,
    merge_threshold: Annotated[float, typer.Option(help="greedy: merge pairs matching at most this.")] = 0.5,
    nms_iou: Annotated[Optional[float], typer.Option(help="nms: IoU above which a box is suppressed.")] = None,
    top_k_classes: Annotated[Optional[int], typer.Option(help="Keep the k best classes per scale (paper).")] = None,
    min_score: Annotated[
        Optional[float], typer.Option(help="Drop merged boxes scoring below this (greedy: a sum).")
    ] = None,
    save_images: Annotated[
        bool, typer.Option("--save-images/--no-save-images", help="An annotated copy of each image in OUT.")
    ] = True,
    options: Optional[Dict[str, Any]] = None,
) -> None:
    """Detect objects in images with the multi-scale pyramid, fine stride and box merging.

    Example: overfeat-edge detect photos/ --out runs/detect
    """
    scales = pyramid(scales, min_size, scale_factor)
    from overfeat_edge.pipeline.draw import draw_detections
    from overfeat_edge.pipeline.pyramid import ImageTooSmall

    models = [i for i in images if Path(i).suffix.lower() in MODEL_SUFFIXES]
    if models:  # `detect m.pt`: a model where images go
        raise InputError(f"{models[0]} is a model, not an image: give it as --model {models[0]} and images after")
    paths = expand_images(images)
    check_output(out, "--out", folder=True)
    annotated = annotated_names(paths, out) if save_images else {}
    check_outputs({"detections.json": out / "detections.json"}, paths)
    config = DetectorConfig(
        scales=scales or [],
        threshold=threshold,
        merge=merge,
        merge_threshold=merge_threshold,
        nms_iou=nms_iou,
        top_k_classes=top_k_classes,
        min_score=min_score,
    )
    det = load_detector(model, backend=backend, config=config, **(options or {}))
    console.print(describe(det, model), soft_wrap=True)
    spec = det.spec
    out.mkdir(parents=True, exist_ok=True)
    results, failed = [], []
    with det.runner, active_stages(det.steps):  # activated once for every image (a GPU backend allocates here)
        for i, path in enumerate(paths):
            frame = read_image(path)
            if frame is None:
                failed.append(str(path))
                err_console.print(f"skipped: {path} is not a readable image (or too large)", style="yellow")
                continue
            frame = to_bgr8(frame)  # once: the detector and the overlay both take it as is
            t0 = time.perf_counter()
            try:
                d = det.detect(frame)
            except ImageTooSmall as exc:  # this image only: skipped and counted
                failed.append(str(path))
                err_console.print(f"skipped: {path}: {exc}", style="yellow", soft_wrap=True)
                continue
            ms = (time.perf_counter() - t0) * 1000
            d.metadata.update(stream=path.stem, file=str(path))
            extra: dict[str, Any] = {"image": str(path), **({"annotated": str(annotated[path])} if save_images else {})}
            extra.update(height=int(frame.shape[0]), width=int(frame.shape[1]), time_ms=round(ms, 2))
            results.append(frame_record(i, float(i), d, spec.class_names, extra))
            if save_images:
                ok, buf = cv2.imencode(annotated[path].suffix, draw_detections(frame, d, spec.class_names))
                if not ok:
                    raise InputError(f"cannot encode the annotated {path}")
                atomic_write_bytes(annotated[path], buf.tobytes())
            console.print(f"{path}: {plural(len(d), 'detection')} in {ms:.1f} ms")
    if not results:  # nothing detected on: the previous detections.json (if any) stays as it was
        raise InputError(f"none of the {plural(len(paths), 'input')} could be read as an image (first: {failed[0]})")
    payload = {
        "model": model,
        "backend": det.runner.describe(),
        "precision": det.runner.precision,
        "scales": [str(s) for s in det.scales],
        "fine_stride": spec.fine_stride,
        "merge": det.config.merge,
        "images": results,
    }
    atomic_write_text(out / "detections.json", json.dumps(payload, indent=1, allow_nan=False))
    drawn = f" and {plural(len(results), 'annotated image')}" if save_images else ""
    console.print(f"wrote {out / 'detections.json'}{drawn}")
    if failed:
        raise InputError(f"{len(failed)} of {plural(len(paths), 'image')} could not be read (first: {failed[0]})")


def register(app: typer.Typer) -> None:
    command(app, detect)
