"""Overlays: boxes, class names and scores drawn on a BGR frame."""

from __future__ import annotations

import cv2
import numpy as np

from overfeat_edge.pycompat import zip_strict
from overfeat_edge.types import Detections


def color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(
    frame: np.ndarray, det: Detections, class_names: tuple[str, ...] | list[str], text: str | None = None
) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3 uint8 BGR) with every box and label (tracker id ``#n`` where
    there is one), landmarks as dots where the detections carry them, and ``text`` top-left."""
    out = frame.copy()
    thick = max(1, round(min(out.shape[:2]) / 300))
    points = det.data.get("landmarks")
    banner = 0  # the text band's height: labels go below it, never under it
    if text:
        (_, bh), bbase = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        banner = bh + bbase + 10
    for i, (box, score, cid) in enumerate(zip_strict(det.xyxy, det.score, det.class_id)):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        c = color(int(cid))
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thick)
        if points is not None:
            for px, py in points[i]:
                cv2.circle(out, (round(float(px)), round(float(py))), thick + 1, (0, 255, 255), -1, cv2.LINE_AA)
        name = class_names[int(cid)] if 0 <= int(cid) < len(class_names) else str(int(cid))
        tag = f" #{int(det.tracker_id[i])}" if det.tracker_id is not None else ""
        label = f"{name}{tag} {score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, 1)
        ty = max(y1, th + base + banner)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), c, -1)
        cv2.putText(out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 0, 0), 1, cv2.LINE_AA)
    if text:  # white on a dark band: readable on any background (an outline blurs small glyphs)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (0, 0), (tw + 12, banner), (32, 32, 32), -1)
        cv2.putText(out, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
