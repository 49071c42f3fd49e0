"""Many cameras: one batched process for N streams against N processes of one stream each (issue R2 6/6).

    python3 benchmarks/multistream.py [--streams 1 2 4 8] [--frames 60] [--backend onnxruntime]

Every stream is a generated 320x240 video (``demo``'s moving shapes, a different seed each) read as a
file, so every frame is processed and the two ways do the same work. "batched" is one
``overfeat-edge run v0 v1 ... --max-frames F``: one inference per round with every stream's frame of a
pyramid level in one batch. "processes" is N ``overfeat-edge run v_i`` started together, as a user
without ``run SRC...`` would. Both are timed from start to exit, in one run, interleaved; the figure
is the frames of every stream per second of wall time, and the ratio of the two. Writes the
"multistream" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.commands.demo import write_demo_video  # noqa: E402

CLI = [sys.executable, str(ROOT / "cli.py"), "run"]


def batched(videos: list[Path], frames: int, backend: str, work: Path) -> tuple[float, float]:
    """(seconds, mean frames per batched inference) of one process running every stream."""
    stats = work / "batched.json"
    t0 = time.perf_counter()
    cmd = [*CLI, *map(str, videos), "--max-frames", str(frames), "--backend", backend, "--stats-json", str(stats)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    summary = json.loads(stats.read_text())
    return seconds, float(summary.get("mean_batch", 1.0))


def processes(videos: list[Path], frames: int, backend: str) -> float:
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*CLI, str(v), "--max-frames", str(frames), "--backend", backend], stdout=subprocess.DEVNULL
        )
        for v in videos
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"multistream: a single-stream run failed ({codes})")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--frames", type=int, default=60, help="frames per stream")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = [write_demo_video(work / f"v{i}.mp4", args.frames, seed=i) for i in range(max(args.streams))]
        rows = []
        for n in args.streams:
            tb, tp, batch = [], [], 0.0
            for _ in range(args.repeats):
                seconds, batch = batched(videos[:n], args.frames, args.backend, work)
                tb.append(seconds)
                tp.append(processes(videos[:n], args.frames, args.backend))
            total = n * args.frames
            b, p = min(tb), min(tp)
            rows.append((n, total / b, batch, total / p, p / b))
            print(f"{n} streams: batched {total / b:.1f} frames/s (batch {batch:.2f}), processes {total / p:.1f}")
    lines = header(
        "Many cameras: one batched process vs one process per stream",
        f"`python3 benchmarks/multistream.py --streams {' '.join(map(str, args.streams))} "
        f"--frames {args.frames} --backend {args.backend}`",
    )
    lines += [
        "",
        f"Every stream a generated 320x240 video of {args.frames} frames, the shipped shapes model, "
        f"`--backend {args.backend}`; wall time from start to exit (model loading included), best of "
        f"{args.repeats}, the two ways interleaved.",
        "",
        "| streams | batched: frames/s (all streams) | frames per inference | N processes: frames/s | batched / processes |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {n} | {fb:.1f} | {batch:.2f} | {fp:.1f} | {ratio:.2f}x |" for n, fb, batch, fp, ratio in rows]
    write_section("multistream", "\n".join(lines))


if __name__ == "__main__":
    main()
