"""Every TensorRT name and CUDA runtime call we use exists in each version's real binding library.

See ``bindings.py``: NVIDIA's binding wheels for TensorRT 8.6.1, 10.3, 10.13 and 11.4 and
cuda-bindings 11.8, 12.9 and 13.0, fetched by the test command. The TensorRT check works from
``compat.TRT_NAMES`` (every TensorRT name our modules use, by feature) and ``compat.features``
(which features a version's code path uses); the CUDA check reads each call's argument count
from the AST of ``runtime/cuda.py`` and binds it to the function's signature in each version.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from overfeat_edge.engine.compat import TRT_NAMES, TrtVersion, features

from .bindings import CUDA, TENSORRT, folder, trt_library
from .stubs import repair_line

ROOT = Path(__file__).resolve().parents[2]
TRT_MODULES = (ROOT / "overfeat_edge/engine/trt.py", ROOT / "overfeat_edge/runtime/tensorrt.py")
CUDA_MODULE = ROOT / "overfeat_edge/runtime/cuda.py"
FETCH = "python -m tests.engine.bindings (downloads NVIDIA's binding wheels; needs PyPI)"


def missing_names(version: str, feature_names: list[str]) -> list[str]:
    """Names of ``feature_names``' features absent from TensorRT ``version``'s binding library."""
    lib = trt_library(version)
    if lib is None:
        pytest.skip(f"no TensorRT {version} binding library: {FETCH}")
    data = lib.read_bytes()
    package = "".join(p.read_text() for p in lib.parent.glob("*.py"))  # __version__ is set in __init__.py
    out = []
    for feature in feature_names:
        for name in TRT_NAMES[feature]:
            if name.encode() + b"\0" not in data and name not in package:
                out.append(f"{feature}: {name}")
    return out


@pytest.mark.parametrize("version", list(TENSORRT))
def test_tensorrt_names_exist_in_each_version(version: str) -> None:
    used = list(features(TrtVersion.parse(version)))
    assert missing_names(version, used) == []


def test_the_check_catches_the_progress_monitor_on_8_6() -> None:
    # the JetPack 5 defect: enabling IProgressMonitor on 8.6 must fail the check above
    assert "progress_monitor: IProgressMonitor" in missing_names("8.6.1", ["progress_monitor"])
    assert missing_names("11.4.0.106", ["calibrator"])  # and the calibrators on 11
    # the shared activation block: the 8.x call is gone in 11.4, the 10.1+ ones are not in 8.6
    gone = "context_without_memory: create_execution_context_without_device_memory"
    assert gone in missing_names("11.4.0.106", ["context_without_memory"])
    assert set(missing_names("8.6.1", ["context_user_managed", "device_memory_v2"])) == {
        "context_user_managed: ExecutionContextAllocationStrategy",
        "context_user_managed: USER_MANAGED",
        "device_memory_v2: set_device_memory",
        "device_memory_v2: device_memory_size_v2",
    }


def _stub_names() -> set[str]:
    stubs = ROOT / ".stubs" / "tensorrt_bindings" / "tensorrt.pyi"
    if not stubs.is_file():
        pytest.skip("tensorrt-stubs not installed (the test command installs them into .stubs)")
    tree = ast.parse("\n".join(repair_line(x) for x in stubs.read_text().splitlines()))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_tensorrt_name_our_modules_use_is_listed() -> None:
    """An attribute our TensorRT modules use that TensorRT also defines must be in TRT_NAMES."""
    trt_names = _stub_names()
    listed = {n for names in TRT_NAMES.values() for n in names}
    # our own attributes and numpy's that happen to share a name with something in TensorRT
    ours = {
        "shape",
        "index",
        "name",
        "profile",
        "context",
        "engine",
        "runtime",
        "logger",
        "stream",
        "size",
        "nbytes",
        "device",
        "max",
        "min",
        "opt",
        "scale",
        "copy",
        "reshape",
        "cuda",
        "path",
        "manifest",
        "spec",
        "free",
        "graph",
        "batches",
        "host",
        "engine_bytes",
        "int8",
        "fp16",
        "tf32",
        "profiles",
        "__init__",
        "append",
        "float32",
        "parse",
        "pop",
        "precision",
    }
    used = set()
    for module in TRT_MODULES:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.FunctionDef):
                used.add(node.name)  # methods of our calibrator and progress monitor override TensorRT's
    unlisted = sorted((used & trt_names) - listed - ours)
    assert unlisted == []
    # and the table lists nothing we no longer use (Polygraphy's CreateConfig sets int8_calibrator for us)
    assert sorted(listed - used - {"int8_calibrator"}) == []


# ---- CUDA runtime (cuda-python) ----------------------------------------------------------------
def cuda_calls() -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """(function, positional argument count) of every ``self.rt.f(...)`` call, and every
    ``self.rt.Enum.member`` used, in runtime/cuda.py."""
    calls, enums = set(), set()
    for node in ast.walk(ast.parse(CUDA_MODULE.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "rt":
                calls.add((node.func.attr, len(node.args)))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if isinstance(inner.value, ast.Attribute) and inner.value.attr == "rt":
                enums.add((inner.attr, node.attr))
    return sorted(calls), sorted(enums)


_PROBE = textwrap.dedent(
    """
    import inspect, json, sys
    from overfeat_edge.runtime.cuda import _cudart
    rt = _cudart()
    calls, enums = json.loads(sys.argv[1])
    bad = []
    for name, n in calls:
        f = getattr(rt, name, None)
        if f is None:
            bad.append(f"{name}: missing")
            continue
        try:
            inspect.signature(f).bind(*range(n))
        except TypeError as exc:
            bad.append(f"{name}({n} args): {exc}; signature {inspect.signature(f)}")
    for enum, member in enums:
        if not hasattr(getattr(rt, enum, None), member):
            bad.append(f"{enum}.{member}: missing")
    print(json.dumps(bad))
    """
)


def probe(version: str, calls: list[tuple[str, int]], enums: list[tuple[str, str]]) -> list[str]:
    path = folder("cuda", version)
    if not path.is_dir():
        pytest.skip(f"no cuda-bindings {version}: {FETCH}")
    tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
    if not any(path.rglob(f"*{tag}*.so")):
        pytest.skip(f"the cuda-bindings {version} wheel here is not built for this Python ({tag})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([calls, enums])], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    result: list[str] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("version", list(CUDA))
def test_cuda_runtime_calls_match_each_version(version: str) -> None:
    calls, enums = cuda_calls()
    assert ("cudaGraphInstantiateWithFlags", 2) in calls and len(calls) >= 15
    assert probe(version, calls, enums) == []


def test_the_check_catches_cuda_11_graph_instantiate() -> None:
    # the JetPack 5 defect: cudaGraphInstantiate(graph, 0) takes (graph, pLogBuffer, bufferSize) in 11.8
    assert any(e.startswith("cudaGraphInstantiate(2 args)") for e in probe("11.8.7", [("cudaGraphInstantiate", 2)], []))
    assert probe("12.9.0", [("cudaGraphInstantiate", 2)], []) == []
