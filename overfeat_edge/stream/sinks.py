"""[no torch] Sinks: where annotated frames and detections go.

Each output kind here has a ``<kind>_check_output(uri)`` (one InputError line, before any frame is
read) and ``<kind>_open_output(uri, *, stream, fps, class_names) -> Sink``, which
:data:`overfeat_edge.stream.plan.OUTPUTS` names by URI suffix or scheme.

Every file sink writes to a hidden temporary name beside its target and renames it on
:meth:`close`, which also runs when the run is interrupted: the MP4 is finalized (its index
written) and the JSON Lines file holds whole lines only, so both stay readable.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import cv2
import numpy as np

from overfeat_edge.errors import InputError, OutputError
from overfeat_edge.io import AtomicFile, check_name, disk_full
from overfeat_edge.records import frame_record
from overfeat_edge.types import Detections


class Sink:
    """Takes ``(index, timestamp_s, frame BGR uint8, detections)``; closed exactly once.

    ``needs_frame``: a frame sink (video, images, window, network stream) gets the annotated frame;
    a record sink (JSONL, MQTT) sets it False, gets the raw frame, and a run whose sinks are all
    record sinks draws nothing. ``describe()`` says what it writes (a path or URL) for the summary.
    """

    needs_frame: ClassVar[bool] = True

    def describe(self) -> str:
        return type(self).__name__

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class VideoSink(Sink):
    """An MP4 (``mp4v``) or AVI (``MJPG``) file at the source's frame rate, opened on the first frame.

    Written under an exclusive temporary name (:class:`~overfeat_edge.io.AtomicFile`, the suffix kept:
    OpenCV picks the container by it) and renamed on :meth:`close` only when the file holds every
    frame written (checked by reading its header back: a full disk leaves no index); a run that wrote
    no frame leaves the old file as it was."""

    FOURCC: ClassVar[dict[str, str]] = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in self.FOURCC:
            raise InputError(f"--output must end in one of {', '.join(self.FOURCC)}, got {self.path}")
        check_name(self.path, "--output", utf8=True)
        self.fps = fps if fps and fps > 0 else 30.0
        self.out = AtomicFile(self.path, "--output", keep_suffix=True)
        if self.out.inplace:
            self.out.discard()
            raise InputError(f"--output {self.path}: a video needs a seekable file, not a pipe or device")
        self.tmp = self.out.tmp
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0
        self.size: tuple[int, int] | None = None

    def describe(self) -> str:
        return str(self.path)

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        h, w = frame.shape[:2]
        if self.writer is None:
            fourcc = cv2.VideoWriter.fourcc(*self.FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                self.writer = None
                raise InputError(f"OpenCV cannot write {self.path.suffix} video here (no encoder for it); try .avi")
            self.size = (w, h)
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size)  # a source that changes size mid-stream
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.out.done:
            return
        if not self.frames:
            self.out.discard()
            return
        held = _frames_in(self.tmp)
        if held < self.frames:
            self.out.discard()
            free = _free_bytes(self.tmp.parent)
            why = "the disk is full" if free is not None and free < 1 << 20 else "the file could not be finished"
            raise OutputError(f"--output {self.path}: {why} ({held} of {self.frames} frames readable); not kept")
        self.out.commit()


def _frames_in(path: Path) -> int:
    """Frames a video file's index says it holds (0: no index, an unfinished file)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class JsonlSink(Sink):
    """One JSON object per frame, :func:`overfeat_edge.records.frame_record`'s schema.

    Written under an exclusive temporary name and renamed on :meth:`close` when at least one frame
    was written (a run that fails before its first frame leaves the old file as it was). A full disk
    ends the run with one line; the lines written before it are kept whole (the file is cut at its
    last newline). ``-``, a FIFO or /dev/null is written in place."""

    needs_frame = False

    def __init__(self, path: str | Path, class_names: tuple[str, ...] | list[str], extra: dict[str, Any] | None = None):
        self.path = Path(path)
        self.out = AtomicFile(self.path, "--jsonl")
        self.tmp = self.out.tmp
        self.class_names = class_names
        self.extra = extra or {}
        self.file = self.out.open_text()
        self.frames = 0

    def describe(self) -> str:
        return str(self.path)

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        record = frame_record(index, timestamp, det, self.class_names, self.extra)
        try:
            self.file.write(json.dumps(record, allow_nan=False) + "\n")  # close() flushes: whole lines only
            if self.out.inplace:
                self.file.flush()
        except OSError as exc:
            self._full(exc)
        self.frames += 1

    def _full(self, exc: OSError) -> None:
        """A write failed (a full disk): keep the whole lines already on disk, and say so."""
        with contextlib.suppress(OSError):
            self.file.close()
        if self.out.inplace:
            raise disk_full(exc, self.path) from None
        kept = _cut_at_last_newline(self.tmp)
        if kept:
            self.out.commit()
        else:
            self.out.discard()
        raise OutputError(
            f"--jsonl {self.path}: {exc.strerror or 'write failed'}; "
            + (f"the first {kept} whole line(s) are kept" if kept else "nothing was kept")
        ) from None

    def close(self) -> None:
        if self.out.done:
            return
        try:
            if self.file is not sys.stdout:
                self.file.close()
            else:
                self.file.flush()
        except OSError as exc:
            self._full(exc)
        if self.frames:
            self.out.commit()
        else:
            self.out.discard()


