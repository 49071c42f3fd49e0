"""A fake network camera: an HTTP MJPEG stream (multipart/x-mixed-replace), like an IP camera's.

    python fake_camera.py PORT [--fps 30] [--frames N] [--size 128x96] [--stall-after N --stall SECONDS]

Frame ``i`` is grey with a white bar ``4 * (i % 64) + 4`` px wide, so a reader can tell frames
apart. It serves one client at a time and exits after ``--frames`` frames (0: never).
"""

from __future__ import annotations

import argparse
import http.server
import time

import cv2
import numpy as np


def frame(i: int, w: int, h: int) -> bytes:
    img = np.full((h, w, 3), 60, np.uint8)
    img[:, : 4 * (i % 64) + 4] = 255
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--frames", type=int, default=0)
    ap.add_argument("--size", default="128x96")
    ap.add_argument("--stall-after", type=int, default=0, help="stop sending after this many frames ...")
    ap.add_argument("--stall", type=float, default=0.0, help="... for this many seconds, then go on")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            i = 0
            try:
                while not args.frames or i < args.frames:
                    data = frame(i, w, h)
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                    self.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    i += 1
                    time.sleep(1 / args.fps)
                    if args.stall and i == args.stall_after:
                        time.sleep(args.stall)  # a camera that hangs (the connection stays open)
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, *a: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler) as srv:
        print("ready", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
