"""Detection datasets in the two formats users have: COCO JSON and YOLO txt.

Both read into :class:`DetectionDataset`: per image a path, boxes (N, 4) float64 xyxy in
pixels and labels (N,) int64, 0-based indices into ``class_names``. A COCO file's crowd regions
(``iscrowd: 1``) are no training boxes; the dataset keeps the file's own COCO dict (``coco``),
crowd regions included, so that evaluation scores against the file as pycocotools does. YOLO
layouts (``data.yaml`` splits, ``images/<split>``) are found by :mod:`.yolo_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.io import read_image as read_image_file
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.schema import load_json
from overfeat_edge.train.yolo_layout import (
    SPLITS,
    find_yaml,
    images_in,
    label_path,
    names_root,
    read_data_yaml,
    split_folder,
    yaml_names,
    yaml_split,
)


@dataclass
class Sample:
    path: Path
    boxes: np.ndarray  # (N, 4) float64 xyxy pixels (no crowd regions)
    labels: np.ndarray  # (N,) int64, 0-based
    image_id: int = 0


@dataclass
class DetectionDataset:
    class_names: list[str]
    samples: list[Sample] = field(default_factory=list)
    outside: int = 0  # boxes reaching more than a pixel outside their image (kept; the commands warn)
    category_ids: list[int] = field(default_factory=list)  # COCO category id of each class (default 1..C)
    coco: dict[str, Any] | None = None  # the COCO file's own dict (crowd regions in), when read from one

    def category_id(self, label: int) -> int:
        return self.category_ids[label] if self.category_ids else label + 1

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
            index[a["category_id"]]  # every annotation's category exists, crowd or not
            if len(a["bbox"]) != 4:
                raise ValueError(f"bbox {a['bbox']!r}: expected [x, y, w, h]")
            if a.get("iscrowd", 0):
                continue  # a crowd region: no training box; evaluation ignores matches to it (d keeps it)
            per_image[a["image_id"]].append((a["bbox"], index[a["category_id"]]))
        samples = []
        for im in d["images"]:
            anns = per_image[im["id"]]
            xywh = np.array([b for b, _ in anns], np.float64).reshape(-1, 4)
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
    return DetectionDataset(names, samples, outside, [int(c["id"]) for c in cats], coco_for_eval(d))


def coco_for_eval(d: dict[str, Any]) -> dict[str, Any]:
    """The COCO dict as pycocotools reads it, with the fields it needs and a file may leave out
    (annotation ``id``, ``area`` = the box's, ``iscrowd`` = 0) filled in; the file's values kept."""
    anns = []
    for k, a in enumerate(d["annotations"]):
        a = dict(a)
        a.setdefault("id", k + 1)
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
        anns.append(a)
    return {"images": d["images"], "annotations": anns, "categories": d["categories"]}


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
    for name in ("data.yaml", "data.yml"):
        if (root / name).is_file():
            return yaml_names(read_data_yaml(root / name), root / name)
    raise InputError(f"{root}: a YOLO dataset needs classes.txt, obj.names or data.yaml with names")


def read_yolo(root: str | Path) -> DetectionDataset:
    """``root/images/*`` with ``root/labels/<stem>.txt`` lines ``class cx cy w h`` (normalized)."""
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise InputError(f"{root}: a YOLO dataset needs an images/ folder (or a data.yaml with train:/val:)")
    names = _yolo_names(root)
    images = images_in(images_dir)
    if not images:
        raise InputError(f"{images_dir}: no images")
    return read_yolo_images(images, names)


def _yolo_labels(label: Path, hw: tuple[int, int], n_names: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) float64 xyxy pixels, labels (N,) int64) of one YOLO labels file."""
    rows = np.zeros((0, 5), np.float64)
    if label.is_file() and label.stat().st_size:
        try:
            rows = np.loadtxt(label, dtype=np.float64, ndmin=2)
        except ValueError:
            raise InputError(f"{label}: expected lines 'class cx cy w h'") from None
        if rows.shape[1] != 5:
            raise InputError(f"{label}: expected 5 numbers per line, got {rows.shape[1]}")
    h, w = hw
    cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    if len(rows) and (rows[:, 0] != np.round(rows[:, 0])).any():
        raise InputError(
            f"{label}: a class index is not a whole number ({rows[:, 0][rows[:, 0] != np.round(rows[:, 0])][0]:g})"
        )
    labels = rows[:, 0].astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_names):
        raise InputError(f"{label}: class index outside 0..{n_names - 1}")
    return boxes, labels


def read_yolo_images(images: list[Path], names: list[str]) -> DetectionDataset:
    """YOLO labels of the given images (each at :func:`.yolo_layout.label_path`)."""
    samples, outside = [], 0
    for i, img_path in enumerate(images):
        label = label_path(img_path)
        hw = read_image(img_path, cv2.IMREAD_UNCHANGED).shape[:2]
        boxes, labels = _yolo_labels(label, (int(hw[0]), int(hw[1])), len(names))
        check_boxes(boxes, str(label), img_path.name)
        outside += warn_outside(boxes, (int(hw[0]), int(hw[1])))
        samples.append(Sample(img_path, boxes, labels, i + 1))
    return DetectionDataset(names, samples, outside)


def read_dataset(path: str | Path, split: str | None = None) -> DetectionDataset:
    """COCO if ``path`` is a JSON file or a folder with annotations.json, else YOLO: a data.yaml's
    ``split`` (default val), ``images/<split>``, a folder of images (``DIR/images/val``), or the
    whole ``images/`` folder when it has no splits."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset not found: {path} does not exist")
    if path.suffix == ".json" or (path / "annotations.json").is_file():
        return read_coco(path)
    split = split or "val"
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    yaml = find_yaml(path)
    if yaml is not None:
        return read_yolo_images(*yaml_split(yaml, split))
    if path.is_dir() and not (path / "images").is_dir() and names_root(path) != path:
        images = images_in(path)  # a folder inside an images/ tree
        if not images:
            raise InputError(f"{path}: no images")
        return read_yolo_images(images, _yolo_names(names_root(path)))
    folder = split_folder(path, split) if path.is_dir() else None
    if folder is not None:
        return read_yolo_images(images_in(folder), _yolo_names(path))
    return read_yolo(path)
