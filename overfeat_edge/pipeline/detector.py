"""The detector: pyramid -> runner -> decode -> merge for one frame, then optional steps.

Post-processing choices left at None take the model's own defaults (``spec.extra["detector"]``,
e.g. MTCNN's P-Net: threshold 0.6, NMS 0.5 within each level and 0.7 across levels), else
:data:`FALLBACK`. Steps run after the merge on (frame, detections): a cascade's crop classifiers
(:mod:`overfeat_edge.pipeline.cascade`), later tracking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Dict

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.pipeline.decode import classify, decode_level
from overfeat_edge.pipeline.merge import MERGERS, nms
from overfeat_edge.pipeline.preprocess import level_inputs, one_integral, to_bgr8
from overfeat_edge.pipeline.pyramid import Scale, parse_scales, plan_levels
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import Runner
from overfeat_edge.schema import check_number
from overfeat_edge.types import Detections, ScaleLevel

# post-processing defaults for a model whose spec names none
FALLBACK: dict[str, Any] = {
    "threshold": 0.5,
    "merge": "greedy",
    "nms_iou": 0.5,
    "min_score": 0.0,
    "level_nms": None,
    "max_detections": 100,
    "floor_boxes": False,
}

Step = Callable[[np.ndarray, Detections], Detections]  # (BGR frame, detections) -> detections
Maps = Dict[str, np.ndarray]  # one level's outputs by name, batch index dropped
DETECTOR_OUTPUTS = ("scores", "boxes")  # what a detector (and a crop stage) needs of its network


def require_outputs(outputs: dict[str, np.ndarray], source: str | Callable[[], str]) -> dict[str, np.ndarray]:
    """``outputs`` (a runner's, by name) unchanged if it has ``scores`` and ``boxes``; else one ModelError
    naming ``source`` (or what it returns: a runner's ``describe``, which may ask the device, is only
    called for the error)."""
    missing = [n for n in DETECTOR_OUTPUTS if n not in outputs]
    if missing:
        name = source if isinstance(source, str) else source()
        raise ModelError(
            f"{name}: a detector needs outputs {', '.join(DETECTOR_OUTPUTS)}; the network has {', '.join(outputs)}"
        )
    return outputs


@dataclass
class DetectorConfig:
    """Post-processing choices. ``scales`` empty means the model's own default pyramid; a None
    choice means the model's own default (see the module docstring)."""

    scales: list[str] = field(default_factory=list)
    threshold: float | None = None
    merge: str | None = None
    merge_threshold: float = 0.5
    nms_iou: float | None = None
    top_k_classes: int | None = None
    max_detections: int | None = None
    min_score: float | None = None  # after merging: greedy scores are summed window confidences, NMS's one window's
    level_nms: float | None = None  # NMS within each pyramid level before the merge (MTCNN's P-Net: 0.5)
    floor_boxes: bool | None = None  # boxes snapped down to whole pixels after decoding (MTCNN's cells)

    def __post_init__(self) -> None:
        if self.merge is not None and self.merge not in MERGERS:
            raise InputError(f"--merge must be one of {', '.join(MERGERS)}, got {self.merge!r}")
        for option, value, lo, hi in (
            ("--threshold", self.threshold, 0.0, 1.0),
            ("--merge-threshold", self.merge_threshold, 0.0, 10.0),
            ("--nms-iou", self.nms_iou, 0.0, 1.0),
            ("--min-score", self.min_score, 0.0, None),
            ("level NMS", self.level_nms, 0.0, 1.0),
        ):
            if value is not None:
                check_number(value, lo, hi, False, lambda e, o=option, v=value: InputError(f"{o} must be {e}, got {v}"))
        for option, count in (("--top-k-classes", self.top_k_classes), ("max detections", self.max_detections)):
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise InputError(f"{option} must be an integer >= 1, got {count}")

    def resolved(self, defaults: dict[str, Any]) -> DetectorConfig:
        """Every None choice filled from ``defaults`` (the model's), then :data:`FALLBACK`."""
        fill = {
            f.name: defaults.get(f.name, FALLBACK[f.name])
            for f in fields(self)
            if f.name in FALLBACK and getattr(self, f.name) is None
        }
        return replace(self, **fill)


class Detector:
    """Runs one model over a multi-scale pyramid and merges the boxes of every scale."""

    def __init__(
        self,
        runner: Runner,
        config: DetectorConfig | None = None,
        steps: Sequence[Step] | None = None,
        threads: int | None = None,
    ) -> None:
        self.runner = runner
        self.threads = threads  # the user's --threads: 1 keeps the pyramid's pooling in one thread too
        self.spec = runner.spec
        self.config = (config or DetectorConfig()).resolved(self.spec.extra.get("detector", {}))
        self.steps = list(steps or [])
        self.scales: list[Scale] = parse_scales(self.spec.pyramid(self.config.scales))
        self._plans: dict[tuple[int, int], list[ScaleLevel]] = {}

    def describe_pyramid(self) -> str:
        """``6 scales``, or the rule (``pyramid geo:20:0.709``) when the levels depend on the image."""
        if any(s.rule is not None for s in self.scales):
            return "pyramid " + ", ".join(map(str, self.scales))
        return f"{len(self.scales)} scales"

    def levels(self, image_hw: tuple[int, int]) -> list[ScaleLevel]:
        """The pyramid plan for an image size (cached: a video keeps one size)."""
        if image_hw not in self._plans:
            self._plans[image_hw] = plan_levels(self.spec.arch, self.spec.fine_stride, image_hw, self.scales)
        return self._plans[image_hw]

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[list[ScaleLevel], list[np.ndarray]]:
        """The pyramid plan of a BGR uint8 frame and the network input of every level."""
        levels = self.levels(frame_bgr.shape[:2])
        return levels, level_inputs(frame_bgr, levels, self.spec, self.threads)

    def forward(self, inputs: list[np.ndarray], runner: Runner | None = None) -> list[Maps]:
        """Raw maps of every level by output name (``scores`` (C', H, W), ``boxes`` (4C, H, W), and any
        extra head, e.g. (K, H, W)), by ``runner`` or the detector's own; batch index 0."""
        runner = runner or self.runner
        with runner:  # a GPU backend makes its context current in this thread
            outs = runner.run_levels(inputs)
        return [{name: v[0] for name, v in require_outputs(out, runner.describe).items()} for out in outs]

    def infer(self, frame: np.ndarray) -> tuple[list[ScaleLevel], list[Maps]]:
        """Raw maps of every level (see :meth:`forward`)."""
        levels, inputs = self.preprocess(to_bgr8(frame))
        return levels, self.forward(inputs)

    def postprocess(self, levels: list[ScaleLevel], maps: list[Maps]) -> Detections:
        """Decode, merge and cut one frame's maps. Non-finite maps or boxes (a broken model: a NaN or
        3e38 bias) are one :class:`ModelError`, checked once per frame, so nothing non-finite is written."""
        check_finite(maps)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught below, once, as a ModelError
            return self._postprocess(levels, maps)

    def _postprocess(self, levels: list[ScaleLevel], maps: list[Maps]) -> Detections:
        cfg = self.config
        assert cfg.threshold is not None and cfg.min_score is not None and cfg.nms_iou is not None  # resolved
        assert cfg.max_detections is not None
        per_level = [
            decode_level(
                m["scores"],
                m["boxes"],
                lv,
                self.spec,
                cfg.threshold,
                cfg.top_k_classes,
                {k: v for k, v in m.items() if k not in ("scores", "boxes")},
            )
            for lv, m in zip_strict(levels, maps)
        ]
        if cfg.floor_boxes:
            per_level = [Detections(np.floor(d.xyxy), d.score, d.class_id, data=d.data) for d in per_level]
        if cfg.level_nms is not None:
            per_level = [nms(d, cfg.level_nms) for d in per_level]
        raw = Detections.concat(per_level)
        if cfg.merge == "greedy":
            merged = MERGERS["greedy"](raw, cfg.merge_threshold)
        else:
            merged = MERGERS["nms"](raw, cfg.nms_iou)
        if cfg.min_score > 0:
            merged = merged[merged.score >= cfg.min_score]
        out = merged[: cfg.max_detections]
        if not (np.isfinite(out.xyxy).all() and np.isfinite(out.score).all()):
            raise ModelError("the model's boxes overflow to infinity or NaN once decoded; the model is broken")
        return out

    def refine(self, frame_bgr: np.ndarray, detections: Detections) -> Detections:
        """The steps after the merge (a cascade's crop classifiers), in order, sharing one integral image."""
        with one_integral(frame_bgr):
            for step in self.steps:
                detections = step(frame_bgr, detections)
        return detections

    def detect(self, frame: np.ndarray) -> Detections:
        """Detections for one frame (H, W[, C]) in its own pixels, best first."""
        frame = to_bgr8(frame)
        with one_integral(frame):  # the pyramid's and the crop stages' (an adaptive model's), computed once
            levels, maps = self.infer(frame)
            return self.refine(frame, self.postprocess(levels, maps))

    def classify(self, frame: np.ndarray, flips: bool = True, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Top-k classes over every scale (and its horizontal flip): spatial max, then mean."""
        frame = to_bgr8(frame)
        maps = [m["scores"] for m in self.infer(frame)[1]]
        if flips:
            maps += [m["scores"] for m in self.infer(np.ascontiguousarray(frame[:, ::-1]))[1]]
        return classify(maps, self.spec, top_k)


def check_finite(maps: list[Maps]) -> None:
    """Every output map of every level is finite, or one :class:`ModelError` naming the output."""
    for i, m in enumerate(maps):
        for name, v in m.items():
            if not np.isfinite(v).all():
                raise ModelError(f"the model's {name!r} output holds NaN or infinity (level {i}); the model is broken")
