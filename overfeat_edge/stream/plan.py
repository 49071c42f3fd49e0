"""[no torch] What one ``run`` does, checked once before any frame is read, then carried out.

:func:`make_plan` validates every option and output (numbers, stream names, every output path
and URL) and parses every source; :func:`execute` opens the sources and sinks, runs one
:class:`~overfeat_edge.stream.loop.StreamLoop` over them (one source is a list of one) and
returns one summary, of one shape for one stream or many.

Outputs come from one table, :data:`OUTPUTS`, keyed by an output URI's scheme (``mqtt``,
``display``; next ``rtsp``, ``http``) or a path's suffix (``.mp4``, ``.jsonl``; ``/`` is a folder of
frames). Each value is ``"module"`` or ``"module:prefix"``: that module has ``check_output(uri)``
(raises InputError with one line: a bad URL, a port in use, a missing library) and
``open_output(uri, *, stream, fps, class_names) -> Sink``, named ``<prefix>_check_output`` and
``<prefix>_open_output`` where one module holds several kinds. A new output is one module and one
line here. With several streams an output holding ``{name}`` is one per stream; a record output
without it (JSONL, MQTT) takes every stream's records; a frame output needs ``{name}``, except a
window (one per stream).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

from overfeat_edge.errors import InputError
from overfeat_edge.io import check_name, read_bounded
from overfeat_edge.paths import is_safe_name, safe_name
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.runtime.base import Runner
from overfeat_edge.stream.loop import Stream, StreamLoop
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.stream.sources import Source, SourceSpec, parse_source
from overfeat_edge.validate import check_number, check_output, check_outputs

OUTPUTS: dict[str, str] = {
    **{suffix: "overfeat_edge.stream.sinks:video" for suffix in (".mp4", ".m4v", ".mov", ".avi", ".mkv")},
    ".jsonl": "overfeat_edge.stream.sinks:jsonl",
    "/": "overfeat_edge.stream.sinks:frames",
    "display": "overfeat_edge.stream.sinks:display",
    "mqtt": "overfeat_edge.stream.publish",
    "mqtts": "overfeat_edge.stream.publish",
    "http": "overfeat_edge.stream.web",
    "rtsp": "overfeat_edge.stream.rtsp",
    "rtp": "overfeat_edge.stream.rtsp",
    "webrtc": "overfeat_edge.stream.webrtc",
}
"""An output's scheme or suffix -> the module (and function prefix) that checks and opens it."""
RECORD_OUTPUTS = frozenset({".jsonl", "mqtt", "mqtts"})  # one sink can take every stream's records
ONE_PER_STREAM = frozenset({"display"})  # one each without {name}: a window per stream
MAX_STREAMS = 64  # every stream joins one batch: more would exhaust memory before the first frame
MAX_SOURCES_BYTES = 1 << 20


# ---- streams ---------------------------------------------------------------------------------
def _default_name(uri: str, position: int) -> str:
    """A file's stem or a folder's name (``clipA.mp4`` -> ``clipA``), else ``cam<position>``."""
    text = uri[len("file://") :] if uri.startswith("file://") else uri
    if "://" in text or "!" in text or text.isdigit() or text.startswith("/dev/") or any(c in text for c in "*?["):
        return f"cam{position}"
    p = Path(text)
    stem = p.name if not p.suffix else p.stem
    return stem if is_safe_name(stem) else f"cam{position}"


def _sources_lines(path: Path, first: int) -> list[tuple[Optional[str], str]]:
    """The ``[NAME=]URI`` lines of a --sources file (at most MAX_SOURCES_BYTES and MAX_STREAMS)."""
    if not path.is_file():
        raise InputError(f"--sources {path}: {'not a regular file' if path.exists() else 'no such file'}")
    try:
        lines = read_bounded(path, MAX_SOURCES_BYTES, "--sources").decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"--sources {path}: not a UTF-8 text file") from None
    out: list[tuple[Optional[str], str]] = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            head, eq, rest = text.partition("=")
            out.append((head.strip(), rest.strip()) if eq and is_safe_name(head.strip()) else (None, text))
            if first + len(out) > MAX_STREAMS:
                raise InputError(f"--sources {path}: more than {MAX_STREAMS} streams; run several processes")
    return out


