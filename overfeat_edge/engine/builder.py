"""[no TensorRT import at module level] The cached build: options checked, then engine built once.

:class:`BuildRequest` checks every option without TensorRT (a bad ``--precision`` gets its own
message on any machine); :func:`prepare` then checks the inputs (the ONNX, the pyramid, what INT8
is calibrated with) and :func:`build_cached` finds an up-to-date engine or builds one through
:mod:`overfeat_edge.engine.trt` and writes it with its manifest under temporary names.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from overfeat_edge.engine.cache import (
    DeviceInfo,
    Manifest,
    check_engine,
    describe_engine,
    engine_path,
    sha256_file,
    write_engine,
)
from overfeat_edge.engine.calibration import CalibrationData, cache_data, check_cache_file, device_calibration
from overfeat_edge.engine.compat import (
    PRECISIONS,
    BuildPlan,
    TrtVersion,
    build_plan,
    dla_supported,
    other_layers_precision,
)
from overfeat_edge.engine.profiles import Profile, plan_profiles, profiles_key
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.onnxmeta import has_qdq
from overfeat_edge.paths import slug
from overfeat_edge.spec import ModelSpec

if TYPE_CHECKING:
    from overfeat_edge.engine.trt import BuildResult

Report = Callable[[str, int, int], None]  # typing's Callable: evaluated at import, on Python 3.8 too


def parse_frame_size(text: str) -> tuple[int, int]:
    """``480x640`` -> (480, 640)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--frame-size must be HEIGHTxWIDTH like 480x640, got {text!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"--frame-size must be positive, got {text!r}")
    return h, w


