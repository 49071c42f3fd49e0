"""GPU fast path: frames/s of the accurate model at the paper's 6 scales with fine stride.

Variants, each measured in this one run: FP32 (TF32 off), FP32 with TF32, FP16, FP16 +
channels-last, and FP16 + channels-last + one CUDA graph per scale. Preprocessing (upload,
resize, normalize) runs on the GPU; one synchronization per frame; outputs copied to the host.
Also measured: the GPU's FP16 matrix-multiply rate, so achieved GFLOP/s is a fraction of it.

    python benchmarks/gpu_pyramid.py [--model overfeat-accurate] [--frames 60] [--json out.json]

Weights are random (the speed does not depend on them); the detector has both heads with 1000
classes + background, as the paper's 1000-class network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overfeat_edge.models import create_model
from overfeat_edge.pipeline.pyramid import parse_scales, plan_levels
from overfeat_edge.runtime.torch import GpuPyramid, TorchRunner
from overfeat_edge.spec import default_spec


def matmul_tflops(dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e12


def time_frames(pyr: GpuPyramid, frames: list[np.ndarray], warmup: int = 5) -> float:
    for f in frames[:warmup]:
        pyr.run(f)
    times = []
    for f in frames:
        t = time.perf_counter()
        pyr.run(f)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="overfeat-accurate")
    ap.add_argument("--scales", default="paper")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    hw = (480, 640)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(8)] * (args.frames // 8 + 1)
    frames = frames[: args.frames]
    net = create_model(args.model, num_classes=1000, seed=0).eval()
    spec = default_spec(net.arch)
    levels = plan_levels(net.arch, True, hw, parse_scales([args.scales]))
    gflop = sum(net.arch.dense_gflops(*lv.input_hw, fine=True) for lv in levels)
    peak16 = matmul_tflops(torch.float16)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    peak32 = matmul_tflops(torch.float32)

    ref_runner = TorchRunner(net, spec, "cuda")
    ref = GpuPyramid(ref_runner, levels, hw).run(frames[0])
    variants = [
        ("fp32", {}, False, False),
        ("fp32+tf32", {}, False, True),
        ("fp16", {"half": True}, False, False),
        ("fp16+channels_last", {"half": True, "channels_last": True}, False, False),
        ("fp16+channels_last+cuda_graphs", {"half": True, "channels_last": True}, True, False),
    ]
    rows = []
    for name, opts, graphs, tf32 in variants:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        runner = TorchRunner(create_model(args.model, num_classes=1000, seed=0).eval(), spec, "cuda", **opts)
        pyr = GpuPyramid(runner, levels, hw, graphs=graphs)
        out = pyr.run(frames[0])
        err = max(float(np.abs(o[0] - r[0]).max() / np.abs(r[0]).max()) for o, r in zip(out, ref, strict=True))
        sec = time_frames(pyr, frames)
        rows.append(
            {
                "variant": name,
                "ms_per_frame": sec * 1e3,
                "fps": 1 / sec,
                "gflops_per_s": gflop / sec,
                "graphs_active": pyr.graphs is not None,
                "max_rel_err_scores_vs_fp32": err,
            }
        )
    result = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "model": args.model,
        "frame": f"{hw[0]}x{hw[1]}",
        "levels": [f"{lv.input_hw[0]}x{lv.input_hw[1]}->{lv.out_hw[0]}x{lv.out_hw[1]}" for lv in levels],
        "gflop_per_frame": gflop,
        "fp16_matmul_tflops": peak16,
        "fp32_matmul_tflops": peak32,
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(
        f"{result['device']}, torch {result['torch']}, {args.model}, {len(levels)} scales fine stride, "
        f"{gflop:.1f} GFLOP/frame; matmul peak fp16 {peak16:.0f} TFLOP/s, fp32 {peak32:.0f} TFLOP/s"
    )
    print("| variant | ms/frame | frames/s | GFLOP/s | % of fp16 matmul peak | max rel err (scores) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['ms_per_frame']:.2f} | {r['fps']:.1f} | {r['gflops_per_s']:.0f} | "
            f"{100 * r['gflops_per_s'] / (peak16 * 1e3):.1f}% | {r['max_rel_err_scores_vs_fp32']:.1e} |"
        )


if __name__ == "__main__":
    main()