def stream_list(sources: Optional[List[str]], sources_file: Optional[Path]) -> list[tuple[str, str]]:
    """(name, uri) of every source: the arguments then the file's lines ``[NAME=]URI``
    (``door=rtsp://10.0.0.5/stream``; blank lines and lines starting with ``#`` skipped; a URI may
    hold spaces, as a GStreamer pipeline does). A source without a name is named after its file
    (its stem) or folder, else ``cam<N>``; names are unique and file-name safe."""
    given: list[tuple[Optional[str], str]] = [(None, uri) for uri in sources or []]
    if sources_file is not None:
        given += _sources_lines(sources_file, len(given))
    if not given:
        raise InputError("no source: give one or more SOURCE arguments or --sources FILE")
    if len(given) > MAX_STREAMS:
        raise InputError(f"{len(given)} sources: at most {MAX_STREAMS} streams run in one process")
    named = [safe_name(n, "stream name") for n, _ in given if n is not None]
    empty = [n for n, uri in given if not uri.strip()]
    if empty:
        raise InputError(f"stream {empty[0]!r} has an empty source (NAME=URI)")
    for _, uri in given:  # OpenCV opens sources by a UTF-8 name and crashes on any other
        check_name(uri, "source", utf8=True)
    dup = sorted({n for n in named if named.count(n) > 1})
    if dup:
        raise InputError(f"stream name {dup[0]!r} is given twice; every stream needs its own name")
    out: list[tuple[str, str]] = []
    taken = set(named)
    for i, (name, uri) in enumerate(given):
        if name is None:
            base = name = _default_name(uri, i)
            k = 1
            while name in taken:  # two clips of one stem: clip, clip-2
                k += 1
                name = f"{base}-{k}"
            taken.add(name)
        out.append((name, uri))
    return out


def per_stream(path: Optional[Path], option: str, name: str, many: bool) -> Optional[Path]:
    if path is None:
        return None
    if "{name}" in str(path):
        return Path(str(path).replace("{name}", name))
    if many:
        raise InputError(f"{option} {path}: with several sources it must hold {{name}} (e.g. out_{{name}}.mp4)")
    return path


# ---- inference workers -------------------------------------------------------------------------
def inference_workers(workers: int | None, backend: str, live: bool) -> int:
    """How many inference workers: ``workers`` checked against the backend's descriptor, or the default
    for the backend and source (2 on a CPU backend for files: throughput; 1 for live sources: latency)."""
    from overfeat_edge.runtime import descriptor, descriptors

    d = descriptor(backend)
    if workers is None:
        return 2 if d.cpu and not live and (os.cpu_count() or 1) >= 2 else 1
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if d.max_workers is not None and workers > d.max_workers:
        cpus = ", ".join(c.name for c in descriptors() if c.cpu)
        raise InputError(f"--workers {workers} needs a CPU backend ({cpus}); {backend} runs {d.max_workers}")
    return workers


