"""--precision: FP32 by default on every backend, the lower precisions only when asked.

The reference is ONNX Runtime FP32. Boxes are compared here with numpy (sorted, one to one), not
with the package's own matcher; that one (:class:`overfeat_edge.compare.DetectionAgreement`) is
checked against a hand-worked case.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.compare import DetectionAgreement
from overfeat_edge.errors import InputError
from overfeat_edge.io import read_image
from overfeat_edge.pipeline.load import load_detector
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime import load_runner
from overfeat_edge.runtime.auto import installed
from overfeat_edge.runtime.base import precision_onnx, shipped_models
from overfeat_edge.train.synth import scene
from overfeat_edge.types import Detections

ROOT = Path(__file__).resolve().parents[2]
FACES = [shipped_models()["mtcnn-face"] / "sample.jpg", ROOT / "tests" / "data" / "photos" / "astronaut.jpg"]


def same_boxes(got: Detections, want: Detections, tol: float = 0.05) -> None:
    """Same count, and each box within ``tol`` px of its counterpart (both sorted by corner)."""
    assert len(got) == len(want)
    a, b = got.xyxy[_by_corner(got)], want.xyxy[_by_corner(want)]
    assert np.abs(a.astype(np.float64) - b).max(initial=0.0) < tol
    assert sorted(got.class_id.tolist()) == sorted(want.class_id.tolist())


def _by_corner(d: Detections) -> np.ndarray:
    return np.lexsort(np.round(d.xyxy.T[::-1], 1))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auto-cache")


@pytest.mark.parametrize(
    ("model", "frames"),
    [
        ("overfeat-mini-shapes", lambda: [scene(np.random.default_rng(s))[0] for s in range(6)]),
        ("mtcnn-face", lambda: [read_image(p) for p in FACES]),
    ],
    ids=["generated", "faces"],
)
def test_the_default_equals_onnxruntime_fp32_on_every_cpu_backend(
    model: str, frames: object, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERFEAT_EDGE_CACHE", str(cache))
    monkeypatch.delenv("OVERFEAT_EDGE_AUTO", raising=False)
    images = frames()  # type: ignore[operator]
    ref = load_detector(model, backend="onnxruntime", threads=2)
    want = [ref.detect(f) for f in images]
    assert sum(len(w) for w in want) > 0
    for backend in ("auto", *installed()):
        det = load_detector(model, backend=backend, threads=2)
        assert det.runner.precision == "fp32", backend
        for f, w in zip_strict(images, want):
            same_boxes(det.detect(f), w)


def test_openvino_is_told_f32_unless_asked() -> None:
    """Left unset, OpenVINO computes in bf16 on avx512_bf16/AMX CPUs; the default now sets f32."""
    pytest.importorskip("openvino")
    x = np.zeros((1, 3, 59, 59), np.float32)
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
        r = load_runner("openvino", "overfeat-mini-shapes", precision=precision)
        r.run(x)
        compiled = next(iter(r._compiled.values())).get_compiled_model()  # type: ignore[attr-defined]
        assert r.config["INFERENCE_PRECISION_HINT"] == hint  # type: ignore[attr-defined]
        if precision == "fp32":
            assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"


def test_fp16_and_int8_files_are_found_beside_the_model_or_refused(tmp_path: Path) -> None:
    folder = shipped_models()["overfeat-mini-shapes"]
    shutil.copy(folder / "model.onnx", tmp_path / "m.onnx")
    with pytest.raises(InputError, match=r"--precision fp16 needs .*m\.fp16\.onnx; make it with overfeat-edge export"):
        precision_onnx(str(tmp_path / "m.onnx"), "fp16")
    with pytest.raises(InputError, match=r"--precision int8 needs .*m\.cpu\.qdq\.onnx; make it with overfeat-edge"):
        precision_onnx(str(tmp_path / "m.onnx"), "int8")
    shutil.copy(folder / "model.fp16.onnx", tmp_path / "m.fp16.onnx")
    assert precision_onnx(str(tmp_path / "m.onnx"), "fp16") == (tmp_path / "m.fp16.onnx", "fp16")
    assert precision_onnx(str(tmp_path / "m.onnx"), "bf16") == (tmp_path / "m.onnx", "bf16")  # a compute setting
    # a file made at a lower precision runs at it; asking another is refused
    assert precision_onnx(str(tmp_path / "m.fp16.onnx"), "fp32") == (tmp_path / "m.fp16.onnx", "fp16")
    with pytest.raises(InputError, match="is an fp16 ONNX; it cannot run at --precision int8"):
        precision_onnx(str(tmp_path / "m.fp16.onnx"), "int8")
    fp16 = load_runner("onnxruntime", str(tmp_path / "m.onnx"), precision="fp16")
    assert fp16.precision == "fp16" and "m.fp16.onnx" in fp16.describe()


def test_precision_is_checked_per_backend() -> None:
    with pytest.raises(InputError, match="--precision must be one of fp32, fp16, bf16, int8, got 'fp8'"):
        load_runner("onnxruntime", "overfeat-mini-shapes", precision="fp8")
    with pytest.raises(InputError, match="--backend tensorrt runs --precision fp32 or fp16 or int8, not bf16"):
        load_runner("tensorrt", "x.engine", precision="bf16")


def test_detection_agreement_hand_worked() -> None:
    want = Detections(
        np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32), np.ones(3), np.zeros(3)
    )
    # the first moved by 0.5 px, the second by 2 px on one edge, the third of another class, one extra box
    got = Detections(
        np.array([[20, 20, 30, 32], [0.5, 0, 10.5, 10], [50, 50, 60, 60], [80, 80, 90, 90]], np.float32),
        np.ones(4),
        np.array([0, 0, 1, 0]),
    )
    a = DetectionAgreement()
    a.add(got, want)
    assert (a.matched, a.got, a.want, a.worst_shift) == (2, 4, 3, 2.0) and not a.same
    a.add(want, want)
    assert (a.matched, a.got, a.want, a.worst_shift) == (5, 7, 6, 2.0)


def test_a_cascades_stages_run_at_the_detectors_precision() -> None:
    det = load_detector("mtcnn-face", backend="onnxruntime", precision="fp16", threads=1)
    assert det.runner.path.name == "model.fp16.onnx"  # type: ignore[attr-defined]
    stages = [s.runner.path.name for s in det.steps if hasattr(s, "runner")]  # type: ignore[attr-defined]
    assert stages == ["rnet.fp16.onnx", "onet.fp16.onnx"]


def test_an_engine_runs_at_its_own_precision_or_is_refused_before_tensorrt_loads(tmp_path: Path) -> None:
    """The refusal reads the engine's manifest only: no TensorRT here (a real manifest, written by the cache)."""
    from overfeat_edge.arch import get_arch
    from overfeat_edge.engine.cache import DeviceInfo, Manifest, engine_path, write_engine
    from overfeat_edge.engine.profiles import plan_profiles, profiles_key
    from overfeat_edge.spec import default_spec

    spec, device = default_spec(get_arch("overfeat-mini"), ["a", "b", "c"]), DeviceInfo("Orin", "8.7", "10.3.0")
    ps = plan_profiles(spec, (480, 640), ["384"])
    m = Manifest("m", "a" * 64, "fp16", device, ps, (480, 640), ["FP16"], extra={"spec": spec.to_json()})
    path = engine_path(tmp_path, "m", device, "fp16", profiles_key((480, 640), ps))
    write_engine(path, b"\x01engine-bytes", m)
    with pytest.raises(InputError, match=r"is an fp16 engine; for --precision int8 build one with 'overfeat-edge"):
        load_runner("tensorrt", str(path), precision="int8")
