"""The one registry: what a name is (kind, network, default pyramid, assets), read with no runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from overfeat_edge.arch import get_arch
from overfeat_edge.errors import InputError
from overfeat_edge.registry import entries, entry, shipped_models
from overfeat_edge.spec import default_spec

ROOT = Path(__file__).resolve().parents[1]


def test_a_shipped_cascade_is_read_from_its_onnx_metadata() -> None:
    import onnxruntime as ort

    e = entry("mtcnn-face")
    assert (e.kind, e.arch.name, e.stages, e.scales) == ("cascade", "mtcnn-pnet", ("rnet", "onet"), ("geo:20:0.709",))
    assert e.folder == ROOT / "overfeat_edge" / "assets" / "mtcnn-face"
    # the same spec as ONNX Runtime's own reading of the metadata
    session = ort.InferenceSession(str(e.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert e.spec is not None and e.spec.to_json() == type(e.spec).from_json(meta["overfeat_edge.spec"]).to_json()
    plain = entry("overfeat-mini-shapes")
    assert (plain.kind, plain.arch.name, plain.stages) == ("detector", "overfeat-mini", ())


@pytest.mark.parametrize(
    ("name", "kind", "scales"),
    [
        ("overfeat-accurate", "detector", ("245x245", "281x317", "317x389", "389x461", "425x497", "461x569")),
        ("overfeat-fast@0.25", "detector", ("231", "323", "462")),  # window 231, x1.4, x2
        ("mtcnn-onet", "crop classifier", ("48",)),  # run on 48x48 crops
    ],
)
def test_registry_networks(name: str, kind: str, scales: tuple[str, ...]) -> None:
    e = entry(name)
    assert (e.kind, e.scales, e.folder) == (kind, scales, None)
    if kind == "detector":
        assert default_spec(get_arch(name)).scales == scales


def test_every_name_is_listed_and_an_unknown_one_says_what_is_known() -> None:
    names = [e.name for e in entries()]
    assert {"overfeat-fast", "mtcnn-pnet", *shipped_models()} <= set(names)
    with pytest.raises(
        InputError, match=r"unknown model 'nope'; expected a network .* or a shipped model \(mtcnn-face"
    ):
        entry("nope")


def test_spec_pyramid_written_once() -> None:
    spec = default_spec(get_arch("overfeat-fast@0.25"))
    assert spec.pyramid(["300"]) == ["300"] and spec.pyramid() == ["231", "323", "462"]
    assert spec.__class__(spec.arch, spec.class_names, scales=()).pyramid() == ["231"]  # the window alone


def test_models_shows_a_shipped_model_with_no_runtime_loaded() -> None:
    code = (
        "import sys\n"
        "from overfeat_edge.commands import main\n"
        "rc = main(['models', 'mtcnn-face'])\n"
        "print('loaded:', sorted(m for m in ('onnxruntime', 'openvino', 'torch') if m in sys.modules))\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "shipped, usable as --model mtcnn-face: cascade mtcnn-pnet -> rnet -> onet; classes: face" in r.stdout
    assert "loaded: []" in r.stdout
