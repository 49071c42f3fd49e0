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

One class per kind (:data:`KINDS`), all with :class:`Source`'s protocol: opened when made
(``open``), ``read() -> Frame | None`` (None at the end or once stopped), ``stop()`` (from another
thread), ``close()``, ``live``, ``fps``, ``describe()``. :func:`parse_source` finds the kind from
the URI's scheme (:data:`SCHEMES`) or the path; ``Source(spec)`` opens the kind's class.

A live source that stops delivering reconnects with exponential backoff (bounded; each attempt
logged); a file or folder ends. Frames come out as :class:`Frame` (index, timestamp in seconds,
BGR uint8 image: grey, BGRA and 16-bit frames are converted; an image's file).
"""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from overfeat_edge import MAX_PIXELS
from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES, read_image
from overfeat_edge.pipeline.preprocess import to_bgr8


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (counts dropped frames too)
    timestamp: float  # seconds: the source's own clock for files, capture time for live sources
    image: np.ndarray  # (H, W, 3) uint8 BGR
    path: str | None = None  # the image file it came from (image folders and globs)
    wall: float = field(default_factory=time.time)  # when it was read: seconds since the epoch


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # a key of KINDS: camera, csi, gstreamer, stream, file, images
    target: str | int
    live: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    paths: tuple[Path, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        return f"{self.kind} {self.target}" + (" (live)" if self.live else "")

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The files it reads (no output may replace one)."""
        return (*self.paths, *((Path(str(self.target)),) if self.kind == "file" else ()))

    @property
    def stem(self) -> str | None:
        """What names its outputs (``{name}``): a video's or image's stem, a folder's name; None for a device."""
        if self.kind == "file" or (
            self.kind == "images" and len(self.paths) == 1 and not Path(str(self.target)).is_dir()
        ):
            return Path(str(self.target)).stem
        if self.kind == "images" and Path(str(self.target)).is_dir():
            return Path(str(self.target)).name
        return None


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


def _camera(uri: str, kw: dict[str, Any]) -> SourceSpec:
    m = re.fullmatch(r"(?:v4l2://)?(/dev/video\d+)", uri)
    if not m:
        raise InputError(f"{uri}: give v4l2:///dev/videoN")
    if not Path(m[1]).exists():
        raise InputError(f"camera not found: {m[1]} (no such device; see 'ls /dev/video*')")
    return SourceSpec("camera", m[1], True, **kw)


def _csi(uri: str, kw: dict[str, Any]) -> SourceSpec:
    m = re.fullmatch(r"csi://(\d+)", uri)
    if not m:
        raise InputError(f"{uri}: give csi://N (the sensor's number)")
    return SourceSpec("csi", int(m[1]), True, **kw)


def _network(uri: str, kw: dict[str, Any]) -> SourceSpec:
    return SourceSpec("stream", uri, True, **kw)


def _path(uri: str, kw: dict[str, Any]) -> SourceSpec:
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


SCHEMES: dict[str, Callable[[str, dict[str, Any]], SourceSpec]] = {
    "v4l2": _camera,
    "csi": _csi,
    **{k: _network for k in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp")},
    "file": _path,
}
"""A URI's scheme -> how it is read (a new network scheme is one line here)."""


def parse_source(uri: str, width: int | None = None, height: int | None = None, fps: float | None = None) -> SourceSpec:
    """What kind of source ``uri`` names; checks that files, folders and devices exist."""
    uri = uri.strip()
    kw: dict[str, Any] = {"width": width, "height": height, "fps": fps}
    if re.fullmatch(r"\d+", uri):
        return SourceSpec("camera", int(uri), True, **kw)
    if "!" in uri:
        return SourceSpec("gstreamer", uri, True, **kw)
    scheme, sep, _ = uri.partition("://")
    if sep and scheme.lower() in SCHEMES:
        return SCHEMES[scheme.lower()](uri, kw)
    if re.fullmatch(r"/dev/video\d+", uri):
        return _camera(uri, kw)
    return _path(uri, kw)


class Source:
    """Frames from one :class:`SourceSpec` (the protocol every kind implements; see the module
    docstring). ``Source(spec)`` makes the kind's own class (:data:`KINDS`)."""

    live: ClassVar[bool] = False
    why_not: ClassVar[str] = "OpenCV could not open it"  # said when it cannot be opened

    def __new__(cls, spec: SourceSpec, *args: Any, **kwargs: Any) -> Source:
        return object.__new__(KINDS[spec.kind] if cls is Source else cls)

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
        self.open()

    def open(self) -> None:
        """Open it, or raise InputError saying why not."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.spec.describe()

    @property
    def fps(self) -> float:
        return float(self.spec.fps or 30.0)

    @property
    def total(self) -> int | None:
        """How many frames a finite source holds (for progress), None for a live one or where unknown."""
        return None

    def stop(self) -> None:
        """Ask ``read`` to return None (also interrupts a reconnection wait)."""
        self.stopped = True

    def close(self) -> None:
        pass


class CaptureSource(Source):
    """A source OpenCV's ``VideoCapture`` reads; a live one reconnects when it stops delivering."""

    def open(self) -> None:
        self.cap = self._opened()
        if self.cap is None:
            raise InputError(f"cannot open {self.spec.kind} {self.spec.target}: {self.why_not}")

    def _capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _opened(self) -> cv2.VideoCapture | None:
        cap = self._capture()
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
            self.cap = self._opened()
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

    def read(self) -> Frame | None:
        while not self.stopped:
            if self.cap is None:
                return None
            ok, img = self.cap.read()
            if ok and img is not None and img.size:
                ts = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if not self.live else time.monotonic() - self._t0
                try:
                    frame = Frame(self.index, float(ts), to_bgr8(img))
                except InputError:
                    self.skipped += 1
                    self.index += 1
                    continue
                self.index += 1
                return frame
            if not self.live or not self._reconnect():
                return None
        return None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class CameraSource(CaptureSource):
    """``0``, ``/dev/video0``, ``v4l2:///dev/video0``: V4L2 with the width/height/fps asked for."""

    live = True
    why_not = "no such camera, or another program holds it (see 'ls /dev/video*')"

    def _capture(self) -> cv2.VideoCapture:
        s = self.spec
        cap = cv2.VideoCapture(s.target, cv2.CAP_V4L2) if isinstance(s.target, str) else None
        if cap is None or not cap.isOpened():
            cap = cv2.VideoCapture(s.target)  # an index: whatever backend the platform has
        for prop, v in ((cv2.CAP_PROP_FRAME_WIDTH, s.width), (cv2.CAP_PROP_FRAME_HEIGHT, s.height)):
            if v:
                cap.set(prop, v)
        if s.fps:
            cap.set(cv2.CAP_PROP_FPS, s.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a queue of stale ones
        return cap


class CsiSource(CaptureSource):
    """``csi://N``: a Jetson CSI sensor through GStreamer's ``nvarguscamerasrc``."""

    live = True

    def _capture(self) -> cv2.VideoCapture:
        s = self.spec
        _need_gstreamer(f"csi://{s.target}")
        pipe = csi_pipeline(int(s.target), s.width or 1280, s.height or 720, s.fps or 30)
        return cv2.VideoCapture(pipe, cv2.CAP_GSTREAMER)


class GstreamerSource(CaptureSource):
    """A GStreamer pipeline ending in ``appsink``, as given."""

    live = True

    def _capture(self) -> cv2.VideoCapture:
        _need_gstreamer("a GStreamer pipeline")
        return cv2.VideoCapture(str(self.spec.target), cv2.CAP_GSTREAMER)


class NetworkSource(CaptureSource):
    """``rtsp://``, ``http(s)://``, ``rtmp://``, ``udp://``: OpenCV's FFmpeg with bounded waits."""

    live = True
    why_not = "the server is unreachable or sends no video OpenCV's FFmpeg can decode (5 s timeout)"

    def _capture(self) -> cv2.VideoCapture:  # bounded waits: a dead server must not hang the loop
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        return cv2.VideoCapture(str(self.spec.target), cv2.CAP_FFMPEG, params)


class VideoFileSource(CaptureSource):
    """A video file: every frame, in order, on the file's own clock."""

    why_not = "not a video OpenCV's FFmpeg can decode"

    def _capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(self.spec.target), cv2.CAP_FFMPEG)

    @property
    def total(self) -> int | None:
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.cap is not None else 0
        return n if n > 0 else None  # the container's count (0 where it has none)


class ImageSource(Source):
    """A folder, a glob or one image: ``cv2.imread`` in name order; unreadable files skipped and counted."""

    @property
    def total(self) -> int | None:
        return len(self.spec.paths)

    def read(self) -> Frame | None:
        paths = self.spec.paths
        while self.index < len(paths) and not self.stopped:
            i = self.index
            self.index += 1
            img = read_image(paths[i])
            if img is None:
                self.skipped += 1
                self.log(f"skipped: {paths[i]} is not a readable image (or over {MAX_PIXELS >> 20} megapixels)")
                continue
            try:
                return Frame(i, float(i), to_bgr8(img), path=str(paths[i]))
            except InputError:
                self.skipped += 1
        return None


KINDS: dict[str, type[Source]] = {
    "camera": CameraSource,
    "csi": CsiSource,
    "gstreamer": GstreamerSource,
    "stream": NetworkSource,
    "file": VideoFileSource,
    "images": ImageSource,
}
"""A source kind -> its class (a new kind is one class and one line here)."""
