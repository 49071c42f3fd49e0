"""[no torch] Every installed CPU backend and precision side by side, on the same inputs, interleaved.

One row per configuration (ONNX Runtime FP32 and INT8, OpenVINO f32, its device default (bf16 on
AMX) and INT8, as installed and given): the median ms per frame over rounds in which every
configuration runs the same frame's pyramid one after another (so all see the same machine state),
the ratio to ONNX Runtime FP32, the largest difference of any output from ONNX Runtime FP32 on the
same inputs, and, with a labelled held-out set, mAP@.5 (pycocotools).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.compare import Agreement
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.runtime import load_runner
from overfeat_edge.runtime.base import Runner


@dataclass
class Row:
    label: str
    backend: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    ms: list[float] = field(default_factory=list)
    max_abs_diff: float = 0.0
    map50: float | None = None
    runner: Runner | None = None

    @property
    def median_ms(self) -> float:
        return float(np.median(self.ms)) if self.ms else float("nan")


def configurations(model: str, int8: Path | None) -> list[Row]:
    """The rows this machine can run: ONNX Runtime always; OpenVINO where installed; INT8 if given."""
    rows = [Row("onnxruntime fp32", "onnxruntime", model)]
    if int8 is not None:
        rows.append(Row("onnxruntime int8", "onnxruntime", str(int8)))
    if importlib.util.find_spec("openvino") is not None:
        rows.append(Row("openvino f32", "openvino", model, {"ov_precision": "f32"}))
        rows.append(Row("openvino default (device's choice)", "openvino", model))
        if int8 is not None:
            rows.append(Row("openvino int8", "openvino", str(int8)))
    return rows


def side_by_side(
    model: str,
    frames: list[np.ndarray],
    *,
    int8: Path | None = None,
    threads: int | None = None,
    rounds: int = 15,
    data: Any = None,
) -> list[Row]:
    """Measure every configuration on ``frames`` (BGR uint8), interleaved; see the module docstring."""
    rows = configurations(model, int8)
    for r in rows:
        r.runner = load_runner(r.backend, r.model, threads=threads, **r.options)
    base = Detector(rows[0].runner)  # type: ignore[arg-type]
    inputs = [base.preprocess(f)[1] for f in frames]
    for r in rows:  # warm-up (compiles, allocates) and the agreement with ONNX Runtime FP32
        assert r.runner is not None
        names = ("scores", "boxes")
        agreement = Agreement(names)
        for x in inputs[0]:
            want = rows[0].runner.run(x)  # type: ignore[union-attr]
            got = r.runner.run(x)
            agreement.add([got[n] for n in names], [want[n] for n in names])
        r.max_abs_diff = max(agreement.max_abs_error.values())
    for k in range(rounds):
        levels = inputs[k % len(inputs)]
        for r in rows:
            t0 = time.perf_counter()
            r.runner.run_levels(levels)  # type: ignore[union-attr]
            r.ms.append((time.perf_counter() - t0) * 1000)
    if data is not None:
        from overfeat_edge.train.evaluate import evaluate

        for r in rows:
            r.map50 = evaluate(Detector(r.runner, DetectorConfig()), data).map50  # type: ignore[arg-type]
    return rows
