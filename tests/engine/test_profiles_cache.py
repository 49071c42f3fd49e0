"""Profile planning, engine naming, manifests: staleness, foreign devices, tampering, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.arch import get_arch
from overfeat_edge.engine.builder import parse_batch
from overfeat_edge.engine.cache import (
    DeviceInfo,
    Manifest,
    check_engine,
    engine_path,
    manifest_path,
    sha256_file,
    write_engine,
)
from overfeat_edge.engine.profiles import plan_profiles, profile_for, profiles_key
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.spec import default_spec

SPEC = default_spec(get_arch("overfeat-mini"), ["square", "disc", "triangle"])
ORIN = DeviceInfo("Orin", "8.7", "10.3.0")


def test_one_static_profile_per_scale_with_the_pyramids_shapes() -> None:
    ps = plan_profiles(SPEC, (480, 640), ["384", "224", "100"])
    # smallest side 480 -> 384: 384x512; -> 224: 224x299 (640*224/480 = 298.7); -> 100: 100x133
    assert [p.opt for p in ps] == [(1, 3, 384, 512), (1, 3, 224, 299), (1, 3, 100, 133)]
    assert all(p.min == p.opt == p.max for p in ps) and [p.index for p in ps] == [0, 1, 2]
    assert [p.scale for p in ps] == ["384", "224", "100"]


def test_batch_range_dynamic_profile_and_lookup() -> None:
    ps = plan_profiles(SPEC, (480, 640), ["384"], batch=(1, 2, 4), dynamic_max_side=700)
    assert ps[0].min == (1, 3, 384, 512) and ps[0].max == (4, 3, 384, 512)
    dyn = ps[1]
    assert dyn.scale is None and dyn.min == (1, 3, 59, 59) and dyn.max == (4, 3, 700, 700)
    assert profile_for(ps, (2, 3, 384, 512)) is ps[0]
    assert profile_for(ps, (1, 3, 300, 333)) is dyn
    with pytest.raises(InputError, match="no profile for input 800x900"):
        profile_for(ps, (1, 3, 800, 900))


def test_duplicate_shapes_share_a_profile_and_bad_ranges_are_refused() -> None:
    assert len(plan_profiles(SPEC, (480, 640), ["384", "384x512"])) == 1
    with pytest.raises(InputError, match="batch range"):
        plan_profiles(SPEC, (480, 640), ["384"], batch=(2, 1, 4))
    with pytest.raises(InputError, match="smaller than the 59px window"):
        plan_profiles(SPEC, (480, 640), ["384"], dynamic_max_side=40)


def test_engine_path_names_model_device_precision_and_shapes() -> None:
    ps = plan_profiles(SPEC, (480, 640), ["384", "224"])
    key = profiles_key((480, 640), ps)
    rtx = DeviceInfo("NVIDIA GeForce RTX 4090", "8.9", "10.13.0")
    p = engine_path(Path("engines"), "overfeat-mini-shapes", rtx, "fp16", key)
    assert p.parts[:3] == ("engines", "overfeat-mini-shapes", "nvidia-geforce-rtx-4090-sm89-trt10.13.0")
    assert p.name.startswith("fp16-480x640-") and p.suffix == ".engine"
    assert key != profiles_key((480, 640), plan_profiles(SPEC, (480, 640), ["384"]))  # other shapes, other name
    assert DeviceInfo("Orin", "8.7", "10.3.0", dla_core=1).folder().endswith("-dla1")


def _write(tmp_path: Path, data: bytes = b"\x01engine-bytes") -> tuple[Path, Manifest]:
    ps = plan_profiles(SPEC, (480, 640), ["384"])
    m = Manifest("m", "a" * 64, "fp16", ORIN, ps, (480, 640), ["FP16"], extra={"spec": SPEC.to_json()})
    path = engine_path(tmp_path, "m", ORIN, "fp16", profiles_key((480, 640), ps))
    write_engine(path, data, m)
    return path, m


def test_manifest_round_trip_and_hash(tmp_path: Path) -> None:
    path, m = _write(tmp_path)
    got, data = check_engine(path, ORIN, onnx_sha256="a" * 64)
    assert data == b"\x01engine-bytes"  # the bytes hashed are the bytes handed to deserialization
    assert got.engine_sha256 == sha256_file(path) and got.profiles == m.profiles and got.frame_hw == (480, 640)
    assert json.loads(manifest_path(path).read_text())["device"]["tensorrt"] == "10.3.0"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    ("running", "onnx", "message"),
    [
        (DeviceInfo("Orin", "8.7", "10.3.1"), "a" * 64, "built with TensorRT 10.3.0, this is TensorRT 10.3.1"),
        (DeviceInfo("NVIDIA GeForce RTX 4090", "8.9", "10.3.0"), "a" * 64, "built for Orin"),
        (DeviceInfo("Orin", "8.7", "10.3.0", 0), "a" * 64, "DLA core"),
        (ORIN, "b" * 64, "another version of the ONNX"),
    ],
)
def test_stale_or_foreign_engines_are_refused(tmp_path: Path, running, onnx, message) -> None:
    path, _ = _write(tmp_path)
    with pytest.raises(ModelError, match=message) as e:
        check_engine(path, running, onnx_sha256=onnx)
    assert "--rebuild" in str(e.value)


def test_dla_engine_loads_on_the_core_it_was_built_for(tmp_path: Path) -> None:
    dla1 = DeviceInfo("Orin", "8.7", "10.3.0", dla_core=1)
    ps = plan_profiles(SPEC, (480, 640), ["384"])
    m = Manifest("m", "a" * 64, "fp16", dla1, ps, (480, 640), ["FP16"], extra={"spec": SPEC.to_json()})
    path = engine_path(tmp_path, "m", dla1, "fp16", profiles_key((480, 640), ps))
    write_engine(path, b"dla-engine", m)
    got, _ = check_engine(path, ORIN)  # no core asked for: the one it was built for
    assert got.device.dla_core == 1
    assert check_engine(path, dla1)[0].device.dla_core == 1
    with pytest.raises(ModelError, match="targets DLA core 1, asked for DLA core 0"):
        check_engine(path, DeviceInfo("Orin", "8.7", "10.3.0", dla_core=0))


def test_calibration_cache_is_kept_beside_the_engine(tmp_path: Path) -> None:
    ps = plan_profiles(SPEC, (480, 640), ["384"])
    m = Manifest("m", "a" * 64, "int8", ORIN, ps, (480, 640), ["INT8"], extra={"spec": SPEC.to_json()})
    path = engine_path(tmp_path, "m", ORIN, "int8", profiles_key((480, 640), ps))
    write_engine(path, b"e", m, calibration_cache=b"TRT-100300-EntropyCalibration2\ninput: 3c010a14\n")
    cache = path.with_suffix(".calib.cache")
    entry = json.loads(manifest_path(path).read_text())["extra"]["calibration_cache"]
    assert entry == {"file": cache.name, "sha256": sha256_file(cache)}


def test_tampered_engine_is_not_deserialized(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    path.write_bytes(b"\x01engine-bytez")
    with pytest.raises(ModelError, match="sha256 is not the one its manifest recorded"):
        check_engine(path, ORIN)


def test_missing_or_malformed_manifest(tmp_path: Path) -> None:
    path, _ = _write(tmp_path)
    manifest_path(path).write_text("{not json")
    with pytest.raises(ModelError, match="malformed engine manifest"):
        check_engine(path, ORIN)
    manifest_path(path).unlink()
    with pytest.raises(ModelError, match="no manifest"):
        check_engine(path, ORIN)
    with pytest.raises(ModelError, match="no engine at"):
        check_engine(tmp_path / "none.engine", ORIN)


@pytest.mark.parametrize(("text", "want"), [("1", (1, 1, 1)), ("4", (1, 4, 4)), ("1,2,8", (1, 2, 8))])
def test_batch_option(text: str, want: tuple[int, int, int]) -> None:
    assert parse_batch(text) == want


@pytest.mark.parametrize("text", ["x", "1,2", "1,2,3,4"])
def test_bad_batch_option(text: str) -> None:
    with pytest.raises(InputError, match="--batch must be"):
        parse_batch(text)
    with pytest.raises(InputError, match="the minimum must be 1"):
        parse_batch("2,4,8")


def test_batched_engine_serves_every_round_of_the_multi_camera_loop() -> None:
    """A --batch 1,4,8 engine: every batch a round can hold finds the level's own profile, and the
    loop cuts larger rounds into batches of the engine's largest (the runner's max_batch)."""
    from overfeat_edge.stream.multi import batched_forward

    ps = plan_profiles(SPEC, (480, 640), ["384", "224"], batch=parse_batch("1,4,8"), dynamic_max_side=700)
    assert max(p.max[0] for p in ps) == 8
    for n in range(1, 9):
        assert profile_for(ps, (n, 3, 384, 512)) is ps[0] and profile_for(ps, (n, 3, 224, 299)) is ps[1]

    class Recorder:  # records the batches the loop hands a runner whose profiles end at 8
        max_batch = 8

        def __init__(self) -> None:
            self.shapes: list[tuple[int, ...]] = []

        def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
            self.shapes += [b.shape for b in batches]
            return [{"scores": b[:, :1] * 2} for b in batches]

    frames = [
        [np.full((1, 3, 384, 512), float(f), np.float32), np.full((1, 3, 224, 299), -f, np.float32)] for f in range(11)
    ]
    r = Recorder()
    maps = batched_forward(r, frames)
    assert sorted(r.shapes) == sorted([(8, 3, 384, 512), (3, 3, 384, 512), (8, 3, 224, 299), (3, 3, 224, 299)])
    assert all(profile_for(ps, s) in ps[:2] for s in r.shapes)
    for f in range(11):  # every frame gets its own rows back
        assert maps[f][0]["scores"].shape == (1, 384, 512) and np.all(maps[f][0]["scores"] == 2 * f)
        assert np.all(maps[f][1]["scores"] == -2 * f)
