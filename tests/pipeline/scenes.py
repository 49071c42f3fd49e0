"""Generated tracking scenes with known identities, and MOT scores by motmetrics (py-motmetrics,
the CLEAR MOT and IDF1 reference): the ground for comparing our ByteTrack with supervision's.

A scene is a list of frames; each frame holds the truth (id, xyxy box) of every object present,
occluded or not, and the detections a detector gave: (xyxy box, score, class id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

Truth = List[Tuple[int, np.ndarray]]  # typing's forms: evaluated at import, on Python 3.8 too
Dets = List[Tuple[np.ndarray, float, int]]
Frame = Tuple[Truth, Dets]


@dataclass
class Obj:
    id: int
    start: np.ndarray  # xyxy at frame 0
    velocity: np.ndarray  # (dx, dy) per frame
    growth: float = 1.0  # size factor per frame
    cls: int = 0
    first: int = 0  # frames it is present
    last: int = 10**9

    def box(self, t: int) -> np.ndarray:
        c = (self.start[:2] + self.start[2:]) / 2 + self.velocity * t
        half = (self.start[2:] - self.start[:2]) / 2 * self.growth**t
        return np.r_[c - half, c + half]


def _lanes(rng: np.random.Generator, n: int, speed: float, size: float = 40.0) -> list[Obj]:
    """``n`` objects in separate horizontal lanes moving left or right at about ``speed``."""
    out = []
    for k in range(n):
        y = 40 + k * (size * 2)
        x = rng.uniform(50, 500)
        v = speed * rng.uniform(0.7, 1.3) * rng.choice([-1, 1])
        out.append(Obj(k + 1, np.array([x, y, x + size, y + size]), np.array([v, rng.uniform(-0.3, 0.3)])))
    return out


def _crossing(dy: float) -> Callable[[np.random.Generator], list[Obj]]:
    """Two pairs crossing (vertical offset ``dy``; 0: head-on), at different speeds, and a bystander."""

    def objects(rng: np.random.Generator) -> list[Obj]:
        objs = []
        for k, y in enumerate((80.0, 300.0)):
            objs.append(Obj(2 * k + 1, np.array([40, y, 90, y + 50]), np.array([4.0, 0.0])))
            objs.append(Obj(2 * k + 2, np.array([520, y + dy, 570, y + dy + 50]), np.array([-rng.uniform(2.4, 4), 0])))
        objs.append(Obj(5, np.array([300, 500, 340, 540.0]), np.array([0.5, 0.0])))
        return objs

    return objects


def _dense(rng: np.random.Generator) -> list[Obj]:
    objs = []
    for k in range(14):
        x, y, s = rng.uniform(0, 900), rng.uniform(0, 600), rng.uniform(30, 70)
        v = rng.uniform(-3, 3, 2)
        objs.append(Obj(k + 1, np.array([x, y, x + s, y + s]), v, cls=int(rng.integers(3))))
    return objs


@dataclass
class Recipe:
    objects: Callable[[np.random.Generator], list[Obj]]
    frames: int = 100
    miss: float = 0.0  # chance a detection is dropped
    fp: float = 0.0  # false positives per frame (Poisson)
    low: float = 0.0  # chance an object scores low for a stretch of frames
    flicker: float = 0.0  # chance a detection's class is wrong
    duplicate: float = 0.0  # chance a detection comes twice (a shifted, lower-scored copy)
    gap: int = 0  # frames each object goes undetected once (mid-scene)
    occlude: bool = False  # an object overlapped (IoU > 0.3) by an earlier one is not detected
    noise: float = 1.0  # box noise (px, normal)


RECIPES: dict[str, Recipe] = {
    "linear": Recipe(lambda r: _lanes(r, 6, 3.0)),
    "crossing": Recipe(_crossing(6.0), frames=110),
    "crossing_occluded": Recipe(_crossing(0.0), frames=110, occlude=True),
    "gaps": Recipe(lambda r: _lanes(r, 5, 2.0), gap=6),
    "missed_20pct": Recipe(lambda r: _lanes(r, 6, 3.0), miss=0.2),
    "false_positives": Recipe(lambda r: _lanes(r, 5, 3.0), fp=2.0),
    "low_scores": Recipe(lambda r: _lanes(r, 6, 3.0), low=0.03),
    "fast_motion": Recipe(lambda r: _lanes(r, 5, 14.0, size=60.0), frames=60),
    "scale_change": Recipe(
        lambda r: [Obj(o.id, o.start, o.velocity, growth=r.choice([0.985, 1.015])) for o in _lanes(r, 5, 2.0)]
    ),
    "dense_mixed": Recipe(_dense, miss=0.1, fp=1.0, low=0.02, noise=1.5),
    "class_flicker": Recipe(lambda r: _lanes(r, 6, 3.0), flicker=0.1),
    "duplicates": Recipe(lambda r: _lanes(r, 6, 3.0), duplicate=0.5),
    "long_gaps": Recipe(lambda r: _lanes(r, 5, 2.0), frames=120, gap=20),
}


def _occluded(boxes: list[np.ndarray]) -> set[int]:
    """Indices of boxes overlapped (IoU > 0.3) by a box earlier in the list (it is in front)."""
    hidden = set()
    for j in range(len(boxes)):
        for i in range(j):
            a, b = boxes[i], boxes[j]
            w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = w * h
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / union > 0.3:
                hidden.add(j)
    return hidden


def make_scene(name: str, seed: int) -> list[Frame]:
    """The frames of scene ``name`` drawn with ``seed``."""
    r = RECIPES[name]
    rng = np.random.default_rng(seed)
    objs = r.objects(rng)
    gap_at = {o.id: int(rng.integers(20, r.frames - r.gap - 10)) for o in objs} if r.gap else {}
    low_left = dict.fromkeys((o.id for o in objs), 0)
    frames: list[Frame] = []
    for t in range(r.frames):
        truth = [(o.id, o.box(t)) for o in objs if o.first <= t <= o.last]
        hidden = _occluded([b for _, b in truth]) if r.occlude else set()
        dets: Dets = []
        for k, (oid, box) in enumerate(truth):
            if k in hidden or rng.random() < r.miss or gap_at.get(oid, -99) <= t < gap_at.get(oid, -99) + r.gap:
                continue
            if low_left[oid] == 0 and rng.random() < r.low:
                low_left[oid] = int(rng.integers(4, 10))
            score = rng.uniform(0.15, 0.45) if low_left[oid] else rng.uniform(0.65, 0.95)
            low_left[oid] = max(0, low_left[oid] - 1)
            cls = next(o.cls for o in objs if o.id == oid)
            if rng.random() < r.flicker:
                cls = cls + 1
            dets.append((box + rng.normal(0, r.noise, 4), float(score), cls))
            if rng.random() < r.duplicate:
                dets.append((box + rng.normal(0, 3 * r.noise, 4), float(score) * rng.uniform(0.7, 0.95), cls))
        for _ in range(rng.poisson(r.fp)):
            x, y, s = rng.uniform(0, 900), rng.uniform(0, 600), rng.uniform(20, 60)
            dets.append((np.array([x, y, x + s, y + s]), float(rng.uniform(0.5, 0.8)), 0))
        order = rng.permutation(len(dets))
        frames.append((truth, [dets[i] for i in order]))
    return frames


def arrays(dets: Dets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy (N, 4) float32, score (N,) float32, class id (N,) int64) of one frame's detections."""
    xyxy = np.array([b for b, _, _ in dets], np.float32).reshape(-1, 4)
    return xyxy, np.array([s for _, s, _ in dets], np.float32), np.array([c for _, _, c in dets], np.int64)


