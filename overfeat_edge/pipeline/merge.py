"""Box merging: OverFeat's greedy merge (paper 4.3) and class-aware NMS, pure numpy.

match_score (the paper gives no formula; this is ours): for boxes a and b,

    match_score(a, b) = (1 - IoU(a, b)) + |centre(a) - centre(b)| / mean(diag(a), diag(b))

0 for identical boxes; >= 1 for boxes that do not overlap. Lower is a better match. Greedy
merge repeatedly merges the best-matching pair of the same class while its score is <= t. A
merged box is the mean of its member boxes' coordinates (every original box counts once, so
the order of merges does not bias it); its confidence is the sum of its members' confidences.

How it is computed (the paper's loop rescans all pairs after every merge, O(n^3)):

1. Only pairs that can score <= t are scored: sorted by centre x (classes apart), each box
   is compared with the boxes whose centre lies within the reach the score allows (below).
2. Boxes linked by a pair <= t form groups (connected components). Inside a group the
   paper's loop runs unchanged: its best pair first, the merged box rescored against the
   group. All groups take their step together (one numpy step per merge *round*, not per
   merge), so a frame costs about as many steps as its largest group has boxes.
3. A merged box can come to match a box of another group (rare: the mean moved towards it).
   The merged boxes go through steps 1-2 again until no two boxes of a class score <= t:
   the paper's stopping rule holds for every output. The result equals the paper's global
   best-first loop whenever no merged box meets another group on the way (the tests compare
   the two); otherwise only the order of those cross-group merges differs.

Two implementations of a pass, one result: ``_greedy.c`` (built at install where a C compiler
is present: a sweep for the pairs, union-find for the groups, and each group's loop with a
cached minimum per row) and the numpy one below, used where the extension was not built
(``COMPILED`` says which). numpy steps the groups of up to _BIG_GROUP boxes in lock step, so
their cost is set by the number of rounds and the call overhead of each; larger groups (one
object filling the frame at fine stride gives thousands of windows) take C's algorithm, one
merge per numpy step. Both keep a large group's K x K matrix only up to _MATRIX_CELLS entries.

The reach: score <= t means |centre(a) - centre(b)| <= t * (diag(a) + diag(b)) / 2, and for
t < 1 also IoU >= 1 - t, which bounds each side of b by a's side / (1 - t), so diag(b) <=
diag(a) / (1 - t).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from overfeat_edge.types import Detections

try:
    from overfeat_edge.pipeline import _greedy
except ImportError:  # not built (no C compiler at install): the numpy pass below does the same
    _greedy = None  # type: ignore[assignment]

COMPILED = _greedy is not None
"""Whether greedy merge runs the compiled pass (``overfeat-edge doctor`` reports it)."""

_PAIR_CHUNK = 1 << 18  # candidate pairs scored at once (about 70 MB of temporaries)
_ROUND_CELLS = 1 << 16  # score-matrix entries (groups x K x K) a merge round scans; larger batches pay in argmin
_MATRIX_CELLS = 1 << 22  # a large group's score matrix is cached up to 32 MiB; larger groups rescore rows
_BIG_GROUP = 128  # numpy pass: larger groups merge one pair per step (_merge_big_group), not in lock step


def box_area(xyxy: np.ndarray) -> np.ndarray:
    return np.maximum(xyxy[..., 2] - xyxy[..., 0], 0) * np.maximum(xyxy[..., 3] - xyxy[..., 1], 0)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes broadcast against each other on their leading axes (last axis: xyxy); 0 if both are empty."""
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = iw * ih
    return inter / np.maximum(box_area(a) + box_area(b) - inter, 1e-12)


def _match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """match_score of boxes broadcast against each other on their leading axes."""
    dx = a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]
    dy = a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]
    da = np.hypot(a[..., 2] - a[..., 0], a[..., 3] - a[..., 1])
    db = np.hypot(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])
    return (1.0 - _iou(a, b)) + np.hypot(dx, dy) / np.maximum(da + db, 2e-6)  # centre distance / mean diagonal


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    return _iou(a[:, None, :], b[None, :, :])