def parse_batch(text: str) -> tuple[int, int, int]:
    """``4`` (1 to 4, tuned for 4) or ``1,2,4`` (min, opt, max) -> the profile batch range. The
    minimum is 1 whatever is asked: a round of the multi-camera loop holds fewer frames than
    cameras whenever one stalls, and one camera runs batches of 1."""
    try:
        v = [int(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--batch must be N or MIN,OPT,MAX, got {text!r}") from None
    if len(v) == 1:
        v = [1, v[0], v[0]]
    if len(v) != 3:
        raise InputError(f"--batch must be N or MIN,OPT,MAX, got {text!r}")
    if v[0] != 1:
        raise InputError(f"--batch {text}: the minimum must be 1 (a round holds fewer frames when a camera stalls)")
    return v[0], v[1], v[2]


@dataclass(frozen=True)
class BuildRequest:
    """What to build, checked on construction (no TensorRT needed)."""

    model: str
    precision: str = "fp16"
    frame_hw: tuple[int, int] = (480, 640)
    scales: tuple[str, ...] | None = None
    dynamic: int | None = None
    calib: Path | None = None  # a calibration cache (calibrate's trt.cache)
    calib_images: str | None = None  # calibrate on the device with TensorRT's calibrator
    calib_count: int = 32
    workspace_mb: int = 1024
    dla: int | None = None
    batch: tuple[int, int, int] = (1, 1, 1)
    tf32: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.workspace_mb < 1:
            raise InputError(f"--workspace must be at least 1 MiB, got {self.workspace_mb}")
        if self.dla is not None and self.dla < 0:
            raise InputError(f"--dla must be a DLA core number (0 or 1), got {self.dla}")
        if self.dla is not None and self.precision == "fp32":
            raise InputError(
                "--dla runs FP16 or INT8 only; with --precision fp32 every layer would fall back to the GPU"
            )
        if self.dla is not None and (self.dynamic is not None or self.batch[0] != self.batch[2]):
            raise InputError(
                "--dla builds fixed shapes only (DLA has no dynamic dimensions: a profile's min, opt and max must be "
                "equal, else its layers run on the GPU); drop --dynamic and --batch"
            )
        if self.calib is not None and self.calib_images is not None:
            raise InputError("--calib (a cache) and --calib-images (calibrate here) are two ways; give one")
        if (self.calib is not None or self.calib_images is not None) and self.precision != "int8":
            raise InputError(f"--calib and --calib-images are for --precision int8, not {self.precision}")
        if self.calib_count < 1:
            raise InputError(f"--calib-count must be >= 1, got {self.calib_count}")
        if self.batch[2] > 64:
            raise InputError(f"--batch: at most 64 frames per inference (one per camera), got {self.batch[2]}")


@dataclass(frozen=True)
class Prepared:
    """A request with its inputs read and checked: what :func:`build_cached` needs, TensorRT aside."""

    request: BuildRequest
    name: str  # the engine cache's model folder
    spec: ModelSpec
    onnx: Path
    profiles: list[Profile]
    int8_source: str  # "qdq", "cache" or "device" (INT8 only)
    calibration: CalibrationData | None
    calibration_sha256: str | None


def prepare(req: BuildRequest) -> Prepared:
    """Read and check the ONNX, the pyramid and the INT8 calibration source; no TensorRT needed."""
    from overfeat_edge.runtime.base import read_spec, resolve_onnx, shipped_models

    onnx = resolve_onnx(req.model)
    spec = read_spec(onnx)
    profiles = plan_profiles(
        spec, req.frame_hw, list(req.scales) if req.scales else None, batch=req.batch, dynamic_max_side=req.dynamic
    )
    name = req.model if req.model in shipped_models() else slug(onnx.stem)
    source, calibration, calib_sha = "qdq", None, None
    if req.precision == "int8":
        qdq = has_qdq(onnx)
        if qdq and (req.calib or req.calib_images):
            raise InputError(f"{onnx.name} is a Q/DQ ONNX and carries its own INT8 scales; drop --calib/--calib-images")
        if req.calib is not None:
            source, calib_sha = "cache", check_cache_file(req.calib)
        elif req.calib_images is not None:
            scales = spec.pyramid(req.scales)
            calibration = device_calibration(
                spec=spec, images=req.calib_images, count=req.calib_count, scales=scales, profiles=profiles
            )
            source = "device"
            calib_sha = hashlib.sha256(
                json.dumps([calibration.digest, req.calib_count, scales, calibration.shape]).encode()
            ).hexdigest()
        elif not qdq:
            raise InputError(
                f"{onnx.name} has no Q/DQ nodes, so an INT8 engine would have no INT8 scales: calibrate on this device "
                "with --calib-images DIR (TensorRT <= 10), or build from the model.qdq.onnx that "
                "'overfeat-edge calibrate' writes"
            )
    return Prepared(req, name, spec, onnx, profiles, source, calibration, calib_sha)


def _source_onnx(p: Prepared, plan: BuildPlan, v: TrtVersion) -> Path:
    if plan.onnx_variant != "fp16":
        return p.onnx
    source = p.onnx.with_name(p.onnx.stem + ".fp16.onnx")
    if not source.is_file():
        raise InputError(
            f"TensorRT {v} builds FP16 only from an FP16 ONNX; write {source} with "
            f"'overfeat-edge export --half --model CHECKPOINT --out {source}'"
        )
    return source


@dataclass(frozen=True)
class Built:
    path: Path
    built: bool  # False: an up-to-date engine was found
    seconds: float = 0.0
    stale: str = ""  # why an existing engine was rebuilt
    summary: str = ""  # its device memory and, on DLA, where its layers went (describe_engine)

    def describe(self) -> str:
        """One line: the engine found up to date, or built (in how long, how large), with its summary."""
        if not self.built:
            return f"up to date: {self.path} ({self.summary})"
        size = self.path.stat().st_size / 2**20
        return f"built {self.path} in {self.seconds:.1f} s ({size:.1f} MiB); {self.summary}"


def _check_dla(p: Prepared, v: TrtVersion) -> None:
    """What TensorRT ``v`` cannot build for DLA, refused with one line."""
    req = p.request
    if req.dla is None:
        return
    if not dla_supported(v):
        raise InputError(
            f"TensorRT {v} cannot build for DLA (8.x and 10.0-10.7 can, and 11.4.1+ on Jetson AGX Orin with "
            "JetPack 7.2.2+)"
        )
    if p.int8_source == "qdq" and req.precision == "int8" and v.major < 10:
        raise InputError(
            f"--dla with a Q/DQ ONNX on TensorRT {v}: 8.x's DLA takes INT8 from a calibrator "
            "(IInt8EntropyCalibrator2), not from Q/DQ nodes; calibrate with --calib-images DIR or --calib trt.cache"
        )


def _manifest(
    p: Prepared, plan: BuildPlan, v: TrtVersion, device: DeviceInfo, source: Path, onnx_sha: str, result: BuildResult
) -> Manifest:
    req = p.request
    return Manifest(
        model=p.name,
        onnx_sha256=onnx_sha,
        precision=req.precision,
        device=device,
        profiles=p.profiles,
        frame_hw=req.frame_hw,
        flags=list(plan.builder_flags),
        calibration_sha256=p.calibration_sha256,
        build_seconds=round(result.seconds, 2),
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        extra={
            "spec": p.spec.to_json(),
            "onnx": str(source),
            "onnx_variant": plan.onnx_variant,
            "int8_source": p.int8_source if req.precision == "int8" else None,
            "tf32": req.tf32,
            "other_layers": other_layers_precision(v, req.precision),  # beside INT8's layers
            "device_memory_bytes": result.device_memory,  # the one block every context shares
            "dla": result.dla,  # where a DLA build's layers went
        },
    )


def build_cached(
    p: Prepared, *, engines: Path, rebuild: bool = False, report: Report | None = None, path: Path | None = None
) -> Built:
    """Find the up-to-date engine for ``p`` or build it (TensorRT and CUDA needed from here on);
    ``path`` names the engine file instead of the cache's own naming (a cascade's stages)."""
    from overfeat_edge.engine.trt import build_engine, load_tensorrt, version
    from overfeat_edge.runtime.cuda import load_cuda

    req = p.request
    trt = load_tensorrt()
    v = version(trt)
    plan = build_plan(v, req.precision, "calibrator" if p.int8_source in ("cache", "device") else "qdq")
    _check_dla(p, v)
    source = _source_onnx(p, plan, v)
    calibration = cache_data(req.calib, v, p.profiles) if req.calib is not None else p.calibration
    cuda = load_cuda()
    gpu, cc = cuda.device()
    device = DeviceInfo(gpu, cc, str(trt.__version__), req.dla)
    path = path or engine_path(engines, p.name, device, req.precision, profiles_key(req.frame_hw, p.profiles))
    onnx_sha = sha256_file(source)
    stale = ""
    if path.is_file() and not rebuild:
        try:
            found, _ = check_engine(path, device, onnx_sha256=onnx_sha, calibration_sha256=p.calibration_sha256)
            return Built(path, built=False, summary=describe_engine(found))
        except ModelError as exc:
            stale = str(exc)
    cuda.activate()
    try:
        result = build_engine(
            onnx_path=source,
            plan=plan,
            profiles=p.profiles,
            workspace_mb=req.workspace_mb,
            timing_cache=path.parent / "timing.cache",
            cuda=cuda,
            dla_core=req.dla,
            calibration=calibration,
            tf32=req.tf32,
            report=report,
        )
    finally:
        cuda.deactivate()
    manifest = _manifest(p, plan, v, device, source, onnx_sha, result)
    write_engine(path, result.engine, manifest, result.calibration_cache)
    return Built(path, built=True, seconds=result.seconds, stale=stale, summary=describe_engine(manifest))


STAGE_MAX_BATCH = 256  # crops per inference of a cascade's stage engine (more are run in chunks)


def stage_engine_path(detector_engine: Path, stage: str) -> Path:
    """A cascade stage's engine, beside its detector's: ``fp16-480x640-1a2b3c4d.rnet.engine``."""
    return detector_engine.with_name(f"{detector_engine.stem}.{stage}.engine")


def build_with_stages(
    p: Prepared,
    stages: list[tuple[str, Prepared]],
    *,
    engines: Path,
    rebuild: bool = False,
    report: Report | None = None,
) -> list[Built]:
    """The detector's engine for ``p`` (first), then one dynamic-batch engine per cascade stage of
    ``stages`` (`prepare_stages`) beside it; each found up to date or built as `build_cached` does."""
    built = build_cached(p, engines=engines, rebuild=rebuild, report=report)
    done = [built]
    for name, stage in stages:  # one dynamic-batch engine per stage, beside the detector's
        path = stage_engine_path(built.path, name)
        done.append(build_cached(stage, engines=engines, rebuild=rebuild, report=report, path=path))
    return done


def prepare_stages(p: Prepared, max_batch: int = STAGE_MAX_BATCH) -> list[tuple[str, Prepared]]:
    """The crop stages the detector's spec names, each as a build with one dynamic-batch profile
    (1 .. ``max_batch`` crops at the stage's input size). INT8 detectors get FP16 stages: the
    calibration covers the detector's pyramid, not the crops."""
    from overfeat_edge.pipeline.cascade import cascade_stages
    from overfeat_edge.runtime.base import read_spec

    out = []
    for st in cascade_stages(p.spec.extra, str(p.onnx)):
        onnx = p.onnx.parent / st.file
        if not onnx.is_file():
            raise InputError(f"the cascade's {st.name} stage is missing: {onnx}")
        spec = read_spec(onnx)
        s, opt = spec.arch.window, min(64, max_batch)
        precision = "fp16" if p.request.precision == "int8" else p.request.precision
        request = BuildRequest(
            model=str(onnx), precision=precision, frame_hw=(s, s), workspace_mb=p.request.workspace_mb
        )
        profile = Profile(0, None, (1, 3, s, s), (opt, 3, s, s), (max_batch, 3, s, s))
        out.append((st.name, Prepared(request, st.name, spec, onnx, [profile], "qdq", None, None)))
    return out
