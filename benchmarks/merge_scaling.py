"""Greedy merge and NMS from 100 to 10,000 boxes (issue [6/6]: 5,000 boxes in under 20 ms).

    python3 benchmarks/merge_scaling.py [--no-write]

Boxes are what a detector's windows give: clusters of jittered boxes around objects (3 classes,
scores in [0.5, 1]), 25 boxes per object, so the cluster structure stays the same as n grows.
A last row takes the real thing: the raw windows of the shipped model on the 32 calibration
sample frames (ONNX Runtime), merged one frame at a time. Median of 5 runs per size; writes the
"merge" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.pipeline.decode import decode_level  # noqa: E402
from overfeat_edge.pipeline.detector import Detector  # noqa: E402
from overfeat_edge.pipeline.merge import COMPILED, _components, _pairs_within, greedy_merge, nms  # noqa: E402
from overfeat_edge.runtime import load_runner  # noqa: E402
from overfeat_edge.train.datasets import read_image  # noqa: E402
from overfeat_edge.types import Detections  # noqa: E402

SAMPLE = ROOT / "calib" / "overfeat-mini-shapes" / "sample" / "images"


def boxes(n: int, rng: np.random.Generator) -> Detections:
    objects = max(1, n // 25)
    centres = rng.uniform(0, 1000, (objects, 2))
    sizes = rng.uniform(30, 200, objects)
    k = rng.integers(0, objects, n)
    c = centres[k] + rng.normal(0, 0.08, (n, 2)) * sizes[k, None]
    s = sizes[k] * rng.uniform(0.85, 1.15, n)
    xyxy = np.concatenate([c - s[:, None] / 2, c + s[:, None] / 2], axis=1).astype(np.float32)
    return Detections(xyxy, rng.uniform(0.5, 1, n).astype(np.float32), (k % 3).astype(np.int64))


def one_object(n: int, rng: np.random.Generator) -> Detections:
    """n windows on one object that fills much of the frame, as fine stride at 6 scales can give."""
    c = rng.normal(300, 6, (n, 2))
    s = rng.uniform(280, 320, n)
    xyxy = np.concatenate([c - s[:, None] / 2, c + s[:, None] / 2], axis=1).astype(np.float32)
    return Detections(xyxy, rng.uniform(0.5, 1, n).astype(np.float32), np.zeros(n, np.int64))


def real_frames() -> list[Detections]:
    """Raw (unmerged) windows of the shipped model on the calibration sample frames."""
    det = Detector(load_runner("onnxruntime", "overfeat-mini-shapes"))
    out = []
    for path in sorted(SAMPLE.iterdir()):
        levels, maps = det.infer(read_image(path))
        raw = [
            decode_level(m["scores"], m["boxes"], lv, det.spec, 0.5, None) for lv, m in zip(levels, maps, strict=True)
        ]
        out.append(Detections.concat(raw))
    return out


def largest_group(det: Detections, t: float = 0.5) -> int:
    """Boxes in the largest group linked by match score <= t: the merge rounds it takes."""
    a, b = _pairs_within(det.xyxy.astype(np.float64), det.class_id, t)
    return int(np.bincount(_components(len(det), a, b)).max())


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
    if not COMPILED:
        sys.exit("the C extension was not built (pip install -e . with a C compiler present); nothing to compare")
    rng = np.random.default_rng(0)
    lines = [
        *header("Merge and NMS scaling (issue [6/6])", "`python3 benchmarks/merge_scaling.py`"),
        "",
        "| boxes | greedy merge ms, C | greedy merge ms, numpy | C speed-up | largest group | NMS ms "
        "| boxes out (greedy / NMS) |",
        "|---|---|---|---|---|---|---|",
    ]
    c_merge = functools.partial(greedy_merge, compiled=True)
    np_merge = functools.partial(greedy_merge, compiled=False)
    for n in (100, 500, 1000, 2000, 5000, 10000):
        det = boxes(n, rng)
        g, gn, m = median_ms(c_merge, det), median_ms(np_merge, det), median_ms(nms, det)
        assert len(c_merge(det)) == len(np_merge(det))  # the two passes give the same boxes (tests: the values too)
        out = f"{len(c_merge(det))} / {len(nms(det))}"
        lines.append(f"| {n} | **{g:.1f}** | {gn:.1f} | {gn / g:.1f}x | {largest_group(det)} | {m:.1f} | {out} |")
        print(lines[-1], flush=True)
    det = one_object(2000, rng)  # one large object: every window of the frame in one group
    g, gn, m = median_ms(c_merge, det, reps=3), median_ms(np_merge, det, reps=3), median_ms(nms, det)
    lines.append(
        f"| one object, 2000 windows in one group | {g:.1f} | {gn:.1f} | {gn / g:.1f}x | {largest_group(det)} | "
        f"{m:.1f} | {len(c_merge(det))} / {len(nms(det))} |"
    )
    print(lines[-1], flush=True)
    frames = real_frames()
    g = float(np.median([median_ms(c_merge, d) for d in frames]))
    gn = float(np.median([median_ms(np_merge, d) for d in frames]))
    m = float(np.median([median_ms(nms, d) for d in frames]))
    n = int(np.median([len(d) for d in frames]))
    big = max(largest_group(d) for d in frames)
    top = max(len(d) for d in frames)
    lines.append(f"| real frames: median {n} (max {top}) | {g:.2f} | {gn:.2f} | {gn / g:.1f}x | {big} | {m:.2f} | |")
    print(lines[-1], flush=True)
    lines += [
        "",
        "Both targets are met at 5,000 boxes: greedy merge (the C pass, `overfeat_edge/pipeline/_greedy.c`, built",
        "at install where a C compiler exists) and NMS. The C pass finds the pairs that can score <= t with one",
        "sweep in centre-x order, joins them into groups with union-find, and runs the paper's best-first loop",
        "in each group keeping every row's minimum, so a merge rescores one row; a row whose minimum it raised",
        "keeps the old one as a lower bound and is rescanned only when that bound comes up as the smallest.",
        "The numpy pass (the fallback where nothing was compiled; column 3) steps the groups",
        "in lock step, one round of about 0.1 ms of numpy calls per merge of the largest group (column 5:",
        "windows of overlapping objects chain into one group), after a vectorized pair search that alone takes",
        "about 40 ms at 5,000 boxes; groups of more than 128 boxes (the one-object row) take C's algorithm in",
        "numpy instead, one merge per step (this row took 8.6 s in lock step). The tests check every path",
        "against the paper's literal loop and against each other. History: Python rescans after every merge",
        "took 2.4 s at 5,000 boxes; numba was tried for the loop and not taken (llvmlite is 173 MB on disk,",
        "more than the rest of the edge install). The one-object row is the costly case left: every pair of",
        "its 2,000 windows is scored (about 2 million scores to fill the group's matrix, 2,000 more per merge),",
        "and that, at about 15 ns a score, is its time; `--merge nms` takes under 1 ms there.",
    ]
    text = "\n".join(lines)
    if not args.no_write:
        write_section("merge", text)


if __name__ == "__main__":
    main()
