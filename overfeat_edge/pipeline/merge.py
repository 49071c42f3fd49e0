"""Box merging: OverFeat's greedy merge (paper 4.3) and class-aware NMS, pure numpy.

match_score (the paper gives no formula; this is ours): for boxes a and b,

    match_score(a, b) = (1 - IoU(a, b)) + |centre(a) - centre(b)| / mean(diag(a), diag(b))

0 for identical boxes; >= 1 for boxes that do not overlap. Lower is a better match. Greedy
merge repeatedly merges the best-matching pair of the same class while its score is <= t. A
merged box is the mean of its member boxes' coordinates (every original box counts once, so
the order of merges does not bias it); its confidence is the sum of its members' confidences.
"""

from __future__ import annotations

import heapq

import numpy as np

from overfeat_edge.types import Detections

_BLOCK = 2048


def box_area(xyxy: np.ndarray) -> np.ndarray:
    return np.clip(xyxy[..., 2] - xyxy[..., 0], 0, None) * np.clip(xyxy[..., 3] - xyxy[..., 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise match score of (N, 4) and (M, 4) boxes -> (N, M); see the module docstring."""
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    dist = np.linalg.norm(ca[:, None] - cb[None], axis=-1)
    da = np.linalg.norm(a[:, 2:] - a[:, :2], axis=-1)
    db = np.linalg.norm(b[:, 2:] - b[:, :2], axis=-1)
    scale = np.maximum((da[:, None] + db[None]) / 2, 1e-6)
    return (1.0 - box_iou(a, b)) + dist / scale


def nms(det: Detections, iou_threshold: float = 0.5) -> Detections:
    """Class-aware non-maximum suppression; returns the kept detections, best first."""
    if len(det) == 0:
        return det
    order = np.argsort(-det.score, kind="stable")
    keep: list[np.ndarray] = []
    for c in np.unique(det.class_id):
        idx = order[det.class_id[order] == c]  # this class, best first
        keep.append(idx[_nms_sorted(det.xyxy[idx].astype(np.float32), iou_threshold)])
    kept = np.concatenate(keep)
    return det[kept[np.argsort(-det.score[kept], kind="stable")]]


def _nms_sorted(boxes: np.ndarray, t: float) -> np.ndarray:
    """Indices kept by greedy NMS of (n, 4) boxes already sorted best first.

    Each kept box is compared with the boxes still alive after it, which are compacted as they
    die, so the work shrinks with every suppression (float32: half the memory traffic).
    """
    idx = np.arange(len(boxes))
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep = []
    while len(idx):
        i = idx[0]
        keep.append(i)
        rest = idx[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        idx = rest[iou <= t]
    return np.asarray(keep, dtype=np.int64)


def _merge_class(xyxy: np.ndarray, score: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(xyxy)
    sums = xyxy.astype(np.float64).copy()
    counts = np.ones(n)
    conf = score.astype(np.float64).copy()
    cur = sums.copy()
    active = np.ones(n, bool)
    version = np.zeros(n, np.int64)
    heap: list[tuple[float, int, int, int, int]] = []
    for start in range(0, n, _BLOCK):  # blocks keep memory at O(n * _BLOCK)
        ms = match_score(cur[start : start + _BLOCK], cur)
        ii, jj = np.nonzero(ms <= t)
        ii = ii + start
        upper = jj > ii
        heap += [(float(ms[i - start, j]), int(i), int(j), 0, 0) for i, j in zip(ii[upper], jj[upper], strict=True)]
    heapq.heapify(heap)
    while heap:
        _, i, j, vi, vj = heapq.heappop(heap)
        if not (active[i] and active[j]) or version[i] != vi or version[j] != vj:
            continue  # a stale pair: one of its boxes has been merged since
        sums[i] += sums[j]
        counts[i] += counts[j]
        conf[i] += conf[j]
        cur[i] = sums[i] / counts[i]
        active[j] = False
        version[i] += 1
        others = np.nonzero(active)[0]
        others = others[others != i]
        if len(others):
            ms = match_score(cur[i : i + 1], cur[others])[0]
            for k, s in zip(others[ms <= t], ms[ms <= t], strict=True):
                a, b = (i, int(k)) if i < k else (int(k), i)
                heapq.heappush(heap, (float(s), a, b, int(version[a]), int(version[b])))
    return cur[active].astype(np.float32), conf[active].astype(np.float32)


def greedy_merge(det: Detections, threshold: float = 0.5) -> Detections:
    """OverFeat's greedy merge, per class; returns merged boxes, highest summed confidence first.

    O(n^2 log n) in the number of boxes of a class: every pair is scored once, each merge
    rescores the merged box against the others, and a heap orders the pairs.
    """
    parts = []
    for c in np.unique(det.class_id):
        sel = det.class_id == c
        boxes, conf = _merge_class(det.xyxy[sel], det.score[sel], threshold)
        parts.append(Detections(boxes, conf, np.full(len(boxes), c)))
    return Detections.concat(parts).sorted()


MERGERS = {"greedy": greedy_merge, "nms": nms}
