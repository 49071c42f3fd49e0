"""Training windows (paper section 4, non-spatial training): crops the size of the network's window.

A window is a square region of an image seen at some scale: ``side`` source pixels resized to the
network's ``window`` pixels, exactly as the runtime's pyramid resizes a frame (area averaging when
shrinking, bilinear when enlarging). Each window gets

* a class label: ``c + 1`` when an object of class ``c`` sits centred in it at a size the pyramid
  assigns to this window (positive), ``0`` (background) when no object comes close to that, and
  ``IGNORE`` in between (near misses that are neither, left out of the classification loss);
* a box target: the object's edges ``(x1, y1, x2, y2)`` relative to the window's top-left corner in
  units of the window, for windows that overlap an object enough (the box loss's mask).

Geometry of one object in a window, with ``r`` = longest object side / window side and ``d`` = the
larger of |dx|, |dy| between object and window centres, in window units:

* positive:   ``POS_SIZE[0] <= r <= POS_SIZE[1]`` and ``d <= POS_OFFSET``
* regression: ``REG_SIZE[0] <= r <= REG_SIZE[1]`` and ``d <= REG_OFFSET`` (a superset of positive)
* background: no object within the regression zone.

The positive size range spans more than the pyramid's scale step (0.76 for the demo model's six
scales), so every object is a positive at one scale or more, and neighbouring fine-stride windows
(8 px apart on a 59 px window: 0.14 window) all see it, which is what greedy merging adds up.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from overfeat_edge.pipeline.preprocess import normalize, resize
from overfeat_edge.spec import ModelSpec
from overfeat_edge.train.datasets import Sample

IGNORE = -1
POS_SIZE = (0.42, 1.05)
POS_OFFSET = 0.15
REG_SIZE = (0.32, 1.25)
REG_OFFSET = 0.25


@dataclass(frozen=True)
class WindowBatch:
    """``images`` (N, 3, window, window) float32 normalized; ``labels`` (N,) int64 (0 = background,
    ``IGNORE`` = left out); ``boxes`` (N, 4) float32 window units; ``box_class`` (N,) int64 class of
    the box target or -1 where there is none."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    box_class: np.ndarray


def assign(obj_boxes: np.ndarray, obj_labels: np.ndarray, window_xyxy: np.ndarray) -> tuple[int, np.ndarray, int]:
    """Label one window (source pixels ``(x1, y1, x2, y2)``, square) against the image's objects.

    Returns ``(label, box (4,) in window units, box_class)`` as described in the module docstring.
    """
    side = float(window_xyxy[2] - window_xyxy[0])
    label, box, box_class = 0, np.zeros(4, np.float32), -1
    if len(obj_boxes) == 0:
        return label, box, box_class
    rel = (obj_boxes - np.tile(window_xyxy[:2], 2)) / side  # (n, 4) window units
    r = np.maximum(rel[:, 2] - rel[:, 0], rel[:, 3] - rel[:, 1])
    d = np.maximum(np.abs((rel[:, 0] + rel[:, 2]) / 2 - 0.5), np.abs((rel[:, 1] + rel[:, 3]) / 2 - 0.5))
    in_reg = (r >= REG_SIZE[0]) & (r <= REG_SIZE[1]) & (d <= REG_OFFSET)
    if not in_reg.any():
        return label, box, box_class
    best = int(np.flatnonzero(in_reg)[np.argmin(d[in_reg])])
    box, box_class = rel[best].astype(np.float32), int(obj_labels[best])
    positive = POS_SIZE[0] <= r[best] <= POS_SIZE[1] and d[best] <= POS_OFFSET
    return (box_class + 1 if positive else IGNORE), box, box_class


def crop(image_bgr: np.ndarray, window_xyxy: np.ndarray, size: int) -> np.ndarray:
    """The square source region ``window_xyxy`` (inside the image) resized to ``size`` x ``size``."""
    x1, y1, x2, y2 = (round(float(v)) for v in window_xyxy)
    return resize(image_bgr[y1:y2, x1:x2], (size, size))


