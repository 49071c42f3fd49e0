"""What INT8 costs: FP32 vs INT8 on held-out images, per method, like Polygraphy's comparator.

Per method: cosine similarity and max |error| of each output over every pyramid level of every
held-out frame; detection agreement (INT8 detections matching an FP32 one of the same class at
IoU >= 0.5, as an F1); COCO mAP where labels exist; ms/frame of both on this CPU; and the layers
that lose most (ONNX Runtime's QDQ debugging tools: signal-to-quantization-noise ratio of each
activation, lowest first). A cascade's crop stages are scored too (:mod:`.stages`): each stage's
INT8 network against its FP32 one on the crops the FP32 cascade gives it, and the whole INT8
cascade's detections against the FP32 cascade's. The recommendation is the method with the best
mAP@.5 (labels) or, without labels, the best detection agreement (a cascade's: the whole cascade's).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.calibrate.quantize import CPU_QDQ, LevelReader, load_images, pyramid_inputs
from overfeat_edge.calibrate.stages import StageResult, score_stages
from overfeat_edge.compare import Agreement
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.pipeline.merge import box_iou
from overfeat_edge.runtime.base import OUTPUT_NAMES, Runner
from overfeat_edge.train.datasets import DetectionDataset


@dataclass
class MethodResult:
    method: str
    cosine: dict[str, float]
    max_abs_error: dict[str, float]
    agreement_f1: float
    ms_per_frame_fp32: float
    ms_per_frame_int8: float
    map50_fp32: float | None = None
    map50_int8: float | None = None
    map_fp32: float | None = None
    map_int8: float | None = None
    worst_layers: list[tuple[str, float]] = field(default_factory=list)
    # a cascade's: its crop stages, INT8 vs FP32 each, and the whole INT8 cascade's detections against the
    # FP32 cascade's (F1); its mAP and ms/frame above are the whole cascade's, agreement_f1 its first network's
    stages: list[StageResult] = field(default_factory=list)
    cascade_f1: float | None = None


def output_agreement(fp32: Runner, int8: Runner, inputs: list[np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """Cosine similarity and max |error| of each output, over all inputs together."""
    agreement = Agreement(OUTPUT_NAMES)
    for x in inputs:
        got, want = int8.run(x), fp32.run(x)
        agreement.add([got[n] for n in OUTPUT_NAMES], [want[n] for n in OUTPUT_NAMES])
    return agreement.cosine(), agreement.max_abs_error


def detection_f1(a: Detector, b: Detector, frames: list[np.ndarray]) -> tuple[float, float, float]:
    """(F1 of b's detections against a's, a's ms/frame, b's ms/frame)."""
    tp = na = nb = 0
    ta = tb = 0.0
    for f in frames:
        t0 = time.perf_counter()
        da = a.detect(f)
        t1 = time.perf_counter()
        db = b.detect(f)
        t2 = time.perf_counter()
        ta, tb = ta + t1 - t0, tb + t2 - t1
        na, nb = na + len(da), nb + len(db)
        used: set[int] = set()
        for i in range(len(db)):
            same = np.flatnonzero(da.class_id == db.class_id[i])
            if not len(same):
                continue
            iou = box_iou(db.xyxy[i : i + 1], da.xyxy[same])[0]
            for j in np.argsort(-iou):
                if iou[j] < 0.5:
                    break
                if int(same[j]) not in used:
                    used.add(int(same[j]))
                    tp += 1
                    break
    f1 = 2 * tp / (na + nb) if na + nb else 1.0
    n = max(len(frames), 1)
    return f1, ta / n * 1000, tb / n * 1000


def worst_layers(fp32_onnx: Path, qdq_onnx: Path, inputs: list[np.ndarray], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` activations with the lowest SQNR (dB) between the float and Q/DQ models.

    ONNX Runtime's QDQ debugger (qdq_loss_debug) does the matching; the SQNR,
    20 log10(|float| / |float - qdq|) over every input, is summed one input at a time here:
    its own ``compute_activation_error`` needs every activation of every input in memory at once
    (1.8 GB for eight 384x512 inputs of the shipped model).
    """
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="overfeat-qdq-debug-") as tmp:
        f_aug, q_aug = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        modify_model_output_intermediate_tensors(str(fp32_onnx), str(f_aug))
        modify_model_output_intermediate_tensors(str(qdq_onnx), str(q_aug))
        for x in inputs:
            f_act = collect_activations(str(f_aug), LevelReader([x]))
            q_act = collect_activations(str(q_aug), LevelReader([x]))
            for name, match in create_activation_matching(q_act, f_act).items():
                if not match.get("float"):
                    continue
                f = np.concatenate([a.ravel() for a in match["float"]]).astype(np.float64)
                q = np.concatenate([a.ravel() for a in match["post_qdq"]]).astype(np.float64)
                signal[name] = signal.get(name, 0.0) + float(f @ f)
                noise[name] = noise.get(name, 0.0) + float((f - q) @ (f - q))
    eps = float(np.finfo(float).eps)
    sqnr = [(n, 20 * math.log10(max(math.sqrt(signal[n]), eps) / max(math.sqrt(noise[n]), eps))) for n in signal]
    return sorted(sqnr, key=lambda t: t[1])[:k]


