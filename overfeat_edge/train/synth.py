"""Synthetic detection scenes, written as a COCO dataset: the project's test and demo data.

Objects of three classes (square, disc, triangle) at sizes spanning 5x (48 to 240 px on a
384x512 image), rotated, in random colours with shading and a texture, partly overlapping and
occluding each other, over varied backgrounds (smooth multi-octave noise, stripes, gradients,
blotchy "natural" textures) with clutter: lines, rings and crosses that belong to no class.
Everything comes from ``numpy.random.default_rng(seed)``: the same seed gives the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_bytes, atomic_write_text
from overfeat_edge.train.datasets import coco_annotations

CLASSES = ("square", "disc", "triangle")


@dataclass(frozen=True)
class SynthConfig:
    height: int = 384
    width: int = 512
    min_size: int = 48
    max_size: int = 240
    max_objects: int = 5
    max_overlap: float = 0.35  # IoU allowed between a new object and any placed one


def _noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise in [0, 1], (h, w) float32."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 1)
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    return np.clip((out - out.min()) / max(float(np.ptp(out)), 1e-6), 0, 1)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(0, 4)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:  # smooth noise between two colours
        t = _noise(rng, h, w)[..., None]
    elif kind == 1:  # stripes at a random angle and period
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, np.pi)
        t = (0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / rng.uniform(8, 60)))[..., None]
    elif kind == 2:  # linear gradient
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xx / w * rng.uniform(-1, 1) + yy / h * rng.uniform(-1, 1)) % 1.0)[..., None]
    else:  # blotchy "natural" texture: thresholded noise, blurred
        t = cv2.GaussianBlur((_noise(rng, h, w, 6) > 0.5).astype(np.float32), (0, 0), 3)[..., None]
    img = c1 * (1 - t) + c2 * t
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(cls: int, size: int, angle: float) -> np.ndarray:
    """A (size, size) uint8 mask of the class shape filling its box."""
    m = np.zeros((size, size), np.uint8)
    c = size / 2
    if cls == 1:
        cv2.circle(m, (round(c), round(c)), max(1, round(c) - 1), 255, -1, cv2.LINE_AA)
        return m
    if cls == 0:
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)
    else:
        pts = np.array([[0, -1], [0.866, 0.5], [-0.866, 0.5]], np.float32)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    p = pts @ rot.T
    p = (p - p.min(0)) / np.ptp(p, 0).max() * (size - 1)  # fill the box on its longer side
    p += (size - 1 - p.max(0)) / 2
    cv2.fillPoly(m, [np.round(p).astype(np.int32)], 255, cv2.LINE_AA)
    return m


def _clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    for _ in range(rng.integers(2, 8)):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), col, int(rng.integers(1, 4)))
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(5, 40)), col, int(rng.integers(2, 5)))  # a ring, not a disc
        else:
            s = int(rng.integers(6, 30))
            cv2.line(img, (x - s, y), (x + s, y), col, 3)
            cv2.line(img, (x, y - s), (x, y + s), col, 3)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    return inter / (float(np.prod(a[2:] - a[:2])) + float(np.prod(b[2:] - b[:2])) - inter)


def scene(rng: np.random.Generator, cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image (H, W, 3) uint8 BGR, its boxes (N, 4) xyxy float32 and labels (N,) int64 (0-based)."""
    h, w = cfg.height, cfg.width
    img = background(rng, h, w)
    _clutter(rng, img)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, cfg.max_objects + 1))):
        for _attempt in range(20):
            size = int(np.exp(rng.uniform(np.log(cfg.min_size), np.log(min(cfg.max_size, h, w)))))
            x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
            box = np.array([x, y, x + size, y + size], np.float32)
            if all(_iou(box, b) <= cfg.max_overlap for b in boxes):
                break
        else:
            continue
        cls = int(rng.integers(0, len(CLASSES)))
        mask = _shape_mask(cls, size, float(rng.uniform(0, np.pi)))
        colour = rng.integers(0, 256, 3).astype(np.float32)
        shade = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), size, dtype=np.float32)[:, None, None]
        fill = colour * shade + rng.normal(0, rng.uniform(0, 15), (size, size, 3))
        alpha = (mask.astype(np.float32) / 255)[..., None]
        roi = img[y : y + size, x : x + size].astype(np.float32)
        img[y : y + size, x : x + size] = np.clip(roi * (1 - alpha) + fill * alpha, 0, 255).astype(np.uint8)
        ys, xs = np.nonzero(mask > 127)  # the box is the shape's own extent, not the square it sits in
        boxes.append(np.array([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1], np.float32))
        labels.append(cls)
    if rng.random() < 0.3:
        _clutter(rng, img)  # clutter in front of objects too
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return img, xyxy, np.array(labels, np.int64)


