"""Fine stride as one graph (pool stride 1 + dilated head, or the offset maps stacked in the batch)
vs two independent references:
the explicit offset-pool-and-interleave of the paper, and the naive sliding window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from overfeat_edge.models import OverFeatNet, create_model


def head_plain(head: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a head's convs undilated, written out with the functional API."""
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    for i, conv in enumerate(convs):
        x = F.conv2d(x, conv.weight, conv.bias)
        if i < len(convs) - 1:
            x = F.relu(x)
    return x


def offset_reference(net: OverFeatNet, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Paper section 3.3: pool at each offset (dx, dy), run the head, interleave at (i*s+dy, j*s+dx)."""
    s = net.arch.fine_factor
    f = net.forward_features(x)
    parts = {}
    for dy in range(s):
        for dx in range(s):
            pooled = F.max_pool2d(f[:, :, dy:, dx:], s, s)
            if min(pooled.shape[2:]) < net.arch.head_kernel:
                continue  # this offset has no complete window
            parts[dy, dx] = (head_plain(net.cls_head, pooled), head_plain(net.reg_head, pooled))
    h = max(dy + s * (p[0].shape[2] - 1) for (dy, _), p in parts.items()) + 1
    w = max(dx + s * (p[0].shape[3] - 1) for (_, dx), p in parts.items()) + 1
    outs = [np.full((x.shape[0], p.shape[1], h, w), np.nan, np.float32) for p in parts[0, 0]]  # offset 0 always fits
    for (dy, dx), maps in parts.items():
        for out, m in zip(outs, maps, strict=True):
            out[:, :, dy::s, dx::s][:, :, : m.shape[2], : m.shape[3]] = m.numpy()
    return outs[0], outs[1]


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


CASES = [
    ("overfeat-fast@0.1", 231, 231),
    ("overfeat-fast@0.1", 263, 311),
    ("overfeat-fast@0.1", 300, 250),
    ("overfeat-accurate@0.1", 221, 221),
    ("overfeat-accurate@0.1", 245, 245),
    ("overfeat-accurate@0.1", 281, 317),
    ("seed-net", 14, 14),
    ("seed-net", 16, 16),
    ("seed-net", 28, 33),
]


@pytest.mark.parametrize("form", ["dilated", "batch"])
@pytest.mark.parametrize(("name", "h", "w"), CASES)
def test_single_graph_equals_offset_interleave(name: str, h: int, w: int, form: str) -> None:
    """Both fine-stride graphs (dilated head; offset maps in the batch + depth-to-space) against
    the paper's offset loop, batch of 2, sizes on and off the stride grid."""
    net = create_model(name, num_classes=3, seed=1).eval()
    net.set_fine_form(form)
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_cls, ref_reg = offset_reference(net, x)
        cls, reg = (t.numpy() for t in net(x))
    assert not np.isnan(ref_cls).any(), "the interleave must fill every output position"
    assert cls.shape == ref_cls.shape and cls.shape[2:] == (net.arch.out_size(h, True), net.arch.out_size(w, True))
    assert rel_err(cls, ref_cls) < 1e-5
    assert rel_err(reg, ref_reg) < 1e-5


@pytest.mark.parametrize(("h", "w"), [(14, 14), (16, 16), (28, 28), (21, 30)])
@pytest.mark.parametrize("fine", [True, False])
def test_seed_net_equals_naive_sliding_window(h: int, w: int, fine: bool) -> None:
    """seed-net has no padding, so the dense map is exactly the window net run on every crop."""
    net = create_model("seed-net", seed=3).eval()
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(4))
    net.set_fine_stride(fine)
    with torch.no_grad():
        dense_cls, dense_reg = net(x)
        net.set_fine_stride(False)
        step = net.arch.out_stride(fine)
        win = net.arch.window
        ho, wo = dense_cls.shape[2:]
        for y in range(ho):
            for xx in range(wo):
                crop = x[:, :, y * step : y * step + win, xx * step : xx * step + win]
                assert crop.shape[2:] == (win, win)
                c, r = net(crop)
                assert c.shape[2:] == (1, 1)
                torch.testing.assert_close(dense_cls[:, :, y, xx], c[:, :, 0, 0], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(dense_reg[:, :, y, xx], r[:, :, 0, 0], rtol=1e-5, atol=1e-6)
    # and the map is exactly as large as the number of windows that fit
    assert (ho, wo) == ((h - win) // step + 1, (w - win) // step + 1)


def test_padded_net_differs_from_crops_near_borders() -> None:
    """The OverFeat nets pad layers 3-5: on a large image those layers see real neighbours where a
    crop sees zeros, so dense and crop outputs differ (inherent to the design, see README)."""
    net = create_model("overfeat-fast@0.1", seed=5).eval()
    net.set_fine_stride(False)
    x = torch.randn(1, 3, 231 + 32, 231, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        dense = net(x)[0]
        crop = net(x[:, :, 32:, :])[0]
    assert dense.shape[2] == 2
    assert rel_err(dense[:, :, 1:2].numpy(), crop.numpy()) > 1e-4


def test_batch_form_refuses_what_it_cannot_run_and_switches_back() -> None:
    net = create_model("overfeat-fast@0.1", num_classes=3, seed=1).eval()
    with pytest.raises(ValueError, match="fine form must be one of"):
        net.set_fine_form("strided")
    net.set_fine_form("batch")
    assert net.pool.stride == 2 and net.cls_head[0].dilation == (1, 1)  # the coarse modules
    net.set_fine_form("dilated")
    assert net.pool.stride == 1 and net.cls_head[0].dilation == (2, 2)
    net.set_fine_stride(False)
    net.set_fine_form("batch")  # coarse stays coarse: the form only matters with fine stride
    x = torch.randn(1, 3, 263, 311, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net(x)[0].shape[2:] == (net.arch.out_size(263, False), net.arch.out_size(311, False))
