"""INT8 calibration: the Q/DQ form TensorRT needs, TensorRT's cache format, ranges from the runtime's
own preprocessing, and the command's caching and bad input."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx", reason="calibration needs onnx (onnxruntime.quantization imports it)")

import onnx

from overfeat_edge.calibrate.quantize import (
    LevelReader,
    Quantization,
    load_images,
    pyramid_inputs,
    quantize,
    read_trt_cache,
    tensor_scales,
    write_trt_cache,
)
from overfeat_edge.commands import main
from overfeat_edge.errors import InputError
from overfeat_edge.runtime import load_runner

SCALES = ["20", "30"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(6):
        img = rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)
        cv2.rectangle(img, (5 + i, 6), (25 + i, 30), (250, 250, 250), -1)
        cv2.imwrite(str(d / f"{i}.png"), img)
    return d


def test_trt_cache_format_hand_worked(tmp_path: Path) -> None:
    write_trt_cache(tmp_path / "c", {"input": 1.0, "conv1": 0.5}, "8601")
    assert (tmp_path / "c").read_text().splitlines() == [
        "TRT-8601-EntropyCalibration2",
        "conv1: 3f000000",
        "input: 3f800000",
    ]
    header, scales = read_trt_cache(tmp_path / "c")
    assert header == "TRT-8601-EntropyCalibration2" and scales == {"input": 1.0, "conv1": 0.5}


def test_qdq_model_is_what_tensorrt_needs(seed_onnx: Path, folder: Path, tmp_path: Path) -> None:
    fp32 = load_runner("onnxruntime", str(seed_onnx))
    frames = load_images(str(folder), 6).frames
    qdq, _ = quantize(Quantization(seed_onnx, fp32.spec, frames, SCALES, "minmax"), tmp_path / "out")
    m = onnx.load(str(qdq))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    q_nodes = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    dq_nodes = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert q_nodes and dq_nodes
    for n in q_nodes + dq_nodes:  # symmetric int8: every zero point is 0
        if len(n.input) > 2 and n.input[2] in inits:
            zp = inits[n.input[2]]
            assert zp.dtype == np.int8 and not zp.any()
    conv = [n for n in m.graph.node if n.op_type == "Conv"]
    assert all(n.input[2] in inits and inits[n.input[2]].dtype == np.float32 for n in conv)  # float biases
    conv_w = {n.input[1] for n in conv}
    weight_dq = [n for n in dq_nodes if n.output[0] in conv_w]
    assert weight_dq
    for n in weight_dq:  # per output channel, on axis 0
        scale = inits[n.input[1]]
        q = inits[n.input[0]]
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        assert axis == 0 and scale.shape == (q.shape[0],)
    int8 = load_runner("onnxruntime", str(qdq))
    assert int8.spec == fp32.spec  # our metadata survives: the runtime reads it like any model
    x = pyramid_inputs(frames[:1], fp32.spec, SCALES)
    for xs in x.values():
        a, b = fp32.run(xs[0])["scores"].ravel(), int8.run(xs[0])["scores"].ravel()
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99


def test_input_scale_comes_from_the_runtime_preprocessing(seed_onnx: Path, folder: Path, tmp_path: Path) -> None:
    spec = load_runner("onnxruntime", str(seed_onnx)).spec
    frames = load_images(str(folder), 6).frames
    _, ranges = quantize(Quantization(seed_onnx, spec, frames, SCALES, "minmax"), tmp_path / "out")
    levels = pyramid_inputs(frames, spec, SCALES)
    biggest = max(float(np.abs(x).max()) for xs in levels.values() for x in xs)  # numpy, independently
    scales = tensor_scales(ranges)
    assert scales["input"] == pytest.approx(biggest / 127, rel=1e-5)
    write_trt_cache(tmp_path / "trt.cache", scales)
    _, back = read_trt_cache(tmp_path / "trt.cache")
    assert back["input"] == pytest.approx(struct.unpack(">f", struct.pack(">f", biggest / 127))[0])
    assert len(back) == len(scales) > 5


def test_bad_image_sets(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no images"):
        load_images(str(tmp_path / "empty"), 4)
    (folder / "zz_broken.jpg").write_bytes(b"no")
    s = load_images(str(folder), 10)
    assert len(s.frames) == 6 and s.skipped == 1
    with pytest.raises(InputError, match="live source"):
        load_images("rtsp://127.0.0.1:1/x", 4)


def test_command_writes_reuses_and_warns(seed_onnx: Path, folder: Path, tmp_path: Path, capsys) -> None:
    args = ["calibrate", "--model", str(seed_onnx), "--images", str(folder), "--holdout", str(folder)]
    args += ["--method", "minmax", "--out", str(tmp_path / "calib"), "-s", "20", "-s", "30", "--count", "4"]
    assert main(args) == 0
    io = capsys.readouterr()
    assert "warning: 4 calibration images" in io.err
    # not a terminal (a log): 4 images x 2 scales, calibrated twice (TensorRT's ranges, the CPU's): a
    # line each tenth, 2 steps here, to the end
    steps = re.findall(r"^calibrating \(minmax, 4 images x 2 scales\): (\d+)/16 .*$", io.out, re.M)
    assert steps == [str(k) for k in range(2, 17, 2)]
    out = next(p for p in (tmp_path / "calib" / "seed").iterdir() if p.is_dir())
    assert (out / "model.qdq.onnx").is_file() and (out / "trt.cache").read_text().startswith("TRT-8601-")
    report = (tmp_path / "calib" / "seed" / "report.md").read_text()
    assert "minmax (recommended)" in report
    check_flavours(out / "model.qdq.onnx", out / "model.cpu.qdq.onnx")
    assert main(args) == 0
    assert "minmax: up to date" in capsys.readouterr().out  # same ONNX, images, method: not recalibrated
    bad = tmp_path / "other.onnx"
    m = onnx.load(str(seed_onnx))
    del m.metadata_props[:]
    onnx.save(m, str(bad))
    assert main(["calibrate", "--model", str(bad), "--images", str(folder), "--holdout", str(folder)]) == 2
    assert "no overfeat-edge spec" in capsys.readouterr().err


def check_flavours(trt: Path, cpu: Path) -> None:
    """TensorRT's Q/DQ: int8 activations, zero points 0. The CPU flavour: uint8 activations and int8
    weights, Q/DQ around convolutions only (a dequantized tensor feeds a Conv, or the ReLU that ONNX
    Runtime folds into the Conv before it; never a pool), and float outputs (the heads' last
    convolutions are not quantized)."""
    from onnx import TensorProto, numpy_helper

    def graph(path: Path) -> tuple[object, dict[str, np.ndarray]]:
        g = onnx.load(str(path)).graph
        return g, {t.name: numpy_helper.to_array(t) for t in g.initializer}

    g, init = graph(trt)
    zps = [init[n.input[2]] for n in g.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    g, init = graph(cpu)
    consumers = {i: n for n in g.node for i in n.input}
    producer = {o: n for n in g.node for o in n.output}
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
    assert dq and {consumers[n.output[0]].op_type for n in dq if n.output[0] in consumers} <= {"Conv", "Relu"}
    relu_fed = [
        consumers[n.output[0]] for n in dq if consumers.get(n.output[0]) and consumers[n.output[0]].op_type == "Relu"
    ]
    for r in relu_fed:  # Conv -> Q -> DQ -> Relu
        q = producer[producer[r.input[0]].input[0]]
        assert q.op_type == "QuantizeLinear" and producer[q.input[0]].op_type == "Conv"
    act_zps = {init[n.input[2]].dtype for n in g.node if n.op_type == "QuantizeLinear"}
    assert act_zps == {np.dtype(np.uint8)}  # activations; the weights are stored int8 (their DQ's input)
    weights = [init[n.input[0]] for n in dq if n.input[0] in init and init[n.input[0]].ndim == 4]
    assert weights and all(w.dtype == np.int8 for w in weights)  # (biases are int32)
    for out in g.output:  # float outputs: made by a float conv (through Softmax for the scores)
        node = producer[out.name]
        node = producer[node.input[0]] if node.op_type == "Softmax" else node
        assert node.op_type == "Conv" and all(producer.get(i, node).op_type != "DequantizeLinear" for i in node.input)
    assert TensorProto.FLOAT in {o.type.tensor_type.elem_type for o in g.output}


def test_minmax_ranges_do_not_depend_on_how_inputs_are_chunked(
    seed_onnx: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inputs go to ONNX Runtime's calibrator a few at a time (memory); min-max ranges must equal one pass's."""
    import overfeat_edge.calibrate.quantize as q

    spec = load_runner("onnxruntime", str(seed_onnx)).spec
    frames = load_images(str(folder), 6).frames
    got = {}
    for chunk in (1, 100):
        monkeypatch.setattr(q, "_CHUNK", chunk)
        _, ranges = quantize(Quantization(seed_onnx, spec, frames, SCALES, "minmax"), tmp_path / f"c{chunk}")
        got[chunk] = json.loads(ranges.read_text())
    assert len(got[1]["data"]) > 5 and got[1] == got[100]


