"""RTSP and RTP outputs with GStreamer's own server in a process of their own (the interpreter that has
PyGObject: see tests/net/setup.py), read back from outside with OpenCV and ffprobe on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream import rtsp
from overfeat_edge.stream.endpoint import ENV_TOKEN
from tests.net.drive import box, edge_distance
from tests.net.setup import VENV, has_gi
from tests.net.test_web import ROOT, free_port, listening

SIZE = (640, 480)
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")  # OpenCV's RTSP over TCP: no loss


def gst_python() -> str | None:
    for python in (sys.executable, str(VENV / "bin" / "python")):
        if Path(python).exists() and has_gi(python):
            return python
    return None


GST_PYTHON = gst_python()
needs_gst = pytest.mark.skipif(
    GST_PYTHON is None, reason="no PyGObject with GStreamer's RTSP server (apt install ...; python -m tests.net.setup)"
)
needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="no ffprobe (apt install ffmpeg)")


def serve(uri: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    cmd = [str(GST_PYTHON), "-m", "tests.net.drive", uri, "--size", f"{SIZE[0]}x{SIZE[1]}", "--fps", "30"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr and p.stderr.read()
        yield p
    finally:
        p.terminate()
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0 and "closed after" in out, err  # SIGTERM: closed cleanly


@pytest.fixture
def rtsp_url() -> Iterator[str]:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    yield from (url for _ in serve(url))


def capture(url: str, timeout: float = 20) -> cv2.VideoCapture:
    """Open ``url``; the mount appears at the stream's first frame, so retry until then."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        if cap.isOpened():
            return cap
        time.sleep(0.3)
    raise AssertionError(f"cannot open {url}")


