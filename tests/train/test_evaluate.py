"""COCO evaluation: hand-worked AP values through pycocotools, our dataset reading and scoring
equal to pycocotools run alone on the same files (crowd regions, IoU at a threshold, float64),
and precomputed detection files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pycocotools", reason="eval needs pycocotools (the dev extra)")

from overfeat_edge.commands import main
from overfeat_edge.errors import InputError
from overfeat_edge.train.datasets import DetectionDataset, Sample, read_coco
from overfeat_edge.train.detections_file import read_detections
from overfeat_edge.train.evaluate import coco_ground_truth, coco_map, score


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


# --- the same as pycocotools on COCO files: crowd regions, float64 boxes, precomputed detections


def _pycocotools(gt_file: Path, results: list[dict]) -> list[float]:
    """mAP@[.5:.95], @.5, @.75 by pycocotools alone, from the files (the reference)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [max(float(v), 0.0) for v in ev.stats[:3]]


def _ours(gt_file: Path, det_file: Path, limit: int | None = None) -> list[float]:
    data = read_coco(gt_file)
    n = limit or len(data)
    r = score(data, read_detections(det_file, data, n), n)
    return [r.map, r.map50, r.map75]


def _write_coco(tmp: Path, anns: list[tuple[int, int, list[float], int]], images: int = 2) -> Path:
    """A COCO file: (image id, category id, bbox xywh, iscrowd) per annotation; categories 3 and 7."""
    for i in range(images):
        cv2.imwrite(str(tmp / f"im{i + 1}.png"), np.zeros((240, 320, 3), np.uint8))
    doc = {
        "images": [{"id": 10 + i, "file_name": f"im{i + 1}.png", "height": 240, "width": 320} for i in range(images)],
        "categories": [{"id": 3, "name": "person"}, {"id": 7, "name": "car"}],
        "annotations": [
            {"id": k + 1, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": crowd}
            for k, (im, c, b, crowd) in enumerate(anns)
        ],
    }
    path = tmp / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def _results(tmp: Path, dets: list[tuple[int, int, list[float], float]]) -> tuple[list[dict], Path]:
    res = [{"image_id": im, "category_id": c, "bbox": b, "score": s} for im, c, b, s in dets]
    path = tmp / "results.json"
    path.write_text(json.dumps(res))
    return res, path


CASES = {
    # one person, and a crowd region (iscrowd 1) with three detections on it: COCO ignores them
    "crowd": (
        [(10, 3, [10.0, 10.0, 40.0, 60.0], 0), (10, 3, [100.0, 50.0, 150.0, 100.0], 1)],
        [
            (10, 3, [10.0, 10.0, 40.0, 60.0], 0.9),
            *((10, 3, [105.0 + 40 * k, 60.0, 30.0, 60.0], 0.95) for k in range(3)),
        ],
        [1.0, 1.0, 1.0],
    ),
    # IoU exactly 0.8 in double precision (the det is 0.8 of the box's width): met at .50 .. .80,
    # 7 of COCO's 10 thresholds; with the box read as float32 the .80 threshold is missed (0.6)
    "iou_at_threshold": (
        [(10, 3, [63.7, 26.98, 22.46, 20.99], 0)],
        [(10, 3, [63.7, 26.98, 17.968, 20.99], 0.9)],
        [0.7, 1.0, 1.0],
    ),
    # two images, two categories (ids 3 and 7), a miss, a false positive, a crowd car
    "mixed": (
        [
            (10, 3, [5.5, 5.25, 50.0, 80.0], 0),
            (10, 7, [120.0, 40.0, 90.5, 45.0], 0),
            (11, 7, [10.0, 100.0, 60.0, 40.0], 0),
            (11, 7, [150.0, 100.0, 120.0, 90.0], 1),
            (11, 3, [200.0, 10.0, 30.0, 70.0], 0),
        ],
        [
            (10, 3, [6.0, 5.0, 49.0, 81.0], 0.8),
            (10, 7, [125.0, 42.0, 85.0, 44.0], 0.7),
            (11, 7, [12.0, 101.0, 58.0, 41.0], 0.9),
            (11, 7, [160.0, 110.0, 50.0, 40.0], 0.85),
            (11, 3, [20.0, 20.0, 30.0, 30.0], 0.6),
        ],
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_pycocotools_on_coco_files(case: str, tmp_path: Path) -> None:
    anns, dets, hand = CASES[case]
    gt = _write_coco(tmp_path, anns)
    res, det_file = _results(tmp_path, dets)
    ref = _pycocotools(gt, res)
    assert _ours(gt, det_file) == ref
    if hand is not None:
        assert ref == pytest.approx(hand)


def test_iou_case_is_on_the_edge_of_float32(tmp_path: Path) -> None:
    # the case above is a real float64 one: pycocotools on the float32 box gives another mAP
    anns, dets, _ = CASES["iou_at_threshold"]
    f32 = [(im, c, [float(v) for v in np.float32(b)], crowd) for im, c, b, crowd in anns]
    res, _ = _results(tmp_path, dets)
    assert _pycocotools(_write_coco(tmp_path, f32), res)[0] == pytest.approx(0.6)


def test_detect_json_scored_like_coco_results(tmp_path: Path) -> None:
    # detect's detections.json (images by path, class_id index, xyxy box) = the same COCO results
    anns, dets, _ = CASES["mixed"]
    gt = _write_coco(tmp_path, anns)
    res, _ = _results(tmp_path, dets)
    names = {10: "im1.png", 11: "im2.png"}
    index = {3: 0, 7: 1}
    ours = {
        "images": [
            {
                "image": str(tmp_path / names[im]),
                "detections": [
                    {"class_id": index[c], "score": s, "box": [b[0], b[1], b[0] + b[2], b[1] + b[3]]}
                    for i2, c, b, s in dets
                    if i2 == im
                ],
            }
            for im in names
        ]
    }
    (tmp_path / "detections.json").write_text(json.dumps(ours))
    got = _ours(gt, tmp_path / "detections.json")
    assert got == pytest.approx(_pycocotools(gt, res), abs=1e-12)
    # --limit 1: the first image only, as pycocotools with imgIds [10]
    first = _ours(gt, tmp_path / "detections.json", limit=1)
    assert first == pytest.approx(_pycocotools_images(gt, res, [10]), abs=1e-12)


def _pycocotools_images(gt_file: Path, results: list[dict], img_ids: list[int]) -> list[float]:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [max(float(v), 0.0) for v in ev.stats[:3]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}]', "image_id 99"),
        ('[{"image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]', "category_id 1"),
        ('[{"image_id": 10, "category_id": 3, "bbox": [0, 0, 1], "score": 1}]', "bbox must be 4"),
        ('{"images": [{"image": "nope.png", "detections": []}]}', "nope.png is not an image"),
        ('{"rows": []}', "expected detect's detections.json"),
        ("not json", "not a readable JSON"),
    ],
)
def test_bad_detection_files(tmp_path: Path, content: str, message: str) -> None:
    data = read_coco(_write_coco(tmp_path, CASES["crowd"][0]))
    (tmp_path / "d.json").write_text(content)
    with pytest.raises(InputError, match=message):
        read_detections(tmp_path / "d.json", data, len(data))


