"""Shared fixtures: tiny models and exported ONNX files made by the tests themselves."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

# --backend auto measures the installed CPU backends; the tests pin it to ONNX Runtime (exact float32
# reference values), except the tests of auto itself (tests/runtime/test_openvino.py)
os.environ.setdefault("OVERFEAT_EDGE_AUTO", "onnxruntime")

TORCH = "model tests need torch (pip install '.[torch]'); the edge tests run without it"
HERE = Path(__file__).resolve().parent
# tests of the torch side (networks, export, training, calibration with the onnx package): where
# torch or onnx is missing (a Jetson, the Python 3.8 venv) they are not collected, and the session's
# header says so; every other test is an edge test and runs without torch
NEEDS_TORCH = (
    "models",
    "export",
    "train",
    "calibrate",
    "benchmarks",
    "runtime/test_gpu.py",
    "commands/test_train_cli.py",
    "test_fuzz.py",
)


def _have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("onnx") is not None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if _have_torch():
        return None
    try:
        rel = collection_path.resolve().relative_to(HERE).as_posix()
    except ValueError:
        return None
    return True if any(rel == p or rel.startswith(p + "/") for p in NEEDS_TORCH) else None


def pytest_report_header(config: pytest.Config) -> str | None:
    if _have_torch():
        return None
    return f"torch or onnx not installed: not collected (they need them): {', '.join(NEEDS_TORCH)}"


@pytest.fixture(scope="session")
def seed_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seed-net (3 classes + background), random weights, fine stride, exported by our exporter."""
    pytest.importorskip("torch", reason=TORCH)
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
    pytest.importorskip("torch", reason=TORCH)
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