def ffprobe(url: str, *args: str) -> dict[str, object]:
    cmd = ["ffprobe", "-v", "error", *args, "-show_entries", "stream=codec_name,width,height,avg_frame_rate"]
    r = subprocess.run([*cmd, "-of", "json", url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["streams"][0]


def settled(cap: cv2.VideoCapture, n: int = 5) -> np.ndarray:
    """The ``n``-th frame read: a viewer that joins between keyframes decodes grey until the next one."""
    frames = [cap.read() for _ in range(n)]
    assert all(ok for ok, _ in frames)
    return frames[-1][1]


def shows_a_written_box(img: np.ndarray) -> None:
    """The frame read back has the overlay's colour on the edge of a box the driver wrote, not elsewhere."""
    assert img.shape == (SIZE[1], SIZE[0], 3)
    near = min(range(200), key=lambda i: edge_distance(img, box(i, SIZE)))
    assert edge_distance(img, box(near, SIZE)) < 60
    assert edge_distance(img, box(near + 50, SIZE)) > 100


@needs_gst
@needs_ffprobe
def test_rtsp_reads_back_as_h264_with_the_boxes(rtsp_url: str) -> None:
    first = capture(rtsp_url)
    second = capture(rtsp_url)  # two viewers at once, one shared encode
    try:
        for cap in (first, second):
            shows_a_written_box(settled(cap))
        info = ffprobe(rtsp_url, "-rtsp_transport", "tcp")
        assert info == {"codec_name": "h264", "width": 640, "height": 480, "avg_frame_rate": "30/1"}
        time.sleep(1.5)
        late = capture(rtsp_url)  # joins a running shared media
        shows_a_written_box(settled(late, 3))  # a keyframe on joining: not a second of grey (the GOP)
        late.release()
        for cap in (first, second):  # the early viewers kept receiving
            shows_a_written_box(settled(cap, 3))
    finally:
        first.release()
        second.release()


@needs_gst
@needs_ffprobe
def test_every_keyframe_decodes_whole(rtsp_url: str) -> None:
    """FFmpeg's RTSP client (OpenCV's, ffplay's) decodes three seconds, three GOPs and the keyframe sent on
    PLAY, without concealing a macroblock: each picture arrives as one access unit (x264's sliced threads cut
    an IDR into one NAL per thread; SPS/PPS before each of them made FFmpeg split the picture in two)."""
    cmd = ["ffmpeg", "-v", "info", "-rtsp_transport", "tcp", "-i", rtsp_url, "-t", "3", "-f", "null", "-"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "conceal" not in r.stderr and "corrupt" not in r.stderr, r.stderr[-2000:]


def stalled_rtsp_viewer(url: str) -> socket.socket:
    """A viewer that DESCRIBEs, SETUPs (RTP interleaved in its TCP connection) and PLAYs, then never reads."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader = s.makefile("rb")

    def request(cseq: int, *lines: str) -> tuple[str, str]:
        s.sendall("\r\n".join([*lines, f"CSeq: {cseq}", "", ""]).encode())
        head = b"".join(iter(lambda: reader.readline(), b"\r\n")).decode()
        length = re.search(r"Content-Length: (\d+)", head)
        return head, reader.read(int(length.group(1))).decode() if length else ""

    _, sdp = request(1, f"DESCRIBE {url} RTSP/1.0", "Accept: application/sdp")
    control = re.findall(r"a=control:(\S+)", sdp.split("m=video")[1])[0]
    track = control if control.startswith("rtsp:") else f"{url}/{control}"
    head, _ = request(2, f"SETUP {track} RTSP/1.0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
    session = re.search(r"Session: ([^;\r\n]+)", head)
    assert session is not None, head
    head, _ = request(3, f"PLAY {url} RTSP/1.0", f"Session: {session.group(1)}")
    assert head.startswith("RTSP/1.0 200"), head
    return s


def read_rate(cap: cv2.VideoCapture, seconds: float) -> float:
    t0, n = time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        ok, _ = cap.read()
        assert ok
        n += 1
    return n / (time.monotonic() - t0)


@needs_gst
def test_a_stalled_rtsp_viewer_holds_up_no_other(rtsp_url: str) -> None:
    cap = capture(rtsp_url)
    try:
        settled(cap, 30)  # past what was buffered while opening
        before = read_rate(cap, 3)
        stalled = [stalled_rtsp_viewer(rtsp_url) for _ in range(2)]
        during = read_rate(cap, 8)  # 8 s of 640x480 H.264: far more than the stalled sockets' buffers
        shows_a_written_box(settled(cap, 1))
        for s in stalled:
            s.close()
    finally:
        cap.release()
    assert during >= 0.7 * before, (during, before)  # the shared media goes on for the viewer that reads


@needs_gst
@needs_ffprobe
def test_rtsp_token_is_basic_auth() -> None:
    port = free_port()
    for _ in serve(f"rtsp://127.0.0.1:{port}/cam", {ENV_TOKEN: "s3cret"}):
        capture(f"rtsp://overfeat:s3cret@127.0.0.1:{port}/cam").release()  # waits for the mount
        cmd = ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"rtsp://127.0.0.1:{port}/cam"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "401" in r.stderr
        assert ffprobe(f"rtsp://overfeat:s3cret@127.0.0.1:{port}/cam", "-rtsp_transport", "tcp")["codec_name"] == "h264"


@needs_gst
@needs_ffprobe
def test_rtp_with_its_sdp(tmp_path: Path) -> None:
    sdp = tmp_path / "cam.sdp"
    for _ in serve(f"rtp://127.0.0.1:{free_port()}?sdp={sdp}"):
        assert sdp.read_text().startswith("v=0")
        info = ffprobe(str(sdp), "-protocol_whitelist", "file,udp,rtp")
        assert (info["codec_name"], info["width"], info["height"]) == ("h264", 640, 480)


@pytest.mark.skipif(GST_PYTHON == sys.executable, reason="this interpreter has GStreamer: nothing missing to report")
def test_missing_gstreamer_says_what_to_install() -> None:
    with pytest.raises(InputError, match=r"apt install gir1.2-gst-rtsp-server-1.0 python3-gi .*PyPI has no wheel"):
        rtsp.check_output(f"rtsp://127.0.0.1:{free_port()}/cam")


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("rtsp://127.0.0.1:8554", "give the mount's name"),
        ("rtsp://127.0.0.1:x/cam", "port must be a number"),
        ("rtp://@:5004", "give the address to send to"),
        ("rtp://127.0.0.1", "give a port"),
        ("rtp://127.0.0.1:5004/path", "rtp://HOST:PORT"),
    ],
)
def test_malformed_urls_are_one_line(uri: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        rtsp.check_output(uri)


def test_rtsp_port_in_use_is_named() -> None:
    with listening() as port, pytest.raises(InputError, match=f"port {port} is in use"):
        rtsp.check_output(f"rtsp://127.0.0.1:{port}/cam")
