"""Frames in, normalized NCHW float32 network inputs out."""

from __future__ import annotations

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.spec import ModelSpec
from overfeat_edge.types import ScaleLevel

PREPROCESS_VERSION = 2  # bumped when level_inputs' values change (2: levels resized from float32)


def to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any OpenCV frame (grey, BGR, BGRA; uint8 or 16-bit) -> contiguous (H, W, 3) uint8 BGR."""
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        shape = getattr(frame, "shape", None)
        raise InputError(f"a frame must be an (H, W) or (H, W, C) array, but got {type(frame).__name__} {shape}")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype in (np.float32, np.float64):
        frame = np.clip(frame * 255.0 if frame.max() <= 1.0 else frame, 0, 255).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise InputError(f"unsupported frame dtype {frame.dtype}; expected uint8, uint16 or float")
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[2] != 3:
        raise InputError(f"a frame must have 1, 3 or 4 channels, but got {frame.shape[2]}")
    return np.ascontiguousarray(frame)


def resize(frame_bgr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize to (height, width): area averaging when shrinking, bilinear when enlarging."""
    h, w = frame_bgr.shape[:2]
    if (h, w) == hw:
        return frame_bgr
    interp = cv2.INTER_AREA if hw[0] * hw[1] < h * w else cv2.INTER_LINEAR
    return cv2.resize(frame_bgr, (hw[1], hw[0]), interpolation=interp)


def normalize(image_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(H, W, 3) uint8 or float32 BGR -> (1, 3, H, W) float32, channel order and normalization of ``spec``.

    One std for all channels (every model here): OpenCV's ``blobFromImage`` does the channel swap,
    mean, scale and HWC->NCHW in one pass (7x faster than numpy, identical values). Per-channel std
    falls back to numpy.
    """
    if spec.std[0] == spec.std[1] == spec.std[2]:
        # blobFromImage subtracts ``mean`` in the order of the output channels (after swapRB)
        swap = spec.channel_order == "rgb"
        h, w = image_bgr.shape[:2]
        blob = cv2.dnn.blobFromImage(image_bgr, 1.0 / spec.std[0], (w, h), list(spec.mean), swapRB=swap, crop=False)
        return np.ascontiguousarray(blob, dtype=np.float32)
    img = image_bgr[:, :, ::-1] if spec.channel_order == "rgb" else image_bgr
    x = img.astype(np.float32)
    x -= np.asarray(spec.mean, np.float32)
    x *= 1.0 / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def level_inputs(frame_bgr: np.ndarray, levels: list[ScaleLevel], spec: ModelSpec) -> list[np.ndarray]:
    """The network input of each pyramid level for one BGR uint8 frame.

    Every resized level comes from a float32 copy of the frame, however many levels there are:
    OpenCV's area resize is about twice as fast on float32 as on uint8 here, and skips rounding
    each level to whole grey levels (the inputs differ from a uint8 resize by at most 0.5 grey
    level). A level at the frame's own size is the frame either way.
    """
    resized = any(lv.input_hw != frame_bgr.shape[:2] for lv in levels)
    frame = frame_bgr.astype(np.float32) if resized else frame_bgr
    return [normalize(resize(frame, lv.input_hw), spec) for lv in levels]
