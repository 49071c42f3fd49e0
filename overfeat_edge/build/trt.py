"""[TensorRT] The thin layer that calls TensorRT to build an engine. Every decision is made elsewhere
(:mod:`compat` says what a version needs, :mod:`profiles` what shapes to tune for); this module only
turns them into API calls, all of which exist in TensorRT 8.5 through 11.x unless guarded by the plan.

Checked against the TensorRT Python API docs and the ``tensorrt-stubs`` 10.13 signatures (CI runs
mypy on this file against them, see ``tests/build/test_tensorrt_stubs.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overfeat_edge.build.compat import BuildPlan, TrtVersion
from overfeat_edge.build.profiles import Profile
from overfeat_edge.errors import MissingDependency, ModelError
from overfeat_edge.io import atomic_write_bytes
from overfeat_edge.lazy import require

if TYPE_CHECKING:  # the type checker sees TensorRT's stubs; at run time the module is imported lazily
    import tensorrt as trt
else:
    trt = None


def load_tensorrt() -> Any:
    """``import tensorrt`` (once), refusing a stubs-only install (a namespace without ``Builder``)."""
    global trt
    if trt is None:
        mod = require("tensorrt", "TensorRT engines")
        if not hasattr(mod, "Builder") or not hasattr(mod, "__version__"):
            raise MissingDependency("tensorrt", "TensorRT engines (found type stubs only, not the library)", "tensorrt")
        trt = mod
    return trt


def version(module: Any) -> TrtVersion:
    return TrtVersion.parse(str(module.__version__))


def _progress_monitor(report: Callable[[str, int, int], None]) -> trt.IProgressMonitor:
    """An ``IProgressMonitor`` (TensorRT 8.6+) forwarding (phase, step, steps) to ``report``."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.steps[phase_name] = num_steps
            report(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            report(phase_name, step + 1, self.steps.get(phase_name, 0))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            n = self.steps.pop(phase_name, 0)
            report(phase_name, n, n)

    return Monitor()


def _cache_calibrator(cache: bytes) -> trt.IInt8EntropyCalibrator2:
    """A calibrator that only hands TensorRT (<= 10) an existing calibration cache."""

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int]:
            return []  # no data (the documented end-of-data value): everything comes from the cache

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, data: Any) -> None:
            return None

    return CacheCalibrator()


def build_engine(
    onnx_path: Path,
    plan: BuildPlan,
    profiles: list[Profile],
    workspace_mb: int,
    timing_cache: Path,
    dla_core: int | None = None,
    calibration_cache: bytes | None = None,
    report: Callable[[str, int, int], None] | None = None,
) -> tuple[bytes, float]:
    """Parse, configure and build; returns (serialized engine, seconds). Updates ``timing_cache``."""
    load_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if plan.explicit_batch_flag else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT could not parse {onnx_path}: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.calibration_cache:
        if calibration_cache is None:
            raise ModelError("this INT8 build needs a calibration cache (--calib)")
        config.int8_calibrator = _cache_calibrator(calibration_cache)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    name = network.get_input(0).name
    for p in profiles:
        prof = builder.create_optimization_profile()
        prof.set_shape(name, trt.Dims(list(p.min)), trt.Dims(list(p.opt)), trt.Dims(list(p.max)))
        if config.add_optimization_profile(prof) != p.index:
            raise ModelError(f"TensorRT numbered profile {p.index} differently; the profile map would be wrong")
    blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
    except Exception:  # a cache from another version or a torn file: start a fresh one
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, False):
        config.set_timing_cache(config.create_timing_cache(b""), False)
    if plan.progress_monitor and report is not None:
        config.progress_monitor = _progress_monitor(report)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        raise ModelError("TensorRT could not build the engine (its log above says why)")
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized), seconds