def _place(img_hw: tuple[int, int], side: float, centre: tuple[float, float]) -> np.ndarray | None:
    """A square window of ``side`` source pixels centred near ``centre``, shifted inside the image."""
    h, w = img_hw
    side = float(round(side))
    if side > min(h, w) or side < 4:
        return None
    x1 = float(np.clip(round(centre[0] - side / 2), 0, w - side))
    y1 = float(np.clip(round(centre[1] - side / 2), 0, h - side))
    return np.array([x1, y1, x1 + side, y1 + side], np.float32)


def sample_window(
    rng: np.random.Generator, sample: Sample, img_hw: tuple[int, int], window: int, max_scale: float
) -> np.ndarray:
    """One window for ``sample``: a positive (45%), a near miss (20%) or anywhere at any scale (35%)."""
    h, w = img_hw
    kind = rng.random()
    n = len(sample.boxes)
    min_side = window / max_scale  # the largest scale the pyramid uses, in source pixels per window
    for _ in range(10):
        if n and kind < 0.65:
            b = sample.boxes[rng.integers(n)]
            size = float(max(b[2] - b[0], b[3] - b[1]))
            cx, cy = float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2
            if kind < 0.45:  # positive: size ratio and offset inside the positive zone
                r = np.exp(rng.uniform(np.log(POS_SIZE[0]), np.log(POS_SIZE[1])))
                off = rng.uniform(-POS_OFFSET, POS_OFFSET, 2)
            else:  # near miss: off-centre, too small or too large in the window
                r = np.exp(rng.uniform(np.log(0.12), np.log(2.5)))
                off = rng.uniform(-0.7, 0.7, 2)
            side = max(size / r, min_side)
            win = _place(img_hw, side, (cx - off[0] * side, cy - off[1] * side))
        else:
            side = np.exp(rng.uniform(np.log(min_side), np.log(min(h, w))))
            win = _place(img_hw, side, (rng.uniform(0, w), rng.uniform(0, h)))
        if win is not None:
            return win
    side = float(min(h, w))
    return np.array([0, 0, side, side], np.float32)


def make_batch(
    rng: np.random.Generator,
    samples: list[Sample],
    images: list[np.ndarray],
    spec: ModelSpec,
    batch_size: int,
    max_scales: list[float] | None = None,
    hard: dict[int, np.ndarray] | None = None,
    hard_fraction: float = 0.0,
    flip: bool = True,
    photometric: bool = True,
) -> WindowBatch:
    """``batch_size`` windows from random images, with flips and brightness/contrast jitter.

    ``max_scales[j]``: the largest pyramid scale image ``j`` is seen at (input side / image side);
    random windows are never finer than that. Default 1.0. ``hard``: image index -> (K, 4) windows
    (source pixels) the network got wrong, drawn for ``hard_fraction`` of the batch.
    """
    win = spec.arch.window
    xs = np.empty((batch_size, 3, win, win), np.float32)
    labels = np.empty(batch_size, np.int64)
    boxes = np.zeros((batch_size, 4), np.float32)
    box_class = np.full(batch_size, -1, np.int64)
    hard_ids = sorted(hard) if hard else []
    for i in range(batch_size):
        if hard_ids and rng.random() < hard_fraction:
            j = hard_ids[int(rng.integers(len(hard_ids)))]
            pool = hard[j]  # type: ignore[index]
            wxyxy = pool[int(rng.integers(len(pool)))]
            img, s = images[j], samples[j]
        else:
            j = int(rng.integers(len(samples)))
            img, s = images[j], samples[j]
            wxyxy = sample_window(rng, s, img.shape[:2], win, max_scales[j] if max_scales else 1.0)
        patch = crop(img, wxyxy, win)
        labels[i], boxes[i], box_class[i] = assign(s.boxes, s.labels, wxyxy)
        if flip and rng.random() < 0.5:
            patch = np.ascontiguousarray(patch[:, ::-1])
            boxes[i] = [1 - boxes[i, 2], boxes[i, 1], 1 - boxes[i, 0], boxes[i, 3]]
        if photometric:
            patch = cv2.convertScaleAbs(patch, alpha=rng.uniform(0.75, 1.25), beta=rng.uniform(-25, 25))
        xs[i] = normalize(patch, spec)[0]
    return WindowBatch(xs, labels, boxes, box_class)
