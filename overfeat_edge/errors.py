"""One exception family. The CLI turns any of these into one stderr line and an exit code."""

from __future__ import annotations


class OverfeatEdgeError(Exception):
    """Base class: a problem the user can fix; the message says what was expected and what came."""

    exit_code = 2


class InputError(OverfeatEdgeError):
    """Bad user input: a missing or unreadable file, an impossible option value."""


class ModelError(OverfeatEdgeError):
    """A model file that is not ours, is corrupt, or does not match what was asked."""


class OutputError(OverfeatEdgeError):
    """An output that could not be written or delivered: a full disk, a broker never reached."""


class ParityError(OverfeatEdgeError):
    """Two implementations that must agree (torch vs ONNX Runtime, say) differ beyond tolerance."""

    exit_code = 3


# pyproject.toml's extras and the packages each installs (a test keeps the two the same)
EXTRAS = {
    "torch": ("torch", "onnx"),
    "tensorrt": ("tensorrt", "pycuda", "polygraphy"),
    "openvino": ("openvino",),
    "mqtt": ("paho-mqtt",),
    "eval": ("pycocotools",),
}


def install_hint(extra: str) -> str:
    """How to install an extra, as a wheel user or from a checkout: the packages by name (nothing called
    overfeat-edge is on the package index to take ``overfeat-edge[extra]`` from)."""
    return f"pip install {' '.join(EXTRAS[extra])}; from a checkout: pip install -e '.[{extra}]'"


class MissingDependency(OverfeatEdgeError):
    """An optional package (torch, onnx, tensorrt...) is needed for this command but not installed."""

    def __init__(self, package: str, purpose: str, extra: str | None = None) -> None:
        hint = install_hint(extra) if extra in EXTRAS else f"pip install {package}"
        super().__init__(f"{purpose}: the '{package}' package is needed, and it is not installed ({hint})")
        self.package = package
