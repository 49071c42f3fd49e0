"""Soak: the live loop for 5,000+ frames; resident memory and open file descriptors must not grow.

    python3 benchmarks/soak.py [--frames 6000] [--fps 120] [--scales 100]

The source is a real network camera stand-in (``tests/stream/fake_camera.py``: HTTP MJPEG, 128x96)
that ends every connection after 1,000 frames, so the run also reconnects about every 1,000
frames. Memory and descriptors are sampled every ~0.5 s; "after warm-up" is the first sample past
500 processed frames. Writes the "soak" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from _report import header, write_section  # noqa: E402

from overfeat_edge.pipeline.detector import Detector, DetectorConfig  # noqa: E402
from overfeat_edge.runtime import load_runner  # noqa: E402
from overfeat_edge.stream.loop import Stream, StreamLoop  # noqa: E402
from overfeat_edge.stream.sinks import JsonlSink, VideoSink  # noqa: E402
from overfeat_edge.stream.sources import Source, parse_source  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--fps", type=float, default=120)
    ap.add_argument("--scales", default="100")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cam = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/stream/fake_camera.py"),
            str(port),
            "--fps",
            str(args.fps),
            "--frames",
            "1000",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cam.stdout is not None and cam.stdout.readline().strip() == "ready"
    proc = psutil.Process(os.getpid())
    samples: list[tuple[int, float, int]] = []
    try:
        det = Detector(
            load_runner("onnxruntime", "overfeat-mini-shapes", threads=2), DetectorConfig(scales=[args.scales])
        )
        with tempfile.TemporaryDirectory() as tmp:
            src = Source(parse_source(f"http://127.0.0.1:{port}/"), reconnects=5, backoff=0.1)
            with VideoSink(Path(tmp) / "soak.mp4", 30) as v, JsonlSink(
                Path(tmp) / "soak.jsonl", det.spec.class_names
            ) as j:
                loop = StreamLoop([Stream("soak", src, [v, j])], det, max_frames=args.frames)
                samples.append((0, proc.memory_info().rss / 2**20, proc.num_fds()))
                last = [0.0]

                def tick() -> None:
                    if time.perf_counter() - last[0] >= 0.5:
                        last[0] = time.perf_counter()
                        samples.append((loop.stats.frames, proc.memory_info().rss / 2**20, proc.num_fds()))

                t0 = time.perf_counter()
                stats = loop.run(on_tick=tick)
                wall = time.perf_counter() - t0
            src.close()
        samples.append((stats.frames, proc.memory_info().rss / 2**20, proc.num_fds()))
    finally:
        cam.kill()
        cam.wait()
    warm = next((s for s in samples if s[0] >= 500), samples[-1])
    peak_after = max(s[1] for s in samples if s[0] >= warm[0])
    summ = stats.summary()
    lines = [
        *header(
            "Soak: the live loop for thousands of frames (issue [3/6])",
            f"`python3 benchmarks/soak.py --frames {args.frames} --fps {args.fps:g} --scales {args.scales}`",
        ),
        "- **Setup**: HTTP MJPEG camera process (128x96, ends each connection after 1,000 frames) -> `run`'s "
        "threaded loop (latest-frame mailbox) -> overfeat-mini-shapes on ONNX Runtime, one scale -> MP4 + JSONL sinks.",
        "",
        "| frames | wall s | FPS | captured | dropped | reconnects | RSS MiB start / after warm-up / end / peak after "
        "warm-up | open fds start / after warm-up / end |",
        "|---|---|---|---|---|---|---|---|",
        f"| {stats.frames} | {wall:.1f} | {stats.frames / wall:.1f} | {summ['captured']} | {summ['dropped']} | "
        f"{summ['reconnects']} | {samples[0][1]:.0f} / {warm[1]:.0f} / {samples[-1][1]:.0f} / {peak_after:.0f} | "
        f"{samples[0][2]} / {warm[2]} / {samples[-1][2]} |",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("soak", text)


if __name__ == "__main__":
    main()
