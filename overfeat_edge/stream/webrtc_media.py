"""[no torch] WebRTC's media: each frame encoded once per stream, whatever the number of viewers.

aiortc's ``RTCRtpSender`` encodes what its track gives when that is a frame, with an encoder of its
own (so N viewers were N encodes of every frame); when the track gives an ``av.Packet`` it only
packetizes it (``Encoder.pack``: RTP payloads, its own picture ids and timestamps), which is how a
stream is relayed without decoding. So one ``SharedEncoder`` per stream encodes VP8 (every WebRTC
browser has it: RFC 7742) in a thread of its own, only while someone watches and only the newest
frame it has (a slow encode skips frames, never holds ``write``), and fans the packets out to one
``PacketTrack`` per viewer. A viewer starts at a keyframe (one is made when it joins), and a viewer
whose sender fell ``BACKLOG`` packets behind drops them and waits for the next keyframe (asking for
one): its picture freezes, the others' do not. A viewer's PLI/FIR (picture lost) asks the shared
encoder for a keyframe; a keyframe also comes every ``KEYFRAME_S``. The price: one bitrate for all
viewers (aiortc adapted each sender's encoder to that viewer's REMB estimate).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from fractions import Fraction
from typing import Any, Deque, List, Optional, Set

import numpy as np

VP8 = "video/VP8"
BITRATE = 1_500_000  # bits/s: aiortc's own VP8 ceiling, clear enough for thin box outlines at 640x480
KEYFRAME_S = 2.0  # the longest a lost packet leaves a viewer's picture broken
BACKLOG = 30  # packets a viewer's sender may lag before it skips to the next keyframe
CLOCK = Fraction(1, 90000)  # RTP's video clock: the packets' time base


class SharedEncoder:
    """One stream's VP8 encoder: ``put`` (from the run loop) leaves the newest frame; a thread encodes
    it once while there are viewers and hands each packet to every viewer's track in ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fps: float) -> None:
        self.loop, self.fps = loop, fps
        self.tracks: Set[Any] = set()  # PacketTracks; changed and read in the loop's thread only
        self.encoded = 0  # frames encoded, for all viewers together
        self._cond = threading.Condition()
        self._frame: Optional[np.ndarray] = None
        self._viewers, self._keyframe, self._stopped = 0, False, False
        self._thread = threading.Thread(target=self._run, name="webrtc-encode", daemon=True)
        self._thread.start()

    def put(self, frame: np.ndarray) -> None:
        with self._cond:
            self._frame = frame
            self._cond.notify()

    def request_keyframe(self) -> None:
        with self._cond:
            self._keyframe = True

    def track(self) -> Any:
        """A new viewer's track (in the loop's thread): it gets packets from the next keyframe on."""
        track = make_packet_track(self)
        self.tracks.add(track)
        with self._cond:
            self._viewers, self._keyframe = self._viewers + 1, True
            self._cond.notify()
        return track

    def drop(self, track: Any) -> None:
        if track in self.tracks:
            self.tracks.discard(track)
            with self._cond:
                self._viewers -= 1

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _next(self) -> Optional[tuple[np.ndarray, bool]]:
        with self._cond:
            while not self._stopped and (self._frame is None or self._viewers == 0):
                self._cond.wait()
            if self._stopped:
                return None
            frame, key = self._frame, self._keyframe
            self._frame, self._keyframe = None, False
        assert frame is not None
        return frame, key

    def _run(self) -> None:
        import av

        codec: Any = None
        start = time.monotonic()
        while (job := self._next()) is not None:
            frame, key = job
            if codec is None or (codec.width, codec.height) != (frame.shape[1], frame.shape[0]):
                codec, key = open_vp8(frame.shape[1], frame.shape[0], self.fps), True
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
            picture.pts, picture.time_base = int((time.monotonic() - start) / CLOCK), CLOCK
            picture.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
            packets = list(codec.encode(picture))
            self.encoded += 1
            if packets:
                self.loop.call_soon_threadsafe(self._fan_out, packets)

    def _fan_out(self, packets: List[Any]) -> None:
        for track in list(self.tracks):
            for packet in packets:
                track.push(packet)


def open_vp8(width: int, height: int, fps: float) -> Any:
    """libvpx for live video, as aiortc's own VP8 encoder sets it (realtime, no lag, constant bitrate)."""
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt, codec.time_base = width, height, "yuv420p", CLOCK
    codec.bit_rate = BITRATE
    codec.gop_size = max(1, round(KEYFRAME_S * (fps if fps > 0 else 30.0)))  # a source that gives no rate: 30
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "lag-in-frames": "0",
        "bufsize": str(BITRATE),
        "minrate": str(BITRATE),
        "maxrate": str(BITRATE),
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    return codec


def make_packet_track(encoder: SharedEncoder) -> Any:
    """One viewer's track: the shared encoder's packets, queued for this viewer's sender to packetize."""
    from aiortc import MediaStreamTrack

    class PacketTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.queue: Deque[Any] = collections.deque()
            self.ready, self.wait_key = asyncio.Event(), True

        def push(self, packet: Any) -> None:
            if len(self.queue) >= BACKLOG:  # its sender stalled: lose the backlog, go on at a keyframe
                self.queue.clear()
                self.wait_key = True
                encoder.request_keyframe()
            if self.wait_key and not packet.is_keyframe:
                return
            self.wait_key = False
            self.queue.append(packet)
            self.ready.set()

        async def recv(self) -> Any:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            return self.queue.popleft()

        def stop(self) -> None:
            encoder.drop(self)
            super().stop()

    return PacketTrack()
