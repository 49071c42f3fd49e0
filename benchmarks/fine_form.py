"""The two fine-stride graphs side by side on every CPU backend (issue R2 5/6, item 5).

    python3 benchmarks/fine_form.py [--rounds 9] [--threads 2] [--accurate-rounds 3]

``dilated``: the last pool at stride 1 and the first head conv dilated by s. ``batch``: the paper's
own interleave, the s x s offset-pooled maps stacked in the batch, the undilated head once, then
depth-to-space. Same outputs (the largest difference is printed); which is faster depends on the
backend. Both forms of each network are exported here, then timed in one interleaved run per
backend: ``overfeat-mini-shapes`` (the shipped weights) on its six pyramid levels of 384x512
frames, and ``overfeat-accurate`` at full width (random weights; the paper's network, 6 scales) on
one 480x640 frame. Writes the "fine-form" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.export import export_onnx  # noqa: E402
from overfeat_edge.models import create_model  # noqa: E402
from overfeat_edge.models.weights import load_checkpoint  # noqa: E402
from overfeat_edge.pipeline.detector import Detector  # noqa: E402
from overfeat_edge.runtime import load_runner  # noqa: E402
from overfeat_edge.spec import default_spec  # noqa: E402
from overfeat_edge.train.synth import scene  # noqa: E402

FORMS = ("dilated", "batch")


def exported(net_name: str, work: Path) -> dict[str, Path]:
    if net_name == "overfeat-mini-shapes":
        net, spec, _ = load_checkpoint(ROOT / "overfeat_edge/assets/overfeat-mini-shapes/model.pt")
    else:
        net = create_model(net_name, seed=0).eval()
        spec = default_spec(net.arch)
    out = {}
    for form in FORMS:
        out[form] = work / f"{net_name}.{form}.onnx"
        export_onnx(net, spec, out[form], check=net_name == "overfeat-mini-shapes", fine_form=form)
    return out


def timed(paths: dict[str, Path], backend: str, frames: list[np.ndarray], threads: int, rounds: int) -> list[str]:
    runners = {f: load_runner(backend, str(p), threads=threads) for f, p in paths.items()}
    inputs = [Detector(runners["dilated"]).preprocess(fr)[1] for fr in frames]
    ref = runners["dilated"].run_levels(inputs[0])
    diff = 0.0
    for r in runners.values():  # warm-up (OpenVINO compiles per shape here), and the agreement
        got = r.run_levels(inputs[0])
        diff = max(diff, *(float(np.abs(a[k] - b[k]).max()) for a, b in zip(got, ref) for k in a))
    ms: dict[str, list[float]] = {f: [] for f in runners}
    for k in range(rounds):
        for f, r in runners.items():
            t0 = time.perf_counter()
            r.run_levels(inputs[k % len(inputs)])
            ms[f].append((time.perf_counter() - t0) * 1000)
    med = {f: float(np.median(v)) for f, v in ms.items()}
    faster = min(med, key=lambda f: med[f])
    return [
        f"| {f} | {backend} | {med[f]:.1f} | {med['dilated'] / med[f]:.2f}x | {diff:.2g} | "
        f"{'**faster**' if f == faster else ''} |"
        for f in FORMS
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--accurate-rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    backends = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    rng = np.random.default_rng(5)
    mini_frames = [scene(rng)[0] for _ in range(4)]
    big = [np.ascontiguousarray(np.resize(mini_frames[0], (480, 640, 3)))]
    lines = [
        *header(
            "Fine stride: dilated head vs the offset maps in the batch (issue R2 5/6)",
            f"`python3 benchmarks/fine_form.py --rounds {args.rounds} --accurate-rounds {args.accurate_rounds} "
            f"--threads {args.threads}`",
            f"{args.threads} threads per backend",
        ),
        "",
        "Median ms per frame (every pyramid level), the two graphs interleaved per backend; speed is "
        "dilated / this form; difference: the largest output difference between the two graphs.",
    ]
    with tempfile.TemporaryDirectory(prefix="overfeat-fine-") as tmp:
        for net_name, frames, rounds in (
            ("overfeat-mini-shapes", mini_frames, args.rounds),
            ("overfeat-accurate", big, args.accurate_rounds),
        ):
            paths = exported(net_name, Path(tmp))
            lines += [
                "",
                f"**{net_name}**",
                "",
                "| form | backend | ms/frame | speed | difference | |",
                "|---|---|---|---|---|---|",
            ]
            for backend in backends:
                lines += timed(paths, backend, frames, args.threads, rounds)
                print("\n".join(lines[-2:]), flush=True)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("fine-form", text)


if __name__ == "__main__":
    main()
