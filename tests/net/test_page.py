"""A real browser shows the page: headless Chromium screenshots it twice while frames are written; the
frame area holds a picture (not blank) and the picture moves between the two shots."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.net.test_web import ROOT, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(url: str, out: Path) -> np.ndarray:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # the tests run as root here
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=900,700",
        "--virtual-time-budget=2000",  # let the page's script start the stream and fetch the stats
        f"--screenshot={out}",
        url,
    ]
    subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    img = cv2.imread(str(out))
    assert img is not None
    return img


def frame_area(img: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the pixels that are none of the page's own dark greys: the live picture."""
    bright = img.astype(np.int16).max(axis=2) > 45
    rows, cols = np.nonzero(bright[40:])  # below the header
    return slice(int(rows.min()) + 40, int(rows.max()) + 41), slice(int(cols.min()), int(cols.max()) + 1)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt install chromium)")
def test_a_browser_shows_the_live_frames(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    drive = [sys.executable, "-m", "tests.net.drive", url, "--size", "640x480", "--frames", "3000"]
    p = subprocess.Popen(drive, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        first = screenshot(url, tmp_path / "a.png")
        second = screenshot(url, tmp_path / "b.png")
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "closed after" in out, err  # SIGTERM: the server stopped cleanly
    rows, cols = frame_area(first)
    assert rows.stop - rows.start >= 480 and cols.stop - cols.start >= 640  # the whole 640x480 picture shows
    a, b = first[rows, cols].astype(np.int16), second[rows, cols].astype(np.int16)
    assert a.std() > 20  # a picture, not a blank or grey area
    assert np.abs(a - b).mean() > 1.0  # live: the box and the frame number moved between the two shots
