"""[no TensorRT import] What a TensorRT INT8 build is calibrated with (TensorRT <= 10).

Two sources, both checked here so that a build never ends in an engine without INT8 scales:

* **on the device** (``build --precision int8 --calib-images DIR``, as jetson-inference and
  ultralytics do it): TensorRT's own entropy calibrator runs over the runtime's preprocessing
  (:func:`~overfeat_edge.calibrate.quantize.pyramid_inputs`) at every pyramid scale. TensorRT
  calibrates at one input shape (the calibration profile's), so every level of every image is
  cut into crops of the largest shape every level contains, at offsets that are multiples of the
  network's output stride: the crop's windows are windows of the level with the same pooling
  phase, so its activations are the level's, except within reach of the padded layers' zeros at
  the crop's border (as at the level's own border; tested). The cache TensorRT writes is kept
  beside the engine and hashed in its manifest.
* **a cache** from ``overfeat-edge calibrate`` (ranges measured with ONNX Runtime): its header is
  rewritten for the TensorRT that builds, from ``trt.__version__`` (TensorRT ignores a cache whose
  version field is not its own, then asks the calibrator for data it does not have).

TensorRT 11 has no calibrators: INT8 comes from the Q/DQ ONNX that ``calibrate`` writes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overfeat_edge.engine.compat import TrtVersion, cache_version_field
from overfeat_edge.engine.profiles import Profile
from overfeat_edge.errors import InputError
from overfeat_edge.spec import ModelSpec

ALGORITHM = "EntropyCalibration2"  # the header's algorithm field for IInt8EntropyCalibrator2
_HEADER = re.compile(rb"^TRT-(\d+)-(\w+)$")
MAX_CROPS = 512  # calibration batches at most (TensorRT's own samples use a few hundred images)


@dataclass(frozen=True)
class CalibrationData:
    """The calibration profile's input ``shape`` (N, 3, H, W), and either ``batches`` (a callable
    giving float32 arrays of that shape, for calibration on the device) or ``cache`` only.
    """

    shape: tuple[int, int, int, int]
    batches: Callable[[], Iterator[np.ndarray]] | None = None
    cache: bytes | None = None
    digest: str = ""  # of the images (on-device calibration)


def check_cache(data: bytes, source: str) -> bytes:
    """The scale lines of ``data``, a TensorRT calibration cache for our calibrator, or :class:`InputError`."""
    first, sep, rest = data.partition(b"\n")
    m = _HEADER.match(first.strip())
    if not m or not sep or not rest.strip():
        raise InputError(
            f"{source} is not a TensorRT calibration cache (its first line must be TRT-<version>-<algorithm>)"
        )
    if m[2].decode() != ALGORITHM:
        raise InputError(f"{source} was written for the {m[2].decode()} calibrator; ours is {ALGORITHM}")
    return rest


def retarget_cache(data: bytes, v: TrtVersion, source: str) -> bytes:
    """``data`` (a TensorRT calibration cache) with its header's version field set for TensorRT ``v``."""
    rest = check_cache(data, source)
    return f"TRT-{cache_version_field(v)}-{ALGORITHM}\n".encode() + rest


def crop_shape(profiles: list[Profile]) -> tuple[int, int]:
    """(H, W) of the largest crop that every static profile's input contains."""
    static = [p for p in profiles if p.scale is not None]
    if not static:
        raise InputError("on-device calibration needs at least one pyramid scale profile")
    return min(p.opt[2] for p in static), min(p.opt[3] for p in static)


def crops(x: np.ndarray, hw: tuple[int, int], stride: int) -> list[np.ndarray]:
    """Crops of ``x`` (1, C, H, W) of size ``hw`` covering it, at offsets that are multiples of ``stride``.

    Offsets step by the largest multiple of ``stride`` not over the crop size; the last crop of a
    row or column is moved back (down to a multiple of ``stride``) so that little is left uncovered.
    """
    (h, w), (ch, cw) = x.shape[2:], hw
    if ch > h or cw > w:
        raise ValueError(f"crop {hw} larger than the level {h}x{w}")

    def offsets(size: int, crop: int) -> list[int]:
        step = max(stride, crop // stride * stride)
        out = list(range(0, size - crop + 1, step))
        last = (size - crop) // stride * stride
        if out[-1] != last:
            out.append(last)
        return out

    return [x[:, :, i : i + ch, j : j + cw] for i in offsets(h, ch) for j in offsets(w, cw)]


def device_calibration(
    *, spec: ModelSpec, images: str, count: int, scales: list[str], profiles: list[Profile]
) -> CalibrationData:
    """Calibration data for TensorRT's calibrator: ``count`` images of ``images`` (a folder, glob or
    video), every pyramid level, cut into crops of :func:`crop_shape` (at most :data:`MAX_CROPS`,
    spread evenly). Raises :class:`InputError` if no image is readable.
    """
    from overfeat_edge.calibrate.quantize import load_images, pyramid_inputs

    hw = crop_shape(profiles)
    loaded = load_images(images, count)
    groups = pyramid_inputs(loaded.frames, spec, scales)
    cut = [c for xs in groups.values() for x in xs for c in crops(x, hw, spec.out_stride)]
    if len(cut) > MAX_CROPS:
        cut = [cut[i] for i in np.linspace(0, len(cut) - 1, MAX_CROPS).round().astype(int)]
    batches = [np.ascontiguousarray(c, dtype=np.float32) for c in cut]
    return CalibrationData(shape=(1, 3, hw[0], hw[1]), batches=lambda: iter(batches), digest=loaded.digest)


def cache_data(path: Path, v: TrtVersion, profiles: list[Profile]) -> CalibrationData:
    """A calibration cache file (checked by :func:`check_cache_file`), its header retargeted for ``v``."""
    hw = crop_shape(profiles)
    return CalibrationData(shape=(1, 3, hw[0], hw[1]), cache=retarget_cache(path.read_bytes(), v, f"--calib {path}"))


def check_cache_file(path: Path) -> str:
    """The SHA-256 of ``path``, a calibration cache our calibrator can hand TensorRT, or :class:`InputError`."""
    if not path.is_file():
        raise InputError(f"--calib {path}: no such file")
    data = path.read_bytes()
    check_cache(data, f"--calib {path}")
    return hashlib.sha256(data).hexdigest()
