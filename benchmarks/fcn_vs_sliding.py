"""OverFeat's claim: the convnet over the whole image shares the work of every window.

    python3 benchmarks/fcn_vs_sliding.py [--no-write]          (needs the [torch] extra for the coarse graph)

The shipped overfeat-mini-shapes model on one generated 384x512 frame: the dense (fully
convolutional) pass over each pyramid level vs the naive sliding window that crops every window
the dense map has an output for (the same 59x59 windows, at the fine 8 px or coarse 16 px step) and
runs the network on each crop (batched 256 at a time), on the same backend (ONNX Runtime, 2
threads) with the same weights. Beside the measured speed-up, the FLOP ratio of the two (counted
from the layer table). Median of 3 runs. Writes the "fcn" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.pipeline.preprocess import level_inputs  # noqa: E402
from overfeat_edge.pipeline.pyramid import parse_scales, plan_levels  # noqa: E402
from overfeat_edge.runtime import load_runner  # noqa: E402
from overfeat_edge.runtime.base import shipped_models  # noqa: E402
from overfeat_edge.train.synth import scene  # noqa: E402


def timed(fn, reps: int = 3) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import load_checkpoint

    frame = scene(np.random.default_rng(3))[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        net, spec_c, _ = load_checkpoint(shipped_models()["overfeat-mini-shapes"] / "model.pt", fine_stride=False)
        export_onnx(net, spec_c, Path(tmp) / "coarse.onnx", check=False)
        graphs = {"fine": "overfeat-mini-shapes", "coarse": str(Path(tmp) / "coarse.onnx")}
        for stride, model in graphs.items():
            runner = load_runner("onnxruntime", model, threads=args.threads)
            spec, arch = runner.spec, runner.spec.arch
            for scales in (["224"], list(spec.scales)):
                levels = plan_levels(arch, spec.fine_stride, frame.shape[:2], parse_scales(scales))
                xs = level_inputs(frame, levels, spec)
                step, win = spec.out_stride, arch.window
                crops = []
                for lv, x in zip(levels, xs, strict=True):
                    oh, ow = lv.out_hw
                    for y in range(oh):
                        for xx in range(ow):
                            crops.append(x[0, :, y * step : y * step + win, xx * step : xx * step + win])
                batch = np.stack(crops)

                def dense(runner=runner, xs=xs) -> None:  # type: ignore[no-untyped-def]
                    for x in xs:
                        runner.run(x)

                def naive(runner=runner, batch=batch) -> None:  # type: ignore[no-untyped-def]
                    for i in range(0, len(batch), 256):
                        runner.run(batch[i : i + 256])

                dense()
                t_dense, t_naive = timed(dense), timed(naive)
                flops_dense = sum(arch.dense_gflops(*lv.input_hw, spec.fine_stride) for lv in levels)
                flops_naive = len(batch) * arch.gflops_per_window()
                ratio = flops_naive / flops_dense
                speed = t_naive / t_dense
                rows.append(
                    f"| {stride} ({step} px) | {len(scales)} | {len(batch)} | {flops_naive:.1f} / {flops_dense:.2f} | "
                    f"{ratio:.1f}x | {t_naive * 1000:.0f} / {t_dense * 1000:.1f} | **{speed:.1f}x** | "
                    f"{speed / ratio:.0%} |"
                )
                print(rows[-1], flush=True)
    lines = [
        *header(
            "Fully convolutional vs naive sliding window (issue [6/6])",
            "`python3 benchmarks/fcn_vs_sliding.py`",
            f"ONNX Runtime CPU, {args.threads} threads",
        ),
        "- **Workload**: overfeat-mini-shapes, one 384x512 frame; 1 scale = smallest side 224, "
        "6 = the model's pyramid.",
        "",
        "| stride | scales | windows | GFLOP naive / dense | FLOP ratio | ms naive / dense | measured speed-up | "
        "speed-up / FLOP ratio |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines)
    if not args.no_write:
        write_section("fcn", text)


if __name__ == "__main__":
    main()
