"""[no torch] ``--publish mqtt://HOST[:PORT]/TOPIC``: every frame's detections to an MQTT broker.

What DeepStream's nvmsgbroker does, with Eclipse paho (the ``mqtt`` extra). One JSON message per
frame per stream, the JSONL line's schema (:func:`~overfeat_edge.records.frame_record`), QoS 1.
``{name}`` in the topic is the stream's name.

When the broker is away, paho keeps every QoS 1 message it has not had acknowledged (those sent
and not yet acknowledged, and those not sent) and sends them, in order, when it reconnects
(retrying with a backoff from 1 s to 8 s); messages in flight at the break are sent again with
the DUP flag, as QoS 1 allows. The buffer is bounded (``buffer`` messages): once it is full, new
messages are dropped and counted, never the ones already waiting. On close the sink waits up to
``drain`` seconds for the buffer to empty, then says what was left.

Credentials never come from the command line: ``OVERFEAT_EDGE_MQTT_USERNAME`` and
``OVERFEAT_EDGE_MQTT_PASSWORD`` (or ``OVERFEAT_EDGE_MQTT_PASSWORD_FILE``, a file holding it), and
TLS for ``mqtts://`` (the system's CAs, or ``OVERFEAT_EDGE_MQTT_CA`` a CA file).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

import numpy as np

from overfeat_edge.errors import InputError, OutputError
from overfeat_edge.io import read_bounded
from overfeat_edge.lazy import require
from overfeat_edge.records import frame_record
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.types import Detections

ENV_USER = "OVERFEAT_EDGE_MQTT_USERNAME"
ENV_PASSWORD = "OVERFEAT_EDGE_MQTT_PASSWORD"
ENV_PASSWORD_FILE = "OVERFEAT_EDGE_MQTT_PASSWORD_FILE"
ENV_CA = "OVERFEAT_EDGE_MQTT_CA"
MAX_URL = 1024  # the topic with {name} (at most 64 characters) stays far below MQTT's 65535 bytes
MAX_SECRET = 4096  # a password file's size
CONNECT_WAIT = 3.0  # seconds the sink waits at start to tell whether the broker answers


@dataclass(frozen=True)
class Broker:
    """Where to publish, parsed from ``mqtt[s]://HOST[:PORT]/TOPIC``."""

    host: str
    port: int
    topic: str
    tls: bool

    best_effort: bool = False

    @classmethod
    def parse(cls, url: str) -> Broker:
        if len(url) > MAX_URL or any(ord(c) < 32 or ord(c) == 127 for c in url):
            raise InputError(f"--publish {url[:60]!r}: a URL of at most {MAX_URL} printable characters is expected")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # a bad IPv6 literal, a port that is not a number
            if "port" in str(exc).lower():
                raise InputError(f"--publish {url}: the port must be a number from 1 to 65535") from None
            raise InputError(f"--publish {url}: not a valid URL ({exc}); give mqtt://HOST[:PORT]/TOPIC") from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise InputError(f"--publish {url}: give mqtt://HOST[:PORT]/TOPIC or mqtts://... (TLS)")
        if parts.username is not None or parts.password is not None:
            raise InputError(
                f"--publish: no credentials in the URL (they would show in the process list); "
                f"set {ENV_USER} and {ENV_PASSWORD} or {ENV_PASSWORD_FILE}"
            )
        if port is not None and not 1 <= port <= 65535:
            raise InputError(f"--publish {url}: the port must be a number from 1 to 65535, got {port}")
        topic = parts.path.lstrip("/")
        if not parts.hostname or not topic:
            raise InputError(f"--publish {url}: both a host and a topic are needed (mqtt://HOST[:PORT]/TOPIC)")
        if any(c in topic for c in "+\0") or "#" in url:
            raise InputError(f"--publish {url}: a topic to publish to cannot hold '+', '#' or NUL")
        if parts.query not in ("", "best-effort"):
            raise InputError(f"--publish {url}: the only option after '?' is best-effort")
        return cls(
            parts.hostname,
            port or (8883 if parts.scheme == "mqtts" else 1883),
            topic,
            parts.scheme == "mqtts",
            parts.query == "best-effort",
        )


def credentials() -> tuple[Optional[str], Optional[str]]:
    """(username, password) from the environment; a password file is read whole, one newline stripped."""
    user = os.environ.get(ENV_USER) or None
    password = os.environ.get(ENV_PASSWORD) or None
    path = os.environ.get(ENV_PASSWORD_FILE)
    if path:
        try:
            password = read_bounded(path, MAX_SECRET, ENV_PASSWORD_FILE).decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError(f"{ENV_PASSWORD_FILE}={path}: not UTF-8 text") from None
    if password is not None and user is None:
        raise InputError(f"an MQTT password is set but no {ENV_USER}")
    return user, password


def tls_ca() -> Optional[str]:
    """The CA file for mqtts:// (``OVERFEAT_EDGE_MQTT_CA``), checked; None: the system's CAs."""
    ca = os.environ.get(ENV_CA) or None
    if ca is not None:
        text = read_bounded(ca, 1 << 20, ENV_CA).decode("ascii", "replace")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise InputError(f"{ENV_CA}={ca}: not a PEM certificate file")
    return ca