def test_worst_layers_equal_onnxruntimes_all_at_once_sqnr(seed_onnx: Path, folder: Path, tmp_path: Path) -> None:
    """Our input-at-a-time SQNR must equal ONNX Runtime's compute_activation_error on all inputs at once."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from overfeat_edge.calibrate.report import worst_layers

    spec = load_runner("onnxruntime", str(seed_onnx)).spec
    frames = load_images(str(folder), 6).frames
    qdq, _ = quantize(Quantization(seed_onnx, spec, frames, SCALES, "minmax"), tmp_path / "out")
    inputs = next(iter(pyramid_inputs(frames, spec, SCALES).values()))[:4]
    modify_model_output_intermediate_tensors(str(seed_onnx), str(tmp_path / "f.onnx"))
    modify_model_output_intermediate_tensors(str(qdq), str(tmp_path / "q.onnx"))
    f_act = collect_activations(str(tmp_path / "f.onnx"), LevelReader(inputs))
    q_act = collect_activations(str(tmp_path / "q.onnx"), LevelReader(inputs))
    errors = compute_activation_error(create_activation_matching(q_act, f_act))
    want = sorted(((n, v["xmodel_err"]) for n, v in errors.items() if "xmodel_err" in v), key=lambda t: t[1])
    got = worst_layers(seed_onnx, qdq, inputs, k=len(want))
    assert len(got) == len(want) > 3
    assert [n for n, _ in got] == [n for n, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-4)
