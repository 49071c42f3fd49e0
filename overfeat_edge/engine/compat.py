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
* progress: ``IProgressMonitor`` appears in 9.1 and ``IBuilderConfig.progress_monitor`` in 10.0;
  neither is in the 8.6.1 binding library, so 8.x builds show a spinner with elapsed time.
* DLA (Jetson AGX/NX Orin): TensorRT 8.x, 10.0 to 10.7 (the last 10.x with DLA, per the 11.4.1
  "Working with DLA" page), or 11.4.1+ (documented for AGX Orin with JetPack 7.2.2+).
* activation memory: ``create_execution_context()`` reserves, per context, enough for every profile
  (``kSTATIC``). Our contexts (one per pyramid level) run in series on one stream, so they share one
  block: 8.x ``create_execution_context_without_device_memory()`` and ``context.device_memory = ptr``
  sized by ``engine.device_memory_size``; 10.0+ ``create_execution_context(USER_MANAGED)``; 10.1+
  ``context.set_device_memory(ptr, engine.device_memory_size_v2)`` (the 8.x method is gone in 11.x).
* Polygraphy: 0.49.x's ``CreateConfig`` reads ``layer.precision_is_set`` unguarded, which 11.x does
  not have; 0.50.3 is the first release that guards it (and still supports TensorRT 8.5 and Python 3.8).
* the INT8 calibration cache's header ``TRT-<version>-EntropyCalibration2``: TensorRT ignores a
  cache whose version field is not its own. The field is ``major*1000 + minor*100 + patch`` in 8.x
  (8.5.2 -> 8502) and ``major*10000 + minor*100 + patch`` from 10.0 (10.3.0 -> 100300).

``tests/engine/test_binding_names.py`` checks every TensorRT name in :data:`TRT_NAMES` against the
binding library of each version the rules above enable it on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from overfeat_edge.errors import InputError, MissingDependency

PRECISIONS = ("fp32", "fp16", "int8")
MIN_VERSION = (8, 5)
POLYGRAPHY_MIN = "0.50.3"  # the first release whose CreateConfig guards precision_is_set (gone in TensorRT 11)
DLA_LOADABLES_PER_CORE = 16  # "only 16 DLA loadables can be loaded concurrently per core" (DLA restrictions)


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
    calibrator: bool  # INT8 through the implicit path: TensorRT's calibrator (data on the device, or a cache)
    progress_monitor: bool


def check_supported(v: TrtVersion) -> None:
    if (v.major, v.minor) < MIN_VERSION:
        raise MissingDependency(
            "tensorrt", f"TensorRT {v} is older than 8.5 (the name-based I/O API); use JetPack 5.1+", "tensorrt"
        )


def build_plan(v: TrtVersion, precision: str, int8_source: str = "qdq") -> BuildPlan:
    """The plan for ``precision`` on TensorRT ``v``; ``int8_source`` is "qdq" (a Q/DQ ONNX) or
    "calibrator" (TensorRT's calibrator, over data or a cache: <= 10 only).
    """
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    check_supported(v)
    weak = has_calibrators(v)  # builder precision flags and calibrators exist
    explicit = v.major < 10
    progress = v.major >= 10
    if precision == "fp32":
        return BuildPlan(explicit, (), "fp32", False, progress)
    if precision == "fp16":
        if weak:
            return BuildPlan(explicit, ("FP16",), "fp32", False, progress)
        return BuildPlan(explicit, (), "fp16", False, progress)  # strongly typed: the FP16 ONNX
    if int8_source not in ("qdq", "calibrator"):
        raise InputError(f"INT8 needs a Q/DQ ONNX or a calibrator, got {int8_source!r}")
    if int8_source == "calibrator":
        if not weak:
            raise InputError(
                f"TensorRT {v} has no INT8 calibrators (removed in 11), so neither --calib nor --calib-images "
                "works; build INT8 from the Q/DQ ONNX that 'overfeat-edge calibrate' writes"
            )
        return BuildPlan(explicit, ("INT8", "FP16"), "fp32", True, progress)
    # explicit quantization: <= 10 still needs the INT8 flag (FP16 lets the rest run in half)
    return BuildPlan(explicit, ("INT8", "FP16") if weak else (), "qdq", False, progress)


def dla_supported(v: TrtVersion) -> bool:
    """DLA builds: TensorRT 8.x and 10.0-10.7, or 11.4.1+ (Jetson AGX Orin, JetPack 7.2.2+)."""
    return v < TrtVersion(10, 8) or v >= TrtVersion(11, 4, 1)


