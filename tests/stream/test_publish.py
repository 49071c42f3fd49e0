"""--publish against a real MQTT broker (Debian's mosquitto, started here on 127.0.0.1).

The broker is stopped mid-stream and started again: every message within the buffer is delivered,
and repeats are no more than the messages QoS 1 may have had in flight at the break (paho's 20).
Tests that need the broker skip with a reason where ``mosquitto`` or paho is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream.publish import ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_USER, Broker, credentials
from overfeat_edge.types import Detections

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None
)
try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - the dev extra installs it
    mqtt = None  # type: ignore[assignment]

needs_broker = pytest.mark.skipif(
    MOSQUITTO is None or mqtt is None,
    reason="needs Debian's mosquitto (apt install mosquitto; .ci/run does) and paho-mqtt",
)
INFLIGHT = 20  # paho's default max in-flight QoS 1 messages: the most that may be sent twice


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A broker on 127.0.0.1:port with persistence in a folder, so a stopped one keeps its sessions."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port, self.conf, self.db = port, folder / "mosquitto.conf", folder / "mosquitto.db"
        # as root, mosquitto drops to its own user, who cannot write pytest's 0700 folders: its
        # sessions were then lost on a restart, and so, at random, the messages sent before the
        # subscriber had subscribed again
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nlog_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the broker saves its sessions and exits
            self.proc.wait(10)
            assert self.db.is_file(), "mosquitto could not save its sessions"


class Subscriber:
    """A persistent-session QoS 1 subscriber that keeps every payload (repeats included)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="overfeat-test-sub", clean_session=False)
        c.reconnect_delay_set(min_delay=1, max_delay=1)
        c.on_connect = lambda cl, *_: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *_: self.subscribed.set()
        c.on_message = self._on_message
        c.connect_async("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append(json.loads(msg.payload))
            self.topics.append(msg.topic)

    def frames(self) -> list[int]:
        with self.lock:
            return [m["frame"] for m in self.messages]

    def unique(self) -> int:
        """Distinct (topic, frame) pairs received."""
        with self.lock:
            return len({(t, m["frame"]) for t, m in zip(self.topics, self.messages)})

    def wait_for(self, unique: int, timeout: float = 20.0) -> None:
        t_end = time.monotonic() + timeout
        while self.unique() < unique and time.monotonic() < t_end:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path, free_port())
    b.start()
    yield b
    b.stop()


def one_box(frame: int) -> Detections:
    x = float(frame % 50)
    return Detections(np.array([[x, 10.0, x + 20.0, 40.0]]), np.array([0.9]), np.array([0]))


# ---- URL and credentials ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.local/site/cams", Broker("broker.local", 1883, "site/cams", False)),
        ("mqtts://10.0.0.2:8884/a/{name}", Broker("10.0.0.2", 8884, "a/{name}", True)),
        ("mqtts://h/t", Broker("h", 8883, "t", True)),
    ],
)
def test_broker_url(url: str, expected: Broker) -> None:
    assert Broker.parse(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h/t", "mqtt://HOST"),
        ("mqtt://user:secret@h/t", "no credentials in the URL"),
        ("mqtt://h", "a host and a topic"),
        ("mqtt://h:99999/t", "port"),
        ("mqtt://h/a/#", "cannot hold"),
    ],
)
def test_bad_broker_url_is_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        Broker.parse(url)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in (ENV_USER, ENV_PASSWORD, ENV_PASSWORD_FILE):
        monkeypatch.delenv(k, raising=False)
    assert credentials() == (None, None)
    monkeypatch.setenv(ENV_USER, "cam")
    monkeypatch.setenv(ENV_PASSWORD, "pw1")
    assert credentials() == ("cam", "pw1")
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv(ENV_PASSWORD_FILE, str(tmp_path / "pw"))
    assert credentials() == ("cam", "from-file")
    monkeypatch.delenv(ENV_USER)
    with pytest.raises(InputError, match=ENV_USER):
        credentials()


