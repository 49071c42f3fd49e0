"""A new output kind written the way the next round's RTSP output will be: one module with
``check_output`` and ``open_output``, plus one line in ``stream/plan.py``'s OUTPUTS (the test adds
that line). It keeps what it was sent instead of serving it."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.types import Detections

SENT: dict[str, list[tuple[int, tuple[int, ...]]]] = {}  # uri -> (frame index, frame shape) per frame


class RtspSkeleton(Sink):
    needs_frame: ClassVar[bool] = True  # a frame output: it gets the annotated picture

    def __init__(self, uri: str, fps: float) -> None:
        self.uri, self.fps = uri, fps
        SENT[uri] = []

    def describe(self) -> str:
        return self.uri

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        SENT[self.uri].append((index, frame.shape))


def check_output(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.hostname != "127.0.0.1" or not parts.port:
        raise InputError(f"{uri}: give rtsp://127.0.0.1:PORT/PATH")


def open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> Sink:
    return RtspSkeleton(uri, fps)