def write_coco(
    out: str | Path,
    images: int,
    seed: int,
    cfg: SynthConfig = SynthConfig(),
    on_image: Callable[[], None] | None = None,
) -> Path:
    """Write ``out/images/*.jpg`` and ``out/annotations.json``; returns the JSON path."""
    if images < 1:
        raise InputError(f"--images must be >= 1, got {images}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    coco: dict[str, list[dict[str, object]]] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }
    for i in range(images):
        img, xyxy, labels = scene(rng, cfg)
        name = f"images/{seed}_{i:05d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise InputError("JPEG encoding failed")
        atomic_write_bytes(out / name, buf.tobytes())
        coco["images"].append({"id": i + 1, "file_name": name, "height": cfg.height, "width": cfg.width})
        coco["annotations"] += coco_annotations(xyxy, labels, i + 1, len(coco["annotations"]) + 1)
        if on_image is not None:
            on_image()
    path = out / "annotations.json"
    atomic_write_text(path, json.dumps({**coco, "info": {"generator": "overfeat-edge data synth", "seed": seed}}))
    return path


# ---- video: moving, scaling objects ----------------------------------------------------------
@dataclass
class _Track:
    cls: int
    colour: np.ndarray
    size: tuple[float, float, float]  # (min, max, period in frames): the size breathes between min and max
    pos: np.ndarray  # centre (x, y)
    vel: np.ndarray  # pixels per frame
    angle: float
    spin: float
    phase: float


def video(
    seed: int, frames: int, cfg: SynthConfig = SynthConfig(), objects: int = 4
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Frames of a scene whose objects move, spin and grow/shrink over the 5x size range.

    Yields ``(frame (H, W, 3) uint8 BGR, boxes (N, 4) float32 xyxy, labels (N,) int64)`` per frame.
    The background pans slowly; clutter stays put. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    h, w = cfg.height, cfg.width
    pad = 64
    back = background(rng, h + 2 * pad, w + 2 * pad)
    _clutter(rng, back)
    tracks = []
    for k in range(objects):
        lo = float(np.exp(rng.uniform(np.log(cfg.min_size), np.log(cfg.min_size * 2))))
        hi = float(np.exp(rng.uniform(np.log(cfg.max_size / 2), np.log(cfg.max_size * 0.9))))
        tracks.append(
            _Track(
                cls=k % len(CLASSES),
                colour=rng.integers(30, 256, 3).astype(np.float32),
                size=(lo, hi, float(rng.uniform(60, 140))),
                pos=rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h]),
                vel=rng.uniform(1.0, 3.0, 2) * rng.choice([-1, 1], 2),
                angle=float(rng.uniform(0, np.pi)),
                spin=float(rng.uniform(-0.03, 0.03)),
                phase=float(rng.uniform(0, 2 * np.pi)),
            )
        )
    for t in range(frames):
        ox, oy = round(pad + pad * np.sin(t / 90)), round(pad + pad * 0.5 * np.sin(t / 70))
        img = back[oy : oy + h, ox : ox + w].copy()
        boxes, labels = [], []
        for tr in tracks:
            lo, hi, period = tr.size
            size = int(lo + (hi - lo) * 0.5 * (1 + np.sin(2 * np.pi * t / period + tr.phase)))
            half = size / 2
            for d in range(2):  # bounce off the frame's edges, keeping the object whole
                limit = (w, h)[d]
                if not half <= tr.pos[d] <= limit - half:
                    tr.pos[d] = np.clip(tr.pos[d], half, limit - half)
                    tr.vel[d] = -tr.vel[d]
            x, y = round(tr.pos[0] - half), round(tr.pos[1] - half)
            x, y = int(np.clip(x, 0, w - size)), int(np.clip(y, 0, h - size))
            mask = _shape_mask(tr.cls, size, tr.angle + tr.spin * t)
            alpha = (mask.astype(np.float32) / 255)[..., None]
            shade = np.linspace(1.0, 0.7, size, dtype=np.float32)[:, None, None]
            roi = img[y : y + size, x : x + size].astype(np.float32)
            img[y : y + size, x : x + size] = np.clip(roi * (1 - alpha) + tr.colour * shade * alpha, 0, 255)
            ys, xs = np.nonzero(mask > 127)
            boxes.append([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1])
            labels.append(tr.cls)
            tr.pos += tr.vel
        yield img, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def photo_tour(photo: np.ndarray, frames: int, hw: tuple[int, int] = (384, 512)) -> Iterator[np.ndarray]:
    """Frames (``hw``, BGR uint8) of a slow camera move over ``photo``: a zoom from the whole photo to half
    of it and back, towards a point that sweeps across its upper part (where portraits have faces), so
    what it shows changes size by 2x and moves. Deterministic."""
    ph, pw = photo.shape[:2]
    for t in range(frames):
        zoom = 1.0 + 0.5 * (1 - np.cos(2 * np.pi * t / max(frames, 2)))  # 1 -> 2 -> 1
        ch, cw = ph / zoom, pw / zoom
        cx = pw / 2 + (pw - cw) * 0.3 * np.sin(2 * np.pi * t / max(frames, 2) * 0.5)
        cy = min(max(ph * 0.3, ch / 2), ph - ch / 2)
        m = np.array(
            [[hw[1] / cw, 0, -(cx - cw / 2) * hw[1] / cw], [0, hw[0] / ch, -(cy - ch / 2) * hw[0] / ch]], np.float32
        )
        yield cv2.warpAffine(photo, m, (hw[1], hw[0]), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def write_demo_video(path: Path, frames: int, seed: int, fps: float = 30.0, photo: Path | None = None) -> Path:
    """The demo's input: moving, spinning, growing and shrinking shapes (``train.synth.video``), or a
    camera's slow pan and zoom over ``photo`` (a model's ``sample.jpg``, e.g. faces)."""
    from overfeat_edge.stream.sinks import VideoSink
    from overfeat_edge.types import Detections

    image = cv2.imread(str(photo)) if photo is not None else None
    if photo is not None and image is None:
        raise InputError(f"cannot read the model's sample photo {photo}")
    clip = photo_tour(image, frames) if image is not None else (f for f, _, _ in video(seed, frames))
    with VideoSink(path, fps) as sink:
        for i, frame in enumerate(clip):
            sink.write(i, i / fps, frame, Detections.empty())
    return path
