"""[no torch] Throughput and per-stage latency of the streaming loop."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess", "sink", "latency")
CAPTURE, PREPROCESS, INFERENCE, POSTPROCESS, SINK, LATENCY = STAGES  # the names the loop records under


class Stats:
    """Thread-safe counters and the last ``window`` samples of each stage's time (seconds).

    ``latency`` is a frame's age when its outputs are written (capture to sinks), the figure a
    live user feels; the others are each stage's own work per frame.
    """

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self.frames = 0
        self.captured = 0
        self.dropped = 0  # live sources: stale frames replaced by newer ones before inference
        self.skipped = 0  # unreadable frames or images
        self.reconnects = 0
        self.detections = 0
        self.t_start = time.perf_counter()
        self._recent: deque[float] = deque(maxlen=60)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.samples[stage].append(seconds)

    def frame_done(self, n_det: int) -> None:
        now = time.perf_counter()
        with self._lock:
            self.frames += 1
            self.detections += n_det
            self._recent.append(now)

    def fps(self) -> float:
        """Over the last 60 frames (what the overlay shows)."""
        with self._lock:
            r = list(self._recent)
        return (len(r) - 1) / (r[-1] - r[0]) if len(r) > 1 and r[-1] > r[0] else 0.0

    def summary(self) -> dict[str, object]:
        with self._lock:
            wall = time.perf_counter() - self.t_start
            stages = {}
            for name, q in self.samples.items():
                if q:
                    a = np.asarray(q) * 1000
                    stages[name] = {
                        "p50_ms": round(float(np.percentile(a, 50)), 2),
                        "p95_ms": round(float(np.percentile(a, 95)), 2),
                        "p99_ms": round(float(np.percentile(a, 99)), 2),
                        "mean_ms": round(float(a.mean()), 2),
                    }
            return {
                "frames": self.frames,
                "captured": self.captured,
                "dropped": self.dropped,
                "skipped": self.skipped,
                "reconnects": self.reconnects,
                "detections": self.detections,
                "wall_s": round(wall, 3),
                "fps": round(self.frames / wall, 2) if wall > 0 else 0.0,
                "stages": stages,
            }