def other_layers_precision(v: TrtVersion, precision: str) -> str | None:
    """What the layers an INT8 engine does not quantize run in: up to 10.x TensorRT picks FP16 or
    FP32 (the FP16 flag is set beside INT8); 11.x is strongly typed, so the Q/DQ ONNX's own types
    (FP32 from ``calibrate``) hold. None for other precisions."""
    if precision != "int8":
        return None
    return "fp16 or fp32 (TensorRT's choice: the FP16 flag is set)" if has_calibrators(v) else "fp32 (strongly typed)"


@dataclass(frozen=True)
class ContextMemory:
    """How our execution contexts get the one activation block they share (by TensorRT version)."""

    user_managed: bool  # create_execution_context(USER_MANAGED) (10.0+), else ..._without_device_memory (8.x)
    set_v2: bool  # set_device_memory(ptr, size) and device_memory_size_v2 (10.1+), else device_memory = ptr


def context_memory(v: TrtVersion) -> ContextMemory:
    return ContextMemory(user_managed=v.major >= 10, set_v2=v >= TrtVersion(10, 1))


def check_polygraphy(v: TrtVersion, polygraphy_version: str) -> None:
    """Refuse, with one line, a Polygraphy that cannot build on TensorRT ``v`` (0.49.x on 11.x)."""
    found = tuple(int(x) for x in re.findall(r"\d+", polygraphy_version)[:3])
    need = tuple(int(x) for x in POLYGRAPHY_MIN.split("."))
    if v.major >= 11 and found < need:
        raise InputError(
            f"Polygraphy {polygraphy_version} cannot build on TensorRT {v}: its CreateConfig reads "
            f"layer.precision_is_set, which TensorRT 11 removed; pip install 'polygraphy>={POLYGRAPHY_MIN}'"
        )


def cache_version_field(v: TrtVersion) -> str:
    """The version field of a calibration cache header for TensorRT ``v`` (its NV_TENSORRT_VERSION)."""
    if v.major < 10:
        return str(v.major * 1000 + v.minor * 100 + v.patch)
    return str(v.major * 10000 + v.minor * 100 + v.patch)


def has_calibrators(v: TrtVersion) -> bool:
    """Implicit INT8 (a calibrator, or a calibration cache): TensorRT <= 10; 11.x removed it."""
    return v.major <= 10


# Every TensorRT name our code touches, by the feature that needs it. A feature's names must exist
# in the binding library of every version :func:`features` enables it on (checked in CI against
# NVIDIA's wheels); the AST test checks that every TensorRT name in our modules is listed here.
TRT_NAMES: dict[str, tuple[str, ...]] = {
    "runtime": (
        "__version__",
        "Logger",
        "WARNING",
        "Runtime",
        "deserialize_cuda_engine",
        "ICudaEngine",
        "IExecutionContext",
        "create_execution_context",
        "set_optimization_profile_async",
        "set_input_shape",
        "get_tensor_shape",
        "set_tensor_address",
        "execute_async_v3",
        "ILogger",
        "Builder",
        "IBuilderConfig",
        "INetworkDefinition",
        "Dims",
        "MemoryPoolType",
        "WORKSPACE",
        "create_optimization_profile",
        "set_shape",
        "create_timing_cache",
        "set_timing_cache",
        "get_timing_cache",
        "serialize",
    ),
    "progress_monitor": ("IProgressMonitor", "progress_monitor", "phase_start", "step_complete", "phase_finish"),
    "calibrator": (
        "IInt8EntropyCalibrator2",
        "int8_calibrator",
        "get_batch_size",
        "get_batch",
        "read_calibration_cache",
        "write_calibration_cache",
        "set_calibration_profile",
    ),
    "inspector": ("create_engine_inspector", "get_engine_information", "LayerInformationFormat", "JSON"),
    "context_without_memory": ("create_execution_context_without_device_memory",),  # 8.x
    "context_user_managed": ("ExecutionContextAllocationStrategy", "USER_MANAGED"),  # 10.0+
    "device_memory_v1": ("device_memory", "device_memory_size"),  # 8.x and 10.0
    "device_memory_v2": ("set_device_memory", "device_memory_size_v2"),  # 10.1+
    "dla": ("DLA_core", "num_DLA_cores", "can_run_on_DLA", "num_layers", "get_layer"),
}


def features(v: TrtVersion) -> tuple[str, ...]:
    """The :data:`TRT_NAMES` features our code uses on TensorRT ``v``."""
    out = ["runtime", "inspector"]
    memory = context_memory(v)
    out.append("context_user_managed" if memory.user_managed else "context_without_memory")
    out.append("device_memory_v2" if memory.set_v2 else "device_memory_v1")
    if build_plan(v, "fp32").progress_monitor:
        out.append("progress_monitor")
    if has_calibrators(v):
        out.append("calibrator")
    if dla_supported(v):
        out.append("dla")
    return tuple(out)
