"""Detection datasets in the two formats users have: COCO JSON and YOLO txt.

Both read into :class:`DetectionDataset`: per image a path, boxes (N, 4) float32 xyxy in
pixels and labels (N,) int64, 0-based indices into ``class_names``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES
from overfeat_edge.io import read_image as read_image_file
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.schema import load_json


@dataclass
class Sample:
    path: Path
    boxes: np.ndarray  # (N, 4) float32 xyxy pixels
    labels: np.ndarray  # (N,) int64, 0-based
    image_id: int = 0


@dataclass
class DetectionDataset:
    class_names: list[str]
    samples: list[Sample] = field(default_factory=list)
    outside: int = 0  # boxes reaching more than a pixel outside their image (kept; the commands warn)

    def __len__(self) -> int:
        return len(self.samples)


def coco_annotations(boxes: np.ndarray, labels: np.ndarray, image_id: int, first_id: int) -> list[dict[str, object]]:
    """COCO annotation dicts (ids from ``first_id``, category = label + 1, bbox xywh) for one image's
    (N, 4) xyxy boxes and (N,) 0-based labels: what :func:`read_coco` reads back."""
    out: list[dict[str, object]] = []
    for k, (b, c) in enumerate(zip_strict(boxes, labels)):
        bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
        out.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": int(c) + 1,
                "bbox": [float(b[0]), float(b[1]), bw, bh],
                "area": bw * bh,
                "iscrowd": 0,
            }
        )
    return out


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """A dataset image (BGR uint8 by default), or one clear :class:`InputError`."""
    img = read_image_file(path, flags)
    if img is None:
        raise InputError(f"{path}: not a readable image (or over the pixel limit)")
    return img


def read_coco(path: str | Path) -> DetectionDataset:
    """A COCO detection JSON (or a folder holding ``annotations.json``); image paths relative to it."""
    path = Path(path)
    if path.is_dir():
        path = path / "annotations.json"
    if not path.is_file():
        raise InputError(f"COCO annotations not found: {path}")
    try:
        d = load_json(path.read_bytes(), str(path), InputError)
        cats = sorted(d["categories"], key=lambda c: c["id"])
        index = {c["id"]: i for i, c in enumerate(cats)}
        per_image: dict[int, list[tuple[list[float], int]]] = {im["id"]: [] for im in d["images"]}
        for a in d["annotations"]:
            if a.get("iscrowd", 0):
                continue
            per_image[a["image_id"]].append((a["bbox"], index[a["category_id"]]))
        samples = []
        for im in d["images"]:
            anns = per_image[im["id"]]
            xywh = np.array([b for b, _ in anns], np.float32).reshape(-1, 4)
            boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            labels = np.array([c for _, c in anns], np.int64)
            samples.append(Sample(path.parent / im["file_name"], boxes, labels, int(im["id"])))
        names = [c["name"] for c in cats]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: not a COCO detection file (missing or malformed {exc})") from None
    if not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{path}: every category needs a non-empty 'name'")
    outside = 0
    for s, im in zip_strict(samples, d["images"]):
        check_boxes(s.boxes, str(path), s.path.name)
        if isinstance(im.get("width"), int) and isinstance(im.get("height"), int):
            outside += warn_outside(s.boxes, (im["height"], im["width"]))
    return DetectionDataset(names, samples, outside)


def check_boxes(boxes: np.ndarray, source: str, image: str) -> None:
    """Ground-truth boxes must be finite with positive width and height (one line naming the image)."""
    if not np.isfinite(boxes).all():
        raise InputError(f"{source}: a box of {image} is not finite (NaN or infinite)")
    if len(boxes) and ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise InputError(f"{source}: a box of {image} has zero or negative width or height")


def warn_outside(boxes: np.ndarray, hw: tuple[int, int]) -> int:
    """How many boxes reach more than a pixel outside an (h, w) image (counted, not refused)."""
    h, w = hw
    return int(((boxes[:, 0] < -1) | (boxes[:, 1] < -1) | (boxes[:, 2] > w + 1) | (boxes[:, 3] > h + 1)).sum())


def _yolo_names(root: Path) -> list[str]:
    for name in ("classes.txt", "obj.names"):
        if (root / name).is_file():
            return [ln.strip() for ln in (root / name).read_text().splitlines() if ln.strip()]
    yaml = root / "data.yaml"
    if yaml.is_file():  # the common 'names: [a, b]' or 'names:\n  0: a' forms, without a YAML parser
        text = yaml.read_text()
        inline = [ln for ln in text.splitlines() if ln.strip().startswith("names:") and "[" in ln]
        if inline:
            return [n.strip(" '\"") for n in inline[0].split("[", 1)[1].rsplit("]", 1)[0].split(",") if n.strip()]
        block = text.split("names:", 1)[1].splitlines()[1:] if "names:" in text else []
        names = [ln.split(":", 1)[1].strip(" '\"") for ln in block if ":" in ln and ln.startswith((" ", "\t"))]
        if names:
            return names
    raise InputError(f"{root}: a YOLO dataset needs classes.txt, obj.names or data.yaml with names")


def read_yolo(root: str | Path) -> DetectionDataset:
    """``root/images/*`` with ``root/labels/<stem>.txt`` lines ``class cx cy w h`` (normalized)."""
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise InputError(f"{root}: a YOLO dataset needs an images/ folder")
    names = _yolo_names(root)
    samples, outside = [], 0
    for i, img_path in enumerate(sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)):
        label = root / "labels" / img_path.relative_to(images_dir).with_suffix(".txt")
        rows = np.zeros((0, 5), np.float32)
        if label.is_file() and label.stat().st_size:
            try:
                rows = np.loadtxt(label, dtype=np.float32, ndmin=2)
            except ValueError:
                raise InputError(f"{label}: expected lines 'class cx cy w h'") from None
            if rows.shape[1] != 5:
                raise InputError(f"{label}: expected 5 numbers per line, got {rows.shape[1]}")
        h, w = read_image(img_path, cv2.IMREAD_UNCHANGED).shape[:2]
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
        if len(rows) and (rows[:, 0] != np.round(rows[:, 0])).any():
            raise InputError(
                f"{label}: a class index is not a whole number ({rows[:, 0][rows[:, 0] != np.round(rows[:, 0])][0]:g})"
            )
        labels = rows[:, 0].astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise InputError(f"{label}: class index outside 0..{len(names) - 1}")
        check_boxes(boxes, str(label), img_path.name)
        outside += warn_outside(boxes, (h, w))
        samples.append(Sample(img_path, boxes, labels, i + 1))
    if not samples:
        raise InputError(f"{images_dir}: no images")
    return DetectionDataset(names, samples, outside)


def read_dataset(path: str | Path) -> DetectionDataset:
    """COCO if ``path`` is a JSON file or a folder with annotations.json, else YOLO."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset not found: {path} does not exist")
    if path.suffix == ".json" or (path / "annotations.json").is_file():
        return read_coco(path)
    return read_yolo(path)
