"""The web page output on 127.0.0.1, driven with real frames: the MJPEG stream decodes to the frames
written, /stats.json and /events carry the counts and the records, a stalled viewer costs the writer
nothing, the token is required when set, and bad URLs are one line before any frame."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream import web
from overfeat_edge.stream.endpoint import ENV_TOKEN
from tests.net.drive import CLASSES, box, edge_distance, frame

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port another program listens on, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture
def url() -> Iterator[str]:
    yield f"http://127.0.0.1:{free_port()}/"


def read_parts(url: str, n: int, timeout: float = 10) -> list[bytes]:
    """The first ``n`` JPEG parts of a multipart/x-mixed-replace response, parsed by hand."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("multipart/x-mixed-replace")
        boundary = ctype.split("boundary=")[1].encode()
        parts = []
        while len(parts) < n:
            assert r.readline().strip() == b"--" + boundary
            headers = dict(line.decode().strip().split(": ", 1) for line in iter(r.readline, b"\r\n"))
            assert headers["Content-Type"] == "image/jpeg"
            parts.append(r.read(int(headers["Content-Length"])))
            assert r.readline() == b"\r\n"
        return parts


def write_frames(sink: web.WebSink, start: int, n: int, size: tuple[int, int], pace: float = 0.0) -> None:
    for i in range(start, start + n):
        img, det = frame(i, size)
        sink.write(i, i / 30, img, det)
        time.sleep(pace)


def test_mjpeg_stats_and_events_carry_what_was_written(url: str) -> None:
    size = (640, 480)
    web.check_output(url)
    sink = web.open_output(url, stream="cam", fps=30, class_names=CLASSES)
    try:
        events = urllib.request.urlopen(url + "events", timeout=10)
        assert events.readline().startswith(b":")  # the comment line: subscribed
        writer = threading.Thread(target=write_frames, args=(sink, 0, 60, size, 0.03))
        writer.start()
        parts = read_parts(url + "streams/cam.mjpg", 5)
        writer.join()
        for jpeg in parts:  # each part a JPEG of the frame size whose box sits where some frame's box was
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == (480, 640, 3)
            near = min(range(60), key=lambda i: edge_distance(img, box(i, size)))
            assert edge_distance(img, box(near, size)) < 60  # the overlay's colour on a written box's edge
            assert edge_distance(img, box(near + 50, size)) > 100  # and not where no box was
        records = []
        while len(records) < 60:
            line = events.readline()
            if line.startswith(b"data: "):
                records.append(json.loads(line[6:]))
        events.close()
        assert [r["frame"] for r in records] == list(range(60))  # a viewer that keeps up gets every record
        assert records[7]["stream"] == "cam" and records[7]["detections"][0]["label"] == "disc"
        assert records[7]["detections"][0]["box"] == [float(v) for v in box(7, size)]
        stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=5).read())["streams"]["cam"]
        assert stats["frames"] == 60 and stats["detections"] == 60 and stats["last_frame"] == 59
        assert stats["latest"]["frame"] == 59 and stats["latest"]["detections"][0]["box"][0] == box(59, size)[0]
        assert 1 <= stats["encoded"] <= 60
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        assert '["cam"]' in page and "/streams/" in page
    finally:
        sink.close()
    with pytest.raises(OSError):  # closed: the port is let go
        urllib.request.urlopen(url + "stats.json", timeout=2)


def test_two_streams_share_one_server(url: str) -> None:
    a = web.open_output(url, stream="a", fps=30, class_names=CLASSES)
    b = web.open_output(url, stream="b", fps=30, class_names=CLASSES)
    try:
        web.check_output(url)  # served by this process already: not "in use"
        write_frames(a, 0, 3, (160, 120))
        write_frames(b, 0, 5, (160, 120))
        stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=5).read())["streams"]
        assert (stats["a"]["frames"], stats["b"]["frames"]) == (3, 5)
        a.close()
        stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=5).read())["streams"]
        assert list(stats) == ["b"]  # the server stays while a stream is left
    finally:
        a.close()
        b.close()