# ---- against the broker ------------------------------------------------------------------------------
@needs_broker
def test_broker_restart_loses_nothing_within_the_buffer(broker: Mosquitto) -> None:
    from overfeat_edge.stream.publish import MqttSink

    sub = Subscriber(broker.port, "site/#")
    assert sub.subscribed.wait(10)
    sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/site/{{name}}", ["shape"], buffer=500, drain=30)
    assert sink.connected.wait(10)
    image = np.zeros((4, 4, 3), np.uint8)

    def write(frames: range) -> None:
        for i in frames:
            d = one_box(i)
            d.metadata["stream"] = "door"
            sink.write(i, i / 30, image, d)
            time.sleep(0.005)

    write(range(0, 60))
    broker.stop()
    write(range(60, 160))  # the broker is away: these wait in the buffer
    assert sink.waiting >= 100
    broker.start()
    write(range(160, 200))
    sink.close()
    sub.wait_for(200)
    sub.close()
    frames = sub.frames()
    counts = Counter(frames)
    assert set(counts) == set(range(200)), f"lost: {sorted(set(range(200)) - set(counts))[:10]}"
    repeats = len(frames) - len(counts)
    assert repeats <= INFLIGHT, f"{repeats} repeats: more than QoS 1 allows with {INFLIGHT} in flight"
    assert sink.dropped == 0 and sink.sent == 200 and sink.connects >= 2
    assert set(sub.topics) == {"site/door"}
    first = next(m for m in sub.messages if m["frame"] == 7)  # the JSONL schema
    assert first["stream"] == "door" and first["t"] == round(7 / 30, 4)
    want = {"box": [7.0, 10.0, 27.0, 40.0], "score": 0.9, "confidence": 0.9, "class_id": 0, "label": "shape"}
    assert first["detections"] == [want]


@needs_broker
def test_full_buffer_drops_new_messages_and_counts_them(broker: Mosquitto) -> None:
    from overfeat_edge.stream.publish import MqttSink

    sub = Subscriber(broker.port, "buf")
    assert sub.subscribed.wait(10)
    broker.stop()  # the subscriber's session is kept: it gets what is published while it is away
    sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/buf", ["shape"], buffer=10, drain=30)
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(25):
        sink.write(i, 0.0, image, one_box(i))
    assert sink.dropped == 15 and sink.waiting == 10
    broker.start()
    sink.close()
    sub.wait_for(10)
    sub.close()
    assert set(sub.frames()) == set(range(10))  # the oldest kept, in order of arrival
    assert sink.sent == 10 and "15 dropped" in sink.summary()


@needs_broker
def test_run_publishes_every_frame_of_every_stream(broker: Mosquitto, tmp_path: Path) -> None:
    from overfeat_edge.train.synth import write_demo_video

    videos = [write_demo_video(tmp_path / f"v{i}.mp4", 12, seed=i) for i in range(2)]
    sub = Subscriber(broker.port, "cams/+")
    assert sub.subscribed.wait(10)
    publish = ["--publish", f"mqtt://127.0.0.1:{broker.port}/cams/{{name}}", "--jsonl", str(tmp_path / "all.jsonl")]
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            *map(str, videos),
            "--backend",
            "onnxruntime",
            "--no-live",
            *publish,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    sub.wait_for(24)
    sub.close()
    lines = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    got = {(t, m["frame"]): m for t, m in zip(sub.topics, sub.messages)}
    assert len(got) == len(lines) == 24
    for line in lines:  # each message is its JSONL line, on its stream's topic
        assert got[(f"cams/{line['stream']}", line["frame"])] == line
    assert "24 message(s) acknowledged" in out.stdout


def test_publish_refuses_before_loading_anything(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "run", str(tmp_path / "none.mp4"), "--publish", "mqtt://u:p@h/t"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "no credentials in the URL" in out.stderr


def test_bad_ca_file_is_one_line_before_the_model_loads(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    env = {**os.environ, "OVERFEAT_EDGE_MQTT_CA": str(tmp_path / "ca.pem")}
    out = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "run", "0", "--publish", "mqtts://h/t"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "not a PEM certificate file" in out.stderr and len(out.stderr.strip().splitlines()) == 1
