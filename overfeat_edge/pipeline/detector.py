"""The detector: pyramid -> runner -> decode -> merge for one frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.pipeline.decode import classify, decode_level
from overfeat_edge.pipeline.merge import MERGERS
from overfeat_edge.pipeline.preprocess import level_inputs, to_bgr8
from overfeat_edge.pipeline.pyramid import Scale, parse_scales, plan_levels
from overfeat_edge.runtime.base import Runner
from overfeat_edge.types import Detections, ScaleLevel


@dataclass
class DetectorConfig:
    """Post-processing choices. ``scales`` empty means the model's own default pyramid."""

    scales: list[str] = field(default_factory=list)
    threshold: float = 0.5
    merge: str = "greedy"
    merge_threshold: float = 0.5
    nms_iou: float = 0.5
    top_k_classes: int | None = None
    max_detections: int = 100
    min_score: float = 0.0  # after merging: greedy scores are summed window confidences, NMS's are one window's

    def __post_init__(self) -> None:
        if self.merge not in MERGERS:
            raise InputError(f"--merge must be one of {', '.join(MERGERS)}, got {self.merge!r}")
        if not 0 <= self.threshold <= 1:
            raise InputError(f"--threshold must be in [0, 1], got {self.threshold}")


class Detector:
    """Runs one model over a multi-scale pyramid and merges the boxes of every scale."""

    def __init__(self, runner: Runner, config: DetectorConfig | None = None) -> None:
        self.runner = runner
        self.spec = runner.spec
        self.config = config or DetectorConfig()
        items = self.config.scales or list(self.spec.scales) or [str(self.spec.arch.window)]
        self.scales: list[Scale] = parse_scales(items)
        self._plans: dict[tuple[int, int], list[ScaleLevel]] = {}

    def levels(self, image_hw: tuple[int, int]) -> list[ScaleLevel]:
        """The pyramid plan for an image size (cached: a video keeps one size)."""
        if image_hw not in self._plans:
            self._plans[image_hw] = plan_levels(self.spec.arch, self.spec.fine_stride, image_hw, self.scales)
        return self._plans[image_hw]

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[list[ScaleLevel], list[np.ndarray]]:
        """The pyramid plan of a BGR uint8 frame and the network input of every level."""
        levels = self.levels(frame_bgr.shape[:2])
        return levels, level_inputs(frame_bgr, levels, self.spec)

    def forward(self, inputs: list[np.ndarray], runner: Runner | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Raw maps of every level: [(scores (C', H, W), boxes (4C, H, W))], by ``runner`` or the detector's own."""
        runner = runner or self.runner
        with runner:  # a GPU backend makes its context current in this thread
            outs = runner.infer_many(inputs)
        return [(scores[0], boxes[0]) for scores, boxes in outs]

    def infer(self, frame: np.ndarray) -> tuple[list[ScaleLevel], list[tuple[np.ndarray, np.ndarray]]]:
        """Raw maps of every level: [(scores (C', H, W), boxes (4C, H, W))]."""
        levels, inputs = self.preprocess(to_bgr8(frame))
        return levels, self.forward(inputs)

    def postprocess(self, levels: list[ScaleLevel], maps: list[tuple[np.ndarray, np.ndarray]]) -> Detections:
        cfg = self.config
        raw = Detections.concat(
            [
                decode_level(s, b, lv, self.spec, cfg.threshold, cfg.top_k_classes)
                for lv, (s, b) in zip(levels, maps, strict=True)
            ]
        )
        if cfg.merge == "greedy":
            merged = MERGERS["greedy"](raw, cfg.merge_threshold)
        else:
            merged = MERGERS["nms"](raw, cfg.nms_iou)
        if cfg.min_score > 0:
            merged = merged[merged.score >= cfg.min_score]
        return merged[: cfg.max_detections]

    def detect(self, frame: np.ndarray) -> Detections:
        """Detections for one frame (H, W[, C]) in its own pixels, best first."""
        levels, maps = self.infer(frame)
        return self.postprocess(levels, maps)

    def classify(self, frame: np.ndarray, flips: bool = True, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Top-k classes over every scale (and its horizontal flip): spatial max, then mean."""
        frame = to_bgr8(frame)
        maps = [s for s, _ in self.infer(frame)[1]]
        if flips:
            maps += [s for s, _ in self.infer(np.ascontiguousarray(frame[:, ::-1]))[1]]
        return classify(maps, self.spec, top_k)
