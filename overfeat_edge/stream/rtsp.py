"""[no torch] ``--output rtsp://@:8554/NAME`` and ``--output rtp://HOST:PORT``: the annotated stream as H.264.

RTSP: GStreamer's RTSP server in this process, through PyGObject, as on JetPack where both come
with the system (PyPI has no wheel for PyGObject's system bindings: Debian's ``python3-gi`` serves
``/usr/bin/python3``, so a venv needs ``--system-site-packages``). One server per address and port,
its GLib main loop in a thread; one mount per stream (``{name}`` in the path: the stream's name),
added at the stream's first frame (its size fixes the caps). The media is shared: one pipeline,
``appsrc ! queue(leaky) ! videoconvert ! x264enc tune=zerolatency ! rtph264pay`` (``nvv4l2h264enc``
on a Jetson), encodes once for any number of viewers, and only while someone watches. ``write``
pushes the frame and returns: a leaky queue drops frames the encoder cannot take, so the loop never
waits for it. With ``OVERFEAT_EDGE_VIEW_TOKEN`` set, viewers need basic auth (user ``overfeat``).

RTP: the same encode pushed over UDP to ``HOST:PORT`` (``udpsink``); the SDP a player needs is
printed at start and, with ``?sdp=FILE``, written there (``ffplay -protocol_whitelist file,udp,rtp FILE``).
"""

from __future__ import annotations

import sys
import threading
from fractions import Fraction
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import parse_qs

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.stream import endpoint
from overfeat_edge.stream.endpoint import Endpoint
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.types import Detections

INSTALL = (
    "apt install gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly (PyPI has no wheel for "
    "PyGObject's system bindings: Debian's python3-gi serves /usr/bin/python3, so make the venv from it with "
    "--system-site-packages)"
)
GOP_S = 1.0  # a keyframe every second: a viewer joining late waits at most this long

# encoder element -> the elements from BGR frames to H.264 (the first one present is used)
ENCODERS: Dict[str, Callable[[int], list[str]]] = {
    "nvv4l2h264enc": lambda gop: [
        "videoconvert",
        "video/x-raw,format=BGRx",
        "nvvidconv",
        "video/x-raw(memory:NVMM),format=I420",
        f"nvv4l2h264enc insert-sps-pps=1 iframeinterval={gop} idrinterval={gop} maxperf-enable=1",
    ],
    "x264enc": lambda gop: [
        "videoconvert",
        "video/x-raw,format=I420",
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate=4000",
    ],
}


