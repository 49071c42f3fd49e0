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


# --- ultralytics layouts: data.yaml splits, images/<split>, DIR/images/val


def _yolo_split_dataset(root: Path) -> dict[str, list[str]]:
    """images/train (a, b), images/val (c), labels beside under labels/; returns the stems per split.
    Image k is 100 x 200 (h x w) with one box of class k % 2 at cx 0.5, cy 0.25, w 0.1, h 0.2."""
    splits = {"train": ["a", "b"], "val": ["c"]}
    for split, stems in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for k, stem in enumerate(stems):
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), np.zeros((100, 200, 3), np.uint8))
            (root / "labels" / split / f"{stem}.txt").write_text(f"{k % 2} 0.5 0.25 0.1 0.2\n")
    return splits


DATA_YAML = """# an ultralytics dataset
path: .  # the root
train: images/train
val: images/val
test:  # none
names:
  0: square
  1: 'disc'
download: |
  from ultralytics.utils import download  # a script: its lines are no keys
  names: [x, y]
"""


def test_data_yaml_splits_are_honoured(tmp_path: Path) -> None:
    splits = _yolo_split_dataset(tmp_path)
    (tmp_path / "data.yaml").write_text(DATA_YAML)
    for where in (tmp_path, tmp_path / "data.yaml"):
        for split, stems in splits.items():
            ds = read_dataset(where, split)
            assert ds.class_names == ["square", "disc"]
            assert [s.path.stem for s in ds.samples] == stems
    train = read_dataset(tmp_path, "train")
    # box by hand: cx 100, cy 25, w 20, h 20 in a 200 x 100 image
    assert train.samples[0].boxes.tolist() == [[90.0, 15.0, 110.0, 35.0]] and train.samples[0].boxes.dtype == np.float64
    assert [s.labels.tolist() for s in train.samples] == [[0], [1]]
    with pytest.raises(InputError, match=r"no 'test:' split \(it has: train, val\)"):
        read_dataset(tmp_path, "test")


def test_data_yaml_lists_and_image_lists(tmp_path: Path) -> None:
    _yolo_split_dataset(tmp_path / "d")
    (tmp_path / "d" / "more.txt").write_text("images/val/c.png\n")
    (tmp_path / "data.yml").write_text("path: d\ntrain:\n  - images/train\n  - more.txt\nnames: [square, disc]\n")
    ds = read_dataset(tmp_path / "data.yml", "train")
    assert [s.path.stem for s in ds.samples] == ["a", "b", "c"] and ds.class_names == ["square", "disc"]


def test_split_folders_without_yaml_and_an_images_folder(tmp_path: Path) -> None:
    _yolo_split_dataset(tmp_path)
    (tmp_path / "classes.txt").write_text("square\ndisc\n")
    assert [s.path.stem for s in read_dataset(tmp_path, "train").samples] == ["a", "b"]  # not val's c
    assert [s.path.stem for s in read_dataset(tmp_path, "val").samples] == ["c"]
    val = read_dataset(tmp_path / "images" / "val")  # eval --data DIR/images/val
    assert [s.path.stem for s in val.samples] == ["c"] and val.class_names == ["square", "disc"]
    assert val.samples[0].boxes.tolist() == [[90.0, 15.0, 110.0, 35.0]]
    with pytest.raises(InputError, match=r"no images/test \(it has: images/train, images/val\)"):
        read_dataset(tmp_path, "test")


def test_eval_split_option(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools", reason="eval needs pycocotools")
    _yolo_split_dataset(tmp_path)
    (tmp_path / "data.yaml").write_text(DATA_YAML)
    # detect's format: the val image's box exactly, and a box on a train image (not in val)
    dets = {
        "images": [
            {
                "image": str(tmp_path / "images/val/c.png"),
                "detections": [{"class_id": 0, "score": 0.9, "box": [90, 15, 110, 35]}],
            }
        ]
    }
    (tmp_path / "d.json").write_text(json.dumps(dets))
    js = tmp_path / "e.json"
    args = ["eval", "--data", str(tmp_path), "--detections", str(tmp_path / "d.json"), "--json", str(js)]
    assert main([*args, "--split", "val"]) == 0
    assert json.loads(js.read_text())["rows"][0]["mAP"] == 1.0
    assert main([*args, "--split", "train"]) == 2  # c.png is no train image
    assert main([*args, "--split", "nope"]) == 2
