"""The Polygraphy we require can build on every TensorRT we support: read from each pinned wheel's source.

0.49.x's ``CreateConfig.call_impl`` reads ``layer.precision_is_set`` with no guard, and TensorRT
11.4's binding library has no such name, so every TensorRT 11 build would end in a traceback.
The wheels (``polygraphy_wheels.py``) are read, not imported: which releases guard the read, that
our pin is the first that does, and that it still installs on Python 3.8 and runs TensorRT 8.5.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from overfeat_edge.engine.compat import POLYGRAPHY_MIN, TrtVersion, check_polygraphy
from overfeat_edge.errors import InputError

from .bindings import trt_library
from .polygraphy_wheels import VERSIONS, wheel

ROOT = Path(__file__).resolve().parents[2]


def source(version: str, member: str) -> str:
    w = wheel(version)
    if w is None:
        pytest.skip(f"no Polygraphy {version} wheel: python -m tests.engine.polygraphy_wheels")
    with zipfile.ZipFile(w) as z:
        return z.read(member).decode()


def guards_precision_is_set(text: str) -> bool:
    """Whether every read of ``.precision_is_set`` sits in a ``try`` that catches AttributeError."""
    tree = ast.parse(text)
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = {
                n.id for h in node.handlers if h.type is not None for n in ast.walk(h.type) if isinstance(n, ast.Name)
            }
            if "AttributeError" in caught:
                guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    reads = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "precision_is_set"]
    assert reads, "CreateConfig no longer reads precision_is_set: review this test"
    return all(id(n) in guarded for n in reads)


def test_tensorrt_11_has_no_precision_is_set() -> None:
    lib = trt_library("11.4.0.106")
    if lib is None:
        pytest.skip("no TensorRT 11.4 binding library: python -m tests.engine.bindings")
    assert b"precision_is_set\0" not in lib.read_bytes()


def test_our_minimum_is_the_first_release_that_guards_it() -> None:
    guarded = {v: guards_precision_is_set(source(v, "polygraphy/backend/trt/config.py")) for v in VERSIONS}
    assert guarded == {"0.49.9": False, "0.50.3": True, "0.53.6": True}
    assert POLYGRAPHY_MIN == min((v for v, ok in guarded.items() if ok), key=lambda v: tuple(map(int, v.split("."))))
    pins = re.findall(r'"polygraphy>=([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins and set(pins) == {POLYGRAPHY_MIN}  # the tensorrt extra and dev


def test_the_minimum_still_supports_python_3_8_and_tensorrt_8_5() -> None:
    w = wheel(POLYGRAPHY_MIN)
    if w is None:
        pytest.skip(f"no Polygraphy {POLYGRAPHY_MIN} wheel: python -m tests.engine.polygraphy_wheels")
    with zipfile.ZipFile(w) as z:
        meta = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    m = re.search(r"^Requires-Python: >=3\.(\d+)$", meta, re.M)
    assert m and int(m[1]) <= 8  # JetPack 5's Python 3.8
    # TensorRT < 8.6 keeps its own path in the loaders (8.5: JetPack 5.0/5.1.0)
    loader = source(POLYGRAPHY_MIN, "polygraphy/backend/trt/loader.py")
    assert re.search(r'mod\.version\(trt\.__version__\) >= mod\.version\(\s*"8\.6"', loader)


@pytest.mark.skipif(
    shutil.which("vermin") is None and not (Path(sys.executable).parent / "vermin").exists(), reason="vermin"
)
def test_the_minimum_parses_as_python_3_8(tmp_path: Path) -> None:
    w = wheel(POLYGRAPHY_MIN)
    if w is None:
        pytest.skip(f"no Polygraphy {POLYGRAPHY_MIN} wheel: python -m tests.engine.polygraphy_wheels")
    with zipfile.ZipFile(w) as z:
        z.extractall(tmp_path)
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    r = subprocess.run(
        [vermin, "-q", "--no-tips", "--violations", "-t=3.8-", str(tmp_path / "polygraphy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:]


def test_an_older_polygraphy_is_refused_on_tensorrt_11_only() -> None:
    with pytest.raises(InputError, match=r"Polygraphy 0\.49\.26 cannot build on TensorRT 11\.4\.0") as e:
        check_polygraphy(TrtVersion(11, 4, 0), "0.49.26")
    assert "polygraphy>=0.50.3" in str(e.value) and "\n" not in str(e.value)
    check_polygraphy(TrtVersion(11, 4, 0), "0.50.3")
    check_polygraphy(TrtVersion(10, 3, 0), "0.49.9")  # 10.x has precision_is_set
    check_polygraphy(TrtVersion(8, 6, 1), "0.49.9")