def worker_threads(threads: int | None, n_workers: int) -> int:
    """CPU threads of each worker: ``threads`` in all (default: every core) shared out."""
    if threads is not None and not 1 <= threads <= 256:
        raise InputError(f"--threads must be between 1 and 256, got {threads}")
    return max(1, (threads or os.cpu_count() or 1) // n_workers)


def load_workers(
    model: str, backend: str, workers: int | None, live: bool, options: dict[str, Any], config: DetectorConfig
) -> tuple[Detector, list[Runner]]:
    """The detector and one runner per inference worker, the first being the detector's own: ``backend``
    resolved (``auto``), the workers checked against it and the CPU threads (``options["threads"]``, in
    all) shared out among them. What ``run``, ``demo`` and ``bench`` load."""
    from overfeat_edge.pipeline.load import load_detector
    from overfeat_edge.runtime import is_cpu, load_runner, resolve_backend

    options = dict(options)
    threads = options.get("threads")
    name, why = resolve_backend(backend, model, threads, options.get("precision") or "fp32")
    n = inference_workers(workers, name, live)
    options["threads"] = worker_threads(threads, n) if is_cpu(name) else threads
    det = load_detector(model, backend=name, config=config, **options)
    det.runner.choice = why
    return det, [det.runner] + [load_runner(name, model, **options) for _ in range(n - 1)]


# ---- outputs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """One output asked for: the option that named it, its URI (may hold ``{name}``), its table key."""

    option: str
    uri: str
    key: str

    @property
    def is_path(self) -> bool:
        return self.key.startswith((".", "/"))

    def functions(self) -> tuple[Callable[..., None], Callable[..., Sink]]:
        module, _, prefix = OUTPUTS[self.key].partition(":")
        mod = importlib.import_module(module)
        head = f"{prefix}_" if prefix else ""
        return getattr(mod, f"{head}check_output"), getattr(mod, f"{head}open_output")


def output_key(uri: str) -> str:
    """The table key of an output URI: its scheme, ``/`` for a folder, else its suffix.

    ``rtsp:/host`` (one slash, as a shell or a path join leaves it) is one line, not a file name."""
    scheme, sep, _ = uri.partition("://")
    if sep:
        return scheme.lower()
    head, colon, _ = uri.partition(":")
    if colon and head.lower() in OUTPUTS and not head.startswith((".", "/")):
        raise InputError(f"{uri}: a URL needs '{head}://' (two slashes), e.g. {head}://@:8554/cam")
    return "/" if uri.endswith("/") else Path(uri).suffix.lower()


def make_output(option: str, uri: str, key: str | None = None) -> Output:
    key = key or output_key(uri)
    if key not in OUTPUTS:
        kinds = ", ".join(k if k.startswith(".") else f"{k}://" for k in OUTPUTS if k != "/")
        what = f"unknown scheme {key!r}" if "://" in uri else "not an output this build writes"
        raise InputError(f"{option} {uri}: {what} (give one of {kinds}, or a folder/)")
    return Output(option, uri, key)


@dataclass
class RunOptions:
    """What ``run`` was given, as the command parsed it."""

    sources: Optional[List[str]] = None
    sources_file: Optional[Path] = None
    outputs: List[Output] = field(default_factory=list)
    display: bool = False
    stats_json: Optional[Path] = None
    max_frames: Optional[int] = None
    duration: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    fps: Optional[float] = None
    reconnects: int = 5
    publish_buffer: int = 10_000
    track: bool = False
    track_per_class: bool = False  # --track-per-class: associate within each class


@dataclass
class StreamPlan:
    name: str
    uri: str
    spec: SourceSpec
    outputs: list[tuple[Output, str]] = field(default_factory=list)  # (output, its URI for this stream)


@dataclass
class Plan:
    options: RunOptions
    streams: list[StreamPlan]
    shared: list[Output]  # one sink for every stream
    notes: list[str] = field(default_factory=list)  # said before the run: an output left off, nothing kept

    @property
    def live(self) -> bool:
        return any(s.spec.live for s in self.streams)


def _check_options(o: RunOptions) -> None:
    check_number("--max-frames", o.max_frames, 0, None, above=True)
    check_number("--duration", o.duration, 0, None, above=True)
    check_number("--reconnects", o.reconnects, 0, 1000)
    check_number("--fps", o.fps, 0, 1000, above=True)
    for option, v in (("--width", o.width), ("--height", o.height)):
        check_number(option, v, 1, 16384)
    if o.stats_json is not None:
        check_output(o.stats_json, "--stats-json")


def _check(out: Output, uri: str, buffer: int) -> None:
    if out.is_path:
        check_output(Path(uri), out.option, folder=out.key == "/")
    check, _ = out.functions()
    if out.key in ("mqtt", "mqtts"):
        check(uri, buffer)
    else:
        check(uri)


def make_plan(o: RunOptions) -> Plan:
    """Every option, source and output checked (one InputError line), before any model loads."""
    _check_options(o)
    pairs = stream_list(o.sources, o.sources_file)
    wanted = [*o.outputs, *([make_output("--display", "display://", "display")] if o.display else [])]
    shared = [k for k in wanted if k.key in RECORD_OUTPUTS and ("{name}" not in k.uri or k.key != ".jsonl")]
    for out in shared:  # URLs and credentials before any source is opened
        _check(out, out.uri, o.publish_buffer)
    streams = [StreamPlan(n, uri, parse_source(uri, o.width, o.height, o.fps)) for n, uri in pairs]
    plan = Plan(o, streams, shared)
    for out in wanted:
        if out not in shared:
            _per_stream(plan, out)
    named: dict[str, Optional[Path]] = {"--stats-json": o.stats_json}
    for out in plan.shared:
        if out.is_path:
            named[out.option] = Path(out.uri)
    for s in streams:
        named.update({f"{k.option} ({s.name})": Path(u) for k, u in s.outputs if k.is_path})
    check_outputs(named, [p for s in streams for p in s.spec.inputs])
    if not (wanted or o.stats_json):
        plan.notes.append(
            "warning: no --output, --jsonl, --save-frames, --stats-json, --publish or --display: the "
            "detections are not kept"
        )
    return plan


def _per_stream(plan: Plan, out: Output) -> None:
    """``out`` for every stream: its URI with ``{name}`` filled in, checked."""
    many = len(plan.streams) > 1
    try:
        for s in plan.streams:
            if out.key in ONE_PER_STREAM and "{name}" not in out.uri:
                uri = out.uri
            else:
                path = per_stream(Path(out.uri) if out.is_path else None, out.option, s.name, many)
                uri = str(path) if path is not None else _named(out, s.name, many)
            _check(out, uri, plan.options.publish_buffer)
            s.outputs.append((out, uri))
    except InputError as exc:
        if out.option != "--display":
            raise
        plan.notes.append(f"--display off: {exc}")  # a window is a nicety: said, not fatal
        for s in plan.streams:
            s.outputs = [(k, u) for k, u in s.outputs if k is not out]


def _named(out: Output, name: str, many: bool) -> str:
    if "{name}" in out.uri:
        return out.uri.replace("{name}", name)
    if many:
        raise InputError(f"{out.option} {out.uri}: with several sources it must hold {{name}}")
    return out.uri


# ---- running -------------------------------------------------------------------------------------
@dataclass
class Opened:
    """The run's streams and sinks, open; :meth:`close` closes every one, also after a failure."""

    streams: list[Stream] = field(default_factory=list)
    shared: list[Sink] = field(default_factory=list)

    @property
    def sinks(self) -> list[Sink]:
        own = [k for s in self.streams for k in s.sinks if k not in self.shared]
        return [*own, *self.shared]

    def close(self) -> None:
        from overfeat_edge.stream.control import close_all

        close_all([*self.sinks, *(s.source for s in self.streams if not s.hung)])


def open_streams(plan: Plan, det: Detector, log: Callable[[str], None], opened: Opened) -> None:
    """Sources, then sinks (a video sink takes its source's frame rate), into ``opened``."""
    o, names = plan.options, det.spec.class_names
    for sp in plan.streams:

        def say(msg: str, name: str = sp.name) -> None:
            log(f"{name}: {msg}" if len(plan.streams) > 1 else msg)

        opened.streams.append(Stream(sp.name, Source(sp.spec, reconnects=o.reconnects, log=say)))
    fps = opened.streams[0].source.fps
    for out in plan.shared:
        opened.shared.append(_open(out, out.uri, "", fps, names, o.publish_buffer))
    for sp, s in zip(plan.streams, opened.streams):
        for out, uri in sp.outputs:
            s.sinks.append(_open(out, uri, s.name, s.source.fps, names, o.publish_buffer))
        s.sinks += opened.shared
        if o.track:
            from overfeat_edge.pipeline.track import ByteTrack

            s.steps.append(ByteTrack(per_class=o.track_per_class, fps=s.source.fps))


def _open(out: Output, uri: str, stream: str, fps: float, names: tuple[str, ...], buffer: int) -> Sink:
    _, open_output = out.functions()
    extra: dict[str, Any] = {"buffer": buffer} if out.key in ("mqtt", "mqtts") else {}
    return open_output(uri, stream=stream, fps=fps, class_names=tuple(names), **extra)


def make_loop(plan: Plan, det: Detector, runners: list[Runner], opened: Opened) -> StreamLoop:
    from overfeat_edge.pipeline.draw import pyramid_caption

    overlay = pyramid_caption(det.scales)  # words, not the pyramid's spec string
    loop = StreamLoop(opened.streams, det, runners=runners, max_frames=plan.options.max_frames, overlay=overlay)
    for k in opened.sinks:
        if hasattr(k, "on_quit"):  # a window's 'q' or Esc
            k.on_quit = lambda: loop.stop("window closed")
    return loop


def summary(loop: StreamLoop) -> dict[str, Any]:
    """One shape for one stream or many: every stream together at the top, then each under ``streams``."""
    out = loop.stats.summary()
    out["stopped_by"] = loop.stop_reason
    out["mean_batch"] = round(sum(loop.batch_sizes) / max(len(loop.batch_sizes), 1), 2)
    out["streams"] = {
        s.name: {
            **s.stats.summary(),
            "source": s.source.describe(),
            "error": s.error,
            "hung": s.hung,
            "outputs": [k.describe() for k in s.sinks],
        }
        for s in loop.streams
    }
    return out
