"""The shipped demo model really detects: COCO mAP on unseen generated scenes, recall on the demo video,
and its ONNX is the export of its checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.pipeline.merge import box_iou
from overfeat_edge.runtime import load_runner
from overfeat_edge.runtime.base import shipped_models

NAME = "overfeat-mini-shapes"
# bounds below what was measured when the model was shipped (MODEL_CARD.md); ONNX Runtime on a CPU is
# deterministic, the margin is for other versions of it and of OpenCV
MIN_MAP50 = 0.80  # the bar the issue sets; measured 0.878 on these 60 images
MIN_MAP = 0.60  # measured 0.680
MIN_VIDEO_RECALL = 0.85  # measured 37 of 40 objects (0.925)


@pytest.fixture(scope="module")
def detector() -> Detector:
    if NAME not in shipped_models():
        pytest.fail(f"{NAME} is not shipped in overfeat_edge/assets")
    return Detector(load_runner("onnxruntime", NAME, threads=2), DetectorConfig())


def test_map_on_unseen_scenes(detector: Detector, tmp_path: Path) -> None:
    pytest.importorskip("pycocotools", reason="COCO mAP needs pycocotools (the dev extra)")
    from overfeat_edge.train.datasets import read_coco
    from overfeat_edge.train.evaluate import evaluate
    from overfeat_edge.train.synth import write_coco

    write_coco(tmp_path, images=60, seed=4)  # training used seed 1, tuning seed 2, the report seed 3
    r = evaluate(detector, read_coco(tmp_path))
    assert r.map50 >= MIN_MAP50, r
    assert r.map >= MIN_MAP, r


def test_recall_on_the_demo_video(detector: Detector) -> None:
    from overfeat_edge.train.synth import video

    hits = total = 0
    for i, (frame, boxes, labels) in enumerate(video(7, 60)):
        if i % 6:
            continue
        det = detector.detect(frame)
        for b, c in zip(boxes, labels, strict=True):
            same = det.class_id == c
            total += 1
            hits += bool(same.any() and box_iou(b[None], det.xyxy[same]).max() >= 0.5)
    assert hits / total >= MIN_VIDEO_RECALL, (hits, total)


def test_onnx_is_the_checkpoints_export(detector: Detector) -> None:
    torch = pytest.importorskip("torch", reason="comparing with the checkpoint needs torch")
    from overfeat_edge.models import load_checkpoint

    net, spec, _ = load_checkpoint(shipped_models()[NAME] / "model.pt")
    assert spec == detector.spec
    x = np.random.default_rng(0).normal(size=(1, 3, 131, 175)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in net.predict(torch.from_numpy(x))]
    got = list(detector.runner.run(x).values())
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
