"""A cascade's crop stages (MTCNN's R-Net, O-Net) calibrated on the crops they really see.

The FP32 cascade runs on the calibration images with the pipeline's own steps: the detector's
pyramid, merge and regression (:meth:`Detector.preprocess`, :meth:`Detector.postprocess`), then,
stage by stage, the crops of the boxes that reach it (:meth:`CropStage.crops` of the squared
boxes, what the stage's ``__call__`` feeds its network) and the boxes it keeps for the next. Each
stage's crops calibrate its CPU Q/DQ flavour, ``<stem>.cpu.qdq.onnx`` (``rnet.cpu.qdq.onnx``), the
name :data:`~overfeat_edge.runtime.base.VARIANTS` looks for beside the stage's ``rnet.onnx``.

Shipped models are read-only package data, so the calibration folder becomes a model folder of
its own: the FP32 detector (``model.onnx``) and stages (``rnet.onnx``, ``onet.onnx``) are copied
beside the Q/DQ files, and ``--model <folder>/model.cpu.qdq.onnx`` (or ``<folder>/model.onnx
--precision int8``) loads all three networks at INT8. TensorRT builds a cascade's stages at FP16
from their FP32 ONNX (:func:`~overfeat_edge.engine.builder.prepare_stages`), so the stages get no
TensorRT flavour.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overfeat_edge.compare import Agreement
from overfeat_edge.engine.cache import sha256_file
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_path
from overfeat_edge.pipeline.cascade import CropStage, square
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.pipeline.load import load_detector
from overfeat_edge.runtime.base import Runner

MIN_CROPS = 16  # fewer crops than this and a stage's ranges mean nothing: an error
MAX_CROPS = 1024  # more are thinned evenly (the first stages keep hundreds of boxes per photo)
CROP_BATCH = 16  # crops per calibration input (one shape per group: the last batch is its own group)


@dataclass
class StageResult:
    """One stage's INT8 network against its FP32 network on the held-out images' crops."""

    name: str
    crops: int  # held-out crops scored
    cosine: dict[str, float]
    max_abs_error: dict[str, float]
    keep_agreement: float  # share of crops both keep or both drop (score above the stage's threshold)


def crop_stages(det: Detector) -> list[CropStage]:
    return [s for s in det.steps if isinstance(s, CropStage)]


def fp32_cascade(onnx: Path, scales: list[str], threads: int | None) -> Detector | None:
    """The model's FP32 cascade on ONNX Runtime (the reference), or None for a plain detector."""
    det = load_detector(str(onnx), backend="onnxruntime", config=DetectorConfig(scales=scales), threads=threads)
    return det if crop_stages(det) else None


