"""[no torch] ByteTrack (Zhang et al., 2022): identities across frames, as a detector step.

Written after the paper and its reference implementation (ifzhang/ByteTrack, ``BYTETracker``).
Each track is a Kalman filter on its box, state (cx, cy, aspect, height) and their velocities,
constant velocity, noise scaled by the height. Every frame:

1. every track predicts its box (a lost track's height stops changing);
2. **first association**: detections scoring >= ``high`` against the confirmed tracked and the
   lost tracks, cost ``1 - IoU * score`` (score fusion), pairs costing at most ``match``;
3. **second association**: detections with ``low <= score < high`` (the ones occlusion and blur
   leave) against the tracked tracks still unmatched, cost ``1 - IoU``, at most 0.5; tracked
   tracks still unmatched become lost;
4. **unconfirmed tracks** (started last frame) against the high detections left, fused cost, at
   most 0.7; an unconfirmed track left unmatched is dropped;
5. high detections still unmatched scoring >= ``new`` start tracks (confirmed at once on the
   first frame, else by their second match); lost tracks go after ``buffer`` frames at 30 fps
   (``buffer * fps / 30`` frames of the source);
6. **duplicates**: a tracked and a lost track whose boxes overlap with IoU > 0.85: the one tracked
   for fewer frames goes. One departure from the reference: not when their velocities differ by
   more than a tenth of the height per frame. Two objects crossing head-on, one hidden behind the
   other, are such a pair, and the reference drops the hidden one's track there (an identity
   switch when it reappears); one object tracked twice moves one way.

Association is class-agnostic by default: a track's class is the vote of its last ``votes``
detections (the most frequent class; a tie goes to the most recent), so one frame of a flipped
class does not break an identity. ``per_class=True`` associates within each class instead.
A step returns the detections matched to confirmed tracks, their own boxes and per-box data, in
the input's order, with ``tracker_id`` and the track's class. Assignments are solved exactly by
the Hungarian method written here (no scipy or lap on the edge install).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from overfeat_edge.pipeline.merge import box_iou
from overfeat_edge.types import Detections


def _hungarian(c: np.ndarray) -> np.ndarray:
    """``col[row]`` of the minimum-cost perfect matching of the square matrix ``c`` (potentials,
    shortest augmenting paths, O(n^3))."""
    size = len(c)
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
    col = np.zeros(size, dtype=np.int64)
    col[p[1:] - 1] = np.arange(size)
    return col


def assign(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Pairs (row, col) of the minimum-cost assignment of ``cost`` (n, m), keeping pairs <= ``limit``.

    The square matrix padded with ``limit + 1`` (an unassigned row or column costs more than any
    allowed pair): as many pairs as the limit allows, then the cheapest.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    size = max(n, m)
    big = float(limit) + 1.0
    c = np.full((size, size), big)
    c[:n, :m] = np.minimum(cost, big)
    col = _hungarian(c)
    return [(r, int(col[r])) for r in range(n) if col[r] < m and cost[r, col[r]] <= limit]


def match_pairs(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Pairs (row, col) as ByteTrack's ``linear_assignment`` (``lap.lapjv`` with ``cost_limit``).

    There, leaving a row or a column unmatched costs ``limit / 2``: the pairs chosen minimise the
    matched costs plus ``limit`` per row-and-column pair left, i.e. the sum of ``cost - limit``
    over the pairs taken, each below the limit. That is solved here as the assignment of the
    square matrix ``min(cost - limit, 0)`` padded with zeros (half the size of lapjv's extension), over
    the rows and columns that have a pair below the limit.
    """
    ok = cost < limit
    rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))  # the rest cannot pair
    n, m = len(rows), len(cols)
    if n == 0:
        return []
    size = max(n, m)
    c = np.zeros((size, size))
    c[:n, :m] = np.minimum(cost[np.ix_(rows, cols)] - limit, 0.0)
    col = _hungarian(c)
    return [(int(rows[r]), int(cols[col[r]])) for r in range(n) if col[r] < m and ok[rows[r], cols[col[r]]]]


