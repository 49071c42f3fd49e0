"""``python -m tests.net.drive URI [--frames N] [--fps F] [--size WxH] [--stream NAME]``: a real output sink
driven with frames of a box moving across (drawn by the package's own annotator), paced at ``fps``.

The tests start it as a process of its own (for RTSP/RTP in the interpreter that has GStreamer) and read
what it serves from outside. Each frame's box is ``box(index, size)``; the process prints ``ready`` once
the sink is open, then runs until its frames are written or SIGTERM/SIGINT, and closes the sink.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time

import numpy as np

from overfeat_edge.types import Detections

MODULES = {
    "http": "overfeat_edge.stream.web",
    "rtsp": "overfeat_edge.stream.rtsp",
    "rtp": "overfeat_edge.stream.rtsp",
    "webrtc": "overfeat_edge.stream.webrtc",
}
CLASSES = ("square", "disc")


def box(index: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Frame ``index``'s box (x1, y1, x2, y2): a quarter of the frame's height, moving right 4 px a frame."""
    w, h = size
    side = h // 4
    x = 8 + (4 * index) % max(1, w - side - 16)
    return x, h // 3, x + side, h // 3 + side


def frame(index: int, size: tuple[int, int]) -> tuple[np.ndarray, Detections]:
    from overfeat_edge.pipeline.draw import draw_detections

    w, h = size
    img = np.full((h, w, 3), 60, np.uint8)
    img[:, :, 2] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]  # a red gradient, far from the box colour
    det = Detections(
        xyxy=np.array([box(index, size)], np.float32), score=np.array([0.9], np.float32), class_id=np.array([1])
    )
    return draw_detections(img, det, CLASSES, f"frame {index}"), det


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--frames", type=int, default=10**9)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--size", default="320x240")
    p.add_argument("--stream", default="cam")
    a = p.parse_args(argv)
    size = tuple(int(v) for v in a.size.split("x"))
    module = importlib.import_module(MODULES[a.uri.split(":", 1)[0]])
    module.check_output(a.uri)
    sink = module.open_output(a.uri, stream=a.stream, fps=a.fps, class_names=CLASSES)
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: stop.append(s))
    print("ready", flush=True)
    t0 = time.monotonic()
    try:
        for i in range(a.frames):
            if stop:
                break
            img, det = frame(i, size)  # type: ignore[arg-type]
            sink.write(i, i / a.fps, img, det)
            time.sleep(max(0.0, t0 + (i + 1) / a.fps - time.monotonic()))
    finally:
        sink.close()
    print(f"closed after {i + 1} frames", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def edge_distance(img: np.ndarray, xyxy: tuple[float, ...] | list[float], class_id: int = 1) -> float:
    """How far (max channel difference, median over the box's left and bottom edges) ``img``'s pixels on
    the outline of box ``xyxy`` are from the class's overlay colour: small where that box is drawn."""
    from overfeat_edge.pipeline.draw import color

    x1, y1, x2, y2 = (round(float(v)) for v in xyxy)
    h, w = img.shape[:2]
    x1, x2, y1, y2 = min(max(x1, 0), w - 1), min(max(x2, 0), w - 1), min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)
    # left edge below the label, bottom edge: the label covers the top one. Each point of the outline
    # takes the best of the line and its two neighbours across it: H.264 and JPEG carry colour at half
    # resolution, so a 1-pixel line's colour lands beside it as much as on it
    want = np.array(color(class_id), np.int16)

    def far(pixels: np.ndarray) -> np.ndarray:
        return np.abs(pixels.astype(np.int16) - want).max(axis=-1)

    left = np.stack([img[(y1 + y2) // 2 : y2, min(max(x1 + d, 0), w - 1)] for d in (-1, 0, 1)])
    bottom = np.stack([img[min(max(y2 + d, 0), h - 1), x1:x2] for d in (-1, 0, 1)])
    if left.shape[1] + bottom.shape[1] == 0:
        return 255.0
    return float(np.median(np.concatenate([far(left).min(axis=0), far(bottom).min(axis=0)])))
