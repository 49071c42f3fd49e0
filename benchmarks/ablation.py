"""Paper Table 2 for our demo detector: coarse vs fine stride x 1/3/6 scales x greedy vs NMS.

    python3 benchmarks/ablation.py [--model overfeat-mini-shapes] [--images 200] [--seed 3]

Generates the held-out set (``data synth --seed 3``: a seed never used for training or tuning),
runs ``eval --ablation`` on it (pycocotools COCO mAP, median ms/frame of the whole detector on
this CPU, every row in one run) and writes the "ablation" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section

from overfeat_edge.train.ablation import ablation_rows, run_ablation
from overfeat_edge.train.datasets import read_coco
from overfeat_edge.train.synth import write_coco


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="overfeat-mini-shapes")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_coco(tmp, args.images, args.seed)
        data = read_coco(tmp)
        rows = run_ablation(ablation_rows(args.model, None, 0.5, "greedy"), data, args.model, args.threads, None)
    lines = [
        *header(
            "Detection ablation: stride x scales x merge (issue [2/6], in the spirit of the paper's Table 2)",
            f"`python3 benchmarks/ablation.py --model {args.model} --images {args.images} --seed {args.seed}` "
            f"(= `overfeat-edge eval --ablation` on `data synth --seed {args.seed}`)",
            f"ONNX Runtime CPU, {args.threads} threads",
        ),
        f"- **Data**: {args.images} generated 384x512 scenes, seed {args.seed} (held out: training used seed 1, "
        "tuning seed 2); COCO mAP by pycocotools. ms/frame: median wall time of the whole detector "
        "(resize, normalize, network, decode, merge) per frame; coarse rows run a coarse graph exported from "
        "the same checkpoint.",
        "",
        "| stride | scales | merge | mAP@[.5:.95] | mAP@.5 | ms/frame | detections |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stride']} | {r['n_scales']} ({r['scales']}) | {r['merge']} | {r['mAP']:.3f} | {r['mAP50']:.3f} "
            f"| {r['ms_per_frame']:.1f} | {r['detections']} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if not args.no_write:
        write_section("ablation", text)


if __name__ == "__main__":
    main()