def held_out_inputs(frames: list[np.ndarray], runner: Runner, scales: list[str], limit: int = 64) -> list[np.ndarray]:
    groups = pyramid_inputs(frames, runner.spec, scales)
    flat = [x for xs in groups.values() for x in xs]
    step = max(1, len(flat) // limit)
    return flat[::step][:limit]


def recommend(results: list[MethodResult]) -> MethodResult:
    def key(r: MethodResult) -> tuple[float, float, float]:
        # a cascade's own detections are the whole cascade's, not its first network's
        whole = r.cascade_f1 if r.cascade_f1 is not None else r.agreement_f1
        return (r.map50_int8 if r.map50_int8 is not None else -1.0, whole, r.agreement_f1)

    return max(results, key=key)


def write_report(out: Path, model: str, results: list[MethodResult], info: dict[str, Any]) -> tuple[Path, Path]:
    best = recommend(results)
    md = [f"# INT8 calibration report: {model}", ""]
    md += [f"- {k}: {v}" for k, v in info.items()]
    md += [
        "",
        "| method | mAP@.5 FP32 | mAP@.5 INT8 | mAP FP32 | mAP INT8 | scores cos | boxes cos | max abs err "
        "(scores / boxes) | detection F1 | ms/frame FP32 | ms/frame INT8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in results:
        md.append(
            f"| {r.method}{' (recommended)' if r is best else ''} | {f(r.map50_fp32)} | {f(r.map50_int8)} | "
            f"{f(r.map_fp32)} | {f(r.map_int8)} | {r.cosine['scores']:.5f} | {r.cosine['boxes']:.5f} | "
            f"{r.max_abs_error['scores']:.3f} / {r.max_abs_error['boxes']:.3f} | {r.agreement_f1:.3f} | "
            f"{r.ms_per_frame_fp32:.1f} | {r.ms_per_frame_int8:.1f} |"
        )
    md += [
        "",
        f"Recommended: **{best.method}**. Layers that lose most with it (SQNR dB, lower is worse; keep "
        "them in float with `--exclude NODE`):",
        "",
    ]
    md += [f"- `{name}`: {v:.1f} dB" for name, v in best.worst_layers]
    md += _stages_md(results)
    md_path, js_path = out / "report.md", out / "report.json"
    atomic_write_text(md_path, "\n".join(md) + "\n")
    payload = {"model": model, **info, "recommended": best.method, "methods": [asdict(r) for r in results]}
    atomic_write_text(js_path, json.dumps(payload, indent=1))
    return md_path, js_path


def _stages_md(results: list[MethodResult]) -> list[str]:
    """A cascade's section: each stage's INT8 network against its FP32 one, then the whole cascade."""
    if not any(r.stages for r in results):
        return []
    md = [
        "",
        "Cascade stages, INT8 against FP32 on the held-out images' crops (from the FP32 cascade):",
        "",
        "| method | stage | crops | scores cos | boxes cos | landmarks cos | max abs err (scores / boxes) "
        "| keep agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for st in r.stages:
            c = {k: f"{st.cosine[k]:.5f}" if k in st.cosine else "-" for k in ("scores", "boxes", "landmarks")}
            e = " / ".join(f"{st.max_abs_error[k]:.3f}" if k in st.max_abs_error else "-" for k in ("scores", "boxes"))
            md.append(
                f"| {r.method} | {st.name} | {st.crops} | {c['scores']} | {c['boxes']} | {c['landmarks']} | {e} "
                f"| {st.keep_agreement:.3f} |"
            )
    md += [
        "",
        "For a cascade the table's mAP and ms/frame are the whole cascade's; its detection F1 is the first "
        "network's alone. The whole cascade at INT8 against FP32 (detection F1, IoU >= 0.5): ",
    ]
    md[-1] += ", ".join(f"{r.method} {r.cascade_f1:.3f}" for r in results if r.cascade_f1 is not None)
    return md


def evaluate_pair(a: Detector, b: Detector, data: DetectionDataset | None, frames: list[np.ndarray]) -> dict[str, Any]:
    """mAP of both (``a`` FP32, ``b`` INT8) where labels exist; detection agreement and ms/frame always."""
    out: dict[str, Any] = {}
    if data is not None:
        from overfeat_edge.train.evaluate import evaluate

        ea, eb = evaluate(a, data), evaluate(b, data)
        out.update(map50_fp32=ea.map50, map50_int8=eb.map50, map_fp32=ea.map, map_int8=eb.map)
    f1, ta, tb = detection_f1(a, b, frames)
    out.update(agreement_f1=f1, ms_per_frame_fp32=ta, ms_per_frame_int8=tb)
    return out


def held_out_set(eval_data: Path | None, holdout: str | None) -> tuple[DetectionDataset | None, list[np.ndarray]]:
    """The report's held-out images: a labelled set's (and the set, for mAP) or unlabelled ones; one is needed."""
    if eval_data is not None:
        from overfeat_edge.train.datasets import read_dataset

        data = read_dataset(eval_data)
        return data, load_images(str(data.samples[0].path.parent), 64).frames
    if holdout is not None:
        return None, load_images(holdout, 64).frames
    raise InputError("the report needs held-out images: --eval-data (labelled) or --holdout (not the calibration set)")


def score_method(
    method: str,
    *,
    onnx_path: Path,
    dest: Path,
    fp32: Runner,
    held: list[np.ndarray],
    scales: list[str],
    data: DetectionDataset | None,
    threads: int | None = None,
    cascade: Detector | None = None,
) -> MethodResult:
    """FP32 vs the CPU's INT8 model in ``dest`` on the held-out images: outputs, detections, mAP, worst layers;
    with ``cascade`` (the FP32 cascade), each stage's INT8 network and the whole INT8 cascade too."""
    from overfeat_edge.runtime import load_runner

    int8 = load_runner("onnxruntime", str(dest / CPU_QDQ), threads=threads)  # what the CPU runs
    inputs = held_out_inputs(held, fp32, scales)
    cos, err = output_agreement(fp32, int8, inputs)
    config = DetectorConfig(scales=scales)
    # a cascade's mAP and ms/frame are the whole cascade's (below); its first network alone has no labels' boxes
    alone = evaluate_pair(Detector(fp32, config), Detector(int8, config), data if cascade is None else None, held[:32])
    r = MethodResult(method, cos, err, **alone)
    same_shape = [x for x in inputs if x.shape == inputs[0].shape][:8]  # the debugger pairs like shapes
    r.worst_layers = worst_layers(onnx_path, dest / "model.qdq.onnx", same_shape)
    if cascade is not None:
        from overfeat_edge.pipeline.load import load_detector

        r.stages = score_stages(cascade, dest, held, threads)
        int8_cascade = load_detector(str(dest / CPU_QDQ), backend="onnxruntime", config=cascade.config, threads=threads)
        whole = evaluate_pair(cascade, int8_cascade, data, held[:32])
        r.cascade_f1 = whole.pop("agreement_f1")
        r = replace(r, **whole)
    return r
