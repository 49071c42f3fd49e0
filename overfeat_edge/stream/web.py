"""[no torch] ``--output http://@:8080/``: a web page with every stream, live, for a box with no screen.

One standard-library HTTP server per address and port, shared by every stream's sink (a registry
keyed by ``host:port``), serving:

- ``/``: the page: each stream's live frames, FPS, counts and latest detections;
- ``/streams/NAME.mjpg``: the annotated frames as MJPEG (``multipart/x-mixed-replace``), which every
  browser shows with no plugin, and OpenCV and ffplay read;
- ``/stats.json``: each stream's counters and its latest record;
- ``/events``: Server-Sent Events, one record per frame in the JSONL line's schema
  (``?stream=NAME`` for one stream).

Each frame is encoded to JPEG once, in the stream's own encoder thread, whatever the number of
viewers (and not at all with none); ``write`` only hands the frame over, so the loop never waits
for an encode or a viewer. Each viewer has its own mailbox: one frame (the latest) for MJPEG, a
bounded backlog of records for events; a stalled viewer loses frames, the others do not notice.
With ``OVERFEAT_EDGE_VIEW_TOKEN`` set, every request needs HTTP basic auth with it as the password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Set
from urllib.parse import parse_qs, unquote, urlsplit

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.runtime.base import ASSETS
from overfeat_edge.stream import endpoint
from overfeat_edge.stream.endpoint import Endpoint, Viewer
from overfeat_edge.stream.sinks import Sink, frame_record
from overfeat_edge.types import Detections

BOUNDARY = "overfeatframe"
JPEG_QUALITY = 80
EVENT_BACKLOG = 256  # records a slow event viewer may fall behind before it loses the oldest
VIEWER_TIMEOUT_S = 10.0  # a viewer whose socket takes no byte for this long is dropped


def _parse(uri: str) -> Endpoint:
    ep = endpoint.parse(uri, ("http",), 8080)
    if ep.path not in ("", "/") or ep.query:
        raise InputError(f"--output {uri}: the page is served at the root (http://HOST:PORT/), give no path")
    return ep


class Feed:
    """One stream: the frames handed in, encoded once in its own thread, and its viewers."""

    def __init__(self, name: str, class_names: tuple[str, ...], events: Callable[[dict[str, Any]], None]) -> None:
        self.name, self.class_names, self.events = name, class_names, events
        self.viewers: Set[Viewer] = set()
        self.lock = threading.Lock()
        self.pending = Viewer(1)  # the encoder's own mailbox: a slow encode skips frames, never the loop
        self.jpeg: Optional[bytes] = None
        self.frames = self.detections = self.encoded = self.last_frame = 0
        self.latest: Optional[dict[str, Any]] = None
        self.times: list[float] = []
        self.encode_s = 0.0
        self.t_last = 0.0
        self.thread = threading.Thread(target=self._encode, name=f"mjpeg-{name}", daemon=True)
        self.thread.start()

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        record = frame_record(index, timestamp, det, self.class_names, {"stream": self.name})
        now = time.monotonic()
        with self.lock:
            self.frames += 1
            self.detections += len(det)
            self.last_frame, self.latest, self.t_last = index, record, now
            self.times = [*self.times[-59:], now]
            watched = bool(self.viewers)
        self.events(record)
        if watched:
            self.pending.put(frame)

    def _encode(self) -> None:
        while not self.pending.closed:
            frame = self.pending.get(0.5)
            if frame is None:
                continue
            t0 = time.perf_counter()
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])  # type: ignore[call-overload]
            if not ok:
                continue
            jpeg = buf.tobytes()
            with self.lock:
                self.jpeg, self.encoded = jpeg, self.encoded + 1
                self.encode_s = time.perf_counter() - t0
                viewers = list(self.viewers)
            for v in viewers:
                v.put(jpeg)

    def watch(self, viewer: Viewer) -> None:
        with self.lock:
            self.viewers.add(viewer)
            if self.jpeg is not None:
                viewer.put(self.jpeg)  # a viewer joining sees the last frame at once

    def leave(self, viewer: Viewer) -> None:
        with self.lock:
            self.viewers.discard(viewer)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            t = self.times
            fps = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0
            return {
                "frames": self.frames,
                "detections": self.detections,
                "last_frame": self.last_frame,
                "fps": round(fps, 2),
                "age_ms": round((time.monotonic() - self.t_last) * 1000, 1) if self.frames else 0.0,
                "encoded": self.encoded,
                "encode_ms": round(self.encode_s * 1000, 2),
                "viewers": len(self.viewers),
                "viewers_lost_frames": sum(v.lost for v in self.viewers),
                "latest": self.latest,
            }

    def close(self) -> None:
        self.pending.close()
        with self.lock:
            viewers = list(self.viewers)
        for v in viewers:
            v.close()
        self.thread.join(timeout=5)


class WebServer(ThreadingHTTPServer):
    """The one server of an address and port; its streams register and leave; the last one out stops it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.address_family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
        super().__init__((ep.host, ep.port), Handler)
        self.feeds: Dict[str, Feed] = {}
        self.event_viewers: Set[Viewer] = set()
        self.connections: Set[socket.socket] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def publish(self, record: dict[str, Any]) -> None:
        with self.lock:
            viewers = list(self.event_viewers)
        for v in viewers:
            v.put(record)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            feeds = dict(self.feeds)
        return {"streams": {name: f.stats() for name, f in feeds.items()}}

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        """Stop accepting, end every viewer's response and close its connection."""
        self.shutdown()
        with self.lock:
            viewers, conns = list(self.event_viewers), list(self.connections)
        for v in viewers:
            v.close()
        for f in list(self.feeds.values()):
            f.close()
        for c in conns:  # a stalled viewer's handler is blocked in send: shutting the socket frees it
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()
        self.thread.join(timeout=5)


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    timeout = VIEWER_TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the run's terminal is the live view's

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            self._send(401, b"a token is needed\n", "text/plain", {"WWW-Authenticate": 'Basic realm="overfeat-edge"'})
            return
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        prefix = path[: path.index("/", 1) + 1] if path.count("/") > 1 else path  # /streams/NAME.mjpg: /streams/
        route = ROUTES.get(prefix)
        if route is None:
            self._send(404, b"not found\n", "text/plain")
            return
        route(self, path[len(prefix) :], query)

    def _authorized(self) -> bool:
        want = endpoint.token()
        if want is None:
            return True
        kind, _, value = self.headers.get("Authorization", "").partition(" ")
        try:
            given = base64.b64decode(value, validate=True).decode().partition(":")[2] if kind == "Basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given.encode(), want.encode())

    def _send(self, code: int, body: bytes, ctype: str, headers: Optional[dict[str, str]] = None) -> None:
        self.send_response(code)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def index(self, _rest: str, _query: dict[str, str]) -> None:
        names = json.dumps(sorted(self.server.feeds)).replace("<", "\\u003c")
        page = (ASSETS / "view.html").read_text(encoding="utf-8")
        self._send(200, page.replace("__STREAMS__", names).encode(), "text/html; charset=utf-8")

    def stats_json(self, _rest: str, _query: dict[str, str]) -> None:
        self._send(200, json.dumps(self.server.stats()).encode(), "application/json")

    def mjpeg(self, rest: str, query: dict[str, str]) -> None:
        feed = self.server.feeds.get(rest[: -len(".mjpg")]) if rest.endswith(".mjpg") else None
        if feed is None:
            self._send(
                404, f"no stream {rest!r}; streams: {', '.join(sorted(self.server.feeds))}\n".encode(), "text/plain"
            )
            return
        viewer = Viewer(1)
        feed.watch(viewer)
        self._start_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        try:
            while not viewer.closed:
                jpeg = viewer.get(1.0)
                if isinstance(jpeg, bytes):
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
        except OSError:
            pass  # the viewer went away
        finally:
            feed.leave(viewer)

    def events(self, _rest: str, query: dict[str, str]) -> None:
        only = query.get("stream")
        viewer = Viewer(EVENT_BACKLOG)
        with self.server.lock:
            self.server.event_viewers.add(viewer)
        self._start_stream("text/event-stream")
        try:
            self.wfile.write(b": overfeat-edge detections, one record per frame\n\n")
            while not viewer.closed:
                record = viewer.get(1.0)
                if isinstance(record, dict) and (only is None or record.get("stream") == only):
                    self.wfile.write(b"data: " + json.dumps(record).encode() + b"\n\n")
                elif record is None:
                    self.wfile.write(b": keep-alive\n\n")
        except OSError:
            pass
        finally:
            with self.server.lock:
                self.server.event_viewers.discard(viewer)


