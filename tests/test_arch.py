"""Architecture tables against the paper's numbers (Sermanet et al., 2014, Tables 1, 3 and 4)."""

from __future__ import annotations

import pytest

from overfeat_edge.arch import get_arch
from overfeat_edge.errors import InputError


def sizes(name: str, n: int) -> list[int]:
    out = []
    for layer in get_arch(name).features:
        n = layer.out_size(n)
        out.append(n)
    return out


def test_fast_table1_sizes() -> None:
    # paper Table 1, spatial size column for a 231 input
    assert sizes("overfeat-fast", 231) == [56, 28, 24, 12, 12, 12, 12, 6]
    a = get_arch("overfeat-fast")
    assert (a.stride, a.fine_factor, a.out_stride(True)) == (32, 2, 16)
    assert a.out_size(231, fine=False) == 1 and a.out_size(231, fine=True) == 1


def test_accurate_table3_sizes() -> None:
    assert sizes("overfeat-accurate", 221) == [108, 36, 30, 15, 15, 15, 15, 15, 5]
    a = get_arch("overfeat-accurate")
    assert (a.stride, a.fine_factor, a.out_stride(True)) == (36, 3, 12)


@pytest.mark.parametrize("h", range(231, 700, 7))
def test_fast_dense_formula(h: int) -> None:
    # the original release's dense output size: ((H - 11)/4 + 1)/8 - 6, integer division
    assert get_arch("overfeat-fast").out_size(h, fine=False) == ((h - 11) // 4 + 1) // 8 - 6


@pytest.mark.parametrize("h", range(221, 700, 7))
def test_accurate_dense_formula(h: int) -> None:
    assert get_arch("overfeat-accurate").out_size(h, fine=False) == ((h - 7) // 2 + 1) // 18 - 5


def test_classifier_parameter_counts_match_release() -> None:
    # the release files hold exactly these floats: features + classifier, 1000 classes
    for name, floats in (("overfeat-fast", 145_920_872), ("overfeat-accurate", 144_656_488)):
        a = get_arch(name, num_classes=1000, background=False)
        rows = [r for r in a._convs() if not r[0].startswith("reg")]
        assert sum(cin * cout * k * k + cout for _, cin, cout, k, _ in rows) == floats


def test_seed_net_shapes() -> None:
    a = get_arch("seed-net")
    assert a.window == 14 and a.stride == 2
    assert a.out_size(14, False) == 1 and a.out_size(16, False) == 2 and a.out_size(28, False) == 8


def test_width_multiplier_keeps_topology() -> None:
    full, small = get_arch("overfeat-fast"), get_arch("overfeat-fast@0.25")
    assert small.name == "overfeat-fast@0.25" and small.base == "overfeat-fast"
    assert [x.channels for x in small.features] == [24, 0, 64, 0, 128, 256, 256, 0]
    assert (small.stride, small.window, small.head_kernel) == (full.stride, full.window, full.head_kernel)
    assert small.params() < full.params() / 10


@pytest.mark.parametrize("bad", ["nope", "overfeat-fast@x", "overfeat-fast@0", "overfeat-fast@9"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(InputError):
        get_arch(bad)


def test_gflops_hand_worked_seed() -> None:
    # seed-net at 14x14: conv 5x5x3x16 over 10x10, head 5x5x16x400, 400x400, 400x4 (cls),
    # 5x5x16x400, 400x100, 100x12 (reg: 4 edges x 3 classes); FLOPs = 2 * MACs
    macs = 10 * 10 * 25 * 3 * 16 + 25 * 16 * 400 + 400 * 400 + 400 * 4 + 25 * 16 * 400 + 400 * 100 + 100 * 12
    assert get_arch("seed-net").gflops_per_window() == pytest.approx(2 * macs / 1e9)


def test_dense_gflops_at_window_equals_per_window() -> None:
    for name in ("overfeat-fast", "overfeat-accurate", "seed-net"):
        a = get_arch(name)
        assert a.dense_gflops(a.window, a.window, fine=True) == pytest.approx(a.gflops_per_window())


def test_dense_gflops_hand_worked_seed_16() -> None:
    # seed-net on 16x16, coarse: conv over 12x12, then 2x2 head positions
    a = get_arch("seed-net")
    head = 25 * 16 * 400 + 400 * 400 + 400 * 4 + 25 * 16 * 400 + 400 * 100 + 100 * 12
    assert a.dense_gflops(16, 16, fine=False) == pytest.approx(2 * (12 * 12 * 25 * 3 * 16 + 4 * head) / 1e9)
