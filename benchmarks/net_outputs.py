"""What a network output costs the detector: ``run`` on a 640x480 file with and without each one (issue R3 4/6).

    python3 benchmarks/net_outputs.py [--frames 300] [--size 640x480] [--viewers 1] [--repeats 2] [--dry]

Each mode is one ``overfeat-edge run VIDEO --max-frames F --stats-json S`` with the shipped shapes model:
``none`` (no output), ``http`` (``--output http://127.0.0.1:PORT/`` with ``--viewers`` MJPEG readers),
``rtsp`` (``--output rtsp://127.0.0.1:PORT/cam`` with ``--viewers`` OpenCV readers), ``rtp``
(``--output rtp://127.0.0.1:PORT``; UDP needs no reader) and ``webrtc`` (``--output
webrtc://127.0.0.1:PORT/cam`` with ``--viewers`` aiortc peers, ``tests.net.webrtc_client``, signalled
on 127.0.0.1 and the media over another address of this machine: aiortc's ICE skips 127.0.0.1). The
viewers attach as soon as the output is open, so a few frames at the start go unwatched. The figures
are the run's frames/s (its own ``--stats-json``), the ratio to ``none`` (target >= 0.9) and the
capture-to-output latency it adds (p50 and p95). RTSP and RTP run in the interpreter that has
GStreamer (``python -m tests.net.setup``), and so do the other modes then, for a like-for-like
baseline; WebRTC runs in one with aiortc (this one), with a ``none`` of its own where that is
another interpreter. Writes the "net_outputs" section of BENCHMARKS.md (not with ``--dry``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from tests.net.setup import VENV, has_gi  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """``demo``'s moving shapes, resized to ``size`` (w, h)."""
    import cv2
    import numpy as np

    from overfeat_edge.stream.sinks import VideoSink
    from overfeat_edge.train.synth import video
    from overfeat_edge.types import Detections

    with VideoSink(path, 30.0) as sink:
        for i, (frame, _, _) in enumerate(video(1, frames)):
            sink.write(i, i / 30, np.ascontiguousarray(cv2.resize(frame, size)), Detections.empty())
    return path


def mjpeg_viewer(url: str, stop: threading.Event) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            while not stop.is_set() and r.read(65536):
                pass
    except OSError:
        pass  # the run ended


def rtsp_viewer(url: str, stop: threading.Event) -> None:
    import cv2

    while not stop.is_set():  # the mount appears at the first frame
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        if cap.isOpened():
            while not stop.is_set() and cap.read()[0]:
                pass
            cap.release()
            return
        time.sleep(0.2)


def http_url(port: int) -> tuple[str, str, Callable[[], str]]:
    url = f"http://127.0.0.1:{port}/"

    def stream() -> str:
        names = json.loads(urllib.request.urlopen(url + "stats.json", timeout=30).read())["streams"]
        return f"{url}streams/{next(iter(names))}.mjpg"

    return url, "live page", stream


def webrtc_viewer(url: str, stop: threading.Event) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tests.net.webrtc_client", url, str(Path(tmp) / "last.npy")]
        cmd += ["--frames", str(10**9), "--timeout", "86400"]  # until the run ends and closes the peer
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop.wait()
        p.terminate()
        p.wait(timeout=30)


def webrtc_url(port: int) -> tuple[str, str, Callable[[], str]]:
    return f"webrtc://127.0.0.1:{port}/cam", "WebRTC page", lambda: f"http://127.0.0.1:{port}/cam"


# mode -> (output URI, the stderr text saying it is open, where a viewer reads) from a free port
MODES: Dict[str, Callable[[int], Any]] = {
    "none": lambda port: None,
    "http": http_url,
    "rtsp": lambda port: (f"rtsp://127.0.0.1:{port}/cam", "RTSP server", lambda: f"rtsp://127.0.0.1:{port}/cam"),
    "rtp": lambda port: (f"rtp://127.0.0.1:{port}", "RTP/H.264", None),
    "webrtc": webrtc_url,
}
VIEWERS = {"http": mjpeg_viewer, "rtsp": rtsp_viewer, "webrtc": webrtc_viewer}


