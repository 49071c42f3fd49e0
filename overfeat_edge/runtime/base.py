"""The runner interface every backend implements (Polygraphy's runner, trimmed)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.spec import ModelSpec

INPUT_NAME = "input"
OUTPUT_NAMES = ("scores", "boxes")

# shipped models live here: overfeat_edge/assets/<name>/model.onnx (+ checkpoint, model card)
ASSETS = Path(__file__).resolve().parent.parent / "assets"


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def shipped_models() -> dict[str, Path]:
    """Name -> directory of every model shipped inside the package."""
    if not ASSETS.is_dir():
        return {}
    return {p.name: p for p in sorted(ASSETS.iterdir()) if (p / "model.onnx").is_file()}


def resolve_onnx(model: str) -> Path:
    """An ONNX path, or the name of a shipped model -> the ONNX file's path."""
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise InputError(f"ONNX file not found: {path}")
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


def read_spec(onnx: Path) -> ModelSpec:
    """The model spec in an ONNX file's metadata, read without loading the graph in any runtime."""
    from overfeat_edge.onnxmeta import read_metadata
    from overfeat_edge.spec import METADATA_KEY

    meta = read_metadata(onnx)
    if METADATA_KEY not in meta:
        raise ModelError(
            f"{onnx}: this ONNX has no overfeat-edge spec in its metadata; "
            "export it with 'overfeat-edge export' (or use --backend torch with a checkpoint)"
        )
    return ModelSpec.from_json(meta[METADATA_KEY], str(onnx))


class Runner(ABC):
    """One loaded network. ``infer`` takes a normalized (N, 3, H, W) float32 batch and returns
    ``(scores, boxes)``: (N, C', Ho, Wo) probabilities and (N, 4 * classes, Ho, Wo) box edges.
    Use as a context manager, or call :meth:`activate` / :meth:`deactivate`.
    """

    name: str = "runner"
    spec: ModelSpec
    max_batch: int | None = None  # the most inputs one call takes (an engine's profile), None: any
    choice: str = ""  # how --backend auto chose this runner (empty when the backend was named)

    def activate(self) -> None:  # noqa: B027 - optional hook
        """Acquire device resources (a context, a stream); the default has none."""

    def deactivate(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`activate` acquired."""

    @abstractmethod
    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every output by name (``scores``, ``boxes`` and any extra head, e.g. ``landmarks``)."""
        scores, boxes = self.infer(batch)
        return {"scores": scores, "boxes": boxes}

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """:meth:`run` over every batch (a pyramid's levels, a round's batches); a GPU backend
        overrides it to enqueue them all and synchronize once."""
        return [self.run(b) for b in batches]

    def infer_many(self, batches: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every pyramid level of one frame; a GPU backend enqueues them all and synchronizes once."""
        return [self.infer(x) for x in batches]

    def run_many(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """:meth:`infer_many` with every output by name (a backend with extra outputs overrides it)."""
        return [{"scores": s, "boxes": b} for s, b in self.infer_many(batches)]

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
