"""Detections: per-box data, tracker ids and metadata ride through indexing, concat and records."""

from __future__ import annotations

import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.types import Detections


def dets(n: int, offset: float = 0.0, tracked: bool = True) -> Detections:
    xyxy = np.arange(4 * n, dtype=np.float32).reshape(n, 4) + offset
    return Detections(
        xyxy,
        np.linspace(0.9, 0.5, n),
        np.zeros(n),
        np.arange(n) + 10 if tracked else None,
        {"landmarks": np.arange(10 * n, dtype=np.float32).reshape(n, 5, 2)},
        {"source": "cam0", "frame": 7},
    )


def test_indexing_keeps_data_ids_and_metadata() -> None:
    d = dets(3)[np.array([2, 0])]
    assert d.tracker_id.tolist() == [12, 10]
    assert d.data["landmarks"][0, 0].tolist() == [20.0, 21.0] and d.metadata == {"source": "cam0", "frame": 7}
    assert len(dets(3)[1]) == 1 and dets(3)[np.zeros(3, bool)].data["landmarks"].shape == (0, 5, 2)


def test_concat_keeps_what_every_part_has() -> None:
    both = Detections.concat([dets(2), dets(1, 100.0)])
    assert both.data["landmarks"].shape == (3, 5, 2) and both.tracker_id.tolist() == [10, 11, 10]
    mixed = Detections.concat([dets(2), dets(1, tracked=False)])
    assert mixed.tracker_id is None


def test_records_carry_data() -> None:
    from overfeat_edge.records import detection_records

    rec = detection_records(dets(1), ["face"])[0]
    assert rec["tracker_id"] == 10 and rec["landmarks"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert rec["label"] == "face" and rec["box"] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tracker_id": np.zeros(3)}, "tracker_id must be of shape"),
        ({"data": {"landmarks": np.zeros((3, 5, 2))}}, "data\\['landmarks'\\] must have 2 rows"),
        ({"data": {"s": np.float32(1)}}, "must have 2 rows"),
    ],
)
def test_bad_shapes_say_what_was_expected(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Detections(np.zeros((2, 4)), np.zeros(2), np.zeros(2), **kwargs)