class MqttSink(Sink):
    """Publishes one JSON message per frame (QoS 1) through a background paho client."""

    needs_frame = False

    def __init__(
        self,
        url: str,
        class_names: tuple[str, ...] | list[str],
        extra: dict[str, Any] | None = None,
        buffer: int = 10_000,
        drain: float = 5.0,
        client_id: str = "",
    ) -> None:
        if not 1 <= buffer <= 60_000:  # MQTT packet ids are 16-bit: a larger buffer would reuse them
            raise InputError(f"--publish-buffer must be from 1 to 60000 messages, got {buffer}")
        self.broker = Broker.parse(url)
        self.url, self.class_names, self.extra, self.drain = url, class_names, extra or {}, drain
        mqtt = require("paho.mqtt.client", "--publish")
        user, password = credentials()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"overfeat-edge-{socket.gethostname()}-{os.getpid()}-{id(self):x}",
            clean_session=True,
        )
        self.client.max_queued_messages_set(buffer)
        self.client.reconnect_delay_set(min_delay=1, max_delay=8)
        if user is not None:
            self.client.username_pw_set(user, password)
        if self.broker.tls:
            ca = tls_ca()
            try:
                self.client.tls_set(ca_certs=ca)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise InputError(f"--publish {url}: TLS could not be set up ({type(exc).__name__}: {exc})") from None
        self._queue_full = mqtt.MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
        self.warning = ""
        self.connected = threading.Event()
        self.last_error = ""
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._lock = threading.Lock()
        self.accepted = self.sent = self.dropped = self.connects = 0  # sent: acknowledged by the broker
        self.client.on_publish = self._on_publish
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self.reached = self.connected.wait(CONNECT_WAIT)
        if not self.reached:  # said now, not only in the summary at the end
            self.warning = (
                f"warning: {url}: the broker did not answer in {CONNECT_WAIT:g} s "
                f"({self.last_error or 'no connection'}); up to {buffer} messages are kept until it does"
            )
            print(self.warning, file=sys.stderr, flush=True)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"refused: {reason}"
            return
        self.connects += 1
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        self.last_error = f"disconnected: {reason}"

    def topic(self, record: dict[str, Any]) -> str:
        return self.broker.topic.replace("{name}", str(record.get("stream", "")))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:  # QoS 1: called once, on the broker's PUBACK
            self.sent += 1

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        record = frame_record(index, timestamp, det, self.class_names, self.extra)
        info = self.client.publish(self.topic(record), json.dumps(record, allow_nan=False), qos=1)
        if info.rc == self._queue_full:
            self.dropped += 1
        else:  # sent now, or kept until the broker is back
            self.accepted += 1

    @property
    def waiting(self) -> int:
        """Messages buffered and not yet acknowledged by the broker."""
        with self._lock:
            return self.accepted - self.sent

    def close(self) -> None:
        t_end = time.monotonic() + self.drain
        while self.waiting and time.monotonic() < t_end:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()

    def describe(self) -> str:
        return self.url

    def summary(self) -> str:
        left = self.waiting
        tail = f", {left} not acknowledged when it closed ({self.last_error or 'no connection'})" if left else ""
        drop = f", {self.dropped} dropped (buffer full)" if self.dropped else ""
        return f"{self.url}: {self.sent} message(s) acknowledged{drop}{tail}"

    def lost(self) -> int:
        """Messages that did not reach the broker (dropped, or still waiting when it closed)."""
        return self.dropped + self.waiting


def check_output(uri: str, buffer: int = 10_000) -> None:
    """``mqtt[s]://HOST[:PORT]/TOPIC`` checked before the model loads: the URL, the buffer, the
    credentials, the CA file for TLS, paho installed."""
    if Broker.parse(uri).tls:
        tls_ca()
    if not 1 <= buffer <= 60_000:
        raise InputError(f"--publish-buffer must be from 1 to 60000 messages, got {buffer}")
    credentials()
    require("paho.mqtt.client", "--publish")


def open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...], buffer: int = 10_000) -> MqttSink:
    """One sink for every stream: ``{name}`` in the topic is each message's stream."""
    return MqttSink(uri, class_names, buffer=buffer)


def check_delivered(sinks: Any) -> None:
    """Every MQTT sink got its messages acknowledged, unless its URL asked for ``?best-effort``:
    otherwise one :class:`OutputError` line (the run exits non-zero: results were lost)."""
    for sink in sinks:
        if not isinstance(sink, MqttSink) or not sink.lost():
            continue
        total = sink.accepted + sink.dropped
        if sink.broker.best_effort:
            print(f"warning: {sink.url}: {sink.lost()} of {total} message(s) lost (best effort)", file=sys.stderr)
        else:
            raise OutputError(
                f"{sink.url}: {sink.lost()} of {total} message(s) never reached the broker "
                f"({sink.last_error or 'no connection'}); add ?best-effort to the URL to accept losses"
            )
