"""COCO evaluation of a detector on a dataset, with pycocotools (the reference implementation).

No torch: this runs on whatever runner the detector holds. Ground truth is the COCO file itself
when the dataset is one (crowd regions, ids and areas as written, so the scores are
pycocotools' on that file), else the :class:`DetectionDataset` converted (YOLO). Detections come
from :meth:`Detector.detect`, or precomputed from a file (:mod:`.detections_file`); greedy
merging scores boxes by summed window confidence, which COCO AP only uses to rank, so it needs
no rescaling.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require
from overfeat_edge.pipeline.detector import Detector
from overfeat_edge.train.datasets import DetectionDataset, coco_annotations, read_image


@dataclass(frozen=True)
class EvalResult:
    map: float  # COCO mAP@[.5:.95]
    map50: float  # mAP@.5
    map75: float
    images: int
    detections: int
    ms_per_frame: float | None  # median wall time of Detector.detect (None: precomputed detections)
    per_class_ap50: dict[str, float]

    def row(self) -> dict[str, float | int | None]:
        return {
            "mAP": round(self.map, 4),
            "mAP50": round(self.map50, 4),
            "mAP75": round(self.map75, 4),
            "ms_per_frame": None if self.ms_per_frame is None else round(self.ms_per_frame, 2),
            "detections": self.detections,
        }


def coco_ground_truth(
    data: DetectionDataset, sizes: list[tuple[int, int]] | None = None
) -> dict[str, list[dict[str, object]]]:
    """The dataset as a COCO dict (category ids 1..C, image ids 1..N in dataset order; the images'
    (height, width) if ``sizes`` are given: COCOeval does not need them)."""
    images: list[dict[str, object]] = []
    anns: list[dict[str, object]] = []
    for i, s in enumerate(data.samples):
        hw = {"height": sizes[i][0], "width": sizes[i][1]} if sizes else {}
        images.append({"id": i + 1, **hw, "file_name": str(s.path)})
        anns += coco_annotations(s.boxes, s.labels, i + 1, len(anns) + 1)
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(data.class_names)]
    return {"images": images, "annotations": anns, "categories": cats}


def image_ids(data: DetectionDataset) -> list[int]:
    """The COCO image id of each sample: the file's own ids for COCO, 1..N in order for YOLO."""
    return [s.image_id for s in data.samples] if data.coco is not None else list(range(1, len(data) + 1))


def ground_truth(data: DetectionDataset) -> dict[str, Any]:
    """What pycocotools scores against: the COCO file itself (crowd regions in), else the dataset
    converted (YOLO has no crowd regions; boxes as read, float64)."""
    if data.coco is not None:
        return data.coco
    return coco_ground_truth(data)


def coco_map(
    gt: dict[str, Any], results: list[dict[str, object]], img_ids: list[int] | None = None
) -> tuple[float, float, float, dict[int, float]]:
    """(mAP@[.5:.95], mAP@.5, mAP@.75, per-category AP@.5) from pycocotools' COCOeval, over the
    images ``img_ids`` (default: all)."""
    require("pycocotools", "eval")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not results:
            return 0.0, 0.0, 0.0, {int(c["id"]): 0.0 for c in gt["categories"]}
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if img_ids is not None:
            ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # precision: (iou thresholds, recall points, categories, area ranges, max dets); -1 = no ground truth
    prec = ev.eval["precision"][0, :, :, 0, -1]
    per_cat = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = prec[:, k]
        per_cat[int(cat_id)] = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
    return float(max(ev.stats[0], 0.0)), float(max(ev.stats[1], 0.0)), float(max(ev.stats[2], 0.0)), per_cat


def score(data: DetectionDataset, results: list[dict[str, object]], images: int, ms: float | None = None) -> EvalResult:
    """COCOeval of COCO ``results`` on the first ``images`` samples of ``data``."""
    ids = image_ids(data)[:images]
    m, m50, m75, per_cat = coco_map(ground_truth(data), results, ids)
    names = {data.category_id(k): n for k, n in enumerate(data.class_names)}
    return EvalResult(
        map=m,
        map50=m50,
        map75=m75,
        images=images,
        detections=len(results),
        ms_per_frame=ms,
        per_class_ap50={names.get(c, str(c)): v for c, v in per_cat.items()},
    )


def evaluate(
    detector: Detector,
    data: DetectionDataset,
    on_image: Callable[[], None] | None = None,
    limit: int | None = None,
) -> EvalResult:
    """Run ``detector`` over the dataset's images and score them with COCOeval."""
    samples = data.samples[:limit] if limit else data.samples
    if not samples:
        raise InputError("the evaluation set has no images")
    if detector.spec.arch.num_classes != len(data.class_names):
        raise InputError(
            f"the model has {detector.spec.arch.num_classes} classes, the dataset {len(data.class_names)} "
            f"({', '.join(data.class_names)})"
        )
    results, times = [], []
    for image_id, s in zip(image_ids(data), samples):
        frame = read_image(s.path)
        t0 = time.perf_counter()
        det = detector.detect(frame)
        times.append(time.perf_counter() - t0)
        results += coco_results(image_id, det.xyxy, det.score, det.class_id, data)
        if on_image is not None:
            on_image()
    return score(data, results, len(samples), float(np.median(times)) * 1000)


def coco_results(
    image_id: int, xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray, data: DetectionDataset
) -> list[dict[str, object]]:
    """COCO results (bbox x, y, w, h; the class's category id) of one image's detections."""
    return [
        {
            "image_id": image_id,
            "category_id": data.category_id(int(c)),
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            "score": float(sc),
        }
        for b, sc, c in zip(np.asarray(xyxy, np.float64), scores, labels, strict=True)
    ]
