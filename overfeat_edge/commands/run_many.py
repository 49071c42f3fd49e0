"""run with several sources: one batched inference for every stream, per-stream sinks and statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from overfeat_edge.commands.common import check_output, check_outputs, close_all, console, err_console, keep
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text, check_name, read_bounded
from overfeat_edge.paths import is_safe_name, safe_name

MAX_STREAMS = 64  # every stream joins one batch: more would exhaust memory before the first frame
MAX_SOURCES_BYTES = 1 << 20


def stream_list(sources: Optional[list[str]], sources_file: Optional[Path]) -> list[tuple[str, str]]:
    """(name, uri) of every source: the arguments (named cam0, cam1...) then the file's lines
    ``[NAME=]URI`` (``door=rtsp://10.0.0.5/stream``; blank lines and lines starting with ``#``
    skipped; a URI may hold spaces, as a GStreamer pipeline does). Names are unique and file-name safe."""
    out = [(f"cam{i}", uri) for i, uri in enumerate(sources or [])]
    if sources_file is not None:
        out += sources_lines(sources_file, len(out))
    check_streams(out)
    return out


def sources_lines(path: Path, first: int) -> list[tuple[str, str]]:
    """The ``[NAME=]URI`` lines of a --sources file (at most 1 MiB and MAX_STREAMS streams)."""
    if not path.is_file():
        raise InputError(f"--sources {path}: {'not a regular file' if path.exists() else 'no such file'}")
    try:
        lines = read_bounded(path, MAX_SOURCES_BYTES, "--sources").decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"--sources {path}: not a UTF-8 text file") from None
    out: list[tuple[str, str]] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        head, eq, rest = text.partition("=")
        if eq and is_safe_name(head.strip()):
            out.append((head.strip(), rest.strip()))
        else:
            out.append((f"cam{first + len(out)}", text))
        if first + len(out) > MAX_STREAMS:
            raise InputError(f"--sources {path}: more than {MAX_STREAMS} streams; run several processes")
    return out


def check_streams(streams: list[tuple[str, str]]) -> None:
    """At least one, at most MAX_STREAMS, each with a safe unique name and a non-empty URI."""
    if not streams:
        raise InputError("no source: give one or more SOURCE arguments or --sources FILE")
    if len(streams) > MAX_STREAMS:
        raise InputError(f"{len(streams)} sources: at most {MAX_STREAMS} in one run; run several processes")
    names = [safe_name(n, "stream name") for n, _ in streams]
    empty = [n for n, uri in streams if not uri.strip()]
    if empty:
        raise InputError(f"stream {empty[0]!r} has an empty source (NAME=URI)")
    for _, uri in streams:  # OpenCV opens sources by a UTF-8 name and crashes on any other
        check_name(uri, "source", utf8=True)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"stream name {dup[0]!r} is given twice; every stream needs its own name")


def per_stream(path: Optional[Path], option: str, name: str, many: bool) -> Optional[Path]:
    if path is None:
        return None
    if "{name}" in str(path):
        return Path(str(path).replace("{name}", name))
    if many:
        raise InputError(f"{option} {path}: with several sources it must hold {{name}} (e.g. out_{{name}}.mp4)")
    return path


def run_many(
    streams_in: list[tuple[str, str]],
    *,
    model: str,
    output: Optional[Path],
    jsonl: Optional[Path],
    save_frames: Optional[Path],
    max_frames: Optional[int],
    duration: Optional[float],
    stats_json: Optional[Path],
    size: tuple[Optional[int], Optional[int], Optional[float]],
    reconnects: int,
    backend: str,
    options: dict[str, Any],
    workers: Optional[int],
    config: tuple[Any, ...],
    track: bool,
    publish: tuple[Optional[str], int],
    live_view: bool,
) -> None:
    from overfeat_edge.commands.common import check_number
    from overfeat_edge.commands.run import _run_with_signals, check_publish, display_min_score, report_published
    from overfeat_edge.pipeline.detector import DetectorConfig
    from overfeat_edge.pipeline.load import describe, load_detector
    from overfeat_edge.stream.multi import MultiStreamLoop, Stream
    from overfeat_edge.stream.sinks import ImageFolderSink, JsonlSink, Sink, VideoSink
    from overfeat_edge.stream.sources import Source, parse_source

    check_number("--max-frames", max_frames, 0, None, above=True)
    check_number("--duration", duration, 0, None, above=True)
    check_number("--reconnects", reconnects, 0, 1000)
    if workers is not None and workers != 1:
        raise InputError("--workers: several sources run one batched inference (the streams share it); drop --workers")
    width, height, fps = size
    specs = [(name, parse_source(uri, width, height, fps)) for name, uri in streams_in]
    shared_jsonl = jsonl is not None and "{name}" not in str(jsonl)
    per: dict[str, dict[str, Optional[Path]]] = {}
    named: dict[str, Optional[Path]] = {"--jsonl": jsonl if shared_jsonl else None, "--stats-json": stats_json}
    for name, _ in specs:
        per[name] = {
            "--output": per_stream(output, "--output", name, True),
            "--jsonl": None if shared_jsonl else per_stream(jsonl, "--jsonl", name, True),
            "--save-frames": per_stream(save_frames, "--save-frames", name, True),
        }
        named.update({f"{k} ({name})": v for k, v in per[name].items()})
    for option, path in named.items():
        if path is not None:
            check_output(path, option.split()[0], folder=option.startswith("--save-frames"))
            if option.startswith("--output") and path.suffix.lower() not in VideoSink.FOURCC:
                raise InputError(f"--output must end in one of {', '.join(VideoSink.FOURCC)}, got {path}")
    inputs = [p for _, spec in specs for p in (*spec.paths, *([Path(str(spec.target))] if spec.kind == "file" else []))]
    check_outputs(named, inputs)
    check_publish(*publish)
    scales, threshold, merge, min_score = config
    cfg = DetectorConfig(scales=scales or [], threshold=threshold, merge=merge, min_score=min_score)
    det = load_detector(model, backend=backend, config=cfg, **options)
    console.print(describe(det, model), soft_wrap=True)
    display_min_score(det, min_score)
    if not any(v is not None for v in named.values()) and publish[0] is None:
        err_console.print(
            "warning: no --output, --jsonl, --save-frames, --stats-json or --publish: nothing is kept", style="yellow"
        )
    streams: list[Stream] = []
    shared: list[Sink] = []
    try:
        if shared_jsonl:
            assert jsonl is not None
            shared.append(JsonlSink(jsonl, det.spec.class_names))
        if publish[0] is not None:
            from overfeat_edge.stream.publish import MqttSink

            shared.append(MqttSink(publish[0], det.spec.class_names, buffer=publish[1]))
        for name, spec in specs:

            def log(msg: str, name: str = name) -> None:
                err_console.print(f"{name}: {msg}", style="yellow")

            s = Stream(name, Source(spec, reconnects=reconnects, log=log))
            streams.append(s)
            paths = per[name]
            if paths["--output"] is not None:
                s.sinks.append(VideoSink(paths["--output"], s.source.fps))
            if paths["--jsonl"] is not None:
                s.sinks.append(JsonlSink(paths["--jsonl"], det.spec.class_names, {"stream": name}))
            if paths["--save-frames"] is not None:
                s.sinks.append(ImageFolderSink(paths["--save-frames"]))
            s.sinks += shared
            if track:
                from overfeat_edge.pipeline.track import ByteTrack

                s.steps.append(ByteTrack())
        loop = MultiStreamLoop(streams, det, max_frames, overlay=det.describe_pyramid())
        console.print(
            f"{len(streams)} streams -> one batched {det.runner.describe()}; Ctrl-C stops cleanly", soft_wrap=True
        )
        _run_with_signals(loop, duration, loop.stats, live_view and console.is_terminal)
    finally:
        sources = [s.source for s in streams if not s.hung]  # a hung read's capture is left to exit
        close_all([*(k for s in streams for k in s.sinks if k not in shared), *shared, *sources])
    summary = {
        "stopped_by": loop.stop_reason,
        "mean_batch": round(sum(loop.batch_sizes) / max(len(loop.batch_sizes), 1), 2),
        "streams": {s.name: {**s.stats.summary(), "error": s.error} for s in streams},
    }
    for s in streams:
        st = summary["streams"][s.name]  # type: ignore[index]
        lat = st["stages"].get("latency", {})
        console.print(
            f"{s.name}: processed {st['frames']} at {st['fps']} FPS, latency p95 {lat.get('p95_ms', 0):.0f} ms, "
            f"captured {st['captured']}, dropped {st['dropped']}, skipped {st['skipped']}, reconnects "
            f"{st['reconnects']}"
            + (f"; failed: {s.error}" if s.error else "")
            + ("; its capture was still in a read at the end and was left to exit" if s.hung else ""),
            soft_wrap=True,
        )
    console.print(f"frames per batched inference: {summary['mean_batch']} on average; stopped by: {loop.stop_reason}")
    if stats_json is not None and any(s.stats.frames for s in streams):  # nothing processed: the old one stays
        atomic_write_text(stats_json, json.dumps(summary, indent=1))
    report_published(shared)
    if all(s.stats.frames == 0 for s in streams):
        raise InputError("no frame could be processed from any source")
    if loop.stop_reason in ("SIGINT", "SIGTERM"):
        keep(f"stopped by {loop.stop_reason}; every stream's outputs closed and readable")
        raise KeyboardInterrupt