def _cut_at_last_newline(path: Path) -> int:
    """Truncate ``path`` after its last newline; the number of lines kept."""
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        f.truncate(end)
    return data[:end].count(b"\n")


class ImageFolderSink(Sink):
    """Annotated frames as ``DIR/frame_000000.jpg`` (each written under a temporary name, then renamed)."""

    def __init__(self, folder: str | Path, quality: int = 90) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.quality = quality
        self.frames = 0

    def describe(self) -> str:
        return f"{self.folder}/"

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        from overfeat_edge.io import atomic_write_bytes

        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise InputError(f"cannot encode frame {index} as JPEG")
        atomic_write_bytes(self.folder / f"frame_{index:06d}.jpg", buf.tobytes())
        self.frames += 1


def display_problem() -> str | None:
    """Why a window cannot be shown here, or None when it can."""
    import re
    import sys

    if re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        return "this OpenCV has no GUI (opencv-python-headless); pip install opencv-python for --display"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no screen (DISPLAY is not set)"
    return None


class DisplaySink(Sink):
    """A window with the annotated frames; 'q' or Esc calls ``on_quit``."""

    def __init__(self, title: str = "overfeat-edge", on_quit: Callable[[], None] | None = None) -> None:
        self.title = title
        self.on_quit = on_quit
        self.opened = False

    def describe(self) -> str:
        return f"a window ({self.title})"

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        cv2.imshow(self.title, frame)
        self.opened = True
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27) and self.on_quit is not None:
            self.on_quit()

    def close(self) -> None:
        if self.opened:
            cv2.destroyWindow(self.title)
            self.opened = False


# ---- the output kinds (stream/plan.py's table names them) ----------------------------------------
def video_check_output(uri: str) -> None:
    if Path(uri).suffix.lower() not in VideoSink.FOURCC:
        raise InputError(f"--output must end in one of {', '.join(VideoSink.FOURCC)}, got {uri}")


def video_open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> Sink:
    return VideoSink(uri, fps)


def jsonl_check_output(uri: str) -> None:
    pass  # the path itself is checked by the plan (writable, not an input, not another output)


def jsonl_open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> Sink:
    return JsonlSink(uri, class_names)


def frames_check_output(uri: str) -> None:
    pass


def frames_open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> Sink:
    return ImageFolderSink(uri.rstrip("/") or "/")


def display_check_output(uri: str) -> None:
    problem = display_problem()
    if problem:
        raise InputError(problem)


def display_open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> Sink:
    title = uri.partition("://")[2] or stream or "overfeat-edge"
    return DisplaySink(title)
