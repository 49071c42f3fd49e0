"""Greedy merge and NMS on hand-built cases, and against naive reference implementations."""

from __future__ import annotations

import functools
import shutil
import sysconfig
from typing import Callable

import numpy as np
import pytest

from overfeat_edge.pipeline import merge
from overfeat_edge.pipeline.merge import _pairs_within, box_iou, greedy_merge, match_score, nms
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.types import Detections

Greedy = Callable[..., Detections]


@pytest.fixture(params=["numpy", "numpy-per-merge", "numpy-per-merge-rescoring", "compiled", "compiled-rescoring"])
def greedy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Greedy:
    """Every greedy test runs on each way through the code: numpy in lock step; numpy one merge at a time
    (its path for large groups), with and without the group's matrix cached; the C extension, with and
    without the matrix cached (the paths of groups too large for one)."""
    compiled = request.param.startswith("compiled")
    if compiled and not merge.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    if request.param.endswith("rescoring"):
        monkeypatch.setattr(merge, "_MATRIX_CELLS", 0)
    if request.param.startswith("numpy-per-merge"):
        monkeypatch.setattr(merge, "_BIG_GROUP", 1)
    return functools.partial(greedy_merge, compiled=compiled)


def dets(boxes: list[list[float]], scores: list[float], classes: list[int] | None = None) -> Detections:
    return Detections(
        np.array(boxes, np.float32),
        np.array(scores, np.float32),
        np.array(classes if classes is not None else [0] * len(boxes)),
    )


def test_iou_hand_worked() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1]], rtol=1e-6)


def test_match_score_hand_worked() -> None:
    a = np.array([[0, 0, 10, 10]], np.float64)
    b = np.array([[5, 0, 15, 10]], np.float64)
    # 1 - IoU = 1 - 1/3; centres 5 apart; both diagonals 10*sqrt(2)
    expected = (1 - 1 / 3) + 5 / (10 * np.sqrt(2))
    assert match_score(a, b)[0, 0] == pytest.approx(expected)
    assert match_score(a, a)[0, 0] == pytest.approx(0.0)


def test_greedy_merges_close_boxes_and_sums_confidence(greedy: Greedy) -> None:
    d = dets([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.6, 0.7, 0.9])
    m = greedy(d, threshold=0.5)
    # the two close boxes (match 0.32 + 0.1 = 0.42 <= 0.5) become their mean, confidence 1.3
    assert len(m) == 2
    np.testing.assert_allclose(m.xyxy[0], [0.5, 0.5, 10.5, 10.5])
    assert m.score[0] == pytest.approx(1.3)
    np.testing.assert_allclose(m.xyxy[1], [50, 50, 60, 60])
    assert m.score[1] == pytest.approx(0.9)


def test_greedy_mean_counts_every_member_once(greedy: Greedy) -> None:
    d = dets([[0, 0, 10, 10], [0, 0, 10, 10], [3, 0, 13, 10]], [1, 1, 1])
    m = greedy(d, threshold=1.0)
    assert len(m) == 1
    np.testing.assert_allclose(m.xyxy[0], [1, 0, 11, 10], rtol=1e-6)  # mean of the three, not ((0+0)/2+3)/2
    assert m.score[0] == pytest.approx(3)


def test_greedy_never_merges_across_classes(greedy: Greedy) -> None:
    d = dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5], [0, 1])
    assert len(greedy(d, threshold=1.0)) == 2


