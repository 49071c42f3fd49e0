"""run: live video detection from one or many cameras, streams, files or folders into several outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.backend_options import backend_options
from overfeat_edge.commands.common import (
    BackendOption,
    MinSize,
    ScaleFactor,
    Scales,
    Threshold,
    command,
    console,
    err_console,
    keep,
    pyramid,
)
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text
from overfeat_edge.stream import plan as planning

# ---- run's options -------------------------------------------------------------------------------
SourcesOpt = Annotated[
    Optional[List[str]],
    typer.Argument(
        help="One or more: 0, /dev/video0, v4l2:///dev/video0, csi://0, rtsp://..., video file, folder, glob."
    ),
]
SourcesFileOpt = Annotated[
    Optional[Path], typer.Option("--sources", help="A file of sources, one per line: [NAME=]URI ('#' comments).")
]
TrackOpt = Annotated[bool, typer.Option("--track", help="ByteTrack identities across frames (per stream).")]
TrackPerClassOpt = Annotated[
    bool, typer.Option("--track-per-class", help="--track: associate within each class (default: any class).")
]
ModelOpt = Annotated[str, typer.Option(help="An exported .onnx, or a shipped model name.")]
OutputOpt = Annotated[
    Optional[List[str]],
    typer.Option(
        help="Repeatable: .mp4/.avi, .jsonl, DIR/, display://, mqtt://, rtsp://@:8554/NAME, "
        "rtp://HOST:PORT, http://@:8080/, webrtc://. {name}: the stream."
    ),
]
JsonlOpt = Annotated[Optional[Path], typer.Option(help="JSON Lines: one line per frame with its detections.")]
SaveFramesOpt = Annotated[Optional[Path], typer.Option(help="Folder for annotated JPEG frames.")]
DisplayOpt = Annotated[bool, typer.Option("--display/--no-display", help="Show a window (off without a screen).")]
MaxFramesOpt = Annotated[Optional[int], typer.Option(help="Stop after this many processed frames.")]
DurationOpt = Annotated[Optional[float], typer.Option(help="Stop after this many seconds.")]
StatsJsonOpt = Annotated[Optional[Path], typer.Option(help="Write FPS, latency percentiles and counters here.")]
WidthOpt = Annotated[Optional[int], typer.Option(help="Camera: requested width.")]
HeightOpt = Annotated[Optional[int], typer.Option(help="Camera: requested height.")]
FpsOpt = Annotated[Optional[float], typer.Option(help="Camera: requested frame rate.")]
ReconnectsOpt = Annotated[int, typer.Option(help="Live sources: reconnection attempts.")]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(help="Inference workers, each its own session (default: 2 on a CPU for files, else 1)."),
]
MergeOpt = Annotated[Optional[str], typer.Option(help="greedy (OverFeat) or nms (default: the model's).")]
MinScoreOpt = Annotated[
    Optional[float], typer.Option(help="Drop merged boxes scoring below this (default: the model's).")
]
PublishOpt = Annotated[
    Optional[str],
    typer.Option(help="mqtt[s]://HOST[:PORT]/TOPIC: a message per frame (QoS 1). Credentials: OVERFEAT_EDGE_MQTT_*."),
]
PublishBufferOpt = Annotated[int, typer.Option(help="--publish: messages kept while the broker is away.")]
LiveViewOpt = Annotated[bool, typer.Option("--live/--no-live", help="Live statistics in the terminal.")]


@backend_options(help={"threads": "CPU threads in all, shared out among the workers (default: all cores)."})
def run(
    sources: SourcesOpt = None,
    sources_file: SourcesFileOpt = None,
    track: TrackOpt = False,
    track_per_class: TrackPerClassOpt = False,
    model: ModelOpt = "overfeat-mini-shapes",
    output: OutputOpt = None,
    jsonl: JsonlOpt = None,
    save_frames: SaveFramesOpt = None,
    display: DisplayOpt = False,
    max_frames: MaxFramesOpt = None,
    duration: DurationOpt = None,
    stats_json: StatsJsonOpt = None,
    width: WidthOpt = None,
    height: HeightOpt = None,
    fps: FpsOpt = None,
    reconnects: ReconnectsOpt = 5,
    backend: BackendOption = "auto",
    workers: WorkersOpt = None,
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    threshold: Threshold = None,
    merge: MergeOpt = None,
    min_score: MinScoreOpt = None,
    publish: PublishOpt = None,
    publish_buffer: PublishBufferOpt = 10_000,
    live_view: LiveViewOpt = True,
    options: Optional[Dict[str, Any]] = None,
) -> None:
    """Detect on live video: a capture thread per source, batched inference workers, outputs per stream.

    Example: overfeat-edge run rtsp://cam.local/stream --output runs/cam.mp4 --jsonl runs/cam.jsonl
    """
    scales = pyramid(scales, min_size, scale_factor)
    outputs = [planning.make_output("--output", uri) for uri in output or []]
    for option, value, key in (("--jsonl", jsonl, ".jsonl"), ("--save-frames", save_frames, "/")):
        if value is not None:
            outputs.append(planning.make_output(option, str(value), key))
    if publish is not None:
        outputs.append(planning.make_output("--publish", publish, "mqtt"))  # the broker says what is wrong with a URL
    given = planning.RunOptions(sources, sources_file, outputs, display, stats_json, max_frames, duration)
    given.width, given.height, given.fps, given.reconnects = width, height, fps, reconnects
    given.publish_buffer, given.track, given.track_per_class = publish_buffer, track, track_per_class
    plan = planning.make_plan(given)  # every option and output checked before the model loads
    det, runners = _load(plan, model, backend, workers, dict(options or {}), (scales, threshold, merge, min_score))
    for note in plan.notes:
        err_console.print(note, style="yellow", soft_wrap=True)
    opened = planning.Opened()
    try:
        planning.open_streams(plan, det, _log, opened)
        loop = planning.make_loop(plan, det, runners, opened)
        what = ", ".join(s.source.describe() for s in opened.streams)
        console.print(f"{what} -> {_way(runners)}, {len(opened.sinks)} output(s); Ctrl-C stops cleanly", soft_wrap=True)
        _run(loop, opened, duration, live_view and console.is_terminal)
    finally:
        opened.close()
    _report(planning.summary(loop), opened, stats_json)


def _load(
    plan: planning.Plan,
    model: str,
    backend: str,
    workers: Optional[int],
    options: dict[str, Any],
    config: tuple[Any, ...],
) -> tuple[Any, list[Any]]:
    """The detector and one runner per inference worker."""
    from overfeat_edge.pipeline.detector import DetectorConfig
    from overfeat_edge.pipeline.load import describe

    scales, threshold, merge, min_score = config
    cfg = DetectorConfig(scales=scales or [], threshold=threshold, merge=merge, min_score=min_score)
    det, runners = planning.load_workers(model, backend, workers, plan.live, options, cfg)
    console.print(describe(det, model), soft_wrap=True)
    return det, runners


def _way(runners: list[Any]) -> str:
    return f"{len(runners)} x {runners[0].describe()}" if len(runners) > 1 else runners[0].describe()


def _log(msg: str) -> None:
    err_console.print(msg, style="yellow", soft_wrap=True)


def _run(loop: Any, opened: planning.Opened, duration: Optional[float], live_view: bool) -> None:
    """The loop under SIGINT/SIGTERM and the watchdog, with a live line in a terminal."""
    from overfeat_edge.stream.control import GRACE, run_with_signals

    def stuck() -> None:  # the watchdog: a worker did not stop within the grace period
        outs = ", ".join(k.describe() for k in opened.sinks) or "no output"
        try:
            opened.close()
            outs += " closed and readable"
        except Exception as exc:  # one output failed to close: said, and the process still ends
            outs += f" closed but one failed: {type(exc).__name__}: {exc}"
        err_console.print(
            f"interrupted: stopped by {loop.stop_reason} (a worker did not stop within {GRACE:.0f} s, so the run "
            f"was ended); {outs}",
            soft_wrap=True,
        )

    if not live_view:
        run_with_signals(loop, duration, on_stuck=stuck)
        return
    from rich.live import Live

    with Live(console=console, refresh_per_second=2, transient=True) as live:

        def tick() -> None:
            s = loop.stats.summary()
            lat = s["stages"].get("latency", {})
            live.update(
                f"{_done_of(loop, s['frames'])}  {loop.stats.fps():.1f} FPS  "
                f"latency p50 {lat.get('p50_ms', 0):.0f} ms  "
                f"dropped {s['dropped']}  skipped {sum(x.source.skipped for x in loop.streams)}"
            )

        run_with_signals(loop, duration, on_tick=tick, on_stuck=stuck)


def _done_of(loop: Any, frames: int) -> str:
    """``120 of 300 frames, 40 s left`` where every source is finite (files, folders), else ``120 frames``."""
    from overfeat_edge.commands.progress import time_left

    totals = [s.source.total for s in loop.streams]
    if None in totals:
        return f"{frames} frames"
    total = sum(totals)
    if loop.max_frames is not None:
        total = min(total, loop.max_frames * len(totals))
    left = time_left(time.perf_counter() - loop.stats.t_start, frames, total - frames)
    return f"{frames} of {total} frames" + (f", {left}" if left else "")


def _report(summary: dict[str, Any], opened: planning.Opened, stats_json: Optional[Path]) -> None:
    """The summary (each stream, files written), --stats-json, and the exit: no frame is an error."""
    from rich.table import Table

    t = Table(title=f"{summary['frames']} frames, {summary['fps']} FPS", title_justify="left")
    for col in ("stage", "p50 ms", "p95 ms", "p99 ms"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for name, v in summary["stages"].items():
        t.add_row(name, f"{v['p50_ms']:.1f}", f"{v['p95_ms']:.1f}", f"{v['p99_ms']:.1f}")
    console.print(t)
    for name, st in summary["streams"].items():
        lat = st["stages"].get("latency", {})
        console.print(
            f"{name}: processed {st['frames']} at {st['fps']} FPS, latency p95 {lat.get('p95_ms', 0):.0f} ms, "
            f"captured {st['captured']}, dropped {st['dropped']} (stale), skipped {st['skipped']} (unreadable), "
            f"reconnects {st['reconnects']}"
            + (f"; failed: {st['error']}" if st["error"] else "")
            + ("; its capture was still in a read at the end and was left to exit" if st["hung"] else ""),
            soft_wrap=True,
        )
    batch = f"frames per batched inference: {summary['mean_batch']} on average; " if len(summary["streams"]) > 1 else ""
    console.print(f"{batch}stopped by: {summary['stopped_by']}")
    if stats_json is not None and summary["frames"]:  # a run that processed nothing keeps the old one
        atomic_write_text(stats_json, json.dumps(summary, indent=1))
    _written(opened)
    _exit(summary)


def _written(opened: planning.Opened) -> None:
    for sink in opened.sinks:
        if getattr(sink, "path", None) is not None or getattr(sink, "folder", None) is not None:
            console.print(f"wrote {sink.describe()}", soft_wrap=True)
        report = getattr(sink, "summary", None)
        if callable(report):
            console.print(report(), soft_wrap=True)  # losses: the one error line (or a warning with ?best-effort)
    from overfeat_edge.stream.publish import check_delivered

    check_delivered(opened.sinks)  # lost messages end the run non-zero (unless ?best-effort)


def _exit(summary: dict[str, Any]) -> None:
    streams = summary["streams"]
    if summary["frames"] == 0:  # as detect and calibrate: nothing read is an error
        if len(streams) == 1:
            (st,) = streams.values()
            why = f"; {st['error']}" if st["error"] else ""
            raise InputError(
                f"{st['source']}: no frame could be processed (captured {st['captured']}, unreadable "
                f"{st['skipped']}, stopped by {summary['stopped_by'] or 'end of input'}){why}"
            )
        raise InputError("no frame could be processed from any source")
    if summary["stopped_by"] in ("SIGINT", "SIGTERM"):
        outs = ", ".join(o for st in streams.values() for o in st["outputs"]) or "no output"
        keep(f"stopped by {summary['stopped_by']} after {summary['frames']} frames; {outs} closed and readable")
        raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    command(app, run)
