"""The multi-scale pyramid: which input sizes the network sees, and the map sizes that follow.

A scale is written as a smallest-side target (``"320"``: the image is resized so that its
smaller side is 320 px, aspect ratio kept) or an explicit size (``"281x317"``: height x width
for a landscape image; transposed for a portrait one). ``"paper"`` stands for the accurate
model's six sizes of the paper's Table 5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from overfeat_edge.arch import Arch
from overfeat_edge.errors import InputError
from overfeat_edge.spec import PAPER_SCALES
from overfeat_edge.types import ScaleLevel

_SIDE = re.compile(r"^\d+$")
_HW = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class Scale:
    """A smallest-side target (``side``) or an explicit ``hw`` (landscape orientation)."""

    side: int | None = None
    hw: tuple[int, int] | None = None

    def __str__(self) -> str:
        return str(self.side) if self.side is not None else f"{self.hw[0]}x{self.hw[1]}"  # type: ignore[index]

    def input_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """Network input size for an image of ``image_hw`` (height, width)."""
        h, w = image_hw
        if self.side is not None:
            f = self.side / min(h, w)
            return max(1, round(h * f)), max(1, round(w * f))
        assert self.hw is not None
        sh, sw = self.hw
        if (h > w) != (sh > sw) and sh != sw:  # keep the image's orientation
            sh, sw = sw, sh
        return sh, sw


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
                out.append(Scale(side=int(tok)))
            elif m := _HW.match(tok):
                out.append(Scale(hw=(int(m[1]), int(m[2]))))
            else:
                raise InputError(f"bad scale {tok!r}: expected a smallest side like 320, HxW like 281x317, or 'paper'")
    if not out:
        raise InputError("no scales given")
    return out


def plan_levels(arch: Arch, fine: bool, image_hw: tuple[int, int], scales: list[Scale]) -> list[ScaleLevel]:
    """One :class:`ScaleLevel` per scale, with input, pre-pool and output map sizes."""
    levels = []
    for i, scale in enumerate(scales):
        ih, iw = scale.input_hw(image_hw)
        if min(ih, iw) < arch.window:
            raise InputError(
                f"scale {scale} gives a {ih}x{iw} input for a {image_hw[0]}x{image_hw[1]} image, "
                f"smaller than the model's {arch.window}x{arch.window} window; use a larger scale"
            )
        levels.append(
            ScaleLevel(
                index=i,
                input_hw=(ih, iw),
                scale_yx=(ih / image_hw[0], iw / image_hw[1]),
                prepool_hw=(arch.prepool_size(ih), arch.prepool_size(iw)),
                out_hw=(arch.out_size(ih, fine), arch.out_size(iw, fine)),
            )
        )
    return levels
