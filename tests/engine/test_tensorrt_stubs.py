"""Every TensorRT name and call in our code exists, with a compatible signature, in NVIDIA's stubs.

TensorRT cannot be installed here, so its API is checked statically: ``tensorrt-stubs`` (the 10.13
API) is installed with ``--no-deps --target .stubs`` by the test command, a copy is repaired so it
parses (see ``stubs.py``), and mypy checks ``engine/trt.py`` and ``runtime/tensorrt.py`` against it.
Calls that differ by version (8.x, 11.x) are chosen by ``engine/compat.py`` and listed in the README.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from overfeat_edge.engine.compat import TrtVersion, build_plan

from .stubs import repaired_copy

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / ".stubs"
MODULES = ("overfeat_edge.engine.trt", "overfeat_edge.runtime.tensorrt")

pytest.importorskip("mypy", reason="the stubs check runs mypy (the full suite's venv has it)")
pytestmark = pytest.mark.skipif(
    not (STUBS / "tensorrt_bindings").is_dir(),
    reason="tensorrt-stubs not installed: pip install --no-deps --target .stubs tensorrt-stubs==10.13.0.35.1",
)


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("trt-stubs")
    assert repaired_copy(STUBS, dst) >= 1  # the shipped stubs do not parse as they are
    return dst


def mypy(stubs: Path, *targets: str) -> list[str]:
    args = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental"]
    for t in targets:
        args += ["-m", t] if not t.endswith(".py") else [t]
    env = {**os.environ, "MYPYPATH": str(stubs)}
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return [ln for ln in r.stdout.splitlines() if ": error:" in ln and "tensorrt_bindings" not in ln.split(":")[0]]


def test_our_tensorrt_calls_type_check_against_the_stubs(stubs: Path, tmp_path: Path) -> None:
    assert mypy(stubs, *MODULES) == []
    # and the check can fail: a misspelt method and a wrong argument type are caught
    bad = tmp_path / "bad_trt_use.py"
    bad.write_text(
        "import tensorrt as trt\n"
        "def f(c: trt.IBuilderConfig, x: trt.IExecutionContext) -> None:\n"
        "    c.set_memory_pool_limits(trt.MemoryPoolType.WORKSPACE, 1)\n"
        "    x.set_tensor_address('input', 'not a pointer')\n"
    )
    errors = mypy(stubs, str(bad))
    assert any("set_memory_pool_limits" in e for e in errors) and any("set_tensor_address" in e for e in errors)


def _class_attrs(tree: ast.Module, name: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {t.target.id for t in node.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)}
    raise AssertionError(f"class {name} not in the stubs")


def test_enum_members_we_name_exist(stubs: Path) -> None:
    tree = ast.parse((stubs / "tensorrt_bindings" / "tensorrt.pyi").read_text())
    flags = _class_attrs(tree, "BuilderFlag")
    for v in (TrtVersion(8, 6), TrtVersion(10, 3)):  # the builder flags exist up to 10.x
        for precision, source in (("fp16", "qdq"), ("int8", "qdq"), ("int8", "calibrator")):
            assert set(build_plan(v, precision, source).builder_flags) <= flags
    assert "GPU_FALLBACK" in flags
    assert "WORKSPACE" in _class_attrs(tree, "MemoryPoolType")
    assert "DLA" in _class_attrs(tree, "DeviceType")
    assert "EXPLICIT_BATCH" in _class_attrs(tree, "NetworkDefinitionCreationFlag")
    assert "WARNING" in _class_attrs(tree, "Logger")