def one_run(python: str, mode: str, video: Path, frames: int, viewers: int, work: Path) -> dict[str, Any]:
    """A run's --stats-json summary, with ``viewers`` readers attached to its output."""
    stats = work / f"{mode}.json"
    cmd = [python, str(ROOT / "cli.py"), "run", str(video), "--max-frames", str(frames), "--no-live"]
    cmd += ["--stats-json", str(stats)]
    spec = MODES[mode](free_port())
    if spec is not None:
        cmd += ["--output", spec[0]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    stop, threads = threading.Event(), []
    assert p.stderr is not None
    if spec is not None:
        for line in p.stderr:
            if spec[1] in line:
                break
        if spec[2] is not None:
            where = spec[2]()
            threads = [threading.Thread(target=VIEWERS[mode], args=(where, stop)) for _ in range(viewers)]
            for t in threads:
                t.start()
    err = p.stderr.read()
    if p.wait() != 0:
        raise SystemExit(f"net_outputs: the {mode} run failed: {err.strip()[-500:]}")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return json.loads(stats.read_text())


def interpreter() -> tuple[str, List[str]]:
    """The interpreter to run every mode but webrtc in, and the modes it can run."""
    for python in (sys.executable, str(VENV / "bin" / "python")):
        if Path(python).exists() and has_gi(python):
            return python, ["none", "http", "rtsp", "rtp"]
    print("net_outputs: no GStreamer (python -m tests.net.setup): rtsp and rtp left out", file=sys.stderr)
    return sys.executable, ["none", "http"]


def plan() -> List[tuple[str, str]]:
    """(interpreter, mode) to run: webrtc in this interpreter, with its own ``none`` if ``interpreter()``
    is another one (each ratio is to the ``none`` of the same interpreter)."""
    python, modes = interpreter()
    runs = [(python, m) for m in modes]
    if subprocess.run([sys.executable, "-c", "import aiortc"], capture_output=True).returncode != 0:
        print("net_outputs: no aiortc here (pip install 'overfeat-edge[webrtc]'): webrtc left out", file=sys.stderr)
    else:
        runs += [(sys.executable, m) for m in (["none"] if python != sys.executable else []) + ["webrtc"]]
    return runs


def latency(summary: dict[str, Any], q: str) -> float:
    return float(summary["stages"].get("latency", {}).get(q, 0.0))


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--viewers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--modes", default="", help="comma-separated outputs to measure (default: all; none always)")
    ap.add_argument("--dry", action="store_true", help="print the figures, do not write BENCHMARKS.md")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    wanted = {m for m in args.modes.split(",") if m}
    runs = [r for r in plan() if not wanted or r[1] in wanted | {"none"}]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = make_video(work / "in.mp4", args.frames, (w, h))
        best: Dict[tuple[str, str], dict[str, Any]] = {}
        for _ in range(args.repeats):  # modes interleaved, the best of each kept
            for run in runs:
                s = one_run(*run, video, args.frames, args.viewers, work)
                if run not in best or s["fps"] > best[run]["fps"]:
                    best[run] = s
        two_bases = sum(m == "none" for _, m in runs) > 1
        for python, mode in runs:
            s, base = best[(python, mode)], best[(python, "none")]
            name = f"none ({Path(python).parents[1].name})" if mode == "none" and two_bases else mode
            row = (name, s["fps"], s["fps"] / base["fps"] if base["fps"] else 0.0)
            row += tuple(latency(s, q) - latency(base, q) for q in ("p50_ms", "p95_ms"))
            rows.append(row)
            added = f"{row[3]:+.0f}/{row[4]:+.0f} ms p50/p95"
            print(f"{mode}: {row[1]:.1f} frames/s, {row[2]:.2f}x of none, latency {added}")
    if args.dry:
        return
    lines = header(
        "Network outputs: what a viewer costs the detector",
        f"`python3 benchmarks/net_outputs.py --frames {args.frames} --size {args.size} --viewers {args.viewers}`",
    )
    lines += [
        "",
        f"`run` on a generated {args.size} video of {args.frames} frames, the shipped shapes model, with each "
        f"output and {args.viewers} viewer(s) reading it (rtp: none needed); best of {args.repeats}, interleaved.",
        "",
        "| output | frames/s | ratio to none (target >= 0.9) | added latency p50 | added latency p95 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {m} | {f:.1f} | {r:.2f} | {a:+.0f} ms | {b:+.0f} ms |" for m, f, r, a, b in rows]
    write_section("net_outputs", "\n".join(lines))


if __name__ == "__main__":
    main()
