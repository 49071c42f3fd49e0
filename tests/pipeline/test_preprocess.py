"""Adaptive average pooling (MTCNN's pyramid levels and crops): the C kernel and numpy's, against a plain loop."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from overfeat_edge.pipeline import preprocess
from overfeat_edge.pipeline.preprocess import adaptive_normalized, integral, level_inputs
from overfeat_edge.registry import entry
from overfeat_edge.spec import ModelSpec


def shipped_spec(name: str) -> ModelSpec:
    spec = entry(name).spec
    assert spec is not None
    return spec


@pytest.fixture(params=["numpy", "compiled"])
def compiled(request: pytest.FixtureRequest) -> bool:
    if request.param == "compiled" and not preprocess.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    return bool(request.param == "compiled")


def naive_pool(image: np.ndarray, region: tuple[int, int, int, int], hw: tuple[int, int]) -> np.ndarray:
    """torch's adaptive_avg_pool2d written out: output bin i of n pixels averages [floor(in/o), ceil((i+1)n/o))."""
    x0, y0, x1, y1 = region
    crop = image[y0:y1, x0:x1].astype(np.float64)
    h, w = crop.shape[:2]
    out = np.zeros((*hw, image.shape[2]))
    for i in range(hw[0]):
        for j in range(hw[1]):
            r0, r1 = (i * h) // hw[0], -(-((i + 1) * h) // hw[0])
            c0, c1 = (j * w) // hw[1], -(-((j + 1) * w) // hw[1])
            out[i, j] = crop[r0:r1, c0:c1].mean(axis=(0, 1))
    return out


def test_crops_are_bin_means_normalized_like_the_spec(compiled: bool) -> None:
    """Regions smaller and larger than the output, odd ratios, one-pixel regions, the whole image; RGB out of BGR."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (53, 71, 3), dtype=np.uint8)
    spec = shipped_spec("mtcnn-face")  # RGB, (x - 127.5) / 128
    regions = np.array([[0, 0, 71, 53], [3, 5, 4, 6], [10, 2, 41, 13], [60, 40, 71, 53], [5, 7, 12, 50]])
    for hw in [(24, 24), (7, 11), (48, 48)]:
        got = adaptive_normalized(integral(img), regions, hw, spec, compiled=compiled)
        assert got.shape == (len(regions), 3, *hw) and got.dtype == np.float32
        for k, r in enumerate(regions):
            ref = (naive_pool(img, tuple(r), hw)[:, :, ::-1] - 127.5) / 128  # BGR -> RGB
            np.testing.assert_allclose(got[k], ref.transpose(2, 0, 1), atol=1e-6)


def test_compiled_pooling_equals_numpy_bit_for_bit() -> None:
    """Every float32 value the same (the C kernel rounds where numpy does), for per-channel means and stds too."""
    if not preprocess.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (321, 457, 3), dtype=np.uint8)
    sums = integral(img)
    x0, y0 = rng.integers(0, 440, 300), rng.integers(0, 300, 300)
    regions = np.stack([x0, y0, x0 + rng.integers(1, 160, 300), y0 + rng.integers(1, 130, 300)], axis=1)
    regions[:, 2], regions[:, 3] = np.minimum(regions[:, 2], 457), np.minimum(regions[:, 3], 321)
    base = shipped_spec("mtcnn-face")
    for spec in (base, replace(base, mean=(103.9, 116.8, 123.7), std=(57.4, 57.1, 58.4), channel_order="bgr")):
        for hw in [(24, 24), (48, 48), (193, 274), (13, 9)]:
            a = adaptive_normalized(sums, regions, hw, spec, compiled=True)
            b = adaptive_normalized(sums, regions, hw, spec, compiled=False)
            np.testing.assert_array_equal(a, b)
    big = rng.integers(200, 256, (900, 900, 3), dtype=np.uint8)  # bins of 202,500 pixels: sums past 2^24
    for hw in [(2, 2), (3, 5), (40, 40)]:
        whole = np.array([[0, 0, 900, 900]])
        a = adaptive_normalized(integral(big), whole, hw, base, compiled=True)
        np.testing.assert_array_equal(a, adaptive_normalized(integral(big), whole, hw, base, compiled=False))


@pytest.mark.parametrize("split", [False, True], ids=["one thread", "two threads"])
def test_pyramid_levels_are_the_whole_frame_pooled(
    compiled: bool, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adaptive model's level inputs are the whole frame pooled to each level's size (a plain-loop reference),
    whether the levels are pooled in this thread or split over two."""
    from overfeat_edge.pipeline.pyramid import parse_scales, plan_levels

    monkeypatch.setattr(preprocess, "COMPILED", compiled)
    monkeypatch.setattr(preprocess, "PARALLEL_PIXELS", 0 if split else 10**12)
    monkeypatch.setattr(preprocess, "_cores", lambda: 2)
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    spec = shipped_spec("mtcnn-face")
    levels = plan_levels(spec.arch, spec.fine_stride, img.shape[:2], parse_scales(["geo:20:0.709"]))
    inputs = level_inputs(img, levels, spec)
    assert len(inputs) == len(levels) >= 3
    for lv, x in zip(levels, inputs):
        ref = (naive_pool(img, (0, 0, 90, 60), lv.input_hw)[:, :, ::-1] - 127.5) / 128
        np.testing.assert_allclose(x[0], ref.transpose(2, 0, 1), atol=1e-6)


