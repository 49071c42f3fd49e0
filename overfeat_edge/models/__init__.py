"""[torch] Model registry: ``create_model("overfeat-fast@0.25", num_classes=3)``."""

from __future__ import annotations

from overfeat_edge.models.overfeat import OverFeatNet, create_model
from overfeat_edge.models.weights import (
    CHECKPOINT_FORMAT,
    fc_to_conv_state,
    import_original_weights,
    load_checkpoint,
    original_float_count,
    save_checkpoint,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "OverFeatNet",
    "create_model",
    "fc_to_conv_state",
    "import_original_weights",
    "load_checkpoint",
    "original_float_count",
    "save_checkpoint",
]
