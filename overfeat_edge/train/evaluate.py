"""COCO evaluation of a detector on a dataset, with pycocotools (the reference implementation).

No torch: this runs on whatever runner the detector holds. Ground truth comes from a
:class:`DetectionDataset` (so YOLO datasets are evaluated the same way), detections from
:meth:`Detector.detect`; greedy merging scores boxes by summed window confidence, which COCO AP
only uses to rank, so it needs no rescaling.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    ms_per_frame: float  # median wall time of Detector.detect (pyramid, network, decode, merge)
    per_class_ap50: dict[str, float]

    def row(self) -> dict[str, float | int]:
        return {
            "mAP": round(self.map, 4),
            "mAP50": round(self.map50, 4),
            "mAP75": round(self.map75, 4),
            "ms_per_frame": round(self.ms_per_frame, 2),
            "detections": self.detections,
        }


def coco_ground_truth(data: DetectionDataset, sizes: list[tuple[int, int]]) -> dict[str, list[dict[str, object]]]:
    """The dataset as a COCO dict (category ids 1..C, image ids 1..N in dataset order)."""
    images: list[dict[str, object]] = []
    anns: list[dict[str, object]] = []
    for i, (s, (h, w)) in enumerate(zip(data.samples, sizes, strict=True)):
        images.append({"id": i + 1, "height": h, "width": w, "file_name": str(s.path)})
        anns += coco_annotations(s.boxes, s.labels, i + 1, len(anns) + 1)
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(data.class_names)]
    return {"images": images, "annotations": anns, "categories": cats}


def coco_map(
    gt: dict[str, list[dict[str, object]]], results: list[dict[str, object]]
) -> tuple[float, float, float, dict[int, float]]:
    """(mAP@[.5:.95], mAP@.5, mAP@.75, per-category AP@.5) from pycocotools' COCOeval."""
    require("pycocotools", "eval")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not results:
            return 0.0, 0.0, 0.0, {int(c["id"]): 0.0 for c in gt["categories"]}  # type: ignore[call-overload]
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
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
    sizes, results, times = [], [], []
    for i, s in enumerate(samples):
        frame = read_image(s.path)
        sizes.append(frame.shape[:2])
        t0 = time.perf_counter()
        det = detector.detect(frame)
        times.append(time.perf_counter() - t0)
        for b, sc, c in zip(det.xyxy, det.score, det.class_id, strict=True):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "score": float(sc),
                }
            )
        if on_image is not None:
            on_image()
    sub = DetectionDataset(data.class_names, list(samples))
    m, m50, m75, per_cat = coco_map(coco_ground_truth(sub, sizes), results)
    return EvalResult(
        map=m,
        map50=m50,
        map75=m75,
        images=len(samples),
        detections=len(results),
        ms_per_frame=float(np.median(times)) * 1000,
        per_class_ap50={data.class_names[k - 1]: v for k, v in per_cat.items()},
    )
