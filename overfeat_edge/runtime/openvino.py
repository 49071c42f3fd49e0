"""[no torch] OpenVINO backend: Intel CPUs (bf16 on AMX, int8 on VNNI/AMX), iGPUs and NPUs.

Reads the same ONNX files as ONNX Runtime, the FP32 export and the Q/DQ ONNX from ``calibrate``
alike (the spec comes from the ONNX metadata, :func:`~overfeat_edge.runtime.base.read_spec`).

Shapes: the exported graph has dynamic height and width. ``shapes="reshape"`` compiles one model
per input height and width, its batch left dynamic (a pyramid has a handful of sizes; a cascade's
crop stage one, whatever the number of crops; streams batched together share them), each compiled on
first use and kept, the last MAX_COMPILED of them; ``"dynamic"`` compiles the dynamic model once.
(A compile takes 0.1-0.4 s on 2 cores: one per batch size made a face video's R-Net and O-Net
compile again on most frames.) ``benchmarks/backends.py`` measured both on the shipped model and
``reshape`` is the default (BENCHMARKS.md "backends").

``--precision`` sets ``INFERENCE_PRECISION_HINT`` always: ``fp32`` is ``f32`` (left unset, OpenVINO
computes in bf16 on CPUs with avx512_bf16 or AMX, and the boxes move by pixels), ``bf16`` and
``fp16`` are ``bf16``/``f16``, and ``int8`` runs the Q/DQ ONNX beside the model (``calibrate``), its
float parts in ``f32``. Other options (OpenVINO's properties): ``threads`` (``INFERENCE_NUM_THREADS``),
``hint`` (``PERFORMANCE_HINT``: latency or throughput) and ``device`` (CPU, GPU for an Intel iGPU, NPU).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME, Runner, precision_onnx, read_spec
from overfeat_edge.runtime.descriptor import BackendDescriptor, BackendOption

HINTS = ("latency", "lanes", "throughput")
MAX_LANES = 16
SHAPES = ("reshape", "dynamic")
MAX_COMPILED = 64  # compiled shapes kept per runner (a folder of photos of many sizes compiles more)
HINT_OF = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}  # --precision -> INFERENCE_PRECISION_HINT

DESCRIPTOR = BackendDescriptor(
    name="openvino",
    summary="OpenVINO on Intel CPUs, iGPUs and NPUs (the same ONNX files)",
    options=(
        BackendOption("threads", int, "CPU threads of the backend (default: all cores).", metavar="N"),
        BackendOption("ov_device", str, "CPU (default), GPU (an Intel iGPU) or NPU.", metavar="DEVICE"),
        BackendOption(
            "ov_hint",
            str,
            "latency (default), lanes (one thread per request, levels and crops spread over them) or throughput.",
            metavar="HINT",
            choices=HINTS,
        ),
        BackendOption(
            "ov_shapes",
            str,
            "one model per input shape, or one dynamic model.",
            metavar="MODE",
            choices=SHAPES,
        ),
    ),
    cpu=True,
    precisions=("fp32", "bf16", "fp16", "int8"),
    available=lambda: None if importlib.util.find_spec("openvino") else "pip install openvino",
)

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
        precision: str = "fp32",
        threads: int | None = None,
        hint: str = "latency",
        shapes: str = "reshape",
    ) -> None:
        DESCRIPTOR.check_precision(precision)
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
        self.config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": HINT_OF[precision]}
        self.lanes = 1
        if hint == "lanes" and device.startswith("CPU") and shapes == "reshape":
            # one stream of one thread per lane: requests run side by side (see run_levels)
            self.lanes = max(1, min(threads or os.cpu_count() or 1, MAX_LANES))
            self.config.update({"NUM_STREAMS": self.lanes, "INFERENCE_NUM_THREADS": self.lanes})
        else:
            self.config["PERFORMANCE_HINT"] = "LATENCY" if hint == "lanes" else hint.upper()
            if threads is not None and device.startswith("CPU"):
                self.config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.model = self.core.read_model(str(path))
        except RuntimeError as exc:
            raise ModelError(f"{path}: OpenVINO cannot read it ({str(exc).strip().splitlines()[0][:200]})") from None
        names = [o.get_any_name() for o in self.model.outputs]
        inputs = [i.get_any_name() for i in self.model.inputs]
        if inputs != [INPUT_NAME]:
            raise ModelError(f"{path}: expected one input {INPUT_NAME!r}, got {inputs}")
        self.output_names = names
        # (C, H, W) (reshape: any batch) or None (dynamic) -> its requests (one per lane), least recently used first
        self._compiled: OrderedDict[tuple[int, ...] | None, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.precision = precision

    def _requests(self, key: tuple[int, ...] | None, x: np.ndarray) -> list[Any]:
        """The infer requests of an input size (one per lane), compiled on first use. A size's compile and
        first inference (OpenVINO's lazy set-up of the CPU streams that serve it) run alone in the
        process, under ``_FIRST``; ``x`` is that first inference's input. Call with ``self._lock`` held."""
        requests = self._compiled.get(key)
        if requests is not None:
            self._compiled.move_to_end(key)
            return requests
        model = self.model
        if key is not None:
            model = self.model.clone()
            model.reshape({INPUT_NAME: [-1, *key]})
        with _FIRST:
            compiled = self.core.compile_model(model, self.device, self.config)
            requests = [compiled.create_infer_request() for _ in range(self.lanes)]
            for r in requests:
                r.infer({INPUT_NAME: x[:1]})
        self._compiled[key] = requests
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return requests

    def _outputs(self, request: Any) -> dict[str, np.ndarray]:
        return {name: np.array(request.get_tensor(name).data, copy=True) for name in self.output_names}

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One inference. Each runner serves one thread at a time (``self._lock``: a request's output
        tensors are read after it ends); workers run side by side on runners of their own. With lanes,
        a batch's rows are shared out over them (a cascade stage's crops)."""
        x = self.check_input(batch)
        key = None if self.shapes == "dynamic" else tuple(x.shape[1:])
        with self._lock:
            requests = self._requests(key, x)
            if self.lanes == 1 or len(x) < 2:
                requests[0].infer({INPUT_NAME: x})
                return self._outputs(requests[0])
            parts = np.array_split(x, min(self.lanes, len(x)))
            outs = self._side_by_side([(requests[k], p) for k, p in enumerate(parts)])
            return {n: np.concatenate([o[n] for o in outs]) for n in self.output_names}

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Every level; with lanes, side by side, the largest first, each on the next free lane."""
        if self.lanes == 1 or len(batches) < 2:
            return [self.run(b) for b in batches]
        xs = [self.check_input(b) for b in batches]
        order = sorted(range(len(xs)), key=lambda i: -xs[i].size)
        with self._lock:
            jobs = [(self._requests(tuple(xs[i].shape[1:]), xs[i]), xs[i]) for i in order]
            outs = self._side_by_side(jobs, pick_lane=True)
        result: list[dict[str, np.ndarray]] = [{} for _ in xs]
        for i, out in zip(order, outs):
            result[i] = out
        return result

    def _side_by_side(self, jobs: list[tuple[Any, np.ndarray]], pick_lane: bool = False) -> list[dict[str, np.ndarray]]:
        """Each job (a request, or with ``pick_lane`` a size's requests, and its input) started as soon as
        a lane is free; their outputs in the jobs' order. A lane runs one request at a time, so two jobs
        of one size never share a request while one of them is running."""
        free: queue.Queue[int] = queue.Queue()
        for k in range(self.lanes):
            free.put(k)
        outs: list[Any] = [None] * len(jobs)
        errors: list[BaseException] = []
        try:
            for j, (target, x) in enumerate(jobs):
                lane = free.get()
                request = target[lane] if pick_lane else target

                def done(_: Any, j: int = j, lane: int = lane, request: Any = request) -> None:
                    try:
                        outs[j] = self._outputs(request)
                    except BaseException as exc:  # raised in the caller, below
                        errors.append(exc)
                    free.put(lane)

                request.set_callback(done, None)
                try:
                    request.start_async({INPUT_NAME: x})
                except BaseException:
                    free.put(lane)  # never started: its callback will not give the lane back
                    raise
        finally:
            for _ in range(self.lanes):  # every started request's callback has ended and returned its lane
                free.get()
        if errors:
            raise errors[0]
        return outs

    def describe(self) -> str:
        ov = require("openvino", "the openvino backend")
        version = ov.__version__.split("-")[0]
        hint = self.config["INFERENCE_PRECISION_HINT"]
        if self._compiled:  # what the device really computes in (bf16 asked on a CPU without it: f32)
            compiled = next(iter(self._compiled.values()))[0].get_compiled_model()
            got = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            hint = hint if got == hint else f"{hint} asked, {got} run"
        lanes = f", {self.lanes} lanes" if self.lanes > 1 else ""
        return f"openvino {version} {self.precision} {self.device} ({hint}, {self.shapes}{lanes}, {self.path.name})"


def load(
    model: str,
    *,
    threads: int | None = None,
    ov_device: str | None = None,
    ov_hint: str | None = None,
    ov_shapes: str | None = None,
    precision: str = "fp32",
) -> OpenVinoRunner:
    DESCRIPTOR.check_precision(precision)
    path, precision = precision_onnx(model, precision)
    return OpenVinoRunner(
        path,
        device=ov_device or "CPU",
        precision=precision,
        threads=threads,
        hint=ov_hint or "latency",
        shapes=ov_shapes or "reshape",
    )
