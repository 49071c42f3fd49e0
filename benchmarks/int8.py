"""INT8 vs FP32 on this CPU (ONNX Runtime), measured in one run, beside the accuracy the report found.

    python3 benchmarks/int8.py [--qdq calib/overfeat-mini-shapes/minmax-*/model.qdq.onnx] [--frames 40]

Times the whole detector (pyramid, network, decode, merge) on the same generated 384x512 frames,
FP32 and INT8 alternating frame by frame (so both see the same machine state); reads the accuracy
and the method comparison from ``calib/overfeat-mini-shapes/report.json`` (written by
``overfeat-edge calibrate``) and writes the "int8" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.pipeline.detector import Detector, DetectorConfig  # noqa: E402
from overfeat_edge.runtime import load_runner  # noqa: E402
from overfeat_edge.train.synth import scene  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fresh = ROOT / "calib/overfeat-mini-shapes/report.json"  # what calibrate just wrote, else the committed one
    default = fresh if fresh.is_file() else ROOT / "docs/calibration/overfeat-mini-shapes.json"
    ap.add_argument("--report", type=Path, default=default)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    report = json.loads(args.report.read_text())
    best = report["recommended"]
    qdq = sorted(glob.glob(str(args.report.parent / f"{best}-*" / "model.qdq.onnx")))[-1]
    rng = np.random.default_rng(11)
    frames = [scene(rng)[0] for _ in range(args.frames)]
    dets = {
        "fp32": Detector(load_runner("onnxruntime", "overfeat-mini-shapes", threads=args.threads), DetectorConfig()),
        "int8": Detector(load_runner("onnxruntime", qdq, threads=args.threads), DetectorConfig()),
    }
    for d in dets.values():
        d.detect(frames[0])  # warm-up
    times: dict[str, list[float]] = {k: [] for k in dets}
    for f in frames:
        for k, d in dets.items():
            t0 = time.perf_counter()
            d.detect(f)
            times[k].append(time.perf_counter() - t0)
    ms = {k: float(np.median(v)) * 1000 for k, v in times.items()}
    rows = {m["method"]: m for m in report["methods"]}
    lines = [
        *header(
            "INT8 on the CPU: accuracy and speed (issue [5/6])",
            "`overfeat-edge calibrate --model overfeat-mini-shapes --images "
            "calib/overfeat-mini-shapes/sample/images --eval-data DATA` (DATA = `data synth --images 200 --seed 3`), "
            "then `python3 benchmarks/int8.py`",
            f"ONNX Runtime CPU, {args.threads} threads",
        ),
        "- **Calibration**: 32 generated images (`calib/overfeat-mini-shapes/sample`, seed 5), every pyramid scale, "
        "the runtime's preprocessing; Q/DQ ONNX, symmetric int8, per-channel weights, float biases.",
        "",
        "| method | mAP@.5 FP32 | mAP@.5 INT8 | mAP FP32 | mAP INT8 | scores cosine | detection F1 vs FP32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name}{' (recommended)' if name == best else ''} | {r['map50_fp32']:.3f} | {r['map50_int8']:.3f} | "
            f"{r['map_fp32']:.3f} | {r['map_int8']:.3f} | {r['cosine']['scores']:.5f} | {r['agreement_f1']:.3f} |"
        )
    lines += [
        "",
        f"Speed, same {args.frames} frames, alternating, median ms/frame of the whole detector: FP32 "
        f"{ms['fp32']:.1f}, INT8 ({best}) {ms['int8']:.1f}: **INT8/FP32 time ratio {ms['int8'] / ms['fp32']:.2f}**.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("int8", text)


if __name__ == "__main__":
    main()
