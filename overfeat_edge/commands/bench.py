"""bench: how fast a model and the whole pipeline are on this machine, and how close to its peak."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import typer
from rich.table import Table
from typing_extensions import Annotated

from overfeat_edge.commands.backend_options import backend_options
from overfeat_edge.commands.common import BackendOption, Scales, check_number, check_output, command, console
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text
from overfeat_edge.runtime.auto import cpu
from overfeat_edge.words import plural


@backend_options(help={"threads": "CPU threads in all, shared out among the workers (default: all cores)."})
def bench(
    model: Annotated[str, typer.Option(help="An exported .onnx or a shipped model name.")] = "overfeat-mini-shapes",
    backend: BackendOption = "auto",
    frames: Annotated[int, typer.Option(help="Frames of the generated 384x512 video.")] = 60,
    workers: Annotated[Optional[int], typer.Option(help="Inference workers (default: as `run` on a file).")] = None,
    scales: Scales = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the figures as JSON.")] = None,
    backends: Annotated[
        bool, typer.Option("--backends", help="Compare every installed CPU backend and precision.")
    ] = False,
    int8: Annotated[Optional[Path], typer.Option(help="--backends: an INT8 Q/DQ ONNX (from calibrate).")] = None,
    eval_data: Annotated[Optional[Path], typer.Option(help="--backends: a labelled held-out set for mAP@.5.")] = None,
    options: Optional[Dict[str, Any]] = None,
) -> None:
    """Model-only throughput vs `run` end to end on the same frames, on any backend (a Triton server
    too); on a CPU backend, GFLOP/s vs this CPU's matmul peak.

    Example: overfeat-edge bench --frames 30 --json bench.json
    """
    from overfeat_edge.measure import pipeline_figures
    from overfeat_edge.pipeline.detector import DetectorConfig
    from overfeat_edge.pipeline.load import describe
    from overfeat_edge.runtime import is_cpu, load_runner
    from overfeat_edge.stream.plan import load_workers, worker_threads

    options = dict(options or {})
    threads = options.get("threads")
    check_number("--frames", frames, 2, 100000)
    if threads is not None:
        check_number("--threads", threads, 1, 256)
    if json_out is not None:
        check_output(json_out, "--json")
    console.print(f"CPU: {cpu()}, {os.cpu_count()} cores", soft_wrap=True)
    if backends:
        if backend != "auto":
            raise InputError("--backends compares every installed CPU backend itself: leave out --backend")
        _side_by_side(model, frames, threads or os.cpu_count() or 1, int8, eval_data, json_out)
        return
    det, pool = load_workers(model, backend, workers, False, options, DetectorConfig(scales=scales or []))
    console.print(describe(det, model), soft_wrap=True)
    name, cores = det.runner.name, threads or os.cpu_count() or 1
    per_worker = worker_threads(threads, len(pool)) if is_cpu(name) else None
    runner = pool[0]
    if per_worker is not None and per_worker != cores:  # the network alone: one session with every thread
        runner = load_runner(name, model, **{**options, "threads": cores})
    out: dict[str, Any] = {
        "model": model,
        "backend": runner.describe(),
        "frames": frames,
        "cpus": os.cpu_count(),
        "threads": cores if per_worker is not None else None,
        "workers": len(pool),
        "per_worker_threads": per_worker,
        **pipeline_figures(det, runner, pool, frames),
    }
    console.print(figures_table(out, out["levels"], per_worker), width=min(console.width, TABLE_WIDTH))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(out, indent=1))


TABLE_WIDTH = 100  # bench's tables fit 100 columns, on a terminal or in a log


def figures_table(out: dict[str, Any], n_levels: int, per_worker: Optional[int]) -> Table:
    """bench's figures (``out``, as its JSON holds them) as a table of short rows; ``per_worker`` is
    None for a backend that does not compute on these cores (a GPU, a Triton server)."""
    threads, n_workers = out["threads"], out["workers"]
    t = Table(
        title=f"overfeat-edge bench: {out['model']}, {out['frames']} frames 384x512, {plural(n_levels, 'scale')}",
        caption="efficiency over 100%: the loop's threads fill the network's idle time better than network only",
    )
    t.add_column("figure")
    t.add_column("value", justify="right")
    one = f"1 session x {plural(threads, 'thread')}" if threads else "1 runner"
    t.add_row(f"network only: {one}", f"{out['model_fps_one_session']:.1f} frames/s")
    if n_workers > 1 or per_worker != threads:  # else the same row again
        each = f"sessions x {plural(per_worker, 'thread')}" if per_worker else "runners"
        t.add_row(f"network only: {n_workers} {each}", f"{out['model_fps_workers']:.1f} frames/s")
    t.add_row(f"run end to end, {plural(n_workers, 'worker')} (video to MP4 + JSONL)", f"{out['run_fps']:.1f} frames/s")
    t.add_row("pipeline efficiency (run / the faster network only)", f"{out['pipeline_efficiency']:.0%}")
    alone = out["other_stages_cpu_ms_per_frame"]
    t.add_row(
        "CPU ms/frame alone: network | capture, pre, post, sink",
        f"{out['network_cpu_ms_per_frame']:.0f} | " + ", ".join(f"{v:.1f}" for v in alone.values()),
    )
    t.add_row("ceiling: network CPU / all stages' CPU", f"{out['pipeline_ceiling']:.0%}")
    t.add_row("network GFLOP/frame; achieved GFLOP/s", f"{out['gflop_per_frame']:.2f}; {out['model_gflops_per_s']:.0f}")
    if per_worker is not None:  # the network computes on these cores: how close to their peak
        peak, reached = out["matmul_peak_gflops_per_s"], out["fraction_of_peak"]
        t.add_row("float32 matmul peak (numpy BLAS)", f"{peak:.0f} GFLOP/s ({reached:.0%} reached)")
    t.add_row("peak resident memory", f"{out['peak_rss_mib']:.0f} MiB")
    return t


def _side_by_side(
    model: str, frames: int, threads: int, int8: Path | None, eval_data: Path | None, json_out: Path | None
) -> None:
    from overfeat_edge.sidebyside import side_by_side
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
    console.print(t, width=min(console.width, TABLE_WIDTH))
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
