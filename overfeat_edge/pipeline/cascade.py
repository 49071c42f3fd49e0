"""[no torch] A cascade's crop classifiers: the steps after a detector's merge (MTCNN's R-Net, O-Net).

A cascade is described in its detector's spec (``spec.extra["cascade"]``), so the same runtime
serves any cascade of this kind: each stage names its network (an ONNX beside the detector's, or
its engine), its threshold and its NMS. For each stage, per frame:

1. the incoming boxes are made square (about their centre, side = the longer side);
2. each is cropped from the frame (clipped to the image, MTCNN's way: integer corners, the
   part inside the frame), resized to the stage's input (area), normalized with the stage's spec;
3. all crops go through the network in one batch (one inference per stage per frame);
4. boxes scoring above the threshold are kept, with the stage's score as their score; with
   ``landmarks``, the five points are placed in the square box (x, y = side * p + corner - 1);
5. NMS (IoU, or over the smaller box: ``overlap="min"``) before or after
6. the box regression: ``x1 += r0 * w`` ... with ``w = x2 - x1 + 1`` (MTCNN's pixel convention).

Stage scores are kept per box in ``data`` (``<stage>_score``), landmarks as ``data["landmarks"]``
(N, 5, 2) in image pixels.

The stages' runners run in the thread that refines (a loop's post worker): :func:`active_stages`
holds them activated for that worker's life, as the inference worker holds the detector's runner,
so a GPU stage makes its contexts and buffers once, not per frame and stage (freeing device memory
synchronizes the device and stalls the detector's queued work).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.errors import ModelError
from overfeat_edge.pipeline.detector import Step, require_outputs
from overfeat_edge.pipeline.merge import nms
from overfeat_edge.pipeline.preprocess import adaptive_normalized, integral, normalize_batch, resize, resize_method
from overfeat_edge.runtime.base import Runner
from overfeat_edge.types import Detections


@dataclass(frozen=True)
class StageSpec:
    """One crop classifier of a cascade, as stored in the detector's spec."""

    name: str
    file: str  # its ONNX, beside the detector's
    threshold: float  # keep boxes scoring above this
    nms: float
    overlap: str = "iou"  # "iou" or "min"
    nms_after_regression: bool = False
    landmarks: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str) -> StageSpec:
        try:
            s = cls(
                name=str(d["name"]),
                file=str(d["file"]),
                threshold=float(d["threshold"]),
                nms=float(d["nms"]),
                overlap=str(d.get("overlap", "iou")),
                nms_after_regression=bool(d.get("nms_after_regression", False)),
                landmarks=bool(d.get("landmarks", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: malformed cascade stage {d!r} ({type(exc).__name__}: {exc})") from None
        if s.overlap not in ("iou", "min") or not 0 <= s.threshold <= 1 or not 0 < s.nms <= 1:
            raise ModelError(f"{source}: cascade stage {s.name} has out-of-range values: {asdict(s)}")
        if "/" in s.file or "\\" in s.file or s.file.startswith("."):
            raise ModelError(f"{source}: cascade stage file must be a plain file name beside the model, got {s.file!r}")
        return s


def cascade_stages(extra: dict[str, Any], source: str) -> list[StageSpec]:
    """The crop stages a spec names (none for a plain detector)."""
    cascade = extra.get("cascade")
    if cascade is None:
        return []
    if not isinstance(cascade, dict) or not isinstance(cascade.get("stages"), list):
        raise ModelError(f"{source}: the cascade spec must be an object with a 'stages' list")
    return [StageSpec.from_dict(d, source) for d in cascade["stages"]]


def square(xyxy: np.ndarray) -> np.ndarray:
    """Boxes made square about their centre (side = the longer side), MTCNN's ``rerec``."""
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    side = np.maximum(w, h)
    x1 = xyxy[:, 0] + w * 0.5 - side * 0.5
    y1 = xyxy[:, 1] + h * 0.5 - side * 0.5
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def crop_regions(xyxy: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) integer (x0, y0, x1, y1) pixel ranges [x0, x1) x [y0, y1) of each box inside the image.

    MTCNN's convention: corners truncated to integers and read 1-based, so the range starts one
    pixel before the box's truncated corner (clamped to the image) and ends at its truncated far
    corner (clamped). A box wholly outside gives an empty range.
    """
    h, w = image_hw
    t = np.trunc(xyxy).astype(np.int64)
    x0 = np.maximum(t[:, 0], 1) - 1
    y0 = np.maximum(t[:, 1], 1) - 1
    x1 = np.minimum(t[:, 2], w)
    y1 = np.minimum(t[:, 3], h)
    return np.stack([x0, y0, x1, y1], axis=1)


def regress(xyxy: np.ndarray, reg: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """MTCNN's box regression: each edge moves by its offset times the box's size (+ 1 pixel after
    R-Net and O-Net; P-Net's cells use the plain size)."""
    one = 1.0 if plus_one else 0.0
    w = xyxy[:, 2] - xyxy[:, 0] + one
    h = xyxy[:, 3] - xyxy[:, 1] + one
    return xyxy + reg * np.stack([w, h, w, h], axis=1)


class DetectorRegression:
    """The detector's own offsets (``data[output]``, from a head of its own), applied after its merge."""

    def __init__(self, output: str, plus_one: bool) -> None:
        self.output, self.plus_one = output, plus_one

    def __call__(self, frame_bgr: np.ndarray, det: Detections) -> Detections:
        if self.output not in det.data:
            raise ModelError(f"the cascade applies the detector's {self.output!r} output, which it does not have")
        data = dict(det.data)
        reg = data.pop(self.output).astype(np.float64)
        xyxy = regress(det.xyxy.astype(np.float64), reg, self.plus_one)
        return Detections(xyxy, det.score, det.class_id, det.tracker_id, data, det.metadata)


class CropStage:
    """One stage as a detector step: (frame, detections) -> the detections it keeps."""

    def __init__(self, runner: Runner, spec: StageSpec) -> None:
        self.runner, self.spec = runner, spec
        self.size = runner.spec.arch.window
        self.resize = resize_method(runner.spec)

    def crops(self, frame_bgr: np.ndarray, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3, size, size) normalized crops of the non-empty boxes, and the boxes' indices."""
        regions = crop_regions(xyxy, frame_bgr.shape[:2])
        ok = np.flatnonzero((regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1]))
        if self.resize == "adaptive":  # every crop from one integral image, in one go
            return adaptive_normalized(integral(frame_bgr), regions[ok], (self.size, self.size), self.runner.spec), ok
        patches = np.zeros((len(ok), self.size, self.size, 3), np.float32)
        for j, (x0, y0, x1, y1) in enumerate(regions[ok]):
            patches[j] = resize(frame_bgr[y0:y1, x0:x1].astype(np.float32), (self.size, self.size))
        return normalize_batch(patches, self.runner.spec), ok

    def __call__(self, frame_bgr: np.ndarray, det: Detections) -> Detections:
        if len(det) == 0:
            return det
        boxes = square(det.xyxy.astype(np.float64))
        batch, ok = self.crops(frame_bgr, boxes)
        if len(ok) == 0:
            return det[np.zeros(0, np.int64)]
        step = self.runner.max_batch or len(batch)  # an engine's profile caps the batch: run in chunks
        parts = [
            require_outputs(self.runner.run(batch[i : i + step]), self.spec.name) for i in range(0, len(batch), step)
        ]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        n = len(ok)
        score = out["scores"].reshape(n, -1)[:, 1].astype(np.float32)
        reg = out["boxes"].reshape(n, 4).astype(np.float64)
        keep = score > self.spec.threshold
        idx, boxes, score, reg = ok[keep], boxes[ok][keep], score[keep], reg[keep]
        data = {k: v[idx] for k, v in det.data.items()}
        data[f"{self.spec.name}_score"] = score
        if self.spec.landmarks:
            if "landmarks" not in out:
                raise ModelError(f"cascade stage {self.spec.name} has no 'landmarks' output")
            p = out["landmarks"].reshape(n, 10)[keep].astype(np.float64)
            side = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
            xs = side * p[:, :5] + boxes[:, :1] - 1
            ys = (boxes[:, 3] - boxes[:, 1] + 1)[:, None] * p[:, 5:] + boxes[:, 1:2] - 1
            data["landmarks"] = np.stack([xs, ys], axis=2).astype(np.float32)
        tracker = None if det.tracker_id is None else det.tracker_id[idx]
        if self.spec.nms_after_regression:
            kept = Detections(regress(boxes, reg), score, det.class_id[idx], tracker, data, dict(det.metadata))
            return nms(kept, self.spec.nms, self.spec.overlap)
        data["regression"] = reg  # rides through the NMS with its box
        kept = nms(
            Detections(boxes, score, det.class_id[idx], tracker, data, dict(det.metadata)),
            self.spec.nms,
            self.spec.overlap,
        )
        reg = kept.data.pop("regression")
        return Detections(
            regress(kept.xyxy.astype(np.float64), reg),
            kept.score,
            kept.class_id,
            kept.tracker_id,
            kept.data,
            kept.metadata,
        )


@contextmanager
def active_stages(steps: Sequence[Step]) -> Iterator[None]:
    """Every cascade stage's runner in ``steps`` activated in this thread until the block ends (one
    lifecycle for every runner of a worker); a no-op for a plain detector."""
    with ExitStack() as stack:
        for step in steps:
            if isinstance(step, CropStage):
                stack.enter_context(step.runner)
        yield


def with_active_stages(work: Callable[[], None], steps: Sequence[Step]) -> Callable[[], None]:
    """``work`` (a worker thread's body) run inside :func:`active_stages` of ``steps``."""

    def run() -> None:
        with active_stages(steps):
            work()

    return run


def load_stages(detector: Runner, backend: str, **options: Any) -> list[Step]:
    """The crop stages the detector's spec names, each loaded in ``backend`` from its file beside
    the detector's model file (``rnet.onnx`` beside ``model.onnx``), or where the backend's
    descriptor says (``stage_model``; TensorRT: the stage's engine that ``build`` put beside the
    detector's, ``fp16-480x640-1a2b3c4d.rnet.engine``)."""
    stages = cascade_stages(detector.spec.extra, detector.describe())
    regression = detector.spec.extra.get("cascade", {}).get("regression")
    out: list[Step] = []
    if regression is not None:
        out.append(DetectorRegression(str(regression["output"]), bool(regression.get("plus_one", False))))
    if not stages:
        return out
    from overfeat_edge.runtime import descriptor, load_runner

    d = descriptor(backend)
    folder = getattr(detector, "path", None)
    if d.stage_model is None and folder is None:
        raise ModelError(
            f"{detector.describe()}: a cascade's stages are found beside the model file; this backend has none"
        )
    model = str(folder if folder is not None else getattr(detector, "model", ""))
    for st in stages:
        # where the descriptor says (TensorRT: the stage's engine beside the detector's; Triton: the
        # served mtcnn-face-rnet), else the stage's ONNX file beside the detector's
        target = d.stage_model(model, st.name) if d.stage_model is not None else str(Path(model).parent / st.file)
        if d.spec_source == "onnx" and not Path(target).is_file():
            raise ModelError(f"the cascade's {st.name} stage is missing: {target}")
        runner = load_runner(backend, target, **options)
        if runner.spec.arch.num_classes != detector.spec.arch.num_classes:
            raise ModelError(f"{target}: the {st.name} stage has other classes than the detector")
        out.append(CropStage(runner, st))
    return out
