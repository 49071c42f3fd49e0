"""[no TensorRT import at module level] Proving a device: TensorRT against ONNX Runtime, via Polygraphy.

``doctor`` builds the shipped model at one scale (FP32 with TF32 off, as Polygraphy's own checks do,
and FP16 where the version allows), says each engine's device memory (and, where the device has a
DLA core, builds FP16 for core 0 and says how many layers ended on DLA), runs it with Polygraphy's
``TrtRunner`` next to ``OnnxrtRunner`` on the same inputs, and lets Polygraphy's ``Comparator`` judge
each output with its tolerance, element by element (``SimpleCompareFunc``): an element passes when
``|trt - ort| <= atol`` or ``|trt - ort| / |ort| <= rtol``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES

# (atol, rtol) per output and precision
TOLERANCE: dict[str, dict[str, tuple[float, float]]] = {
    "fp32": {"scores": (1e-3, 1e-3), "boxes": (1e-3, 1e-3)},
    "fp16": {"scores": (2e-2, 2e-2), "boxes": (2e-2, 2e-2)},
}
DOCTOR_MODEL = "overfeat-mini-shapes"
DOCTOR_SCALE = 131


@dataclass(frozen=True)
class Verdict:
    passed: bool
    max_abs_error: dict[str, float]  # per output, over every input
    tolerance: dict[str, tuple[float, float]]


def compare_runners(
    runners: Sequence[Any], inputs: list[np.ndarray], tolerance: dict[str, tuple[float, float]]
) -> Verdict:
    """Run Polygraphy ``runners`` (the last is the reference) on ``inputs`` and compare every output."""
    comparator = require("polygraphy.comparator", "doctor's comparison")
    feeds = [{INPUT_NAME: x} for x in inputs]
    results = comparator.Comparator.run(list(runners), data_loader=feeds)
    simple = getattr(comparator, "SimpleCompareFunc", None) or comparator.CompareFunc.simple  # 0.53 renamed it
    func = simple(atol={k: v[0] for k, v in tolerance.items()}, rtol={k: v[1] for k, v in tolerance.items()})
    passed = bool(comparator.Comparator.compare_accuracy(results, compare_func=func))
    pairs = list(results.items())
    ref = pairs[-1][1]
    errors = {name: 0.0 for name in OUTPUT_NAMES}
    for _, iterations in pairs[:-1]:
        for got, want in zip_strict(iterations, ref):
            for name in OUTPUT_NAMES:
                diff = np.abs(np.asarray(got[name], np.float64) - np.asarray(want[name], np.float64))
                errors[name] = max(errors[name], float(diff.max()) if diff.size else 0.0)
    return Verdict(passed, errors, tolerance)


def doctor_inputs(seed: int = 0) -> list[np.ndarray]:
    """Two normalized-looking inputs at the doctor's one scale (131 x 175: a 480x640 frame at 131)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(1, 3, DOCTOR_SCALE, 175)).astype(np.float32) for _ in range(2)]


def prove_device(say: Callable[[str], None]) -> list[tuple[str, Verdict]]:
    """Build the shipped model per precision in a scratch folder and compare it with ONNX Runtime."""
    from overfeat_edge.engine.builder import BuildRequest, build_cached, prepare
    from overfeat_edge.engine.cache import check_engine, describe_engine
    from overfeat_edge.engine.trt import load_tensorrt
    from overfeat_edge.runtime.base import resolve_onnx
    from overfeat_edge.runtime.cuda import load_cuda
    from overfeat_edge.runtime.tensorrt import running_device

    pg_trt = require("polygraphy.backend.trt", "doctor's comparison")
    pg_ort = require("polygraphy.backend.onnxrt", "doctor's comparison")
    onnx = resolve_onnx(DOCTOR_MODEL)
    inputs = doctor_inputs()
    out: list[tuple[str, Verdict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "fp16"):
            request = BuildRequest(
                model=DOCTOR_MODEL,
                precision=precision,
                frame_hw=(480, 640),
                scales=(str(DOCTOR_SCALE),),
                workspace_mb=512,
                tf32=False,  # FP32 means FP32: TF32 on Ampere and Orin would blur the comparison
            )
            try:
                built = build_cached(prepare(request), engines=Path(tmp), rebuild=True)
            except InputError as exc:  # e.g. FP16 on TensorRT 11 without the FP16 ONNX
                say(f"{precision}: skipped ({exc})")
                continue
            manifest, data = check_engine(built.path, running_device(load_tensorrt(), load_cuda()))
            say(f"{precision}: {describe_engine(manifest)}")
            runners = [
                pg_trt.TrtRunner(pg_trt.EngineFromBytes(data), name=f"tensorrt-{precision}"),
                pg_ort.OnnxrtRunner(pg_ort.SessionFromOnnx(str(onnx)), name="onnxruntime"),
            ]
            out.append((precision, compare_runners(runners, inputs, TOLERANCE[precision])))
        _dla_placement(Path(tmp), say)
    return out


def _dla_placement(folder: Path, say: Callable[[str], None]) -> None:
    """Where the DLA core 0 build of the doctor's model put its layers (nothing said without DLA)."""
    from overfeat_edge.engine.builder import BuildRequest, build_cached, prepare
    from overfeat_edge.engine.compat import dla_supported
    from overfeat_edge.engine.trt import dla_cores, load_tensorrt, version

    if not dla_supported(version(load_tensorrt())) or dla_cores() == 0:
        return
    request = BuildRequest(
        model=DOCTOR_MODEL, precision="fp16", frame_hw=(480, 640), scales=(str(DOCTOR_SCALE),), workspace_mb=512, dla=0
    )
    try:
        built = build_cached(prepare(request), engines=folder / "dla", rebuild=True)
    except InputError as exc:  # e.g. FP16 on TensorRT 11 without the FP16 ONNX
        say(f"fp16 on DLA core 0: skipped ({exc})")
        return
    say(f"fp16 on DLA core 0: {built.summary}")
