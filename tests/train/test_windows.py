"""Training windows: labels and box targets against hand-worked cases and against the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from overfeat_edge.arch import get_arch
from overfeat_edge.spec import default_spec
from overfeat_edge.train.datasets import Sample
from overfeat_edge.train.windows import IGNORE, assign, make_batch, sample_window


def box(*v: float) -> np.ndarray:
    return np.array([v], np.float32)


@pytest.mark.parametrize(
    ("obj", "window", "label", "target"),
    [
        # 30 px object centred in a 60 px window: r = 0.5, d = 0 -> positive, edges at 1/4 and 3/4
        ((20, 20, 50, 50), (5, 5, 65, 65), 2 + 1, (0.25, 0.25, 0.75, 0.75)),
        # moved 12 px right: d = 0.2 (> 0.15 positive, <= 0.25 regression) -> ignored, box kept
        ((32, 20, 62, 50), (5, 5, 65, 65), IGNORE, (0.45, 0.25, 0.95, 0.75)),
        # 12 px object: r = 0.2 < 0.32 -> background, no box
        ((29, 29, 41, 41), (5, 5, 65, 65), 0, None),
        # 90 px object in a 60 px window: r = 1.5 > 1.25 -> background
        ((-10, -10, 80, 80), (5, 5, 65, 65), 0, None),
    ],
)
def test_assign_hand_worked(obj, window, label, target) -> None:
    lab, tgt, cls = assign(box(*obj), np.array([2]), np.array(window, np.float32))
    assert lab == label
    if target is None:
        assert cls == -1
    else:
        assert cls == 2
        np.testing.assert_allclose(tgt, target, atol=1e-6)


def test_assign_takes_the_most_central_object() -> None:
    objs = np.array([[30, 22, 60, 52], [20, 20, 50, 50]], np.float32)  # the second is centred
    lab, tgt, cls = assign(objs, np.array([0, 1]), np.array([5, 5, 65, 65], np.float32))
    assert (lab, cls) == (2, 1)
    np.testing.assert_allclose(tgt, [0.25, 0.25, 0.75, 0.75], atol=1e-6)


def test_sampled_windows_are_square_and_inside_the_image() -> None:
    rng = np.random.default_rng(0)
    s = Sample(path=None, boxes=box(10, 200, 250, 380), labels=np.array([0]))  # type: ignore[arg-type]
    for _ in range(500):
        w = sample_window(rng, s, (384, 512), 59, 1.0)
        assert w[0] >= 0 and w[1] >= 0 and w[2] <= 512 and w[3] <= 384
        assert w[2] - w[0] == pytest.approx(w[3] - w[1])
        assert w[2] - w[0] >= 59 - 1e-3  # never finer than the largest pyramid scale


def test_box_targets_match_the_object_pixels() -> None:
    """Positive windows' targets, after crop, resize and flip, are where the white square's pixels are."""
    spec = default_spec(get_arch("overfeat-mini"), ["square", "disc", "triangle"])
    img = np.zeros((300, 400, 3), np.uint8)
    img[100:160, 120:200] = 255  # an 80x60 white rectangle
    s = Sample(path=None, boxes=box(120, 100, 200, 160), labels=np.array([0]))  # type: ignore[arg-type]
    b = make_batch(np.random.default_rng(1), [s], [img], spec, 256, photometric=False)
    pos = np.flatnonzero(b.labels == 1)
    assert len(pos) > 40
    win = spec.arch.window
    for i in pos:
        pixels = b.images[i, 0] * spec.std[0] + spec.mean[0]  # de-normalized red channel
        ys, xs = np.nonzero(pixels > 127)
        seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / win
        # the target may run past the window's edge (r up to 1.05, off-centre); the pixels stop there
        np.testing.assert_allclose(np.clip(b.boxes[i], 0, 1), seen, atol=1.6 / win)  # resampling: ~a pixel
    assert set(np.unique(b.labels)) <= {IGNORE, 0, 1}
