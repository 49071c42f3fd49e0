"""One record format: detect, run (and so MQTT, which sends run's lines) give the same records for
the same image with default options; the greedy merge's 0-1 confidence beside its summed score."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.commands import main
from overfeat_edge.pipeline.merge import greedy_merge
from overfeat_edge.records import detection_records, frame_record
from overfeat_edge.types import Detections


def test_greedy_confidence_is_the_members_mean() -> None:
    # two windows on one object (0.6 and 0.8) merge into one box: score 1.4 summed, confidence 0.7
    boxes = np.array([[10, 10, 50, 50], [12, 10, 52, 50], [200, 200, 240, 240]], np.float32)
    d = greedy_merge(Detections(boxes, np.array([0.6, 0.8, 0.9], np.float32), np.zeros(3)), 0.5)
    recs = detection_records(d, ["square"])
    assert [(r["score"], r["confidence"]) for r in recs] == [(1.4, 0.7), (0.9, 0.9)]
    assert recs[0]["box"] == [11.0, 10.0, 51.0, 50.0] and recs[0]["label"] == "square"


def test_frame_record_fields() -> None:
    d = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5]), np.array([0]), tracker_id=np.array([7]))
    d.metadata.update(stream="door", time=0.0, file="a/b.jpg")
    rec = frame_record(3, 0.1, d, ["face"])
    assert rec["time"] == "1970-01-01T00:00:00.000Z" and (rec["stream"], rec["frame"], rec["t"]) == ("door", 3, 0.1)
    assert rec["file"] == "a/b.jpg" and rec["detections"][0]["tracker_id"] == 7


def test_detect_and_run_give_the_same_records(tmp_path: Path) -> None:
    from overfeat_edge.train.synth import scene

    image = tmp_path / "photos" / "scene.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), scene(np.random.default_rng(3))[0])
    assert main(["detect", str(image), "--out", str(tmp_path / "d"), "--model", "overfeat-mini-shapes"]) == 0
    assert main(["run", str(image.parent), "--jsonl", str(tmp_path / "r.jsonl"), "--no-live"]) == 0
    detected = json.loads((tmp_path / "d" / "detections.json").read_text())["images"][0]
    (ran,) = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert detected["detections"] and detected["detections"] == ran["detections"]
    assert ran["file"] == detected["file"] == str(image) and ran["stream"] == "photos"
    for rec in (detected, ran):
        assert datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).tzinfo is not None
        assert all(0 <= d["confidence"] <= 1 and d["confidence"] <= d["score"] for d in rec["detections"])
        assert max(d["score"] for d in rec["detections"]) > 1  # greedy merging sums window confidences


@pytest.mark.parametrize("key", ["box", "score", "confidence", "class_id", "label"])
def test_every_box_has(key: str) -> None:
    d = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5]), np.array([0]))
    assert key in detection_records(d, ["a"])[0]