def naive_greedy(boxes: np.ndarray, conf: np.ndarray, t: float) -> list[tuple[tuple[float, ...], float]]:
    """The paper's loop, literally: find the best pair among all, stop when above t."""
    members = [[b] for b in boxes.astype(np.float64)]
    confs = list(conf.astype(np.float64))
    while len(members) > 1:
        cur = np.array([np.mean(m, axis=0) for m in members])
        best, pair = np.inf, None
        for i in range(len(cur)):
            for j in range(i + 1, len(cur)):
                s = match_score(cur[i : i + 1], cur[j : j + 1])[0, 0]
                if s < best:
                    best, pair = s, (i, j)
        if best > t or pair is None:
            break
        i, j = pair
        members[i] += members.pop(j)
        confs[i] += confs.pop(j)
    return sorted(((tuple(np.round(np.mean(m, axis=0), 3)), round(c, 4)) for m, c in zip_strict(members, confs)))


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_naive_loop(seed: int, greedy: Greedy) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 200, (3, 2))
    xy = centres[rng.integers(0, 3, 25)] + rng.normal(0, 6, (25, 2))
    wh = rng.uniform(30, 40, (25, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    conf = rng.uniform(0.3, 1, 25)
    m = greedy(dets(boxes.tolist(), conf.tolist()), threshold=0.6)
    got = sorted((tuple(np.round(b.astype(np.float64), 3)), round(float(s), 4)) for b, s in zip_strict(m.xyxy, m.score))
    ref = naive_greedy(boxes, conf, 0.6)
    assert len(got) == len(ref)
    for (gb, gs), (rb, rs) in zip_strict(got, ref):
        np.testing.assert_allclose(gb, rb, atol=2e-3)
        assert gs == pytest.approx(rs, abs=1e-3)


def naive_greedy_scored(boxes: np.ndarray, conf: np.ndarray, classes: np.ndarray, t: float) -> list[tuple]:
    """The paper's loop per class, the best pair found on the whole score matrix each time."""
    out = []
    for c in np.unique(classes):
        members = [[b] for b in boxes[classes == c].astype(np.float64)]
        confs = list(conf[classes == c].astype(np.float64))
        while len(members) > 1:
            cur = np.array([np.mean(m, axis=0) for m in members])
            s = match_score(cur, cur)
            s = np.minimum(s, s.T) + np.diag(np.full(len(cur), np.inf))  # float rounding can make it asymmetric
            i, j = np.unravel_index(np.argmin(s), s.shape)  # row-major on a symmetric matrix: i < j
            if s[i, j] > t:
                break
            members[i] += members.pop(j)
            confs[i] += confs.pop(j)
        out += [(int(c), tuple(np.mean(m, axis=0)), cf) for m, cf in zip_strict(members, confs)]
    return sorted(out, key=lambda r: (r[0], r[2]))


@pytest.mark.parametrize("seed", range(3))
def test_greedy_equals_naive_loop_many_groups_and_classes(seed: int, greedy: Greedy) -> None:
    """~200 windows on 12 objects of 3 classes, some objects overlapping: many groups, merged in lock step."""
    rng = np.random.default_rng(100 + seed)
    centres = rng.uniform(0, 300, (12, 2))
    size = rng.uniform(30, 90, 12)
    k = rng.integers(0, 12, 200)
    xy = centres[k] + rng.normal(0, 0.08, (200, 2)) * size[k, None]
    wh = size[k, None] * rng.uniform(0.85, 1.15, (200, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    conf = rng.uniform(0.3, 1, 200)
    classes = k % 3
    m = greedy(Detections(boxes.astype(np.float32), conf.astype(np.float32), classes), threshold=0.5)
    ref = naive_greedy_scored(boxes.astype(np.float32), conf.astype(np.float32), classes, 0.5)
    got = sorted(
        ((int(c), tuple(b), float(s)) for b, s, c in zip_strict(m.xyxy, m.score, m.class_id)),
        key=lambda r: (r[0], r[2]),
    )
    assert len(got) == len(ref) and len(ref) < 60  # it did merge: 200 windows -> about one box per object
    for (gc, gb, gs), (rc, rb, rs) in zip_strict(got, ref):
        assert gc == rc
        np.testing.assert_allclose(gb, rb, atol=1e-3)
        assert gs == pytest.approx(rs, abs=1e-4)


def test_greedy_merges_boxes_that_only_match_after_a_merge(greedy: Greedy) -> None:
    """a1-a2 score 0.854 (<= 0.9); b scores 1.0 with each of them, but 0.854 with their mean [2, 0, 12, 10]."""
    a1, a2, b = [0, 0, 10, 10], [4, 0, 14, 10], [2, 4, 12, 14]
    assert match_score(np.array([a1]), np.array([a2]))[0, 0] == pytest.approx(4 / 7 + 4 / np.sqrt(200))
    to_b = 1 - 48 / 152 + np.sqrt(20) / np.sqrt(200)  # overlap 8 x 6, centres (2, 4) apart
    assert match_score(np.array([a1, a2]), np.array([b]))[:, 0] == pytest.approx([to_b, to_b])
    assert match_score(np.array([[2, 0, 12, 10]]), np.array([b]))[0, 0] == pytest.approx(4 / 7 + 4 / np.sqrt(200))
    m = greedy(dets([a1, a2, b], [0.5, 0.25, 0.125]), threshold=0.9)
    assert len(m) == 1  # as the paper's loop does: the mean of a1 and a2 then matches b
    np.testing.assert_allclose(m.xyxy[0], [2, 4 / 3, 12, 34 / 3], rtol=1e-6)
    assert m.score[0] == pytest.approx(0.875)


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8, 1.0, 1.6])
def test_pair_search_finds_exactly_the_pairs_a_full_matrix_finds(t: float) -> None:
    """The centre-distance reach must never drop a pair: compare with every pair scored."""
    rng = np.random.default_rng(int(t * 10))
    centres = rng.uniform(-100, 200, (30, 2))
    k = rng.integers(0, 30, 400)
    size = rng.uniform(10, 80, (30, 2))
    xy = centres[k] + rng.normal(0, 0.05, (400, 2)) * size[k]  # clusters, so that strict thresholds have pairs too
    wh = size[k] * rng.uniform(0.8, 1.2, (400, 2)) * rng.choice([1, 1, 1, 0.1], (400, 1))  # some thin boxes
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    boxes[:5, 2:] = boxes[:5, :2]  # empty boxes
    classes = rng.integers(0, 3, 400)
    a, b = _pairs_within(boxes, classes, t)
    got = {(min(i, j), max(i, j)) for i, j in zip_strict(a.tolist(), b.tolist())}
    s = match_score(boxes, boxes)
    ii, jj = np.nonzero((s <= t) & (classes[:, None] == classes[None, :]))
    want = {(i, j) for i, j in zip_strict(ii.tolist(), jj.tolist()) if i < j}
    assert len(want) > 20 and got == want


def dense_windows(n: int, objects: int, classes: int, seed: int, side: float = 1000) -> Detections:
    """n windows jittered around objects 30-200 px wide on a side x side image, many of them overlapping."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, side, (objects, 2))
    size = rng.uniform(30, 200, objects)
    k = rng.integers(0, objects, n)
    xy = centres[k] + rng.normal(0, 0.1, (n, 2)) * size[k, None]
    wh = size[k, None] * rng.uniform(0.8, 1.2, (n, 2))
    return Detections(
        np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32),
        rng.uniform(0.5, 1, n).astype(np.float32),
        k % classes,
    )


def test_greedy_output_obeys_the_stopping_rule_and_keeps_every_window(greedy: Greedy) -> None:
    """On 3,000 dense windows: no two outputs of a class score <= t, confidences are conserved."""
    det = dense_windows(3000, 120, 4, seed=7)
    m = greedy(det, threshold=0.5)
    assert 60 < len(m) < 600
    for c in range(4):
        boxes = m.xyxy[m.class_id == c].astype(np.float64)
        s = match_score(boxes, boxes) + np.diag(np.full(len(boxes), np.inf))
        assert s.min() > 0.5 - 1e-6
        assert m.score[m.class_id == c].sum() == pytest.approx(det.score[det.class_id == c].sum(), rel=1e-5)


def naive_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(classes[k] != classes[i] or box_iou(boxes[i : i + 1], boxes[k : k + 1])[0, 0] <= iou for k in keep):
            keep.append(i)
    return keep


def test_nms_hand_worked() -> None:
    d = dets([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 0])
    k = nms(d, 0.5)
    np.testing.assert_allclose(k.score, [0.9, 0.7, 0.6])  # box 1 suppressed by 0; box 2 is another class


@pytest.fixture(params=["numpy", "compiled"])
def nms_compiled(request: pytest.FixtureRequest) -> bool:
    """NMS tests run on numpy's pass and on the C one (``_greedy.nms_sorted``)."""
    if request.param == "compiled" and not merge.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    return bool(request.param == "compiled")


@pytest.mark.parametrize("seed", range(5))
def test_nms_equals_naive(seed: int, nms_compiled: bool) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (300, 2))
    wh = rng.uniform(10, 80, (300, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.permutation(300).astype(np.float32) / 300  # distinct scores: one right answer
    classes = rng.integers(0, 3, 300)
    k = nms(Detections(boxes, scores, classes), 0.4, compiled=nms_compiled)
    ref = naive_nms(boxes, scores, classes, 0.4)
    np.testing.assert_array_equal(k.score, scores[ref])


def test_nms_over_the_smaller_box_hand_worked(nms_compiled: bool) -> None:
    """MTCNN's last NMS: a small box inside a big one overlaps it by 1.0 over the smaller box (IoU 0.16)."""
    d = dets([[0, 0, 10, 10], [2, 2, 6, 6], [20, 20, 30, 30], [0, 0, 5, 10]], [0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(nms(d, 0.7, "min", compiled=nms_compiled).score, [0.9, 0.7])
    np.testing.assert_allclose(nms(d, 0.7, "iou", compiled=nms_compiled).score, [0.9, 0.8, 0.7, 0.6])  # 0.16, 0.5


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("overlap", ["iou", "min"])
def test_compiled_nms_keeps_what_numpy_keeps(seed: int, overlap: str) -> None:
    """Dense boxes on a grid of whole pixels (many overlaps land exactly on the threshold), tied scores, empty
    boxes: the C pass keeps the same boxes in the same order as numpy's, every threshold."""
    if not merge.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 40, (2000, 2))
    wh = rng.integers(0, 12, (2000, 2))  # some boxes are empty (zero width or height)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    det = Detections(boxes, rng.integers(0, 20, 2000).astype(np.float32) / 20, rng.integers(0, 2, 2000))
    for t in (0.0, 0.25, 0.5, 0.7, 1.0):
        a, b = nms(det, t, overlap, compiled=False), nms(det, t, overlap, compiled=True)
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.class_id, b.class_id)


def test_empty_inputs() -> None:
    assert len(nms(Detections.empty())) == 0
    assert len(greedy_merge(Detections.empty())) == 0


def test_compiled_and_numpy_passes_give_the_same_boxes() -> None:
    """On 4,000 dense windows of overlapping objects (groups of up to ~150): the same boxes, scores and classes."""
    if not merge.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    det = dense_windows(4000, 160, 3, seed=11, side=800)
    a, b = greedy_merge(det, compiled=False), greedy_merge(det, compiled=True)
    assert 100 < len(a) < 1000 and len(a) == len(b)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-6)


def test_compiled_merge_is_built_where_a_compiler_is() -> None:
    """The extension is optional at install; where a C compiler exists, its absence is a build failure."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on this machine: the numpy pass is the one in use")
    assert merge.COMPILED, "a C compiler is present but overfeat_edge.pipeline._greedy was not built"


def test_compiled_pass_refuses_buffers_of_the_wrong_size() -> None:
    if not merge.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    assert merge._greedy is not None
    n = 4
    acc, gone = np.ones((n, 6)), np.zeros(n, np.uint8)
    order, cls, r = np.arange(n, dtype=np.int64), np.zeros(n, np.int64), np.ones(n)
    with pytest.raises(ValueError, match="rx has 24 bytes, expected 32"):
        merge._greedy.merge_pass(acc, order, r[:3], r, cls, 0.5, gone, 0)
    with pytest.raises(ValueError, match="acc has"):
        merge._greedy.merge_pass(acc[:, :5].copy(), order, r, r, cls, 0.5, gone, 0)
