"""[no torch] OpenVINO backend: Intel CPUs (bf16 on AMX, int8 on VNNI/AMX), iGPUs and NPUs.

Reads the same ONNX files as ONNX Runtime, the FP32 export and the Q/DQ ONNX from ``calibrate``
alike (the spec comes from the ONNX metadata, :func:`~overfeat_edge.runtime.base.read_spec`).

Shapes: the exported graph has dynamic height and width. ``shapes="reshape"`` compiles one model
per input shape (a pyramid has a handful; each is compiled on first use and kept), ``"dynamic"``
compiles the dynamic model once. ``benchmarks/backends.py`` measured both on the shipped model and
``reshape`` is the default (BENCHMARKS.md "backends").

Options (OpenVINO's properties): ``precision`` (``INFERENCE_PRECISION_HINT``: f32, bf16, f16; default:
the device's own choice, bf16 on AMX CPUs), ``threads`` (``INFERENCE_NUM_THREADS``), ``hint``
(``PERFORMANCE_HINT``: latency or throughput) and ``device`` (CPU, GPU for an Intel iGPU, NPU).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, Runner, read_spec, resolve_onnx

PRECISIONS = ("f32", "bf16", "f16")
HINTS = ("latency", "throughput")
SHAPES = ("reshape", "dynamic")

# One Core per process (OpenVINO's own advice) and one shape's compile and first inference at a time
# in the process: with a Core per worker, two workers' first inferences each set up OpenVINO's CPU
# streams for their calling thread at the same moment (see run()).
_CORE: list[Any] = []
_FIRST = threading.Lock()


def shared_core(ov: Any) -> Any:
    """The process's one ``ov.Core``."""
    with _FIRST:
        if not _CORE:
            _CORE.append(ov.Core())
        return _CORE[0]


class OpenVinoRunner(Runner):
    name = "openvino"

    def __init__(
        self,
        path: Path,
        *,
        device: str = "CPU",
        precision: str | None = None,
        threads: int | None = None,
        hint: str = "latency",
        shapes: str = "reshape",
    ) -> None:
        if precision is not None and precision not in PRECISIONS:
            raise InputError(f"--ov-precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if hint not in HINTS:
            raise InputError(f"--ov-hint must be one of {', '.join(HINTS)}, got {hint!r}")
        if shapes not in SHAPES:
            raise InputError(f"--ov-shapes must be one of {', '.join(SHAPES)}, got {shapes!r}")
        if threads is not None and not 1 <= threads <= 256:
            raise InputError(f"--threads must be between 1 and 256, got {threads}")
        ov = require("openvino", "the openvino backend")
        self.path, self.device, self.shapes = path, device, shapes
        self.spec = read_spec(path)
        self.core = shared_core(ov)
        if device.split(".")[0].split(":")[0] not in [d.split(".")[0] for d in self.core.available_devices]:
            raise InputError(
                f"OpenVINO device {device!r} is not here (available: {', '.join(self.core.available_devices)})"
            )
        self.config: dict[str, Any] = {"PERFORMANCE_HINT": hint.upper()}
        if precision is not None:
            self.config["INFERENCE_PRECISION_HINT"] = precision
        if threads is not None and device.startswith("CPU"):
            self.config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.model = self.core.read_model(str(path))
        except RuntimeError as exc:
            raise ModelError(f"{path}: OpenVINO cannot read it ({str(exc).strip().splitlines()[0][:200]})") from None
        names = [o.get_any_name() for o in self.model.outputs]
        if [i.get_any_name() for i in self.model.inputs] != [INPUT_NAME] or names[:2] != list(OUTPUT_NAMES):
            raise ModelError(f"{path}: expected input {INPUT_NAME!r} and outputs {OUTPUT_NAMES}, got {names}")
        self.output_names = names
        self._compiled: dict[tuple[int, ...] | None, Any] = {}  # input shape (reshape) or None (dynamic) -> request
        self._lock = threading.Lock()
        self.precision = precision

    def _compile(self, key: tuple[int, ...] | None) -> Any:
        model = self.model
        if key is not None:
            model = self.model.clone()
            model.reshape({INPUT_NAME: list(key)})
        return self.core.compile_model(model, self.device, self.config).create_infer_request()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One inference. A shape's first one (its compile, and OpenVINO's lazy set-up of the CPU
        streams that serve the calling thread) runs alone in the process, under ``_FIRST``; later
        ones run side by side, each worker on its own runner. An InferRequest serves one thread at
        a time (``self._lock``: its output tensors are read after ``infer``)."""
        x = self.check_input(batch)
        key = None if self.shapes == "dynamic" else x.shape
        with self._lock:
            request = self._compiled.get(key)
            if request is None:
                with _FIRST:
                    request = self._compile(key)
                    request.infer({INPUT_NAME: x})
                self._compiled[key] = request
            else:
                request.infer({INPUT_NAME: x})
            return {name: np.array(request.get_tensor(name).data, copy=True) for name in self.output_names}

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.run(batch)
        return out["scores"], out["boxes"]

    def run_many(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return [self.run(x) for x in batches]

    def describe(self) -> str:
        ov = require("openvino", "the openvino backend")
        chosen = self.precision
        if chosen is None and self._compiled:
            compiled = next(iter(self._compiled.values())).get_compiled_model()
            chosen = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        version = ov.__version__.split("-")[0]
        return f"openvino {version} {self.device} ({chosen or 'the device default precision'}, {self.shapes})"


def load(
    model: str,
    *,
    threads: int | None = None,
    ov_device: str | None = None,
    ov_precision: str | None = None,
    ov_hint: str = "latency",
    ov_shapes: str = "reshape",
) -> OpenVinoRunner:
    return OpenVinoRunner(
        resolve_onnx(model),
        device=ov_device or "CPU",
        precision=ov_precision,
        threads=threads,
        hint=ov_hint,
        shapes=ov_shapes,
    )
