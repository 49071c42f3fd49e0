"""[no torch] A detector from a model name or file: its runner, its cascade's stages, its defaults."""

from __future__ import annotations

from typing import Any

from overfeat_edge.pipeline.cascade import load_stages
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.runtime import descriptor, load_runner, resolve_backend
from overfeat_edge.words import plural


def load_detector(
    model: str, *, backend: str = "auto", config: DetectorConfig | None = None, **options: Any
) -> Detector:
    """``model`` (a shipped name, an ONNX file, an engine, or for torch a checkpoint) on ``backend``
    (``auto``: the fastest installed CPU backend at ``precision``) with the runner ``options`` that
    backend's descriptor declares (``threads``, ``cuda_graphs``, ``ov_device``, ``precision``...; others
    are refused), plus the crop stages its spec names. ``detector.runner.choice`` says how ``auto`` chose."""
    name, why = resolve_backend(backend, model, options.get("threads"), options.get("precision") or "fp32")
    runner = load_runner(name, model, **options)
    runner.choice = why
    d = descriptor(name)
    stage_options = d.stage_options(options)
    if d.stage_model is None:  # the stages' ONNX files beside the detector's, at the detector's precision
        stage_options["precision"] = runner.precision
    else:  # found by the backend (TensorRT: each stage's engine, run at the precision it was built with)
        stage_options.pop("precision", None)
    stages = load_stages(runner, name, **stage_options)
    return Detector(runner, config, steps=stages, threads=options.get("threads"))


def describe(det: Detector, model: str) -> str:
    """One line: what the model is and knows, and what runs it at which precision."""
    names = det.spec.class_names
    stages = [s.spec.name for s in det.steps if hasattr(s, "spec")]
    cascade = f" (then {', '.join(stages)})" if stages else ""
    knows = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    chosen = f" (--backend auto: {det.runner.choice})" if det.runner.choice else ""
    runs = f"on {det.runner.name} {det.runner.precision}{chosen}"
    return (
        f"model {model}: {det.spec.arch.name}{cascade}; knows {plural(len(names), 'class', 'classes')}: {knows}; {runs}"
    )
