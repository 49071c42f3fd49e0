"""Precomputed detections as COCO results, for ``eval --detections FILE`` (no model run).

Two formats: ``detect``'s ``detections.json`` (``{"images": [{"image": path, "detections":
[{"class_id", "score", "box": [x1, y1, x2, y2]}]}]}``; images matched to the dataset's by path,
else by file name) and a COCO results list (``[{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}]``, the ids of the dataset's COCO file; for a YOLO dataset, images 1..N in sorted order
and categories 1..C), as ``COCO.loadRes`` takes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from overfeat_edge.errors import InputError
from overfeat_edge.train.datasets import DetectionDataset
from overfeat_edge.train.evaluate import image_ids


def _numbers(v: Any, n: int, what: str, source: Path) -> list[float]:
    ok = isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if not ok or not all(math.isfinite(x) for x in v):
        raise InputError(f"{source}: {what} must be {n} finite numbers, got {v!r}")
    return [float(x) for x in v]


def _score(v: Any, source: Path) -> float:
    return _numbers([v], 1, "a score", source)[0]


def _from_coco_results(items: list[Any], data: DetectionDataset, keep: set[int], source: Path) -> list[dict]:
    known, cats = set(image_ids(data)), {data.category_id(k) for k in range(len(data.class_names))}
    out = []
    for r in items:
        if not isinstance(r, dict) or not {"image_id", "category_id", "bbox", "score"} <= r.keys():
            raise InputError(f"{source}: a COCO result needs image_id, category_id, bbox and score, got {r!r:.80}")
        if r["image_id"] not in known:
            raise InputError(f"{source}: image_id {r['image_id']!r} is not an image of the dataset")
        if r["category_id"] not in cats:
            raise InputError(f"{source}: category_id {r['category_id']!r} is not a category of the dataset")
        box = _numbers(r["bbox"], 4, "a bbox", source)
        if r["image_id"] in keep:
            out.append({**r, "bbox": box, "score": _score(r["score"], source)})
    return out


def _from_ours(images: list[Any], data: DetectionDataset, keep: set[int], source: Path) -> list[dict]:
    ids = image_ids(data)
    by_path = {s.path.resolve(): i for s, i in zip(data.samples, ids)}
    names = [s.path.name for s in data.samples]
    by_name = {s.path.name: i for s, i in zip(data.samples, ids) if names.count(s.path.name) == 1}
    out = []
    for entry in images:
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise InputError(f"{source}: each images entry needs 'image' (a path) and 'detections'")
        p = Path(entry["image"])
        image_id = by_path.get(p.resolve(), by_name.get(p.name))
        if image_id is None:
            raise InputError(f"{source}: {p} is not an image of the dataset (matched by path, then file name)")
        for d in entry.get("detections") or []:
            c = d.get("class_id") if isinstance(d, dict) else None
            if not isinstance(c, int) or not 0 <= c < len(data.class_names):
                raise InputError(f"{source}: class_id must be 0..{len(data.class_names) - 1}, got {c!r}")
            x1, y1, x2, y2 = _numbers(d.get("box"), 4, "a box", source)
            sc = _score(d.get("score"), source)
            if image_id in keep:
                cat = data.category_id(c)
                out.append({"image_id": image_id, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": sc})
    return out


def read_detections(path: Path, data: DetectionDataset, images: int) -> list[dict[str, Any]]:
    """COCO results of the first ``images`` samples of ``data`` from a detections file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--detections: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--detections: {path} is not a readable JSON file ({exc})") from None
    keep = set(image_ids(data)[:images])
    if isinstance(doc, list):
        return _from_coco_results(doc, data, keep, path)
    if isinstance(doc, dict) and isinstance(doc.get("images"), list):
        return _from_ours(doc["images"], data, keep, path)
    raise InputError(f"{path}: expected detect's detections.json (an 'images' list) or a COCO results list")
