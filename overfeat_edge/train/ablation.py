"""The paper's Table 2, for detection: coarse vs fine stride, 1/3/6 scales, greedy merge vs NMS.

Every row is a real run: the coarse rows use a coarse graph exported from the model's checkpoint
(so their time is the coarse network's time, not the fine one's subsampled), the scale subsets
come from the model's own pyramid, and each row is scored with pycocotools.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.pipeline.pyramid import parse_scales
from overfeat_edge.runtime import load_runner
from overfeat_edge.runtime.base import resolve_onnx
from overfeat_edge.train.datasets import DetectionDataset
from overfeat_edge.train.evaluate import evaluate


@dataclass(frozen=True)
class Row:
    stride: str  # "fine" or "coarse"
    scales: tuple[str, ...]
    merge: str | None  # None: the model's own (as detect and run), so eval scores what they output
    threshold: float | None
    min_score: float | None = None


def scale_subsets(scales: list[str]) -> dict[int, tuple[str, ...]]:
    """{6: all, 3: every other one from the largest, 1: the middle one} of a pyramid (fewer if short)."""
    s = tuple(str(x) for x in parse_scales(scales))
    return {len(s): s, len(s[::2]): s[::2], 1: (s[(len(s) - 1) // 2],)}


def ablation_rows(
    model: str,
    scales: list[str] | None,
    threshold: float | None,
    merge: str | None,
    one: bool = False,
    min_score: float | None = None,
) -> list[Row]:
    """The rows to run: just the one configuration, or stride x scale subsets x merge."""
    spec = load_runner("onnxruntime", model, threads=1).spec
    pyramid = spec.pyramid(scales)
    if one:
        return [Row("fine" if spec.fine_stride else "coarse", tuple(pyramid), merge, threshold, min_score)]
    subsets = scale_subsets(pyramid)
    return [
        Row(stride, subsets[n], m, threshold, min_score)
        for stride in ("coarse", "fine")
        for n in sorted(subsets)
        for m in ("greedy", "nms")
    ]


def checkpoint_for(model: str) -> Path:
    """The checkpoint an ONNX was exported from: ``model.pt`` beside a shipped ``model.onnx``, or
    ``X.pt`` beside ``X.onnx``."""
    onnx = resolve_onnx(model)
    pt = onnx.with_suffix(".pt")
    if not pt.is_file():
        raise InputError(
            f"the ablation needs the checkpoint {pt} (the ONNX was exported from it) to build the other stride's graph"
        )
    return pt


def _export_stride(model: str, fine: bool, workdir: Path) -> str:
    """The model's checkpoint exported with the other stride (fine or coarse) into ``workdir``."""
    require("torch", "eval --ablation (the other stride's graph)")
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models import load_checkpoint

    net, spec, _ = load_checkpoint(checkpoint_for(model), fine_stride=fine)
    out = workdir / ("fine.onnx" if fine else "coarse.onnx")
    export_onnx(net, spec, out, check=False)
    return str(out)


def run_ablation(
    rows: list[Row],
    data: DetectionDataset,
    model: str,
    threads: int | None,
    limit: int | None,
    on_image: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every row; returns one dict per row (configuration + mAP, mAP50, ms/frame).

    One runner per stride: the model's own graph, and the other stride exported from its checkpoint.
    """
    base = load_runner("onnxruntime", model, threads=threads)
    runners = {"fine" if base.spec.fine_stride else "coarse": base}
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="overfeat-ablation-") as tmp:
        for row in rows:
            if row.stride not in runners:
                graph = _export_stride(model, row.stride == "fine", Path(tmp))
                runners[row.stride] = load_runner("onnxruntime", graph, threads=threads)
            runner = runners[row.stride]
            cfg = DetectorConfig(
                scales=list(row.scales), threshold=row.threshold, merge=row.merge, min_score=row.min_score
            )
            det = Detector(runner, cfg)
            r = evaluate(det, data, on_image, limit)
            out.append(
                {
                    "stride": row.stride,
                    "n_scales": len(row.scales),
                    "scales": ",".join(row.scales),
                    "merge": det.config.merge,
                    "threshold": det.config.threshold,
                    **r.row(),
                    "per_class_ap50": {k: round(v, 4) for k, v in r.per_class_ap50.items()},
                }
            )
    return out