def test_eval_command_scores_a_file_without_a_model(tmp_path: Path, capsys) -> None:
    anns, dets, _ = CASES["mixed"]
    gt = _write_coco(tmp_path, anns)
    res, det_file = _results(tmp_path, dets)
    js = tmp_path / "eval.json"
    assert main(["eval", "--data", str(gt), "--detections", str(det_file), "--json", str(js)]) == 0
    row = json.loads(js.read_text())["rows"][0]
    ref = _pycocotools(gt, res)
    assert [row["mAP"], row["mAP50"], row["mAP75"]] == [round(v, 4) for v in ref]
    assert row["ms_per_frame"] is None and row["detections"] == len(dets)
    assert main(["eval", "--data", str(gt)]) == 2
    assert "one of --model" in capsys.readouterr().err


def test_detect_output_scores_as_the_model_run(tmp_path: Path) -> None:
    # `detect` writes detections.json boxes at full precision (scores at 5 decimals): scoring it
    # gives exactly the mAP of running the model in `eval` (2-decimal boxes moved it in the 4th digit)
    from overfeat_edge.pipeline.detector import Detector, DetectorConfig
    from overfeat_edge.runtime import load_runner
    from overfeat_edge.train.evaluate import evaluate
    from overfeat_edge.train.synth import write_coco

    write_coco(tmp_path / "data", images=6, seed=4)
    data = read_coco(tmp_path / "data")
    det = Detector(load_runner("onnxruntime", "overfeat-mini-shapes", threads=1), DetectorConfig())
    ran = evaluate(det, data)
    images = [str(s.path) for s in data.samples]
    args = ["detect", *images, "--model", "overfeat-mini-shapes", "--backend", "onnxruntime", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "out"), "--no-save-images"]) == 0
    scored = score(data, read_detections(tmp_path / "out" / "detections.json", data, len(data)), len(data))
    assert ran.detections == scored.detections > 0
    assert (scored.map, scored.map50, scored.map75) == (ran.map, ran.map50, ran.map75)
    written = json.loads((tmp_path / "out" / "detections.json").read_text())["images"]
    for entry, s in zip(written, data.samples, strict=True):
        d = det.detect(cv2.imread(str(s.path)))
        assert [r["box"] for r in entry["detections"]] == d.xyxy.astype(np.float64).tolist()  # every digit
        assert [r["score"] for r in entry["detections"]] == [round(float(v), 5) for v in d.score]
