"""Sinks: the files they leave are readable, also after an interrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream.sinks import JsonlSink, VideoSink
from overfeat_edge.types import Detections


def _frame(i: int) -> np.ndarray:
    f = np.zeros((96, 128, 3), np.uint8)
    f[:, : 8 * (i + 1)] = 200  # a bar that grows: frames are told apart by it
    return f


def _det() -> Detections:
    return Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.75], np.float32), np.array([1]))


def test_video_is_written_whole_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoSink(path, 25) as sink:
        for i in range(10):
            sink.write(i, i / 25, _frame(i), _det())
        assert not path.exists()  # under a temporary name until closed
    cap = cv2.VideoCapture(str(path))
    widths = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        widths.append(int((f[48, :, 0] > 100).sum()))
    cap.release()
    assert len(widths) == 10
    assert all(abs(w - 8 * (i + 1)) <= 3 for i, w in enumerate(widths))
    assert not list(tmp_path.glob(".*"))


def test_interrupted_run_leaves_readable_files(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with VideoSink(tmp_path / "v.mp4", 30) as v, JsonlSink(tmp_path / "d.jsonl", ["a", "b"]) as j:
            for i in range(5):
                v.write(i, i / 30, _frame(i), _det())
                j.write(i, i / 30, _frame(i), _det())
            raise KeyboardInterrupt
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["frame"] for r in recs] == [0, 1, 2, 3, 4]
    assert recs[1]["t"] == pytest.approx(1 / 30, abs=1e-4)
    want = {"box": [1.0, 2.0, 30.0, 40.0], "score": 0.75, "confidence": 0.75, "class_id": 1, "label": "b"}
    assert recs[0]["detections"] == [want]


def test_unknown_video_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must end in"):
        VideoSink(tmp_path / "out.gif", 30)
