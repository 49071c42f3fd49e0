"""[no torch] Several sources in one loop: frames of every stream batched into one inference per level.

DeepStream's shape, on any backend. Each stream has its own capture thread (its reconnects, its
latest-frame mailbox for a live source or a small queue for a file) and its own sinks, steps (a
tracker) and statistics. One inference thread works in rounds: it takes the frame each stream has
ready (waiting a few milliseconds at most: a stream that stalls, fails or reconnects is simply not
in the round), preprocesses them, stacks the inputs of every pyramid level that have one shape
into one batch, runs every batch of the round in one ``run_many`` (chunked to the runner's
``max_batch``), and hands each stream its maps. A post thread decodes, merges, refines and tracks
per stream and writes its sinks, so a slow sink does not hold inference.

So a stream never holds up another: a stalled camera costs the round nothing but its wait, and
a stream that fails ends alone (its error is reported, the others go on).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Tuple, cast

import numpy as np

from overfeat_edge.pipeline.detector import Detector, Step
from overfeat_edge.pipeline.draw import draw_detections
from overfeat_edge.stream.loop import Mailbox, Stoppable
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.stream.sources import Frame, Source
from overfeat_edge.stream.stats import Stats
from overfeat_edge.types import ScaleLevel

_END = object()
WAIT = 0.02  # seconds a round waits for a stream's next frame


@dataclass
class Stream:
    """One source with its own sinks, steps after detection (a tracker) and statistics."""

    name: str
    source: Source
    sinks: list[Sink] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    error: str = ""
    ended: bool = False
    hung: bool = False

    def __post_init__(self) -> None:
        self.inbox: Mailbox | queue.Queue[object] = Mailbox() if self.source.spec.live else queue.Queue(4)


class MultiStreamLoop(Stoppable):
    def __init__(
        self, streams: list[Stream], detector: Detector, max_frames: int | None = None, overlay: str = ""
    ) -> None:
        self.streams, self.detector = streams, detector
        self.max_frames, self.overlay = max_frames, overlay
        self.stats = Stats()  # every stream together
        super().__init__()
        self._done: queue.Queue[object] = queue.Queue(8)
        self._threads: list[threading.Thread] = []
        self.batch_sizes: list[int] = []  # frames per round (what batching achieved)

    def _stop_sources(self) -> None:
        for s in self.streams:
            s.source.stop()

    # ---- threads ---------------------------------------------------------------------------
    def _capture(self, s: Stream) -> None:
        try:
            while not self._stop.is_set() and not s.ended:
                frame = s.source.read()
                if frame is None:
                    break
                s.stats.captured += 1
                item = (frame, time.perf_counter())
                if isinstance(s.inbox, Mailbox):
                    if s.inbox.put(item):
                        s.stats.dropped += 1
                else:
                    while not self._stop.is_set() and not s.ended:
                        try:
                            s.inbox.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                if self.max_frames is not None and s.stats.captured >= self.max_frames and not s.source.spec.live:
                    break
        except Exception as exc:
            s.error = f"{type(exc).__name__}: {exc}"
        finally:
            s.stats.skipped = s.source.skipped
            s.stats.reconnects = s.source.reconnected
            if isinstance(s.inbox, Mailbox):
                if s.inbox.put(_END):  # the end marker replaced a frame inference never took: dropped
                    s.stats.dropped += 1
            else:
                self._put_end(s)

    def _put_end(self, s: Stream) -> None:
        assert isinstance(s.inbox, queue.Queue)
        while not s.ended:  # an ended stream's inbox is read no more
            try:
                s.inbox.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    try:
                        s.inbox.get_nowait()
                    except queue.Empty:
                        pass

    def _round(self) -> list[tuple[Stream, Frame, float]]:
        """The frame each stream has ready, waiting WAIT seconds in all (not per stream: streams
        that stall or reconnect cost a round one wait, however many there are)."""
        got = []
        deadline = time.perf_counter() + WAIT
        for s in self.streams:
            if s.ended:
                continue
            try:
                item = s.inbox.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                continue  # not ready: this round goes on without it
            if item is _END:
                s.ended = True
                continue
            frame, t_cap = cast(Tuple[Frame, float], item)
            got.append((s, frame, t_cap))
        return got

    def _infer(self) -> None:
        det, runner = self.detector, self.detector.runner
        try:
            with runner:
                while not all(s.ended for s in self.streams):
                    if self._stop.is_set():
                        break
                    batch = self._round()
                    if not batch:
                        continue
                    self.batch_sizes.append(len(batch))
                    t0 = time.perf_counter()
                    prepared = []
                    for item in list(batch):
                        try:
                            prepared.append(det.preprocess(item[1].image))
                        except Exception as exc:  # this stream's frame, not the round
                            self._fail(item[0], exc)
                            batch.remove(item)
                    if not batch:
                        continue
                    t1 = time.perf_counter()
                    maps = self._forward(batch, [inputs for _, inputs in prepared])
                    t2 = time.perf_counter()
                    for (s, frame, t_cap), (levels, _), m in zip(batch, prepared, maps):
                        if m is None:
                            continue
                        s.stats.add("preprocess", (t1 - t0) / len(batch))
                        s.stats.add("inference", (t2 - t1) / len(batch))
                        self._put_done((s, frame, t_cap, levels, m))
                    self.stats.add("inference", t2 - t1)  # one batched inference
        finally:
            self._put_done(_END)

    def _forward(
        self, batch: list[tuple[Stream, Frame, float]], inputs: list[list[np.ndarray]]
    ) -> list[list[dict[str, np.ndarray]] | None]:
        """The round's maps in one batched inference; if it fails, frame by frame, so that only the
        stream whose frame fails (a frame size the engine has no profile for) ends."""
        try:
            return list(batched_forward(self.detector.runner, inputs))
        except Exception:
            if len(batch) == 1:
                raise
        out: list[list[dict[str, np.ndarray]] | None] = []
        first: Exception | None = None
        for (s, _, _), x in zip(batch, inputs):
            try:
                out.append(batched_forward(self.detector.runner, [x])[0])
            except Exception as exc:
                self._fail(s, exc)
                out.append(None)
                first = first or exc
        if first is not None and all(m is None for m in out):
            raise first  # not a stream's problem: the runner's
        return out

    def _fail(self, s: Stream, exc: BaseException) -> None:
        """End one stream with its error; the others go on."""
        s.error = f"{type(exc).__name__}: {exc}"
        s.ended = True
        s.source.stop()

    def _put_done(self, item: object) -> None:
        while True:
            try:
                self._done.put(item, timeout=0.1)
                return
            except queue.Full:
                if not any(t.is_alive() for t in self._threads if t.name == "overfeat-multi-post"):
                    return

    def _post(self) -> None:
        det = self.detector
        while True:
            item = self._done.get()
            if item is _END:
                return
            s, frame, t_cap, levels, maps = cast(
                Tuple[Stream, Frame, float, List[ScaleLevel], List[Dict[str, np.ndarray]]], item
            )
            if self.max_frames is not None and s.stats.frames >= self.max_frames:
                continue  # a live stream past its --max-frames while a slower one catches up
            t0 = time.perf_counter()
            d = det.refine(frame.image, det.postprocess(levels, maps))
            for step in s.steps:
                d = step(frame.image, d)
            d.metadata.update(stream=s.name, frame=frame.index)
            text = f"{s.name}  {self.overlay}  {s.stats.fps():.1f} FPS" if self.overlay else s.name
            annotated = draw_detections(frame.image, d, det.spec.class_names, text)
            t1 = time.perf_counter()
            for sink in s.sinks:
                sink.write(frame.index, frame.timestamp, annotated, d)
            t2 = time.perf_counter()
            s.stats.add("postprocess", t1 - t0)
            s.stats.add("sink", t2 - t1)
            s.stats.add("latency", t2 - t_cap)
            self.stats.add("latency", t2 - t_cap)  # every stream's, for the live view
            s.stats.frame_done(len(d))
            self.stats.frame_done(len(d))
            if self.max_frames is not None and all(x.stats.frames >= self.max_frames or x.ended for x in self.streams):
                self.stop("max frames")

    # ---- running -----------------------------------------------------------------------------
    def start(self) -> None:
        for s in self.streams:
            self._threads.append(
                threading.Thread(target=self._capture, args=(s,), name=f"overfeat-capture-{s.name}", daemon=True)
            )
        self._threads.append(
            threading.Thread(target=self._guard(self._infer), name="overfeat-multi-infer", daemon=True)
        )
        self._threads.append(threading.Thread(target=self._guard(self._post), name="overfeat-multi-post", daemon=True))
        for t in self._threads:
            t.start()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads[-2:])

    def join(self) -> Stats:
        """Wait for inference and output, then end the captures (a live one would read forever);
        re-raise the first error inference or output hit (a stream's own error is its ``error``)."""
        for t in self._threads[-2:]:
            while t.is_alive():
                t.join(0.1)
        self.stop_reason = self.stop_reason or "end of input"
        self._stop.set()
        self._stop_sources()
        deadline = time.perf_counter() + 2.0  # for every capture together, not each
        for s, t in zip(self.streams, self._threads[:-2]):
            t.join(max(0.0, deadline - time.perf_counter()))
            s.hung = t.is_alive()  # inside a read that does not return: its source is not closed under it
        if self._errors:
            raise self._errors[0]
        return self.stats


def batched_forward(runner: object, inputs: list[list[np.ndarray]]) -> list[list[dict[str, np.ndarray]]]:
    """Maps of every frame's every level (batch index dropped), running each (level, shape) group of
    frames as one batch: ``inputs[f][k]`` is frame f's level k, (1, 3, H, W)."""
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for f, levels in enumerate(inputs):
        for k, x in enumerate(levels):
            groups.setdefault((k, x.shape), []).append(f)
    step = getattr(runner, "max_batch", None) or max(len(v) for v in groups.values())
    batches, owners = [], []
    for (k, _), frames in groups.items():
        for i in range(0, len(frames), step):
            part = frames[i : i + step]
            batches.append(np.concatenate([inputs[f][k] for f in part]))
            owners.append((k, part))
    outs = runner.run_many(batches)  # type: ignore[attr-defined]
    maps: list[list[dict[str, np.ndarray]]] = [[{} for _ in levels] for levels in inputs]
    for (k, part), out in zip(owners, outs):
        for j, f in enumerate(part):
            maps[f][k] = {name: v[j] for name, v in out.items()}
    return maps
