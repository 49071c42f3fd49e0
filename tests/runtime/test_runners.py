"""The detector gives the same detections on onnxruntime and torch, and the edge path has no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime import load_runner


def test_detector_same_on_both_backends(tmp_path: Path, fast_small_onnx: Path) -> None:
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import create_model, save_checkpoint
    from overfeat_edge.spec import default_spec

    net = create_model("overfeat-fast@0.1", num_classes=2, seed=0)
    spec = default_spec(net.arch, ["x", "y"])
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, net, spec)
    onnx_path = tmp_path / "m.onnx"
    export_onnx(net, spec, onnx_path)
    frame = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    cfg = DetectorConfig(scales=["231", "300"], threshold=0.0, merge="nms")
    a = Detector(load_runner("onnxruntime", str(onnx_path)), cfg)
    b = Detector(load_runner("torch", str(ckpt)), cfg)
    la, ma = a.infer(frame)
    lb, mb = b.infer(frame)
    assert la == lb and [m["scores"].shape for m in ma] == [(3, lv.out_hw[0], lv.out_hw[1]) for lv in la]
    for a_maps, b_maps in zip_strict(ma, mb):
        assert set(a_maps) == set(b_maps) == {"scores", "boxes"}
        for name in a_maps:
            np.testing.assert_allclose(a_maps[name], b_maps[name], atol=1e-4)


NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" or name.startswith("torch.") or name == "onnx" or name.startswith("onnx."):
                raise ImportError(f"blocked: {name}")

    sys.meta_path.insert(0, Block())
    import overfeat_edge.runtime, overfeat_edge.pipeline.detector, overfeat_edge.commands
    import overfeat_edge.runtime.onnxruntime, overfeat_edge.pipeline.draw, overfeat_edge.stream.sinks
    from overfeat_edge.commands import main
    code = main(sys.argv[1:])
    assert "torch" not in sys.modules, "torch was imported"
    sys.exit(code)
    """
)


def test_edge_path_runs_without_torch(tmp_path: Path, seed_onnx: Path, images: list[Path]) -> None:
    out = tmp_path / "out"
    args = ["detect", *map(str, images), "--model", str(seed_onnx), "--out", str(out), "--scales", "20,30"]
    r = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "detections.json").is_file() and (out / "img0.png").is_file()
    # a command that needs torch fails alone, with one line naming the extra
    r = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "export", "--model", "seed-net", "--out", str(tmp_path / "x.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "pip install torch onnx" in r.stderr and "Traceback" not in r.stderr
    assert "pip install -e '.[torch]'" in r.stderr  # from a checkout: the extra (no such name on PyPI)


def test_demo_runs_without_torch(tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path), "--frames", "3"]
    r = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo.mp4").is_file() and len((tmp_path / "detections.jsonl").read_text().splitlines()) == 3
    # training needs torch and says so in one line
    r = subprocess.run(
        [sys.executable, "-c", NO_TORCH, "train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # (on Python 3.8/3.9 the torch side is refused for the Python, before the missing package)
    needs = "pip install torch onnx" if sys.version_info >= (3, 10) else "needs Python 3.10+"
    assert r.returncode == 2 and needs in r.stderr and "Traceback" not in r.stderr


def test_every_runner_returns_every_head(tmp_path: Path) -> None:
    """A crop classifier with a third head (MTCNN's O-Net: landmarks) gives it from torch as from
    ONNX Runtime, by name, in one ``run``; ``run_levels`` is ``run`` on each batch."""
    pytest.importorskip("torch", reason="the torch runner needs torch (not in the edge install)")
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import create_model
    from overfeat_edge.spec import default_spec

    net = create_model("mtcnn-onet", seed=0)
    export_onnx(net, default_spec(net.arch, fine_stride=False), tmp_path / "onet.onnx")  # a neck: no fine stride
    x = np.random.default_rng(0).normal(size=(3, 3, 48, 48)).astype(np.float32)
    a = load_runner("torch", "mtcnn-onet").run(x)  # the registry name: the same seed-0 weights
    b = load_runner("onnxruntime", str(tmp_path / "onet.onnx")).run(x)
    assert list(a) == list(b) == ["scores", "boxes", "landmarks"] and a["landmarks"].shape == (3, 10, 1, 1)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-5)
    levels = load_runner("onnxruntime", str(tmp_path / "onet.onnx")).run_levels([x[:1], x[1:]])
    np.testing.assert_allclose(np.concatenate([lv["landmarks"] for lv in levels]), b["landmarks"], atol=1e-6)
