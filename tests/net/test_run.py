"""``run --output`` with the network schemes, end to end: the shipped model on a generated video, read
from outside while it runs; and every bad --output refused in one line, exit 2, before the model loads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.net.test_rtsp import GST_PYTHON, ffprobe, needs_ffprobe, needs_gst
from tests.net.test_web import ROOT, free_port, listening, read_parts

FAST = ["--scales", "192", "--no-live"]  # one small pyramid level: a few seconds on two busy cores


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from overfeat_edge.train.synth import write_demo_video

    return write_demo_video(tmp_path_factory.mktemp("net") / "in.mp4", frames=150, seed=1)


def start(python: str, *args: str) -> subprocess.Popen[str]:
    cmd = [python, str(ROOT / "cli.py"), "run", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(p: subprocess.Popen[str], text: str) -> list[str]:
    """stderr lines up to the one holding ``text`` (the rest is drained in a thread: the pipe never fills)."""
    assert p.stderr is not None
    lines = []
    for line in p.stderr:
        lines.append(line)
        if text in line:
            threading.Thread(target=p.stderr.read, daemon=True).start()
            return lines
    raise AssertionError(f"no {text!r} on stderr: {''.join(lines)}")


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def frames_of(video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        frames.append(img)


def shown_record(img: np.ndarray, frames: list[np.ndarray], records: list[dict[str, Any]]) -> float:
    """How far ``img`` is from the record that fits it best, drawn on its own source frame: over the pixels
    the overlay changes (boxes, labels; not the banner, whose frame rate differs), the picture's mean
    distance from that drawing over its distance from the frame undrawn. About 0.2 for a served frame after
    H.264 or JPEG; about 1 for a picture without the overlay (the demo video's red texture is close to
    the square's red, so a colour on an outline alone cannot tell them apart), or with half of it missing."""
    from overfeat_edge.pipeline.draw import LabelAnnotator, banner_text
    from overfeat_edge.types import Detections

    names = {d["class_id"]: d["label"] for r in records for d in r["detections"]}
    annotator = LabelAnnotator([names.get(i, str(i)) for i in range(max(names, default=-1) + 1)])
    banner = banner_text("1 scale", 100.0)  # the run's banner: label placement keeps clear of its height
    blank = np.zeros_like(img)
    band = np.flatnonzero(annotator.annotate(blank, Detections.empty(), text=banner).any(axis=(1, 2)))
    top = int(band.max()) + 1 if band.size else 0
    picture = img.astype(np.int16)
    best = np.inf
    for r in records:
        raw, ds = frames[r["frame"]], r["detections"]
        det = Detections(
            xyxy=np.array([d["box"] for d in ds], np.float32).reshape(-1, 4),
            score=np.array([d["score"] for d in ds], np.float32),
            class_id=np.array([d["class_id"] for d in ds], np.int64),
        )
        drawn = annotator.annotate(raw, det, text=banner)
        changed = np.abs(drawn.astype(np.int16) - raw).max(axis=-1) > 40
        changed[:top] = False
        if changed.any():
            near, far = np.abs(picture - drawn)[changed].mean(), np.abs(picture - raw)[changed].mean()
            best = min(best, near / max(far, 1e-6))
    return float(best)


def test_run_serves_the_page_the_events_and_the_stats(tmp_path: Path, video: Path) -> None:
    url, out = f"http://127.0.0.1:{free_port()}/", tmp_path / "d.jsonl"
    p = start(sys.executable, str(video), "--output", url, "--jsonl", str(out), *FAST)
    lines = wait_for_line(p, "live page on 127.0.0.1: open " + url)
    events: list[dict[str, Any]] = []

    def listen() -> None:
        with urllib.request.urlopen(url + "events", timeout=60) as r:
            for line in r:  # until the run ends and the server closes the stream
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))

    listener = threading.Thread(target=listen)
    listener.start()
    stream = next(iter(json.loads(urllib.request.urlopen(url + "stats.json", timeout=10).read())["streams"]))
    parts = read_parts(url + f"streams/{stream}.mjpg", 3, timeout=60)
    stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=10).read())["streams"][stream]
    p.wait(timeout=300)
    listener.join(timeout=60)
    assert p.returncode == 0, "".join(lines)
    records = jsonl(out)
    assert len(records) == 150
    by_frame = {r["frame"]: {k: v for k, v in r.items() if k != "source"} for r in records}
    assert stats["latest"] == by_frame[stats["last_frame"]] and stats["frames"] >= stats["last_frame"] + 1
    assert stats["detections"] == sum(len(by_frame[i]["detections"]) for i in range(stats["frames"]))
    assert events and events == [by_frame[i] for i in range(events[0]["frame"], 150)]  # every record, in order
    frames = frames_of(video)
    for jpeg in parts:  # the picture is a source frame with the boxes and labels its record says
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (384, 512, 3) and shown_record(img, frames, records) < 0.5


