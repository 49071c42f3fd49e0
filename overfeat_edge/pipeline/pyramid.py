"""The multi-scale pyramid: which input sizes the network sees, and the map sizes that follow.

A scale is written as a smallest-side target (``"320"``: the image is resized so that its
smaller side is 320 px, aspect ratio kept) or an explicit size (``"281x317"``: height x width
for a landscape image; transposed for a portrait one). ``"paper"`` stands for the accurate
model's six sizes of the paper's Table 5.

Two more forms serve MTCNN's pyramid: a scale factor (``"x0.6"``: each side becomes
``int(side * 0.6 + 1)``, MTCNN's rounding) and the geometric rule ``"geo:MIN_SIZE:FACTOR"``
(``--min-size``, ``--scale-factor``): factors ``window / MIN_SIZE * FACTOR**k`` for k = 0, 1, ...
while the image's smaller side times the factor is at least the window, so the smallest object
seen is MIN_SIZE pixels. The rule depends on the image size; :func:`expand_scales` resolves it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from overfeat_edge.arch import Arch
from overfeat_edge.errors import InputError
from overfeat_edge.spec import PAPER_SCALES
from overfeat_edge.types import ScaleLevel

MAX_SIDE = 8192  # a pyramid level's side at most: larger is a typo, and its maps would not fit in memory
MAX_LEVELS = 64  # levels in one pyramid at most (MTCNN's 0.709 rule gives about 12 for a 1080p frame)
_SIDE = re.compile(r"^\d+$")
_HW = re.compile(r"^(\d+)x(\d+)$")
_FACTOR = re.compile(r"^x(\d*\.?\d+)$")
_GEO = re.compile(r"^geo:(\d+):(\d*\.?\d+)$")


@dataclass(frozen=True)
class Scale:
    """A smallest-side target (``side``), an explicit ``hw`` (landscape orientation), a scale
    ``factor``, or the geometric ``rule`` (min size, factor) that :func:`expand_scales` resolves."""

    side: int | None = None
    hw: tuple[int, int] | None = None
    factor: float | None = None
    rule: tuple[int, float] | None = None

    def __str__(self) -> str:
        if self.side is not None:
            return str(self.side)
        if self.factor is not None:
            return f"x{self.factor:.6g}"
        if self.rule is not None:
            return f"geo:{self.rule[0]}:{self.rule[1]:g}"
        return f"{self.hw[0]}x{self.hw[1]}"  # type: ignore[index]

    def input_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """Network input size for an image of ``image_hw`` (height, width)."""
        h, w = image_hw
        if self.side is not None:
            f = self.side / min(h, w)
            return max(1, round(h * f)), max(1, round(w * f))
        if self.factor is not None:
            return int(h * self.factor + 1), int(w * self.factor + 1)
        if self.rule is not None:
            raise ValueError(f"scale {self} is a rule: expand_scales() it for an image size first")
        assert self.hw is not None
        sh, sw = self.hw
        if (h > w) != (sh > sw) and sh != sw:  # keep the image's orientation
            sh, sw = sw, sh
        return sh, sw


class ImageTooSmall(InputError):
    """This image is too small for the pyramid (another image may not be): skipped and counted."""


def parse_scales(items: list[str] | tuple[str, ...]) -> list[Scale]:
    """Parse ``["320", "281x317", "paper"]`` (comma-separated items allowed)."""
    out: list[Scale] = []
    for item in items:
        for tok in (t.strip().lower() for t in str(item).split(",")):
            if not tok:
                continue
            if tok == "paper":
                out += parse_scales(PAPER_SCALES)
            elif _SIDE.match(tok):
                if not 1 <= int(tok) <= MAX_SIDE:
                    raise InputError(f"bad scale {tok!r}: a side must be between 1 and {MAX_SIDE} pixels")
                out.append(Scale(side=int(tok)))
            elif m := _HW.match(tok):
                if not (1 <= int(m[1]) <= MAX_SIDE and 1 <= int(m[2]) <= MAX_SIDE):
                    raise InputError(f"bad scale {tok!r}: height and width must be between 1 and {MAX_SIDE} pixels")
                out.append(Scale(hw=(int(m[1]), int(m[2]))))
            elif m := _FACTOR.match(tok):
                if not 0 < float(m[1]) <= 4:
                    raise InputError(f"bad scale {tok!r}: a factor must be in (0, 4]")
                out.append(Scale(factor=float(m[1])))
            elif m := _GEO.match(tok):
                min_size, factor = int(m[1]), float(m[2])
                if min_size < 1 or not 0.05 <= factor < 1:
                    raise InputError(f"bad scale {tok!r}: min size must be >= 1 and the factor in [0.05, 1)")
                out.append(Scale(rule=(min_size, factor)))
            else:
                raise InputError(
                    f"bad scale {tok!r}: expected a smallest side like 320, HxW like 281x317, a factor like x0.5, "
                    "geo:MIN_SIZE:FACTOR, or 'paper'"
                )
    if not out:
        raise InputError("no scales given")
    if len(out) > MAX_LEVELS:
        raise InputError(f"{len(out)} scales given; a pyramid has at most {MAX_LEVELS} levels")
    return out


def geometric_scales(min_size: int, factor: float, window: int, image_hw: tuple[int, int]) -> list[Scale]:
    """MTCNN's pyramid: ``window / min_size * factor**k`` while ``min(image_hw) * scale >= window``."""
    out: list[Scale] = []
    scale = window / min_size
    side = min(image_hw) * scale
    while side >= window and len(out) <= MAX_LEVELS:  # one past the bound: expand_scales refuses it
        out.append(Scale(factor=scale))
        scale *= factor
        side *= factor
    return out


