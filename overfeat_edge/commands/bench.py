"""bench: how fast a model and the whole pipeline are on this machine, and how close to its peak."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import typer
from rich.table import Table
from typing_extensions import Annotated

from overfeat_edge.commands.backend_options import backend_options
from overfeat_edge.commands.common import Scales, check_number, check_output, command, console
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.auto import cpu


def matmul_gflops(n: int = 2048, reps: int = 7) -> float:
    """This machine's float32 matrix-multiply rate through numpy's BLAS (the ceiling for convs).

    The best of ``reps`` products: a peak, so a product slowed by another process does not lower it.
    """
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def network_seconds(runners: list[Any], inputs: list[list[np.ndarray]]) -> float:
    """Wall time for ``runners`` to run every frame's pyramid, frames shared out round-robin, in parallel."""
    import threading

    for r in runners:
        r.run_levels(inputs[0])  # warm-up

    def work(k: int) -> None:
        for xs in inputs[k :: len(runners)]:
            runners[k].run_levels(xs)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(len(runners))]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0


def other_stages_cpu(
    det: Any,
    clip: Path,
    imgs: list[np.ndarray],
    levels: list[Any],
    inputs: list[list[np.ndarray]],
    runner: Any,
    tmp: Path,
) -> dict[str, float]:
    """CPU seconds per frame of every stage but inference, each run alone on the same frames (``levels``
    and ``inputs``: their pyramid plan and inputs, already made).

    Process CPU time, so that OpenCV's own threads count. With inference using every core, these
    seconds are what the other stages take from it: the pipeline's ceiling is network CPU / (network
    CPU + these), whatever the overlap.
    """
    import cv2

    from overfeat_edge.pipeline.draw import draw_detections
    from overfeat_edge.stream.sinks import JsonlSink, VideoSink

    names = det.spec.class_names
    maps = [det.forward(x, runner) for x in inputs]
    cpu: dict[str, float] = {}
    t = time.process_time()
    cap = cv2.VideoCapture(str(clip))
    while cap.read()[0]:
        pass
    cap.release()
    cpu["capture"] = time.process_time() - t
    t = time.process_time()
    for f in imgs:
        det.preprocess(f)
    cpu["preprocess"] = time.process_time() - t
    t = time.process_time()
    dets = [det.postprocess(levels, m) for m in maps]
    drawn = [draw_detections(f, d, names, "") for f, d in zip_strict(imgs, dets)]
    cpu["postprocess"] = time.process_time() - t
    t = time.process_time()
    with VideoSink(tmp / "alone.mp4", 30) as v, JsonlSink(tmp / "alone.jsonl", names) as j:
        for k, (f, d) in enumerate(zip_strict(drawn, dets)):
            v.write(k, k / 30, f, d)
            j.write(k, k / 30, f, d)
    cpu["sink"] = time.process_time() - t
    return {k: v / len(imgs) for k, v in cpu.items()}


