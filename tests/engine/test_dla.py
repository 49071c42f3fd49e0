"""DLA: what is refused before a build, and where a DLA build's layers went (the engine inspector)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from overfeat_edge.engine.builder import BuildRequest, Prepared, build_cached, parse_batch
from overfeat_edge.engine.profiles import plan_profiles
from overfeat_edge.engine.trt import dla_placement
from overfeat_edge.errors import InputError
from overfeat_edge.runtime.base import read_spec, resolve_onnx

SPEC = read_spec(resolve_onnx("overfeat-mini-shapes"))


@pytest.mark.parametrize(
    "options",
    [{"dynamic": 700}, {"batch": parse_batch("4")}, {"batch": parse_batch("1,2,4")}],
)
def test_dla_with_dynamic_shapes_is_refused(options: dict[str, object]) -> None:
    # DLA has no dynamic dimensions (min = opt = max); with GPU fallback on, such layers ran on the GPU
    with pytest.raises(InputError, match="--dla builds fixed shapes only"):
        BuildRequest(model="overfeat-mini-shapes", dla=0, **options)  # type: ignore[arg-type]
    BuildRequest(model="overfeat-mini-shapes", **options)  # type: ignore[arg-type]  # fine on the GPU
    BuildRequest(model="overfeat-mini-shapes", dla=0)  # and fixed shapes are fine on DLA


def test_dla_from_a_qdq_onnx_is_refused_on_tensorrt_8(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    req = BuildRequest(model="overfeat-mini-shapes", precision="int8", dla=0)
    profiles = plan_profiles(SPEC, req.frame_hw, ["131"])
    p = Prepared(req, "m", SPEC, resolve_onnx("overfeat-mini-shapes"), profiles, "qdq", None, None)
    for version, refused in (("8.6.1", True), ("10.3.0", False)):
        module = types.SimpleNamespace(__version__=version)
        monkeypatch.setattr("overfeat_edge.engine.trt.load_tensorrt", lambda m=module: m)

        def no_cuda(prefer: object = None) -> object:
            raise RuntimeError("past the DLA checks")

        monkeypatch.setattr("overfeat_edge.runtime.cuda.load_cuda", no_cuda)
        if refused:
            with pytest.raises(InputError, match=r"8\.x's DLA takes INT8 from a calibrator"):
                build_cached(p, engines=tmp_path)
        else:  # 10.x goes on to the build (here: to the CUDA stand-in that stops it)
            with pytest.raises(RuntimeError, match="past the DLA checks"):
                build_cached(p, engines=tmp_path)


def test_dla_placement_from_the_engine_inspector() -> None:
    # the inspector's JSON, in both verbosities: names only, or one object per layer
    names = ["{ForeignNode[conv1...relu3]}", "Reformatting CopyNode for Input Tensor 0", "{ForeignNode[conv5]}", "pool"]
    for layers in (names, [{"Name": n, "LayerType": "x"} for n in names]):
        got = dla_placement(json.dumps({"Layers": layers, "Bindings": ["input"]}), network_layers=12, dla_capable=10)
        assert got == {"network_layers": 12, "dla_capable": 10, "engine_layers": 4, "subgraphs": 2, "gpu_layers": 2}


@pytest.mark.parametrize(
    ("version", "size_name"), [("8.6.1", "device_memory_size"), ("10.3.0", "device_memory_size_v2")]
)
def test_the_build_reads_the_engines_memory_and_layers(
    monkeypatch: pytest.MonkeyPatch, version: str, size_name: str
) -> None:
    from overfeat_edge.engine import trt as engine_trt

    layers = json.dumps({"Layers": ["{ForeignNode[conv1...conv3]}", "pool"]})
    seen: dict[str, object] = {}

    class Inspector:
        def get_engine_information(self, fmt: object) -> str:
            seen["format"] = fmt
            return layers

    engine = types.SimpleNamespace(create_engine_inspector=Inspector, **{size_name: 7 << 20})

    class Runtime:
        def __init__(self, logger: object) -> None:
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data: bytes) -> object:
            seen["dla_core"] = self.DLA_core
            return engine

    module = types.SimpleNamespace(
        __version__=version,
        Runtime=Runtime,
        Logger=lambda level: None,
        LayerInformationFormat=types.SimpleNamespace(JSON="json"),
    )
    module.Logger.WARNING = 2  # type: ignore[attr-defined]
    monkeypatch.setattr(engine_trt, "trt", module)
    assert engine_trt._engine_facts(b"plan", 1) == (7 << 20, layers)  # the version's own size name
    assert seen == {"format": "json", "dla_core": 1}  # deserialized on the DLA core it was built for


def test_the_manifest_and_summary_say_memory_and_dla_placement(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from overfeat_edge.engine import trt as engine_trt
    from overfeat_edge.engine.builder import prepare
    from overfeat_edge.engine.cache import Manifest, manifest_path
    from overfeat_edge.engine.trt import BuildResult

    from .standin import StandInCuda

    placement = {"network_layers": 12, "dla_capable": 10, "engine_layers": 4, "subgraphs": 2, "gpu_layers": 2}
    module = types.SimpleNamespace(__version__="8.6.1")
    monkeypatch.setattr(engine_trt, "load_tensorrt", lambda: module)
    monkeypatch.setattr("overfeat_edge.runtime.cuda.load_cuda", lambda prefer=None: StandInCuda())
    monkeypatch.setattr(engine_trt, "build_engine", lambda **kw: BuildResult(b"plan", 1.0, None, 3 << 20, placement))
    req = BuildRequest(model="overfeat-mini-shapes", precision="fp16", scales=("131",), dla=0)
    built = build_cached(prepare(req), engines=tmp_path)
    m = Manifest.from_json(manifest_path(built.path).read_text(), "m")
    assert m.extra["device_memory_bytes"] == 3 << 20 and m.extra["dla"] == placement
    assert built.summary == (
        "device memory 3.0 MiB (one block shared by every level's context); DLA core 0: 10 of 12 network layers "
        "can run on DLA; the engine: 2 DLA subgraph(s), 2 GPU layer(s)"
    )


@pytest.mark.parametrize(("version", "rest"), [("10.3.0", "fp16 or fp32"), ("11.4.0", "fp32 (strongly typed)")])
def test_an_int8_manifest_says_what_the_other_layers_run_in(version: str, rest: str) -> None:
    from overfeat_edge.engine.compat import TrtVersion, other_layers_precision

    got = other_layers_precision(TrtVersion.parse(version), "int8")
    assert got is not None and got.startswith(rest)
    assert other_layers_precision(TrtVersion.parse(version), "fp16") is None
