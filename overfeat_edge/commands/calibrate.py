"""calibrate: INT8 on the user's own images; Q/DQ ONNX, TensorRT cache, and what INT8 costs."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.common import Scales, check_number, check_output, command, console, err_console
from overfeat_edge.commands.progress import Steps
from overfeat_edge.errors import InputError
from overfeat_edge.paths import slug, under
from overfeat_edge.words import plural

if TYPE_CHECKING:
    import numpy as np

    from overfeat_edge.calibrate.quantize import CalibrationSet
    from overfeat_edge.calibrate.report import MethodResult
    from overfeat_edge.pipeline.detector import Detector
    from overfeat_edge.spec import ModelSpec


# ---- calibrate's options -------------------------------------------------------------------------
ModelOpt = Annotated[str, typer.Option(help="An exported .onnx or a shipped model name.")]
ImagesOpt = Annotated[str, typer.Option(help="Calibration images: a folder, a glob or a video.")]
MethodOpt = Annotated[str, typer.Option(help="entropy, percentile, minmax, or all (compare them).")]
CountOpt = Annotated[int, typer.Option(help="Calibration frames (spread over the set).")]
ExcludeOpt = Annotated[Optional[List[str]], typer.Option("--exclude", help="ONNX node names kept in float.")]
EvalDataOpt = Annotated[Optional[Path], typer.Option(help="A labelled held-out set: FP32 vs INT8 mAP.")]
HoldoutOpt = Annotated[Optional[str], typer.Option(help="Held-out unlabelled images (folder, glob, video).")]
TrtVersionOpt = Annotated[str, typer.Option(help="trt.cache's TensorRT version (8601: 8.6.1); build rewrites it.")]
OutOpt = Annotated[Path, typer.Option(help="Root of the outputs: OUT/<model>/<key>/.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads.")]


def calibrate(
    model: ModelOpt,
    images: ImagesOpt,
    method: MethodOpt = "all",
    count: CountOpt = 32,
    exclude: ExcludeOpt = None,
    eval_data: EvalDataOpt = None,
    holdout: HoldoutOpt = None,
    scales: Scales = None,
    trt_version: TrtVersionOpt = "8601",
    out: OutOpt = Path("calib"),
    threads: ThreadsOpt = None,
) -> None:
    """Calibrate INT8 with the runtime's own preprocessing at every scale; report FP32 vs INT8.

    Example: overfeat-edge calibrate --model overfeat-mini-shapes --images runs/synth/images --holdout val/
    """
    from overfeat_edge.calibrate import quantize as q
    from overfeat_edge.calibrate.report import held_out_inputs, held_out_set, recommend, score_method, write_report
    from overfeat_edge.engine.cache import sha256_file
    from overfeat_edge.pipeline.detector import check_finite
    from overfeat_edge.runtime import load_runner
    from overfeat_edge.runtime.base import resolve_onnx, shipped_models

    methods = _methods(method, trt_version=trt_version, out=out, count=count)
    onnx = resolve_onnx(model)
    exclude = q.resolve_exclusions(onnx, exclude or [])
    fp32 = load_runner("onnxruntime", str(onnx), threads=threads)
    spec = fp32.spec
    pyramid = spec.pyramid(scales)
    calib = q.load_images(images, count)
    # a model with NaN or overflowing outputs is refused here, before the quantizer chokes on it
    check_finite([fp32.run(x) for x in held_out_inputs(calib.frames[:1], fp32, pyramid, 4)])
    _warn_small_set(calib, images)
    data, held = held_out_set(eval_data, holdout)
    name = model if model in shipped_models() else slug(onnx.stem)  # ".." (a file "...onnx") -> "unknown"
    under(out, out / name, "the report folder")
    onnx_sha = sha256_file(onnx)
    cascade, crops, stage_files, key_sha = _cascade(onnx, pyramid, calib, threads, onnx_sha)
    score = partial(score_method, onnx_path=onnx, fp32=fp32, held=held, scales=pyramid, data=data, threads=threads)
    results = []
    for m in methods:
        dest = out / name / f"{m}-{q.calibration_key(key_sha, spec, pyramid, m, exclude or [], calib.digest)}"
        if q.is_calibrated(dest, stage_files):
            console.print(f"{m}: up to date ({dest})")
        else:
            _quantize(dest, m, calib, pyramid, onnx_path=onnx, spec=spec, exclude=exclude or [], trt=trt_version)
            _quantize_stages(dest, m, cascade, crops, onnx)
        r = score(m, dest=dest, cascade=cascade)
        results.append(r)
        _print_result(r)
    info = {
        "calibration images": f"{images} ({len(calib.frames)} used, {calib.skipped} skipped)",
        "held-out": str(eval_data or holdout),
        "scales": ",".join(pyramid),
        "onnx sha256": onnx_sha,
    }
    md, js = write_report(out / name, name, results, info)
    console.print(f"recommended: {recommend(results).method}; report: {md} and {js}")


def _methods(method: str, *, trt_version: str, out: Path, count: int) -> List[str]:
    """Check calibrate's options before any work; the methods to run."""
    from overfeat_edge.calibrate.quantize import METHODS
    from overfeat_edge.lazy import require

    if not re.fullmatch(r"\d{4,6}", trt_version):
        raise InputError(f"--trt-version must be TensorRT's version number like 8601 or 100300, got {trt_version!r}")
    require("onnx", "calibrate")
    check_output(out, "--out", folder=True)
    check_number("--count", count, 1, 100000)
    methods = list(METHODS) if method == "all" else [method]
    if any(m not in METHODS for m in methods):
        raise InputError(f"--method must be one of {', '.join(METHODS)} or all, got {method!r}")
    return methods


