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


class MissingDependency(OverfeatEdgeError):
    """An optional package (torch, onnx, tensorrt...) is needed for this command but not installed."""

    def __init__(self, package: str, purpose: str, extra: str | None = None) -> None:
        hint = f"pip install 'overfeat-edge[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{purpose}: the '{package}' package is needed, and it is not installed ({hint})")
        self.package = package
