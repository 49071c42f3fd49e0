"""Label placement and the annotator: labels inside the frame, below the banner, never over each other."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from overfeat_edge.pipeline.draw import (
    MAX_LABELS,
    LabelAnnotator,
    banner_text,
    color,
    draw_detections,
    place_labels,
    pyramid_caption,
)
from overfeat_edge.pipeline.pyramid import parse_scales
from overfeat_edge.types import Detections


def overlap_area(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels two [x1, x2) x [y1, y2) rectangles share (written out here, not the module's test)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return int(max(w, 0) * max(h, 0))


def assert_readable(spots: np.ndarray, sizes: np.ndarray, wh: tuple[int, int], top: int) -> None:
    placed = [s for s in spots if s[0] >= 0]
    for s, size in zip(spots, sizes):
        if s[0] >= 0:
            assert (s[2] - s[0], s[3] - s[1]) == tuple(size)
    for s in placed:
        assert 0 <= s[0] and s[2] <= wh[0] and top <= s[1] and s[3] <= wh[1], s
    for a, b in itertools.combinations(placed, 2):
        assert overlap_area(a, b) == 0, (a, b)


def test_two_boxes_with_the_same_corner_get_labels_one_above_the_other():
    boxes = np.array([[50, 60, 150, 160], [52, 62, 140, 150]], np.float32)  # the demo's "squsquare" case
    sizes = np.array([[60, 14], [60, 14]])
    spots = place_labels(boxes, sizes, (320, 240), order=np.array([1, 0]))  # box 1 is the stronger
    assert spots[1].tolist() == [52, 48, 112, 62]  # the strongest keeps its own spot, just above its box
    assert overlap_area(spots[0], spots[1]) == 0
    assert spots[0].tolist() == [50, 34, 110, 48]  # the other slides up its column to the nearest free row
    assert_readable(spots, sizes, (320, 240), 0)


def test_a_box_at_the_top_edge_gets_its_label_inside_it_below_the_banner():
    boxes = np.array([[10, 0, 80, 70]], np.float32)
    spots = place_labels(boxes, np.array([[50, 12]]), (200, 100), top=18)
    assert spots[0].tolist() == [10, 18, 60, 30]


@pytest.mark.parametrize(
    "box, want",
    [
        ([190, 50, 260, 90], [150, 38, 200, 50]),  # past the right edge: pulled left to end at the edge
        ([-30, 50, 20, 90], [0, 38, 50, 50]),  # past the left edge
        ([20, 95, 60, 120], [20, 83, 70, 95]),  # below the frame: the spot above is still inside
        ([20, 130, 60, 150], [20, 88, 70, 100]),  # wholly below: pushed up to the bottom edge
    ],
)
def test_labels_are_moved_inside_the_frame(box: list[int], want: list[int]):
    spots = place_labels(np.array([box], np.float32), np.array([[50, 12]]), (200, 100))
    assert spots[0].tolist() == want


def test_a_full_column_sends_a_label_to_the_next_free_place():
    boxes = np.array([[0, 20, 50, 40]] * 3, np.float32)
    sizes = np.array([[40, 14]] * 3)
    spots = place_labels(boxes, sizes, (100, 40))  # the column holds two labels of 14 rows, not three
    assert (spots[:, 0] >= 0).all()
    assert_readable(spots, sizes, (100, 40), 0)
    assert spots[2][0] == 40  # beside the first, not over it


def test_a_label_larger_than_the_frame_is_left_out():
    spots = place_labels(np.array([[0, 0, 10, 10]], np.float32), np.array([[300, 12]]), (200, 100))
    assert spots[0].tolist() == [-1, -1, -1, -1]


@pytest.mark.parametrize("seed", range(6))
def test_many_overlapping_boxes_never_share_a_label_pixel(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 26))
    xy = rng.uniform(-20, 300, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 120, (n, 2))], axis=1).astype(np.float32)
    sizes = np.stack([rng.integers(20, 70, n), rng.integers(10, 16, n)], axis=1)
    spots = place_labels(boxes, sizes, (320, 240), top=16, order=rng.permutation(n))
    assert_readable(spots, sizes, (320, 240), 16)
    assert (spots[:, 0] >= 0).sum() == n  # at most 25 labels of 70x16 in 320x224: room for every one


def test_a_crowd_labels_its_strongest_hundred_only():
    rng = np.random.default_rng(7)
    n = 150
    xy = rng.uniform(0, 1800, (n, 2))
    boxes = np.concatenate([xy, xy + 30], axis=1).astype(np.float32)
    sizes = np.full((n, 2), (40, 12))
    order = rng.permutation(n)
    spots = place_labels(boxes, sizes, (1920, 1080), order=order)
    assert MAX_LABELS == 100
    assert set(np.flatnonzero(spots[:, 0] >= 0)) == set(order[:100].tolist())  # room for all: the first 100
    assert_readable(spots, sizes, (1920, 1080), 0)


def _two_faces() -> Detections:
    return Detections(
        xyxy=np.array([[40, 0, 120, 90], [44, 4, 116, 80]], np.float32),
        score=np.array([0.6, 0.95], np.float32),
        class_id=np.array([0, 1]),
    )


def test_annotated_labels_show_each_colour_in_its_own_rectangle():
    frame = np.zeros((120, 200, 3), np.uint8)
    det = _two_faces()
    out = LabelAnnotator(("face", "mask"), title="demo").annotate(frame, det, fps=12.0)
    assert frame.max() == 0  # a copy is drawn on, not the caller's frame
    # the rectangles the annotator used, recomputed from the same text sizes
    ann = LabelAnnotator(("face", "mask"))
    import cv2

    sizes = []
    for t in ann.labels(det):
        (tw, th), base = cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        sizes.append((tw + 4, th + base + 4))
    (_, bh), bb = cv2.getTextSize("demo  12.0 FPS", cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    spots = place_labels(det.xyxy, np.array(sizes), (200, 120), bh + bb + 10, np.array([1, 0]))
    for i, s in enumerate(spots):
        x1, y1, x2, y2 = (int(v) for v in s)
        assert y1 >= bh + bb + 10  # both boxes touch the top edge: labels come below the banner
        patch = out[y1:y2, x1:x2].reshape(-1, 3)
        own, other = np.array(color(i)), np.array(color(1 - i))
        assert (patch == own).all(axis=1).sum() > patch.shape[0] // 3  # mostly its own colour
        assert not (patch == other).all(axis=1).any()  # and none of the other's


def test_banner_leaves_out_a_frame_rate_not_yet_measured():
    assert banner_text("mtcnn-face on onnxruntime", None) == "mtcnn-face on onnxruntime"
    assert banner_text("mtcnn-face on onnxruntime", 0.0) == "mtcnn-face on onnxruntime"
    assert banner_text("cam0", 12.345) == "cam0  12.3 FPS"
    assert banner_text("", 5) == "5.0 FPS"


@pytest.mark.parametrize(
    "scales, words",
    [
        (["geo:20:0.709"], "objects from 20 px"),
        (["320", "480"], "2 scales"),
        (["320"], "1 scale"),
        (["320", "geo:12:0.5"], "1 scale, objects from 12 px"),
    ],
)
def test_pyramid_caption_has_no_rule_syntax(scales: list[str], words: str):
    assert pyramid_caption(parse_scales(scales)) == words


def test_draw_detections_keeps_its_signature():
    frame = np.full((120, 200, 3), 90, np.uint8)
    det = _two_faces()
    want = LabelAnnotator(("face", "mask")).annotate(frame, det, text="run")
    assert np.array_equal(draw_detections(frame, det, ("face", "mask"), "run"), want)
    plain = draw_detections(frame, Detections.empty(), ("face",))
    assert np.array_equal(plain, frame)  # nothing to draw, no banner: the frame unchanged