def _quantize(
    dest: Path,
    method: str,
    calib: CalibrationSet,
    pyramid: List[str],
    *,
    onnx_path: Path,
    spec: ModelSpec,
    exclude: List[str],
    trt: str,
) -> None:
    """Calibrate one method into ``dest`` with a progress line; say what was written."""
    from overfeat_edge.calibrate.quantize import CPU_QDQ, Quantization, level_count, quantize_to

    total = 2 * level_count(calib.frames, spec, pyramid)  # ranges twice: TensorRT's (symmetric), the CPU's
    what = f"calibrating ({method}, {plural(len(calib.frames), 'image')} x {plural(len(pyramid), 'scale')})"
    with Steps(what, total) as steps:
        job = Quantization(onnx_path, spec, calib.frames, pyramid, method, exclude, on_frame=steps.advance)
        qdq = quantize_to(job, dest, trt)
    console.print(f"{method}: wrote {qdq} (TensorRT's), {dest / CPU_QDQ} (CPU runtimes') and {dest / 'trt.cache'}")


def _cascade(
    onnx: Path, pyramid: List[str], calib: CalibrationSet, threads: Optional[int], onnx_sha: str
) -> Tuple[Optional[Detector], Dict[str, np.ndarray], List[str], str]:
    """A cascade's FP32 reference, its stages' calibration crops (too few: one line, before any work),
    the files its calibration folder holds besides the detector's, and the hash its key takes; a plain
    detector's: (None, {}, [], its ONNX's hash)."""
    from overfeat_edge.calibrate import stages as st

    cascade = st.fp32_cascade(onnx, pyramid, threads)
    if cascade is None:
        return None, {}, [], onnx_sha
    crops = st.calibration_crops(cascade, calib.frames)
    return cascade, crops, st.stage_files(cascade), f"{onnx_sha}+{st.stages_digest(cascade)}"


def _quantize_stages(
    dest: Path, method: str, cascade: Optional[Detector], crops: Dict[str, np.ndarray], onnx: Path
) -> None:
    """A cascade's crop stages calibrated into ``dest`` beside the detector (nothing for a plain one)."""
    from overfeat_edge.calibrate.stages import CROP_BATCH, quantize_stages

    if cascade is None:
        return
    total = sum(-(-len(c) // CROP_BATCH) for c in crops.values())
    with Steps(
        f"calibrating the cascade's stages ({method}, {', '.join(f'{len(c)} {k} crops' for k, c in crops.items())})",
        total,
    ) as steps:
        written = quantize_stages(dest, cascade, crops, detector_onnx=onnx, method=method, on_input=steps.advance)
    console.print(
        f"{method}: wrote {', '.join(str(p) for p in written)}; run with --model {dest / 'model.cpu.qdq.onnx'}"
    )


def _warn_small_set(calib: CalibrationSet, images: str) -> None:
    """Warn about unreadable images and a calibration set too small for steady ranges."""
    from overfeat_edge.calibrate.quantize import MIN_IMAGES

    if calib.skipped:
        err_console.print(f"skipped {plural(calib.skipped, 'unreadable image')} in {images}", style="yellow")
    if len(calib.frames) < MIN_IMAGES:
        err_console.print(
            f"warning: {len(calib.frames)} calibration images; {MIN_IMAGES}+ give steadier ranges", style="yellow"
        )


def _print_result(r: MethodResult) -> None:
    """One line per method: output cosines, detection agreement, mAP where labels exist."""
    console.print(
        f"{r.method}: scores cosine {r.cosine['scores']:.5f}, boxes cosine {r.cosine['boxes']:.5f}, "
        f"detection F1 {r.agreement_f1:.3f}"
        + (f", mAP@.5 {r.map50_fp32:.3f} -> {r.map50_int8:.3f}" if r.map50_int8 is not None else "")
    )
    for st in r.stages:
        cos = ", ".join(f"{k} cosine {v:.5f}" for k, v in st.cosine.items()) or "(no held-out crops to compare)"
        console.print(
            f"{r.method}: {st.name} on {plural(st.crops, 'crop')}: {cos}, keep agreement {st.keep_agreement:.3f}"
        )
    if r.cascade_f1 is not None:
        console.print(f"{r.method}: the INT8 cascade's detections against FP32's: F1 {r.cascade_f1:.3f}")


def register(app: typer.Typer) -> None:
    command(app, calibrate)
