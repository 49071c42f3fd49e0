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
