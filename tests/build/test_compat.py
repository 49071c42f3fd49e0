"""Version dispatch: what each TensorRT generation gets, from the release notes' rules."""

from __future__ import annotations

import pytest

from overfeat_edge.build.compat import TrtVersion, build_plan, dla_supported
from overfeat_edge.errors import InputError, MissingDependency


@pytest.mark.parametrize(
    ("version", "precision", "source", "explicit", "flags", "onnx", "cache"),
    [
        ("8.5.2", "fp32", "qdq", True, (), "fp32", False),
        ("8.6.1", "fp16", "qdq", True, ("FP16",), "fp32", False),
        ("8.6.1", "int8", "cache", True, ("INT8", "FP16"), "fp32", True),
        ("8.6.1", "int8", "qdq", True, ("INT8", "FP16"), "qdq", False),
        ("10.3.0", "fp16", "qdq", False, ("FP16",), "fp32", False),  # JetPack 6
        ("10.13.0.35", "int8", "cache", False, ("INT8", "FP16"), "fp32", True),
        ("11.0.0", "fp32", "qdq", False, (), "fp32", False),
        ("11.4.1", "fp16", "qdq", False, (), "fp16", False),  # strongly typed: the FP16 ONNX
        ("11.4.1", "int8", "qdq", False, (), "qdq", False),  # strongly typed: the Q/DQ ONNX
    ],
)
def test_build_plan(version, precision, source, explicit, flags, onnx, cache) -> None:
    p = build_plan(TrtVersion.parse(version), precision, source)
    assert (p.explicit_batch_flag, p.builder_flags, p.onnx_variant, p.calibration_cache) == (
        explicit,
        flags,
        onnx,
        cache,
    )


def test_progress_monitor_from_8_6() -> None:
    assert not build_plan(TrtVersion(8, 5, 3), "fp32").progress_monitor
    assert build_plan(TrtVersion(8, 6, 0), "fp32").progress_monitor


def test_refusals() -> None:
    with pytest.raises(InputError, match="removed in 11"):
        build_plan(TrtVersion(11, 0, 0), "int8", "cache")
    with pytest.raises(MissingDependency, match=r"older than 8\.5"):
        build_plan(TrtVersion(8, 4, 3), "fp32")
    with pytest.raises(InputError, match="--precision"):
        build_plan(TrtVersion(10, 3), "bf16")
    with pytest.raises(InputError, match="not a TensorRT version"):
        TrtVersion.parse("ten")


@pytest.mark.parametrize(
    ("version", "ok"), [("8.5.2", True), ("10.3.0", True), ("11.0.0", False), ("11.4.0", False), ("11.4.1", True)]
)
def test_dla(version: str, ok: bool) -> None:
    assert dla_supported(TrtVersion.parse(version)) is ok
