"""A pyramid's small levels packed in one canvas (runtime/canvas.py, export/packed.py): the same outputs as
each level run alone through the model's own graph, on every ONNX backend here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.registry import entry
from overfeat_edge.runtime import canvas, load_runner

BACKENDS = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
ASSETS = entry("mtcnn-face").folder
assert ASSETS is not None


def test_layout_keeps_every_level_inside_aligned_and_apart() -> None:
    """Random level sizes (pyramids and not): each rectangle inside the canvas, its corner a multiple of the
    stride, no two overlapping (checked by painting them), the canvas as high as the highest level."""
    rng = np.random.default_rng(3)
    for case in range(300):
        align = int(rng.choice([1, 2, 4]))
        if case % 2:
            side = int(rng.integers(12, 120))
            sizes = [(max(12, int(side * 0.709**k)), max(12, int(side * 1.3 * 0.709**k))) for k in range(8)]
        else:
            sizes = [(int(rng.integers(12, 90)), int(rng.integers(12, 90))) for _ in range(int(rng.integers(1, 9)))]
        places, (height, width) = canvas.layout(tuple(sizes), align)
        assert height == -(-max(h for h, _ in sizes) // align) * align and width % align == 0
        paint = np.zeros((height, width), np.int32)
        for (y, x), (h, w) in zip(places, sizes):
            assert y % align == 0 and x % align == 0 and y + h <= height and x + w <= width
            paint[y : y + h, x : x + w] += 1
        assert paint.max() == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_packed_levels_equal_each_level_alone(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """mtcnn-face's P-Net: a photo's pyramid, odd sizes (whose ceil-mode pool reads past the level's last
    column alone, the next level's pixels in a canvas) and a batch of two frames: run_levels with the packed
    graph gives each level's outputs as its own run does, to float32 rounding."""
    monkeypatch.setattr(canvas, "PACK_PIXELS", 10**9)  # every level in the canvas
    runner = load_runner(backend, "mtcnn-face", threads=1)
    assert runner.packed is not None
    rng = np.random.default_rng(5)
    pyramid = [(int(120 * 0.709**k), int(160 * 0.709**k)) for k in range(6)]
    odd = [(13, 15), (17, 13), (12, 12), (25, 31)]
    for sizes, n in ((pyramid, 1), (odd, 1), (odd, 2)):
        batches = [rng.uniform(-1, 1, (n, 3, h, w)).astype(np.float32) for h, w in sizes]
        packed = runner.run_levels(batches)
        for x, got in zip(batches, packed):
            alone = runner.run(x)
            assert set(got) == set(alone)
            for name, v in alone.items():
                assert got[name].shape == v.shape
                np.testing.assert_allclose(got[name], v, atol=2e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_photo_gives_the_same_faces_packed_or_not(backend: str) -> None:
    """detect() on the shipped photos: the same boxes, scores and landmarks with the packed graph as without."""
    import cv2

    from overfeat_edge.pipeline.load import load_detector

    det = load_detector("mtcnn-face", backend=backend, threads=1)
    photos = sorted((Path(__file__).resolve().parents[1] / "data" / "photos").glob("*.jpg"))
    assert det.runner.packed is not None and photos
    for photo in photos:
        bgr = cv2.imread(str(photo))
        packed = det.detect(bgr)
        keep, det.runner.packed = det.runner.packed, None
        alone = det.detect(bgr)
        det.runner.packed = keep
        assert len(packed) == len(alone) >= 1
        np.testing.assert_allclose(packed.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(packed.score, alone.score, atol=1e-5)
        np.testing.assert_allclose(packed.data["landmarks"], alone.data["landmarks"], atol=1e-3)


def test_only_a_one_pool_graph_is_packed_and_the_shipped_file_is_what_export_writes(tmp_path: Path) -> None:
    """P-Net (one pool) gets a packed graph, byte for byte the shipped one; R-Net, O-Net and the OverFeat
    demo model (two or more pools) get none, and their runners run level by level."""
    import shutil

    onnx = pytest.importorskip("onnx", reason="the packed graph is written with the onnx package (export)")
    from overfeat_edge.export.packed import packed_graph, write_packed

    shutil.copy(ASSETS / "model.onnx", tmp_path / "model.onnx")
    written = write_packed(tmp_path / "model.onnx")
    assert written == tmp_path / "model.packed.onnx"
    assert written.read_bytes() == (ASSETS / "model.packed.onnx").read_bytes()
    for name, pools in (("rnet.onnx", 2), ("onet.onnx", 3)):
        assert packed_graph(onnx.load(str(ASSETS / name))) == f"{pools} pools (packing needs exactly one)"
    mini = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1)
    assert mini.packed is None
    (tmp_path / "model.packed.onnx").write_bytes(b"stale")
    assert isinstance(write_packed(tmp_path / "model.onnx"), Path)  # rewritten over a stale file
    shutil.copy(ASSETS / "rnet.onnx", tmp_path / "rnet.onnx")
    (tmp_path / "rnet.packed.onnx").write_bytes(b"stale")
    assert write_packed(tmp_path / "rnet.onnx") == "2 pools (packing needs exactly one)"
    assert not (tmp_path / "rnet.packed.onnx").exists()


@pytest.mark.parametrize(
    "change, why",
    [
        ({"kernel_shape": [3, 3]}, "the pool is not a ceil-mode one"),  # a 3/2 window reads the next level
        ({"ceil_mode": 0}, "the pool is not a ceil-mode one"),  # floor mode: the pooled map is smaller than the mask's
        ({"pads": [1, 1, 1, 1]}, "the pool is not a ceil-mode one"),
    ],
)
def test_a_pool_packing_cannot_keep_exact_is_refused(change: dict, why: str) -> None:
    """P-Net with its pool changed to one whose windows would reach past a level (or whose map would not match
    the mask) gets no packed graph."""
    onnx = pytest.importorskip("onnx", reason="the packed graph is written with the onnx package (export)")
    from onnx import helper

    from overfeat_edge.export.packed import packed_graph

    model = onnx.load(str(ASSETS / "model.onnx"))
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute} | change
    del pool.attribute[:]
    pool.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    assert str(packed_graph(model)).startswith(why)


def test_a_stale_or_broken_packed_file_is_not_used(tmp_path: Path) -> None:
    """The packed graph is used only beside the very file it was made from: after the model changes (its
    weights), or with a packed file that does not load, the levels run one by one and detect still works."""
    import shutil

    onnx = pytest.importorskip("onnx", reason="the packed graph is written with the onnx package (export)")
    from overfeat_edge.export.packed import write_packed

    for name in ("model.onnx", "rnet.onnx", "onet.onnx"):
        shutil.copy(ASSETS / name, tmp_path / name)
    write_packed(tmp_path / "model.onnx")
    assert load_runner("onnxruntime", str(tmp_path / "model.onnx"), threads=1).packed is not None
    model = onnx.load(str(tmp_path / "model.onnx"))
    weight = next(t for t in model.graph.initializer if t.name.endswith("weight"))
    values = onnx.numpy_helper.to_array(weight) * np.float32(1.01)
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(tmp_path / "model.onnx"))
    assert load_runner("onnxruntime", str(tmp_path / "model.onnx"), threads=1).packed is None  # stale
    (tmp_path / "model.packed.onnx").write_bytes(b"not an onnx file")
    runner = load_runner("onnxruntime", str(tmp_path / "model.onnx"), threads=1)
    assert runner.packed is None
    x = np.zeros((1, 3, 20, 20), np.float32)
    side = -(-(20 - 2) // 2) - 4  # P-Net on 20 px: a 3x3 conv, a 2/2 ceil-mode pool, two 3x3 convs
    assert [o["scores"].shape for o in runner.run_levels([x, x, x])] == [(1, 2, side, side)] * 3
