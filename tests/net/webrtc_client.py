"""``python -m tests.net.webrtc_client http://HOST:PORT/NAME OUT.npy [--frames N] [--codec MIME]``: a
receive-only aiortc peer, signalled as the page's script is (POST /NAME/offer), that saves the
``N``-th frame it decodes (within ``--timeout`` seconds); ``--codec`` offers only that codec (e.g.
``video/H264``). A refused offer: exit 1, the HTTP status and body on stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

import numpy as np


async def receive(url: str, n: int, codec: str | None = None, timeout: float = 60) -> np.ndarray:
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video", direction="recvonly")
    if codec:
        offered = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == codec]
        transceiver.setCodecPreferences(offered)
    got: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
    reading: list[asyncio.Future[None]] = []

    @pc.on("track")
    def on_track(track: object) -> None:
        async def read() -> None:
            for _ in range(n):
                frame = await track.recv()  # type: ignore[attr-defined]
            got.set_result(frame.to_ndarray(format="bgr24"))

        reading.append(asyncio.ensure_future(read()))

    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate first
    body = json.dumps({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}).encode()
    req = urllib.request.Request(url + "/offer", body, {"Content-Type": "application/json"})
    answer = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=30).read()))
    await pc.setRemoteDescription(RTCSessionDescription(**answer))
    try:
        return await asyncio.wait_for(got, timeout)
    finally:
        await pc.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--codec")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the N-th frame")
    a = p.parse_args()
    try:
        np.save(a.out, asyncio.run(receive(a.url.rstrip("/"), a.frames, a.codec, a.timeout)))
    except urllib.error.HTTPError as e:
        print(f"HTTP {e.code}: {e.read().decode()}", file=sys.stderr)
        return 1
    print("received", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
