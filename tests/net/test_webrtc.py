"""WebRTC output with real peers: two aiortc viewers receive the annotated frames (the box where the
writer drew it) through the page's signalling (POST /NAME/offer), inside a network namespace of its
own; and a real headless Chromium on another "machine" plays ``overfeat-edge run``'s stream.

aiortc's ICE leaves 127.0.0.1 out of its candidates, and the tests use no address of this machine's
real interfaces: the aiortc test's namespace has only its loopback, with 127.0.0.2 added for ICE to
use. Chromium takes no loopback address at all (it gathers only the address of its default route),
so the browser test joins two namespaces by a veth pair, a LAN of two hosts: as a viewer on another
machine, with no Chromium flag."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream import webrtc
from tests.net.chromium import CHROMIUM, Browser
from tests.net.drive import box, edge_distance
from tests.net.test_run import jsonl, wait_for_line
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


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


LAN = (("s", "10.99.0.1", "10.99.0.2"), ("v", "10.99.0.2", "10.99.0.1"))  # (link prefix, address, route)


@pytest.fixture
def two_hosts() -> Iterator[tuple[list[str], list[str]]]:
    """``ip netns exec`` for a server (10.99.0.1) and a viewer (10.99.0.2) on a veth pair, each the
    other's default route: the browser gathers its address as it would on a LAN."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's ip")
    tag = uuid.uuid4().hex[:6]
    hosts, made = [f"ovfe-s{tag}", f"ovfe-v{tag}"], []
    try:
        for ns in hosts:
            if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
                pytest.skip("this machine does not allow network namespaces")
            made.append(ns)
        veth = ["link", "add", f"s{tag}", "netns", hosts[0], "type", "veth", "peer", f"v{tag}", "netns", hosts[1]]
        if subprocess.run(["ip", *veth], capture_output=True).returncode != 0:
            pytest.skip("this machine has no veth links")
        for ns, (prefix, me, route) in zip(hosts, LAN):
            ip("-n", ns, "addr", "add", f"{me}/24", "dev", prefix + tag)
            for link in (prefix + tag, "lo"):
                ip("-n", ns, "link", "set", link, "up")
            ip("-n", ns, "route", "add", "default", "via", route)
        yield ["ip", "netns", "exec", hosts[0]], ["ip", "netns", "exec", hosts[1]]
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


# What the page's <video> shows: its size, frames decoded, clock and state line; PICTURE: its frame
# now, drawn to a canvas at full size, as a PNG data URL.
VIDEO = """(() => {
  const v = document.querySelector("video");
  if (!v) return null;  // the page is not there yet
  return {w: v.videoWidth, h: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames,
          t: v.currentTime, state: document.getElementById("state").textContent, steps: window.steps};
})()"""
PICTURE = """(() => {
  const v = document.querySelector("video"), c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight; c.getContext("2d").drawImage(v, 0, 0);
  return c.toDataURL("image/png");
})()"""


def picture(browser: Browser) -> np.ndarray:
    """The <video>'s picture; until it is painted (just after its first frame) a canvas gets all black."""
    import cv2

    def grab() -> np.ndarray:
        png = base64.b64decode(browser.evaluate(PICTURE).split(",", 1)[1])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    for _ in range(50):
        img = grab()
        if img.max() > 0:
            return img
        time.sleep(0.2)
    return img


def shown(img: np.ndarray, records: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """The record whose strongest box the picture shows best: how far its outline is from the box's class
    colour (small where it is drawn), and that box. The run's overlay is on top of the driver's own box."""
    return min(
        (edge_distance(img, best["box"], best["class_id"]), best["box"])
        for r in records
        if r["detections"]
        for best in [max(r["detections"], key=lambda d: d["score"])]
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt install chromium)")
def test_chromium_plays_the_run(two_hosts: tuple[list[str], list[str]], tmp_path: Path) -> None:
    """``run`` on a generated video (the test driver's moving box, served live at 30 frames/s as an MJPEG
    camera, so the run lasts as long as the browser needs whatever this machine's speed) with
    ``--output webrtc://@:8554/cam``; Chromium on the other host opens the page the run prints and plays
    the stream: the picture's size, frames decoded and clock advancing, the boxes the JSONL says, moving."""
    server, viewer = two_hosts
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    camera = [*server, sys.executable, "-m", "tests.net.drive", "http://127.0.0.1:8080/", "--size", "640x480"]
    cam = subprocess.Popen(camera, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    run = [*server, sys.executable, str(ROOT / "cli.py"), "run", "http://127.0.0.1:8080/streams/cam.mjpg"]
    run += ["--output", "webrtc://@:8554/cam", "--jsonl", str(tmp_path / "d.jsonl"), "--scales", "192", "--no-live"]
    p = subprocess.Popen(run, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert cam.stdout is not None and cam.stdout.readline().strip() == "ready"
        lines = wait_for_line(p, "WebRTC page on every interface")
        assert lines[-1].rstrip().endswith(":8554/cam"), lines
        with Browser("http://10.99.0.1:8554/cam", tmp_path, viewer) as browser:
            first = browser.wait_for(VIDEO, lambda v: bool(v and v["frames"] > 0 and v["w"] > 0), timeout=120)
            img = picture(browser)
            later = browser.wait_for(VIDEO, lambda v: v["frames"] >= first["frames"] + 30, timeout=120)
            img_later = picture(browser)
    finally:
        p.terminate()
        p.wait(timeout=60)  # its stderr is drained by wait_for_line's thread
        cam.terminate()
        cam.communicate(timeout=30)
    assert (first["w"], first["h"]) == (640, 480) and first["state"].startswith("cam: connected"), first
    assert later["t"] > first["t"] and (later["w"], later["h"]) == (640, 480)
    assert img.shape == img_later.shape == (480, 640, 3)
    records = jsonl(tmp_path / "d.jsonl")
    (near, where), (near_later, where_later) = shown(img, records), shown(img_later, records)
    assert near < 60 and near_later < 60  # the boxes the run's JSONL says, in their class colour
    assert abs(where[0] - where_later[0]) > 20  # live: the box moved between the two pictures


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


def test_an_offer_without_vp8_is_refused(netns: list[str], tmp_path: Path) -> None:
    """The one encode is VP8: an offer of H.264 only gets 400 and why; the next viewer still plays."""
    port, env = free_port(), {**os.environ, "PYTHONPATH": str(ROOT)}
    server = [*netns, sys.executable, "-m", "tests.net.drive", f"webrtc://127.0.0.1:{port}/cam", "--size", "640x480"]
    p = subprocess.Popen(server, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = [*netns, sys.executable, "-m", "tests.net.webrtc_client", f"http://127.0.0.1:{port}/cam"]
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        only = [*client, str(tmp_path / "a.npy"), "--codec", "video/H264"]
        h264 = subprocess.run(only, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        vp8 = subprocess.run([*client, str(tmp_path / "b.npy")], cwd=ROOT, env=env, capture_output=True, timeout=120)
    finally:
        p.terminate()
        err = p.communicate(timeout=30)[1]
    assert h264.returncode == 1 and "HTTP 400: cannot answer this offer" in h264.stderr, h264.stderr
    assert "this server sends VP8, which the offer lacks" in h264.stderr
    assert vp8.returncode == 0 and np.load(tmp_path / "b.npy").shape == (480, 640, 3), vp8.stderr
    assert p.returncode == 0 and "Traceback" not in err, err


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