def gst() -> Tuple[Any, Any, Any]:
    """(Gst, GstRtspServer, GLib), initialized; one InputError line saying what to install if not here."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as e:
        raise InputError(f"RTSP/RTP output needs GStreamer through PyGObject ({e}): {INSTALL}") from None
    Gst.init(None)
    return Gst, GstRtspServer, GLib


def encoder(Gst: Any) -> str:
    for name in ENCODERS:
        if Gst.ElementFactory.find(name) is not None:
            return name
    raise InputError(f"RTSP/RTP output: no H.264 encoder (x264enc) in GStreamer here: {INSTALL}")


def pipeline(Gst: Any, size: Tuple[int, int], fps: float, tail: list[str]) -> str:
    """``appsrc name=src`` (BGR frames of ``size`` (w, h)) to H.264 RTP, then ``tail``."""
    rate = Fraction(fps if fps > 0 else 30.0).limit_denominator(1001)
    gop = max(1, round(float(rate) * GOP_S))
    caps = f"video/x-raw,format=BGR,width={size[0]},height={size[1]},framerate={rate.numerator}/{rate.denominator}"
    elements = [
        f"appsrc name=src is-live=true format=time do-timestamp=true block=false caps={caps}",
        "queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0",
        *ENCODERS[encoder(Gst)](gop),
        # SPS/PPS in band once a second (a GOP), not "with every IDR" (-1): x264's sliced threads cut an IDR
        # into one NAL per thread and rtph264pay (1.22) then puts SPS/PPS before each, which FFmpeg's RTSP
        # client (OpenCV, ffplay) reads as a new picture: every keyframe decoded half missing, concealed
        "rtph264pay name=pay0 pt=96 config-interval=1",
        *tail,
    ]
    return " ! ".join(elements)


def push(Gst: Any, src: Any, frame: np.ndarray, size: Tuple[int, int]) -> None:
    if (frame.shape[1], frame.shape[0]) != size:
        frame = cv2.resize(frame, size)  # a source that changes size mid-stream
    src.emit("push-buffer", Gst.Buffer.new_wrapped(np.ascontiguousarray(frame).tobytes()))


class RtspServer:
    """One GstRTSPServer on an address and port, its GLib loop in a thread; streams are its mounts."""

    def __init__(self, ep: Endpoint) -> None:
        self.Gst, self.Rtsp, self.GLib = gst()
        self.ep = ep
        self.streams: Dict[str, RtspSink] = {}
        self.context = self.GLib.MainContext.new()
        self.loop = self.GLib.MainLoop.new(self.context, False)
        self.server = self.Rtsp.RTSPServer.new()
        self.server.set_address(ep.host or "0.0.0.0")
        self.server.set_service(str(ep.port))
        self.server.connect("client-connected", self._on_client)
        token = endpoint.token()
        if token:
            auth, role = self.Rtsp.RTSPAuth.new(), self.Rtsp.RTSPToken()
            role.set_string("media.factory.role", "viewer")
            auth.add_basic(self.Rtsp.RTSPAuth.make_basic(endpoint.TOKEN_USER, token), role)
            self.server.set_auth(auth)
        self.source_id = self.server.attach(self.context)
        if self.source_id == 0:
            raise InputError(f"--output {ep.uri}: cannot listen on port {ep.port} (in use?)")
        self.thread = threading.Thread(target=self.loop.run, name=f"rtsp-{ep.port}", daemon=True)
        self.thread.start()

    def _on_client(self, _server: Any, client: Any) -> None:
        """A viewer that starts playing gets a keyframe now, not at the next one of the GOP."""
        client.connect("play-request", lambda _c, _ctx: self.keyframes())

    def keyframes(self) -> None:
        for sink in list(self.streams.values()):
            sink.keyframe()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the GLib loop's thread and wait for it (the server's objects live there)."""
        done = threading.Event()

        def once(*_args: Any) -> bool:
            try:
                fn()
            finally:
                done.set()
            return False

        source = self.GLib.idle_source_new()
        source.set_callback(once)
        source.attach(self.context)
        done.wait(5)

    def mount(self, path: str, launch: str, on_media: Callable[[Any], None]) -> None:
        factory = self.Rtsp.RTSPMediaFactory.new()
        factory.set_launch(f"( {launch} )")
        factory.set_shared(True)  # one pipeline, one encode, for every viewer
        if endpoint.token():
            perms = self.Rtsp.RTSPPermissions()
            for perm in ("media.factory.access", "media.factory.construct"):
                perms.add_permission_for_role("viewer", perm, True)
            factory.set_permissions(perms)
        factory.connect("media-configure", lambda _f, media: on_media(media))
        self.call(lambda: self.server.get_mount_points().add_factory(path, factory))

    def unmount(self, path: str) -> None:
        self.call(lambda: self.server.get_mount_points().remove_factory(path))

    def stop(self) -> None:
        """Close every viewer's session, stop listening, end the loop."""
        remove = self.Rtsp.RTSPFilterResult.REMOVE
        self.call(lambda: self.server.client_filter(lambda _s, _c: remove))
        self.call(lambda: self.context.find_source_by_id(self.source_id).destroy())  # closes the listening socket
        self.loop.quit()
        self.thread.join(timeout=5)


_servers: Dict[str, RtspServer] = {}
_servers_lock = threading.Lock()


def _parse_rtsp(uri: str) -> Endpoint:
    ep = endpoint.parse(uri, ("rtsp",), 8554)
    if ep.path.strip("/") == "" or ep.query:
        raise InputError(f"--output {uri}: give the mount's name as the path, e.g. rtsp://@:8554/cam")
    return ep


def _parse_rtp(uri: str) -> Tuple[Endpoint, Optional[str]]:
    ep = endpoint.parse(uri, ("rtp",), 5004, need_host=True)
    query = parse_qs(ep.query)
    if ep.path.strip("/") or set(query) - {"sdp"}:
        raise InputError(f"--output {uri}: give rtp://HOST:PORT, optionally ?sdp=FILE for the SDP a player opens")
    return ep, query.get("sdp", [None])[-1]


def check_output(uri: str) -> None:
    """The URL, GStreamer with an H.264 encoder, and for RTSP that the port can be listened on."""
    if uri.startswith("rtp:"):
        _parse_rtp(uri)
    else:
        ep = _parse_rtsp(uri)
        with _servers_lock:
            serving = ep.key in _servers
        if not serving:
            endpoint.check_bind(ep)
    Gst = gst()[0]
    encoder(Gst)


