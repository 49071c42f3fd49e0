"""Frames in, normalized NCHW float32 network inputs out."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.spec import ModelSpec
from overfeat_edge.types import ScaleLevel

try:
    from overfeat_edge.pipeline import _pool
except ImportError:  # not built (no C compiler at install): the numpy functions below give the same values
    _pool = None  # type: ignore[assignment]

COMPILED = _pool is not None
"""Whether adaptive pooling (MTCNN's pyramid and crops) runs in C (``overfeat-edge doctor`` reports it)."""

# bumped when level_inputs' values change (2: levels resized from float32; 3: adaptive levels normalized
# as the crops are, in float32, the same values where the std is a power of 2 as MTCNN's 128 is)
PREPROCESS_VERSION = 3


def to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any OpenCV frame (grey, BGR, BGRA; uint8 or 16-bit) -> contiguous (H, W, 3) uint8 BGR."""
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        shape = getattr(frame, "shape", None)
        raise InputError(f"a frame must be an (H, W) or (H, W, C) array, but got {type(frame).__name__} {shape}")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype in (np.float32, np.float64):
        frame = np.clip(frame * 255.0 if frame.max() <= 1.0 else frame, 0, 255).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise InputError(f"unsupported frame dtype {frame.dtype}; expected uint8, uint16 or float")
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[2] != 3:
        raise InputError(f"a frame must have 1, 3 or 4 channels, but got {frame.shape[2]}")
    return np.ascontiguousarray(frame)


RESIZES = ("area", "adaptive")


_KEPT = threading.local()  # this thread's (frame, its integral image or None) while one_integral() holds it


@contextmanager
def one_integral(frame: np.ndarray) -> Iterator[None]:
    """While the block runs in this thread, :func:`integral` of this very ``frame`` object is computed
    once (a photo's pyramid and each of its crop stages share it); nested blocks of one frame share it."""
    before = getattr(_KEPT, "entry", None)
    if before is not None and before[0] is frame:
        yield
        return
    _KEPT.entry = [frame, None]
    try:
        yield
    finally:
        _KEPT.entry = before


def integral(image: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1, C) sums of ``image`` (H, W, C) above and left of each corner (OpenCV's): exact
    int32 for a uint8 image that cannot overflow them (up to 8.4 megapixels), else float64. Inside
    :func:`one_integral` of ``image``, computed once."""
    entry = getattr(_KEPT, "entry", None)
    if entry is None or entry[0] is not image:
        return _integral(image)
    if entry[1] is None:
        entry[1] = _integral(image)
    return entry[1]


def _integral(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8 and image.shape[0] * image.shape[1] * 255 < 2**31:
        s = cv2.integral(np.ascontiguousarray(image), sdepth=cv2.CV_32S)
    else:
        s = cv2.integral(np.ascontiguousarray(image, dtype=np.float32), sdepth=cv2.CV_64F)
    return s.reshape(s.shape[0], s.shape[1], -1)


def adaptive_crops(sums: np.ndarray, regions: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(n, h, w, C) float32: each region (x0, y0, x1, y1) of the image whose :func:`integral` is
    ``sums``, resized by adaptive average pooling to ``hw``, all at once."""
    x0, y0, x1, y1 = (regions[:, k : k + 1] for k in range(4))
    i, j = np.arange(hw[0])[None, :], np.arange(hw[1])[None, :]
    h, w = y1 - y0, x1 - x0
    r0, r1 = y0 + (i * h) // hw[0], y0 - (-((i + 1) * h) // hw[0])  # (n, h) absolute row bins
    c0, c1 = x0 + (j * w) // hw[1], x0 - (-((j + 1) * w) // hw[1])  # (n, w) absolute column bins
    a, b, c, d = r0[:, :, None], r1[:, :, None], c0[:, None, :], c1[:, None, :]
    total = sums[b, d] - sums[a, d] - sums[b, c] + sums[a, c]  # (n, h, w, C), four look-ups per bin
    area = ((r1 - r0)[:, :, None] * (c1 - c0)[:, None, :])[..., None]
    return (total / area).astype(np.float32)


def adaptive_normalized(
    sums: np.ndarray, regions: np.ndarray, hw: tuple[int, int], spec: ModelSpec, *, compiled: bool | None = None
) -> np.ndarray:
    """(n, 3, h, w) network inputs: each region (x0, y0, x1, y1) of the image whose :func:`integral` is
    ``sums``, resized to ``hw`` by adaptive average pooling and normalized as :func:`normalize_batch` does.
    ``compiled``: the C kernel (``_pool.pool``: one pass, the default where it was built) or numpy's
    :func:`adaptive_crops` + :func:`normalize_batch`; the same float32 values either way."""
    regions = np.ascontiguousarray(regions, dtype=np.int64).reshape(-1, 4)
    use_c = (COMPILED if compiled is None else compiled) and sums.dtype == np.int32
    if not use_c:
        return normalize_batch(adaptive_crops(sums, regions, hw), spec)
    assert _pool is not None
    h, w, c = sums.shape[0] - 1, sums.shape[1] - 1, sums.shape[2]
    mean = np.asarray(spec.mean, np.float32)
    inv = (1.0 / np.asarray(spec.std, np.float32)).astype(np.float32)  # normalize_batch's reciprocal, in float32
    out = np.empty((len(regions), c, hw[0], hw[1]), np.float32)
    _pool.pool(np.ascontiguousarray(sums), h, w, c, regions, hw[0], hw[1], mean, inv, spec.channel_order == "rgb", out)
    return out


def adaptive_resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W, C) -> (h, w, C) float32 by adaptive average pooling: torch's ``interpolate(mode="area")``,
    which MTCNN's reference implementation resizes with (a bin per output pixel, its pixels averaged
    with equal weight; neighbouring bins overlap where the ratio is not whole)."""
    whole = np.array([[0, 0, image.shape[1], image.shape[0]]])
    return adaptive_crops(integral(image), whole, hw)[0]


def resize(frame_bgr: np.ndarray, hw: tuple[int, int], method: str = "area") -> np.ndarray:
    """Resize to (height, width). ``area``: OpenCV's area averaging when shrinking, bilinear when
    enlarging; ``adaptive``: :func:`adaptive_resize` (what MTCNN was trained with)."""
    h, w = frame_bgr.shape[:2]
    if (h, w) == hw:
        return frame_bgr
    if method == "adaptive":
        return adaptive_resize(frame_bgr, hw)
    interp = cv2.INTER_AREA if hw[0] * hw[1] < h * w else cv2.INTER_LINEAR
    return cv2.resize(frame_bgr, (hw[1], hw[0]), interpolation=interp)


def normalize(image_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(H, W, 3) uint8 or float32 BGR -> (1, 3, H, W) float32, channel order and normalization of ``spec``.

    One std for all channels (every model here): OpenCV's ``blobFromImage`` does the channel swap,
    mean, scale and HWC->NCHW in one pass (7x faster than numpy, identical values). Per-channel std
    falls back to numpy.
    """
    if spec.std[0] == spec.std[1] == spec.std[2]:
        # blobFromImage subtracts ``mean`` in the order of the output channels (after swapRB)
        swap = spec.channel_order == "rgb"
        h, w = image_bgr.shape[:2]
        blob = cv2.dnn.blobFromImage(image_bgr, 1.0 / spec.std[0], (w, h), list(spec.mean), swapRB=swap, crop=False)
        return np.ascontiguousarray(blob, dtype=np.float32)
    img = image_bgr[:, :, ::-1] if spec.channel_order == "rgb" else image_bgr
    x = img.astype(np.float32)
    x -= np.asarray(spec.mean, np.float32)
    x *= 1.0 / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def normalize_batch(images_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(n, H, W, 3) float32 BGR -> (n, 3, H, W) float32 with ``spec``'s channel order and normalization."""
    x = images_bgr[..., ::-1] if spec.channel_order == "rgb" else images_bgr
    x = (x - np.asarray(spec.mean, np.float32)) * (1.0 / np.asarray(spec.std, np.float32))
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def level_inputs(
    frame_bgr: np.ndarray, levels: list[ScaleLevel], spec: ModelSpec, threads: int | None = None
) -> list[np.ndarray]:
    """The network input of each pyramid level for one BGR uint8 frame (an adaptive model's levels pooled
    in two threads unless ``threads``, the user's --threads, is 1: see :func:`two_ways`).

    Every resized level comes from a float32 copy of the frame, however many levels there are:
    OpenCV's area resize is about twice as fast on float32 as on uint8 here, and skips rounding
    each level to whole grey levels (the inputs differ from a uint8 resize by at most 0.5 grey
    level). A level at the frame's own size is the frame either way.
    """
    resized = any(lv.input_hw != frame_bgr.shape[:2] for lv in levels)
    if resize_method(spec) == "adaptive" and resized:  # one integral image serves every level
        sums, whole = integral(frame_bgr), np.array([[0, 0, frame_bgr.shape[1], frame_bgr.shape[0]]])
        jobs = [partial(adaptive_normalized, sums, whole, lv.input_hw, spec) for lv in levels]
        return two_ways(jobs, [lv.input_hw[0] * lv.input_hw[1] for lv in levels], threads)
    frame = frame_bgr.astype(np.float32) if resized else frame_bgr
    return [normalize(resize(frame, lv.input_hw), spec) for lv in levels]


PARALLEL_PIXELS = 60_000  # output pixels below which splitting the levels over two threads costs more than it saves
_HELPER: list[tuple[int, ThreadPoolExecutor]] = []  # (pid, the one helper thread of two_ways), made on first use
_HELPER_LOCK = threading.Lock()
_HELPER_BUSY = threading.Lock()  # held while a pyramid uses the helper: another thread's runs in its own thread


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def two_ways(
    jobs: Sequence[Callable[[], np.ndarray]], weights: Sequence[int], threads: int | None = None
) -> list[np.ndarray]:
    """Every job's result, in order: on a machine of two cores or more, the jobs (C kernels that release
    the GIL: a pyramid's levels) are split in two halves of about equal ``weights`` (longest first, each
    to the lighter half), one run by a helper thread while this thread runs the other; else (or with
    ``threads`` 1: a user who asked for one thread, or while another thread's pyramid has the helper) one
    by one in this thread."""
    if len(jobs) < 2 or sum(weights) < PARALLEL_PIXELS or _cores() < 2 or (threads is not None and threads < 2):
        return [job() for job in jobs]
    halves: tuple[list[int], list[int]] = ([], [])
    load = [0, 0]
    for i in sorted(range(len(jobs)), key=lambda k: -weights[k]):
        lighter = int(load[1] < load[0])
        halves[lighter].append(i)
        load[lighter] += weights[i]
    if not _HELPER_BUSY.acquire(blocking=False):  # another thread's pyramid has it (two stream workers)
        return [job() for job in jobs]
    try:
        with _HELPER_LOCK:
            if not _HELPER or _HELPER[0][0] != os.getpid():  # a forked child has the executor, not its thread
                _HELPER[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="overfeat-pyramid"))]
            helper = _HELPER[0][1]
        out: list[np.ndarray | None] = [None] * len(jobs)

        def run(half: list[int]) -> None:
            for i in half:
                out[i] = jobs[i]()

        try:
            other = helper.submit(run, halves[1])
        except RuntimeError:  # the interpreter is shutting down: no new futures
            return [job() for job in jobs]
        try:
            run(halves[0])
        finally:
            other.result()  # the helper's error, if any, is raised here (after both halves ended)
        return out  # type: ignore[return-value]
    finally:
        _HELPER_BUSY.release()


def resize_method(spec: ModelSpec) -> str:
    """The model's resize (``spec.extra["resize"]``: "area", the default, or "adaptive")."""
    method = str(spec.extra.get("resize", "area"))
    if method not in RESIZES:
        raise InputError(f"the model's spec asks for resize {method!r}; expected one of {', '.join(RESIZES)}")
    return method
