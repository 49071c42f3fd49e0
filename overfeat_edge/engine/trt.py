"""[TensorRT] The thin layer that builds an engine, through Polygraphy's loaders.

Every decision is made elsewhere (:mod:`compat` says what a version needs, :mod:`profiles` what
shapes to tune for, :mod:`calibration` what INT8 is calibrated with). Polygraphy (NVIDIA's own,
TensorRT 8.5 through 11.x) parses the ONNX (``NetworkFromOnnxPath``: the explicit-batch flag where
the version needs it), makes the builder config (``CreateConfig``: profiles, workspace pool, FP16 /
INT8 flags up to 10.x, TF32, DLA, the progress monitor from 10.0) and builds
(``EngineBytesFromNetwork``). What Polygraphy does not do is added in one ``PostprocessConfig``:
DLA core N (Polygraphy fixes core 0), the calibration profile, and our timing cache, read with
a fallback for a corrupt file and written under a temporary name.

Every TensorRT name used here is listed in ``compat.TRT_NAMES`` and checked in CI against the binding
library of each version that uses it; mypy checks the calls against ``tensorrt-stubs`` 10.13.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from overfeat_edge.engine.calibration import CalibrationData
from overfeat_edge.engine.compat import BuildPlan, TrtVersion, check_polygraphy, context_memory
from overfeat_edge.engine.profiles import Profile
from overfeat_edge.errors import MissingDependency, ModelError
from overfeat_edge.io import atomic_write_bytes
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME
from overfeat_edge.runtime.cuda import CudaApi

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


def dla_cores() -> int:
    """How many DLA cores TensorRT sees on this device (0 on desktops)."""
    load_tensorrt()
    return int(trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores)


def _progress_monitor(report: Callable[[str, int, int], None]) -> trt.IProgressMonitor:
    """An ``IProgressMonitor`` (TensorRT 10.0+) forwarding (phase, step, steps) to ``report``."""

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


class _Calibration:
    """What a calibrator saw: whether TensorRT asked for data, the cache it wrote, and an error
    raised inside a callback (the binding only prints those and reads them as end of data)."""

    def __init__(self) -> None:
        self.asked_for_data = False
        self.written: bytes | None = None
        self.error: BaseException | None = None


def _calibrator(data: CalibrationData, cuda: CudaApi, seen: _Calibration) -> Any:
    """TensorRT's entropy calibrator (<= 10) over ``data``: batches copied to one device buffer, or
    only a cache. With a cache and no batches, TensorRT asking for data means it refused the cache.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(data.batches()) if data.batches is not None else iter(())
            self.host, self.device, self.stream = None, 0, 0
            try:  # what is made before a failure is freed here: the caller never gets the object
                self.host = cuda.pinned(data.shape, np.float32) if data.batches is not None else None
                self.device = cuda.malloc(self.host.nbytes) if self.host is not None else 0
                self.stream = cuda.stream()
            except BaseException:
                self.free()
                raise

        def free(self) -> None:
            if self.stream:
                cuda.destroy_stream(self.stream)
                self.stream = 0
            if self.device:
                cuda.free(self.device)
                self.device = 0
            if self.host is not None:
                cuda.free_pinned(self.host)
                self.host = None

        def get_batch_size(self) -> int:
            return data.shape[0]

        def get_batch(self, names: list[str]) -> list[int]:
            seen.asked_for_data = True
            try:
                batch = next(self.batches, None)
                if batch is None or self.host is None:
                    return []  # the documented end of data
                np.copyto(self.host, batch)
                cuda.h2d(self.device, self.host, self.stream)
                cuda.sync(self.stream)
            except Exception as exc:  # kept, and raised after the build: calibration must not end quietly
                seen.error = exc
                return []
            return [self.device]

        def read_calibration_cache(self) -> bytes | None:
            return data.cache

        def write_calibration_cache(self, cache: Any) -> None:
            seen.written = bytes(cache)

    return EntropyCalibrator()


def _calibration_failure(calibration: CalibrationData | None, seen: _Calibration) -> None:
    """Raise the calibration's own failure, if it had one (checked before any other build error)."""
    if seen.error is not None:
        raise ModelError(f"calibration failed while feeding TensorRT: {type(seen.error).__name__}: {seen.error}")
    if calibration is not None and calibration.batches is None and seen.asked_for_data:
        raise ModelError(
            "TensorRT did not accept the calibration cache and asked for calibration data; nothing was written. "
            "Calibrate on this device instead: --calib-images DIR"
        )


@dataclass(frozen=True)
class BuildResult:
    engine: bytes
    seconds: float
    calibration_cache: bytes | None  # what TensorRT's calibrator wrote (on-device INT8), else None
    device_memory: int = 0  # bytes of activation memory the engine's contexts need (the largest profile's)
    dla: dict[str, int] | None = None  # DLA builds: see dla_placement


def dla_placement(inspector_json: str, network_layers: int, dla_capable: int) -> dict[str, int]:
    """Where a DLA build's layers went: of the parsed network's layers, how many TensorRT said can run
    on DLA (``can_run_on_DLA``), and the engine's layers from its inspector, of which the DLA
    subgraphs (the ``{ForeignNode[...]}`` layers TensorRT offloads to DLA, one loadable each)."""
    import json

    layers = json.loads(inspector_json).get("Layers", [])
    names = [x if isinstance(x, str) else str(x.get("Name", "")) for x in layers]
    subgraphs = sum(n.startswith("{ForeignNode[") for n in names)
    return {
        "network_layers": network_layers,
        "dla_capable": dla_capable,
        "engine_layers": len(names),
        "subgraphs": subgraphs,
        "gpu_layers": len(names) - subgraphs,
    }


