"""Permissions (issue 22 item 10) as a user who lacks them: a read-only output folder, a model file and an
image without read permission. Root reads and writes everything, so where the tests run as root the CLI
runs without root's file-permission override (``capsh --drop=cap_dac_override,cap_dac_read_search``, from
libcap2-bin); elsewhere as the user."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_fuzz import PHOTO

ROOT = Path(__file__).resolve().parents[1]
CAPSH = shutil.which("capsh") or ("/usr/sbin/capsh" if os.path.exists("/usr/sbin/capsh") else None)
SHAPES_ONNX = ROOT / "overfeat_edge" / "assets" / "overfeat-mini-shapes" / "model.onnx"


@pytest.fixture()
def place() -> Iterator[Path]:
    """A folder the unprivileged user can enter (pytest's own tmp folder is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="overfeat-perm-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def cli(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "OVERFEAT_EDGE_CACHE": str(home / "cache"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "cli.py"), *args]
    if os.geteuid() == 0:
        if CAPSH is None:
            pytest.skip("running as root without capsh (libcap2-bin): root would read and write every file")
        cmd = [CAPSH, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(cmd)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=home)


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("warning:", "skipped:"))]
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def _home(place: Path) -> Path:
    home = place / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    return home


def test_a_read_only_output_folder_is_one_line(place: Path) -> None:
    out = place / "out"
    out.mkdir()
    (out / "detections.json").write_text('{"images": []}\n')
    out.chmod(0o555)  # exists, and the user may not write in it
    r = cli(
        ["detect", str(PHOTO), "--model", "overfeat-mini-shapes", "--backend", "onnxruntime", "--out", str(out)],
        _home(place),
    )
    line = one_line(r)
    assert str(out) in line and ("writ" in line or "permission" in line.lower()), line
    assert (out / "detections.json").read_text() == '{"images": []}\n'


def test_a_model_file_without_read_permission_is_one_line(place: Path) -> None:
    model = place / "model.onnx"
    shutil.copy(SHAPES_ONNX, model)
    model.chmod(0o200)  # write-only: it exists, and cannot be read
    r = cli(
        ["detect", str(PHOTO), "--model", str(model), "--backend", "onnxruntime", "--out", str(place / "o")],
        _home(place),
    )
    line = one_line(r)
    assert str(model) in line and ("read" in line or "permission" in line.lower()), line


def test_an_unreadable_image_is_one_line_without_opencv_s_own(place: Path) -> None:
    image = place / "photo.jpg"
    shutil.copy(PHOTO, image)
    image.chmod(0o200)
    r = cli(
        [
            "detect",
            str(image),
            "--model",
            "overfeat-mini-shapes",
            "--backend",
            "onnxruntime",
            "--out",
            str(place / "o"),
        ],
        _home(place),
    )
    assert "[ WARN" not in r.stderr and "imread_" not in r.stderr, r.stderr
    line = one_line(r)
    assert "photo.jpg" in line, line
