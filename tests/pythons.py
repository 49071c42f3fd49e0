"""The edge tests on JetPack's Pythons: 3.8 (JetPack 5) and 3.10 (JetPack 6), beside the full suite on 3.11.

    python -m tests.pythons [--versions 3.8,3.10]

For each version: find its interpreter (``pythonX.Y`` on PATH, then pyenv's versions), make a venv
``.venv-pyXY`` with only the edge install (``pip install -e .`` and pytest: no torch, no onnx),
run the test suite there (the torch side is not collected, the session header says so), then run
``detect`` on the committed photos (the face cascade) and the shapes model on a generated frame with
that Python and with this one, and require the same detections. A version whose interpreter is not
on this machine is skipped with a line saying where it was looked for; nothing is skipped silently.
Exit status: non-zero if any version that ran failed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"


def find(version: str) -> str | None:
    """The interpreter of ``version`` (e.g. "3.8") that really runs: pyenv's versions, then PATH
    (a pyenv shim for a version not selected fails, so each candidate is asked its version)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(str(root / "versions" / f"{version}.*" / "bin" / f"python{version}")), reverse=True)
    candidates += [p for p in (shutil.which(f"python{version}"), f"/usr/bin/python{version}") if p]
    for exe in candidates:
        try:
            r = run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, timeout=30)
        except OSError:
            continue
        if r.returncode == 0 and r.stdout.strip() == version:
            return exe
    return None


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, **kw)  # type: ignore[call-overload]


DETECT = """
import json, sys
import cv2, numpy as np
from overfeat_edge.pipeline.load import load_detector
from overfeat_edge.train.synth import scene
out = {}
faces = load_detector("mtcnn-face", backend="onnxruntime", threads=2)
for p in sys.argv[1:]:
    d = faces.detect(cv2.imread(p))
    out[p] = [d.xyxy.tolist(), d.score.tolist(), d.data["landmarks"].tolist()]
shapes = load_detector("overfeat-mini-shapes", backend="onnxruntime", threads=2)
img, _, _ = scene(np.random.default_rng(3))
d = shapes.detect(img)
out["shapes"] = [d.xyxy.tolist(), d.score.tolist(), d.class_id.tolist()]
print("RESULT " + json.dumps(out))
"""


def detections(python: str) -> dict[str, list[list[float]]]:
    photos = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))]
    r = run([python, "-c", DETECT, *photos], capture_output=True, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise RuntimeError(f"{python}: detect failed:\n{r.stderr[-2000:]}")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, list[list[float]]] = json.loads(line[len("RESULT ") :])
    return result


def same(a: object, b: object, tol: float = 0.05) -> bool:
    """Equal structure, numbers within ``tol`` (other ONNX Runtime and numpy builds round differently)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol * max(1.0, abs(b))
    return a == b


def check(version: str) -> bool | None:
    """True if ``version`` passed, False if it failed, None if its interpreter is not here."""
    exe = find(version)
    if exe is None:
        print(
            f"pythons: Python {version} skipped: no working python{version} in pyenv's versions, on PATH or in /usr/bin"
        )
        return None
    venv = ROOT / f".venv-py{version.replace('.', '')}"
    py = venv / "bin" / "python"
    if not py.is_file():
        run([exe, "-m", "venv", str(venv)], check=True)
    print(f"pythons: Python {version} ({exe}): installing the edge path (pip install -e . pytest) into {venv.name}")
    pip = run([str(py), "-m", "pip", "install", "-q", "-e", str(ROOT), "pytest"], capture_output=True, cwd=ROOT)
    if pip.returncode != 0:
        print(f"pythons: Python {version}: install failed:\n{pip.stderr[-3000:]}")
        return False
    print(f"pythons: Python {version}: edge tests", flush=True)
    tests = run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=ROOT)
    if tests.returncode != 0:
        return False
    try:
        here, there = detections(sys.executable), detections(str(py))
    except RuntimeError as exc:
        print(f"pythons: {exc}")
        return False
    if not same(there, here):
        print(f"pythons: Python {version} detects otherwise than Python {sys.version.split()[0]}:")
        print(json.dumps({"here": here, "there": there})[:3000])
        return False
    n = sum(len(v[0]) for v in here.values())
    now = sys.version.split()[0]
    print(f"pythons: Python {version}: the same {n} detections as Python {now} (faces, landmarks, shapes)")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", default="3.8,3.10")
    args = ap.parse_args()
    results = {v: check(v) for v in args.versions.split(",")}
    failed = [v for v, ok in results.items() if ok is False]
    ran = [v for v, ok in results.items() if ok]
    print(f"pythons: passed on {', '.join(ran) or 'none'}; failed on {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
