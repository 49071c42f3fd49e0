"""ByteTrack: the assignment against brute force, and identities on generated scenes with known
identities (crossings, occlusions, low-score frames, leaving and re-entering), scored by ID
switches and MOTA computed by a reference written here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from overfeat_edge.pipeline.track import ByteTrack, assign, match_pairs
from overfeat_edge.types import Detections


@pytest.mark.parametrize("seed", range(30))
def test_assignment_is_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 6, size=2)
    cost = rng.uniform(0, 1.2, size=(n, m))
    limit = 0.8
    pairs = assign(cost, limit)
    assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
    assert all(cost[r, c] <= limit for r, c in pairs)
    # brute force over every partial matching: matched pairs cost their cost, the rest limit + 1 each
    size = max(n, m)
    padded = np.full((size, size), limit + 1.0)
    padded[:n, :m] = np.minimum(cost, limit + 1.0)
    best = min(sum(padded[i, p[i]] for i in range(size)) for p in itertools.permutations(range(size)))
    got = sum(cost[r, c] for r, c in pairs) + (limit + 1.0) * (size - len(pairs))
    assert got == pytest.approx(best)


def scene(seed: int, frames: int = 90) -> list[list[tuple[int, np.ndarray, float]]]:
    """Per frame, (true id, box, score) of four objects: two crossing, one hidden for 8 frames,
    one with low scores for a while, one leaving the view and coming back; a little box noise."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(frames):
        objs = []
        a = np.array([20 + 4 * t, 100, 60 + 4 * t, 140], float)  # left to right
        b = np.array([380 - 4 * t, 110, 420 - 4 * t, 150], float)  # right to left: crosses a near t = 45
        c = np.array([100, 250 + t, 150, 300 + t], float)  # occluded for t in [30, 38)
        d = np.array([300, 300, 340, 340], float) + 2 * np.sin(t / 5)  # low scores for t in [50, 60)
        e = np.array([500 + 3 * t, 50, 540 + 3 * t, 90], float)  # leaves the frame (x > 640) at t ~ 47
        objs.append((1, a, 0.9))
        objs.append((2, b, 0.85))
        if not 30 <= t < 38:
            objs.append((3, c, 0.9))
        objs.append((4, d, 0.3 if 50 <= t < 60 else 0.9))
        if e[2] <= 640:
            objs.append((5, e, 0.9))
        out.append([(i, box + rng.normal(0, 1.0, 4), s) for i, box, s in objs])
    return out


