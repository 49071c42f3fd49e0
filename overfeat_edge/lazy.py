"""The one place optional heavy packages are imported (torch, onnx, tensorrt, cuda...)."""

from __future__ import annotations

import importlib
from types import ModuleType

from overfeat_edge.errors import MissingDependency

# package -> the extra that installs it
_EXTRAS = {
    "torch": "torch",
    "onnx": "torch",
    "tensorrt": "tensorrt",
    "pycuda": "tensorrt",
    "cuda": "tensorrt",
    "pycocotools": "eval",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``purpose`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports broke: show that
        raise MissingDependency(top, purpose, _EXTRAS.get(top)) from None
