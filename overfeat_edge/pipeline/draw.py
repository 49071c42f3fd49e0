"""Annotators: boxes, labels and a banner drawn on a BGR frame, for the sinks that show frames.

Drawing is a step only a frame sink asks for (an MP4, saved frames, a window, a network stream); a
JSONL- or MQTT-only run never calls it. :class:`LabelAnnotator` is modelled on supervision's
``LabelAnnotator`` with ``smart_position``: every label stays inside the frame and below the banner,
no two labels overlap, and the strongest detection is placed first (nearest its box) and drawn last.
Where supervision pushes overlapping labels apart step by step, :func:`place_labels` picks, for each
label in turn, the free spot nearest its box's top-left corner, so overlap is excluded, not reduced.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from overfeat_edge.types import Detections
from overfeat_edge.words import plural

FONT = cv2.FONT_HERSHEY_SIMPLEX
BANNER_SCALE = 0.45
PAD = 2  # pixels between a label's text and its background's edge
MAX_LABELS = 100  # the strongest labelled; past that many a frame is boxes (a crowd's labels hide it)


def color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def banner_text(title: str, fps: float | None = None) -> str:
    """The banner's line: ``title`` and the frame rate, which is left out until one is measured (a
    first frame has none: ``0.0 FPS`` would be a wrong figure, not a slow one)."""
    parts = [title] if title else []
    if fps is not None and fps > 0:
        parts.append(f"{fps:.1f} FPS")
    return "  ".join(parts)


def pyramid_caption(scales: Sequence[object]) -> str:
    """The pyramid in words for a banner: ``6 scales``, or ``objects from 20 px`` for the geometric rule
    (``Scale.rule`` = (min size, factor)), whose levels depend on the image."""
    rules = [s.rule for s in scales if getattr(s, "rule", None) is not None]  # type: ignore[attr-defined]
    fixed = len(scales) - len(rules)
    words = [f"objects from {min(r[0] for r in rules)} px"] if rules else []
    if fixed or not rules:
        words.insert(0, plural(fixed, "scale"))
    return ", ".join(words)


def _free(cands: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """(K,) mask: candidate rectangles (K, 4) that overlap none of ``placed`` (P, 4); half-open
    ``[x1, x2) x [y1, y2)``, so rectangles that only touch do not overlap."""
    if len(placed) == 0:
        return np.ones(len(cands), bool)
    c, p = cands[:, None, :], placed[None, :, :]
    hit = (c[..., 0] < p[..., 2]) & (p[..., 0] < c[..., 2]) & (c[..., 1] < p[..., 3]) & (p[..., 1] < c[..., 3])
    return np.asarray(~hit.any(axis=1))


def _best(xs: np.ndarray, ys: np.ndarray, w: int, h: int, want: tuple[int, int], placed: np.ndarray) -> np.ndarray:
    """The free ``w`` x ``h`` rectangle nearest ``want`` (x, y) among the corners ``xs`` x ``ys``, or ()."""
    gx, gy = np.meshgrid(xs, ys)
    cands = np.stack([gx.ravel(), gy.ravel(), gx.ravel() + w, gy.ravel() + h], axis=1)
    ok = _free(cands, placed)
    if not ok.any():
        return cands[:0]
    cost = np.abs(cands[:, 0] - want[0]) + np.abs(cands[:, 1] - want[1])
    cost[~ok] = np.iinfo(np.int64).max
    return cands[int(np.argmin(cost))]


def _nearest(values: np.ndarray, to: int, k: int = 24) -> np.ndarray:
    """The ``k`` distinct values nearest ``to``: a crowd's fallback search stays k x k corners."""
    v = np.unique(values)
    return v[np.argsort(np.abs(v - to), kind="stable")[:k]]


def place_labels(
    boxes: np.ndarray, sizes: np.ndarray, frame_wh: tuple[int, int], top: int = 0, order: np.ndarray | None = None
) -> np.ndarray:
    """Where each label goes: (N, 4) int64 ``[x1, y1, x2, y2)`` rectangles inside the frame, below ``top``
    (a banner's height), none overlapping another; a row of -1 for a label that finds no room.

    ``boxes`` (N, 4) xyxy pixels, ``sizes`` (N, 2) each label's (width, height), ``order``: the
    placing order (strongest first; default as given); past :data:`MAX_LABELS`, boxes go unlabelled.
    Each label wants the spot just above its box's top-left corner (inside the box where that is off
    the frame). Taken spots are avoided by sliding the label up or down its column to the nearest free
    place, then, when the column is full, to the nearest of the 24 x 24 corners closest to its own.
    Candidate corners are the frame's edges and the edges of the labels already placed: the nearest
    free spot of a column always has its corner there.
    """
    fw, fh = frame_wh
    out = np.full((len(boxes), 4), -1, np.int64)
    placed = np.zeros((0, 4), np.int64)
    for i in (order if order is not None else range(len(boxes)))[:MAX_LABELS]:
        w, h = int(sizes[i][0]), int(sizes[i][1])
        if w > fw or h > fh - top:
            continue  # a label larger than the frame: drawn nowhere rather than cut
        x_hi, y_hi = fw - w, fh - h
        want = (int(np.clip(round(boxes[i][0]), 0, x_hi)), int(np.clip(round(boxes[i][1]) - h, top, y_hi)))
        ys = np.clip(np.concatenate([[want[1], top, y_hi], placed[:, 3], placed[:, 1] - h]), top, y_hi)
        spot = _best(np.array([want[0]]), np.unique(ys), w, h, want, placed)
        if len(spot) == 0:  # the column is full: a corner next to a placed label, among the nearest
            xs = np.clip(np.concatenate([[want[0], 0, x_hi], placed[:, 2], placed[:, 0] - w]), 0, x_hi)
            spot = _best(_nearest(xs, want[0]), _nearest(ys, want[1]), w, h, want, placed)
        if len(spot):
            out[i] = spot
            placed = np.concatenate([placed, spot[None]])
    return out