def stalled_viewer(url: str) -> socket.socket:
    """A viewer that asks for the MJPEG stream and never reads a byte of it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.split("//")[1].rstrip("/").split(":")
    s.connect((host, int(port)))
    s.sendall(b"GET /streams/cam.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    return s


def timed_run(sink: web.WebSink, n: int) -> float:
    t0 = time.perf_counter()
    write_frames(sink, 0, n, (640, 480))
    return n / (time.perf_counter() - t0)


def test_a_stalled_viewer_does_not_slow_the_writer(url: str) -> None:
    """Frames/s with one reading viewer, then with that viewer and two that never read: the page encodes
    once per frame for any number of viewers, so the baseline has the one encode too (with no viewer
    at all nothing is encoded, which no number of viewers can match on two cores)."""
    sink = web.open_output(url, stream="cam", fps=30, class_names=CLASSES)
    got: list[bytes] = []

    def watch() -> None:  # a viewer that reads all along, until the sink closes its stream
        with contextlib.suppress(AssertionError, OSError, ValueError, KeyError):
            with urllib.request.urlopen(url + "streams/cam.mjpg", timeout=60) as r:
                boundary = r.headers["Content-Type"].split("boundary=")[1].encode()
                while True:
                    assert r.readline().strip() == b"--" + boundary
                    headers = dict(line.decode().strip().split(": ", 1) for line in iter(r.readline, b"\r\n"))
                    got.append(r.read(int(headers["Content-Length"])))
                    assert r.readline() == b"\r\n"

    reader = threading.Thread(target=watch, daemon=True)
    try:
        reader.start()
        time.sleep(0.3)
        alone = timed_run(sink, 120)
        read_alone = len(got)
        stalled = [stalled_viewer(url) for _ in range(2)]
        time.sleep(0.3)
        watched = timed_run(sink, 240)
        stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=5).read())["streams"]["cam"]
        for s in stalled:
            s.close()
    finally:
        sink.close()
    reader.join(30)
    assert stats["viewers"] >= 3 and stats["viewers_lost_frames"] > 0  # the stalled ones really stalled
    assert read_alone > 0 and len(got) >= read_alone + 20  # the reading viewer got frames all along
    assert watched >= 0.5 * alone, (watched, alone)  # generous: the encodes share the CPU, nothing waits


def test_the_token_is_needed_when_set(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TOKEN, "s3cret")
    sink = web.open_output(url, stream="cam", fps=30, class_names=CLASSES)
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "stats.json", timeout=5)
        assert e.value.code == 401 and "Basic" in e.value.headers["WWW-Authenticate"]
        for password, ok in (("wrong", False), ("s3cret", True)):
            auth = base64.b64encode(f"anyone:{password}".encode()).decode()
            req = urllib.request.Request(url + "stats.json", headers={"Authorization": f"Basic {auth}"})
            if ok:
                assert "cam" in json.loads(urllib.request.urlopen(req, timeout=5).read())["streams"]
            else:
                with pytest.raises(urllib.error.HTTPError):
                    urllib.request.urlopen(req, timeout=5)
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("http://127.0.0.1:99999/", "port must be a number"),
        ("http://127.0.0.1:8080/page", "give no path"),
        ("http://:8080/", "give a host, or @"),
        ("http://me:pw@127.0.0.1:8080/", "no credentials"),
    ],
)
def test_malformed_urls_are_one_line(uri: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        web.check_output(uri)


def test_a_port_in_use_is_named() -> None:
    with listening() as port, pytest.raises(InputError, match=f"port {port} is in use"):
        web.check_output(f"http://127.0.0.1:{port}/")


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX users")
def test_a_privileged_port_without_root() -> None:
    """As a user with no privilege (nobody, where the tests run as root): port 80 is refused in one line."""
    drop = "import os\nif os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"  # after the imports
    code = "from overfeat_edge.stream import web\n" + drop
    bind = f"import socket\n{drop}socket.socket().bind(('127.0.0.1', 80))"
    probe = subprocess.run([sys.executable, "-c", bind], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this machine lets any user bind ports below 1024 (net.ipv4.ip_unprivileged_port_start)")
    check = "try: web.check_output('http://127.0.0.1:80/')\nexcept Exception as e: print(e)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, cwd=ROOT, env=env)
    assert "port 80 is below 1024 and needs root" in r.stdout, r.stderr