def mot_metrics(truth: list[list[tuple[int, np.ndarray]]], pred: list[Detections]) -> tuple[float, int]:
    """(MOTA, ID switches) by the CLEAR MOT rules, matching greedily by IoU >= 0.5 per frame."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    last: dict[int, int] = {}
    misses = fps = switches = gts = 0
    for objs, d in zip(truth, pred):
        gts += len(objs)
        pairs = sorted(
            ((iou(box, d.xyxy[j]), i, j) for i, (_, box) in enumerate(objs) for j in range(len(d))), reverse=True
        )
        used_g: set[int] = set()
        used_p: set[int] = set()
        for v, i, j in pairs:
            if v < 0.5 or i in used_g or j in used_p:
                continue
            used_g.add(i)
            used_p.add(j)
            gid, pid = objs[i][0], int(d.tracker_id[j])
            if gid in last and last[gid] != pid:
                switches += 1
            last[gid] = pid
        misses += len(objs) - len(used_g)
        fps += len(d) - len(used_p)
    return 1 - (misses + fps + switches) / gts, switches


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identities_survive_crossings_occlusions_and_low_scores(seed: int) -> None:
    frames = scene(seed)
    tracker = ByteTrack()
    pred = []
    for objs in frames:
        d = Detections(
            np.array([b for _, b, _ in objs], np.float32).reshape(-1, 4),
            np.array([s for _, _, s in objs], np.float32),
            np.zeros(len(objs)),
        )
        out = tracker.update(d)
        assert out.tracker_id is not None and len(set(out.tracker_id.tolist())) == len(out)
        pred.append(out)
    truth = [[(i, b) for i, b, _ in objs] for objs in frames]
    mota, switches = mot_metrics(truth, pred)
    assert switches == 0, switches
    assert mota >= 0.95, mota
    # object 4 scores 0.3 in frames 50-59: the second association keeps it, with its identity
    assert object_ids(frames, pred, 4, range(45, 65)) == {object_ids(frames, pred, 4, [45]).pop()}
    # without the second association (low = high) it is dropped in those frames
    plain = ByteTrack(low=0.5)
    pred2 = [
        plain.update(Detections(np.array([b for _, b, _ in o], np.float32), [s for *_, s in o], np.zeros(len(o))))
        for o in frames
    ]
    assert object_ids(frames, pred2, 4, range(50, 60)) == set()


def object_ids(frames: list, pred: list[Detections], gid: int, ts: object) -> set[int]:
    """The tracker ids given to true object ``gid`` (IoU >= 0.5) in frames ``ts``."""
    out = set()
    for t in ts:
        box = next(b for i, b, _ in frames[t] if i == gid)
        d = pred[t]
        for j in range(len(d)):
            a = d.xyxy[j]
            w = max(0.0, min(a[2], box[2]) - max(a[0], box[0]))
            h = max(0.0, min(a[3], box[3]) - max(a[1], box[1]))
            inter = w * h
            if inter / ((a[2] - a[0]) * (a[3] - a[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter) >= 0.5:
                out.add(int(d.tracker_id[j]))
    return out


def test_per_class_and_data_carried() -> None:
    tracker = ByteTrack(per_class=True)
    box = np.array([[10, 10, 50, 50]], np.float32)
    first = tracker.update(Detections(box, [0.9], [0], data={"landmarks": np.zeros((1, 5, 2))}))
    again = tracker.update(Detections(box + 1, [0.9], [1], data={"landmarks": np.ones((1, 5, 2))}))
    assert first.tracker_id.tolist() == [1]
    assert again.tracker_id.tolist() == [] or again.tracker_id.tolist() != [1]  # another class: not the same track
    back = tracker.update(Detections(box + 2, [0.9], [0], data={"landmarks": np.ones((1, 5, 2))}))
    assert back.tracker_id.tolist() == [1] and back.data["landmarks"].shape == (1, 5, 2)


@pytest.mark.parametrize("seed", range(30))
def test_byte_matching_equals_lapjv_extension_solved_by_scipy(seed: int) -> None:
    # ByteTrack's linear_assignment: lap.lapjv(cost, extend_cost=True, cost_limit=limit), i.e. the
    # (n + m) square [[cost, limit/2], [limit/2, 0]]; here solved by scipy (another solver)
    linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 7, size=2)
    cost, limit = rng.uniform(0, 1.2, size=(n, m)), 0.8
    ext = np.full((n + m, n + m), limit / 2)
    ext[n:, m:] = 0
    ext[:n, :m] = cost
    rows, cols = linear_sum_assignment(ext)
    want = sorted((int(r), int(c)) for r, c in zip(rows, cols) if r < n and c < m)
    assert sorted(match_pairs(cost, limit)) == want


def _det(boxes: list[list[float]], scores: list[float] | None = None, **data: np.ndarray) -> Detections:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(b, scores if scores is not None else [0.9] * len(b), np.zeros(len(b)), data=data)


def test_detection_own_box_and_data_out() -> None:
    tracker = ByteTrack()
    rng = np.random.default_rng(0)
    for t in range(10):
        boxes = [[10 + 5 * t, 10, 50 + 5 * t, 50], [200, 200 + 3 * t, 260, 260 + 3 * t]]
        boxes = (np.array(boxes) + rng.normal(0, 2, (2, 4))).tolist()
        lm = rng.uniform(0, 100, (2, 5, 2)).astype(np.float32)
        order = [1, 0] if t % 2 else [0, 1]  # the input's order is kept
        boxes = [boxes[i] for i in order]
        out = tracker.update(_det(boxes, landmarks=lm))
        assert out.tracker_id.tolist() == [i + 1 for i in order]
        assert np.array_equal(out.xyxy, np.array(boxes, np.float32))  # not the Kalman box
        assert np.array_equal(out.data["landmarks"], lm)


def test_unconfirmed_track_needs_its_next_frame() -> None:
    tracker = ByteTrack()
    a = [10, 10, 50, 50]
    assert tracker.update(_det([a])).tracker_id.tolist() == [1]  # the first frame: confirmed at once
    b = [300, 300, 340, 340]
    assert tracker.update(_det([a, b])).tracker_id.tolist() == [1]  # b: unconfirmed, not shown
    assert tracker.update(_det([a])).tracker_id.tolist() == [1]  # b missed its second frame: dropped
    assert tracker.update(_det([a, b])).tracker_id.tolist() == [1]
    assert tracker.update(_det([a, b])).tracker_id.tolist() == [1, 2]  # confirmed: the next public id


@pytest.mark.parametrize(("fps", "same"), [(30.0, True), (15.0, False)])
def test_lost_buffer_in_frames_of_the_source(fps: float, same: bool) -> None:
    # buffer 10 frames at 30 fps: 10 frames at 30 fps, 5 at 15 fps; the object is missed for 7
    tracker = ByteTrack(buffer=10, fps=fps)
    assert tracker.max_lost == (10 if fps == 30 else 5)
    box = [100, 100, 150, 150]
    for _ in range(5):
        first = tracker.update(_det([box])).tracker_id.tolist()
    for _ in range(7):
        tracker.update(_det([]))
    tracker.update(_det([box]))
    again = tracker.update(_det([box])).tracker_id.tolist()
    assert first == [1] and (again == [1]) == same


def test_reset_starts_over() -> None:
    tracker = ByteTrack()
    for t in range(3):
        tracker.update(_det([[10 + t, 10, 50 + t, 50], [100, 100, 140, 140]]))
    tracker.reset()
    assert tracker.tracks == {} and tracker.frame == 0
    assert tracker.update(_det([[400, 400, 440, 440]])).tracker_id.tolist() == [1]


def test_score_fusion_prefers_the_confident_box() -> None:
    # a track at [0, 0, 100, 100]; two boxes compete: 15 px right (IoU 85/115, score 0.9: fused
    # cost 1 - 0.739 * 0.9 = 0.335) and 10 px left (IoU 90/110, score 0.55: 1 - 0.818 * 0.55 =
    # 0.550). By IoU alone the second would win (0.182 against 0.261).
    tracker = ByteTrack()
    tracker.update(_det([[0, 0, 100, 100]]))
    out = tracker.update(_det([[-10, 0, 90, 100], [15, 0, 115, 100]], [0.55, 0.9]))
    assert out.tracker_id.tolist() == [1] and out.xyxy.tolist() == [[15, 0, 115, 100]]