ROUTES: Dict[str, Callable[[Handler, str, Dict[str, str]], None]] = {
    "/": Handler.index,
    "/index.html": Handler.index,
    "/stats.json": Handler.stats_json,
    "/events": Handler.events,
    "/streams/": Handler.mjpeg,
}

_servers: Dict[str, WebServer] = {}
_servers_lock = threading.Lock()


def check_output(uri: str) -> None:
    """The URL, and that its port can be listened on (unless this run already serves it)."""
    ep = _parse(uri)
    with _servers_lock:
        if ep.key in _servers:
            return
    endpoint.check_bind(ep)


class WebSink(Sink):
    """One stream on the shared page of its address and port."""

    def __init__(self, uri: str, stream: str, class_names: tuple[str, ...]) -> None:
        ep = _parse(uri)
        self.stream = stream
        with _servers_lock:
            server = _servers.get(ep.key)
            if server is None:
                try:
                    server = _servers[ep.key] = WebServer(ep)
                except OSError as e:
                    raise InputError(f"--output {uri}: cannot listen on port {ep.port}: {e.strerror}") from None
            if stream in server.feeds:
                raise InputError(f"--output {uri}: two streams are named {stream!r}; give each its own name")
            self.feed = server.feeds[stream] = Feed(stream, tuple(class_names), server.publish)
        self.server = server
        self.url = ep.url("/")

    def describe(self) -> str:
        return f"{self.url} (stream {self.stream})"

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        self.feed.write(index, timestamp, frame, det)

    def close(self) -> None:
        with _servers_lock:
            feed = self.server.feeds.pop(self.stream, None)
            last = not self.server.feeds and _servers.get(self.server.ep.key) is self.server
            if last:
                del _servers[self.server.ep.key]
        if feed is not None:
            feed.close()
        if last:
            self.server.stop()


def open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> WebSink:
    sink = WebSink(uri, stream, class_names)
    if len(sink.server.feeds) == 1:
        import sys

        print(sink.server.ep.opening_line("live page"), file=sys.stderr)
    return sink
