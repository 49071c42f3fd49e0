"""Peak resident memory (RSS) of every command, each in its own process (issue [6/6]).

    python3 benchmarks/memory.py [--no-write]

Each command runs as a child of this script; ``os.wait4`` returns that child's own peak RSS
(``ru_maxrss``), so one command's figure never includes another's. Workloads are small but
real: the shipped model, generated scenes, a generated 384x512 video. Writes the "memory"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

CLI = [sys.executable, str(ROOT / "cli.py")]
SAMPLE = ROOT / "calib" / "overfeat-mini-shapes" / "sample" / "images"
CKPT = ROOT / "overfeat_edge" / "assets" / "overfeat-mini-shapes" / "model.pt"


def measure(args: list[str]) -> tuple[float, float, int]:
    """(peak RSS MiB, wall seconds, exit code) of one command in its own process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 and p.stderr is not None:
        print(p.stderr.read().decode(errors="replace")[-500:], file=sys.stderr)
    return usage.ru_maxrss / 1024, wall, p.returncode  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="overfeat-mem-") as tmp:
        t = Path(tmp)
        image = str(sorted(SAMPLE.iterdir())[0])
        clip = t / "demo" / "input.mp4"
        rows = [
            ("models", ["models"], "list the networks"),
            # data synth writes the scenes that eval, calibrate and train read
            (
                "data synth",
                ["data", "synth", "--out", str(t / "scenes"), "--images", "20", "--seed", "11"],
                "20 scenes",
            ),
            (
                "detect",
                ["detect", image, "--model", "overfeat-mini-shapes", "--out", str(t / "det")],
                "1 image, 6 scales",
            ),
            ("demo", ["demo", "--out", str(t / "demo"), "--frames", "60"], "60 frames, 2 workers"),
            (
                "run (file, 1 worker)",
                [
                    "run",
                    str(clip),
                    "--workers",
                    "1",
                    "--output",
                    str(t / "r1.mp4"),
                    "--jsonl",
                    str(t / "r1.jsonl"),
                    "--no-live",
                ],
                "60 frames -> MP4 + JSONL",
            ),
            (
                "run (file, 2 workers)",
                [
                    "run",
                    str(clip),
                    "--workers",
                    "2",
                    "--output",
                    str(t / "r2.mp4"),
                    "--jsonl",
                    str(t / "r2.jsonl"),
                    "--no-live",
                ],
                "60 frames -> MP4 + JSONL",
            ),
            ("eval", ["eval", "--data", str(t / "scenes"), "--model", "overfeat-mini-shapes"], "20 scenes, COCO mAP"),
            (
                "calibrate",
                [
                    "calibrate",
                    "--model",
                    "overfeat-mini-shapes",
                    "--images",
                    str(SAMPLE),
                    "--method",
                    "minmax",
                    "--count",
                    "16",
                    "--eval-data",
                    str(t / "scenes"),
                    "--out",
                    str(t / "calib"),
                ],
                "16 frames x 6 scales, min-max; report on 20 scenes",
            ),
            ("bench", ["bench", "--frames", "20"], "20 frames"),
            (
                "export (torch)",
                ["export", "--model", "overfeat-mini", "--weights", str(CKPT), "--out", str(t / "m.onnx")],
                "checkpoint -> ONNX + ORT check",
            ),
            (
                "train (torch)",
                [
                    "train",
                    "--data",
                    str(t / "scenes"),
                    "--out",
                    str(t / "m.pt"),
                    "--model",
                    "overfeat-mini",
                    "--epochs",
                    "1",
                    "--steps-per-epoch",
                    "5",
                    "--batch-size",
                    "64",
                    "--mine-images",
                    "4",
                ],
                "1 epoch x 5 batches of 64 windows",
            ),
            ("doctor", ["doctor"], "no GPU here: reports and exits"),
        ]
        lines = [
            *header("Peak memory per command (issue [6/6])", "`python3 benchmarks/memory.py`"),
            "- **How**: each command in its own process; its peak RSS from `os.wait4` (`ru_maxrss`).",
            "",
            "| command | workload | peak RSS MiB | wall s | exit |",
            "|---|---|---|---|---|",
        ]
        for name, argv, what in rows:
            rss, wall, code = measure(argv)
            lines.append(f"| `{name}` | {what} | {rss:.0f} | {wall:.1f} | {code} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    if not args.no_write:
        write_section("memory", text)


if __name__ == "__main__":
    main()