def _label(name: str, tracker: int | None, score: float) -> str:
    return f"{name}{'' if tracker is None else f' #{tracker}'} {score:.2f}"


class LabelAnnotator:
    """Boxes, labels (class, ``#tracker`` id, score), landmarks and a banner on a copy of a frame.

    ``class_names``: the model's; ``title``: the banner's fixed words (the frame rate is added per
    frame by :meth:`annotate`). Stateless between frames: one annotator serves every stream.
    """

    def __init__(self, class_names: Sequence[str], title: str = "") -> None:
        self.class_names = tuple(class_names)
        self.title = title

    def labels(self, det: Detections) -> list[str]:
        names = self.class_names
        ids = det.tracker_id
        return [
            _label(names[c] if 0 <= c < len(names) else str(c), None if ids is None else int(ids[i]), float(s))
            for i, (c, s) in enumerate(zip(det.class_id.tolist(), det.score.tolist()))
        ]

    def annotate(
        self, frame: np.ndarray, det: Detections, fps: float | None = None, text: str | None = None
    ) -> np.ndarray:
        """A copy of ``frame`` (H, W, 3 uint8 BGR) with ``det`` drawn (xyxy in the frame's pixels) and the
        banner: ``text`` when given, else the title and ``fps`` (left out while it is 0 or None)."""
        out = frame.copy()
        fh, fw = out.shape[:2]
        thick = max(1, round(min(fh, fw) / 300))
        scale = 0.4 * thick
        line = banner_text(self.title, fps) if text is None else text
        banner = _banner_height(line)
        order = np.argsort(-det.score, kind="stable")  # strongest first
        for i in order[::-1]:  # weakest first: the strongest box's lines end on top
            x1, y1, x2, y2 = (round(float(v)) for v in det.xyxy[i])
            cv2.rectangle(out, (x1, y1), (x2, y2), color(int(det.class_id[i])), thick)
        points = det.data.get("landmarks")
        if points is not None:
            for i in order[::-1]:
                for px, py in points[i]:
                    cv2.circle(out, (round(float(px)), round(float(py))), thick + 1, (0, 255, 255), -1, cv2.LINE_AA)
        texts = self.labels(det)
        metrics = [cv2.getTextSize(t, FONT, scale, 1) for t in texts]
        sizes = np.array([(tw + 2 * PAD, th + base + 2 * PAD) for (tw, th), base in metrics], np.int64).reshape(-1, 2)
        spots = place_labels(det.xyxy, sizes, (fw, fh), banner, order)
        for i in order[::-1]:  # labels over every box; the strongest drawn last
            x1, y1, x2, y2 = (int(v) for v in spots[i])
            if x1 < 0:
                continue
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color(int(det.class_id[i])), -1)
            base = metrics[i][1]
            cv2.putText(out, texts[i], (x1 + PAD, y2 - PAD - base), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
        if line:  # white on a dark band: readable on any background (an outline blurs small glyphs)
            (tw, th), _ = cv2.getTextSize(line, FONT, BANNER_SCALE, 1)
            cv2.rectangle(out, (0, 0), (min(tw + 12, fw) - 1, banner - 1), (32, 32, 32), -1)
            cv2.putText(out, line, (6, th + 5), FONT, BANNER_SCALE, (255, 255, 255), 1, cv2.LINE_AA)
        return out


def _banner_height(line: str) -> int:
    if not line:
        return 0
    (_, th), base = cv2.getTextSize(line, FONT, BANNER_SCALE, 1)
    return th + base + 10


def draw_detections(
    frame: np.ndarray, det: Detections, class_names: Sequence[str], text: str | None = None
) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3 uint8 BGR) with every box and label and ``text`` as the banner
    (:meth:`LabelAnnotator.annotate` with a fixed banner line)."""
    return LabelAnnotator(class_names).annotate(frame, det, text=text or "")
