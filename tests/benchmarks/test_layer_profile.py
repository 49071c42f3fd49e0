"""The per-layer profiler of benchmarks/gpu_pyramid.py, on the CPU: FLOPs against the layer table's count."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _layer_profile import by_layer, by_level, profile_layers  # noqa: E402

from overfeat_edge.models import create_model  # noqa: E402


@pytest.mark.parametrize("fine", [True, False])
def test_layer_flops_add_up_to_the_layer_table_count(fine: bool) -> None:
    net = create_model("overfeat-fast@0.1", num_classes=3, seed=0, fine_stride=fine).eval()
    sizes = [(231, 231), (281, 317)]
    inputs = [torch.randn(1, 3, h, w) for h, w in sizes]
    rows = profile_layers(net, inputs, reps=3, warmup=1)
    levels = by_level(rows)
    assert len(levels) == 2
    for lv, (h, w) in zip(levels, sizes, strict=True):  # the arch's own count, from its table alone
        assert lv["gflop"] == pytest.approx(net.arch.dense_gflops(h, w, fine), rel=1e-9)
    assert all(len(r.ms) == 3 and min(r.ms) > 0 for r in rows)
    layers = by_layer(rows)
    convs = [d for d in layers if d["kind"].startswith("conv")]
    assert len(convs) == sum(1 for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    head = next(d for d in layers if d["name"] == "cls_head.0")
    assert ("dil" in head["kind"]) == fine  # fine stride dilates the head's first conv
    assert sum(d["ms"] for d in layers) == pytest.approx(sum(lv["ms"] for lv in levels))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())  # hooks removed