@backend_options(cpu_only=True, help={"threads": "onnxruntime threads in all (default: all cores)."})
def bench(
    model: Annotated[str, typer.Option(help="An exported .onnx or a shipped model name.")] = "overfeat-mini-shapes",
    frames: Annotated[int, typer.Option(help="Frames of the generated 384x512 video.")] = 60,
    workers: Annotated[Optional[int], typer.Option(help="Inference workers (default: as `run` on a file).")] = None,
    scales: Scales = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the figures as JSON.")] = None,
    backends: Annotated[
        bool, typer.Option("--backends", help="Compare every installed CPU backend and precision instead.")
    ] = False,
    int8: Annotated[
        Optional[Path], typer.Option(help="--backends: an INT8 Q/DQ ONNX (calibrate's model.cpu.qdq.onnx).")
    ] = None,
    eval_data: Annotated[Optional[Path], typer.Option(help="--backends: a labelled held-out set for mAP@.5.")] = None,
    options: Optional[Dict[str, Any]] = None,
) -> None:
    """Model-only throughput vs `run` end to end on the same frames; GFLOP/s vs this CPU's matmul peak."""
    import resource

    import cv2

    from overfeat_edge.commands.demo import write_demo_video
    from overfeat_edge.commands.run import inference_workers, worker_threads
    from overfeat_edge.pipeline.detector import Detector, DetectorConfig
    from overfeat_edge.runtime import load_runner
    from overfeat_edge.stream.loop import StreamLoop
    from overfeat_edge.stream.sinks import JsonlSink, VideoSink
    from overfeat_edge.stream.sources import Source, parse_source

    options = dict(options or {})
    threads = options.pop("threads")
    check_number("--frames", frames, 2, 100000)
    check_number("--threads", threads, 1, 256)
    if json_out is not None:
        check_output(json_out, "--json")
    threads = threads or os.cpu_count() or 1
    console.print(f"CPU: {cpu()}, {os.cpu_count()} cores", soft_wrap=True)
    if backends:
        _side_by_side(model, frames, threads, int8, eval_data, json_out)
        return
    n_workers = inference_workers(workers, "onnxruntime", live=False)
    runner = load_runner("onnxruntime", model, threads=threads, **options)
    det = Detector(runner, DetectorConfig(scales=scales or []))
    per_worker = worker_threads(threads, n_workers)
    pool = [load_runner("onnxruntime", model, threads=per_worker, **options) for _ in range(n_workers)]
    out: dict[str, Any] = {
        "model": model,
        "backend": runner.describe(),
        "frames": frames,
        "cpus": os.cpu_count(),
        "threads": threads,
        "workers": n_workers,
    }
    with tempfile.TemporaryDirectory(prefix="overfeat-bench-") as tmp:
        clip = write_demo_video(Path(tmp) / "clip.mp4", frames, seed=9)
        cap = cv2.VideoCapture(str(clip))
        imgs = []
        while (r := cap.read())[0]:
            imgs.append(r[1])
        cap.release()
        levels = det.levels(imgs[0].shape[:2])
        inputs = [det.preprocess(f)[1] for f in imgs]
        one_s = network_seconds([runner], inputs)
        cpu0 = time.process_time()
        pool_s = network_seconds(pool, inputs)
        net_cpu = (time.process_time() - cpu0) / len(imgs)
        alone = other_stages_cpu(det, clip, imgs, levels, inputs, pool[0], Path(tmp))
        model_s = min(one_s, pool_s)  # the faster way is the baseline
        gflop = sum(det.spec.arch.dense_gflops(*lv.input_hw, det.spec.fine_stride) for lv in levels)
        loop = StreamLoop(Source(parse_source(str(clip))), det, [], runners=pool)
        with VideoSink(Path(tmp) / "o.mp4", 30) as v, JsonlSink(Path(tmp) / "d.jsonl", det.spec.class_names) as j:
            loop.sinks = [v, j]
            t0 = time.perf_counter()
            stats = loop.run()
            run_s = time.perf_counter() - t0
    peak = matmul_gflops()
    out.update(
        model_fps_one_session=len(imgs) / one_s,
        model_fps_workers=len(imgs) / pool_s,
        model_fps=len(imgs) / model_s,
        run_fps=stats.frames / run_s,
        pipeline_efficiency=(stats.frames / run_s) / (len(imgs) / model_s),
        network_cpu_ms_per_frame=net_cpu * 1000,
        other_stages_cpu_ms_per_frame={k: v * 1000 for k, v in alone.items()},
        pipeline_ceiling=net_cpu / (net_cpu + sum(alone.values())),
        gflop_per_frame=gflop,
        model_gflops_per_s=gflop * len(imgs) / model_s,
        matmul_peak_gflops_per_s=peak,
        fraction_of_peak=gflop * len(imgs) / model_s / peak,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        stages=stats.summary()["stages"],
    )
    t = Table(title=f"overfeat-edge bench: {model}, {len(imgs)} frames 384x512, {len(levels)} scales")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row(f"network only: 1 session x {threads} threads", f"{out['model_fps_one_session']:.1f} frames/s")
    if n_workers > 1 or per_worker != threads:  # else the same row again
        t.add_row(
            f"network only: {n_workers} sessions x {per_worker} threads in parallel",
            f"{out['model_fps_workers']:.1f} frames/s",
        )
    t.add_row(f"run end to end, {n_workers} workers (decode video .. MP4 + JSONL)", f"{out['run_fps']:.1f} frames/s")
    t.add_row(
        "pipeline efficiency (run / the faster network only; over 100% where the loop's threads overlap the "
        "network's idle time better than the network-only measurement does)",
        f"{out['pipeline_efficiency']:.0%}",
    )
    t.add_row(
        "CPU ms per frame alone: network (workers) | capture, preprocess, postprocess, sink",
        f"{net_cpu * 1000:.0f} | " + ", ".join(f"{v * 1000:.1f}" for v in alone.values()),
    )
    t.add_row("ceiling: network CPU / all stages' CPU", f"{out['pipeline_ceiling']:.0%}")
    t.add_row("network GFLOP/frame; achieved GFLOP/s", f"{gflop:.2f}; {out['model_gflops_per_s']:.0f}")
    t.add_row("float32 matmul peak (numpy BLAS)", f"{peak:.0f} GFLOP/s ({out['fraction_of_peak']:.0%} reached)")
    t.add_row("peak resident memory", f"{out['peak_rss_mib']:.0f} MiB")
    console.print(t)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(out, indent=1))