def mot_scores(scene: list[Frame], tracked: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """MOTA, IDF1 and ID switches by motmetrics; ``tracked`` is per frame (xyxy, tracker ids)."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for (truth, _), (xyxy, ids) in zip(scene, tracked):
        gt = np.array([b for _, b in truth], np.float64).reshape(-1, 4)
        hyp = np.asarray(xyxy, np.float64).reshape(-1, 4)
        dist = _iou_distance(gt, hyp)
        acc.update([i for i, _ in truth], [int(i) for i in ids], dist)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=["mota", "idf1", "num_switches"], name="scene")
    return {
        "mota": float(s["mota"].iloc[0]),
        "idf1": float(s["idf1"].iloc[0]),
        "switches": int(s["num_switches"].iloc[0]),
    }


def _iou_distance(gt: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """1 - IoU, NaN (no match allowed) above 0.5: what ``mm.distances.iou_matrix(max_iou=0.5)``
    gives (written out here: motmetrics 1.4.0 calls ``np.asfarray``, gone in NumPy 2)."""
    lo, hi = np.maximum(gt[:, None, :2], hyp[None, :, :2]), np.minimum(gt[:, None, 2:], hyp[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda b: np.prod(b[:, 2:] - b[:, :2], axis=1)  # noqa: E731
    dist = 1 - inter / (area(gt)[:, None] + area(hyp)[None, :] - inter)
    return np.where(dist > 0.5, np.nan, dist)