class RtspSink(Sink):
    """One stream, one mount; frames reach the encoder only while the mount has viewers."""

    def __init__(self, uri: str, stream: str, fps: float) -> None:
        ep = _parse_rtsp(uri.replace("{name}", stream))
        self.path, self.fps, self.stream = "/" + ep.path.strip("/"), fps, stream
        with _servers_lock:
            server = _servers.get(ep.key) or _servers.setdefault(ep.key, RtspServer(ep))
            if self.path in {s.path for s in server.streams.values()} or stream in server.streams:
                raise InputError(f"--output {uri}: two streams on the mount {self.path}; put {{name}} in the path")
            server.streams[stream] = self
        self.server = server
        self.url = ep.url(self.path)
        self.size: Optional[Tuple[int, int]] = None
        self.src: Optional[Any] = None
        self.pay: Optional[Any] = None
        self.frames = self.pushed = 0

    def describe(self) -> str:
        return self.url

    def _on_media(self, media: Any) -> None:
        element = media.get_element()
        self.src, self.pay = element.get_by_name_recurse_up("src"), element.get_by_name_recurse_up("pay0")
        media.connect("unprepared", lambda _m: setattr(self, "src", None))

    def keyframe(self) -> None:
        """Ask the encoder for a keyframe (an upstream force-key-unit event through the payloader)."""
        pay = self.pay if self.src is not None else None
        if pay is not None:
            import gi

            gi.require_version("GstVideo", "1.0")
            from gi.repository import GstVideo

            pay.send_event(GstVideo.video_event_new_upstream_force_key_unit(self.server.Gst.CLOCK_TIME_NONE, True, 0))

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        if self.size is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.server.mount(self.path, pipeline(self.server.Gst, self.size, self.fps, []), self._on_media)
        self.frames += 1
        src = self.src
        if src is not None:
            push(self.server.Gst, src, frame, self.size)
            self.pushed += 1

    def close(self) -> None:
        with _servers_lock:
            self.server.streams.pop(self.stream, None)
            last = not self.server.streams and _servers.get(self.server.ep.key) is self.server
            if last:
                del _servers[self.server.ep.key]
        if self.size is not None and not last:
            self.server.unmount(self.path)
        if last:
            self.server.stop()


SDP = """v=0
o=- 0 0 IN IP4 {host}
s=overfeat-edge {stream}
c=IN IP4 {host}
t=0 0
m=video {port} RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1
a=framerate:{fps:g}
"""


class RtpSink(Sink):
    """H.264 over RTP/UDP to one host and port, from the first frame; nothing listens here."""

    def __init__(self, uri: str, stream: str, fps: float) -> None:
        self.Gst = gst()[0]
        self.ep, sdp_path = _parse_rtp(uri)
        self.fps, self.stream = fps if fps > 0 else 30.0, stream
        self.sdp = SDP.format(host=self.ep.host, port=self.ep.port, stream=stream, fps=round(self.fps, 3))
        if sdp_path is not None:
            from overfeat_edge.io import atomic_write_text

            atomic_write_text(sdp_path.replace("{name}", stream), self.sdp)
        self.pipe: Optional[Any] = None
        self.size: Optional[Tuple[int, int]] = None
        self.frames = 0

    def describe(self) -> str:
        return f"{self.ep.uri} (RTP/H.264 over UDP)"

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        if self.pipe is None:
            self.size = (frame.shape[1], frame.shape[0])
            udp = f"udpsink host={self.ep.host} port={self.ep.port} sync=false async=false"
            self.pipe = self.Gst.parse_launch(pipeline(self.Gst, self.size, self.fps, [udp]))
            self.pipe.set_state(self.Gst.State.PLAYING)
        assert self.size is not None
        push(self.Gst, self.pipe.get_by_name("src"), frame, self.size)
        self.frames += 1

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.get_by_name("src").emit("end-of-stream")
            self.pipe.get_bus().timed_pop_filtered(2 * self.Gst.SECOND, self.Gst.MessageType.EOS)
            self.pipe.set_state(self.Gst.State.NULL)
            self.pipe = None


def open_output(uri: str, *, stream: str, fps: float, class_names: tuple[str, ...]) -> Sink:
    """An ``rtsp://`` server mount or an ``rtp://`` sender; says where to look, in one line."""
    if uri.startswith("rtp:"):
        rtp = RtpSink(uri, stream, fps)
        print(f"RTP/H.264 to {rtp.ep.host}:{rtp.ep.port}; a player opens this SDP:\n{rtp.sdp}", file=sys.stderr)
        return rtp
    sink = RtspSink(uri, stream, fps)
    print(sink.server.ep.opening_line("RTSP server", sink.path), file=sys.stderr)
    return sink
