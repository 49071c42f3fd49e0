"""The small validated objects handed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from overfeat_edge.errors import InputError


@dataclass
class Detections:
    """Boxes in image pixels.

    xyxy: (N, 4) float32, ``(x1, y1, x2, y2)`` with x2 >= x1, y2 >= y1, in original-image pixels
    (x right, y down, origin at the top-left corner of the top-left pixel).
    score: (N,) float32 confidence. class_id: (N,) int64, an index into the spec's class names.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32)
        self.score = np.asarray(self.score, dtype=np.float32)
        self.class_id = np.asarray(self.class_id, dtype=np.int64)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise InputError(f"xyxy must be of shape (_, 4), but got shape {self.xyxy.shape}")
        n = len(self.xyxy)
        if self.score.shape != (n,):
            raise InputError(f"score must be of shape ({n},), but got shape {self.score.shape}")
        if self.class_id.shape != (n,):
            raise InputError(f"class_id must be of shape ({n},), but got shape {self.class_id.shape}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(self.xyxy[index], self.score[index], self.class_id[index])

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
        )

    def sorted(self) -> Detections:
        """Highest score first (stable)."""
        return self[np.argsort(-self.score, kind="stable")]

    def to_records(self, class_names: tuple[str, ...] | list[str]) -> list[dict[str, object]]:
        return [
            {
                "class_id": int(c),
                "class": class_names[int(c)] if 0 <= int(c) < len(class_names) else str(int(c)),
                "score": round(float(s), 5),
                "box": [round(float(v), 2) for v in b],
            }
            for b, s, c in zip(self.xyxy, self.score, self.class_id, strict=True)
        ]


@dataclass(frozen=True)
class ScaleLevel:
    """One pyramid level: the network input size and how it maps back to the image.

    ``input_hw`` is the resized image (network input) size; ``scale_yx`` is input / original
    per axis; ``prepool_hw`` and ``out_hw`` are the sizes of the map entering the last pool and
    of the (interleaved, if fine) classifier output.
    """

    index: int
    input_hw: tuple[int, int]
    scale_yx: tuple[float, float]
    prepool_hw: tuple[int, int]
    out_hw: tuple[int, int]