def match_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise match score of (N, 4) and (M, 4) boxes -> (N, M); see the module docstring."""
    return _match(a[:, None, :], b[None, :, :])


def nms(
    det: Detections, iou_threshold: float = 0.5, overlap: str = "iou", *, compiled: bool | None = None
) -> Detections:
    """Class-aware non-maximum suppression; returns the kept detections, best first.

    ``overlap`` "iou" (intersection over union) or "min" (intersection over the smaller box, as
    MTCNN's last stage uses it). ``compiled``: the C pass (``_greedy.nms_sorted``, the default where
    it was built) or numpy's (:func:`_nms_sorted`); the same kept boxes either way.
    """
    use_c = COMPILED if compiled is None else compiled
    if use_c and _greedy is None:
        raise RuntimeError("the compiled NMS was asked for, but the C extension was not built")
    sweep = _compiled_nms if use_c else _nms_sorted
    if overlap not in ("iou", "min"):
        raise ValueError(f"overlap must be 'iou' or 'min', got {overlap!r}")
    if len(det) == 0:
        return det
    order = np.argsort(-det.score, kind="stable")
    keep: list[np.ndarray] = []
    for c in np.unique(det.class_id):
        idx = order[det.class_id[order] == c]  # this class, best first
        keep.append(idx[sweep(det.xyxy[idx].astype(np.float32), iou_threshold, overlap == "min")])
    kept = np.concatenate(keep)
    return det[kept[np.argsort(-det.score[kept], kind="stable")]]


def _nms_sorted(boxes: np.ndarray, t: float, over_min: bool = False) -> np.ndarray:
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
        union = np.minimum(area[i], area[rest]) if over_min else area[i] + area[rest] - inter
        idx = rest[inter / np.maximum(union, 1e-12) <= t]
    return np.asarray(keep, dtype=np.int64)


def _compiled_nms(boxes: np.ndarray, t: float, over_min: bool = False) -> np.ndarray:
    """:func:`_nms_sorted` in C (``_greedy.nms_sorted``: the same steps in float32, in numpy's order)."""
    assert _greedy is not None
    keep = np.empty(len(boxes), np.int64)
    n = _greedy.nms_sorted(np.ascontiguousarray(boxes, dtype=np.float32), float(t), over_min, keep)
    return keep[:n]


def _reach(boxes: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """How far (x, y) from a box's centre another box's centre can be for the pair to score <= t."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    diag = np.hypot(w, h)
    other = np.minimum(diag / (1 - t), diag.max()) if t < 1 else np.full(len(boxes), diag.max())
    r = t * np.maximum((diag + other) / 2, 1e-6)
    rx = ry = r
    if t < 1:  # the sides overlap by >= (1 - t) * the longer side
        c = max(0.5 + max(0.0, t - 0.5) / (1 - t), t)
        rx, ry = np.minimum(rx, c * np.abs(w)), np.minimum(ry, c * np.abs(h))
    return rx * (1 + 1e-9) + 1e-9, ry * (1 + 1e-9) + 1e-9


def _sweep_order(boxes: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order both passes sweep the boxes in (by class, then centre x; ties by index) and each box's class rank."""
    _, rank = np.unique(cls, return_inverse=True)
    rank = rank.reshape(-1)
    return np.lexsort(((boxes[:, 0] + boxes[:, 2]) / 2, rank)), rank


def _pairs_within(boxes: np.ndarray, cls: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of the same class whose match score is <= t (each pair once)."""
    n = len(boxes)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    rx, ry = _reach(boxes, t)
    span = float(cx.max() - cx.min() + 2 * rx.max() + 1)
    order, cls_rank = _sweep_order(boxes, cls)
    key = cx - cx.min() + cls_rank * span  # one class never reaches the next; non-decreasing in sweep order
    key, ky, rx, ry = key[order], cy[order], rx[order], ry[order]
    count = np.searchsorted(key, key + rx, side="right") - np.arange(1, n + 1)  # partners after each box
    ends = np.cumsum(count)
    firsts, seconds = [], []
    start = 0
    while start < n:  # about _PAIR_CHUNK candidate pairs at a time, as positions in sorted order
        base = ends[start - 1] if start else 0
        stop = min(n, max(start + 1, int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right"))))
        cnt = count[start:stop]
        a = np.repeat(np.arange(start, stop), cnt)
        b = np.arange(len(a)) - np.repeat(np.cumsum(cnt) - cnt, cnt) + a + 1
        # the reach holds from either box's side: check the partner's too, in x and in y
        near = (key[b] - key[a] <= rx[b]) & (np.abs(ky[a] - ky[b]) <= np.minimum(ry[a], ry[b]))
        a, b = order[a[near]], order[b[near]]
        ok = _match(boxes[a], boxes[b]) <= t
        firsts.append(a[ok])
        seconds.append(b[ok])
        start = stop
    return np.concatenate(firsts), np.concatenate(seconds)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes linked by edges (a, b): the smallest member index."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # pointer jumping: follow labels to their own labels
        if np.array_equal(new, label):
            return label
        label = new


def _merge_groups(groups: np.ndarray, acc: np.ndarray, t: float) -> np.ndarray:
    """Run the greedy loop inside every group of ``groups`` (C, K) box indices (-1 pads) in lock step.

    ``acc`` rows are (x1, y1, x2, y2 sums, member count, confidence sum); merged boxes are written
    back at the pair's lower index. Returns the indices of the boxes merged away.
    """
    c, k = groups.shape
    valid = groups >= 0
    a = acc[np.where(valid, groups, 0)]
    box = a[..., :4] / a[..., 4:5]
    score = _match(box[:, :, None, :], box[:, None, :, :])
    score[~(valid[:, :, None] & valid[:, None, :]) | (score > t)] = np.inf
    score[:, np.arange(k), np.arange(k)] = np.inf
    alive = valid.copy()
    flat = score.reshape(c, k * k)
    rows = np.arange(c)
    while True:
        best = flat.argmin(axis=1)  # row-major: the pair's lower index first, as in the paper's loop
        go = flat[rows, best] <= t
        if not go.any():
            break
        live, best = rows[go], best[go]
        i, j = np.divmod(best, k)
        a[live, i] += a[live, j]
        box[live, i] = a[live, i, :4] / a[live, i, 4:5]
        alive[live, j] = False
        score[live, j, :] = np.inf
        score[live, :, j] = np.inf
        row = _match(box[live, i][:, None, :], box[live])
        row[~alive[live] | (row > t)] = np.inf
        row[np.arange(len(live)), i] = np.inf
        score[live, i, :] = row
        score[live, :, i] = row
    acc[groups[valid]] = a[valid]
    return groups[valid & ~alive]


def _merge_pass(acc: np.ndarray, cls: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray] | None:
    """One pass of steps 1-2 (module docstring); None when no pair scores <= t."""
    n = len(acc)
    a, b = _pairs_within(acc[:, :4] / acc[:, 4:5], cls, t)
    if len(a) == 0:
        return None
    label = _components(n, a, b)
    order = np.argsort(label, kind="stable")  # boxes by group, each group in index order
    starts = np.flatnonzero(np.r_[True, label[order][1:] != label[order][:-1]])
    sizes = np.diff(np.r_[starts, n])
    acc = acc.copy()
    gone = []
    for g in np.flatnonzero(sizes > _BIG_GROUP):  # one merge per numpy step, as the C pass
        gone.append(_merge_big_group(order[starts[g] : starts[g] + sizes[g]], acc, t))
    big = np.flatnonzero((sizes > 1) & (sizes <= _BIG_GROUP))
    big = big[np.argsort(-sizes[big], kind="stable")]
    lo = 0
    while lo < len(big):  # batches of groups padded to the batch's largest: rounds vs cells per round
        k = int(sizes[big[lo]])
        hi = lo + max(1, min(len(big) - lo, _ROUND_CELLS // (k * k)))
        batch = big[lo:hi]
        groups = np.full((len(batch), k), -1)
        col = np.arange(k)
        fill = col[None, :] < sizes[batch][:, None]
        groups[fill] = order[(starts[batch][:, None] + col[None, :])[fill]]
        gone.append(_merge_groups(groups, acc, t))
        lo = hi
    keep = np.ones(n, bool)
    keep[np.concatenate(gone)] = False
    return acc[keep], cls[keep]


def _merge_big_group(idx: np.ndarray, acc: np.ndarray, t: float) -> np.ndarray:
    """The greedy loop in one large group (``idx``: its boxes, ascending), with ``_greedy.c``'s bookkeeping.

    Each row keeps its minimum and where it lies; a merge rescores the merged row and rescans the
    rows whose minimum it moved, all in one numpy call (C defers those rescans instead, keeping the
    old minimum as a lower bound), so a merge costs O(K) numpy work, not a K x K argmin per round.
    The score matrix is kept up to _MATRIX_CELLS entries; beyond that rescanned rows are rescored.
    Merged boxes are written into ``acc``; returns the indices merged away.
    """
    k = len(idx)
    a = acc[idx]
    box = a[:, :4] / a[:, 4:5]
    alive = np.ones(k, bool)
    cols = np.arange(k)

    def rows(r: np.ndarray) -> np.ndarray:  # entries of rows r: the score, inf above t, for a gone box or itself
        e = _match(box[r][:, None, :], box[None, :, :])
        e[(e > t) | ~alive[None, :] | (r[:, None] == cols[None, :])] = np.inf
        return e

    s = None
    if k * k <= _MATRIX_CELLS:  # filled 256 rows at a time, so that _match's temporaries stay small
        s = np.concatenate([rows(cols[lo : lo + 256]) for lo in range(0, k, 256)])
        s = np.minimum(s, s.T)  # symmetric, so that the best pair's lower index is the row found first
    rmin = np.full(k, np.inf)
    rarg = np.zeros(k, np.int64)

    def scan(r: np.ndarray) -> None:  # rows r's minima, 256 rows at a time (rescored rows: 256 x K at most)
        for lo in range(0, len(r), 256):
            part = r[lo : lo + 256]
            e = s[part] if s is not None else rows(part)
            rmin[part], rarg[part] = e.min(axis=1), e.argmin(axis=1)

    scan(cols)
    while True:
        i = int(rmin.argmin())
        if not rmin[i] <= t:
            break
        j = int(rarg[i])
        a[i] += a[j]
        box[i] = a[i, :4] / a[i, 4]
        alive[j] = False
        rmin[j] = np.inf
        row = rows(np.array([i]))[0]
        if s is not None:
            s[i], s[:, i], s[:, j] = row, row, np.inf
        rescan = alive & ((rarg == j) | ((rarg == i) & (row > rmin)))
        rescan[i] = True
        better = alive & ~rescan & ((row < rmin) | ((row == rmin) & (i < rarg)))
        rmin[better], rarg[better] = row[better], i
        scan(np.flatnonzero(rescan))
    acc[idx] = a
    return idx[~alive]


def _compiled_pass(acc: np.ndarray, cls: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The same pass as _merge_pass, in C (_greedy.c); None when no pair scores <= t."""
    assert _greedy is not None
    boxes = acc[:, :4] / acc[:, 4:5]
    cls = np.ascontiguousarray(cls, dtype=np.int64)
    rx, ry = _reach(boxes, t)
    order = _sweep_order(boxes, cls)[0].astype(np.int64)
    acc = np.array(acc, dtype=np.float64, order="C")  # written in place: the caller's array stays as it was
    gone = np.zeros(len(acc), np.uint8)
    rx, ry = (np.ascontiguousarray(r, dtype=np.float64) for r in np.broadcast_arrays(rx, ry))
    if _greedy.merge_pass(acc, order, rx, ry, cls, float(t), gone, _MATRIX_CELLS) == 0:
        return None
    keep = gone == 0
    return acc[keep], cls[keep]


def greedy_merge(det: Detections, threshold: float = 0.5, *, compiled: bool | None = None) -> Detections:
    """OverFeat's greedy merge, per class; returns merged boxes, highest summed confidence first, with
    their members' mean confidence (0-1) as ``data["confidence"]``.

    ``compiled``: None takes the C pass where it was built; False the numpy pass; True requires C.
    """
    if compiled and _greedy is None:
        raise RuntimeError("the compiled greedy merge was not built (no C compiler at install)")
    if len(det) == 0:
        return det
    merge_pass = _compiled_pass if (COMPILED if compiled is None else compiled) else _merge_pass
    acc = np.concatenate([det.xyxy, np.ones((len(det), 1)), det.score[:, None]], axis=1, dtype=np.float64)
    cls = det.class_id
    while (merged := merge_pass(acc, cls, threshold)) is not None:
        acc, cls = merged
    box = (acc[:, :4] / acc[:, 4:5]).astype(np.float32)
    confidence = (acc[:, 5] / acc[:, 4]).astype(np.float32)  # the members' mean: 0-1, what a user thresholds
    return Detections(box, acc[:, 5].astype(np.float32), cls, data={"confidence": confidence}).sorted()


MERGERS: dict[str, Callable[[Detections, float], Detections]] = {"greedy": greedy_merge, "nms": nms}
