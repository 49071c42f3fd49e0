"""GPU fast path: frames/s of the accurate model at the paper's 6 scales with fine stride.

Variants, each measured in this one run: FP32 (TF32 off), FP32 with TF32, FP16, FP16 +
channels-last, and FP16 + channels-last + one CUDA graph per scale. Preprocessing (upload,
resize, normalize) runs on the GPU; one synchronization per frame; outputs copied to the host.
Also measured: the GPU's FP16 matrix-multiply rate, so achieved GFLOP/s is a fraction of it.

A profile follows (benchmarks/_layer_profile.py): the FP16 + channels-last network, every layer
on every level timed with CUDA events, with its FLOPs and achieved rate, per level and per layer,
so that the distance to the matmul rate is accounted for layer by layer. Writes the "gpu" section
of BENCHMARKS.md (run it on a CUDA machine; `benchmarks/run_all.sh` does where torch sees a GPU).

    python benchmarks/gpu_pyramid.py [--model overfeat-accurate] [--frames 60] [--json out.json] [--no-write]

Weights are random (the speed does not depend on them); the detector has both heads with 1000
classes + background, as the paper's 1000-class network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _layer_profile import by_layer, by_level, profile_layers
from _report import header, write_section

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
    ap.add_argument("--no-write", action="store_true", help="print the section without writing BENCHMARKS.md")
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
    fp16cl = {"half": True, "channels_last": True}
    variants = [  # name, runner options, CUDA graphs, TF32, fine-stride graph (dilated or batch)
        ("fp32", {}, False, False, "dilated"),
        ("fp32+tf32", {}, False, True, "dilated"),
        ("fp16", {"half": True}, False, False, "dilated"),
        ("fp16+channels_last", fp16cl, False, False, "dilated"),
        ("fp16+channels_last+cuda_graphs", fp16cl, True, False, "dilated"),
        ("fp16+channels_last+batch_form", fp16cl, False, False, "batch"),
        ("fp16+channels_last+cuda_graphs+batch_form", fp16cl, True, False, "batch"),
    ]
    rows = []
    for name, opts, graphs, tf32, form in variants:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        model = create_model(args.model, num_classes=1000, seed=0).eval()
        model.set_fine_form(form)  # the paper's interleave as a batch, or the dilated head
        runner = TorchRunner(model, spec, "cuda", **opts)
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
    profiled = TorchRunner(
        create_model(args.model, num_classes=1000, seed=0).eval(), spec, "cuda", half=True, channels_last=True
    )
    cl = torch.channels_last
    inputs = [torch.randn(1, 3, *lv.input_hw, device="cuda", dtype=torch.float16).to(memory_format=cl) for lv in levels]
    prof = profile_layers(profiled.net, inputs, reps=20)
    result = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(0),
        "driver": driver_version(),
        "torch": torch.__version__,
        "model": args.model,
        "frame": f"{hw[0]}x{hw[1]}",
        "levels": [f"{lv.input_hw[0]}x{lv.input_hw[1]}->{lv.out_hw[0]}x{lv.out_hw[1]}" for lv in levels],
        "gflop_per_frame": gflop,
        "fp16_matmul_tflops": peak16,
        "fp32_matmul_tflops": peak32,
        "rows": rows,
        "profile_levels": by_level(prof),
        "profile_layers": by_layer(prof),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    text = render(result, args)
    print(text)
    if not args.no_write:
        write_section("gpu", text)


def driver_version() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except OSError:
        return "unknown"


def render(r: dict, args: argparse.Namespace) -> str:
    """The "gpu" section of BENCHMARKS.md from one run's results."""
    peak = r["fp16_matmul_tflops"] * 1e3  # GFLOP/s
    best = min(r["rows"], key=lambda x: x["ms_per_frame"])
    lines = [
        *header(
            "GPU fast path: accurate model, paper's 6 scales, fine stride (issue [6/6] item 2)",
            f"`python3 benchmarks/gpu_pyramid.py --model {args.model} --frames {args.frames}`",
            host=f"{r['device']} (driver {r['driver']}), torch {r['torch']}",
            date=r["date"],
        ),
        f"- **Workload**: one {r['frame']} BGR frame per iteration -> pinned upload -> GPU resize + normalize to the "
        f"{len(r['levels'])} levels ({', '.join(lv.split('->')[0] for lv in r['levels'])}) -> `{args.model}` "
        "(1000 classes + background, classifier **and** box-regression heads, random weights) with fine stride "
        f"-> both output maps copied back to the host; one synchronization per frame. Median of {args.frames} "
        f"frames after 5 warm-ups. {r['gflop_per_frame']:.1f} GFLOP per frame (counted from the layer table).",
        f"- **Ceilings measured in the same run**: 8192^3 matmul {r['fp16_matmul_tflops']:.0f} TFLOP/s FP16, "
        f"{r['fp32_matmul_tflops']:.0f} TFLOP/s FP32 (TF32 off).",
        "",
        "| variant | ms/frame | frames/s | GFLOP/s | % of FP16 matmul rate | max rel. error of scores vs FP32 |",
        "|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        bold = "**" if x is best else ""
        lines.append(
            f"| {x['variant']}{'' if x['graphs_active'] or 'graphs' not in x['variant'] else ' (capture failed)'} "
            f"| {bold}{x['ms_per_frame']:.2f}{bold} | {bold}{x['fps']:.1f}{bold} | {x['gflops_per_s']:,.0f} | "
            f"{100 * x['gflops_per_s'] / peak:.1f}% | {x['max_rel_err_scores_vs_fp32']:.1e} |"
        )
    lines += [
        "",
        f"The paper's figure is about 2 s per image for this network at 6 scales on a K20x: {best['variant']} here is "
        f"about {2000 / best['ms_per_frame']:.0f}x faster per frame (a different GPU generation; the same network "
        "and scales, and it also runs the regression head).",
        "",
        "### Where the time goes: every layer timed (FP16, channels-last, plain enqueue, CUDA events)",
        "",
    ]
    lv_rows, layer_rows = r["profile_levels"], r["profile_layers"]
    total = sum(x["ms"] for x in layer_rows)
    plain = next((x for x in r["rows"] if x["variant"] == "fp16+channels_last"), None)
    if plain is not None:
        lines.append(
            f"The layers add up to {total:.2f} ms per frame; the whole frame on the same path took "
            f"{plain['ms_per_frame']:.2f} ms: the other {max(plain['ms_per_frame'] - total, 0):.2f} ms are "
            "upload, resize and normalization, softmax, dtype casts, copies back, and the gaps between launches "
            "(CUDA graphs remove those gaps)."
        )
        lines.append("")
    lines += ["| level (input) | GFLOP | ms | TFLOP/s | % of FP16 matmul rate |", "|---|---|---|---|---|"]
    for x, name in zip(lv_rows, r["levels"], strict=True):
        rate = x["gflop"] / x["ms"]  # GFLOP/ms = TFLOP/s
        lines.append(f"| {name} | {x['gflop']:.1f} | {x['ms']:.2f} | {rate:.1f} | {100 * rate * 1e3 / peak:.1f}% |")
    lines += [
        "",
        "| layer | op | GFLOP/frame | ms/frame | share of layer time | TFLOP/s | % of FP16 matmul rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in layer_rows:
        if x["ms"] < 0.005 * total and x["gflop"] == 0:
            continue  # ReLUs and dropouts that cost nothing
        rate = x["gflop"] / x["ms"] if x["gflop"] else 0.0
        pct = f"{100 * rate * 1e3 / peak:.1f}%" if x["gflop"] else ""
        lines.append(
            f"| {x['name']} | {x['kind']} | {x['gflop']:.1f} | {x['ms']:.3f} | {100 * x['ms'] / total:.1f}% | "
            f"{rate:.1f} | {pct} |"
        )
    worst = sorted((x for x in layer_rows if x["gflop"]), key=lambda x: x["gflop"] / x["ms"])[:3]
    heavy = sorted(layer_rows, key=lambda x: -x["ms"])[:3]
    lines += [
        "",
        "Largest shares of the time: "
        + "; ".join(f"{x['name']} ({x['kind']}, {100 * x['ms'] / total:.0f}%)" for x in heavy)
        + ". Slowest convolutions per FLOP: "
        + "; ".join(f"{x['name']} ({x['kind']}, {x['gflop'] / x['ms']:.1f} TFLOP/s)" for x in worst)
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