def _side_by_side(
    model: str, frames: int, threads: int, int8: Path | None, eval_data: Path | None, json_out: Path | None
) -> None:
    from overfeat_edge.runtime.sidebyside import side_by_side
    from overfeat_edge.train.datasets import read_dataset
    from overfeat_edge.train.synth import scene

    if int8 is not None and not int8.is_file():
        raise InputError(f"--int8 {int8}: no such file")
    rng = np.random.default_rng(5)
    images = [scene(rng)[0] for _ in range(min(frames, 8))]
    data = read_dataset(eval_data) if eval_data is not None else None
    rows, skipped = side_by_side(model, images, int8=int8, threads=threads, rounds=frames, data=data)
    t = Table(title=f"overfeat-edge bench --backends: {model}, 384x512 frames, {frames} interleaved rounds")
    for col in ("configuration", "ms/frame", "vs ORT FP32", "max abs diff", "boxes matched", "worst shift", "mAP@.5"):
        t.add_column(col, justify="left" if col == "configuration" else "right")
    base = rows[0].median_ms
    for r in rows:
        m = f"{r.map50:.3f}" if r.map50 is not None else "-"
        d = r.detections
        t.add_row(
            r.label,
            f"{r.median_ms:.1f}",
            f"{base / r.median_ms:.2f}x",
            f"{r.max_abs_diff:.2g}",
            f"{d.matched}/{d.want} ({d.got} found)",
            f"{d.worst_shift:.2f} px",
            m,
        )
    console.print(t)
    for why in skipped:
        console.print(f"not run: {why}", soft_wrap=True)
    console.print("choose one with --precision (the default, fp32, gives ONNX Runtime FP32's detections)")
    if json_out is not None:
        out = [
            {
                "configuration": r.label,
                "ms_per_frame": r.median_ms,
                "max_abs_diff": r.max_abs_diff,
                "detections_matched": r.detections.matched,
                "detections_reference": r.detections.want,
                "detections_found": r.detections.got,
                "worst_box_shift_px": r.detections.worst_shift,
                "map50": r.map50,
            }
            for r in rows
        ]
        atomic_write_text(json_out, json.dumps({"cpu": cpu(), "rows": out}, indent=1))


def register(app: typer.Typer) -> None:
    command(app, bench)