# Kalman filter on (cx, cy, a, h, vcx, vcy, va, vh), as SORT and ByteTrack
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
_POS, _VEL = 1.0 / 20, 1.0 / 160
_DUPLICATE = 0.15  # 1 - IoU under which a tracked and a lost track are one object
_DIVERGE = 0.1  # ... unless their velocities differ by more than this many heights per frame


def _to_xyah(b: np.ndarray) -> np.ndarray:
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2, b[1] + h / 2, w / max(h, 1e-6), h])


def _to_xyxy(s: np.ndarray) -> np.ndarray:
    cx, cy, a, h = s[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass
class _Track:
    key: int  # internal, unique for the tracker's life
    mean: np.ndarray
    cov: np.ndarray
    start: int  # frame it started
    last: int  # frame of its last match
    classes: deque[int]
    id: int = 0  # the public identity, given when the track is confirmed
    lost: bool = False
    confirmed: bool = False
    det: int = -1  # this frame's detection index, -1 if none

    @classmethod
    def start_at(cls, key: int, box: np.ndarray, cls_id: int, frame: int, votes: int) -> _Track:
        z = _to_xyah(box)
        h = z[3]
        std = np.array(
            [2 * _POS * h, 2 * _POS * h, 1e-2, 2 * _POS * h, 10 * _VEL * h, 10 * _VEL * h, 1e-5, 10 * _VEL * h]
        )
        return cls(key, np.r_[z, np.zeros(4)], np.diag(std**2), frame, frame, deque([cls_id], maxlen=votes))

    def predict(self) -> None:
        if self.lost:
            self.mean[7] = 0.0
        h = self.mean[3]
        q = np.array([_POS * h, _POS * h, 1e-2, _POS * h, _VEL * h, _VEL * h, 1e-5, _VEL * h]) ** 2
        self.mean = _F @ self.mean
        self.cov = _F @ self.cov @ _F.T + np.diag(q)

    def update(self, box: np.ndarray, cls_id: int, frame: int, index: int) -> None:
        z = _to_xyah(box)
        h = self.mean[3]
        r = np.diag(np.array([_POS * h, _POS * h, 1e-1, _POS * h]) ** 2)
        s = _H @ self.cov @ _H.T + r
        k = self.cov @ _H.T @ np.linalg.inv(s)
        self.mean = self.mean + k @ (z - _H @ self.mean)
        self.cov = (np.eye(8) - k @ _H) @ self.cov
        self.classes.append(cls_id)
        self.last, self.det, self.lost, self.confirmed = frame, index, False, True

    @property
    def box(self) -> np.ndarray:
        return _to_xyxy(self.mean)

    @property
    def cls(self) -> int:
        """The vote of the recent detections: the most frequent class, a tie to the most recent."""
        counts = Counter(self.classes)
        best = max(counts.values())
        return next(c for c in reversed(self.classes) if counts[c] == best)


def _diverge(a: _Track, b: _Track) -> bool:
    """Two tracks moving apart faster than a tenth of their height per frame are two objects
    (one passing through the other), not one object tracked twice."""
    return bool(np.hypot(*(a.mean[4:6] - b.mean[4:6])) > _DIVERGE * max(a.mean[3], b.mean[3]))


@dataclass
class ByteTrack:
    """The tracker of one stream (a detector step: ``(frame, detections) -> tracked detections``)."""

    high: float = 0.5  # first association, and (with ``new``) new tracks
    low: float = 0.1  # second association (below ``high``)
    new: float = 0.6  # score a detection needs to start a track (ByteTrack: high + 0.1)
    match: float = 0.8  # most 1 - IoU * score a first-association pair may cost
    buffer: int = 30  # frames at 30 fps a lost track is kept
    fps: float = 30.0  # the source's frame rate (scales ``buffer``)
    per_class: bool = False  # associate within each class (off: class-agnostic, as ByteTrack)
    votes: int = 30  # recent detections a track's class is voted from
    tracks: dict[int, _Track] = field(default_factory=dict)
    frame: int = 0
    next_key: int = 1
    next_id: int = 1

    @property
    def max_lost(self) -> int:
        """Frames a lost track is kept, at the source's frame rate."""
        return int(self.buffer * self.fps / 30.0)

    def reset(self) -> None:
        """Forget every track and start the frame count and identities again (a new video)."""
        self.tracks.clear()
        self.frame, self.next_key, self.next_id = 0, 1, 1

    def __call__(self, frame_bgr: np.ndarray, det: Detections) -> Detections:
        return self.update(det)

    def update(self, det: Detections) -> Detections:
        """Associate one frame's detections; returns those on confirmed tracks, with their ids."""
        self.frame += 1
        for t in self.tracks.values():
            t.predict()
            t.det = -1
        high = np.flatnonzero(det.score >= self.high)
        low = np.flatnonzero((det.score >= self.low) & (det.score < self.high))
        tracked = [t for t in self.tracks.values() if not t.lost and t.confirmed]
        unconfirmed = [t for t in self.tracks.values() if not t.lost and not t.confirmed]
        pool = tracked + [t for t in self.tracks.values() if t.lost]
        high = self._associate(det, high, pool, self.match, fuse=True)
        self._associate(det, low, [t for t in tracked if t.det < 0], 0.5, fuse=False)
        for t in tracked:
            t.lost = t.lost or t.det < 0
        high = self._associate(det, high, unconfirmed, 0.7, fuse=True)
        drop = {t.key for t in unconfirmed if t.det < 0}
        drop |= {t.key for t in self.tracks.values() if t.lost and self.frame - t.last > self.max_lost}
        for k in drop:
            del self.tracks[k]
        for i in high[det.score[high] >= self.new]:
            self._start(det, int(i))
        self._remove_duplicates()
        return self._output(det)

    def _associate(
        self, det: Detections, idx: np.ndarray, tracks: list[_Track], limit: float, fuse: bool
    ) -> np.ndarray:
        """Match detections ``idx`` to ``tracks`` (cost 1 - IoU, times the score if ``fuse``, at
        most ``limit``); updates the matched tracks and returns the detections left."""
        if not len(idx) or not tracks:
            return idx
        iou = box_iou(det.xyxy[idx].astype(np.float64), np.stack([t.box for t in tracks]))
        cost = 1.0 - (iou * det.score[idx, None].astype(np.float64) if fuse else iou)
        if self.per_class:
            same = det.class_id[idx][:, None] == np.array([t.cls for t in tracks])[None, :]
            cost = np.where(same, cost, 2.0)
        used = np.zeros(len(idx), dtype=bool)
        for r, c in match_pairs(cost, limit):
            i = int(idx[r])
            tracks[c].update(det.xyxy[i].astype(np.float64), int(det.class_id[i]), self.frame, i)
            used[r] = True
        return idx[~used]

    def _start(self, det: Detections, i: int) -> None:
        t = _Track.start_at(self.next_key, det.xyxy[i].astype(np.float64), int(det.class_id[i]), self.frame, self.votes)
        self.next_key += 1
        if self.frame == 1:  # as ByteTrack: the first frame's tracks are confirmed at once
            t.confirmed = True
        t.det = i
        self.tracks[t.key] = t

    def _remove_duplicates(self) -> None:
        """A tracked and a lost track on one object (1 - IoU < 0.15): the one tracked for fewer frames goes."""
        tracked = [t for t in self.tracks.values() if not t.lost]
        lost = [t for t in self.tracks.values() if t.lost]
        if not tracked or not lost:
            return
        dist = 1.0 - box_iou(np.stack([t.box for t in tracked]), np.stack([t.box for t in lost]))
        drop = set()
        for p, q in zip(*np.nonzero(dist < _DUPLICATE)):
            a, b = tracked[p], lost[q]
            if (self.per_class and a.cls != b.cls) or _diverge(a, b):
                continue
            drop.add(b.key if a.last - a.start > b.last - b.start else a.key)
        for k in drop:
            del self.tracks[k]

    def _output(self, det: Detections) -> Detections:
        """The detections on confirmed tracks (input order), with their ids and the tracks' classes."""
        on = sorted(((t.det, t) for t in self.tracks.values() if t.det >= 0 and t.confirmed), key=lambda p: p[0])
        for _, t in on:
            if not t.id:
                t.id, self.next_id = self.next_id, self.next_id + 1
        out = det[np.array([i for i, _ in on], dtype=np.int64)]
        out.class_id = np.array([t.cls for _, t in on], dtype=np.int64)
        out.tracker_id = np.array([t.id for _, t in on], dtype=np.int64)
        return out
