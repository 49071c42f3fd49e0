"""The runner interface every backend implements (Polygraphy's runner, trimmed)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

import numpy as np

from overfeat_edge import registry
from overfeat_edge.errors import InputError
from overfeat_edge.spec import ModelSpec

INPUT_NAME = "input"
OUTPUT_NAMES = ("scores", "boxes")

ASSETS = registry.ASSETS
shipped_models = registry.shipped_models

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def resolve_onnx(model: str) -> Path:
    """An ONNX path, or the name of a shipped model -> the ONNX file's path."""
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise InputError(f"ONNX file not found: {path}")
        if not os.access(path, os.R_OK):
            raise InputError(f"cannot read the model {path}: permission denied")
        return path
    shipped = shipped_models()
    if model in shipped:
        return shipped[model] / "model.onnx"
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        raise InputError(
            f"--model {model} is a PyTorch checkpoint: run it with --backend torch, or export it first "
            f"(overfeat-edge export --model {model} --out {path.with_suffix('.onnx')})"
        )
    names = ", ".join(shipped) or "none installed"
    raise InputError(f"--model must be an .onnx file or a shipped model ({names}), got {model!r}")


read_spec = registry.spec_from_onnx  # the spec in an ONNX's metadata, read without any runtime


def file_precision(onnx: Path) -> str:
    """What an ONNX file computes in: ``int8`` (Q/DQ nodes, from ``calibrate``), ``fp16``
    (``<stem>.fp16.onnx``, from ``export --half``) or ``fp32`` (the export as it is)."""
    from overfeat_edge.onnxmeta import has_qdq

    if has_qdq(onnx):
        return "int8"
    return "fp16" if onnx.name.lower().endswith(".fp16.onnx") else "fp32"


# the file beside an FP32 export that holds it at a lower precision, and the command that writes it
VARIANTS = {
    "fp16": (("{stem}.fp16.onnx",), "overfeat-edge export --half (or import-weights, which writes both)"),
    "int8": (
        ("{stem}.cpu.qdq.onnx", "{stem}.qdq.onnx"),
        "overfeat-edge calibrate (or give calibrate's model.cpu.qdq.onnx as the model)",
    ),
}


def precision_onnx(model: str, precision: str) -> tuple[Path, str]:
    """(the ONNX to load, its precision) for ``model`` at ``precision``.

    A file made at a lower precision (an FP16 or Q/DQ ONNX) runs at that precision: ``precision``
    must then be its own or the default ``fp32``. An FP32 export at ``fp16``/``int8`` gives the
    variant beside it (:data:`VARIANTS`); at ``fp32``/``bf16``, the export itself (``bf16`` is a
    compute precision the backend applies, not a file).
    """
    onnx = resolve_onnx(model)
    own = file_precision(onnx)
    if own != "fp32":
        if precision not in ("fp32", own):
            raise InputError(f"{onnx} is an {own} ONNX; it cannot run at --precision {precision}")
        return onnx, own
    if precision not in VARIANTS:
        return onnx, precision
    names, how = VARIANTS[precision]
    stem = onnx.name[: -len(".onnx")]
    for name in names:
        path = onnx.with_name(name.format(stem=stem))
        if path.is_file():
            return path, precision
    want = onnx.with_name(names[0].format(stem=stem))
    raise InputError(f"--precision {precision} needs {want}; make it with {how.format(stem=stem)}")


class Runner(ABC):
    """One loaded network. :meth:`run` takes a normalized (N, 3, H, W) float32 batch and returns every
    output by name: ``scores`` (N, C', Ho, Wo) probabilities, ``boxes`` (N, 4 * classes, Ho, Wo) box
    edges, and any extra head (``landmarks``). Use as a context manager, or call :meth:`activate` /
    :meth:`deactivate`.
    """

    name: str = "runner"
    spec: ModelSpec
    precision: str = "fp32"  # what it computes in (one of descriptor.PRECISIONS)
    max_batch: int | None = None  # the most inputs one call takes (an engine's profile), None: any
    choice: str = ""  # how --backend auto chose this runner (empty when the backend was named)
    packed: Runner | None = None  # the packed graph beside its ONNX, where it has one (runtime.canvas)

    def activate(self) -> None:  # noqa: B027 - optional hook
        """Acquire device resources (a context, a stream); the default has none."""

    def deactivate(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`activate` acquired."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release for good what the runner keeps from call to call (a server's shared-memory
        regions); the runner is not used again. The default keeps nothing."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every output by name (``scores``, ``boxes`` and any extra head, e.g. ``landmarks``)."""

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """:meth:`run` on every batch (a frame's pyramid levels); a GPU backend enqueues them all and
        synchronizes once. Where the model has a packed graph (:attr:`packed`), the small levels run in
        one call of it (:mod:`overfeat_edge.runtime.canvas`)."""
        if self.packed is not None and len(batches) > 2:
            from overfeat_edge.runtime.canvas import run_packed

            return run_packed(self, self.packed, batches)
        return [self.run(x) for x in batches]

    def describe(self) -> str:
        return self.name

    def check_input(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1] != self.spec.arch.in_channels:
            raise InputError(f"input must be of shape (N, {self.spec.arch.in_channels}, H, W), but got {batch.shape}")
        w = self.spec.arch.window
        if batch.shape[2] < w or batch.shape[3] < w:
            raise InputError(f"input {batch.shape[2]}x{batch.shape[3]} is smaller than the {w}x{w} window")
        return np.ascontiguousarray(batch, dtype=np.float32)

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()
