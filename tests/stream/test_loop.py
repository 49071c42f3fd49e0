"""The stream loop over one source with real files and a real (fake) network camera process: order,
drops, reconnection and clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.records import detection_records
from overfeat_edge.runtime import Runner, load_runner
from overfeat_edge.stream.loop import Stream, StreamLoop
from overfeat_edge.stream.sinks import JsonlSink
from overfeat_edge.stream.sources import Source, parse_source

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_camera(*args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    p = subprocess.Popen(
        [sys.executable, str(HERE / "fake_camera.py"), str(port), *args], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p, f"http://127.0.0.1:{port}/"


@pytest.fixture
def camera():
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        p, url = start_camera(*args)
        procs.append(p)
        return p, url

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_runner("onnxruntime", "overfeat-mini-shapes", threads=2), DetectorConfig(min_score=1.5))


class Jittery(Runner):
    """A real ONNX Runtime session that also sleeps a random 0-60 ms per frame, so that several
    workers finish their frames out of order."""

    def __init__(self, seed: int) -> None:
        self.inner = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1)
        self.spec, self.name = self.inner.spec, self.inner.name
        self.rng = random.Random(seed)
        self.calls = 0

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.inner.run(batch)

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        self.calls += 1
        time.sleep(self.rng.uniform(0, 0.06))
        return self.inner.run_levels(batches)


@pytest.mark.parametrize("workers", [1, 3])
def test_file_every_frame_in_order_and_same_as_serial(tmp_path: Path, detector: Detector, workers: int) -> None:
    from overfeat_edge.train.synth import write_demo_video

    clip = write_demo_video(tmp_path / "clip.mp4", frames=10, seed=3)
    runners: list[Runner] = [Jittery(k) for k in range(workers)] if workers > 1 else [detector.runner]
    with JsonlSink(tmp_path / "d.jsonl", detector.spec.class_names) as sink:
        loop = StreamLoop([Stream("clip", Source(parse_source(str(clip))), [sink])], detector, runners=runners)
        stats = loop.run()
    if workers > 1:  # every worker took frames
        assert all(isinstance(r, Jittery) and r.calls > 0 for r in runners)
    recs = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(10)) and stats.dropped == 0
    cap = cv2.VideoCapture(str(clip))  # the reference: the same frames, detected one by one
    for r in recs:
        ok, img = cap.read()
        assert ok
        want = detection_records(detector.detect(img), detector.spec.class_names)
        assert r["detections"] == want
    cap.release()
    assert sum(len(r["detections"]) for r in recs) >= 10  # the demo scenes hold four objects each


def test_live_source_latency_stays_about_one_inference(camera, tmp_path: Path, detector: Detector) -> None:
    _, url = camera("--fps", "60")
    with JsonlSink(tmp_path / "d.jsonl", detector.spec.class_names) as sink:
        loop = StreamLoop([Stream("cam", Source(parse_source(url)), [sink])], detector, max_frames=6)
        stats = loop.run(duration=60)
    idx = [json.loads(x)["frame"] for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(idx) == 6 and all(b > a for a, b in zip(idx, idx[1:]))
    assert stats.captured >= stats.frames
    s = stats.summary()["stages"]
    # latest-frame policy: a frame waits at most about one inference before it is taken
    assert s["latency"]["p50_ms"] < 3 * s["inference"]["p95_ms"] + 200


class SlowJsonl(JsonlSink):
    """0.1 s per frame: output, then inference, falls behind a 60 FPS camera on any machine (a fast
    one kept up with the camera, and skipped nothing, without it)."""

    def write(self, *args: object) -> None:
        time.sleep(0.1)
        super().write(*args)  # type: ignore[arg-type]


def test_live_source_drops_stale_frames(camera, tmp_path: Path, detector: Detector) -> None:
    _, url = camera("--fps", "60")
    with SlowJsonl(tmp_path / "d.jsonl", detector.spec.class_names) as sink:
        loop = StreamLoop([Stream("cam", Source(parse_source(url)), [sink])], detector, max_frames=12)
        stats = loop.run(duration=60)
    idx = [json.loads(x)["frame"] for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(idx) == 12 and all(b > a for a, b in zip(idx, idx[1:]))
    assert stats.dropped > 0 and stats.captured > stats.frames
    assert max(b - a for a, b in zip(idx, idx[1:])) > 1  # frames were skipped, not queued


def test_reconnects_when_the_stream_ends(camera) -> None:
    _, url = camera("--fps", "100", "--frames", "15")  # each connection ends after 15 frames
    logs: list[str] = []
    src = Source(parse_source(url), reconnects=3, backoff=0.05, log=logs.append)
    got = [src.read() for _ in range(40)]
    src.close()
    assert all(f is not None for f in got) and src.reconnected >= 2
    assert any("reconnecting" in m for m in logs) and any("reconnected" in m for m in logs)


def test_gives_up_when_the_camera_is_gone(camera) -> None:
    proc, url = camera("--fps", "100")
    logs: list[str] = []
    src = Source(parse_source(url), reconnects=2, backoff=0.05, log=logs.append)
    assert src.read() is not None
    proc.kill()
    proc.wait()
    t0 = time.monotonic()
    while src.read() is not None:
        assert time.monotonic() - t0 < 30
    assert any("gave up after 2" in m for m in logs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_and_closes_every_output(camera, tmp_path: Path, sig: signal.Signals) -> None:
    _, url = camera("--fps", "30")
    args = [sys.executable, str(ROOT / "cli.py"), "run", url, "--output", str(tmp_path / "o.mp4")]
    args += ["--jsonl", str(tmp_path / "d.jsonl"), "--stats-json", str(tmp_path / "s.json"), "--no-live"]
    args += ["--scales", "131", "--threads", "1"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()

    def written() -> int:  # lines in the JSONL's temporary file (an unpredictable name: .d.jsonl.XXXXXXXX.tmp)
        return sum(q.read_text().count("\n") for q in tmp_path.glob(".d.jsonl.*.tmp"))

    while written() < 5:
        assert p.poll() is None and time.monotonic() - t0 < 60, p.communicate()
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err  # interrupted, as every command exits on Ctrl-C or SIGTERM
    assert err.strip().splitlines()[-1].startswith(f"interrupted: stopped by {sig.name} after "), err
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]  # no torn line
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(recs) >= 5  # the MP4 is finalized and plays
    cap.release()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["stopped_by"] == sig.name and stats["frames"] == len(recs)
    assert not list(tmp_path.glob(".*.tmp*")) and not list(tmp_path.glob(".*.lock"))
