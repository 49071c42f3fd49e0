"""[no torch] A pyramid's small levels in one call: placed side by side in one canvas, run through the
packed graph beside the model (``model.packed.onnx``, :mod:`overfeat_edge.export.packed`), cut out again.

Each network call has a fixed cost (OpenVINO, 2 cores: 0.1-0.3 ms), as much as P-Net computes on a
level of 14x14, and MTCNN's pyramid has ten levels or more a photo, half of them under 80x80. The
levels of at most :data:`PACK_PIXELS` pixels (of one batch size) go in one canvas instead, each at a
multiple of the pool's stride, so that level ``k``'s outputs are the canvas's outputs at its place
divided by the stride; the fourth channel is the mask the packed graph needs (0 on each level's own
map entering the pool, :data:`MASKED` elsewhere). The outputs inside a level are the level's own, to
the rounding of the convolution (bit for bit on OpenVINO here); the larger levels run one by one.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from overfeat_edge.spec import ModelSpec


class Runs(Protocol):
    """What packing needs of a runner (runtime.base.Runner, which calls this module)."""

    spec: ModelSpec

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...


MASKED = -(2.0**30)  # the mask off the levels: below any activation; exactly -1 once scaled by 2**-30
PACK_PIXELS = 12_500  # a level of at most this many pixels (about 110x110) is packed with the others


def packed_name(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.packed.onnx`` (beside it)."""
    return onnx_path.with_name(onnx_path.name[: -len(".onnx")] + ".packed.onnx")


def source_digest(onnx_path: Path) -> str:
    """The sha256 of the ONNX a packed graph was made from (kept in the packed graph's spec)."""
    return hashlib.sha256(onnx_path.read_bytes()).hexdigest()


def matches(runner: Runs, packed: Runs, onnx_path: Path) -> bool:
    """Whether ``packed`` is the packed graph of the very file ``runner`` loaded (``onnx_path``): made
    from it (its digest), with one channel more; a stale or foreign file beside a model is not used."""
    geometry = packed.spec.extra.get("packed")
    return (
        isinstance(geometry, dict)
        and geometry.get("source_sha256") == source_digest(onnx_path)
        and packed.spec.arch.in_channels == runner.spec.arch.in_channels + 1
    )


@lru_cache(maxsize=64)  # a video keeps one pyramid
def layout(sizes: tuple[tuple[int, int], ...], align: int) -> tuple[tuple[tuple[int, int], ...], tuple[int, int]]:
    """(y, x) of each (h, w) in a canvas as high as the highest (rounded up to ``align``), and the
    canvas's (H, W): skyline packing from the left, each at the place that leaves it leftmost (then
    lowest), every corner a multiple of ``align``, no two overlapping."""
    up = lambda v: -(-v // align) * align  # noqa: E731
    height = up(max(h for h, _ in sizes))
    sky = [(0, height, 0)]  # (y0, y1, the first free column of rows y0..y1)
    places: list[tuple[int, int]] = []
    for h, w in sizes:
        best: tuple[int, int] | None = None
        for y in sorted({up(y0) for y0, _, _ in sky}):
            if y + h > height:
                continue
            x = up(max(free for y0, y1, free in sky if y0 < y + h and y1 > y))
            if best is None or (x, y) < best:
                best = (x, y)
        assert best is not None  # y = 0 always fits: the canvas is as high as the highest
        x, y = best
        places.append((y, x))
        cut = []
        for y0, y1, free in sky:
            for lo, hi, f in ((y0, min(y1, y), free), (max(y0, y), min(y1, y + h), x + w), (max(y0, y + h), y1, free)):
                if hi > lo:
                    cut.append((lo, hi, f))
        sky = cut
    width = up(max(x + w for (_, x), (_, w) in zip(places, sizes)))
    return tuple(places), (height, width)


def run_packed(
    runner: Runs, packed: Runs, batches: list[np.ndarray], pack_pixels: int | None = PACK_PIXELS
) -> list[dict[str, np.ndarray]]:
    """``runner.run`` of every batch (a frame's levels, or one level of many frames each), the small ones
    (at most ``pack_pixels``; None: any) of the most common batch size in one call of ``packed`` (their
    outputs cut out of its outputs). A batch the runner would refuse (too small, other channels) is left
    to the runner, which says why."""
    small: dict[int, list[int]] = {}
    arch = runner.spec.arch
    for i, b in enumerate(batches):
        fits = b.ndim == 4 and b.shape[1] == arch.in_channels and min(b.shape[2:]) >= arch.window
        if fits and (pack_pixels is None or b.shape[2] * b.shape[3] <= pack_pixels):
            small.setdefault(b.shape[0], []).append(i)
    group = max(small.values(), key=len, default=[])
    if len(group) < 2:
        return [runner.run(x) for x in batches]
    out: list[dict[str, np.ndarray] | None] = [None if i in group else runner.run(b) for i, b in enumerate(batches)]
    geometry = packed.spec.extra["packed"]
    lost, stride = int(geometry["lost"]), int(geometry["stride"])
    sizes = tuple((int(batches[i].shape[2]), int(batches[i].shape[3])) for i in group)
    places, (height, width) = layout(sizes, stride)
    n, c = batches[group[0]].shape[:2]
    canvas = np.zeros((n, c + 1, height, width), np.float32)
    canvas[:, c] = MASKED
    for i, (y, x), (h, w) in zip(group, places, sizes):
        canvas[:, :c, y : y + h, x : x + w] = batches[i]
        canvas[:, c, y : y + h - lost, x : x + w - lost] = 0.0
    maps = packed.run(canvas)
    fine = runner.spec.fine_stride
    for i, (y, x), (h, w) in zip(group, places, sizes):
        oy, ox, oh, ow = y // stride, x // stride, arch.out_size(h, fine), arch.out_size(w, fine)
        out[i] = {name: np.ascontiguousarray(v[:, :, oy : oy + oh, ox : ox + ow]) for name, v in maps.items()}
    return out  # type: ignore[return-value]
