"""Shared fixtures: tiny models and exported ONNX files made by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="model tests need torch (pip install '.[torch]')")


@pytest.fixture(scope="session")
def seed_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed-net (3 classes + background), random weights, fine stride, exported by our exporter."""
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import create_model
    from overfeat_edge.spec import default_spec

    net = create_model("seed-net", seed=0)
    spec = default_spec(net.arch, ["a", "b", "c"])
    path = tmp_path_factory.mktemp("onnx") / "seed.onnx"
    export_onnx(net, spec, path)
    return path


@pytest.fixture(scope="session")
def fast_small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import create_model
    from overfeat_edge.spec import default_spec

    net = create_model("overfeat-fast@0.1", num_classes=2, seed=0)
    spec = default_spec(net.arch, ["x", "y"])
    path = tmp_path_factory.mktemp("onnx") / "fast.onnx"
    export_onnx(net, spec, path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Two small noisy PNG images with a bright square each."""
    import cv2

    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(48, 64), (60, 40)]):
        img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        img[10:30, 12:32] = 230
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths
