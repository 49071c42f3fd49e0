"""ONNX Runtime backend: the default, on the CPU everywhere.

``--precision``: ``fp32`` runs the export; ``fp16`` its FP16 graph (``model.fp16.onnx``) and ``int8``
its Q/DQ graph (``model.cpu.qdq.onnx`` from ``calibrate``), found beside it
(:func:`~overfeat_edge.runtime.base.precision_onnx`).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import INPUT_NAME, Runner, precision_onnx, read_spec
from overfeat_edge.runtime.descriptor import THREADS, BackendDescriptor, BackendOption

if TYPE_CHECKING:
    import onnxruntime as ort

MAX_THREADS = 256  # more threads than that is a typo, not a machine
OPTIMIZATIONS = ("none", "basic", "extended", "all")


@lru_cache(maxsize=None)
def _ort() -> Any:
    """onnxruntime, imported on first use (reading the descriptor needs no runtime)."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # errors only: no warnings on stderr for every session
    return onnxruntime


def _missing() -> str | None:
    return None if importlib.util.find_spec("onnxruntime") else "pip install onnxruntime"


DESCRIPTOR = BackendDescriptor(
    name="onnxruntime",
    summary="ONNX Runtime on the CPU (an exported .onnx or a shipped model)",
    options=(
        THREADS,
        BackendOption("optimization", str, "graph optimization level.", metavar="LEVEL", choices=OPTIMIZATIONS),
    ),
    cpu=True,
    precisions=("fp32", "fp16", "int8"),
    available=_missing,
)


def check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InputError(f"--threads must be between 1 and {MAX_THREADS}, got {threads}")


def session_options(threads: int | None = None, optimization: str = "all") -> ort.SessionOptions:
    ort_ = _ort()
    if optimization not in OPTIMIZATIONS:
        raise InputError(f"optimization must be one of {', '.join(OPTIMIZATIONS)}, got {optimization!r}")
    check_threads(threads)
    so = ort_.SessionOptions()
    level = ort_.GraphOptimizationLevel
    so.graph_optimization_level = dict(
        zip_strict(
            OPTIMIZATIONS,
            (level.ORT_DISABLE_ALL, level.ORT_ENABLE_BASIC, level.ORT_ENABLE_EXTENDED, level.ORT_ENABLE_ALL),
        )
    )[optimization]
    if threads:
        so.intra_op_num_threads = threads
    # no busy-waiting between ops: in the threaded pipeline the capture, preprocessing and output
    # threads need the cores that spinning intra-op threads would hold
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def open_session(
    path: Path, threads: int | None = None, optimization: str = "all", providers: list[str] | None = None
) -> ort.InferenceSession:
    try:
        return _ort().InferenceSession(
            str(path),
            sess_options=session_options(threads, optimization),
            providers=providers or ["CPUExecutionProvider"],
        )
    except InputError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({first[:200]})") from None


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        optimization: str = "all",
        providers: list[str] | None = None,
        precision: str = "fp32",
    ) -> None:
        self.path = path
        check_threads(threads)  # a bad option, not a bad model
        self.session = open_session(path, threads, optimization, providers)  # a corrupt file: "cannot load"
        self.spec = read_spec(path)  # from the metadata, as every backend reads it
        self.precision = precision
        names = [o.name for o in self.session.get_outputs()]
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise ModelError(f"{path}: expected one input {INPUT_NAME!r}, got {inputs}")
        self.output_names = names

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {INPUT_NAME: self.check_input(batch)})
        return dict(zip_strict(self.output_names, outputs))

    def describe(self) -> str:
        providers = ", ".join(self.session.get_providers())
        return f"onnxruntime {_ort().__version__} {self.precision} ({providers}, {self.path.name})"


def load(
    model: str, *, threads: int | None = None, optimization: str | None = None, precision: str = "fp32"
) -> OnnxRuntimeRunner:
    DESCRIPTOR.check_precision(precision)
    path, precision = precision_onnx(model, precision)
    return OnnxRuntimeRunner(path, threads=threads, optimization=optimization or "all", precision=precision)
