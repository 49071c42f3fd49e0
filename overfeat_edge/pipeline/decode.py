"""Network maps -> detections in image pixels, and classification over scales.

Geometry: output location ``(y, x)`` of a level is the window whose top-left corner is at
``(y * out_stride, x * out_stride)`` in that level's input (``out_stride`` = stride / fine
factor with fine stride, stride without), of size ``window`` x ``window``. The regressor gives
each class's box edges relative to that corner in units of ``window``. Dividing by the level's
scale maps input pixels back to the original image.
"""

from __future__ import annotations

import numpy as np

from overfeat_edge.errors import ModelError
from overfeat_edge.spec import ModelSpec
from overfeat_edge.types import Detections, ScaleLevel


def class_probs(scores: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(C', H, W) scores -> (num_classes, H, W), dropping the background channel if any."""
    if scores.shape[0] != spec.arch.num_outputs:
        raise ModelError(f"scores must have {spec.arch.num_outputs} channels, but got shape {scores.shape}")
    return scores[1:] if spec.arch.background else scores


def window_origins(out_hw: tuple[int, int], out_stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corner (oy, ox) in level-input pixels of every output location, each (H, W)."""
    ys = np.arange(out_hw[0], dtype=np.float32) * out_stride
    xs = np.arange(out_hw[1], dtype=np.float32) * out_stride
    return np.meshgrid(ys, xs, indexing="ij")


def decode_level(
    scores: np.ndarray,
    boxes: np.ndarray,
    level: ScaleLevel,
    spec: ModelSpec,
    threshold: float = 0.5,
    top_k_classes: int | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Detections:
    """Detections of one level, in original-image pixels.

    scores: (C', H, W) probabilities; boxes: (4 * num_classes, H, W). Every (class, location)
    with probability >= ``threshold`` gives a box; with ``top_k_classes`` only the k classes
    with the highest spatial maximum are kept (the paper's C_s). ``extra`` maps (K, H, W) of
    further heads are read at each box's location into ``data[name]`` (n, K).
    """
    probs = class_probs(scores, spec)
    nc, h, w = probs.shape
    if boxes.shape != (4 * nc, h, w):
        raise ModelError(f"boxes must be of shape {(4 * nc, h, w)}, but got {boxes.shape}")
    keep = probs >= threshold
    if top_k_classes is not None and top_k_classes < nc:
        best = probs.reshape(nc, -1).max(axis=1)
        allowed = np.zeros(nc, bool)
        allowed[np.argsort(-best, kind="stable")[:top_k_classes]] = True
        keep &= allowed[:, None, None]
    cls, ys, xs = np.nonzero(keep)
    if len(cls) == 0:
        empty = {name: np.zeros((0, m.shape[0]), np.float32) for name, m in (extra or {}).items()}
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), data=empty)
    win = float(spec.arch.window)
    stride = spec.out_stride
    edges = boxes.reshape(nc, 4, h, w)[cls, :, ys, xs]  # (n, 4): x1, y1, x2, y2 relative
    ox = xs.astype(np.float32) * stride
    oy = ys.astype(np.float32) * stride
    sy, sx = level.scale_yx
    xyxy = np.stack(
        [
            (ox + edges[:, 0] * win) / sx,
            (oy + edges[:, 1] * win) / sy,
            (ox + edges[:, 2] * win) / sx,
            (oy + edges[:, 3] * win) / sy,
        ],
        axis=1,
    )
    # a regressor may swap edges; keep x1 <= x2, y1 <= y2
    xyxy = np.concatenate([np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], axis=1)
    data = {}
    for name, m in (extra or {}).items():
        if m.shape[1:] != (h, w):
            raise ModelError(f"output {name} must be of shape (_, {h}, {w}) like the scores, but got {m.shape}")
        data[name] = np.ascontiguousarray(m[:, ys, xs].T, dtype=np.float32)
    return Detections(xyxy, probs[cls, ys, xs], cls, data=data)


def window_boxes(level: ScaleLevel, spec: ModelSpec) -> np.ndarray:
    """(H, W, 4) the window of every output location in original-image pixels (x1, y1, x2, y2)."""
    oy, ox = window_origins(level.out_hw, spec.out_stride)
    win = spec.arch.window
    sy, sx = level.scale_yx
    return np.stack([ox / sx, oy / sy, (ox + win) / sx, (oy + win) / sy], axis=-1)


def classify(score_maps: list[np.ndarray], spec: ModelSpec, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Paper 4/Table 2 classification over scales and flips.

    For each map (one per scale and flip, each (C', H, W)), the spatial max of every class;
    then the mean over maps. Returns ``(top-k class ids, their mean scores)``, best first.
    """
    if not score_maps:
        raise ModelError("classify needs at least one score map")
    per_map = np.stack([class_probs(m, spec).reshape(spec.arch.num_classes, -1).max(axis=1) for m in score_maps])
    mean = per_map.mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:top_k]
    return order, mean[order]
