"""[no torch] The streaming loop: capture -> preprocess -> infer -> postprocess + sinks, in threads.

Bounded queues join the stages, so a slow stage slows the ones before it instead of filling
memory. A live source feeds a one-slot mailbox instead: a new frame replaces one that inference
has not taken yet (counted as dropped), so what is shown is never more than a frame or two old.
Files and folders use a blocking queue: every frame is processed, in order.

Inference can run in several workers, each with its own runner (``runners``; e.g. two ONNX
Runtime sessions of one thread each on a 2-core CPU): frames go to whichever worker is free and
the output stage puts them back in capture order. One worker per frame means no barrier between
cores inside an operator, so the other stages' CPU time delays one worker, not every core's.

Stopping (``stop()``: SIGINT, SIGTERM, ``--duration``, ``--max-frames``, end of input) stops the
capture; the frame already in inference finishes and is written; then every thread ends and the
caller closes the sinks. An exception in any stage stops the others and is re-raised by :meth:`run`.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import List, Tuple, cast

import numpy as np

from overfeat_edge.pipeline.detector import Detector
from overfeat_edge.pipeline.draw import draw_detections
from overfeat_edge.runtime.base import Runner
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.stream.sources import Frame, Source
from overfeat_edge.stream.stats import Stats
from overfeat_edge.types import ScaleLevel

_END = object()


class Mailbox:
    """A one-slot queue whose ``put`` replaces the unread item; returns whether it replaced one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: object | None = None
        self._full = False

    def put(self, item: object) -> bool:
        with self._cond:
            replaced = self._full and self._item is not _END
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: float) -> object:
        with self._cond:
            if not self._full and not self._cond.wait_for(lambda: self._full, timeout):
                raise queue.Empty
            item, self._item, self._full = self._item, None, False
            return item


@dataclass
class _Inferred:
    seq: int
    frame: Frame
    levels: list[ScaleLevel]
    maps: list[dict[str, np.ndarray]]
    t_captured: float


class Stoppable:
    """What the loops' threads share: one stop flag with its first reason, and the errors that
    stopped a thread (re-raised by the loop once every thread has ended)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.stop_reason = ""

    def _stop_sources(self) -> None:
        raise NotImplementedError

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()
        self._stop_sources()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def join(self) -> Stats:
        raise NotImplementedError

    def run(self, duration: float | None = None, on_tick: Callable[[], None] | None = None) -> Stats:
        """Start, wait (calling ``on_tick`` every 50 ms), stop after ``duration`` seconds.

        A KeyboardInterrupt (Ctrl-C, or SIGTERM as the CLI maps it) while waiting stops the loop
        cleanly, as :meth:`stop` does (the frame in flight is finished and written; no thread is left
        running), and is raised again once every stage has ended, so the caller closes its sinks.
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

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                self._errors.append(exc)
                self.stop("error")

        return run


