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
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME, Runner, precision_onnx, read_spec
from overfeat_edge.runtime.descriptor import THREADS, BackendDescriptor, BackendOption

HINTS = ("latency", "throughput")
SHAPES = ("reshape", "dynamic")
MAX_COMPILED = 64  # compiled shapes kept per runner (a folder of photos of many sizes compiles more)
HINT_OF = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}  # --precision -> INFERENCE_PRECISION_HINT

DESCRIPTOR = BackendDescriptor(
    name="openvino",
    summary="OpenVINO on Intel CPUs, iGPUs and NPUs (the same ONNX files)",
    options=(
        THREADS,
        BackendOption("ov_device", str, "CPU (default), GPU (an Intel iGPU) or NPU.", metavar="DEVICE"),
        BackendOption("ov_hint", str, "performance hint (default: latency).", metavar="HINT", choices=HINTS),
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

# The process's first inference runs alone (``_FIRST``, then ``_WARM``), because of a deadlock in
# OpenVINO's Python bindings (issue 22 item 6; both workers' gdb stacks, 2-core AMD EPYC, 2026.4.1).
# The first numpy view of a Tensor in the process (``tensor.data[:] = inputs`` in the
# ``_data_dispatch`` of ``InferRequest.infer``) builds a function-local C++ static, the dtype table
# of ``Common::type_helpers::ov_type_to_dtype()`` (pyopenvino core/common.cpp), and its initializer
# makes pybind11's first ``npy_api::get()``, which releases the GIL and takes it back
# (``gil_safe_call_once_and_store``). Two workers there at once take two locks in opposite orders:
# worker A holds the static's initialization guard and waits for the GIL; worker B holds the GIL and
# waits for that guard in ``__cxa_guard_acquire``. It is the case pybind/pybind11#4877 describes
# (a ``static`` whose initializer touches the GIL). With the GIL held for ever no Python code runs
# again, not the SIGINT/SIGTERM handlers nor the watchdog they arm. A Python lock cannot deadlock
# that way: a thread waiting for it has released the GIL.
_FIRST = threading.Lock()
_WARM = threading.Event()  # set once the process's first inference (and those statics) is done
_CORE: list[Any] = []  # one Core per process (OpenVINO's advice; not the deadlock's cause)


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
        self.path, self.device, self.shapes, self._ov = path, device, shapes, ov
        self.spec = read_spec(path)
        self.core = shared_core(ov)
        if device.split(".")[0].split(":")[0] not in [d.split(".")[0] for d in self.core.available_devices]:
            raise InputError(
                f"OpenVINO device {device!r} is not here (available: {', '.join(self.core.available_devices)})"
            )
        self.config: dict[str, Any] = {"PERFORMANCE_HINT": hint.upper(), "INFERENCE_PRECISION_HINT": HINT_OF[precision]}
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
        # (C, H, W) (reshape: any batch) or None (dynamic) -> its infer request, least recently used first
        self._compiled: OrderedDict[tuple[int, ...] | None, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.precision = precision

    def _compile(self, key: tuple[int, ...] | None) -> Any:
        model = self.model
        if key is not None:
            model = self.model.clone()
            model.reshape({INPUT_NAME: [-1, *key]})
        return self.core.compile_model(model, self.device, self.config).create_infer_request()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One inference; the process's first one alone (see ``_FIRST``). A runner serves one thread
        at a time (``self._lock``: its compiled shapes and their requests are not thread-safe)."""
        x = self.check_input(batch)
        key = None if self.shapes == "dynamic" else tuple(x.shape[1:])
        with self._lock:
            request = self._compiled.get(key)
            if request is None:
                request = self._compiled[key] = self._compile(key)
                if len(self._compiled) > MAX_COMPILED:
                    self._compiled.popitem(last=False)
            else:
                self._compiled.move_to_end(key)
            if _WARM.is_set():
                return self._infer(request, x)
            with _FIRST:
                out = self._infer(request, x)
                _WARM.set()
            return out

    def _infer(self, request: Any, x: np.ndarray) -> dict[str, np.ndarray]:
        # check_input made x C-contiguous float32: the tensor wraps it, no copy. Setting it and calling
        # infer() without arguments skips the Python dispatch of infer({name: x}), which cost 0.08 ms a
        # call, as much as P-Net's whole inference on a 14x14 level (MTCNN makes ten or more calls a photo)
        request.set_input_tensor(self._ov.Tensor(x, shared_memory=True))
        request.infer(share_outputs=True)  # its own OVDict of views: the copies are made below, once
        return {name: np.array(request.get_tensor(name).data, copy=True) for name in self.output_names}

    def describe(self) -> str:
        ov = require("openvino", "the openvino backend")
        version = ov.__version__.split("-")[0]
        hint = self.config["INFERENCE_PRECISION_HINT"]
        if self._compiled:  # what the device really computes in (bf16 asked on a CPU without it: f32)
            compiled = next(iter(self._compiled.values())).get_compiled_model()
            got = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            hint = hint if got == hint else f"{hint} asked, {got} run"
        return f"openvino {version} {self.precision} {self.device} ({hint}, {self.shapes}, {self.path.name})"


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
