"""[no torch] Sources, written the way jetson-inference's videoSource takes them.

=============================  ============  ====================================================
URI                            kind          opened with
=============================  ============  ====================================================
``0``, ``/dev/video0``,        camera (live) OpenCV V4L2 (``CAP_V4L2``) with width/height/fps requests
``v4l2:///dev/video0``
``csi://0``                    csi (live)    a GStreamer ``nvarguscamerasrc`` pipeline (Jetson)
``... ! appsink``              gstreamer     the pipeline string as given (``CAP_GSTREAMER``)
``rtsp://``, ``http(s)://``,   stream (live) OpenCV's FFmpeg backend
``rtmp://``, ``udp://``
``video.mp4``, ``file://...``  file          OpenCV's FFmpeg backend; every frame, in order
``folder/``, ``'*.jpg'``       images        ``cv2.imread``; unreadable files skipped and counted
=============================  ============  ====================================================

A live source that stops delivering reconnects with exponential backoff (bounded; each attempt
logged); a file or folder ends. Frames come out as :class:`Frame` (index, timestamp in seconds,
BGR uint8 image: grey, BGRA and 16-bit frames are converted).
"""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from overfeat_edge import MAX_PIXELS
from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES, read_image
from overfeat_edge.pipeline.preprocess import to_bgr8

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (counts dropped frames too)
    timestamp: float  # seconds: the source's own clock for files, capture time for live sources
    image: np.ndarray  # (H, W, 3) uint8 BGR


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # camera, csi, gstreamer, stream, file, images
    target: str | int
    live: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    paths: tuple[Path, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        return f"{self.kind} {self.target}" + (" (live)" if self.live else "")


def has_gstreamer() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (pip wheels: no; JetPack's: yes)."""
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


def _need_gstreamer(uri: str) -> None:
    if not has_gstreamer():
        raise InputError(
            f"{uri}: this OpenCV has no GStreamer support (pip's opencv-python wheels are built without it). "
            "On a Jetson use JetPack's OpenCV: pip uninstall opencv-python opencv-python-headless, then "
            "sudo apt install python3-opencv (or build OpenCV with -D WITH_GSTREAMER=ON)"
        )


def csi_pipeline(sensor: int, width: int, height: int, fps: float) -> str:
    """The usual Jetson CSI camera pipeline into OpenCV's appsink (BGR, newest frame only)."""
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={round(fps)}/1 ! "
        "nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


def parse_source(uri: str, width: int | None = None, height: int | None = None, fps: float | None = None) -> SourceSpec:
    """What kind of source ``uri`` names; checks that files and folders exist."""
    uri = uri.strip()
    kw: dict[str, Any] = {"width": width, "height": height, "fps": fps}
    if re.fullmatch(r"\d+", uri):
        return SourceSpec("camera", int(uri), True, **kw)
    m = re.fullmatch(r"(?:v4l2://)?(/dev/video\d+)", uri)
    if m:
        if not Path(m[1]).exists():
            raise InputError(f"camera not found: {m[1]} (no such device; see 'ls /dev/video*')")
        return SourceSpec("camera", m[1], True, **kw)
    m = re.fullmatch(r"csi://(\d+)", uri)
    if m:
        return SourceSpec("csi", int(m[1]), True, **kw)
    if "!" in uri:
        return SourceSpec("gstreamer", uri, True, **kw)
    if uri.lower().startswith(STREAM_SCHEMES):
        return SourceSpec("stream", uri, True, **kw)
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if path.is_dir():
        paths = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not paths:
            raise InputError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
        return SourceSpec("images", str(path), False, paths=paths, **kw)
    if any(ch in uri for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(uri, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"no image matches {uri!r}")
        return SourceSpec("images", uri, False, paths=tuple(found), **kw)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return SourceSpec("images", str(path), False, paths=(path,), **kw)
        return SourceSpec("file", str(path), False, **kw)
    raise InputError(
        f"source not found: {uri!r} (expected a video file, an image folder or glob, a camera index, "
        "/dev/videoN, csi://N, rtsp://..., http://..., or a GStreamer pipeline)"
    )


class Source:
    """Frames from one :class:`SourceSpec`. ``read()`` returns None at the end (or when stopped)."""

    def __init__(
        self,
        spec: SourceSpec,
        reconnects: int = 5,
        backoff: float = 0.5,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.reconnects = reconnects
        self.backoff = backoff
        self.log = log or (lambda _msg: None)
        self.cap: cv2.VideoCapture | None = None
        self.index = 0
        self.skipped = 0  # unreadable images or frames
        self.reconnected = 0
        self.stopped = False
        self._t0 = time.monotonic()
        if spec.kind != "images":
            self.cap = self._open()
            if self.cap is None:
                why = {
                    "camera": "no such camera, or another program holds it (see 'ls /dev/video*')",
                    "stream": "the server is unreachable or sends no video OpenCV's FFmpeg can decode (5 s timeout)",
                    "file": "not a video OpenCV's FFmpeg can decode",
                }.get(spec.kind, "OpenCV could not open it")
                raise InputError(f"cannot open {spec.kind} {spec.target}: {why}")

    # ---- opening -------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        s = self.spec
        if s.kind == "camera":
            cap = cv2.VideoCapture(s.target, cv2.CAP_V4L2) if isinstance(s.target, str) else None
            if cap is None or not cap.isOpened():
                cap = cv2.VideoCapture(s.target)  # an index: whatever backend the platform has
            for prop, v in ((cv2.CAP_PROP_FRAME_WIDTH, s.width), (cv2.CAP_PROP_FRAME_HEIGHT, s.height)):
                if v:
                    cap.set(prop, v)
            if s.fps:
                cap.set(cv2.CAP_PROP_FPS, s.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a queue of stale ones
        elif s.kind == "csi":
            _need_gstreamer(f"csi://{s.target}")
            pipe = csi_pipeline(int(s.target), s.width or 1280, s.height or 720, s.fps or 30)
            cap = cv2.VideoCapture(pipe, cv2.CAP_GSTREAMER)
        elif s.kind == "gstreamer":
            _need_gstreamer("a GStreamer pipeline")
            cap = cv2.VideoCapture(str(s.target), cv2.CAP_GSTREAMER)
        elif s.kind == "stream":  # bounded waits: a dead server must not hang the loop
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
            cap = cv2.VideoCapture(str(s.target), cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(str(s.target), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _reconnect(self) -> bool:
        """Reopen a live source with exponential backoff; False once ``reconnects`` attempts failed."""
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        delay = self.backoff
        for attempt in range(1, self.reconnects + 1):
            if self.stopped:
                return False
            self.log(f"{self.spec.describe()}: no frame; reconnecting in {delay:.1f}s ({attempt}/{self.reconnects})")
            end = time.monotonic() + delay
            while time.monotonic() < end and not self.stopped:
                time.sleep(min(0.05, delay))
            self.cap = self._open()
            if self.cap is not None:
                self.reconnected += 1
                self.log(f"{self.spec.describe()}: reconnected")
                return True
            delay = min(delay * 2, 8.0)
        self.log(f"{self.spec.describe()}: gave up after {self.reconnects} reconnection attempts")
        return False

    @property
    def fps(self) -> float:
        if self.cap is not None:
            v = float(self.cap.get(cv2.CAP_PROP_FPS) or 0)
            if 0 < v < 1000:
                return v
        return float(self.spec.fps or 30.0)

    # ---- reading -------------------------------------------------------------------------
    def read(self) -> Frame | None:
        if self.stopped:
            return None
        if self.spec.kind == "images":
            return self._read_image()
        while True:
            assert self.cap is not None
            ok, img = self.cap.read()
            if ok and img is not None and img.size:
                ts = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if not self.spec.live else time.monotonic() - self._t0
                try:
                    frame = Frame(self.index, float(ts), to_bgr8(img))
                except InputError:
                    self.skipped += 1
                    self.index += 1
                    continue
                self.index += 1
                return frame
            if not self.spec.live or not self._reconnect():
                return None

    def _read_image(self) -> Frame | None:
        paths = self.spec.paths
        while self.index < len(paths):
            i = self.index
            self.index += 1
            img = read_image(paths[i])
            if img is None:
                self.skipped += 1
                self.log(f"skipped: {paths[i]} is not a readable image (or over {MAX_PIXELS >> 20} megapixels)")
                continue
            try:
                return Frame(i, float(i), to_bgr8(img))
            except InputError:
                self.skipped += 1
        return None

    def stop(self) -> None:
        """Ask ``read`` to return None (also interrupts a reconnection wait)."""
        self.stopped = True

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
