"""Greedy merge and NMS from 100 to 10,000 boxes (issue [6/6]: 5,000 boxes in under 20 ms).

    python3 benchmarks/merge_scaling.py [--no-write]

Boxes are what a detector's windows give: clusters of jittered boxes around objects (3 classes,
scores in [0.5, 1]), 25 boxes per object, so the cluster structure stays the same as n grows.
Median of 5 runs per size; writes the "merge" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine, today, write_section  # noqa: E402

from overfeat_edge.pipeline.merge import greedy_merge, nms  # noqa: E402
from overfeat_edge.types import Detections  # noqa: E402


def boxes(n: int, rng: np.random.Generator) -> Detections:
    objects = max(1, n // 25)
    centres = rng.uniform(0, 1000, (objects, 2))
    sizes = rng.uniform(30, 200, objects)
    k = rng.integers(0, objects, n)
    c = centres[k] + rng.normal(0, 0.08, (n, 2)) * sizes[k, None]
    s = sizes[k] * rng.uniform(0.85, 1.15, n)
    xyxy = np.concatenate([c - s[:, None] / 2, c + s[:, None] / 2], axis=1).astype(np.float32)
    return Detections(xyxy, rng.uniform(0.5, 1, n).astype(np.float32), (k % 3).astype(np.int64))


def median_ms(fn, det: Detections, reps: int = 5) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(det)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lines = [
        "## Merge and NMS scaling (issue [6/6])",
        "",
        f"- **Machine**: {machine()}",
        "- **Command**: `python3 benchmarks/merge_scaling.py`",
        f"- **Date**: {today()}",
        "",
        "| boxes | greedy merge ms | NMS ms | boxes out (greedy / NMS) |",
        "|---|---|---|---|",
    ]
    for n in (100, 500, 1000, 2000, 5000, 10000):
        det = boxes(n, rng)
        g, m = median_ms(greedy_merge, det), median_ms(nms, det)
        lines.append(f"| {n} | {g:.1f} | {m:.1f} | {len(greedy_merge(det))} / {len(nms(det))} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    if not args.no_write:
        write_section("merge", text)


if __name__ == "__main__":
    main()
