"""[torch] Checkpoints, the original OverFeat weight files, and FC -> conv conversion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from overfeat_edge.arch import Arch, get_arch
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.io import atomic_path
from overfeat_edge.models.overfeat import OverFeatNet
from overfeat_edge.schema import Fields
from overfeat_edge.spec import ModelSpec, default_spec

CHECKPOINT_FORMAT = "overfeat-edge/1"
ORIGINAL_MODELS = ("overfeat-fast", "overfeat-accurate")


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one short whole sentence."""
    text = str(exc)
    if "weights_only" in text or "Unsupported global" in text or "Unpickler" in text:
        return "refused: it holds objects other than tensors and plain data, which could run code when loaded"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 160 else first[:160].rsplit(" ", 1)[0] + " ..."


# ---- our checkpoints --------------------------------------------------------------------
def save_checkpoint(path: str | Path, net: OverFeatNet, spec: ModelSpec, extra: dict[str, Any] | None = None) -> None:
    """Write ``{format, spec, state_dict, extra}`` atomically; loadable with ``weights_only=True``."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": spec.to_json(),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, fine_stride: bool | None = None) -> tuple[OverFeatNet, ModelSpec, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ModelError(f"{path}: not a readable checkpoint ({load_failure(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not an overfeat-edge checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    f = Fields(payload, f"{path}: checkpoint")
    spec = ModelSpec.from_json(f.text("spec"), str(path))
    state, extra = f.obj("state_dict").d, f.obj("extra", default={}).d
    if fine_stride is not None:
        spec = spec.with_fine_stride(fine_stride)
    net = OverFeatNet(spec.arch, fine_stride=spec.fine_stride)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path}: weights do not fit {spec.arch.name} ({str(exc).splitlines()[0][:160]})") from None
    if not all(bool(torch.isfinite(v).all()) for v in net.state_dict().values() if v.is_floating_point()):
        raise ModelError(f"{path}: the checkpoint holds NaN or infinite weights")
    net.eval()
    return net, spec, extra


# ---- the original OverFeat release ------------------------------------------------------
def _param_count(convs: list[nn.Conv2d]) -> int:
    return sum(c.weight.numel() + (c.bias.numel() if c.bias is not None else 0) for c in convs)


def _classifier_convs(net: OverFeatNet) -> list[nn.Conv2d]:
    """The convs the original files hold, in file order: features, then the classifier head."""
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    return convs + [m for m in net.cls_head if isinstance(m, nn.Conv2d)]


def original_arch(model: str) -> Arch:
    if model not in ORIGINAL_MODELS:
        raise InputError(f"--model must be one of {', '.join(ORIGINAL_MODELS)}, got {model!r}")
    return get_arch(model, num_classes=1000, background=False)


def original_float_count(model: str) -> int:
    """Floats in ``net_weight_0`` (fast) / ``net_weight_1`` (accurate): the classifier's parameters."""
    net = OverFeatNet(original_arch(model))
    return _param_count(_classifier_convs(net))


def import_original_weights(
    path: str | Path, model: str, class_names: list[str] | None = None
) -> tuple[OverFeatNet, ModelSpec]:
    """Read a released OverFeat weight file: headerless float32 in host byte order, layer by
    layer the weights (out, in, kh, kw) then the biases, "full" layers already in conv shape.

    The file holds the classifier only (1000 ImageNet classes, no background); the box
    regression head keeps its random initialization and must be trained.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weight file not found: {path}")
    net = OverFeatNet(original_arch(model))
    convs = _classifier_convs(net)
    expected = _param_count(convs)
    size = os.path.getsize(path)
    if size != expected * 4:
        raise ModelError(
            f"{path}: {size} bytes, but {model} weights are exactly {expected} float32 "
            f"({expected * 4} bytes); is this the right file (net_weight_0 = fast, net_weight_1 = accurate)?"
        )
    flat = np.fromfile(path, dtype=np.float32)
    if not np.isfinite(flat).all():
        raise ModelError(f"{path}: contains NaN or infinite values; wrong byte order or a corrupt file?")
    offset = 0
    with torch.no_grad():
        for conv in convs:
            for param in (conv.weight, conv.bias):
                assert param is not None
                n = param.numel()
                param.copy_(torch.from_numpy(flat[offset : offset + n].reshape(param.shape)))
                offset += n
    net.eval()
    spec = default_spec(net.arch, class_names)
    return net, spec


# ---- FC -> conv --------------------------------------------------------------------------
class LinearHeadNet(nn.Module):
    """The same network as a classifier is usually trained: flatten, then ``nn.Linear`` heads.

    It accepts only the training window. Its state-dict keys match :class:`OverFeatNet`, so
    :func:`fc_to_conv_state` converts its checkpoints.
    """

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        conv = OverFeatNet(arch, fine_stride=False)
        self.arch = arch
        self.features, self.pool = conv.features, conv.pool
        self.cls_head = self._linear(conv.cls_head)
        self.reg_head = self._linear(conv.reg_head)

    @staticmethod
    def _linear(head: nn.Sequential) -> nn.Sequential:
        layers: list[nn.Module] = []
        for m in head:
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                layers.append(nn.Linear(m.in_channels * kh * kw, m.out_channels))
            else:
                layers.append(m)
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.flatten(self.pool(self.features(x)), 1)  # NCHW flatten order
        return self.cls_head(f), self.reg_head(f)


def fc_to_conv_state(state: dict[str, torch.Tensor], arch: Arch) -> dict[str, torch.Tensor]:
    """Reshape ``nn.Linear`` head weights into the conv kernels of :class:`OverFeatNet`.

    ``W[out, c*H*W + h*W + w]`` becomes ``K[out, c, h, w]`` (PyTorch's flatten order); later
    Linear layers become 1x1 convs. Other tensors pass through unchanged.
    """
    target = OverFeatNet(arch).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in target:
            raise ModelError(f"unexpected key {key!r} for {arch.name}")
        shape = target[key].shape
        if value.shape != shape:
            if value.numel() != target[key].numel():
                raise ModelError(f"{key}: {tuple(value.shape)} cannot become {tuple(shape)}")
            value = value.reshape(shape)
        out[key] = value
    missing = set(target) - set(out)
    if missing:
        raise ModelError(f"state dict lacks {sorted(missing)[:3]}...")
    return out
