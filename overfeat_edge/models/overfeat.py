"""[torch] OverFeat-style networks, fully convolutional from the start.

Every "fully connected" layer is a convolution (timm's ConvMlp idea): the first head layer has
the pooled map's spatial size as its kernel, the later ones are 1x1. Fine stride is one graph:
the last pool runs at stride 1 and the first head conv is dilated by the pool's stride
(the paper's section 3.3, "multi-scale classification"), so output row ``y`` is the interleaved
row ``y``.
"""

from __future__ import annotations

import torch
from torch import nn

from overfeat_edge.arch import Arch, Layer, get_arch


def _conv(layer: Layer, cin: int) -> list[nn.Module]:
    act: nn.Module = nn.PReLU(layer.channels) if layer.act == "prelu" else nn.ReLU(inplace=True)
    return [nn.Conv2d(cin, layer.channels, layer.k, layer.s, layer.p), act]


def _pool(layer: Layer) -> nn.MaxPool2d:
    return nn.MaxPool2d(layer.k, layer.s, layer.p, ceil_mode=layer.ceil)


def _head(cin: int, hidden: tuple[int, ...], cout: int, kernel: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    c, k = cin, kernel
    for h in hidden:
        layers += [nn.Conv2d(c, h, k), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        c, k = h, 1
    layers.append(nn.Conv2d(c, cout, k))
    return nn.Sequential(*layers)


class OverFeatNet(nn.Module):
    """Features -> last pool -> classifier head (``scores``) and box regression head (``boxes``).

    Input: (N, 3, H, W) float32, normalized. ``forward`` returns ``(logits, boxes)`` with shapes
    (N, num_outputs, Ho, Wo) and (N, 4 * num_classes, Ho, Wo); :meth:`predict` returns softmax
    probabilities instead of logits (what the exported graph outputs).
    """

    def __init__(self, arch: Arch, fine_stride: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        self.arch = arch
        layers: list[nn.Module] = []
        cin = arch.in_channels
        for layer in arch.features[:-1]:
            if layer.op == "conv":
                layers += _conv(layer, cin)
                cin = layer.channels
            else:
                layers.append(_pool(layer))
        self.features = nn.Sequential(*layers)
        self.pool = _pool(arch.features[-1])
        neck: list[nn.Module] = []
        for layer in arch.neck:
            neck += _conv(layer, cin)
            cin = layer.channels
        self.neck = nn.Sequential(*neck)  # empty (identity) for OverFeat's nets
        self.cls_head = _head(cin, arch.cls_hidden, arch.num_outputs, arch.head_kernel, dropout)
        self.reg_head = _head(cin, arch.reg_hidden, 4 * arch.num_classes, arch.head_kernel, dropout)
        self.extra_heads = nn.ModuleDict(
            {name: _head(cin, (), c, arch.head_kernel, dropout) for name, c in arch.extra_heads}
        )
        self.fine_stride = False
        self.set_fine_stride(fine_stride and not arch.neck)  # a net with a neck runs at its own stride

    def set_fine_stride(self, fine: bool) -> None:
        """Switch between coarse (pool stride s) and fine (pool stride 1 + dilation s) graphs."""
        if fine and self.arch.neck:
            raise ValueError(f"{self.arch.name} has a neck after its last pool: it has no fine-stride graph")
        s = self.arch.fine_factor
        self.pool.stride = 1 if fine else s
        for head in (self.cls_head, self.reg_head):
            first = head[0]
            assert isinstance(first, nn.Conv2d)
            first.dilation = (s, s) if fine else (1, 1)
        self.fine_stride = fine

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The map entering the last pool: (N, C, Hp, Wp)."""
        return self.features(x)

    def forward_head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.neck(pooled)
        return self.cls_head(z), self.reg_head(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_head(self.pool(self.forward_features(x)))

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, boxes = self(x)
        return torch.softmax(logits, dim=1), boxes

    def predict_all(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output in ``arch.output_names`` order: probabilities, boxes, then the extra heads."""
        z = self.neck(self.pool(self.forward_features(x)))
        extra = [self.extra_heads[name](z) for name, _ in self.arch.extra_heads]
        return (torch.softmax(self.cls_head(z), dim=1), self.reg_head(z), *extra)


class _Predict(nn.Module):
    """The exported graph: probabilities and boxes."""

    def __init__(self, net: OverFeatNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.predict_all(x)


def create_model(
    name: str | Arch,
    num_classes: int | None = None,
    background: bool | None = None,
    fine_stride: bool = True,
    seed: int | None = None,
    dropout: float = 0.5,
) -> OverFeatNet:
    """Build a registered network (``overfeat-fast``, ``overfeat-accurate@0.5``, ``seed-net``)."""
    arch = name if isinstance(name, Arch) else get_arch(name, num_classes, background)
    if seed is not None:
        torch.manual_seed(seed)
    return OverFeatNet(arch, fine_stride=fine_stride, dropout=dropout)
