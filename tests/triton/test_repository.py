"""export --triton: every config.pbtxt parsed by Triton's own protobuf schema, checked against the ONNX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from overfeat_edge.runtime.base import ASSETS
from overfeat_edge.triton.repository import PYTHON_MODEL, quote, write_repository

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="pip install tritonclient[grpc]")
text_format = pytest.importorskip("google.protobuf.text_format")
onnx = pytest.importorskip("onnx", reason="the reference reads the ONNX graph with the onnx package")

ROOT = Path(__file__).resolve().parents[2]
# served name -> its ONNX in the shipped assets (a cascade: one model per network)
MODELS = {
    "overfeat-mini-shapes": {"overfeat-mini-shapes": "overfeat-mini-shapes/model.onnx"},
    "mtcnn-face": {
        "mtcnn-face": "mtcnn-face/model.onnx",
        "mtcnn-face-rnet": "mtcnn-face/rnet.onnx",
        "mtcnn-face-onet": "mtcnn-face/onet.onnx",
    },
}
KINDS = {"onnxruntime": "KIND_AUTO", "openvino": "KIND_CPU", "python": "KIND_CPU", "tensorrt": "KIND_GPU"}


def parse(path: Path) -> object:
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def onnx_facts(path: Path) -> tuple[list[tuple[str, int]], dict[str, object]]:
    """(output name, channels) and the spec, read by the onnx package (not by the code under test)."""
    m = onnx.load(str(path))
    outs = [(o.name, o.type.tensor_type.shape.dim[1].dim_value) for o in m.graph.output]
    meta = {p.key: p.value for p in m.metadata_props}
    return outs, json.loads(meta["overfeat_edge.spec"])


@pytest.mark.parametrize("backend", list(KINDS))
@pytest.mark.parametrize("model", list(MODELS))
def test_every_config_parses_and_matches_the_onnx(tmp_path: Path, model: str, backend: str) -> None:
    folders = write_repository(model, tmp_path, backend=backend, max_batch=16, instances=3)
    assert sorted(f.name for f in folders) == sorted(MODELS[model]) == sorted(p.name for p in tmp_path.iterdir())
    for name, rel in MODELS[model].items():
        cfg = parse(tmp_path / name / "config.pbtxt")
        outputs, spec = onnx_facts(ASSETS / rel)
        assert cfg.name == name and cfg.max_batch_size == 16
        assert [(i.name, list(i.dims), model_config_pb2.DataType.Name(i.data_type)) for i in cfg.input] == [
            ("input", [3, -1, -1], "TYPE_FP32")
        ]
        assert [(o.name, list(o.dims)) for o in cfg.output] == [(n, [c, -1, -1]) for n, c in outputs]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 1000
        assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in cfg.instance_group] == [
            (3, KINDS[backend])
        ]
        assert json.loads(cfg.parameters["overfeat_edge.spec"].string_value) == spec
        files = sorted(p.name for p in (tmp_path / name / "1").iterdir())
        if backend == "tensorrt":  # the plan is built on the serving GPU: written, not run here
            assert cfg.platform == "tensorrt_plan" and files == []
            continue
        assert (tmp_path / name / "1" / "model.onnx").read_bytes() == (ASSETS / rel).read_bytes()
        assert cfg.backend == backend
        if backend == "python":
            assert files == ["model.onnx", "model.py"]
            assert (tmp_path / name / "1" / "model.py").read_text() == PYTHON_MODEL.read_text()
            assert cfg.parameters["overfeat_edge.runtime"].string_value == "onnxruntime"


def test_mtcnn_spec_names_the_stages_the_repository_serves(tmp_path: Path) -> None:
    write_repository("mtcnn-face", tmp_path)
    spec = json.loads(parse(tmp_path / "mtcnn-face" / "config.pbtxt").parameters["overfeat_edge.spec"].string_value)
    files = [s["file"] for s in spec["extra"]["cascade"]["stages"]]
    assert files == ["rnet.onnx", "onet.onnx"]
    assert all((tmp_path / f"mtcnn-face-{f[:-5]}" / "config.pbtxt").is_file() for f in files)


@pytest.mark.parametrize("text", ['a "quoted" \\ back\\slash', "line\nbreak\ttab", "caf\u00e9 \u2192 \U0001f600", ""])
def test_quote_round_trips_through_protobuf(text: str) -> None:
    cfg = text_format.Parse(
        f"parameters {{ key: {quote('k')} value {{ string_value: {quote(text)} }} }}", model_config_pb2.ModelConfig()
    )
    assert cfg.parameters["k"].string_value == text


def test_export_again_replaces_the_model_whole(tmp_path: Path) -> None:
    write_repository("overfeat-mini-shapes", tmp_path, backend="python", max_batch=4)
    (tmp_path / "overfeat-mini-shapes" / "1" / "stale.txt").write_text("old")
    write_repository("overfeat-mini-shapes", tmp_path, backend="onnxruntime", max_batch=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overfeat-mini-shapes"]  # no temporary left
    assert sorted(p.name for p in (tmp_path / "overfeat-mini-shapes" / "1").iterdir()) == ["model.onnx"]
    assert parse(tmp_path / "overfeat-mini-shapes" / "config.pbtxt").max_batch_size == 2


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=120)


def test_export_command_writes_the_repository(tmp_path: Path) -> None:
    r = cli("export", "--model", "mtcnn-face", "--triton", str(tmp_path / "repo"), "--triton-backend", "python")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == sorted(MODELS["mtcnn-face"])
    assert "mtcnn-face-onet/config.pbtxt" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-batch", "0"], "--max-batch must be between 1 and 1024"),
        (["--instances", "0"], "--instances must be between 1 and 64"),
        (["--triton-backend", "tflite"], "--triton-backend must be one of onnxruntime, openvino, python, tensorrt"),
        (["--out", "x.onnx"], "give one of --out FILE.onnx"),
    ],
)
def test_export_triton_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = cli("export", "--model", "overfeat-mini-shapes", "--triton", str(tmp_path / "repo"), *args)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {r.stderr.strip()[7:]}"] and message in r.stderr
    assert not (tmp_path / "repo").exists()


NO_TORCH = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "onnx"):
            raise ImportError(f"blocked: {name}")

sys.meta_path.insert(0, Block())
import overfeat_edge.runtime.triton, overfeat_edge.triton.client, overfeat_edge.triton.shm
from overfeat_edge.commands import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules and "onnx" not in sys.modules
sys.exit(code)
"""


def test_export_triton_and_the_backend_need_no_torch(tmp_path: Path) -> None:
    args = ["export", "--model", "mtcnn-face", "--triton", str(tmp_path / "repo")]
    r = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert parse(tmp_path / "repo" / "mtcnn-face-rnet" / "config.pbtxt").name == "mtcnn-face-rnet"
