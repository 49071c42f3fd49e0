"""The small validated objects handed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.pycompat import zip_strict


@dataclass
class Detections:
    """Boxes in image pixels.

    xyxy: (N, 4) float32, ``(x1, y1, x2, y2)`` with x2 >= x1, y2 >= y1, in original-image pixels
    (x right, y down, origin at the top-left corner of the top-left pixel).
    score: (N,) float32 confidence. class_id: (N,) int64, an index into the spec's class names.
    tracker_id: (N,) int64 identities across frames, or None.
    data: per-box arrays, each of length N (e.g. ``landmarks``: (N, 5, 2) float32 x, y in image
    pixels; a cascade stage's score: (N,)). metadata: per-frame facts (source name, frame index).
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

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
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64)
            if self.tracker_id.shape != (n,):
                raise InputError(f"tracker_id must be of shape ({n},), but got shape {self.tracker_id.shape}")
        self.data = {k: np.asarray(v) for k, v in self.data.items()}
        for k, v in self.data.items():
            if v.ndim == 0 or len(v) != n:
                raise InputError(f"data[{k!r}] must have {n} rows (one per box), but got shape {v.shape}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        """Boxes selected by a slice, an index array or a boolean mask (a bad key raises
        IndexError or TypeError, as numpy does: that is a programming error, not user input)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.score[index],
            self.class_id[index],
            None if self.tracker_id is None else self.tracker_id[index],
            {k: v[index] for k, v in self.data.items()},
            dict(self.metadata),
        )

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        """One set of boxes; per-box data only where every part has it, metadata of the first part."""
        if not parts:
            return cls.empty()
        keys = set.intersection(*(set(p.data) for p in parts))
        tracked = all(p.tracker_id is not None for p in parts)
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tracker_id for p in parts]) if tracked else None,  # type: ignore[misc]
            {k: np.concatenate([p.data[k] for p in parts]) for k in sorted(keys)},
            dict(parts[0].metadata),
        )

    def sorted(self) -> Detections:
        """Highest score first (stable)."""
        return self[np.argsort(-self.score, kind="stable")]

    def to_records(self, class_names: tuple[str, ...] | list[str]) -> list[dict[str, object]]:
        """One JSON-ready dict per box: class, score, box, and tracker id and per-box data if present."""
        out: list[dict[str, object]] = []
        for i, (b, s, c) in enumerate(zip_strict(self.xyxy, self.score, self.class_id)):
            rec: dict[str, object] = {
                "class_id": int(c),
                "class": class_names[int(c)] if 0 <= int(c) < len(class_names) else str(int(c)),
                "score": round(float(s), 5),
                "box": [float(v) for v in b],  # full precision: 2 decimals moved COCO mAP (eval --detections)
            }
            if self.tracker_id is not None:
                rec["tracker_id"] = int(self.tracker_id[i])
            for k, v in self.data.items():
                rec[k] = np.round(v[i].astype(np.float64), 2).tolist()
            out.append(rec)
        return out


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
