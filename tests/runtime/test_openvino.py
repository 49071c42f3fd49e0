"""The OpenVINO backend against ONNX Runtime, its options, and --backend auto."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.runtime import auto as auto_module
from overfeat_edge.runtime import load_runner, resolve_backend

pytest.importorskip("openvino", reason="the openvino backend needs openvino (pip install openvino)")


@pytest.fixture(scope="module")
def inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(1, 3, h, w)).astype(np.float32) for h, w in ((131, 175), (100, 133), (59, 59))]


@pytest.mark.parametrize("shapes", ["reshape", "dynamic"])
def test_f32_equals_onnxruntime(inputs: list[np.ndarray], shapes: str) -> None:
    ov = load_runner("openvino", "overfeat-mini-shapes", threads=2, precision="fp32", ov_shapes=shapes)
    ort = load_runner("onnxruntime", "overfeat-mini-shapes", threads=2)
    for x in inputs:
        a, b = ov.run(x), ort.run(x)
        assert set(a) == set(b) == {"scores", "boxes"}
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=2e-4, rtol=1e-4)
    assert f"f32, {shapes}" in ov.describe()


def test_reshape_compiles_once_per_size_whatever_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A crop stage's batch changes every frame: one compile serves every batch size of a size (each compile
    costs tenths of a second), the results equal ONNX Runtime's, and only the last MAX_COMPILED sizes are kept."""
    from overfeat_edge.runtime import openvino

    ov = load_runner("openvino", "overfeat-mini-shapes", threads=1, precision="fp32", ov_shapes="reshape")
    ort = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1)
    rng = np.random.default_rng(1)
    for n in (3, 1, 7, 2):
        x = rng.normal(size=(n, 3, 96, 80)).astype(np.float32)
        np.testing.assert_allclose(ov.run(x)["scores"], ort.run(x)["scores"], atol=2e-4, rtol=1e-4)
    assert list(ov._compiled) == [(3, 96, 80)]  # type: ignore[attr-defined]
    monkeypatch.setattr(openvino, "MAX_COMPILED", 2)
    for h in (64, 72, 96):
        ov.run(rng.normal(size=(1, 3, h, 80)).astype(np.float32))
    assert list(ov._compiled) == [(3, 72, 80), (3, 96, 80)]  # type: ignore[attr-defined]


def test_default_precision_is_fp32_and_the_cascade_runs() -> None:
    """The default is f32 (not the device's own choice, bf16 on AMX or avx512_bf16 CPUs); MTCNN's three
    nets with landmarks load too."""
    x = np.random.default_rng(1).normal(size=(4, 3, 48, 48)).astype(np.float32)
    a = load_runner("openvino", str(_shipped("mtcnn-face") / "onet.onnx")).run(x)
    b = load_runner("onnxruntime", str(_shipped("mtcnn-face") / "onet.onnx")).run(x)
    assert set(a) == {"scores", "boxes", "landmarks"}
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=2e-4)  # bf16 would be ~1e-2 off


def _shipped(name: str) -> Path:
    from overfeat_edge.runtime.base import shipped_models

    return shipped_models()[name]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "int4"}, "--precision must be one of"),
        ({"ov_hint": "fast"}, "--ov-hint must be one of"),
        ({"ov_shapes": "any"}, "--ov-shapes must be one of"),
        ({"ov_device": "TPU"}, "OpenVINO device 'TPU' is not here"),
        ({"cuda_graphs": True}, "--cuda-graphs does not apply to --backend openvino"),
    ],
)
def test_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_runner("openvino", "overfeat-mini-shapes", **options)


def test_options_of_another_backend_are_refused() -> None:
    with pytest.raises(InputError, match="--ov-hint does not apply to --backend onnxruntime"):
        load_runner("onnxruntime", "overfeat-mini-shapes", ov_hint="throughput")
    with pytest.raises(InputError, match="--backend onnxruntime runs --precision fp32 or fp16 or int8, not bf16"):
        load_runner("onnxruntime", "overfeat-mini-shapes", precision="bf16")


def test_auto_measures_once_then_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERFEAT_EDGE_AUTO", raising=False)
    monkeypatch.setenv("OVERFEAT_EDGE_CACHE", str(tmp_path))
    calls = []
    real = auto_module.measure

    def counted(*args: object, **kw: object) -> dict[str, float]:
        calls.append(args)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(auto_module, "measure", counted)
    first, why = resolve_backend("auto", "overfeat-mini-shapes", 2)
    assert first in ("onnxruntime", "openvino") and "measured now" in why and len(calls) == 1
    again, why2 = resolve_backend("auto", "overfeat-mini-shapes", 2)
    assert again == first and "measured earlier" in why2 and len(calls) == 1
    cache = json.loads((tmp_path / "auto.json").read_text())
    ((key, entry),) = cache.items()
    assert entry["backend"] == first and "threads 2" in key and "openvino" in key and "| fp32 |" in key
    # the measured times are what the choice says: the fastest one was taken
    times = {
        b: float(t.split()[0])
        for b, t in (part.strip().split(" ", 1) for part in entry["why"].split(" per ")[0].split(","))
    }
    assert first == min(times, key=lambda b: times[b])


def test_auto_forced_and_only_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERFEAT_EDGE_AUTO", "openvino")
    assert resolve_backend("auto", "overfeat-mini-shapes")[0] == "openvino"
    monkeypatch.setenv("OVERFEAT_EDGE_AUTO", "tpu")
    with pytest.raises(InputError, match="OVERFEAT_EDGE_AUTO must be one of"):
        resolve_backend("auto", "overfeat-mini-shapes")
    monkeypatch.delenv("OVERFEAT_EDGE_AUTO")
    monkeypatch.setattr(auto_module, "installed", lambda precision="fp32": ["onnxruntime"])
    assert resolve_backend("auto", "overfeat-mini-shapes") == (
        "onnxruntime",
        "onnxruntime (the only CPU backend installed)",
    )


def test_auto_chooses_among_the_backends_that_run_the_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERFEAT_EDGE_AUTO", raising=False)
    assert resolve_backend("auto", "overfeat-mini-shapes", 2, "bf16") == (
        "openvino",
        "openvino (the only CPU backend installed for bf16)",  # ONNX Runtime has no bf16
    )
    monkeypatch.setenv("OVERFEAT_EDGE_AUTO", "onnxruntime")
    with pytest.raises(InputError, match=r"OVERFEAT_EDGE_AUTO must be one of openvino \(at --precision bf16\)"):
        resolve_backend("auto", "overfeat-mini-shapes", 2, "bf16")
