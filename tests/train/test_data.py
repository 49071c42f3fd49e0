"""Synthetic scenes and the COCO / YOLO readers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.commands import main
from overfeat_edge.errors import InputError
from overfeat_edge.train.datasets import read_coco, read_dataset, read_yolo
from overfeat_edge.train.synth import CLASSES, SynthConfig, scene, write_coco


def test_scene_boxes_are_tight_around_painted_shapes() -> None:
    rng = np.random.default_rng(0)
    cfg = SynthConfig()
    sizes = []
    for _ in range(40):
        img, boxes, labels = scene(rng, cfg)
        assert img.shape == (cfg.height, cfg.width, 3) and img.dtype == np.uint8
        assert len(boxes) == len(labels) >= 1 and set(labels.tolist()) <= {0, 1, 2}
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= cfg.width).all() and (boxes[:, 3] <= cfg.height).all()
        sizes += np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).tolist()
    assert max(sizes) / min(sizes) >= 4  # objects over at least 4x in scale


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    a = write_coco(tmp_path / "a", 3, seed=5)
    b = write_coco(tmp_path / "b", 3, seed=5)
    c = write_coco(tmp_path / "c", 3, seed=6)
    assert json.loads(a.read_text())["annotations"] == json.loads(b.read_text())["annotations"]
    assert json.loads(a.read_text())["annotations"] != json.loads(c.read_text())["annotations"]


def test_coco_roundtrip_and_pycocotools(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools", reason="the COCO evaluator is optional")
    from pycocotools.coco import COCO

    path = write_coco(tmp_path, 4, seed=1)
    ds = read_coco(tmp_path)
    assert ds.class_names == list(CLASSES) and len(ds) == 4
    coco = COCO(str(path))  # the reference reader agrees on every box
    for s in ds.samples:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[s.image_id]))
        ref = np.array(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        )
        np.testing.assert_allclose(s.boxes, ref.reshape(-1, 4), rtol=1e-6)
        assert [a["category_id"] - 1 for a in anns] == s.labels.tolist()


def write_yolo(root: Path, coco_dir: Path) -> None:
    """Convert with the YOLO definition written out here (class cx cy w h, normalized)."""
    d = json.loads((coco_dir / "annotations.json").read_text())
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names:\n  0: square\n  1: disc\n  2: triangle\n")
    for im in d["images"]:
        stem = Path(im["file_name"]).stem
        (root / "images" / f"{stem}.jpg").write_bytes((coco_dir / im["file_name"]).read_bytes())
        lines = []
        for a in d["annotations"]:
            if a["image_id"] == im["id"]:
                x, y, w, h = a["bbox"]
                lines.append(
                    f"{a['category_id'] - 1} {(x + w / 2) / im['width']:.6f} {(y + h / 2) / im['height']:.6f} "
                    f"{w / im['width']:.6f} {h / im['height']:.6f}"
                )
        (root / "labels" / f"{stem}.txt").write_text("\n".join(lines))


def test_yolo_reads_the_same_boxes(tmp_path: Path) -> None:
    write_coco(tmp_path / "coco", 3, seed=2)
    write_yolo(tmp_path / "yolo", tmp_path / "coco")
    coco, yolo = read_coco(tmp_path / "coco"), read_dataset(tmp_path / "yolo")
    assert yolo.class_names == coco.class_names
    for a, b in zip(coco.samples, yolo.samples, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.01)
        assert a.labels.tolist() == b.labels.tolist()


def test_yolo_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="images/ folder"):
        read_yolo(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match=r"classes\.txt"):
        read_yolo(tmp_path)
    (tmp_path / "classes.txt").write_text("a\n")
    cv2.imwrite(str(tmp_path / "images" / "x.png"), np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.txt").write_text("3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InputError, match="class index outside"):
        read_yolo(tmp_path)


def test_cli_data_synth(tmp_path: Path) -> None:
    assert main(["data", "synth", "--out", str(tmp_path), "--images", "2", "--seed", "9"]) == 0
    assert len(read_coco(tmp_path)) == 2
    assert main(["data", "synth", "--out", str(tmp_path / "z"), "--images", "0"]) == 2
