"""detect: images in, annotated images and a JSON file of detections out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import cv2
import typer
from typing_extensions import Annotated

from overfeat_edge.commands.common import (
    BackendOption,
    MinSize,
    OvDevice,
    OvPrecision,
    ScaleFactor,
    TritonShm,
    TritonUrl,
    check_output,
    check_outputs,
    command,
    console,
    err_console,
    expand_images,
    pyramid,
)
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_bytes, atomic_write_text, read_image
from overfeat_edge.pipeline.detector import DetectorConfig
from overfeat_edge.pipeline.load import describe, load_detector
from overfeat_edge.pipeline.preprocess import to_bgr8


def annotated_names(paths: list[Path], out: Path) -> dict[Path, Path]:
    """Each input's annotated copy in ``out``: ``<stem>.jpg``, numbered (``<stem>-2.jpg``) where two
    inputs share a stem or the name is an input itself, so no output replaces an input or another."""
    inputs = {p.resolve() for p in paths}
    names: dict[Path, Path] = {}
    taken: set[Path] = set()
    for p in paths:
        k, cand = 1, out / f"{p.stem}.jpg"
        while cand.resolve() in inputs or cand.resolve() in taken:
            k += 1
            cand = out / f"{p.stem}-{k}.jpg"
        names[p] = cand
        taken.add(cand.resolve())
    return names


def detect(
    images: Annotated[List[str], typer.Argument(help="Image files, folders or globs.")],
    model: Annotated[str, typer.Option(help="An exported .onnx, or a shipped model name.")],
    out: Annotated[Path, typer.Option(help="Folder for annotated images and detections.json.")] = Path("runs/detect"),
    backend: BackendOption = "auto",
    weights: Annotated[Optional[Path], typer.Option(help="torch backend: a checkpoint.")] = None,
    device: Annotated[Optional[str], typer.Option(help="torch backend: cpu or cuda.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads of the backend.")] = None,
    ov_precision: OvPrecision = None,
    ov_device: OvDevice = None,
    triton_url: TritonUrl = None,
    triton_shm: TritonShm = False,
    scales: Annotated[
        Optional[List[str]], typer.Option("--scales", "-s", help="Smallest sides (320), HxW, or 'paper'; repeatable.")
    ] = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(help="Per-window class probability to keep a box (default: the model's, else 0.5)."),
    ] = None,
    merge: Annotated[
        Optional[str], typer.Option(help="greedy (OverFeat) or nms (default: the model's, else greedy).")
    ] = None,
    merge_threshold: Annotated[float, typer.Option(help="greedy: merge pairs with match_score <= this.")] = 0.5,
    nms_iou: Annotated[Optional[float], typer.Option(help="nms: IoU above which a box is suppressed.")] = None,
    top_k_classes: Annotated[
        Optional[int], typer.Option(help="Keep only the k best classes per scale (paper).")
    ] = None,
    min_score: Annotated[
        Optional[float], typer.Option(help="Drop merged boxes scoring below this (greedy: summed).")
    ] = None,
    save_images: Annotated[bool, typer.Option("--save-images/--no-save-images")] = True,
) -> None:
    """Detect objects in images with the multi-scale pyramid, fine stride and box merging."""
    scales = pyramid(scales, min_size, scale_factor)
    from overfeat_edge.pipeline.draw import draw_detections

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
    det = load_detector(
        model,
        backend=backend,
        config=config,
        weights=str(weights) if weights else None,
        device=device,
        threads=threads,
        ov_precision=ov_precision,
        ov_device=ov_device,
        triton_url=triton_url,
        triton_shm=triton_shm,
    )
    console.print(describe(det, model), soft_wrap=True)
    spec = det.spec
    out.mkdir(parents=True, exist_ok=True)
    results, failed = [], []
    with det.runner:  # activated once for every image (a GPU backend allocates here)
        for path in paths:
            frame = read_image(path)
            if frame is None:
                failed.append(str(path))
                err_console.print(f"skipped: {path} is not a readable image (or too large)", style="yellow")
                continue
            frame = to_bgr8(frame)  # once: the detector and the overlay both take it as is
            t0 = time.perf_counter()
            d = det.detect(frame)
            ms = (time.perf_counter() - t0) * 1000
            results.append(
                {
                    "image": str(path),
                    **({"annotated": str(annotated[path])} if save_images else {}),
                    "height": int(frame.shape[0]),
                    "width": int(frame.shape[1]),
                    "time_ms": round(ms, 2),
                    "detections": d.to_records(spec.class_names),
                }
            )
            if save_images:
                ok, buf = cv2.imencode(".jpg", draw_detections(frame, d, spec.class_names))
                if not ok:
                    raise InputError(f"cannot encode the annotated {path}")
                atomic_write_bytes(annotated[path], buf.tobytes())
            console.print(f"{path}: {len(d)} detections in {ms:.1f} ms")
    payload = {
        "model": model,
        "backend": det.runner.describe(),
        "scales": [str(s) for s in det.scales],
        "fine_stride": spec.fine_stride,
        "merge": det.config.merge,
        "images": results,
    }
    atomic_write_text(out / "detections.json", json.dumps(payload, indent=1))
    console.print(f"wrote {out / 'detections.json'}" + (f" and {len(results)} annotated images" if save_images else ""))
    if failed:
        raise InputError(f"{len(failed)} of {len(paths)} images could not be read (first: {failed[0]})")


def register(app: typer.Typer) -> None:
    command(app, detect)
