"""Where `mtcnn-face` spends a photo's time, in the terms of benchmarks/mtcnn_vs_facenet.py (ours,
ONNX Runtime FP32): the pyramid's resizes, P-Net per level, decode + merge, and each crop stage's
crop extraction, network and NMS + regression; plus the backend's fixed cost per call, and P-Net's
levels one call each against the small ones packed in one canvas (runtime/canvas.py).

    python3 benchmarks/mtcnn_profile.py [--repeats 20] [--threads 2] [--cpu] [--backend openvino -o ov_precision=f32]

Prints a table; writes nothing (a profile to read, not a recorded figure).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from overfeat_edge.pipeline.cascade import CropStage  # noqa: E402
from overfeat_edge.pipeline.load import load_detector  # noqa: E402

CLOCK = time.perf_counter  # --cpu: time.process_time (CPU time of every thread: robust to a loaded machine)


def _t(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = CLOCK()
    out = fn()
    return out, (CLOCK() - t0) * 1000


def profile_once(det: Any, bgr: np.ndarray) -> dict[str, float]:
    """One photo through the pipeline stage by stage; ms per part."""
    ms: dict[str, float] = defaultdict(float)
    (levels, inputs), ms["pyramid resize+normalize"] = _t(lambda: det.preprocess(bgr))
    maps = []
    for k, x in enumerate(inputs):
        out, t = _t(lambda x=x: det.runner.run(x))
        ms[f"P-Net level {k} {x.shape[2]}x{x.shape[3]}"] = t
        ms["P-Net all levels"] += t
        maps.append({name: v[0] for name, v in out.items()})
    d, ms["P-Net decode + merge"] = _t(lambda: det.postprocess(levels, maps))
    ms["boxes after P-Net"] = len(d)
    for step in det.steps:
        if isinstance(step, CropStage):
            name = step.spec.name
            (batch, ok), ms[f"{name} crops"] = _t(lambda step=step, d=d: step.crops(bgr, d.xyxy.astype(np.float64)))
            _, ms[f"{name} network (batch {len(ok)})"] = _t(lambda step=step, batch=batch: step.runner.run(batch))
            d2, total = _t(lambda step=step, d=d: step(bgr, d))
            ms[f"{name} NMS + regression (rest)"] = max(
                0.0, total - ms[f"{name} crops"] - ms[f"{name} network (batch {len(ok)})"]
            )
            d = d2
            ms[f"boxes after {name}"] = len(d)
        else:
            d, ms[f"{type(step).__name__}"] = _t(lambda step=step, d=d: step(bgr, d))
    _, ms["detect() end to end"] = _t(lambda: det.detect(bgr))
    return ms


def call_overhead(det: Any, repeats: int) -> tuple[float, float]:
    """(ms of P-Net on a 1x3x12x12 input, ms of P-Net on 1x3x24x24): ONNX Runtime's fixed cost per call."""
    out = []
    for side in (12, 24):
        x = np.zeros((1, 3, side, side), np.float32)
        det.runner.run(x)
        out.append(float(np.min([_t(lambda x=x: det.runner.run(x))[1] for _ in range(repeats * 5)])))
    return out[0], out[1]


def packed_canvas(det: Any, bgr: np.ndarray, repeats: int) -> tuple[float, float]:
    """(ms of P-Net's levels one call each, ms of run_levels with the small ones packed in one canvas
    (runtime/canvas.py); nan where the runner has no packed graph), taking turns."""
    _, inputs = det.preprocess(bgr)
    packed = det.runner.packed
    if packed is None:
        return float("nan"), float("nan")
    pick = np.min if CLOCK is time.process_time else np.median
    alone, together = [], []
    try:
        for _ in range(repeats):
            det.runner.packed = None
            alone.append(_t(lambda: det.runner.run_levels(inputs))[1])
            det.runner.packed = packed
            together.append(_t(lambda: det.runner.run_levels(inputs))[1])
    finally:
        det.runner.packed = packed
    return float(pick(alone)), float(pick(together))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu", action="store_true", help="CPU time instead of wall time (use with --threads 1)")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("-o", "--option", action="append", default=[], help="KEY=VALUE passed to the backend's load")
    args = ap.parse_args()
    options = dict(o.split("=", 1) for o in args.option)
    if args.cpu:
        global CLOCK
        CLOCK = time.process_time
    det = load_detector("mtcnn-face", backend=args.backend, threads=args.threads, **options)
    print(det.runner.describe())
    photos = {p.name: cv2.imread(str(p)) for p in sorted((ROOT / "tests" / "data" / "photos").glob("*.jpg"))}
    with det.runner:
        for name, bgr in photos.items():
            det.detect(bgr)
            runs = [profile_once(det, bgr) for _ in range(args.repeats)]
            how = "least CPU time" if args.cpu else "median wall time"
            print(f"\n## {name} {bgr.shape[1]}x{bgr.shape[0]} ({args.threads} threads, {how} of {args.repeats})")
            pick = np.min if args.cpu else np.median  # CPU time: the least a part took is its own cost
            total = float(pick([r["detect() end to end"] for r in runs]))
            for key in runs[0]:
                v = float(pick([r[key] for r in runs]))
                if key.startswith("boxes"):
                    print(f"  {key:42s} {v:8.0f}")
                else:
                    print(f"  {key:42s} {v:8.2f} ms  {100 * v / total:5.1f}%")
            per_level, packed = packed_canvas(det, bgr, args.repeats)
            print(f"  P-Net run_levels: one call a level {per_level:.2f} ms; small levels packed {packed:.2f} ms")
        small, mid = call_overhead(det, args.repeats)
        print(f"\nP-Net call on 12x12: {small:.3f} ms, 24x24: {mid:.3f} ms (the fixed cost per call)")


if __name__ == "__main__":
    main()