class StreamLoop(Stoppable):
    def __init__(
        self,
        source: Source,
        detector: Detector,
        sinks: list[Sink],
        stats: Stats | None = None,
        max_frames: int | None = None,
        overlay: str = "",
        queue_size: int = 4,
        runners: list[Runner] | None = None,
    ) -> None:
        self.source, self.detector, self.sinks = source, detector, sinks
        self.runners = runners or [detector.runner]
        self.stats = stats or Stats()
        self.max_frames = max_frames
        self.overlay = overlay
        self.live = source.spec.live
        self._in: Mailbox | queue.Queue[object] = Mailbox() if self.live else queue.Queue(queue_size)
        self._pre: queue.Queue[object] = queue.Queue(len(self.runners) + 1)
        self._mid: queue.Queue[object] = queue.Queue(len(self.runners) + 1)
        super().__init__()
        self._stages: dict[str, list[threading.Thread]] = {}  # stage -> its threads (inference: one per worker)

    # ---- control -------------------------------------------------------------------------
    def _stop_sources(self) -> None:
        self.source.stop()

    def _put(self, q: queue.Queue[object], item: object, consumer: str) -> None:
        """Blocking put that gives up when every thread of the consuming stage has died."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                stage = self._stages.get(consumer, [])
                if stage and not any(t.is_alive() for t in stage):
                    return

    # ---- stages ----------------------------------------------------------------------------
    def _capture(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    if not self._stop.is_set():
                        self.stop_reason = "end of input"
                    break
                self.stats.add("capture", time.perf_counter() - t0)
                self.stats.captured += 1
                item = (frame, time.perf_counter())
                if isinstance(self._in, Mailbox):
                    if self._in.put(item):
                        self.stats.dropped += 1
                else:
                    self._put(self._in, item, "pre")
                if not self.live and self.max_frames is not None and self.stats.captured >= self.max_frames:
                    self.stop_reason = "max frames"
                    break
        finally:
            self.stats.skipped = self.source.skipped
            self.stats.reconnects = self.source.reconnected
            if isinstance(self._in, Mailbox):
                if self._in.put(_END):  # the end marker replaced a frame inference never took: dropped
                    self.stats.dropped += 1
            else:
                self._put(self._in, _END, "pre")

    def _preprocess(self) -> None:
        det = self.detector
        seq = 0
        try:
            while True:
                try:
                    item = self._in.get(timeout=0.1)
                except queue.Empty:
                    continue  # the capture thread always ends its input with _END
                if item is _END:
                    break
                frame, t_cap = cast(Tuple[Frame, float], item)
                t0 = time.perf_counter()
                levels, inputs = det.preprocess(frame.image)
                self.stats.add("preprocess", time.perf_counter() - t0)
                self._put(self._pre, (seq, frame, t_cap, levels, inputs), "infer")
                seq += 1
        finally:
            for _ in self.runners:  # one end marker per inference worker
                self._put(self._pre, _END, "infer")

    def _infer(self, runner: Runner) -> None:
        det = self.detector
        try:
            with runner:  # activated once for the worker's life: a GPU backend allocates here
                while True:
                    item = self._pre.get()
                    if item is _END:
                        break
                    seq, frame, t_cap, levels, inputs = cast(
                        Tuple[int, Frame, float, List[ScaleLevel], List[np.ndarray]], item
                    )
                    t1 = time.perf_counter()
                    maps = det.forward(inputs, runner)
                    self.stats.add("inference", time.perf_counter() - t1)
                    self._put(self._mid, _Inferred(seq, frame, levels, maps, t_cap), "post")
        finally:
            self._put(self._mid, _END, "post")

    def _in_order(self) -> Iterator[_Inferred]:
        """The inference workers' results in capture order (they finish out of order with several)."""
        pending: dict[int, _Inferred] = {}
        next_seq, ended = 0, 0
        while ended < len(self.runners):
            item = self._mid.get()
            if item is _END:
                ended += 1
                continue
            assert isinstance(item, _Inferred)
            pending[item.seq] = item
            while next_seq in pending:
                yield pending.pop(next_seq)
                next_seq += 1
        # a worker that died leaves a gap: what is left goes out in order
        for seq in sorted(pending):
            yield pending[seq]

    def _post(self) -> None:
        det, names = self.detector, self.detector.spec.class_names
        for item in self._in_order():
            if self.max_frames is not None and self.stats.frames >= self.max_frames:
                continue  # a frame inferred after the last one asked for: drained, not written
            t0 = time.perf_counter()
            d = det.refine(item.frame.image, det.postprocess(item.levels, item.maps))
            text = f"{self.overlay}  {self.stats.fps():.1f} FPS" if self.overlay else ""
            annotated = draw_detections(item.frame.image, d, names, text)
            t1 = time.perf_counter()
            for sink in self.sinks:
                sink.write(item.frame.index, item.frame.timestamp, annotated, d)
            t2 = time.perf_counter()
            self.stats.add("postprocess", t1 - t0)
            self.stats.add("sink", t2 - t1)
            self.stats.add("latency", t2 - item.t_captured)
            self.stats.frame_done(len(d))
            if self.max_frames is not None and self.stats.frames >= self.max_frames:
                self.stop("max frames")

    # ---- running -----------------------------------------------------------------------------
    def start(self) -> None:
        stages: list[tuple[str, str, Callable[[], None]]] = [
            ("capture", "capture", self._capture),
            ("pre", "pre", self._preprocess),
        ]
        for k, runner in enumerate(self.runners):
            stages.append(("infer", f"infer{k}", functools.partial(self._infer, runner)))
        stages.append(("post", "post", self._post))
        for stage, name, fn in stages:
            t = threading.Thread(target=self._guard(fn), name=f"overfeat-{name}", daemon=True)
            self._stages.setdefault(stage, []).append(t)
        for t in self._threads:
            t.start()

    @property
    def _threads(self) -> list[threading.Thread]:
        """Every stage's threads, in the order they start."""
        return [t for stage in self._stages.values() for t in stage]

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self) -> Stats:
        """Wait for every stage; re-raise the first error a stage hit."""
        for t in self._threads:
            while t.is_alive():
                t.join(0.1)
        if self._errors:
            raise self._errors[0]
        return self.stats
