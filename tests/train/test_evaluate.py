"""COCO evaluation: hand-worked AP values through pycocotools, and the shipped model's accuracy."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="eval needs pycocotools (the dev extra)")

from overfeat_edge.train.datasets import DetectionDataset, Sample
from overfeat_edge.train.evaluate import coco_ground_truth, coco_map


def _gt() -> dict:
    s = Sample(path=None, boxes=np.array([[0, 0, 100, 100], [200, 200, 300, 300]], np.float32), labels=np.array([0, 0]))  # type: ignore[arg-type]
    return coco_ground_truth(DetectionDataset(["thing"], [s]), [(400, 400)])


def _det(x1: float, y1: float, score: float = 0.9) -> dict:
    return {"image_id": 1, "category_id": 1, "bbox": [x1, y1, 100.0, 100.0], "score": score}


def test_perfect_detections_score_one() -> None:
    m, m50, m75, per = coco_map(_gt(), [_det(0, 0), _det(200, 200, 0.8)])
    assert (m, m50, m75) == pytest.approx((1.0, 1.0, 1.0))
    assert per == {1: pytest.approx(1.0)}


def test_iou_two_thirds_counts_at_half_not_at_three_quarters() -> None:
    # shifted 20 px: IoU = 80*100 / (2*100*100 - 80*100) = 2/3
    m, m50, m75, _ = coco_map(_gt(), [_det(20, 0), _det(220, 200, 0.8)])
    assert m50 == pytest.approx(1.0) and m75 == pytest.approx(0.0)
    assert m == pytest.approx(0.4)  # 4 of COCO's 10 IoU thresholds (.50 .55 .60 .65) are met


def test_half_the_objects_found() -> None:
    # precision 1 up to recall 0.5, nothing after: 51 of COCO's 101 recall points
    _, m50, _, _ = coco_map(_gt(), [_det(0, 0)])
    assert m50 == pytest.approx(51 / 101)


def test_no_detections_is_zero() -> None:
    assert coco_map(_gt(), [])[:3] == (0.0, 0.0, 0.0)