def expand_scales(scales: list[Scale], image_hw: tuple[int, int], window: int) -> list[Scale]:
    """``scales`` with every geometric rule replaced by its factors for an image of ``image_hw``."""
    out: list[Scale] = []
    for s in scales:
        out += geometric_scales(*s.rule, window, image_hw) if s.rule is not None else [s]
    if len(out) > MAX_LEVELS:
        raise InputError(
            f"the pyramid has more than {MAX_LEVELS} levels for a {image_hw[0]}x{image_hw[1]} image; give fewer "
            "scales or a --scale-factor further from 1 (e.g. 0.709)"
        )
    if not out:
        raise ImageTooSmall(
            f"the pyramid rule gives no level for a {image_hw[0]}x{image_hw[1]} image (smaller than the "
            f"{window}px window at the largest scale); lower --min-size"
        )
    return out


def plan_levels(arch: Arch, fine: bool, image_hw: tuple[int, int], scales: list[Scale]) -> list[ScaleLevel]:
    """One :class:`ScaleLevel` per scale (rules expanded), with input, pre-pool and output map sizes."""
    levels = []
    for i, scale in enumerate(expand_scales(scales, image_hw, arch.window)):
        ih, iw = scale.input_hw(image_hw)
        if max(ih, iw) > MAX_SIDE:
            raise InputError(
                f"scale {scale} gives a {ih}x{iw} input for a {image_hw[0]}x{image_hw[1]} image, over the "
                f"{MAX_SIDE}px limit; use a smaller scale"
            )
        if min(ih, iw) < arch.window:
            raise InputError(
                f"scale {scale} gives a {ih}x{iw} input for a {image_hw[0]}x{image_hw[1]} image, "
                f"smaller than the model's {arch.window}x{arch.window} window; use a larger scale"
            )
        # a factor scale maps back by its factor, as MTCNN does (its sizes are rounded up by up to a pixel)
        sy, sx = (scale.factor, scale.factor) if scale.factor is not None else (ih / image_hw[0], iw / image_hw[1])
        levels.append(
            ScaleLevel(
                index=i,
                input_hw=(ih, iw),
                scale_yx=(sy, sx),
                prepool_hw=(arch.prepool_size(ih), arch.prepool_size(iw)),
                out_hw=(arch.out_size(ih, fine), arch.out_size(iw, fine)),
            )
        )
    return levels
