"""demo: a generated video through the whole pipeline on the CPU -> annotated MP4 + JSON Lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.backend_options import backend_options
from overfeat_edge.commands.common import (
    BackendOption,
    MinSize,
    ScaleFactor,
    Scales,
    Threshold,
    check_number,
    check_output,
    command,
    console,
    keep,
    pyramid,
)
from overfeat_edge.errors import InputError
from overfeat_edge.words import plural

DEMO_MODEL = "overfeat-mini-shapes"


@backend_options(help={"threads": "CPU threads in all, shared out among the workers (default: all cores)."})
def demo(
    out: Annotated[Path, typer.Option(help="Folder for input.mp4, demo.mp4 and detections.jsonl.")] = Path("runs/demo"),
    model: Annotated[str, typer.Option(help="A shipped model name or an exported .onnx.")] = DEMO_MODEL,
    frames: Annotated[int, typer.Option(help="Length of the generated video in frames (30 fps).")] = 150,
    seed: Annotated[int, typer.Option(help="Seed of the generated video.")] = 7,
    backend: BackendOption = "auto",
    workers: Annotated[Optional[int], typer.Option(help="Inference workers (default: as `run` on a file).")] = None,
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    threshold: Threshold = None,
    min_score: Annotated[
        Optional[float],
        typer.Option(help="Drop merged boxes scoring below this (default: the model's, as detect and run)."),
    ] = None,
    options: Optional[Dict[str, Any]] = None,
) -> None:
    """Generate a short video, detect on every frame (on the CPU by default), write an annotated MP4 and JSON Lines.

    Example: overfeat-edge demo --model mtcnn-face --out runs/demo
    """
    scales = pyramid(scales, min_size, scale_factor)
    from overfeat_edge.pipeline.detector import DetectorConfig
    from overfeat_edge.pipeline.load import describe
    from overfeat_edge.stream.plan import load_workers
    from overfeat_edge.train.synth import write_demo_video

    check_number("--frames", frames, 1, 100000)
    check_number("--seed", seed, 0, 2**32 - 1)
    check_output(out, "--out", folder=True)
    config = DetectorConfig(scales=scales or [], threshold=threshold, min_score=min_score)
    det, runners = load_workers(model, backend, workers, False, dict(options or {}), config)
    console.print(describe(det, model), soft_wrap=True)
    runner, n_workers = det.runner, len(runners)
    sample = _sample_photo(model)
    src = write_demo_video(out / "input.mp4", frames, seed, photo=sample)
    what = f"a camera tour of {sample.name}" if sample is not None else f"seed {seed}"
    console.print(f"generated {src} ({frames} frames, {what}); detecting with {n_workers} x {runner.describe()}")
    _detect_video(det, runners, src, out, model)


def _sample_photo(model: str) -> Optional[Path]:
    """The photo shipped beside the model (mtcnn-face's), also for a served model of a shipped name."""
    from overfeat_edge.errors import OverfeatEdgeError
    from overfeat_edge.runtime.base import resolve_onnx

    try:
        sample = resolve_onnx(model).parent / "sample.jpg"
    except OverfeatEdgeError:  # a name only a server knows (--backend triton), an engine
        return None
    return sample if sample.is_file() else None


def _detect_video(det: Any, runners: list[Any], src: Path, out: Path, model: str) -> None:
    """The same loop as `run` on a file (every frame, in order) -> demo.mp4 and detections.jsonl."""
    from overfeat_edge.pipeline.draw import pyramid_caption
    from overfeat_edge.runtime import is_cpu
    from overfeat_edge.stream.loop import Stream, StreamLoop
    from overfeat_edge.stream.sinks import JsonlSink, VideoSink
    from overfeat_edge.stream.sources import Source, parse_source

    runner, n_workers = det.runner, len(runners)
    source = Source(parse_source(str(src)))
    where = " (CPU)" if is_cpu(runner.name) else ""
    overlay = f"{model} on {runner.name}{where}, {pyramid_caption(det.scales)}"
    keep(f"{out / 'demo.mp4'} and {out / 'detections.jsonl'} closed and readable up to the last frame written")
    try:
        with VideoSink(out / "demo.mp4", source.fps) as video:
            with JsonlSink(out / "detections.jsonl", det.spec.class_names) as jsonl:
                stream = Stream(src.stem, source, [video, jsonl])
                stats = StreamLoop([stream], det, overlay=overlay, runners=runners).run()
    finally:
        source.close()
    if stats.frames == 0:
        raise InputError(f"{src}: OpenCV read no frames back (no MP4 decoder in this OpenCV build?)")
    s = stats.summary()
    net = s["stages"]["inference"]["p50_ms"]  # type: ignore[index]
    console.print(
        f"{stats.frames} frames: end to end {s['fps']} FPS (network median {net:.1f} ms/frame in each of "
        f"{plural(n_workers, 'worker')}), "
        f"{stats.detections / stats.frames:.1f} detections/frame"
    )
    console.print(f"wrote {out / 'demo.mp4'} and {out / 'detections.jsonl'}")


def register(app: typer.Typer) -> None:
    command(app, demo)
