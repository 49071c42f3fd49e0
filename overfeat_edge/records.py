"""[no torch] The one record format of detections: detect's JSON, run's and demo's JSON Lines, MQTT messages.

One frame::

    {"stream": "clipA", "frame": 12, "t": 0.4, "time": "2026-12-03T14:55:00.123Z",
     "file": "photos/a.jpg",                      # image folders and globs only
     "detections": [{"box": [x1, y1, x2, y2], "score": 2.31, "confidence": 0.77,
                     "class_id": 0, "label": "square", "tracker_id": 4, "landmarks": [[x, y], ...]}]}

``box`` is in the frame's own pixels (x right, y down, origin at the top-left corner). ``score`` is
the merged score: greedy merging sums the window confidences of a merged box's members (so it
can exceed 1), NMS keeps one window's. ``confidence`` is always in [0, 1]: the mean window
confidence of a greedy box's members, a kept box's own under NMS. ``tracker_id`` only under
``--track``; per-box data a model has (``landmarks``: (5, 2) x, y pixels) under its own name.
``t`` is the source's clock in seconds (a video's position; a live source's time since it
opened; an image's index), ``time`` the wall-clock time the frame was captured (UTC, ISO 8601).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

from overfeat_edge.pycompat import zip_strict
from overfeat_edge.types import Detections

CONFIDENCE = "confidence"  # the per-box data key a merge leaves its 0-1 confidence under


def utc_iso(seconds: float | None = None) -> str:
    """``seconds`` since the epoch (default: now) as UTC ISO 8601 with milliseconds and a ``Z``."""
    t = datetime.fromtimestamp(time.time() if seconds is None else seconds, tz=timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def detection_records(det: Detections, class_names: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """One JSON-ready dict per box, best first as ``det`` holds them (see the module docstring)."""
    conf = np.clip(det.data.get(CONFIDENCE, det.score), 0.0, 1.0)
    out: list[dict[str, Any]] = []
    for i, (b, s, c) in enumerate(zip_strict(det.xyxy, det.score, det.class_id)):
        rec: dict[str, Any] = {
            "box": [float(v) for v in b],  # full precision: 2 decimals moved COCO mAP (eval --detections)
            "score": round(float(s), 5),
            CONFIDENCE: round(float(conf[i]), 5),
            "class_id": int(c),
            "label": class_names[int(c)] if 0 <= int(c) < len(class_names) else str(int(c)),
        }
        if det.tracker_id is not None:
            rec["tracker_id"] = int(det.tracker_id[i])
        for k, v in det.data.items():
            if k != CONFIDENCE:
                rec[k] = np.round(v[i].astype(np.float64), 2).tolist()
        out.append(rec)
    return out


def frame_record(
    index: int,
    timestamp: float,
    det: Detections,
    class_names: tuple[str, ...] | list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One frame (see the module docstring). ``det.metadata`` gives the stream name, the capture's
    wall-clock ``time`` (seconds since the epoch; now when absent) and an image's ``file``;
    ``extra`` fields come after them (detect's image size, say)."""
    meta = det.metadata
    rec: dict[str, Any] = {
        "stream": str(meta.get("stream", "")),
        "frame": int(index),
        "t": round(float(timestamp), 4),
        "time": utc_iso(meta.get("time")),
    }
    if meta.get("file") is not None:
        rec["file"] = str(meta["file"])
    rec.update(extra or {})
    rec["detections"] = detection_records(det, class_names)
    return rec
