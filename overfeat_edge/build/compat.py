"""[no TensorRT import] What each TensorRT generation needs, as data: one table, checked by tests.

The generations our users have (JetPack 5: 8.5/8.6; JetPack 6 and desktops: 10.x; JetPack 7.2.2+
and current desktops: 11.x) differ in ways that break naive code:

* network creation: 8.x needs ``1 << EXPLICIT_BATCH``; 10.x ignores the flag (explicit batch is
  the only mode); 11.x removed it. We pass the flag only to 8.x.
* workspace: ``config.max_workspace_size`` is gone in 10; ``set_memory_pool_limit(WORKSPACE, n)``
  exists from 8.4 and is the one we use.
* precision: up to 10.x the builder flags ``FP16``/``INT8`` (+ a calibrator or a Q/DQ ONNX for
  INT8); 11.x removed them with weak typing and the calibrators: the precision must already be in
  the ONNX (the exporter's FP16 ONNX; the calibrate command's Q/DQ ONNX).
* I/O: the name-based API (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``)
  exists from 8.5 and is the only one we call.
* progress: ``IProgressMonitor`` from 8.6.
* DLA (Jetson AGX/NX Orin): TensorRT <= 10.x, or 11.4.1+ (documented for AGX Orin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from overfeat_edge.errors import InputError, MissingDependency

PRECISIONS = ("fp32", "fp16", "int8")
MIN_VERSION = (8, 5)


class TrtVersion(NamedTuple):
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
        if not m:
            raise InputError(f"not a TensorRT version: {text!r}")
        return cls(int(m[1]), int(m[2]), int(m[3] or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class BuildPlan:
    """How to build one precision on one TensorRT version."""

    explicit_batch_flag: bool  # pass 1 << EXPLICIT_BATCH to create_network
    builder_flags: tuple[str, ...]  # BuilderFlag names to set
    onnx_variant: str  # "fp32" (the model as exported), "fp16" (export --half) or "qdq" (calibrate)
    calibration_cache: bool  # INT8 through the implicit path: a cache-only calibrator
    progress_monitor: bool


def check_supported(v: TrtVersion) -> None:
    if (v.major, v.minor) < MIN_VERSION:
        raise MissingDependency(
            "tensorrt", f"TensorRT {v} is older than 8.5 (the name-based I/O API); use JetPack 5.1+", "tensorrt"
        )


def build_plan(v: TrtVersion, precision: str, int8_source: str = "qdq") -> BuildPlan:
    """The plan for ``precision`` on TensorRT ``v``; ``int8_source`` is "qdq" or "cache" (<= 10 only)."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    check_supported(v)
    weak = v.major <= 10  # builder precision flags and calibrators exist
    explicit = v.major < 10
    progress = (v.major, v.minor) >= (8, 6)
    if precision == "fp32":
        return BuildPlan(explicit, (), "fp32", False, progress)
    if precision == "fp16":
        if weak:
            return BuildPlan(explicit, ("FP16",), "fp32", False, progress)
        return BuildPlan(explicit, (), "fp16", False, progress)  # strongly typed: the FP16 ONNX
    if int8_source not in ("qdq", "cache"):
        raise InputError(f"INT8 needs a Q/DQ ONNX or a calibration cache, got {int8_source!r}")
    if int8_source == "cache":
        if not weak:
            raise InputError(
                f"TensorRT {v} has no INT8 calibrators (removed in 11); build INT8 from the Q/DQ ONNX that "
                "'overfeat-edge calibrate' writes"
            )
        return BuildPlan(explicit, ("INT8", "FP16"), "fp32", True, progress)
    # explicit quantization: <= 10 still needs the INT8 flag (FP16 lets the rest run in half)
    return BuildPlan(explicit, ("INT8", "FP16") if weak else (), "qdq", False, progress)


def dla_supported(v: TrtVersion) -> bool:
    """DLA builds: TensorRT <= 10, or 11.4.1+ (documented for Jetson AGX Orin)."""
    return v.major <= 10 or v >= TrtVersion(11, 4, 1)
