"""[torch] Which network `export` writes: a shipped model's checkpoint by name, a checkpoint file, or a
registered network with random weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from overfeat_edge.arch import get_arch
from overfeat_edge.errors import InputError
from overfeat_edge.spec import ModelSpec

if TYPE_CHECKING:
    from overfeat_edge.models.overfeat import OverFeatNet

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def network_to_export(
    model: str, *, weights: Path | None = None, num_classes: int | None = None
) -> tuple[OverFeatNet, ModelSpec, bool]:
    """(network, spec, random): ``model`` is a shipped model's name (its checkpoint, unless ``weights``),
    a checkpoint, or a registry name (``weights`` loaded into it, else random weights: ``random`` True)."""
    from overfeat_edge.models import create_model, load_checkpoint
    from overfeat_edge.runtime.base import shipped_models
    from overfeat_edge.spec import default_spec

    shipped = shipped_models()
    if model in shipped and weights is None:  # a shipped model by name: its checkpoint
        if not (shipped[model] / "model.pt").is_file():
            raise InputError(
                f"{model} ships as ONNX only (no checkpoint to export); use {shipped[model] / 'model.onnx'}"
            )
        model = str(shipped[model] / "model.pt")
    ckpt = weights or (Path(model) if Path(model).suffix in CHECKPOINT_SUFFIXES else None)
    if ckpt is None:
        net = create_model(model, num_classes=num_classes, seed=0)
        return net, default_spec(net.arch), True
    net, spec, _ = load_checkpoint(ckpt)
    if weights is not None and get_arch(model).family != spec.arch.family:
        raise InputError(f"--model {model} does not match the checkpoint's {spec.arch.name}")
    return net, spec, False


def check_finite_weights(net: OverFeatNet) -> None:
    """Refuse, with one line, a network holding NaN or infinite weights (before anything is written)."""
    if not all(bool(v.isfinite().all()) for v in net.state_dict().values() if v.is_floating_point()):
        raise InputError("the network holds NaN or infinite weights; nothing was exported")
