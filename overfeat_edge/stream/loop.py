"""[no torch] The stream loop: one or many sources, batched inference, outputs per stream, in threads.

One source is a list of one. Each :class:`Stream` has its own capture thread (its reconnects, and
a one-slot latest-frame mailbox for a live source, where a new frame replaces one not yet taken,
counted as dropped; or a small blocking queue for a file or folder: every frame, in order), its
own steps after detection (a tracker), sinks and statistics.

Inference runs in one or more workers, each with its own runner (two ONNX Runtime sessions of one
thread each on a 2-core CPU, say). A worker takes a *round*: the frame each stream has ready,
waiting :data:`WAIT` seconds in all (a stream that stalls, fails or reconnects is simply not in the
round), preprocesses them, stacks the inputs of every pyramid level that have one shape into one
batch (cut to the runner's ``max_batch``) and runs the round in one ``run_levels``. Rounds are
taken one worker at a time, so each stream's frames carry a sequence number; the post thread puts
them back in that order per stream, decodes, merges, refines (a cascade's crop stages), runs the
stream's steps, draws only if one of its sinks wants the frame (``Sink.needs_frame``) and writes.

A stream never holds up another, and a stream that fails ends alone: an error in its capture,
its preprocessing or its frames' inference (a frame size the engine has no profile for) is its
``error``; the others go on. An error of the runner itself (every frame of a round fails) or of a
sink stops the loop and is raised by :meth:`StreamLoop.join`.

Stopping (:meth:`StreamLoop.stop`: SIGINT, SIGTERM, ``duration``, ``max_frames``, end of input)
stops the captures; frames already taken are finished and written; then every thread ends and
the caller closes the sinks.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Tuple, cast

import numpy as np

from overfeat_edge.pipeline.cascade import with_active_stages
from overfeat_edge.pipeline.detector import Detector, Step
from overfeat_edge.pipeline.draw import LabelAnnotator, banner_text
from overfeat_edge.runtime.base import Runner
from overfeat_edge.stream.batch import Maps, batched_forward
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.stream.sources import Frame, Source
from overfeat_edge.stream.stats import CAPTURE, INFERENCE, LATENCY, POSTPROCESS, PREPROCESS, SINK, Stats
from overfeat_edge.types import ScaleLevel

END = object()  # the one end marker: a capture's last item, an inference worker's last result
WAIT = 0.02  # seconds a round waits for the streams' next frames, all streams together


class Mailbox:
    """A one-slot queue whose ``put`` replaces the unread item; returns whether it replaced one.
    The end marker never replaces a frame: it is read after the last one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: object | None = None
        self._full = False
        self._ended = False

    def put(self, item: object) -> bool:
        with self._cond:
            if item is END:
                self._ended = True
                self._cond.notify()
                return False
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: float) -> object:
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._ended, timeout):
                raise queue.Empty
            if not self._full:
                return END
            item, self._item, self._full = self._item, None, False
            return item


@dataclass
class Stream:
    """One source with its own sinks, steps after detection (a tracker) and statistics."""

    name: str
    source: Source
    sinks: list[Sink] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    queue_size: int = 4
    error: str = ""  # why it ended early (its own failure; the other streams went on)
    ended: bool = False
    hung: bool = False  # its capture was still inside a read at the end (its source is not closed under it)

    def __post_init__(self) -> None:
        self.inbox: Mailbox | queue.Queue[object] = Mailbox() if self.source.live else queue.Queue(self.queue_size)
        self.taken = 0  # sequence number of the next frame a round takes
        self.written = 0  # sequence number of the next frame the post stage writes
        self.pending: dict[int, _Done] = {}


@dataclass
class _Done:
    """One taken frame after inference; ``maps`` None when its stream failed on it (a gap to skip)."""

    stream: Stream
    seq: int
    frame: Frame
    t_captured: float
    levels: list[ScaleLevel]
    maps: Optional[Maps]