def _engine_facts(serialized: bytes, dla_core: int | None) -> tuple[int, str]:
    """The engine's activation memory (bytes, over all profiles) and its inspector's JSON."""
    v = version(trt)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise ModelError("TensorRT could not deserialize the engine it just built (its log above says why)")
    memory = int(engine.device_memory_size_v2 if context_memory(v).set_v2 else engine.device_memory_size)
    inspector = engine.create_engine_inspector()
    return memory, str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def _dla_config(
    builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig, core: int
) -> list[int]:
    """DLA core ``core`` set (Polygraphy sets core 0); [network layers, of them those that can run on DLA]."""
    if core >= builder.num_DLA_cores:
        raise ModelError(f"--dla {core}: this device has {builder.num_DLA_cores} DLA core(s)")
    config.DLA_core = core
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    return [len(layers), sum(bool(config.can_run_on_DLA(x)) for x in layers)]


def _calibration_profile(builder: trt.Builder, config: trt.IBuilderConfig, shape: tuple[int, ...]) -> None:
    prof = builder.create_optimization_profile()  # not added: only calibration uses it (as trtexec)
    dims = trt.Dims(list(shape))
    prof.set_shape(INPUT_NAME, dims, dims, dims)
    if not config.set_calibration_profile(prof):
        raise ModelError(f"TensorRT refused the calibration profile {shape}")


def _timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    """Our timing cache read into ``config``; an empty one where the file is corrupt."""
    blob = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(blob)
    except Exception:
        cache = None
    if cache is None:  # TensorRT returns None for a corrupt cache, as Polygraphy checks
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, False)


def _create_config(
    pgt: Any, plan: BuildPlan, profiles: list[Profile], workspace_mb: int, tf32: bool, options: dict[str, Any]
) -> Any:
    """Polygraphy's ``CreateConfig``: profiles, workspace pool, the plan's precision flags, TF32, ``options``."""
    return pgt.CreateConfig(
        tf32=tf32,
        fp16="FP16" in plan.builder_flags,
        int8="INT8" in plan.builder_flags,
        profiles=[pgt.Profile().add(INPUT_NAME, p.min, p.opt, p.max) for p in profiles],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace_mb << 20},
        **options,
    )


def build_engine(
    *,
    onnx_path: Path,
    plan: BuildPlan,
    profiles: list[Profile],
    workspace_mb: int,
    timing_cache: Path,
    cuda: CudaApi,
    dla_core: int | None = None,
    calibration: CalibrationData | None = None,
    tf32: bool = True,
    report: Callable[[str, int, int], None] | None = None,
) -> BuildResult:
    """Parse, configure and build; updates ``timing_cache``. Raises :class:`ModelError` on failure."""
    load_tensorrt()
    check_polygraphy(version(trt), str(require("polygraphy", "building TensorRT engines").__version__))
    pgt = require("polygraphy.backend.trt", "building TensorRT engines")
    exceptions = require("polygraphy.exception", "building TensorRT engines")
    seen = _Calibration()
    dla = dla_core is not None
    options: dict[str, Any] = {}
    if plan.progress_monitor and report is not None:  # the keyword exists from Polygraphy 0.49.1
        options["progress_monitor"] = _progress_monitor(report)
    configs: list[trt.IBuilderConfig] = []
    capable: list[int] = []  # DLA builds: network layers, of them those that can run on DLA

    def finish(builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig) -> None:
        if dla_core is not None:
            capable[:] = _dla_config(builder, network, config, dla_core)
        if calibration is not None and calibration.batches is not None:
            _calibration_profile(builder, config, calibration.shape)
        _timing_cache(config, timing_cache)
        configs.append(config)

    calibrator = None
    t0 = time.perf_counter()
    try:
        calibrator = _calibrator(calibration, cuda, seen) if calibration is not None else None
        options = {**options, "calibrator": calibrator, "use_dla": dla, "allow_gpu_fallback": dla}
        create = _create_config(pgt, plan, profiles, workspace_mb, tf32, options)
        build = pgt.EngineBytesFromNetwork(
            pgt.NetworkFromOnnxPath(str(onnx_path)), config=pgt.PostprocessConfig(create, finish)
        )
        serialized = build()
    except exceptions.PolygraphyException as exc:
        _calibration_failure(calibration, seen)
        raise ModelError(
            f"TensorRT could not build {onnx_path.name}: {str(exc).strip().splitlines()[-1][:300]}"
        ) from None
    finally:
        if calibrator is not None:
            calibrator.free()
    seconds = time.perf_counter() - t0
    _calibration_failure(calibration, seen)
    if not serialized:
        raise ModelError("TensorRT could not build the engine (its log above says why)")
    atomic_write_bytes(timing_cache, bytes(configs[-1].get_timing_cache().serialize()))
    memory, layers = _engine_facts(bytes(serialized), dla_core)
    placement = dla_placement(layers, *capable) if dla and capable else None
    return BuildResult(bytes(serialized), seconds, seen.written, memory, placement)