def test_two_ways_keeps_the_order_balances_the_halves_and_raises_a_jobs_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The jobs' results come back in their own order; the two halves' weights differ by at most the lightest
    job (longest first, each to the lighter half: 8 4 2 and 6 5 3 here); a job's error reaches the caller."""
    import threading

    monkeypatch.setattr(preprocess, "PARALLEL_PIXELS", 0)
    monkeypatch.setattr(preprocess, "_cores", lambda: 2)
    weights = [5, 8, 2, 6, 3, 4]
    where: dict[int, str] = {}

    def job(i: int) -> np.ndarray:
        where[i] = threading.current_thread().name
        return np.full(2, i)

    out = preprocess.two_ways([lambda i=i: job(i) for i in range(len(weights))], weights)
    assert [int(x[0]) for x in out] == list(range(len(weights)))
    threads = {name: sum(weights[i] for i, n in where.items() if n == name) for name in set(where.values())}
    assert sorted(threads.values()) == [14, 14]

    def fails() -> np.ndarray:
        raise ValueError("job 3 broke")

    with pytest.raises(ValueError, match="job 3 broke"):
        preprocess.two_ways([lambda: np.zeros(1), lambda: np.zeros(1), lambda: np.zeros(1), fails], [1, 1, 1, 1])


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_one_thread_asked_pools_the_pyramid_in_this_thread(
    threads: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--threads 1` (load_detector's threads) keeps the pyramid's pooling in the calling thread; unset or 2,
    the levels are split over two threads where there are two cores. The inputs are the same either way."""
    import threading

    from overfeat_edge.pipeline.load import load_detector

    monkeypatch.setattr(preprocess, "PARALLEL_PIXELS", 0)
    monkeypatch.setattr(preprocess, "_cores", lambda: 2)
    where: set[str] = set()
    pool = preprocess.adaptive_normalized

    def watched(*args: object, **kw: object) -> np.ndarray:
        where.add(threading.current_thread().name)
        return pool(*args, **kw)  # type: ignore[arg-type]

    det = load_detector("mtcnn-face", backend="onnxruntime", threads=threads)
    assert det.threads == threads
    img = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    monkeypatch.setattr(preprocess, "adaptive_normalized", watched)
    levels, inputs = det.preprocess(img)
    assert len(levels) >= 3
    if threads == 1:
        assert where == {threading.current_thread().name}
    else:
        assert len(where) == 2
    monkeypatch.setattr(preprocess, "adaptive_normalized", pool)
    for x, y in zip(inputs, preprocess.level_inputs(img, levels, det.spec, threads=1)):
        np.testing.assert_array_equal(x, y)


def test_compiled_pooling_refuses_a_region_outside_the_image() -> None:
    if not preprocess.COMPILED:
        pytest.skip("the C extension was not built (no C compiler at install)")
    img = np.zeros((10, 10, 3), np.uint8)
    spec = shipped_spec("mtcnn-face")
    for bad in ([0, 0, 11, 5], [4, 4, 4, 8], [-1, 0, 3, 3]):
        with pytest.raises(ValueError, match="region 0 is empty or outside the 10x10 image"):
            adaptive_normalized(integral(img), np.array([bad]), (4, 4), spec, compiled=True)


def test_one_integral_per_frame_inside_the_block() -> None:
    """A photo's pyramid and crop stages share one integral image: the same array inside the block for that
    frame object (nested blocks too), a fresh one for another frame or outside, the values OpenCV's."""
    import cv2

    from overfeat_edge.pipeline.preprocess import one_integral

    rng = np.random.default_rng(4)
    frame, other = (rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(2))
    with one_integral(frame):
        a = integral(frame)
        with one_integral(frame):
            assert integral(frame) is a
        assert integral(frame) is a and integral(other) is not integral(other)
    assert integral(frame) is not a
    np.testing.assert_array_equal(a[:, :, 0], cv2.integral(frame[:, :, 0]))
