"""INT8 calibration sources for TensorRT: the retargeted cache and the on-device crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.engine.calibration import (
    MAX_CROPS,
    check_cache_file,
    crop_shape,
    crops,
    device_calibration,
    retarget_cache,
)
from overfeat_edge.engine.compat import TrtVersion
from overfeat_edge.engine.profiles import plan_profiles
from overfeat_edge.errors import InputError
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime import load_runner

CACHE = b"TRT-8601-EntropyCalibration2\ninput: 3c010204\nconv1: 3d4ccccd\n"


@pytest.mark.parametrize(("version", "header"), [("8.5.2", b"TRT-8502-"), ("10.3.0", b"TRT-100300-")])
def test_cache_header_is_written_for_the_tensorrt_that_builds(version: str, header: bytes) -> None:
    got = retarget_cache(CACHE, TrtVersion.parse(version), "c")
    assert got.startswith(header + b"EntropyCalibration2\n")
    assert got.split(b"\n", 1)[1] == CACHE.split(b"\n", 1)[1]  # the scales untouched


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a cache", "not a TensorRT calibration cache"),
        (b"TRT-8601-EntropyCalibration2\n", "not a TensorRT calibration cache"),  # no scales
        (b"TRT-8601-MinMaxCalibration\ninput: 3c010204\n", "MinMaxCalibration calibrator"),
    ],
)
def test_foreign_caches_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "c.cache"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        check_cache_file(path)
    with pytest.raises(InputError, match="no such file"):
        check_cache_file(tmp_path / "missing.cache")


def test_crops_cover_the_level_at_stride_multiples() -> None:
    x = np.arange(1 * 2 * 37 * 50, dtype=np.float32).reshape(1, 2, 37, 50)
    got = crops(x, (16, 20), stride=4)
    covered = np.zeros((37, 50), bool)
    for c in got:
        assert c.shape == (1, 2, 16, 20)
        i, j = divmod(int(c[0, 0, 0, 0]), 50)  # the crop's top-left element says where it came from
        assert i % 4 == 0 and j % 4 == 0
        assert np.array_equal(c, x[:, :, i : i + 16, j : j + 20])
        covered[i : i + 16, j : j + 20] = True
    # all but the last < stride rows and columns (offsets stay multiples of the stride)
    assert covered[: 37 - 3, : 50 - 3].all()


def test_a_stride_aligned_crop_sees_the_level_activations() -> None:
    """Why crops are a fair calibration set: the network maps a crop at a multiple of its output
    stride to the matching part of the level's maps, except within reach of the padded layers'
    zeros at the crop's border (reach worked out here from the layer table)."""
    runner = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1)
    spec, s = runner.spec, runner.spec.out_stride
    reach, stride = 0, 1
    for layer in spec.arch.features:
        reach += layer.p * stride
        stride *= layer.s
    margin = -(-reach // s)  # output cells next to a crop edge that see its padding
    x = np.random.default_rng(0).normal(size=(1, 3, 227, 291)).astype(np.float32)
    full = list(runner.run(x).values())
    checked = 0
    for c in crops(x, (180, 200), stride=s):
        i, j = (int(v) for v in np.argwhere(x[0, 0] == c[0, 0, 0, 0])[0])
        for a, b in zip_strict(runner.run(np.ascontiguousarray(c)).values(), full):
            h, w = a.shape[2:]
            want = b[:, :, i // s : i // s + h, j // s : j // s + w]
            np.testing.assert_allclose(
                a[:, :, margin:-margin, margin:-margin], want[:, :, margin:-margin, margin:-margin], atol=1e-4
            )
            checked += a[:, :, margin:-margin, margin:-margin].size
    assert margin == 3 and checked > 0  # overfeat-mini: three padded 3x3 convs at stride 8


def test_device_calibration_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    spec = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1).spec
    scales = list(spec.scales)
    profiles = plan_profiles(spec, (240, 320), scales)
    data = device_calibration(spec=spec, images=str(tmp_path), count=3, scales=scales, profiles=profiles)
    hw = crop_shape(profiles)
    assert data.shape == (1, 3, *hw) and hw == (min(p.opt[2] for p in profiles), min(p.opt[3] for p in profiles))
    assert data.batches is not None and data.cache is None and data.digest
    batches = list(data.batches())
    assert 3 * len(profiles) <= len(batches) <= MAX_CROPS  # at least one crop per level of every image
    assert all(b.shape == data.shape and b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    assert len(list(data.batches())) == len(batches)  # TensorRT may ask twice: the data can be replayed
    with pytest.raises(InputError, match=r"no such file|not found|no images|no readable"):
        device_calibration(spec=spec, images=str(tmp_path / "none"), count=3, scales=scales, profiles=profiles)


def _standin_calibrator_base(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    class Base:  # TensorRT's IInt8EntropyCalibrator2 stand-in: only the base class the calibrator derives from
        def __init__(self) -> None:
            pass

    monkeypatch.setattr("overfeat_edge.engine.trt.trt", types.SimpleNamespace(IInt8EntropyCalibrator2=Base))


def test_the_calibrator_frees_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from overfeat_edge.engine.calibration import CalibrationData
    from overfeat_edge.engine.trt import _Calibration, _calibrator

    from .standin import StandInCuda

    _standin_calibrator_base(monkeypatch)
    data = CalibrationData(shape=(1, 3, 8, 8), batches=lambda: iter([np.ones((1, 3, 8, 8), np.float32)]))
    cuda = StandInCuda(fail_malloc_after=0)  # the device buffer cannot be allocated
    with pytest.raises(MemoryError):
        _calibrator(data, cuda, _Calibration())
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}  # the pinned buffer too
    cuda = StandInCuda()
    calibrator = _calibrator(data, cuda, _Calibration())
    assert calibrator.get_batch(["input"]) == [calibrator.device] and len(cuda.streams) == 1
    calibrator.free()
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}  # its stream too