def test_sigterm_closes_viewers_and_keeps_the_files(tmp_path: Path, video: Path) -> None:
    url, out = f"http://127.0.0.1:{free_port()}/", tmp_path / "d.jsonl"
    p = start(sys.executable, str(video), "--output", url, "--jsonl", str(out), "--scales", "x1", "--no-live")
    wait_for_line(p, "live page")
    stream = next(iter(json.loads(urllib.request.urlopen(url + "stats.json", timeout=10).read())["streams"]))
    viewer = urllib.request.urlopen(url + f"streams/{stream}.mjpg", timeout=60)
    viewer.read(1000)
    p.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rest = viewer.read()  # returns: the server ended the response and closed the connection
    assert time.monotonic() - t0 < 30 and isinstance(rest, bytes)
    p.wait(timeout=60)
    assert p.returncode != 0
    assert jsonl(out) and all(isinstance(r["frame"], int) for r in jsonl(out))  # whole lines only
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))), timeout=2)


@needs_gst
@needs_ffprobe
def test_run_serves_rtsp(tmp_path: Path, video: Path) -> None:
    port, out = free_port(), tmp_path / "d.jsonl"
    p = start(str(GST_PYTHON), str(video), "--output", f"rtsp://127.0.0.1:{port}/cam", "--jsonl", str(out), *FAST)
    lines = wait_for_line(p, f"RTSP server on 127.0.0.1: open rtsp://127.0.0.1:{port}/cam")
    from tests.net.test_rtsp import capture, settled

    cap = capture(f"rtsp://127.0.0.1:{port}/cam", timeout=120)
    pictures = [settled(cap, 5), *(settled(cap, 1) for _ in range(9))]  # a keyframe on PLAY, then what follows
    info = ffprobe(f"rtsp://127.0.0.1:{port}/cam", "-rtsp_transport", "tcp")
    cap.release()
    p.wait(timeout=300)
    assert p.returncode == 0, "".join(lines)
    assert info == {"codec_name": "h264", "width": 512, "height": 384, "avg_frame_rate": "30/1"}
    frames, records = frames_of(video), jsonl(out)
    ratios = [shown_record(img, frames, records) for img in pictures]
    assert max(ratios) < 0.5, ratios


def refused(video: Path, output: str) -> str:
    """``run VIDEO --output output``'s stderr, checked: exit 2, one line, no traceback, before the model loads."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "run", str(video), "--output", output],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "backend" not in r.stdout  # refused before the model loaded
    return r.stderr


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("udp://127.0.0.1:5000", "unknown scheme 'udp'"),
        ("rtp:/127.0.0.1:1234", "needs 'rtp://' (two slashes)"),
        ("rtsp://127.0.0.1:8554", "give the mount's name"),
        ("http://127.0.0.1:70000/", "port must be a number"),
    ],
)
def test_bad_outputs_are_one_line_before_the_model(video: Path, output: str, says: str) -> None:
    assert says in refused(video, output)


def test_a_port_in_use_stops_run_before_the_model(video: Path) -> None:
    with listening() as port:
        assert f"port {port} is in use" in refused(video, f"http://127.0.0.1:{port}/")


@pytest.mark.skipif(GST_PYTHON == sys.executable, reason="this interpreter has GStreamer: nothing missing to report")
def test_missing_gstreamer_stops_run_in_one_line(video: Path) -> None:
    says = refused(video, f"rtsp://127.0.0.1:{free_port()}/x")
    assert "apt install gir1.2-gst-rtsp-server-1.0" in says and "PyPI" in says


@needs_gst
def test_another_run_reads_the_rtsp_output(tmp_path: Path) -> None:
    """``overfeat-edge run rtsp://...`` as a viewer: the stream served is a source like any camera's."""
    from tests.net.test_rtsp import serve

    url, out = f"rtsp://127.0.0.1:{free_port()}/cam", tmp_path / "seen.jsonl"
    for _ in serve(url):
        from tests.net.test_rtsp import capture

        capture(url).release()  # the mount is there (it appears at the first frame)
        r = subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), "run", url, "--max-frames", "5", "--jsonl", str(out), *FAST],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
    frames = [rec["frame"] for rec in jsonl(out)]  # a live source: stale frames dropped, the newest taken
    assert (
        len(frames) == 5 and frames == sorted(set(frames)) and jsonl(out)[0]["stream"] == "cam0"
    )  # a URL source is named by its position
