"""[no torch] Every installed CPU backend at every precision it runs, side by side, interleaved.

One row per (backend, precision) this machine can load (a precision whose file is missing, e.g. no
Q/DQ ONNX for int8, is left out and said why): the median ms per frame over rounds in which every
configuration runs the same frame's pyramid one after another (so all see the same machine state),
the ratio to ONNX Runtime FP32, the agreement with ONNX Runtime FP32 on the same frames (the
largest difference of any output, the detections matched and the worst box shift), and, with a
labelled held-out set, mAP@.5 (pycocotools).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.compare import Agreement, DetectionAgreement
from overfeat_edge.errors import InputError
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime import descriptors, load_runner
from overfeat_edge.runtime.base import Runner


@dataclass
class Row:
    label: str
    backend: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    ms: list[float] = field(default_factory=list)
    max_abs_diff: float = 0.0
    detections: DetectionAgreement = field(default_factory=DetectionAgreement)
    map50: float | None = None
    runner: Runner | None = None

    @property
    def median_ms(self) -> float:
        return float(np.median(self.ms)) if self.ms else float("nan")


def configurations(model: str, int8: Path | None, threads: int | None = None) -> tuple[list[Row], list[str]]:
    """(the rows this machine can run, ONNX Runtime FP32 first; why others were left out)."""
    rows, skipped = [], []
    for d in descriptors():
        if not d.cpu or d.available() is not None:
            continue
        for precision in d.precisions:
            source = str(int8) if precision == "int8" and int8 is not None else model
            row = Row(f"{d.name} {precision}", d.name, source, {"precision": precision})
            try:
                row.runner = load_runner(d.name, source, threads=threads, **row.options)
            except InputError as exc:
                skipped.append(f"{row.label}: {exc}")
                continue
            rows.append(row)
    rows.sort(key=lambda r: r.label != "onnxruntime fp32")  # the reference first
    return rows, skipped


def side_by_side(
    model: str,
    frames: list[np.ndarray],
    *,
    int8: Path | None = None,
    threads: int | None = None,
    rounds: int = 15,
    data: Any = None,
) -> tuple[list[Row], list[str]]:
    """Measure every configuration on ``frames`` (BGR uint8), interleaved; see the module docstring."""
    rows, skipped = configurations(model, int8, threads)
    base = Detector(rows[0].runner)  # type: ignore[arg-type]
    inputs = [base.preprocess(f)[1] for f in frames]
    want = [base.detect(f) for f in frames]
    names = ("scores", "boxes")
    for r in rows:  # warm-up (compiles, allocates) and the agreement with ONNX Runtime FP32
        assert r.runner is not None
        agreement = Agreement(names)
        for x in inputs[0]:
            got, ref = r.runner.run(x), rows[0].runner.run(x)  # type: ignore[union-attr]
            agreement.add([got[n] for n in names], [ref[n] for n in names])
        r.max_abs_diff = max(agreement.max_abs_error.values())
        det = Detector(r.runner)
        for f, w in zip_strict(frames, want):
            r.detections.add(det.detect(f), w)
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
    return rows, skipped
