"""The cascade's steps, hand-worked, and mtcnn-face against boxes recorded from facenet-pytorch."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.errors import ModelError
from overfeat_edge.pipeline.cascade import StageSpec, cascade_stages, crop_regions, regress, square
from overfeat_edge.pipeline.load import load_detector
from overfeat_edge.pipeline.merge import box_iou, nms
from overfeat_edge.pipeline.pyramid import expand_scales, parse_scales
from overfeat_edge.types import Detections

DATA = Path(__file__).resolve().parents[1] / "data"


def test_square_about_the_centre() -> None:
    got = square(np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 8.0, 2.0]]))
    np.testing.assert_allclose(got, [[0.0, 20.0, 40.0, 60.0], [0.0, -3.0, 8.0, 5.0]])


def test_crop_regions_mtcnn_convention() -> None:
    # corners truncated, read 1-based (one pixel before), clamped to the 50x40 (h x w) image
    got = crop_regions(
        np.array([[10.7, 5.2, 20.9, 15.5], [-3.0, -2.0, 60.0, 70.0], [45.0, 55.0, 48.0, 58.0]]), (50, 40)
    )
    np.testing.assert_array_equal(got, [[9, 4, 20, 15], [0, 0, 40, 50], [44, 54, 40, 50]])  # the last is empty


def test_regress_sizes() -> None:
    box = np.array([[10.0, 10.0, 19.0, 29.0]])
    np.testing.assert_allclose(regress(box, np.array([[0.1, -0.1, 0.0, 0.5]])), [[11.0, 8.0, 19.0, 39.0]])  # w=10, h=20
    np.testing.assert_allclose(regress(box, np.array([[0.1, 0.0, 0.0, 0.0]]), plus_one=False), [[10.9, 10, 19, 29]])


def test_nms_over_the_smaller_box() -> None:
    # a small box inside a big one: IoU 0.25 keeps both; overlap over the smaller box is 1 and drops it
    d = Detections(np.array([[0, 0, 20, 20], [5, 5, 15, 15]], np.float32), np.array([0.9, 0.8]), np.zeros(2))
    assert len(nms(d, 0.7)) == 2 and len(nms(d, 0.7, overlap="min")) == 1


def test_geometric_pyramid_is_mtcnns() -> None:
    # scale 12/20 * 0.709^k while min(h, w) * scale >= 12, worked out independently
    for hw in [(512, 512), (600, 512), (25, 25), (480, 640)]:
        want, s, side = [], 0.6, min(hw) * 0.6
        while side >= 12:
            want.append(s)
            s, side = s * 0.709, side * 0.709
        got = expand_scales(parse_scales(["geo:20:0.709"]), hw, 12)
        np.testing.assert_allclose([g.factor for g in got], want)
        assert [g.input_hw(hw) for g in got] == [(int(hw[0] * f + 1), int(hw[1] * f + 1)) for f in want]


def test_cascade_spec_is_validated() -> None:
    with pytest.raises(ModelError, match="malformed cascade stage"):
        cascade_stages({"cascade": {"stages": [{"name": "x"}]}}, "m")
    with pytest.raises(ModelError, match="plain file name"):
        StageSpec.from_dict({"name": "r", "file": "../x.onnx", "threshold": 0.5, "nms": 0.5}, "m")
    with pytest.raises(ModelError, match="out-of-range"):
        StageSpec.from_dict({"name": "r", "file": "r.onnx", "threshold": 2, "nms": 0.5}, "m")


@pytest.fixture(scope="module")
def faces() -> object:
    return load_detector("mtcnn-face", backend="onnxruntime", threads=2)


@pytest.mark.parametrize("photo", ["astronaut.jpg", "camera.jpg"])
def test_cascade_matches_facenet_pytorch(faces, photo: str) -> None:
    """facenet-pytorch 2.6.0's own MTCNN (an independent implementation), recorded by
    benchmarks/mtcnn_vs_facenet.py --record on these photos."""
    rec = json.loads((DATA / "mtcnn_facenet.json").read_text())
    want = rec["photos"][photo]
    got = faces.detect(cv2.imread(str(DATA / "photos" / photo)))
    assert len(got) == len(want["boxes"]) >= 1
    iou = box_iou(got.xyxy, np.asarray(want["boxes"], np.float32))
    assert iou.diagonal().min() >= 0.99  # both sorted best first
    np.testing.assert_allclose(got.score, want["probs"], atol=1e-4)
    np.testing.assert_allclose(got.data["landmarks"], np.asarray(want["points"]), atol=0.5)
    assert set(got.data) == {"rnet_score", "onet_score", "landmarks"}