def stage_crops(det: Detector, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each stage's normalized crops (n, 3, S, S) float32 over ``frames`` (BGR uint8), as the FP32
    cascade feeds them: the boxes the steps before it keep, squared and cropped by the stage."""
    found: dict[str, list[np.ndarray]] = {s.spec.name: [] for s in crop_stages(det)}
    for frame in frames:
        levels, inputs = det.preprocess(frame)
        d = det.postprocess(levels, det.forward(inputs))
        for step in det.steps:
            if isinstance(step, CropStage) and len(d):
                found[step.spec.name].append(step.crops(frame, square(d.xyxy.astype(np.float64)))[0])
            d = step(frame, d)
    sizes = {s.spec.name: s.size for s in crop_stages(det)}
    return {
        name: np.concatenate(parts) if parts else np.zeros((0, 3, sizes[name], sizes[name]), np.float32)
        for name, parts in found.items()
    }


def calibration_crops(det: Detector, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`stage_crops`, at most :data:`MAX_CROPS` per stage (evenly spread); too few for any
    stage (images without the objects) is one :class:`InputError` line."""
    crops = stage_crops(det, frames)
    before = det.spec.arch.name
    for step in crop_stages(det):
        n = len(crops[step.spec.name])
        if n < MIN_CROPS:
            what = " or ".join(det.spec.class_names[:3])
            raise InputError(
                f"--images: the cascade's {step.spec.name} stage gets {n} crops from the {len(frames)} calibration "
                f"images (it needs {MIN_CROPS}+: {before} keeps too few boxes, no {what} there); calibrate on images "
                "showing them"
            )
        before = step.spec.name
        if n > MAX_CROPS:
            crops[step.spec.name] = crops[step.spec.name][np.linspace(0, n - 1, MAX_CROPS).round().astype(int)]
    return crops


def stage_files(det: Detector) -> list[str]:
    """What a calibrated cascade's folder holds besides the detector's files: each stage's FP32
    ONNX and its CPU Q/DQ, and the FP32 detector as ``model.onnx``."""
    return ["model.onnx"] + [f for s in crop_stages(det) for f in (s.spec.file, cpu_qdq_name(s.spec.file))]


def cpu_qdq_name(file: str) -> str:
    """``rnet.onnx`` -> ``rnet.cpu.qdq.onnx`` (the name runtime.base's VARIANTS looks for first)."""
    return file[: -len(".onnx")] + ".cpu.qdq.onnx" if file.endswith(".onnx") else file + ".cpu.qdq.onnx"


def stages_digest(det: Detector) -> str:
    """The stages' ONNX files' hashes, for the calibration key (their ranges are theirs)."""
    text = ",".join(f"{s.spec.name}:{sha256_file(_path(s.runner))}" for s in crop_stages(det))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _path(runner: Runner) -> Path:
    return Path(getattr(runner, "path"))  # noqa: B009 - the ONNX Runtime runner's file (fp32_cascade's backend)


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def crop_groups(crops: np.ndarray) -> list[list[np.ndarray]]:
    """Crops in batches of :data:`CROP_BATCH`, grouped by batch shape (the calibrators stack one shape)."""
    batches = [crops[i : i + CROP_BATCH] for i in range(0, len(crops), CROP_BATCH)]
    full = [b for b in batches if len(b) == CROP_BATCH]
    return [g for g in (full, [b for b in batches if len(b) != CROP_BATCH]) if g]


def quantize_stages(
    dest: Path,
    det: Detector,
    crops: dict[str, np.ndarray],
    *,
    detector_onnx: Path,
    method: str,
    on_input: Callable[[], None] | None = None,
) -> list[Path]:
    """Each stage's CPU Q/DQ in ``dest`` from its crops, with the FP32 networks copied beside them
    (a model folder: see the module docstring); returns the Q/DQ files written."""
    from overfeat_edge.calibrate.quantize import Quantization, quantize_cpu

    dest.mkdir(parents=True, exist_ok=True)
    _copy(detector_onnx, dest / "model.onnx")
    written = []
    for step in crop_stages(det):
        onnx, stem = _path(step.runner), step.spec.file[: -len(".onnx")]
        _copy(onnx, dest / step.spec.file)
        qdq, ranges = dest / cpu_qdq_name(step.spec.file), dest / f"{stem}.ranges.cpu.json"
        groups = crop_groups(crops[step.spec.name])
        job = Quantization(onnx, step.runner.spec, [], [], method, on_frame=on_input)  # its inputs: the crops
        written.append(quantize_cpu(job, groups, qdq, ranges))
    return written


def score_stages(det: Detector, dest: Path, held: list[np.ndarray], threads: int | None) -> list[StageResult]:
    """Each stage's INT8 network (in ``dest``) against its FP32 one on the held-out images' crops
    (the FP32 cascade's, so both see the same inputs): output cosines, max |error|, keep agreement."""
    from overfeat_edge.runtime import load_runner

    crops = stage_crops(det, held)
    out = []
    for step in crop_stages(det):
        int8 = load_runner("onnxruntime", str(dest / cpu_qdq_name(step.spec.file)), threads=threads)
        x = crops[step.spec.name]
        agreement, same = None, 0
        for i in range(0, len(x), 64):
            got, want = int8.run(x[i : i + 64]), step.runner.run(x[i : i + 64])
            agreement = agreement or Agreement(tuple(want))
            agreement.add([got[n] for n in agreement.names], [want[n] for n in agreement.names])
            keep = [o["scores"].reshape(len(o["scores"]), -1)[:, 1] > step.spec.threshold for o in (got, want)]
            same += int((keep[0] == keep[1]).sum())
        cos = agreement.cosine() if agreement else {}
        err = agreement.max_abs_error if agreement else {}
        out.append(StageResult(step.spec.name, len(x), cos, err, same / len(x) if len(x) else 1.0))
    return out
