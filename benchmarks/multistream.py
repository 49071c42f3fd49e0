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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.train.synth import write_demo_video  # noqa: E402

CLI = [sys.executable, str(ROOT / "cli.py"), "run"]


def p95s(summary: dict[str, Any]) -> list[float]:
    """Capture-to-output latency p95 (ms) of every stream in a --stats-json summary (one or many streams)."""
    per = summary["streams"].values() if "streams" in summary else [summary]
    return [float(st["stages"].get("latency", {}).get("p95_ms", 0.0)) for st in per]


def batched(videos: list[Path], frames: int, backend: str, work: Path) -> tuple[float, float, float]:
    """(seconds, mean frames per batched inference, worst stream's p95 latency) of one process for every stream."""
    stats = work / "batched.json"
    t0 = time.perf_counter()
    cmd = [*CLI, *map(str, videos), "--max-frames", str(frames), "--backend", backend, "--stats-json", str(stats)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    summary = json.loads(stats.read_text())
    return seconds, float(summary.get("mean_batch", 1.0)), max(p95s(summary))


def processes(videos: list[Path], frames: int, backend: str, work: Path) -> tuple[float, float]:
    """(seconds, worst stream's p95 latency) of one ``run`` process per stream, started together."""
    t0 = time.perf_counter()
    cmds = [
        [*CLI, str(v), "--max-frames", str(frames), "--backend", backend, "--stats-json", str(work / f"p{i}.json")]
        for i, v in enumerate(videos)
    ]
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in cmds]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"multistream: a single-stream run failed ({codes})")
    seconds = time.perf_counter() - t0
    return seconds, max(max(p95s(json.loads((work / f"p{i}.json").read_text()))) for i in range(len(videos)))


def verdict(rows: list[tuple[Any, ...]]) -> str:
    many = [r for r in rows if r[0] > 1]
    if not many:
        return ""
    lo, hi = min(r[6] for r in many), max(r[6] for r in many)
    lat = ", ".join(f"{r[0]} streams {r[3]:.0f} vs {r[5]:.0f} ms" for r in many)
    if hi < 1.05:
        return (
            f"Batching gives no more throughput here ({lo:.2f}x to {hi:.2f}x): on a CPU one frame's inference already "
            f"keeps every core busy, so N processes and one batched process share the same cores. What it gives is "
            f"latency, as the worst stream's p95 says ({lat}): one process shares inference fairly among the streams, "
            "where N processes contend. The throughput gain is a GPU's (one launch for N frames): to be measured "
            "where one is lent."
        )
    return f"Batching gives {lo:.2f}x to {hi:.2f}x the throughput of separate processes; p95 latency: {lat}."


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
            tb, tp = [], []
            for _ in range(args.repeats):
                tb.append(batched(videos[:n], args.frames, args.backend, work))
                tp.append(processes(videos[:n], args.frames, args.backend, work))
            b, p = min(tb), min(tp)  # the best wall time, with its latency
            total = n * args.frames
            rows.append((n, total / b[0], b[1], b[2], total / p[0], p[1], p[0] / b[0]))
            print(
                f"{n} streams: batched {total / b[0]:.1f} frames/s (batch {b[1]:.2f}, p95 {b[2]:.0f} ms), "
                f"processes {total / p[0]:.1f} frames/s (p95 {p[1]:.0f} ms)"
            )
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
        "| streams | batched: frames/s | frames per inference | p95 latency | N processes: frames/s | p95 latency "
        "| batched / processes |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {n} | {fb:.1f} | {batch:.2f} | {lb:.0f} ms | {fp:.1f} | {lp:.0f} ms | {ratio:.2f}x |"
        for n, fb, batch, lb, fp, lp, ratio in rows
    ]
    lines += [
        "",
        "frames/s: every stream's frames together per second of wall time; p95 latency: capture to output, the "
        "worst stream's (files are read as fast as they are processed, so it includes the wait in the "
        "stream's queue). A figure over 1.00x means batching wins.",
        "",
        verdict(rows),
    ]
    write_section("multistream", "\n".join(lines))


if __name__ == "__main__":
    main()
