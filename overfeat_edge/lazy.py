"""The one place optional heavy packages are imported (torch, onnx, tensorrt, cuda...)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from overfeat_edge.errors import InputError, MissingDependency

# package -> the extra that installs it
_EXTRAS = {
    "torch": "torch",
    "onnx": "torch",
    "tensorrt": "tensorrt",
    "pycuda": "tensorrt",
    "cuda": "tensorrt",
    "pycocotools": "eval",
    "paho": "mqtt",
    "tritonclient": "triton",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``purpose`` and the extra."""
    top = module.split(".")[0]
    if _EXTRAS.get(top) == "torch" and sys.version_info < (3, 10):
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        raise InputError(
            f"{purpose} needs Python 3.10+ (overfeat-edge's torch and onnx side); this is Python {here}: "
            "run it on a desktop and copy the ONNX to this device"
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports broke: show that
        raise MissingDependency(top, purpose, _EXTRAS.get(top)) from None
