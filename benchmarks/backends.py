"""Every installed CPU backend and precision side by side on this machine (issue R2 5/6).

    python3 benchmarks/backends.py [--int8 calib/.../model.cpu.qdq.onnx] [--eval-data DIR] [--rounds 15]

The shipped shapes model on generated 384x512 frames (its six pyramid levels), every configuration
in one interleaved run (``overfeat_edge.sidebyside``): ms/frame, ratio to ONNX Runtime FP32,
the largest output difference from it, and mAP@.5 on a held-out generated set (seed 3). Without
``--int8`` the CPU-flavour Q/DQ ONNX is calibrated first (``calibrate --method minmax``, 32 images).
Also: OpenVINO with one compiled model per pyramid shape (``reshape``) against one dynamic-shape
model, and what ``--backend auto`` picks. Writes the "backends" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.pipeline.detector import Detector  # noqa: E402
from overfeat_edge.runtime import load_runner  # noqa: E402
from overfeat_edge.sidebyside import side_by_side  # noqa: E402
from overfeat_edge.train.synth import scene  # noqa: E402

MODEL = "overfeat-mini-shapes"


def calibrated(work: Path) -> Path:
    cli = [sys.executable, str(ROOT / "cli.py")]
    subprocess.run([*cli, "data", "synth", "--out", str(work / "held"), "--images", "60", "--seed", "3"], check=True)
    images = str(ROOT / "calib/overfeat-mini-shapes/sample/images")
    calibrate = [*cli, "calibrate", "--model", MODEL, "--images", images, "--eval-data", str(work / "held")]
    subprocess.run([*calibrate, "--method", "minmax", "--out", str(work / "calib")], check=True)
    return next((work / "calib" / MODEL).glob("minmax-*/model.cpu.qdq.onnx"))


def reshape_vs_dynamic(frames: list[np.ndarray], threads: int, rounds: int) -> dict[str, float]:
    runners = {s: load_runner("openvino", MODEL, threads=threads, ov_shapes=s) for s in ("reshape", "dynamic")}
    inputs = [Detector(runners["reshape"]).preprocess(f)[1] for f in frames]
    for r in runners.values():
        r.run_levels(inputs[0])
    ms: dict[str, list[float]] = {s: [] for s in runners}
    for k in range(rounds):
        for s, r in runners.items():
            t0 = time.perf_counter()
            r.run_levels(inputs[k % len(inputs)])
            ms[s].append((time.perf_counter() - t0) * 1000)
    return {s: float(np.median(v)) for s, v in ms.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--int8", type=Path)
    ap.add_argument("--eval-data", type=Path)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    frames = [scene(rng)[0] for _ in range(6)]
    with tempfile.TemporaryDirectory(prefix="overfeat-backends-") as tmp:
        int8 = args.int8 or calibrated(Path(tmp))
        from overfeat_edge.train.datasets import read_dataset

        held = args.eval_data or (Path(tmp) / "held")
        data = read_dataset(held) if held.exists() else None
        rows, skipped = side_by_side(MODEL, frames, int8=int8, threads=args.threads, rounds=args.rounds, data=data)
    base = rows[0].median_ms
    lines = [
        *header(
            "CPU backends and precisions side by side (issue R2 5/6)",
            f"`python3 benchmarks/backends.py --rounds {args.rounds} --threads {args.threads}`",
            f"{args.threads} threads per backend",
        ),
        f"- **Input**: `{MODEL}`, its six pyramid levels of 384x512 generated frames; all configurations in one "
        f"interleaved run, {args.rounds} rounds after a warm-up; median ms per frame. INT8 is calibrate's CPU flavour "
        "(`model.cpu.qdq.onnx`: U8S8, convolutions only, minmax on 32 images); mAP@.5 on 60 generated held-out "
        "images (seed 3).",
        "",
        "| configuration | ms/frame | vs ORT FP32 | max abs diff from ORT FP32 | detections vs ORT FP32 | mAP@.5 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = f"{r.map50:.3f}" if r.map50 is not None else "-"
        agree = r.detections.describe()
        lines.append(
            f"| {r.label} | {r.median_ms:.1f} | {base / r.median_ms:.2f}x | {r.max_abs_diff:.2g} | {agree} | {m} |"
        )
    lines += [f"- not run: {why}" for why in skipped]
    if importlib.util.find_spec("openvino") is not None:
        shapes = reshape_vs_dynamic(frames, args.threads, args.rounds)
        from overfeat_edge.runtime.auto import choose

        picked, why = choose(MODEL, threads=args.threads)
        lines += [
            "",
            f"- **OpenVINO shapes** (default precision): one compiled model per pyramid shape {shapes['reshape']:.1f} "
            f"ms/frame, one dynamic-shape model {shapes['dynamic']:.1f} ms/frame: "
            f"`{min(shapes, key=lambda s: shapes[s])}` is faster here (the backend's default is `reshape`).",
            f"- **`--backend auto`** picks {picked}: {why}.",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("backends", text)


if __name__ == "__main__":
    main()
