"""[no torch] ByteTrack (Zhang et al., 2022): identities across frames, as a detector step.

Each track is a Kalman filter on its box, state (cx, cy, aspect, height) and their velocities,
constant velocity, noise scaled by the height (as in SORT/ByteTrack). Every frame:

1. every track predicts its box;
2. **first association**: detections scoring >= ``high`` against every tracked or recently lost
   track, by IoU (cost 1 - IoU, at most ``match`` allowed), with an optimal assignment;
3. **second association**: detections between ``low`` and ``high`` (the ones occlusion and blur
   leave) against the tracked tracks still unmatched, IoU >= 0.5;
4. unmatched tracked tracks become lost; lost tracks are removed after ``buffer`` frames;
   unmatched high detections scoring >= ``new`` start tracks (confirmed at once on the first
   frame, else after a second match).

Association is per class. The step returns the confirmed tracks seen this frame, with their
``tracker_id`` and the detections' per-box data. The assignment is solved exactly by
:func:`assign` (the Hungarian method, O(n^3), written here: no scipy on the edge install).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from overfeat_edge.pipeline.merge import box_iou
from overfeat_edge.types import Detections


def assign(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Pairs (row, col) of the minimum-cost assignment of ``cost`` (n, m), keeping pairs <= ``limit``.

    The Hungarian method with potentials (shortest augmenting paths), on the square matrix padded
    with ``limit + 1`` (an unassigned row or column costs more than any allowed pair).
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    size = max(n, m)
    big = float(limit) + 1.0
    c = np.full((size, size), big)
    c[:n, :m] = np.minimum(cost, big)
    u, v = np.zeros(size + 1), np.zeros(size + 1)
    p = np.zeros(size + 1, dtype=np.int64)  # p[j]: the row matched to column j (1-based, 0 = none)
    way = np.zeros(size + 1, dtype=np.int64)
    for i in range(1, size + 1):
        p[0], j0 = i, 0
        minv = np.full(size + 1, np.inf)
        used = np.zeros(size + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = c[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, size + 1) if p[j]]
    return [(r, k) for r, k in pairs if r < n and k < m and cost[r, k] <= limit]


# Kalman filter on (cx, cy, a, h, vcx, vcy, va, vh), as SORT and ByteTrack
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
_POS, _VEL = 1.0 / 20, 1.0 / 160


def _to_xyah(b: np.ndarray) -> np.ndarray:
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2, b[1] + h / 2, w / max(h, 1e-6), h])


def _to_xyxy(s: np.ndarray) -> np.ndarray:
    cx, cy, a, h = s[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass
class _Track:
    id: int
    cls: int
    mean: np.ndarray
    cov: np.ndarray
    score: float
    data: dict[str, np.ndarray]
    hits: int = 1
    lost: int = 0  # frames since the last match
    confirmed: bool = False

    @classmethod
    def start(cls, tid: int, box: np.ndarray, cls_id: int, score: float, data: dict[str, np.ndarray]) -> _Track:
        z = _to_xyah(box)
        mean = np.r_[z, np.zeros(4)]
        h = z[3]
        std = np.array(
            [2 * _POS * h, 2 * _POS * h, 1e-2, 2 * _POS * h, 10 * _VEL * h, 10 * _VEL * h, 1e-5, 10 * _VEL * h]
        )
        return cls(tid, cls_id, mean, np.diag(std**2), score, data)

    def predict(self) -> None:
        h = self.mean[3]
        q = np.array([_POS * h, _POS * h, 1e-2, _POS * h, _VEL * h, _VEL * h, 1e-5, _VEL * h]) ** 2
        self.mean = _F @ self.mean
        self.cov = _F @ self.cov @ _F.T + np.diag(q)

    def update(self, box: np.ndarray, score: float, data: dict[str, np.ndarray]) -> None:
        z = _to_xyah(box)
        h = self.mean[3]
        r = np.diag(np.array([_POS * h, _POS * h, 1e-1, _POS * h]) ** 2)
        s = _H @ self.cov @ _H.T + r
        k = self.cov @ _H.T @ np.linalg.inv(s)
        self.mean = self.mean + k @ (z - _H @ self.mean)
        self.cov = (np.eye(8) - k @ _H) @ self.cov
        self.score, self.data = score, data
        self.hits += 1
        self.lost = 0
        self.confirmed = True

    @property
    def box(self) -> np.ndarray:
        return _to_xyxy(self.mean)


@dataclass
class ByteTrack:
    """The tracker of one stream (a detector step: ``(frame, detections) -> tracked detections``)."""

    high: float = 0.5  # first association, and (with ``new``) new tracks
    low: float = 0.1  # second association (below ``high``)
    new: float = 0.6
    match: float = 0.8  # most 1 - IoU a first-association pair may cost
    buffer: int = 30  # frames a lost track is kept
    tracks: list[_Track] = field(default_factory=list)
    frame: int = 0
    next_id: int = 1

    def __call__(self, frame_bgr: np.ndarray, det: Detections) -> Detections:
        return self.update(det)

    def update(self, det: Detections) -> Detections:
        self.frame += 1
        for t in self.tracks:
            t.predict()
        high = np.flatnonzero(det.score >= self.high)
        low = np.flatnonzero((det.score >= self.low) & (det.score < self.high))
        pool = [t for t in self.tracks if t.confirmed or t.lost == 0]
        matched_tracks: set[int] = set()
        seen: list[_Track] = []
        rest = self._associate(det, high, pool, 1 - self.match, matched_tracks, seen)
        tracked_left = [t for t in self.tracks if id(t) not in matched_tracks and t.lost == 0 and t.confirmed]
        self._associate(det, low, tracked_left, 0.5, matched_tracks, seen)
        for t in self.tracks:
            if id(t) not in matched_tracks:
                t.lost += 1
        self.tracks = [t for t in self.tracks if t.lost <= self.buffer and (t.confirmed or t.lost == 0)]
        for i in rest:  # new tracks from unmatched confident detections
            if det.score[i] >= self.new:
                t = _Track.start(
                    self.next_id,
                    det.xyxy[i].astype(np.float64),
                    int(det.class_id[i]),
                    float(det.score[i]),
                    _row(det, i),
                )
                self.next_id += 1
                t.confirmed = self.frame == 1
                self.tracks.append(t)
                if t.confirmed:
                    seen.append(t)
        return _detections([t for t in seen if t.confirmed], det)

    def _associate(
        self,
        det: Detections,
        idx: np.ndarray,
        tracks: list[_Track],
        min_iou: float,
        matched: set[int],
        seen: list[_Track],
    ) -> list[int]:
        """Match detections ``idx`` to ``tracks`` (per class, IoU >= ``min_iou``); returns the unmatched."""
        left = list(idx)
        if not len(idx) or not tracks:
            return left
        boxes = np.stack([t.box for t in tracks]).astype(np.float32)
        iou = box_iou(det.xyxy[idx].astype(np.float32), boxes)
        same = det.class_id[idx][:, None] == np.array([t.cls for t in tracks])[None, :]
        cost = np.where(same, 1 - iou, 2.0)
        for r, c in assign(cost, 1 - min_iou):
            i, t = int(idx[r]), tracks[c]
            t.update(det.xyxy[i].astype(np.float64), float(det.score[i]), _row(det, i))
            matched.add(id(t))
            seen.append(t)
            left.remove(i)
        return left


def _row(det: Detections, i: int) -> dict[str, np.ndarray]:
    return {k: v[i] for k, v in det.data.items()}


def _detections(tracks: list[_Track], like: Detections) -> Detections:
    if not tracks:
        empty = Detections.empty()
        return Detections(
            empty.xyxy,
            empty.score,
            empty.class_id,
            np.zeros(0, np.int64),
            {k: v[:0] for k, v in like.data.items()},
            like.metadata,
        )
    return Detections(
        np.stack([t.box for t in tracks]),
        np.array([t.score for t in tracks]),
        np.array([t.cls for t in tracks]),
        np.array([t.id for t in tracks]),
        {k: np.stack([t.data[k] for t in tracks]) for k in like.data},
        dict(like.metadata),
    )
