"""Version dispatch: what each TensorRT generation gets, from NVIDIA's headers and release notes."""

from __future__ import annotations

import pytest

from overfeat_edge.engine.compat import (
    TrtVersion,
    build_plan,
    cache_version_field,
    dla_supported,
    features,
)
from overfeat_edge.errors import InputError, MissingDependency


@pytest.mark.parametrize(
    ("version", "precision", "source", "explicit", "flags", "onnx", "calibrator"),
    [
        ("8.5.2", "fp32", "qdq", True, (), "fp32", False),
        ("8.6.1", "fp16", "qdq", True, ("FP16",), "fp32", False),
        ("8.6.1", "int8", "calibrator", True, ("INT8", "FP16"), "fp32", True),
        ("8.6.1", "int8", "qdq", True, ("INT8", "FP16"), "qdq", False),
        ("10.3.0", "fp16", "qdq", False, ("FP16",), "fp32", False),  # JetPack 6
        ("10.13.0.35", "int8", "calibrator", False, ("INT8", "FP16"), "fp32", True),
        ("11.0.0", "fp32", "qdq", False, (), "fp32", False),
        ("11.4.1", "fp16", "qdq", False, (), "fp16", False),  # strongly typed: the FP16 ONNX
        ("11.4.1", "int8", "qdq", False, (), "qdq", False),  # strongly typed: the Q/DQ ONNX
    ],
)
def test_build_plan(version, precision, source, explicit, flags, onnx, calibrator) -> None:
    p = build_plan(TrtVersion.parse(version), precision, source)
    assert (p.explicit_batch_flag, p.builder_flags, p.onnx_variant, p.calibrator) == (
        explicit,
        flags,
        onnx,
        calibrator,
    )


@pytest.mark.parametrize(
    ("version", "monitor"), [("8.5.2", False), ("8.6.1", False), ("10.0.0", True), ("11.4.0", True)]
)
def test_progress_monitor_from_10_0(version: str, monitor: bool) -> None:
    # IProgressMonitor is in neither the 8.6.1 headers nor its binding library (JetPack 5 builds broke)
    assert build_plan(TrtVersion.parse(version), "fp32").progress_monitor is monitor


def test_refusals() -> None:
    with pytest.raises(InputError, match="removed in 11"):
        build_plan(TrtVersion(11, 0, 0), "int8", "calibrator")
    with pytest.raises(MissingDependency, match=r"older than 8\.5"):
        build_plan(TrtVersion(8, 4, 3), "fp32")
    with pytest.raises(InputError, match="--precision"):
        build_plan(TrtVersion(10, 3), "bf16")
    with pytest.raises(InputError, match="not a TensorRT version"):
        TrtVersion.parse("ten")


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("8.5.2", True),
        ("10.3.0", True),
        ("10.7.0", True),  # the last 10.x with DLA
        ("10.8.0", False),
        ("10.13.0.35", False),
        ("11.0.0", False),
        ("11.4.0", False),
        ("11.4.1", True),
    ],
)
def test_dla(version: str, ok: bool) -> None:
    assert dla_supported(TrtVersion.parse(version)) is ok


@pytest.mark.parametrize(
    ("version", "field"),
    [("8.5.2", "8502"), ("8.6.1", "8601"), ("10.0.1", "100001"), ("10.3.0", "100300"), ("10.13.0.35", "101300")],
)
def test_cache_version_field(version: str, field: str) -> None:
    # NV_TENSORRT_VERSION: MAJOR*1000 + MINOR*100 + PATCH in 8.x, MAJOR*10000 + MINOR*100 + PATCH from 10
    assert cache_version_field(TrtVersion.parse(version)) == field


def test_features_follow_the_rules() -> None:
    # activation memory: 8.x contexts without memory + device_memory; 10.0 USER_MANAGED + device_memory;
    # 10.1+ USER_MANAGED + set_device_memory(ptr, device_memory_size_v2) (Polygraphy 0.53.6 branches at 10.1)
    common = ("runtime", "inspector")
    v8, v100 = ("context_without_memory", "device_memory_v1"), ("context_user_managed", "device_memory_v1")
    v101 = ("context_user_managed", "device_memory_v2")
    assert features(TrtVersion(8, 6, 1)) == (*common, *v8, "calibrator", "dla")
    assert features(TrtVersion(10, 0, 1)) == (*common, *v100, "progress_monitor", "calibrator", "dla")
    assert features(TrtVersion(10, 3, 0)) == (*common, *v101, "progress_monitor", "calibrator", "dla")
    assert features(TrtVersion(10, 13, 0)) == (*common, *v101, "progress_monitor", "calibrator")
    assert features(TrtVersion(11, 4, 0)) == (*common, *v101, "progress_monitor")