class StreamLoop:
    def __init__(
        self,
        streams: list[Stream],
        detector: Detector,
        *,
        runners: list[Runner] | None = None,
        max_frames: int | None = None,
        overlay: str = "",
    ) -> None:
        self.streams, self.detector = streams, detector
        self.runners = runners or [detector.runner]
        self.max_frames, self.overlay = max_frames, overlay
        self._annotator = LabelAnnotator(detector.spec.class_names)  # asked for only by frame sinks
        self.stats = Stats()  # every stream together (a live view's figures)
        self.batch_sizes: list[int] = []  # frames per round: what batching achieved
        self.stop_reason = ""
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._take = threading.Lock()  # one worker takes a round at a time
        self._done: queue.Queue[object] = queue.Queue(2 * len(self.runners) + 2)
        self._captures: list[threading.Thread] = []
        self._workers: list[threading.Thread] = []  # inference workers, then the post thread

    # ---- control ---------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """Stop reading (the first reason is kept); frames already taken are finished and written."""
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()
        for s in self.streams:
            s.source.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _fail(self, s: Stream, exc: BaseException) -> None:
        """End one stream with its error; the others go on."""
        s.error = s.error or f"{type(exc).__name__}: {exc}"
        s.ended = True
        s.source.stop()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                self._errors.append(exc)
                self.stop("error")

        return run

    # ---- capture, one thread per stream ----------------------------------------------------
    def _capture(self, s: Stream) -> None:
        try:
            while not self._stop.is_set() and not s.ended:
                t0 = time.perf_counter()
                frame = s.source.read()
                if frame is None:
                    break
                for st in (s.stats, self.stats):
                    st.add(CAPTURE, time.perf_counter() - t0)
                    st.captured += 1
                if self._offer(s, (frame, time.perf_counter())):
                    s.stats.dropped += 1
                    self.stats.dropped += 1
                if self.max_frames is not None and s.stats.captured >= self.max_frames and not s.source.live:
                    break
        except Exception as exc:  # this stream's source: it ends alone
            s.error = f"{type(exc).__name__}: {exc}"
        finally:
            s.stats.skipped, s.stats.reconnects = s.source.skipped, s.source.reconnected
            self._offer(s, END, end=True)

    def _offer(self, s: Stream, item: object, end: bool = False) -> bool:
        """Into the stream's inbox; True when it replaced a frame not yet taken (a live source)."""
        if isinstance(s.inbox, Mailbox):
            return s.inbox.put(item)
        while not s.ended:  # an ended stream's inbox is read no more
            try:
                s.inbox.put(item, timeout=0.1)
                return False
            except queue.Full:
                if self._stop.is_set():
                    if not end:
                        return False
                    try:  # make room for the end marker: the frame it replaces is not wanted now
                        s.inbox.get_nowait()
                    except queue.Empty:
                        pass
        return False

    # ---- inference workers -----------------------------------------------------------------
    def _round(self) -> list[tuple[Stream, int, Frame, float]]:
        """The frame each stream has ready, waiting WAIT seconds in all (streams that stall or
        reconnect cost a round one wait, however many there are), each with its sequence number."""
        got = []
        deadline = time.perf_counter() + WAIT
        for s in self.streams:
            if s.ended:
                continue
            try:
                item = s.inbox.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                continue
            if item is END:
                s.ended = True
                continue
            frame, t_cap = cast(Tuple[Frame, float], item)
            got.append((s, s.taken, frame, t_cap))
            s.taken += 1
        return got

    def _worker(self, runner: Runner) -> None:
        try:
            with runner:  # activated once for the worker's life: a GPU backend allocates here
                while not self._stop.is_set():
                    with self._take:
                        if all(s.ended for s in self.streams):
                            break
                        batch = self._round()
                    if batch:
                        self._infer_round(runner, batch)
        finally:
            self._put_done(END)

    def _infer_round(self, runner: Runner, batch: list[tuple[Stream, int, Frame, float]]) -> None:
        det = self.detector
        self.batch_sizes.append(len(batch))
        t0 = time.perf_counter()
        ready: list[tuple[Stream, int, Frame, float, list[ScaleLevel]]] = []
        inputs: list[list[np.ndarray]] = []
        for s, seq, frame, t_cap in batch:
            try:
                levels, x = det.preprocess(frame.image)
            except Exception as exc:  # this stream's frame, not the round
                self._fail(s, exc)
                self._put_done(_Done(s, seq, frame, t_cap, [], None))
                continue
            ready.append((s, seq, frame, t_cap, levels))
            inputs.append(x)
        t1 = time.perf_counter()
        maps = self._forward(runner, [r[0] for r in ready], inputs) if ready else []
        t2 = time.perf_counter()
        if ready:
            self.stats.add(PREPROCESS, t1 - t0)
            self.stats.add(INFERENCE, t2 - t1)  # one batched inference
        for (s, seq, frame, t_cap, levels), m in zip(ready, maps):
            s.stats.add(PREPROCESS, (t1 - t0) / len(ready))
            s.stats.add(INFERENCE, (t2 - t1) / len(ready))
            self._put_done(_Done(s, seq, frame, t_cap, levels, m))

    def _forward(self, runner: Runner, streams: list[Stream], inputs: list[list[np.ndarray]]) -> list[Optional[Maps]]:
        """The round's maps in one batched inference; if it fails, frame by frame, so that only the
        stream whose frame fails ends. Every frame failing is the runner's error: raised."""
        try:
            return list(batched_forward(runner, inputs))
        except Exception:
            if len(inputs) == 1 and len(self.streams) == 1:
                raise
        out: list[Optional[Maps]] = []
        first: Exception | None = None
        for s, x in zip(streams, inputs):
            try:
                out.append(batched_forward(runner, [x])[0])
            except Exception as exc:
                self._fail(s, exc)
                out.append(None)
                first = first or exc
        if first is not None and all(m is None for m in out) and len(out) > 1:
            raise first  # not a stream's problem: the runner's
        return out

    def _put_done(self, item: object) -> None:
        post = self._workers[-1]
        while True:
            try:
                self._done.put(item, timeout=0.1)
                return
            except queue.Full:
                if not post.is_alive():
                    return

    # ---- post: per stream, in order ----------------------------------------------------------
    def _post(self) -> None:
        ended = 0
        while ended < len(self.runners):
            item = self._done.get()
            if item is END:
                ended += 1
                continue
            assert isinstance(item, _Done)
            s = item.stream
            s.pending[item.seq] = item
            while s.written in s.pending:
                self._write(s.pending.pop(s.written))
                s.written += 1
        for s in self.streams:  # a worker that died leaves a gap: what is left goes out in order
            for seq in sorted(s.pending):
                self._write(s.pending.pop(seq))

    def _write(self, item: _Done) -> None:
        s, frame, det = item.stream, item.frame, self.detector
        if item.maps is None or (self.max_frames is not None and s.stats.frames >= self.max_frames):
            return  # a failed frame, or a live stream past max_frames while a slower one catches up
        t0 = time.perf_counter()
        d = det.refine(frame.image, det.postprocess(item.levels, item.maps))
        for step in s.steps:
            d = step(frame.image, d)
        d.metadata.update(stream=s.name, frame=frame.index, time=frame.wall)
        if frame.path is not None:
            d.metadata["file"] = frame.path
        image = frame.image
        if any(k.needs_frame for k in s.sinks):  # a JSONL- or MQTT-only run draws nothing
            head = f"{s.name}  " if len(self.streams) > 1 else ""
            image = self._annotator.annotate(
                frame.image, d, text=banner_text(f"{head}{self.overlay}".strip(), s.stats.fps())
            )
        t1 = time.perf_counter()
        for sink in s.sinks:
            sink.write(frame.index, frame.timestamp, image if sink.needs_frame else frame.image, d)
        t2 = time.perf_counter()
        for st in (s.stats, self.stats):
            st.add(POSTPROCESS, t1 - t0)
            st.add(SINK, t2 - t1)
            st.add(LATENCY, t2 - item.t_captured)
            st.frame_done(len(d))
        if self.max_frames is not None and all(x.stats.frames >= self.max_frames or x.ended for x in self.streams):
            self.stop("max frames")

    # ---- running -----------------------------------------------------------------------------
    def start(self) -> None:
        for s in self.streams:
            t = threading.Thread(target=self._capture, args=(s,), name=f"overfeat-capture-{s.name}", daemon=True)
            self._captures.append(t)
        for k, runner in enumerate(self.runners):
            fn = self._guard(functools.partial(self._worker, runner))
            self._workers.append(threading.Thread(target=fn, name=f"overfeat-infer{k}", daemon=True))
        post = with_active_stages(self._post, self.detector.steps)  # the cascade's stage runners, held
        self._workers.append(threading.Thread(target=self._guard(post), name="overfeat-post", daemon=True))
        for t in [*self._captures, *self._workers]:
            t.start()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._workers)

    def run(self, duration: float | None = None, on_tick: Callable[[], None] | None = None) -> Stats:
        """Start, wait (calling ``on_tick`` every 50 ms), stop after ``duration`` seconds.

        A KeyboardInterrupt while waiting stops the loop as :meth:`stop` does and is raised again
        once every stage has ended, so the caller closes its sinks.
        """
        self.start()
        t_end = time.perf_counter() + duration if duration else None
        try:
            while self.alive():
                time.sleep(0.05)
                if t_end is not None and time.perf_counter() >= t_end:
                    self.stop("duration")
                if on_tick is not None:
                    on_tick()
        except KeyboardInterrupt:
            self.stop("SIGINT")
            self.join()
            raise
        return self.join()

    def join(self) -> Stats:
        """Wait for inference and output, then end the captures (a live one would read forever);
        re-raise the first error of a worker or the post stage (a stream's own error is its ``error``)."""
        for t in self._workers:
            while t.is_alive():
                t.join(0.1)
        self.stop_reason = self.stop_reason or "end of input"
        self.stop(self.stop_reason)
        deadline = time.perf_counter() + 2.0  # for every capture together, not each
        for s, t in zip(self.streams, self._captures):
            t.join(max(0.0, deadline - time.perf_counter()))
            s.hung = t.is_alive()
        for s in self.streams:
            self.stats.skipped += s.stats.skipped
            self.stats.reconnects += s.stats.reconnects
        if self._errors:
            raise self._errors[0]
        return self.stats
