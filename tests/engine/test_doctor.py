"""doctor's comparison: Polygraphy's Comparator over real runners (two ONNX Runtime sessions here;
TensorRT's on a GPU machine), judged per output with Polygraphy's tolerance rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.engine.doctor import TOLERANCE, compare_runners

pytest.importorskip("polygraphy", reason="doctor's comparison runs through Polygraphy (pip install polygraphy)")
onnx = pytest.importorskip("onnx")


def scaled(tmp_path: Path, name: str, box_scale: float) -> Path:
    """scores = input, boxes = box_scale * input: a network whose disagreement we know exactly."""
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["scores"]), helper.make_node("Mul", ["input", "k"], ["boxes"])],
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 5])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 4, 5]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 4, 5]),
        ],
        [helper.make_tensor("k", TensorProto.FLOAT, [], [box_scale])],
    )
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def runners(*paths: Path) -> list[object]:
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    return [OnnxrtRunner(SessionFromOnnx(str(p)), name=p.stem) for p in paths]


def test_agreeing_and_disagreeing_runners(tmp_path: Path) -> None:
    inputs = [np.random.default_rng(k).normal(size=(1, 3, 4, 5)).astype(np.float32) for k in range(2)]
    ref, same, off = scaled(tmp_path, "ref", 1.0), scaled(tmp_path, "same", 1.0), scaled(tmp_path, "off", 1.05)
    ok = compare_runners(runners(same, ref), inputs, TOLERANCE["fp16"])
    assert ok.passed and ok.max_abs_error == {"scores": 0.0, "boxes": 0.0}
    bad = compare_runners(runners(off, ref), inputs, TOLERANCE["fp16"])
    want = max(float(np.abs(0.05 * x).max()) for x in inputs)  # |1.05 x - x|, worked by hand
    assert not bad.passed and bad.max_abs_error["scores"] == 0.0
    assert bad.max_abs_error["boxes"] == pytest.approx(want, rel=1e-5)
    # 5% is within rtol 0.05 + atol: the same disagreement passes a looser tolerance
    assert compare_runners(runners(off, ref), inputs, {"scores": (0.0, 0.0), "boxes": (1e-3, 0.06)}).passed
