"""[torch] OverFeat-style networks, fully convolutional from the start.

Every "fully connected" layer is a convolution (timm's ConvMlp idea): the first head layer has
the pooled map's spatial size as its kernel, the later ones are 1x1. Fine stride is one graph:
the last pool runs at stride 1 and the first head conv is dilated by the pool's stride
(the paper's section 3.3, "multi-scale classification"), so output row ``y`` is the interleaved
row ``y``. The same outputs have a second form, the paper's own (``fine_form="batch"``): the s x s
offset-pooled maps stacked in the batch, the undilated head once over all of them, then
depth-to-space; which is faster depends on the backend (BENCHMARKS.md, "fine-form").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


FINE_FORMS = ("dilated", "batch")


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
        self.fine_form = "dilated"
        self.set_fine_stride(fine_stride and not arch.neck)  # a net with a neck runs at its own stride

    def set_fine_stride(self, fine: bool) -> None:
        """Switch between coarse (pool stride s) and fine (pool stride 1 + dilation s) graphs."""
        if fine and self.arch.neck:
            raise ValueError(f"{self.arch.name} has a neck after its last pool: it has no fine-stride graph")
        s = self.arch.fine_factor
        dilated = fine and self.fine_form == "dilated"  # the batch form runs the coarse modules
        self.pool.stride = 1 if dilated else s
        for head in (self.cls_head, self.reg_head):
            first = head[0]
            assert isinstance(first, nn.Conv2d)
            first.dilation = (s, s) if dilated else (1, 1)
        self.fine_stride = fine

    def set_fine_form(self, form: str) -> None:
        """``dilated`` (stride-1 pool, dilated head) or ``batch`` (offset maps in the batch,
        undilated head, depth-to-space): the same outputs, two graphs."""
        if form not in FINE_FORMS:
            raise ValueError(f"fine form must be one of {', '.join(FINE_FORMS)}, got {form!r}")
        if form == "batch" and (self.pool.padding not in (0, (0, 0)) or self.pool.ceil_mode or self.extra_heads):
            raise ValueError(f"{self.arch.name}: the batch fine form needs an unpadded floor pool and no extra head")
        self.fine_form = form
        self.set_fine_stride(self.fine_stride)

    def _outputs(self, feats: torch.Tensor, probs: bool = False) -> list[torch.Tensor]:
        """Every head's output over the map entering the last pool: scores (logits, or softmax
        probabilities with ``probs``), boxes, then the extra heads (the exported graphs' order)."""
        if self.fine_stride and self.fine_form == "batch":
            logits, boxes = self._interleaved(feats)
            return [torch.softmax(logits, dim=1) if probs else logits, boxes]
        z = self.neck(self.pool(feats))
        extra = [self.extra_heads[name](z) for name, _ in self.arch.extra_heads]
        logits = self.cls_head(z)
        return [torch.softmax(logits, dim=1) if probs else logits, self.reg_head(z), *extra]

    def _interleaved(self, feats: torch.Tensor) -> list[torch.Tensor]:
        """The paper's fine stride: output (y*s + dy, x*s + dx) is the head over the map pooled at
        offset (dy, dx), position (y, x). The map is padded by s - 1 at the bottom and right so that
        every offset pools to the same size (the last offset's); rows that the padding reaches lie
        beyond the dilated form's output size and are cut."""
        s, n = self.arch.fine_factor, feats.shape[0]
        k = self.pool.kernel_size if isinstance(self.pool.kernel_size, int) else self.pool.kernel_size[0]
        x = F.pad(feats, (0, s - 1, 0, s - 1))
        pooled = [self.pool(x[:, :, dy:, dx:]) for dy in range(s) for dx in range(s)]
        ph, pw = pooled[-1].shape[2], pooled[-1].shape[3]
        z = torch.cat([p[:, :, :ph, :pw] for p in pooled])  # (s*s*N, C, ph, pw), offset-major
        reach = k - 1 + s * (self.arch.head_kernel - 1)  # rows the dilated form's output loses
        hf, wf = feats.shape[2] - reach, feats.shape[3] - reach
        outs = []
        for head in (self.cls_head, self.reg_head):
            y = head(z)
            c, h, w = y.shape[1], y.shape[2], y.shape[3]
            y = y.reshape(s, s, n, c, h, w).permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * s, w * s)
            outs.append(y[:, :, :hf, :wf])
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The map entering the last pool: (N, C, Hp, Wp)."""
        return self.features(x)

    def forward_head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.neck(pooled)
        return self.cls_head(z), self.reg_head(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, boxes = self._outputs(self.forward_features(x))[:2]
        return logits, boxes

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, boxes = self(x)
        return torch.softmax(logits, dim=1), boxes

    def predict_all(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output in ``arch.output_names`` order: probabilities, boxes, then the extra heads."""
        return tuple(self._outputs(self.forward_features(x), probs=True))


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
