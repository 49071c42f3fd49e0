"""PyTorch backend: a checkpoint or a registry name (random weights), on the CPU or CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import Runner


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, net: object, spec: object, device: str = "cpu") -> None:
        torch = require("torch", "the torch backend")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("--device cuda was asked for, but torch sees no CUDA GPU")
        self.torch = torch
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()  # type: ignore[attr-defined]
        self.spec = spec  # type: ignore[assignment]

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.torch.from_numpy(self.check_input(batch)).to(self.device)
        with self.torch.inference_mode():
            scores, boxes = self.net.predict(x)  # type: ignore[attr-defined]
        return scores.float().cpu().numpy(), boxes.float().cpu().numpy()

    def describe(self) -> str:
        return f"torch {self.torch.__version__} on {self.device}"


def load(
    model: str, weights: str | None = None, device: str = "cpu", fine_stride: bool | None = None, **_: object
) -> TorchRunner:
    """``model``: a checkpoint (.pt), a shipped model name, or a registry name (+ ``weights``)."""
    require("torch", "the torch backend")
    from overfeat_edge.models import create_model, load_checkpoint
    from overfeat_edge.runtime.base import shipped_models
    from overfeat_edge.spec import default_spec

    shipped = shipped_models()
    ckpt = weights or (str(shipped[model] / "model.pt") if model in shipped else None)
    if ckpt is None and Path(model).suffix in (".pt", ".pth", ".ckpt"):
        ckpt = model
    if ckpt is not None:
        net, spec, _ = load_checkpoint(ckpt, fine_stride=fine_stride)
    else:
        net = create_model(model, fine_stride=True if fine_stride is None else fine_stride, seed=0)
        spec = default_spec(net.arch, fine_stride=net.fine_stride)
    net.set_fine_stride(spec.fine_stride)
    return TorchRunner(net, spec, device)
