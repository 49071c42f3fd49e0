"""A stream loop whose runner blocks forever after a few frames (a backend stuck inside its
inference call), under run_with_signals with a short grace period. Prints ``ready`` once frames
are written; the test then sends SIGTERM and expects the watchdog to close the JSONL and exit 130.

    python stuck_loop.py VIDEO JSONL
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from overfeat_edge.pipeline.detector import Detector
from overfeat_edge.runtime import Runner, load_runner
from overfeat_edge.stream.control import run_with_signals
from overfeat_edge.stream.loop import Stream, StreamLoop
from overfeat_edge.stream.sinks import JsonlSink
from overfeat_edge.stream.sources import Source, parse_source


class Blocking(Runner):
    """A real ONNX Runtime session that, from its fourth call on, waits on an event nobody sets."""

    def __init__(self) -> None:
        self.inner = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1)
        self.spec, self.name, self.calls = self.inner.spec, "blocking", 0

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.inner.run(batch)

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        self.calls += 1
        if self.calls > 3:
            threading.Event().wait()  # a real blocking call that no stop request reaches
        return self.inner.run_levels(batches)


class Ready(JsonlSink):
    def write(self, *args: object) -> None:
        super().write(*args)  # type: ignore[arg-type]
        if self.frames == 3:
            self.file.flush()
            print("ready", flush=True)


def main() -> None:
    video, jsonl = sys.argv[1:3]
    det = Detector(Blocking())
    sink = Ready(jsonl, det.spec.class_names)
    loop = StreamLoop([Stream("clip", Source(parse_source(video)), [sink])], det, overlay="")

    def stuck() -> None:
        print("watchdog: closing the outputs", file=sys.stderr, flush=True)
        sink.close()

    run_with_signals(loop, None, on_stuck=stuck, grace=1.0)
    print("the loop ended by itself", flush=True)  # never: the runner blocks


if __name__ == "__main__":
    main()
