"""[torch] Export an :class:`OverFeatNet` to ONNX and prove ONNX Runtime agrees with torch."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from overfeat_edge.compare import Agreement
from overfeat_edge.errors import ParityError
from overfeat_edge.io import atomic_path
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME
from overfeat_edge.spec import METADATA_KEY, ModelSpec

OPSET = 17
# float32 parity: max |onnx - torch| <= ATOL + RTOL * max |torch|, per output
ATOL, RTOL = 1e-4, 1e-4
# float16 ONNX (float16 weights and compute, float32 inputs/outputs) against float32 torch
ATOL_HALF, RTOL_HALF = 1e-2, 1e-2


@dataclass
class ExportReport:
    path: Path
    sizes: list[tuple[int, int]] = field(default_factory=list)
    max_abs_error: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    packed: Path | str | None = None  # the packed graph written beside it, or why it has none (export.packed)


def parity_sizes(spec: ModelSpec) -> list[tuple[int, int]]:
    """Two input sizes: the training window, and a larger non-square one off the stride grid."""
    w, s = spec.arch.window, spec.arch.stride
    return [(w, w), (w + 2 * s + 5, w + 3 * s + 11)]


def export_onnx(
    net: object,
    spec: ModelSpec,
    out: str | Path,
    check: bool = True,
    seed: int = 0,
    half: bool = False,
    fine_form: str = "dilated",
) -> ExportReport:
    """Write ``out`` (atomically) with dynamic batch/height/width, outputs ``scores``/``boxes``.

    ``scores`` are softmax probabilities (N, C', Ho, Wo), ``boxes`` the regressor's edges
    (N, 4 * classes, Ho, Wo). With ``check``, ONNX Runtime and torch are compared on two input
    sizes and :class:`ParityError` is raised above tolerance. ``fine_form`` picks the fine-stride
    graph: ``dilated`` or ``batch`` (the same outputs; see :mod:`overfeat_edge.models.overfeat`).
    """
    torch = require("torch", "ONNX export")
    onnx = require("onnx", "ONNX export")
    from overfeat_edge.models.overfeat import OverFeatNet, _Predict

    assert isinstance(net, OverFeatNet)
    net.eval()
    net.set_fine_stride(spec.fine_stride)
    if spec.fine_stride:
        net.set_fine_form(fine_form)
    wrapper = _Predict(net).eval()
    w = spec.arch.window
    dummy = torch.zeros(1, spec.arch.in_channels, w, w)
    dyn = {0: "batch", 2: "height", 3: "width"}
    out = Path(out)
    report = ExportReport(path=out)
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (dummy,),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=list(spec.arch.output_names),
                dynamic_axes={INPUT_NAME: dyn, **{name: dyn for name in spec.arch.output_names}},
            )
        model = onnx.load(str(tmp))
        model.producer_name = "overfeat-edge"
        del model.metadata_props[:]
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, spec.to_json()
        onnx.checker.check_model(model, full_check=True)
        if half:
            model = to_half(model)
        onnx.save(model, str(tmp))
        if check:
            _parity(net, spec, tmp, report, seed, (ATOL_HALF, RTOL_HALF) if half else (ATOL, RTOL))
    from overfeat_edge.export.packed import write_packed
    from overfeat_edge.runtime.canvas import packed_name

    if not half and spec.arch.kind == "detector":  # a pyramid's small levels in one call, where it can be exact
        report.packed = write_packed(out)
    else:
        packed_name(out).unlink(missing_ok=True)  # an earlier export's, now stale
    return report


def to_half(model: object) -> object:
    """Float16 weights and compute, float32 inputs and outputs (what TensorRT 11's strong typing and
    FP16 engines want). Uses ONNX Runtime's own converter; our metadata is kept."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx = require("onnx", "FP16 ONNX export")
    _toposort(converted.graph)  # the converter appends the input casts at the end
    onnx.checker.check_model(converted, full_check=True)
    return converted


def _toposort(graph: object) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (stable)."""
    nodes = list(graph.node)  # type: ignore[attr-defined]
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}  # type: ignore[attr-defined]
    ordered: list[object] = []
    while nodes:
        ready = [n for n in nodes if all(not x or x in known for x in n.input)]
        if not ready:
            raise ParityError("FP16 conversion left a graph with a cycle or a missing input")
        for n in ready:
            ordered.append(n)
            known.update(n.output)
        nodes = [n for n in nodes if n not in ready]
    del graph.node[:]  # type: ignore[attr-defined]
    graph.node.extend(ordered)  # type: ignore[attr-defined]


def _parity(
    net: object, spec: ModelSpec, path: Path, report: ExportReport, seed: int, tols: tuple[float, float]
) -> None:
    torch = require("torch", "ONNX export")
    from overfeat_edge.runtime.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path)
    rng = np.random.default_rng(seed)
    for hw in parity_sizes(spec):
        x = rng.standard_normal((1, spec.arch.in_channels, *hw)).astype(np.float32)
        with torch.inference_mode():
            ref = [t.numpy() for t in net.predict_all(torch.from_numpy(x))]  # type: ignore[attr-defined]
        outputs = runner.run(x)
        names = spec.arch.output_names
        report.sizes.append(hw)
        agreement = Agreement(names)
        try:
            agreement.add([outputs[n] for n in names], ref)
        except ValueError as exc:
            raise ParityError(f"export parity at input {hw}, ONNX Runtime vs torch: {exc}") from None
        for name in names:
            report.max_abs_error[name] = max(agreement.max_abs_error[name], report.max_abs_error.get(name, 0.0))
            report.tolerance[name] = agreement.tolerance(name, *tols)
        failed = agreement.failures(*tols)
        if failed:
            raise ParityError(
                f"export parity: ONNX Runtime and torch differ at input {hw[0]}x{hw[1]}: {'; '.join(failed)}; "
                "the ONNX was not written"
            )
