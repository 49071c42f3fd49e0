"""The pyramid plan reproduces the paper's Table 5 and keeps aspect ratios."""

from __future__ import annotations

import pytest

from overfeat_edge.arch import get_arch
from overfeat_edge.errors import InputError
from overfeat_edge.pipeline.pyramid import Scale, parse_scales, plan_levels

# paper Table 5: input size, layer-6 (pre-pool) map, classifier map after interleave
TABLE5 = [
    ((245, 245), (17, 17), (3, 3)),
    ((281, 317), (20, 23), (6, 9)),
    ((317, 389), (23, 29), (9, 15)),
    ((389, 461), (29, 35), (15, 21)),
    # the paper prints 32x35 here, a typo: 497 -> 246 -> 82 -> 76 -> 38, and its own 18x24 output
    # needs 38 columns (24 + 5 * 3 - 1); every other entry of the table matches as printed
    ((425, 497), (32, 38), (18, 24)),
    ((461, 569), (35, 44), (21, 30)),
]


def test_paper_table5() -> None:
    levels = plan_levels(get_arch("overfeat-accurate"), True, (480, 640), parse_scales(["paper"]))
    assert [(lv.input_hw, lv.prepool_hw, lv.out_hw) for lv in levels] == TABLE5


def test_explicit_size_follows_orientation() -> None:
    assert Scale(hw=(281, 317)).input_hw((640, 480)) == (317, 281)  # portrait image
    assert Scale(hw=(281, 317)).input_hw((480, 640)) == (281, 317)


@pytest.mark.parametrize(
    ("image", "side", "expected"),
    [
        ((480, 640), 240, (240, 320)),
        ((640, 480), 300, (400, 300)),
        ((100, 100), 231, (231, 231)),
        ((333, 500), 250, (250, 375)),
    ],
)
def test_smallest_side_keeps_aspect(image: tuple[int, int], side: int, expected: tuple[int, int]) -> None:
    assert Scale(side=side).input_hw(image) == expected


def test_parse_mixed() -> None:
    s = parse_scales(["231,300", "281x317"])
    assert [str(x) for x in s] == ["231", "300", "281x317"]


@pytest.mark.parametrize("bad", ["abc", "12x", "x12", "-5", ""])
def test_parse_bad(bad: str) -> None:
    with pytest.raises(InputError):
        parse_scales([bad])


def test_scale_smaller_than_window_is_an_error() -> None:
    with pytest.raises(InputError, match="smaller than the model's 231x231 window"):
        plan_levels(get_arch("overfeat-fast"), True, (480, 640), parse_scales(["200"]))


def test_coarse_vs_fine_map_sizes() -> None:
    arch = get_arch("overfeat-fast")
    (lv,) = plan_levels(arch, False, (231 + 64, 231 + 32), [Scale(hw=(231 + 64, 231 + 32))])
    assert lv.out_hw == (3, 2)  # coarse stride 32: 1 + 64/32, 1 + 32/32
    (lv,) = plan_levels(arch, True, (231 + 64, 231 + 32), [Scale(hw=(231 + 64, 231 + 32))])
    assert lv.out_hw == (5, 3)  # fine stride 16
