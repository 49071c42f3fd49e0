"""calibrate: INT8 on the user's own images; Q/DQ ONNX, TensorRT cache, and what INT8 costs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.common import Scales, check_number, check_output, command, console, err_console
from overfeat_edge.commands.progress import Steps
from overfeat_edge.errors import InputError
from overfeat_edge.paths import slug, under
from overfeat_edge.words import plural


def calibrate(
    model: Annotated[str, typer.Option(help="An exported .onnx or a shipped model name.")],
    images: Annotated[str, typer.Option(help="Calibration images: a folder, a glob or a video.")],
    method: Annotated[str, typer.Option(help="entropy, percentile, minmax, or all (compare them).")] = "all",
    count: Annotated[int, typer.Option(help="Calibration frames (spread over the set).")] = 32,
    exclude: Annotated[Optional[List[str]], typer.Option("--exclude", help="ONNX node names kept in float.")] = None,
    eval_data: Annotated[Optional[Path], typer.Option(help="A labelled held-out set: FP32 vs INT8 mAP.")] = None,
    holdout: Annotated[Optional[str], typer.Option(help="Held-out unlabelled images (folder, glob, video).")] = None,
    scales: Scales = None,
    trt_version: Annotated[
        str,
        typer.Option(help="trt.cache's TensorRT version (8601: 8.6.1); build rewrites it."),
    ] = "8601",
    out: Annotated[Path, typer.Option(help="Root of the outputs: OUT/<model>/<key>/.")] = Path("calib"),
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads.")] = None,
) -> None:
    """Calibrate INT8 with the runtime's own preprocessing at every scale; report FP32 vs INT8.

    Example: overfeat-edge calibrate --model overfeat-mini-shapes --images runs/synth/images --holdout val/
    """
    from overfeat_edge.calibrate.quantize import (
        CPU_QDQ,
        METHODS,
        MIN_IMAGES,
        calibration_key,
        load_images,
        quantize,
        resolve_exclusions,
        tensor_scales,
        write_trt_cache,
    )
    from overfeat_edge.calibrate.report import (
        MethodResult,
        evaluate_pair,
        held_out_inputs,
        output_agreement,
        recommend,
        worst_layers,
        write_report,
    )
    from overfeat_edge.engine.cache import sha256_file
    from overfeat_edge.lazy import require
    from overfeat_edge.pipeline.detector import DetectorConfig, check_finite
    from overfeat_edge.runtime import load_runner
    from overfeat_edge.runtime.base import resolve_onnx, shipped_models

    if not re.fullmatch(r"\d{4,6}", trt_version):
        raise InputError(f"--trt-version must be TensorRT's version number like 8601 or 100300, got {trt_version!r}")
    require("onnx", "calibrate")
    check_output(out, "--out", folder=True)
    check_number("--count", count, 1, 100000)
    methods = list(METHODS) if method == "all" else [method]
    if any(m not in METHODS for m in methods):
        raise InputError(f"--method must be one of {', '.join(METHODS)} or all, got {method!r}")
    onnx = resolve_onnx(model)
    exclude = resolve_exclusions(onnx, exclude or [])
    fp32 = load_runner("onnxruntime", str(onnx), threads=threads)
    spec = fp32.spec
    pyramid = spec.pyramid(scales)
    calib = load_images(images, count)
    # a model with NaN or overflowing outputs is refused here, before the quantizer chokes on it
    check_finite([fp32.run(x) for x in held_out_inputs(calib.frames[:1], fp32, pyramid, 4)])
    if calib.skipped:
        err_console.print(f"skipped {plural(calib.skipped, 'unreadable image')} in {images}", style="yellow")
    if len(calib.frames) < MIN_IMAGES:
        err_console.print(
            f"warning: {len(calib.frames)} calibration images; {MIN_IMAGES}+ give steadier ranges", style="yellow"
        )
    data = None
    if eval_data is not None:
        from overfeat_edge.train.datasets import read_dataset

        data = read_dataset(eval_data)
        held = load_images(str(data.samples[0].path.parent), 64).frames
    elif holdout is not None:
        held = load_images(holdout, 64).frames
    else:
        raise InputError(
            "the report needs held-out images: --eval-data (labelled) or --holdout (not the calibration set)"
        )
    name = model if model in shipped_models() else slug(onnx.stem)  # ".." (a file "...onnx") -> "unknown"
    under(out, out / name, "the report folder")
    onnx_sha = sha256_file(onnx)
    config = DetectorConfig(scales=pyramid)
    results = []
    for m in methods:
        key = calibration_key(onnx_sha, spec, pyramid, m, exclude or [], calib.digest)
        dest = out / name / f"{m}-{key}"
        done = all((dest / f).is_file() for f in ("model.qdq.onnx", CPU_QDQ, "trt.cache"))
        if done:
            console.print(f"{m}: up to date ({dest})")
        else:
            total = 2 * len(pyramid) * len(calib.frames)  # ranges twice: TensorRT's (symmetric), the CPU's
            what = f"calibrating ({m}, {plural(len(calib.frames), 'image')} x {plural(len(pyramid), 'scale')})"
            with Steps(what, total) as steps:
                qdq, ranges = quantize(onnx, spec, calib.frames, pyramid, m, exclude or [], dest, steps.advance)
            write_trt_cache(dest / "trt.cache", tensor_scales(ranges), trt_version)
            console.print(f"{m}: wrote {qdq} (TensorRT's), {dest / CPU_QDQ} (CPU runtimes') and {dest / 'trt.cache'}")
        int8 = load_runner("onnxruntime", str(dest / CPU_QDQ), threads=threads)  # what the CPU runs
        inputs = held_out_inputs(held, fp32, pyramid)
        cos, err = output_agreement(fp32, int8, inputs)
        pair = evaluate_pair(fp32, int8, config, data, held[:32])
        r = MethodResult(m, cos, err, **pair)
        same_shape = [x for x in inputs if x.shape == inputs[0].shape][:8]  # the debugger pairs like shapes
        r.worst_layers = worst_layers(onnx, dest / "model.qdq.onnx", same_shape)
        results.append(r)
        console.print(
            f"{m}: scores cosine {cos['scores']:.5f}, boxes cosine {cos['boxes']:.5f}, "
            f"detection F1 {r.agreement_f1:.3f}"
            + (f", mAP@.5 {r.map50_fp32:.3f} -> {r.map50_int8:.3f}" if r.map50_int8 is not None else "")
        )
    info = {
        "calibration images": f"{images} ({len(calib.frames)} used, {calib.skipped} skipped)",
        "held-out": str(eval_data or holdout),
        "scales": ",".join(pyramid),
        "onnx sha256": onnx_sha,
    }
    md, js = write_report(out / name, name, results, info)
    console.print(f"recommended: {recommend(results).method}; report: {md} and {js}")


def register(app: typer.Typer) -> None:
    command(app, calibrate)
