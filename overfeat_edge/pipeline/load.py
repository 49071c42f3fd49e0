"""[no torch] A detector from a model name or file: its runner, its cascade's stages, its defaults."""

from __future__ import annotations

from typing import Any

from overfeat_edge.pipeline.cascade import load_stages
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.runtime import load_runner, resolve_backend


def load_detector(
    model: str, *, backend: str = "auto", config: DetectorConfig | None = None, **options: Any
) -> Detector:
    """``model`` (a shipped name, an ONNX file, an engine, or for torch a checkpoint) on ``backend``
    (``auto``: the fastest installed CPU backend) with the runner ``options`` that backend takes
    (``threads``, ``cuda_graphs``, ``ov_precision``...; others are refused), plus the crop stages
    its spec names. ``detector.runner.choice`` says how ``auto`` chose."""
    name, why = resolve_backend(backend, model, options.get("threads"))
    runner = load_runner(name, model, **options)
    runner.choice = why
    stage_options = {
        k: v
        for k, v in options.items()
        if k in ("threads", "cuda", "ov_device", "ov_precision") or k.startswith("triton_")
    }
    return Detector(runner, config, steps=load_stages(runner, name, **stage_options))


def describe(det: Detector, model: str) -> str:
    """One line: what the model is and knows, and what runs it."""
    names = det.spec.class_names
    stages = [s.spec.name for s in det.steps if hasattr(s, "spec")]
    cascade = f" (then {', '.join(stages)})" if stages else ""
    knows = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    chosen = f"; --backend auto: {det.runner.choice}" if det.runner.choice else ""
    return f"model {model}: {det.spec.arch.name}{cascade}; knows {len(names)} class(es): {knows}{chosen}"
