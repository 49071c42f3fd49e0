"""detect: images in, annotated images and a JSON file of detections out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

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
from overfeat_edge.io import atomic_write_text
from overfeat_edge.pipeline.detector import DetectorConfig
from overfeat_edge.pipeline.images import annotated_names, detect_images, detections_payload
from overfeat_edge.pipeline.load import describe, load_detector
from overfeat_edge.types import Detections
from overfeat_edge.words import plural

MODEL_SUFFIXES = (".onnx", ".pt", ".pth", ".ckpt", ".engine", ".plan")

# ---- detect's options ----------------------------------------------------------------------------
ImagesArg = Annotated[List[str], typer.Argument(help="Image files, folders or globs.")]
ModelOpt = Annotated[str, typer.Option(help="A shipped model's name, an .onnx or an .engine.")]
OutOpt = Annotated[Path, typer.Option(help="Folder for annotated images and detections.json.")]
MergeOpt = Annotated[Optional[str], typer.Option(help="greedy (OverFeat's) or nms (default: the model's).")]
MergeThresholdOpt = Annotated[float, typer.Option(help="greedy: merge pairs matching at most this.")]
NmsIouOpt = Annotated[Optional[float], typer.Option(help="nms: IoU above which a box is suppressed.")]
TopKClassesOpt = Annotated[Optional[int], typer.Option(help="Keep the k best classes per scale (paper).")]
MinScoreOpt = Annotated[Optional[float], typer.Option(help="Drop merged boxes scoring below this (greedy: a sum).")]
SaveImagesOpt = Annotated[
    bool, typer.Option("--save-images/--no-save-images", help="An annotated copy of each image in OUT.")
]


@backend_options()
def detect(
    images: ImagesArg,
    model: ModelOpt = DEMO_MODEL,
    out: OutOpt = Path("runs/detect"),
    backend: BackendOption = "auto",
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    threshold: Threshold = None,
    merge: MergeOpt = None,
    merge_threshold: MergeThresholdOpt = 0.5,
    nms_iou: NmsIouOpt = None,
    top_k_classes: TopKClassesOpt = None,
    min_score: MinScoreOpt = None,
    save_images: SaveImagesOpt = True,
    options: Optional[Dict[str, Any]] = None,
) -> None:
    """Detect objects in images with the multi-scale pyramid, fine stride and box merging.

    Example: overfeat-edge detect photos/ --out runs/detect
    """
    scales = pyramid(scales, min_size, scale_factor)
    models = [i for i in images if Path(i).suffix.lower() in MODEL_SUFFIXES]
    if models:  # `detect m.pt`: a model where images go
        raise InputError(f"{models[0]} is a model, not an image: give it as --model {models[0]} and images after")
    paths = expand_images(images)
    check_output(out, "--out", folder=True)
    annotated = annotated_names(paths, out) if save_images else None
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
    out.mkdir(parents=True, exist_ok=True)
    results, failed = detect_images(det, paths, annotated=annotated, on_image=_said, on_skip=_skipped)
    if not results:  # nothing detected on: the previous detections.json (if any) stays as it was
        raise InputError(f"none of the {plural(len(paths), 'input')} could be read as an image (first: {failed[0]})")
    payload = detections_payload(model, det, results)
    atomic_write_text(out / "detections.json", json.dumps(payload, indent=1, allow_nan=False))
    drawn = f" and {plural(len(results), 'annotated image')}" if save_images else ""
    console.print(f"wrote {out / 'detections.json'}{drawn}")
    if failed:
        raise InputError(f"{len(failed)} of {plural(len(paths), 'image')} could not be read (first: {failed[0]})")


def _said(path: Path, d: Detections, ms: float) -> None:
    console.print(f"{path}: {plural(len(d), 'detection')} in {ms:.1f} ms")


def _skipped(message: str) -> None:
    err_console.print(message, style="yellow", soft_wrap=True)


def register(app: typer.Typer) -> None:
    command(app, detect)
