"""[no torch] Backends as runners, one file each, found by name (``runtime/<name>.py``).

Each backend module defines ``load(model: str, **options) -> Runner``.
"""

from __future__ import annotations

import importlib
from typing import Any

from overfeat_edge.errors import InputError
from overfeat_edge.runtime.base import Runner

BACKENDS = ("onnxruntime", "torch", "tensorrt")


def load_runner(backend: str, model: str, **options: Any) -> Runner:
    """Load ``model`` (an ONNX path, a shipped model name, or for torch a registry name or checkpoint)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    module = importlib.import_module(f"overfeat_edge.runtime.{backend}")
    runner: Runner = module.load(model, **options)
    return runner


__all__ = ["BACKENDS", "Runner", "load_runner"]
