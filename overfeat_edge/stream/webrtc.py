"""[no torch] ``--output webrtc://@:8554/NAME``: the annotated stream to any browser over WebRTC (aiortc).

What jetson-inference's ``webrtc://`` output does: an HTTP server on the port serves a page per stream
(``/NAME``) whose script makes a receive-only RTCPeerConnection, POSTs its offer to ``/NAME/offer``
and plays the answer's video; any WebRTC peer can do the same (the ``webrtc`` extra: ``aiortc``, whose
wheels bundle their codecs). aiortc runs in its own asyncio loop in a thread. ``write`` only leaves
the stream's newest frame for its one VP8 encoder (webrtc_media), which encodes it once for every
viewer while someone watches; a slow viewer loses frames and never holds the loop.

A page with no camera permission gets its host candidates hidden behind random mDNS names
(``UUID.local``; Chromium does, seen here): aioice resolves them by multicast on a LAN, and where
that fails (another subnet, multicast filtered) the browser's first connectivity check makes it a
peer-reflexive candidate, so the answer holds every candidate of ours and needs none of theirs.
No STUN server: aiortc's default (stun.l.google.com) only delayed each answer (~5 s on a box with
no internet) for a server-reflexive candidate that a viewer on the same network does not use.
aiortc's ICE leaves 127.0.0.1 out of its candidates: a peer on the same machine connects through
another address of this machine. With ``OVERFEAT_EDGE_VIEW_TOKEN`` set, the page and the offer need
HTTP basic auth with it as password, as the web page output does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from dataclasses import replace
from http.server import ThreadingHTTPServer
from typing import Any, Dict, Set

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.runtime.base import ASSETS
from overfeat_edge.stream import endpoint
from overfeat_edge.stream.endpoint import Endpoint
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.stream.web import Handler
from overfeat_edge.stream.webrtc_media import VP8, SharedEncoder
from overfeat_edge.types import Detections

INSTALL = "pip install 'overfeat-edge[webrtc]' (aiortc)"
OFFER_TIMEOUT_S = 15.0


def _aiortc() -> Any:
    try:
        import aiortc
    except ImportError:
        raise InputError(f"--output webrtc://... needs aiortc: {INSTALL}") from None
    return aiortc


def _parse(uri: str) -> Endpoint:
    ep = endpoint.parse(uri, ("webrtc",), 8554)
    name = ep.path.strip("/")
    if not name or "/" in name or ep.query:
        raise InputError(f"--output {uri}: give the stream's name as the path, e.g. webrtc://@:8554/cam")
    return ep


class WebRtcServer(ThreadingHTTPServer):
    """The signalling server of one address and port, and the asyncio loop the peer connections live in."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ep: Endpoint) -> None:
        _aiortc()
        self.ep = ep
        super().__init__((ep.host, ep.port), SignalHandler)
        self.streams: Dict[str, WebRtcSink] = {}
        self.peers: Set[Any] = set()
        self.loop = asyncio.new_event_loop()
        self.threads = [
            threading.Thread(target=self.loop.run_forever, name="webrtc-loop", daemon=True),
            threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True),
        ]
        for t in self.threads:
            t.start()

    async def answer(self, sink: WebRtcSink, offer: Dict[str, str]) -> Dict[str, str]:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
        from aiortc.exceptions import OperationError

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: see the module's docstring
        self.peers.add(pc)
        track = sink.encoder.track()

        @pc.on("connectionstatechange")
        async def gone() -> None:
            if pc.connectionState in ("failed", "closed"):
                track.stop()
                self.peers.discard(pc)
                await pc.close()

        sender = pc.addTrack(track)
        # a viewer's PLI/FIR: aiortc's hook forces a keyframe from the sender's own encoder, which a
        # pre-encoded track has not; the shared encoder makes it
        sender._send_keyframe = sink.encoder.request_keyframe  # type: ignore[method-assign]
        vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (VP8, "video/rtx")]
        for transceiver in pc.getTransceivers():  # before the offer: aiortc picks the codecs as it reads it
            transceiver.setCodecPreferences(vp8)  # the one codec the shared encoder makes
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
            await pc.setLocalDescription(await pc.createAnswer())
        except OperationError as e:  # no codec in common
            raise ValueError(f"{e}: this server sends VP8, which the offer lacks") from None
        finally:
            if pc.localDescription is None:  # refused: this viewer is gone
                track.stop()
                self.peers.discard(pc)
                await pc.close()
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    def stop(self) -> None:
        self.shutdown()
        closing = asyncio.run_coroutine_threadsafe(self._close_peers(), self.loop)
        try:
            closing.result(timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.server_close()
        for t in self.threads:
            t.join(timeout=5)

    async def _close_peers(self) -> None:
        await asyncio.gather(*(pc.close() for pc in list(self.peers)), return_exceptions=True)


class SignalHandler(Handler):
    """GET /NAME: the player page; POST /NAME/offer: the SDP answer (JSON {sdp, type} both ways)."""

    server: WebRtcServer  # type: ignore[assignment]

    def do_GET(self) -> None:
        name = self.path.split("?")[0].strip("/")
        if not self._authorized():
            self._send(401, b"a token is needed\n", "text/plain", {"WWW-Authenticate": 'Basic realm="overfeat-edge"'})
        elif name in self.server.streams:
            page = (ASSETS / "webrtc.html").read_text(encoding="utf-8").replace("__STREAM__", json.dumps(name))
            self._send(200, page.encode(), "text/html; charset=utf-8")
        else:
            self._send(404, f"streams: {', '.join(sorted(self.server.streams))}\n".encode(), "text/plain")

    def do_POST(self) -> None:
        name, _, tail = self.path.strip("/").partition("/")
        sink = self.server.streams.get(name)
        if not self._authorized():
            self._send(401, b"a token is needed\n", "text/plain", {"WWW-Authenticate": 'Basic realm="overfeat-edge"'})
            return
        if sink is None or tail != "offer":
            self._send(404, b"POST /NAME/offer\n", "text/plain")
            return
        try:
            offer = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            job = asyncio.run_coroutine_threadsafe(self.server.answer(sink, offer), self.server.loop)
            answer = job.result(timeout=OFFER_TIMEOUT_S)
        except (ValueError, KeyError, TypeError) as e:
            self._send(400, f"cannot answer this offer: {e}\n".encode(), "text/plain")
            return
        self._send(200, json.dumps(answer).encode(), "application/json")


_servers: Dict[str, WebRtcServer] = {}
_servers_lock = threading.Lock()


def check_output(uri: str) -> None:
    ep = _parse(uri)
    _aiortc()
    with _servers_lock:
        if ep.key in _servers:
            return
    endpoint.check_bind(ep)


class WebRtcSink(Sink):
    """One stream on the signalling server of its address and port."""

    def __init__(self, uri: str, stream: str, fps: float) -> None:
        ep = _parse(uri.replace("{name}", stream))
        self.name, self.fps = ep.path.strip("/"), fps
        with _servers_lock:
            server = _servers.get(ep.key)
            if server is None:
                server = _servers[ep.key] = WebRtcServer(ep)
            if self.name in server.streams:
                raise InputError(f"--output {uri}: two streams named {self.name!r}; put {{name}} in the path")
            self.encoder = SharedEncoder(server.loop, fps)
            server.streams[self.name] = self
        self.server, self.url = server, ep.url("/" + self.name)

    def describe(self) -> str:
        return self.url

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        self.encoder.put(frame)

    def close(self) -> None:
        self.encoder.stop()
        with _servers_lock:
            self.server.streams.pop(self.name, None)
            last = not self.server.streams and _servers.get(self.server.ep.key) is self.server
            if last:
                del _servers[self.server.ep.key]
        if last:
            self.server.stop()


def open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> WebRtcSink:
    sink = WebRtcSink(uri, stream, fps)
    page = replace(sink.server.ep, scheme="http")  # what a browser opens
    print(page.opening_line("WebRTC page", "/" + sink.name), file=sys.stderr)
    return sink
