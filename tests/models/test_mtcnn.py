"""MTCNN from facenet-pytorch's weights: the conversion against an independent forward pass, safe
loading, and the shipped ONNX files reproduced by the import command."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from overfeat_edge.commands import main
from overfeat_edge.errors import ModelError
from overfeat_edge.models.mtcnn import read_state
from overfeat_edge.runtime import load_runner
from overfeat_edge.runtime.base import shipped_models

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "tests" / "data" / "facenet-pytorch-2.6.0"
SHIPPED = shipped_models()["mtcnn-face"]


def reference(stage: str, x: torch.Tensor) -> dict[str, np.ndarray]:
    """facenet-pytorch's forward pass, written out with torch.nn.functional on its own state dict."""
    sd = torch.load(WEIGHTS / f"{stage}.pt", weights_only=True)

    def conv(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"])

    def prelu(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.prelu(x, sd[f"{name}.weight"])

    def pool(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
        return F.max_pool2d(x, k, s, ceil_mode=True)

    def dense(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, sd[f"{name}.weight"], sd[f"{name}.bias"])

    if stage == "pnet":
        x = pool(prelu(conv(x, "conv1"), "prelu1"), 2, 2)
        x = prelu(conv(prelu(conv(x, "conv2"), "prelu2"), "conv3"), "prelu3")
        return {"scores": F.softmax(conv(x, "conv4_1"), dim=1).numpy(), "regression": conv(x, "conv4_2").numpy()}
    if stage == "rnet":
        x = pool(prelu(conv(x, "conv1"), "prelu1"), 3, 2)
        x = pool(prelu(conv(x, "conv2"), "prelu2"), 3, 2)
        x = prelu(conv(x, "conv3"), "prelu3")
        x = prelu(dense(x.permute(0, 3, 2, 1).reshape(len(x), -1), "dense4"), "prelu4")
        return {"scores": F.softmax(dense(x, "dense5_1"), dim=1).numpy(), "boxes": dense(x, "dense5_2").numpy()}
    x = pool(prelu(conv(x, "conv1"), "prelu1"), 3, 2)
    x = pool(prelu(conv(x, "conv2"), "prelu2"), 3, 2)
    x = pool(prelu(conv(x, "conv3"), "prelu3"), 2, 2)
    x = prelu(conv(x, "conv4"), "prelu4")
    x = prelu(dense(x.permute(0, 3, 2, 1).reshape(len(x), -1), "dense5"), "prelu5")
    return {
        "scores": F.softmax(dense(x, "dense6_1"), dim=1).numpy(),
        "boxes": dense(x, "dense6_2").numpy(),
        "landmarks": dense(x, "dense6_3").numpy(),
    }


@pytest.mark.parametrize(
    ("stage", "file", "size"), [("pnet", "model.onnx", 31), ("rnet", "rnet.onnx", 24), ("onet", "onet.onnx", 48)]
)
def test_shipped_nets_equal_the_reference_forward(stage: str, file: str, size: int) -> None:
    x = np.random.default_rng(1).normal(size=(4, 3, size, size + 6 * (stage == "pnet"))).astype(np.float32)
    want = reference(stage, torch.from_numpy(x))
    got = load_runner("onnxruntime", str(SHIPPED / file)).run(x)
    for name, v in want.items():
        np.testing.assert_allclose(got[name].reshape(v.shape), v, atol=2e-5, err_msg=f"{stage} {name}")
    if stage == "pnet":  # the box head gives each 12x12 cell's box, (1, 1, 12, 12) / 12 from its corner
        cells = got["boxes"]
        np.testing.assert_allclose(
            cells,
            np.broadcast_to(np.array([1, 1, 12, 12], np.float32)[None, :, None, None] / 12, cells.shape),
            atol=1e-7,
        )


def test_pnet_dense_map_equals_pnet_on_every_window() -> None:
    """No padding: the map over an image is P-Net run on each 12x12 window at stride 2. (The ceil-mode
    pool adds a last row/column whose window runs one pixel past an odd-sized input, as in MTCNN.)"""
    runner = load_runner("onnxruntime", "mtcnn-face")
    x = np.random.default_rng(2).normal(size=(1, 3, 27, 33)).astype(np.float32)
    dense = runner.run(x)
    assert dense["scores"].shape[2:] == (9, 12)  # ceil((27 - 4) / 2) - 3, ceil((33 - 4) / 2) - 3
    h, w = (27 - 12) // 2 + 1, (33 - 12) // 2 + 1  # the windows wholly inside
    for y in range(h):
        for xx in range(w):
            one = runner.run(np.ascontiguousarray(x[:, :, 2 * y : 2 * y + 12, 2 * xx : 2 * xx + 12]))
            for name in ("scores", "regression"):
                np.testing.assert_allclose(one[name][0, :, 0, 0], dense[name][0, :, y, xx], atol=1e-5)


class _Code:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))  # any callable: weights_only refuses to call it


def test_safe_loading_refuses_a_pickle_that_carries_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pnet.pt"
    torch.save({"conv1.weight": torch.zeros(1), "hook": _Code()}, path, pickle_protocol=2)
    with pytest.raises(ModelError, match="not loadable as plain weights"):
        read_state(path)
    assert "code ran" not in capsys.readouterr().out
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Code(), protocol=2))
    with pytest.raises(ModelError, match="not loadable as plain weights"):
        read_state(raw)


def test_import_refuses_other_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pnet", "rnet", "onet"):  # R-Net's weights under P-Net's name
        (tmp_path / f"{name}.pt").write_bytes((WEIGHTS / ("rnet.pt" if name == "pnet" else f"{name}.pt")).read_bytes())
    files = [str(tmp_path / f"{n}.pt") for n in ("pnet", "rnet", "onet")]
    assert main(["import-weights", "--format", "facenet-pytorch", *files, "--out", str(tmp_path / "m")]) == 2
    assert "not facenet-pytorch's pnet weights" in capsys.readouterr().err


@pytest.mark.slow
def test_import_weights_reproduces_the_shipped_model(tmp_path: Path) -> None:
    files = [str(WEIGHTS / f"{n}.pt") for n in ("pnet", "rnet", "onet")]
    assert main(["import-weights", "--format", "facenet-pytorch", *files, "--out", str(tmp_path / "m")]) == 0
    for f in sorted(SHIPPED.glob("*.onnx")):
        assert (tmp_path / "m" / f.name).read_bytes() == f.read_bytes(), f.name
