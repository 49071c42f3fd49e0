"""run: live video detection from a camera, stream, file or folder into several sinks at once."""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.common import (
    BackendOption,
    MinSize,
    OvDevice,
    OvPrecision,
    ScaleFactor,
    Scales,
    Threshold,
    TritonShm,
    TritonUrl,
    check_number,
    check_output,
    check_outputs,
    close_all,
    command,
    console,
    err_console,
    keep,
    pyramid,
)
from overfeat_edge.commands.run_many import run_many, stream_list
from overfeat_edge.errors import InputError

if TYPE_CHECKING:
    from overfeat_edge.pipeline.detector import Detector
from overfeat_edge.io import atomic_write_text


def _table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"{summary['frames']} frames, {summary['fps']} FPS", title_justify="left")
    for col in ("stage", "p50 ms", "p95 ms", "p99 ms"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for name, v in summary["stages"].items():
        t.add_row(name, f"{v['p50_ms']:.1f}", f"{v['p95_ms']:.1f}", f"{v['p99_ms']:.1f}")
    return t


GREEDY_DISPLAY_MIN_SCORE = 1.5  # summed window confidences: what a live view keeps of a greedy merge


def display_min_score(det: Detector, min_score: float | None) -> None:
    """A live view's floor on merged scores: the one given, else the model's, else 1.5 for greedy merging
    (its scores are sums of window confidences; NMS scores are one window's and keep the model's)."""
    if min_score is None and "min_score" not in det.spec.extra.get("detector", {}) and det.config.merge == "greedy":
        det.config = replace(det.config, min_score=GREEDY_DISPLAY_MIN_SCORE)


CPU_BACKENDS = ("onnxruntime", "openvino")  # several inference workers share the cores


def inference_workers(workers: int | None, backend: str, live: bool) -> int:
    """How many inference workers: ``workers`` checked, or the default for the backend and source."""
    if workers is None:
        return 2 if backend in CPU_BACKENDS and not live and (os.cpu_count() or 1) >= 2 else 1
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and backend not in CPU_BACKENDS:
        raise InputError(f"--workers {workers} needs a CPU backend (onnxruntime, openvino); a GPU backend runs one")
    return workers


def worker_threads(threads: int | None, n_workers: int) -> int:
    """ONNX Runtime threads of each worker: ``threads`` in all (default: every core) shared out."""
    if threads is not None and not 1 <= threads <= 256:
        raise InputError(f"--threads must be between 1 and 256, got {threads}")
    return max(1, (threads or os.cpu_count() or 1) // n_workers)


def run(
    sources: Annotated[
        Optional[List[str]],
        typer.Argument(
            help="One or more: 0, /dev/video0, v4l2:///dev/video0, csi://0, rtsp://..., video file, folder, glob."
        ),
    ] = None,
    sources_file: Annotated[
        Optional[Path], typer.Option("--sources", help="A file of sources, one per line: [NAME=]URI ('#' comments).")
    ] = None,
    track: Annotated[bool, typer.Option("--track", help="ByteTrack identities across frames (per stream).")] = False,
    model: Annotated[str, typer.Option(help="An exported .onnx, or a shipped model name.")] = "overfeat-mini-shapes",
    output: Annotated[Optional[Path], typer.Option(help="Annotated video (.mp4/.avi).")] = None,
    jsonl: Annotated[Optional[Path], typer.Option(help="JSON Lines: one line per frame with its detections.")] = None,
    save_frames: Annotated[Optional[Path], typer.Option(help="Folder for annotated JPEG frames.")] = None,
    display: Annotated[bool, typer.Option("--display/--no-display", help="Show a window (off without a screen).")] = (
        False
    ),
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after this many processed frames.")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds.")] = None,
    stats_json: Annotated[
        Optional[Path], typer.Option(help="Write FPS, latency percentiles and counters here.")
    ] = None,
    width: Annotated[Optional[int], typer.Option(help="Camera: requested width.")] = None,
    height: Annotated[Optional[int], typer.Option(help="Camera: requested height.")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Camera: requested frame rate.")] = None,
    reconnects: Annotated[int, typer.Option(help="Live sources: reconnection attempts (backoff 0.5 s, doubling).")] = 5,
    backend: BackendOption = "auto",
    ov_precision: OvPrecision = None,
    ov_device: OvDevice = None,
    triton_url: TritonUrl = None,
    triton_shm: TritonShm = False,
    cuda_graphs: Annotated[bool, typer.Option("--cuda-graphs", help="tensorrt: a CUDA graph per scale.")] = False,
    threads: Annotated[
        Optional[int], typer.Option(help="onnxruntime threads, all workers (default: all cores).")
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            help="onnxruntime: inference workers, each its own session with threads/workers threads, frames "
            "shared out and put back in order. Default: 2 for files (throughput), 1 for live sources (latency)."
        ),
    ] = None,
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    threshold: Threshold = None,
    merge: Annotated[Optional[str], typer.Option(help="greedy (OverFeat) or nms (default: the model's).")] = None,
    min_score: Annotated[
        Optional[float],
        typer.Option(help="Drop merged boxes scoring below this (default: the model's; greedy models 1.5)."),
    ] = None,
    publish: Annotated[
        Optional[str],
        typer.Option(
            help="mqtt://HOST[:PORT]/TOPIC or mqtts://... : one JSON message per frame (QoS 1; {name} in the topic: "
            "the stream). Credentials from OVERFEAT_EDGE_MQTT_USERNAME / _PASSWORD / _PASSWORD_FILE."
        ),
    ] = None,
    publish_buffer: Annotated[
        int, typer.Option(help="--publish: messages kept while the broker is away (then new ones are dropped).")
    ] = 10_000,
    live_view: Annotated[bool, typer.Option("--live/--no-live", help="Live statistics in the terminal.")] = True,
) -> None:
    """Detect on live video: threaded capture/inference/output, latest-frame policy for live sources."""
    scales = pyramid(scales, min_size, scale_factor)
    from overfeat_edge.pipeline.detector import DetectorConfig
    from overfeat_edge.pipeline.load import describe, load_detector
    from overfeat_edge.runtime import load_runner, resolve_backend
    from overfeat_edge.stream.loop import StreamLoop
    from overfeat_edge.stream.sinks import DisplaySink, ImageFolderSink, JsonlSink, Sink, VideoSink, display_problem
    from overfeat_edge.stream.sources import Source, parse_source
    from overfeat_edge.stream.stats import Stats

    streams = stream_list(sources, sources_file)
    if len(streams) > 1:
        return run_many(
            streams,
            model=model,
            output=output,
            jsonl=jsonl,
            save_frames=save_frames,
            max_frames=max_frames,
            duration=duration,
            stats_json=stats_json,
            size=(width, height, fps),
            reconnects=reconnects,
            backend=backend,
            options={
                "threads": threads,
                "cuda_graphs": cuda_graphs,
                "ov_precision": ov_precision,
                "ov_device": ov_device,
                "triton_url": triton_url,
                "triton_shm": triton_shm,
            },
            workers=workers,
            config=(scales, threshold, merge, min_score),
            track=track,
            publish=(publish, publish_buffer),
            live_view=live_view,
        )
    name, source = streams[0]
    from overfeat_edge.commands.run_many import per_stream

    output, jsonl, save_frames = (
        per_stream(p, o, name, False)
        for p, o in ((output, "--output"), (jsonl, "--jsonl"), (save_frames, "--save-frames"))
    )
    # every option and output checked before the model loads
    check_number("--max-frames", max_frames, 0, None, above=True)
    check_number("--duration", duration, 0, None, above=True)
    check_number("--reconnects", reconnects, 0, 1000)
    check_number("--fps", fps, 0, 1000, above=True)
    for option, v in (("--width", width), ("--height", height)):
        check_number(option, v, 1, 16384)
    if output is not None and output.suffix.lower() not in VideoSink.FOURCC:
        raise InputError(f"--output must end in one of {', '.join(VideoSink.FOURCC)}, got {output}")
    outputs = {"--output": output, "--jsonl": jsonl, "--stats-json": stats_json}
    for option, path in outputs.items():
        if path is not None:
            check_output(path, option)
    if save_frames is not None:
        check_output(save_frames, "--save-frames", folder=True)
    check_publish(publish, publish_buffer)
    spec = parse_source(source, width, height, fps)
    inputs = [*spec.paths, *([Path(str(spec.target))] if spec.kind == "file" else [])]
    check_outputs({**outputs, "--save-frames": save_frames}, inputs)
    backend, why = resolve_backend(backend, model, threads)
    n_workers = inference_workers(workers, backend, spec.live)
    per_worker = worker_threads(threads, n_workers) if backend in CPU_BACKENDS else threads
    options = {"threads": per_worker, "cuda_graphs": cuda_graphs, "ov_precision": ov_precision, "ov_device": ov_device}
    options.update(triton_url=triton_url, triton_shm=triton_shm)
    config = DetectorConfig(scales=scales or [], threshold=threshold, merge=merge, min_score=min_score)
    det = load_detector(model, backend=backend, config=config, **options)
    det.runner.choice = why
    console.print(describe(det, model), soft_wrap=True)
    display_min_score(det, min_score)
    if track:
        from overfeat_edge.pipeline.track import ByteTrack

        det.steps.append(ByteTrack())
    runners = [det.runner] + [load_runner(backend, model, **options) for _ in range(n_workers - 1)]

    def log(msg: str) -> None:
        err_console.print(msg, style="yellow")

    if not (output or jsonl or save_frames or stats_json or display or publish):
        err_console.print(
            "warning: no --output, --jsonl, --save-frames, --stats-json, --publish or --display: the detections "
            "are not kept",
            style="yellow",
        )

    src = Source(spec, reconnects=reconnects, log=log)
    stats = Stats()
    sinks: list[Sink] = []
    loop: StreamLoop | None = None
    try:
        if output is not None:
            sinks.append(VideoSink(output, src.fps))
        if jsonl is not None:
            sinks.append(JsonlSink(jsonl, det.spec.class_names, {"source": source, "stream": name}))
        if save_frames is not None:
            sinks.append(ImageFolderSink(save_frames))
        if publish is not None:
            from overfeat_edge.stream.publish import MqttSink

            extra = {"source": source, "stream": name}
            sinks.append(MqttSink(publish, det.spec.class_names, extra, buffer=publish_buffer))
        overlay = f"{det.runner.name} {det.describe_pyramid()}"
        loop = StreamLoop(src, det, sinks, stats, max_frames, overlay, runners=runners)
        if display:
            problem = display_problem()
            if problem:
                log(f"--display off: {problem}")
            else:
                sinks.append(DisplaySink(on_quit=lambda: loop.stop("window closed") if loop else None))
        way = f"{n_workers} x {det.runner.describe()}" if n_workers > 1 else det.runner.describe()
        console.print(f"{spec.describe()} -> {way}, {len(sinks)} sink(s); Ctrl-C stops cleanly")
        _run_with_signals(loop, duration, stats, live_view and console.is_terminal)
    finally:
        close_all([*sinks, src])
    summary = stats.summary()
    summary["stopped_by"] = loop.stop_reason if loop else ""
    console.print(_table(summary))
    console.print(
        f"captured {summary['captured']}, processed {summary['frames']}, dropped {summary['dropped']} (stale), "
        f"skipped {summary['skipped']} (unreadable), reconnects {summary['reconnects']}; stopped by: "
        f"{summary['stopped_by']}"
    )
    if stats_json is not None:
        atomic_write_text(stats_json, json.dumps(summary, indent=1))
    written = [p for p in (getattr(s, "path", None) or getattr(s, "folder", None) for s in sinks) if p is not None]
    for path in written:
        console.print(f"wrote {path}")
    report_published(sinks)
    if summary["frames"] == 0:  # as detect and calibrate: nothing read is an error
        raise InputError(
            f"{source}: no frame could be processed (captured {summary['captured']}, unreadable "
            f"{summary['skipped']}, stopped by {summary['stopped_by'] or 'end of input'})"
        )
    if loop is not None and loop.stop_reason in ("SIGINT", "SIGTERM"):
        outs = ", ".join(map(str, written)) or "no output"
        keep(f"stopped by {loop.stop_reason} after {summary['frames']} frames; {outs} closed and readable")
        raise KeyboardInterrupt


