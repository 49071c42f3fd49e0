"""WebRTC output with real aiortc peers: two viewers receive the annotated frames (the box where the
writer drew it) through the page's signalling (POST /NAME/offer), inside a network namespace of its own.

aiortc's ICE leaves 127.0.0.1 out of its candidates, and the tests use no address of this machine's
real interfaces: the namespace has only its loopback, with 127.0.0.2 added for ICE to use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream import webrtc
from tests.net.drive import box, edge_distance
from tests.net.test_web import ROOT, free_port

pytest.importorskip("aiortc", reason="no aiortc (pip install 'overfeat-edge[webrtc]')")
SIZE = (640, 480)


@pytest.fixture
def netns() -> Iterator[list[str]]:
    """``ip netns exec NAME``: a namespace with only a loopback (127.0.0.1 and 127.0.0.2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace needs root and iproute2's ip")
    name = f"ovfe-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow network namespaces")
    try:
        run = ["ip", "netns", "exec", name]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*run, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], check=True)
        yield run
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_two_viewers_receive_the_boxes(netns: list[str], tmp_path: Path) -> None:
    port = free_port()  # the namespace's ports are its own: any number is free there
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = [*netns, sys.executable, "-m", "tests.net.drive", f"webrtc://127.0.0.1:{port}/cam", "--size", "640x480"]
    p = subprocess.Popen(server, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        client = [*netns, sys.executable, "-m", "tests.net.webrtc_client", f"http://127.0.0.1:{port}/cam"]
        viewers = [
            subprocess.Popen(
                [*client, str(tmp_path / f"v{i}.npy")], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
            )
            for i in range(2)
        ]
        for v in viewers:
            assert v.wait(timeout=120) == 0, v.stderr and v.stderr.read()
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "closed after" in out, err  # SIGTERM: the peers and the server closed
    assert "WebRTC page on 127.0.0.1: open http://127.0.0.1:" in err
    for i in range(2):
        img = np.load(tmp_path / f"v{i}.npy")
        assert img.shape == (480, 640, 3)
        near = min(range(200), key=lambda k: edge_distance(img, box(k, SIZE)))
        assert edge_distance(img, box(near, SIZE)) < 60 and edge_distance(img, box(near + 50, SIZE)) > 100


@pytest.mark.parametrize(
    ("uri", "says"),
    [("webrtc://127.0.0.1:8554", "give the stream's name"), ("webrtc://127.0.0.1:8554/a/b", "stream's name")],
)
def test_malformed_urls_are_one_line(uri: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        webrtc.check_output(uri)


def test_missing_aiortc_says_what_to_install() -> None:
    """In an interpreter without aiortc (the GStreamer venv has none): one line naming the extra."""
    python = ROOT / ".venv-py-gst" / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import aiortc"], capture_output=True).returncode == 0:
        pytest.skip("no interpreter without aiortc here")
    code = (
        "from overfeat_edge.stream import webrtc\n"
        "try: webrtc.check_output('webrtc://127.0.0.1:8554/cam')\nexcept Exception as e: print(e)"
    )
    r = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert "needs aiortc: pip install 'overfeat-edge[webrtc]'" in r.stdout, r.stderr
