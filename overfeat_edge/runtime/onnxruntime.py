"""ONNX Runtime backend: the default, on the CPU everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, Runner, resolve_onnx
from overfeat_edge.spec import METADATA_KEY, ModelSpec

MAX_THREADS = 256  # more threads than that is a typo, not a machine
ort.set_default_logger_severity(3)  # errors only: no warnings on stderr for every session


def session_options(threads: int | None = None, optimization: str = "all") -> ort.SessionOptions:
    levels = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise InputError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InputError(f"--threads must be between 1 and {MAX_THREADS}, got {threads}")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
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
        return ort.InferenceSession(
            str(path),
            sess_options=session_options(threads, optimization),
            providers=providers or ["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({first[:200]})") from None


def read_spec(session: ort.InferenceSession, source: str) -> ModelSpec:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelError(
            f"{source}: this ONNX has no overfeat-edge spec in its metadata; "
            "export it with 'overfeat-edge export' (or use --backend torch with a checkpoint)"
        )
    return ModelSpec.from_json(meta[METADATA_KEY], source)


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(
        self, path: Path, threads: int | None = None, optimization: str = "all", providers: list[str] | None = None
    ) -> None:
        self.path = path
        if threads is not None and not 1 <= threads <= MAX_THREADS:  # a bad option, not a bad model
            raise InputError(f"--threads must be between 1 and {MAX_THREADS}, got {threads}")
        self.session = open_session(path, threads, optimization, providers)
        self.spec = read_spec(self.session, str(path))
        names = [o.name for o in self.session.get_outputs()]
        if [i.name for i in self.session.get_inputs()] != [INPUT_NAME] or names[:2] != list(OUTPUT_NAMES):
            raise ModelError(f"{path}: expected input {INPUT_NAME!r} and outputs {OUTPUT_NAMES}, got {names}")

        self.output_names = names

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, boxes = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: self.check_input(batch)})[:2]
        return scores, boxes

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {INPUT_NAME: self.check_input(batch)})
        return dict(zip_strict(self.output_names, outputs))

    def run_many(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return [self.run(x) for x in batches]

    def describe(self) -> str:
        return f"onnxruntime {ort.__version__} ({', '.join(self.session.get_providers())})"


def load(model: str, *, threads: int | None = None, optimization: str = "all") -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(resolve_onnx(model), threads=threads, optimization=optimization)
