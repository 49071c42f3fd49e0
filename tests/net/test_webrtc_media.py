"""The WebRTC output's one encode per stream, with real libvpx and no network: every viewer's track
hands out the very packets one encode made, each viewer starts at a keyframe, the packets decode (with
libvpx, as a browser's decoder would) to the frames written, box where it was drawn, and a viewer
whose sender never reads neither stops the others nor grows without bound."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, List

import numpy as np
import pytest

from tests.net.drive import box, edge_distance, frame

pytest.importorskip("aiortc", reason="no aiortc (pip install 'overfeat-edge[webrtc]')")
from overfeat_edge.stream import webrtc_media

SIZE = (640, 480)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop in a thread, as the WebRTC server runs aiortc."""
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    t.join(timeout=5)


def on(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> Any:
    async def call() -> Any:
        return fn(*args)

    return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)


def receive(loop: asyncio.AbstractEventLoop, track: Any, n: int) -> Future[List[Any]]:
    """A viewer's sender: reads ``n`` packets as they come (``.result()`` waits for them)."""

    async def take() -> List[Any]:
        return [await track.recv() for _ in range(n)]

    return asyncio.run_coroutine_threadsafe(take(), loop)


def feed(encoder: webrtc_media.SharedEncoder, first: int, n: int) -> None:
    """Frames ``first..first+n`` one by one, each once the encoder has taken the one before (no frame lost)."""
    for i in range(first, first + n):
        done = encoder.encoded
        encoder.put(frame(i, SIZE)[0])
        while encoder.encoded == done:
            threading.Event().wait(0.005)


def decode(packets: List[Any]) -> List[np.ndarray]:
    import av

    codec = av.CodecContext.create("libvpx", "r")
    return [f.to_ndarray(format="bgr24") for p in packets for f in codec.decode(p)]


def test_one_encode_for_every_viewer(loop: asyncio.AbstractEventLoop) -> None:
    encoder = webrtc_media.SharedEncoder(loop, 30.0)
    try:
        a, b = on(loop, encoder.track), on(loop, encoder.track)
        readers = [receive(loop, a, 30), receive(loop, b, 30)]
        feed(encoder, 0, 20)
        late = on(loop, encoder.track)  # joins after 20 frames: it asks for a keyframe
        readers.append(receive(loop, late, 10))
        feed(encoder, 20, 10)
        got_a, got_b, got_late = (r.result(timeout=120) for r in readers)
    finally:
        encoder.stop()
    assert encoder.encoded == 30  # once per frame, not once per viewer
    assert all(x is y for x, y in zip(got_a, got_b))  # the same packets: the same encode
    assert got_a[0].is_keyframe and got_late[0].is_keyframe and got_late[0] is got_a[20]
    for packets, first in ((got_a, 0), (got_late, 20)):  # each viewer decodes from its own first packet
        pictures = decode(packets)
        assert len(pictures) == len(packets)
        for i in (0, len(pictures) - 1):
            assert edge_distance(pictures[i], box(first + i, SIZE)) < 60
            assert edge_distance(pictures[i], box(first + i + 40, SIZE)) > 100


def test_a_viewer_that_never_reads_loses_packets_not_the_others(loop: asyncio.AbstractEventLoop) -> None:
    encoder = webrtc_media.SharedEncoder(loop, 30.0)
    try:
        reader, stalled = on(loop, encoder.track), on(loop, encoder.track)
        n = 3 * webrtc_media.BACKLOG
        reading = receive(loop, reader, n)
        feed(encoder, 0, n)
        got = reading.result(timeout=120)
        queued = on(loop, lambda: list(stalled.queue))
    finally:
        encoder.stop()
    assert encoder.encoded == n and len(got) == n
    assert 0 < len(queued) <= webrtc_media.BACKLOG and queued[0].is_keyframe  # dropped, resumed at a keyframe
    # the stalled viewer asked for a keyframe when its backlog overflowed (at packet BACKLOG), long
    # before the encoder's own next one (every KEYFRAME_S: packet 60)
    assert 2 * webrtc_media.BACKLOG <= round(webrtc_media.KEYFRAME_S * 30.0)
    assert any(p.is_keyframe for p in got[webrtc_media.BACKLOG : webrtc_media.BACKLOG + 3])
