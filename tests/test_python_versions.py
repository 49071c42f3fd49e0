"""The edge path stays Python 3.8 code (JetPack 5): vermin, statically, on every edge module.

The edge tests also run on Python 3.8 and 3.10 in CI (``python -m tests.pythons``); this check
catches 3.9+/3.10+ syntax and library calls (``zip(strict=)``, ``match``, ``str.removeprefix``,
parenthesized context managers...) before then, on any machine. Annotations are not evaluated:
``from __future__ import annotations`` keeps them strings, and the commands' (which Typer
evaluates) are written with ``typing``'s Optional and List, and run on 3.8 in CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "overfeat_edge"
# the edge path: everything but the torch side (models, export, training) and calibrate's report
EDGE = [
    *(PKG / d for d in ("runtime", "pipeline", "stream", "engine", "commands")),
    *PKG.glob("*.py"),
    PKG / "train" / "synth.py",  # demo's generated video
    PKG / "train" / "datasets.py",
    PKG / "calibrate" / "quantize.py",  # load_images and pyramid_inputs: build --calib-images
]


VERMIN = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]  # (it has no __main__)


def test_edge_modules_are_python_3_8() -> None:
    pytest.importorskip("vermin", reason="the static check needs vermin (in the dev extra)")
    r = subprocess.run(
        [*VERMIN, "-t=3.8-", "--violations", "--no-tips", *map(str, EDGE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "requires" not in r.stdout, r.stdout


def test_the_check_can_fail(tmp_path: Path) -> None:
    pytest.importorskip("vermin", reason="the static check needs vermin (in the dev extra)")
    bad = tmp_path / "bad.py"
    bad.write_text("def f(a, b):\n    return list(zip(a, b, strict=True)), 'x'.removeprefix('y')\n")
    r = subprocess.run([*VERMIN, "-t=3.8-", "--violations", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "zip(strict)" in r.stdout and "removeprefix" in r.stdout
