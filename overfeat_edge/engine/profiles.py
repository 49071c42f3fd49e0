"""[no TensorRT import] Optimization profiles: one per pyramid scale, plus an optional dynamic one.

A TensorRT engine with dynamic height/width runs fastest on shapes it was tuned for. The pyramid
of a camera feeds the network a fixed set of shapes (one per scale, for the camera's frame size),
so the engine gets one profile per scale with min = opt = max = that scale's input shape, and the
runtime gives each scale its own execution context on its own profile. A dynamic profile
(window .. ``max_side``) can be added for frames of other sizes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Tuple

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.pipeline.pyramid import expand_scales, parse_scales, plan_levels
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.schema import Fields
from overfeat_edge.spec import ModelSpec

Shape = Tuple[int, int, int, int]


@dataclass(frozen=True)
class Profile:
    """Input shapes (N, 3, H, W) of one optimization profile; ``scale`` is None for the dynamic one."""

    index: int
    scale: str | None
    min: Shape
    opt: Shape
    max: Shape

    def covers(self, shape: Shape) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip_strict(self.min, shape, self.max))

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "scale": self.scale, "min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def from_dict(cls, d: Any, where: str = "profile") -> Profile:
        f = Fields(d, where)

        def shape(key: str) -> Shape:
            a = f.ints(key, 1, 1 << 16)
            if len(a) != 4 or a[1] != 3:
                raise f.fail(key, "[batch, 3, height, width]", a)
            return (a[0], a[1], a[2], a[3])

        scale = d.get("scale")
        p = cls(
            f.integer("index", 0, 1024),
            None if scale is None else f.text("scale"),
            shape("min"),
            shape("opt"),
            shape("max"),
        )
        if not all(lo <= o <= hi for lo, o, hi in zip_strict(p.min, p.opt, p.max)):
            raise ModelError(f"{where}: needs min <= opt <= max, got {p.min}, {p.opt}, {p.max}")
        return p


def plan_profiles(
    spec: ModelSpec,
    frame_hw: tuple[int, int],
    scales: list[str] | None = None,
    batch: tuple[int, int, int] = (1, 1, 1),
    dynamic_max_side: int | None = None,
) -> list[Profile]:
    """One static profile per scale for ``frame_hw`` frames (batch min/opt/max), then the dynamic one."""
    if not 1 <= batch[0] <= batch[1] <= batch[2]:
        raise InputError(f"batch range must be 1 <= min <= opt <= max, got {batch}")
    items = spec.pyramid(scales)
    levels = plan_levels(spec.arch, spec.fine_stride, frame_hw, parse_scales(items))
    names = [str(s) for s in expand_scales(parse_scales(items), frame_hw, spec.arch.window)]
    profiles: list[Profile] = []
    seen: set[tuple[int, int]] = set()
    for name, lv in zip_strict(names, levels):
        if lv.input_hw in seen:  # two scales with one input shape share a profile
            continue
        seen.add(lv.input_hw)
        h, w = lv.input_hw
        profiles.append(Profile(len(profiles), name, (batch[0], 3, h, w), (batch[1], 3, h, w), (batch[2], 3, h, w)))
    if dynamic_max_side is not None:
        win = spec.arch.window
        if dynamic_max_side < win:
            raise InputError(f"--dynamic max side {dynamic_max_side} is smaller than the {win}px window")
        mid = max(win, min(dynamic_max_side, 2 * win))
        profiles.append(
            Profile(
                len(profiles),
                None,
                (batch[0], 3, win, win),
                (batch[1], 3, mid, mid),
                (batch[2], 3, dynamic_max_side, dynamic_max_side),
            )
        )
    return profiles


def profile_for(profiles: list[Profile], shape: Shape) -> Profile:
    """The static profile made for exactly ``shape``, else the dynamic one covering it."""
    for p in profiles:
        if p.scale is not None and p.min == p.max and p.opt[1:] == shape[1:] and p.covers(shape):
            return p
    for p in profiles:
        if p.covers(shape):
            return p
    sized = [p for p in profiles if p.scale is not None and p.opt[1:] == shape[1:]]
    if sized:  # the size has its profile; the batch is what does not fit
        lo, hi = min(p.min[0] for p in sized), max(p.max[0] for p in sized)
        raise InputError(
            f"a batch of {shape[0]} at {shape[2]}x{shape[3]}: the engine's profile for this size takes {lo} to {hi} "
            f"frames; rebuild it with --batch {shape[0]} (or more), or run fewer cameras per inference"
        )
    made = ", ".join(f"{p.opt[2]}x{p.opt[3]}" for p in profiles)
    raise InputError(
        f"the engine has no profile for input {shape[2]}x{shape[3]} (it was built for {made}); rebuild it with "
        "--frame-size for this camera, or with --dynamic"
    )


def profiles_key(frame_hw: tuple[int, int], profiles: list[Profile]) -> str:
    """A short name for the engine file: frame size and a hash of the profile shapes."""
    text = ";".join(f"{p.min}{p.opt}{p.max}" for p in profiles)
    return f"{frame_hw[0]}x{frame_hw[1]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
