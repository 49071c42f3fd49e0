"""build checks every option and input before it looks for TensorRT (none is installed here)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from overfeat_edge.commands import main
from overfeat_edge.engine.builder import has_qdq
from overfeat_edge.pycompat import zip_strict

NO_TRT = importlib.util.find_spec("tensorrt") is None or not hasattr(importlib.import_module("tensorrt"), "Builder")
M = ["build", "--model", "overfeat-mini-shapes"]
CACHE = "TRT-8601-EntropyCalibration2\ninput: 3c010204\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "bf16"], "--precision must be one of fp32, fp16, int8, got 'bf16'"),
        (["--precision", "int8"], "has no Q/DQ nodes, so an INT8 engine would have no INT8 scales"),
        (["--batch", "1,4,128"], "at most 64 frames per inference"),
        (["--calib", "x.cache"], "are for --precision int8, not fp16"),
        (["--precision", "int8", "--calib", "x", "--calib-images", "d"], "give one"),
        (["--precision", "int8", "--calib", "missing.cache"], "no such file"),
        (["--precision", "int8", "--calib-images", "no-such-folder"], "no-such-folder"),
        (["--workspace", "0"], "--workspace must be at least 1 MiB"),
        (["--dla", "-1"], "--dla must be a DLA core number"),
        (["--frame-size", "480"], "--frame-size must be HEIGHTxWIDTH"),
        (["--dynamic", "10"], "smaller than the 59px window"),
    ],
)
def test_bad_options_get_their_own_line_before_tensorrt(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*M, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "tensorrt" not in err.lower().replace("tensorrt <= 10", "")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_foreign_cache_is_refused_before_tensorrt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.cache"
    bad.write_text("calibration: yes\n")
    assert main([*M, "--precision", "int8", "--calib", str(bad)]) == 2
    assert "not a TensorRT calibration cache" in capsys.readouterr().err


@pytest.mark.skipif(not NO_TRT, reason="TensorRT is installed: the build would run")
def test_valid_options_reach_the_tensorrt_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "trt.cache"
    cache.write_text(CACHE)
    for args in ([], ["--precision", "int8", "--calib", str(cache)], ["--batch", "1,4,8"]):
        assert main([*M, *args, "--engines", str(tmp_path / "e")]) == 2
        assert "the 'tensorrt' package is needed" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_has_qdq_reads_the_op_types(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def model(ops: list[str]) -> Path:
        nodes, prev = [], "x"
        inits = [
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
            helper.make_tensor("z", TensorProto.INT8, [], [0]),
        ]
        for k, op in enumerate(ops):
            nodes.append(helper.make_node(op, [prev, "s", "z"] if "uantize" in op else [prev], [f"t{k}"]))
            prev = f"t{k}"
        g = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1])],
            inits,
        )
        path = tmp_path / f"{'-'.join(ops)}.onnx"
        onnx.save(helper.make_model(g), str(path))
        return path

    assert has_qdq(model(["QuantizeLinear", "DequantizeLinear"]))
    assert not has_qdq(model(["Relu", "Relu"]))


def test_a_cascade_builds_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from overfeat_edge.engine.builder import BuildRequest, prepare, prepare_stages, stage_engine_path

    stages = prepare_stages(prepare(BuildRequest(model="mtcnn-face", frame_hw=(480, 640))))
    assert [name for name, _ in stages] == ["rnet", "onet"]
    for (name, st), size in zip_strict(stages, (24, 48)):
        (profile,) = st.profiles
        assert (profile.scale, profile.min, profile.max) == (None, (1, 3, size, size), (256, 3, size, size))
        assert st.onnx.name == f"{name}.onnx" and st.request.precision == "fp16"
    assert stage_engine_path(Path("e/fp16-480x640-1a2b.engine"), "rnet") == Path("e/fp16-480x640-1a2b.rnet.engine")
    # P-Net: one profile per level of MTCNN's pyramid for the frame size
    levels = prepare(BuildRequest(model="mtcnn-face", frame_hw=(480, 640))).profiles
    assert [q.opt[2:] for q in levels][:3] == [(289, 385), (205, 273), (145, 194)]
