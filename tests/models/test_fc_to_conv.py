"""A classifier trained with nn.Linear heads, converted to convolutions."""

from __future__ import annotations

import torch

from overfeat_edge.arch import get_arch
from overfeat_edge.models import OverFeatNet, fc_to_conv_state
from overfeat_edge.models.weights import LinearHeadNet


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def convert(name: str) -> tuple[LinearHeadNet, OverFeatNet]:
    arch = get_arch(name, num_classes=3)
    torch.manual_seed(0)
    lin = LinearHeadNet(arch).eval()
    conv = OverFeatNet(arch, fine_stride=False).eval()
    conv.load_state_dict(fc_to_conv_state(lin.state_dict(), arch))
    return lin, conv


def test_seed_net_linear_equals_conv_on_window_and_maps_larger_inputs() -> None:
    lin, conv = convert("seed-net")
    x = torch.randn(4, 3, 14, 14, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        (lc, lr), (cc, cr) = lin(x), conv(x)
        assert cc.shape == (4, 4, 1, 1) and cr.shape == (4, 12, 1, 1)
        assert max_rel(cc[:, :, 0, 0], lc) < 1e-5 and max_rel(cr[:, :, 0, 0], lr) < 1e-5
        assert conv(torch.randn(1, 3, 16, 16))[0].shape == (1, 4, 2, 2)
        assert conv(torch.randn(1, 3, 28, 28))[0].shape == (1, 4, 8, 8)
        # each map position is the Linear net applied to its own 14x14 window (seed-net is unpadded)
        big = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(2))
        dense = conv(big)[0]
        for y, xx in [(0, 0), (3, 5), (7, 7)]:
            ref = lin(big[:, :, 2 * y : 2 * y + 14, 2 * xx : 2 * xx + 14])[0]
            assert max_rel(dense[:, :, y, xx], ref) < 1e-5


def test_overfeat_fast_linear_equals_conv_on_window() -> None:
    lin, conv = convert("overfeat-fast@0.1")
    x = torch.randn(2, 3, 231, 231, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        (lc, lr), (cc, cr) = lin(x), conv(x)
    assert max_rel(cc[:, :, 0, 0], lc) < 1e-5 and max_rel(cr[:, :, 0, 0], lr) < 1e-5


def test_flatten_order_is_nchw() -> None:
    """W[out, c*H*W + h*W + w] must land at K[out, c, h, w]."""
    arch = get_arch("seed-net")
    lin = LinearHeadNet(arch)
    state = lin.state_dict()
    w = torch.arange(state["cls_head.0.weight"].numel(), dtype=torch.float32).reshape(state["cls_head.0.weight"].shape)
    state["cls_head.0.weight"] = w
    k = fc_to_conv_state(state, arch)["cls_head.0.weight"]
    c_, h_, w_ = 16, 5, 5
    for out, c, h, ww in [(0, 0, 0, 0), (3, 2, 4, 1), (399, 15, 4, 4)]:
        assert k[out, c, h, ww] == w[out, c * h_ * w_ + h * w_ + ww]
    assert k.shape == (400, c_, h_, w_)
