"""Decode on hand-worked maps: output location -> window -> box in image pixels."""

from __future__ import annotations

import numpy as np
import pytest

from overfeat_edge.arch import get_arch
from overfeat_edge.pipeline.decode import classify, decode_level, window_boxes
from overfeat_edge.spec import default_spec
from overfeat_edge.types import ScaleLevel

SPEC = default_spec(get_arch("overfeat-fast", num_classes=2), ["cat", "dog"])  # fine: out stride 16, window 231


def level(scale: float = 0.5, out_hw: tuple[int, int] = (3, 4)) -> ScaleLevel:
    return ScaleLevel(0, (0, 0), (scale, scale), (0, 0), out_hw)


def test_single_peak_hand_worked() -> None:
    scores = np.zeros((3, 3, 4), np.float32)
    scores[0] = 1.0  # background everywhere...
    scores[0, 1, 2], scores[2, 1, 2] = 0.1, 0.9  # ...but "dog" at (y=1, x=2)
    boxes = np.zeros((8, 3, 4), np.float32)
    boxes[4:, 1, 2] = [0.1, 0.2, 0.5, 0.9]  # dog's edges relative to the window
    d = decode_level(scores, boxes, level(0.5), SPEC, threshold=0.5)
    assert len(d) == 1 and d.class_id[0] == 1 and d.score[0] == pytest.approx(0.9)
    # window origin (x, y) = (2*16, 1*16) = (32, 16) in the level input; edges * 231; / 0.5
    expected = [(32 + 0.1 * 231) / 0.5, (16 + 0.2 * 231) / 0.5, (32 + 0.5 * 231) / 0.5, (16 + 0.9 * 231) / 0.5]
    np.testing.assert_allclose(d.xyxy[0], expected, rtol=1e-6)


def test_coarse_stride_geometry() -> None:
    coarse = SPEC.with_fine_stride(False)
    wb = window_boxes(level(1.0, (2, 2)), coarse)
    np.testing.assert_allclose(wb[1, 1], [32, 32, 32 + 231, 32 + 231])


def test_threshold_and_top_k() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, (3, 3, 4)).astype(np.float32)
    boxes = rng.uniform(0, 1, (8, 3, 4)).astype(np.float32)
    d = decode_level(scores, boxes, level(), SPEC, threshold=0.3)
    assert len(d) == int((scores[1:] >= 0.3).sum())
    best = int(np.argmax(scores[1:].reshape(2, -1).max(axis=1)))
    d1 = decode_level(scores, boxes, level(), SPEC, threshold=0.3, top_k_classes=1)
    assert set(d1.class_id.tolist()) == {best}


def test_swapped_edges_are_ordered() -> None:
    scores = np.zeros((3, 1, 1), np.float32)
    scores[1] = 1
    boxes = np.zeros((8, 1, 1), np.float32)
    boxes[:4, 0, 0] = [0.8, 0.9, 0.2, 0.1]
    d = decode_level(scores, boxes, level(1.0, (1, 1)), SPEC, 0.5)
    x1, y1, x2, y2 = d.xyxy[0]
    assert x1 <= x2 and y1 <= y2


def test_classify_spatial_max_then_mean() -> None:
    a = np.zeros((3, 2, 2), np.float32)
    b = np.zeros((3, 1, 3), np.float32)
    a[1, 1, 1], a[2, 0, 0] = 0.8, 0.3  # scale 1: cat max 0.8, dog max 0.3
    b[1, 0, 2], b[2, 0, 1] = 0.2, 0.9  # scale 2: cat 0.2, dog 0.9
    ids, means = classify([a, b], SPEC, top_k=2)
    assert ids.tolist() == [1, 0]
    np.testing.assert_allclose(means, [0.6, 0.5])


def test_normalize_matches_numpy_for_any_mean_and_channel_order() -> None:
    from dataclasses import replace

    from overfeat_edge.arch import get_arch
    from overfeat_edge.pipeline.preprocess import normalize
    from overfeat_edge.spec import default_spec

    spec = default_spec(get_arch("seed-net"), ["a", "b", "c"])
    img = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    for sp in (
        spec,
        replace(spec, mean=(100.0, 120.0, 140.0)),
        replace(spec, mean=(100.0, 120.0, 140.0), channel_order="bgr"),
        replace(spec, mean=(100.0, 120.0, 140.0), std=(50.0, 60.0, 70.0)),  # the numpy path
    ):
        ordered = img[:, :, ::-1] if sp.channel_order == "rgb" else img
        want = ((ordered.astype(np.float64) - np.array(sp.mean)) / np.array(sp.std)).transpose(2, 0, 1)[None]
        got = normalize(img, sp)
        assert got.dtype == np.float32 and got.shape == (1, 3, 37, 45) and got.flags.c_contiguous
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_level_inputs_are_area_means_of_the_frame() -> None:
    """Halving is 2x2 block means (numpy); a 3/4 level stays within half a grey level of a uint8 resize."""
    from overfeat_edge.arch import get_arch
    from overfeat_edge.pipeline.preprocess import level_inputs, normalize, resize
    from overfeat_edge.spec import default_spec
    from overfeat_edge.types import ScaleLevel

    spec = default_spec(get_arch("seed-net"), ["a", "b", "c"])
    img = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    levels = [
        ScaleLevel(k, hw, (hw[0] / 120, hw[1] / 160), (1, 1), (1, 1))
        for k, hw in enumerate([(120, 160), (60, 80), (90, 120)])
    ]
    full, half, three_q = level_inputs(img, levels, spec)
    np.testing.assert_allclose(full, normalize(img, spec), atol=1e-6)
    blocks = img.astype(np.float64).reshape(60, 2, 80, 2, 3).mean(axis=(1, 3))[:, :, ::-1]  # RGB
    want = ((blocks - np.array(spec.mean)) / np.array(spec.std)).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(half, want, atol=1e-5)
    u8 = normalize(resize(img, (90, 120)), spec)
    assert np.abs(three_q - u8).max() <= 0.5 / min(spec.std) + 1e-6
    (alone,) = level_inputs(img, levels[2:], spec)  # one level is resized the same way as among several
    np.testing.assert_array_equal(alone, three_q)
