"""detect's image loop as a library function (pipeline/images.py), without the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from overfeat_edge.io import read_image
from overfeat_edge.pipeline.detector import DetectorConfig
from overfeat_edge.pipeline.images import annotated_names, detect_images
from overfeat_edge.pipeline.load import load_detector
from overfeat_edge.pipeline.preprocess import to_bgr8
from overfeat_edge.records import detection_records
from overfeat_edge.types import Detections


def test_annotated_names_never_replace_an_input_or_each_other(tmp_path: Path) -> None:
    out = tmp_path / "out"
    a, b, c, own = tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "p.PNG", out / "y.jpg"
    names = annotated_names([a, b, c, own], out)
    # hand-worked: the second x.jpg is numbered, a PNG stays a PNG, an input inside OUT is not overwritten
    assert names == {a: out / "x.jpg", b: out / "x-2.jpg", c: out / "p.png", own: out / "y-2.jpg"}


def test_detect_images_records_skips_and_annotates(tmp_path: Path, seed_onnx: Path, images: list[Path]) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    paths = [images[0], bad, images[1]]
    out = tmp_path / "out"
    out.mkdir()
    det = load_detector(str(seed_onnx), backend="onnxruntime", config=DetectorConfig(scales=["20"], threshold=0.05))
    heard: list[tuple[Path, int]] = []
    skipped: list[str] = []

    def on_image(path: Path, d: Detections, ms: float) -> None:
        assert ms >= 0
        heard.append((path, len(d)))

    annotated = annotated_names(paths, out)
    results, failed = detect_images(det, paths, annotated=annotated, on_image=on_image, on_skip=skipped.append)
    assert failed == [str(bad)] and len(skipped) == 1 and str(bad) in skipped[0]
    assert [r["image"] for r in results] == [str(images[0]), str(images[1])]
    assert [r["frame"] for r in results] == [0, 2]  # the index in the list given, the unreadable one counted
    names = det.spec.class_names
    for r, path in zip(results, (images[0], images[1])):
        frame = to_bgr8(read_image(path))
        alone = det.detect(frame)  # the same detector on the image by itself
        assert r["detections"] == detection_records(alone, names)
        assert (r["height"], r["width"]) == frame.shape[:2] and r["annotated"] == str(annotated[path])
        drawn = cv2.imread(str(annotated[path]))
        assert drawn is not None and drawn.shape == frame.shape
    assert heard == [(images[0], len(results[0]["detections"])), (images[1], len(results[1]["detections"]))]
    assert any(r["detections"] for r in results)  # the low threshold leaves boxes to compare
    assert not (out / "bad.jpg").exists() and not (out / "bad.png").exists()


def test_detect_images_without_annotated_copies_writes_nothing(
    tmp_path: Path, seed_onnx: Path, images: list[Path]
) -> None:
    det = load_detector(str(seed_onnx), backend="onnxruntime", config=DetectorConfig(scales=["20"]))
    results, failed = detect_images(det, images)
    assert failed == [] and len(results) == 2 and all("annotated" not in r for r in results)
    assert sorted(p.name for p in images[0].parent.iterdir()) == sorted(p.name for p in images)
    assert np.isfinite([d["score"] for r in results for d in r["detections"]]).all()