def check_publish(publish: Optional[str], buffer: int) -> None:
    """--publish checked before the model loads: the URL, the credentials, paho installed."""
    if publish is None:
        return
    from overfeat_edge.lazy import require
    from overfeat_edge.stream.publish import Broker, credentials, tls_ca

    if Broker.parse(publish).tls:
        tls_ca()
    check_number("--publish-buffer", buffer, 1, 60_000)
    credentials()
    require("paho.mqtt.client", "--publish")


def report_published(sinks: Any) -> None:
    for sink in sinks:
        summary = getattr(sink, "summary", None)
        if callable(summary):
            line = summary()
            (err_console if getattr(sink, "dropped", 0) or getattr(sink, "waiting", 0) else console).print(line)


def _run_with_signals(loop: Any, duration: float | None, stats: Any, live_view: bool) -> None:
    """SIGINT and SIGTERM stop the loop cleanly (the frame in flight is finished and written)."""
    handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda s, _f: loop.stop(signal.Signals(s).name))
    try:
        if live_view:
            from rich.live import Live

            with Live(console=console, refresh_per_second=2, transient=True) as live:

                def tick() -> None:
                    s = stats.summary()
                    lat = s["stages"].get("latency", {})
                    streams = getattr(loop, "streams", None)  # several sources: each counts its own
                    dropped = sum(x.stats.dropped for x in streams) if streams else s["dropped"]
                    skipped = sum(x.source.skipped for x in streams) if streams else s["skipped"]
                    live.update(
                        f"{s['frames']} frames  {stats.fps():.1f} FPS  latency p50 {lat.get('p50_ms', 0):.0f} ms  "
                        f"dropped {dropped}  skipped {skipped}"
                    )

                loop.run(duration, tick)
        else:
            loop.run(duration)
    finally:
        for signum, previous in handlers.items():
            signal.signal(signum, previous)


def register(app: typer.Typer) -> None:
    command(app, run)
