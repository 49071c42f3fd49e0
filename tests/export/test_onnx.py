"""ONNX export: metadata, dynamic shapes, parity with torch, and bad model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.export import export_onnx
from overfeat_edge.models import create_model
from overfeat_edge.runtime import load_runner
from overfeat_edge.spec import METADATA_KEY, default_spec


def test_metadata_and_names(seed_onnx: Path) -> None:
    model = onnx.load(str(seed_onnx))
    meta = {p.key: p.value for p in model.metadata_props}
    assert METADATA_KEY in meta
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["scores", "boxes"]
    runner = load_runner("onnxruntime", str(seed_onnx))
    assert runner.spec.class_names == ("a", "b", "c") and runner.spec.fine_stride


@pytest.mark.parametrize(("fine", "form"), [(True, "dilated"), (True, "batch"), (False, "dilated")])
@pytest.mark.parametrize("name", ["seed-net", "overfeat-fast@0.1", "overfeat-accurate@0.1"])
def test_onnxruntime_matches_torch_at_new_sizes(tmp_path: Path, name: str, fine: bool, form: str) -> None:
    """Dynamic batch, height and width survive export (the batch form's reshapes included)."""
    net = create_model(name, num_classes=2, seed=0).eval()
    spec = default_spec(net.arch, fine_stride=fine)
    path = tmp_path / "m.onnx"
    report = export_onnx(net, spec, path, fine_form=form)
    assert all(err <= report.tolerance[k] for k, err in report.max_abs_error.items())
    runner = load_runner("onnxruntime", str(path))
    w = net.arch.window
    # sizes and a batch the exporter's own check did not use
    x = np.random.default_rng(1).standard_normal((2, 3, w + 37, w + 3)).astype(np.float32)
    net.set_fine_stride(fine)
    net.set_fine_form("dilated")  # the reference: the other graph where the export used the batch form
    with torch.no_grad():
        ref = [t.numpy() for t in net.predict(torch.from_numpy(x))]
    got = list(runner.run(x).values())[:2]  # scores, boxes (the reference: net.predict)
    for a, b in zip(got, ref, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-4 + 1e-4 * np.abs(b).max()
    np.testing.assert_allclose(got[0].sum(axis=1), 1.0, rtol=1e-5)  # softmax over channels


def test_missing_metadata_is_refused(tmp_path: Path, seed_onnx: Path) -> None:
    model = onnx.load(str(seed_onnx))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ModelError, match="no overfeat-edge spec"):
        load_runner("onnxruntime", str(bare))


def test_corrupt_and_missing_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        load_runner("onnxruntime", str(bad))
    with pytest.raises(InputError, match="not found"):
        load_runner("onnxruntime", str(tmp_path / "none.onnx"))


def test_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parity failure must not leave a half-checked model behind under the target name."""
    import overfeat_edge.export.onnx as ex

    monkeypatch.setattr(ex, "ATOL", -1.0)  # no output can pass a negative tolerance
    net = create_model("seed-net", seed=0)
    out = tmp_path / "m.onnx"
    with pytest.raises(Exception, match="parity"):
        export_onnx(net, default_spec(net.arch), out)
    assert list(tmp_path.iterdir()) == []


def test_half_export_has_float16_weights_float32_io_and_agrees(tmp_path: Path) -> None:
    import onnx

    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import create_model
    from overfeat_edge.runtime.onnxruntime import OnnxRuntimeRunner
    from overfeat_edge.spec import default_spec

    net = create_model("overfeat-mini", seed=0).eval()
    spec = default_spec(net.arch, ["a", "b", "c"])
    full, half = tmp_path / "m.onnx", tmp_path / "m.fp16.onnx"
    export_onnx(net, spec, full)
    report = export_onnx(net, spec, half, half=True)
    m = onnx.load(str(half))
    weights = [t for t in m.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    io = [*m.graph.input, *m.graph.output]
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in io)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = np.random.default_rng(1).normal(size=(1, 3, 131, 175)).astype(np.float32)
    a, b = OnnxRuntimeRunner(full).run(x).values(), OnnxRuntimeRunner(half).run(x).values()
    assert OnnxRuntimeRunner(half).spec == spec  # the metadata survives the conversion
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(v, u, atol=1e-2, rtol=1e-2)
    assert max(report.max_abs_error.values()) <= 1e-2
