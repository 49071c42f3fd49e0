"""INT8 calibration on the user's own images, with ONNX Runtime's quantization tools.

The images go through exactly the runtime's preprocessing (:func:`level_inputs`: resize, RGB,
normalize) at every pyramid scale of the model. One calibration pass gives the activation ranges;
from them come

* ``model.qdq.onnx``: explicit quantization in the form TensorRT requires (QuantizeLinear /
  DequantizeLinear pairs, symmetric int8 with zero points 0, per-channel weights on the output
  channel axis, per-tensor activations); the only INT8 path on TensorRT 11, and it runs on ONNX
  Runtime's CPU provider too (``onnxruntime.quantization.quantize_static``, QDQ format);
* ``trt.cache``: a TensorRT calibration cache for the implicit path on TensorRT 8.x-10.x
  (``TRT-<version>-EntropyCalibration2``, then ``tensor: <scale as float32 bits, 8 hex digits>``,
  scale = max(|min|, |max|) / 127). ONNX Runtime's own ``calibration.cache`` is another format;
* ``ranges.json``: the ranges themselves (ONNX Runtime's format, reused if present).

Outputs live in ``calib/<model>/<key>/`` where ``key`` hashes the ONNX, the preprocessing (spec),
the pyramid, the method, the exclusions and the image set: nothing is recalibrated unless one
of them changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_path, atomic_write_text
from overfeat_edge.lazy import require
from overfeat_edge.pipeline.preprocess import PREPROCESS_VERSION, level_inputs
from overfeat_edge.pipeline.pyramid import parse_scales, plan_levels
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import INPUT_NAME
from overfeat_edge.spec import METADATA_KEY, ModelSpec
from overfeat_edge.stream.sources import Source, SourceSpec, parse_source

METHODS = ("entropy", "percentile", "minmax")
MIN_IMAGES = 16  # fewer and the ranges are noisy: a warning, not an error
TRT_CACHE_VERSION = "8601"  # the header's version field; TensorRT 8.6.1 (JetPack 5.1) by default


@dataclass
class CalibrationSet:
    """Frames (BGR uint8) from a folder, glob or video; unreadable ones skipped and counted."""

    source: SourceSpec
    frames: list[np.ndarray] = field(default_factory=list)
    skipped: int = 0
    digest: str = ""


@dataclass(frozen=True)
class Quantization:
    """What one calibration quantizes: the FP32 ONNX and its spec, the frames (BGR uint8) at the pyramid
    ``scales``, the calibration ``method``, the node names kept float; ``on_frame`` is called per network input."""

    onnx_path: Path
    spec: ModelSpec
    frames: list[np.ndarray]
    scales: list[str]
    method: str
    exclude: list[str] = field(default_factory=list)
    on_frame: Callable[[], None] | None = None


_CHUNK = 4  # network inputs per collect_data call


def load_images(uri: str, count: int) -> CalibrationSet:
    """Up to ``count`` frames of ``uri`` (evenly spread over a video), hashed by their pixels."""
    spec = parse_source(uri)
    if spec.live:
        raise InputError(f"--images must be a folder, glob or video file, not a live source ({uri})")
    if count < 1:
        raise InputError(f"--count must be >= 1, got {count}")
    src = Source(spec)
    frames: list[np.ndarray] = []
    h = hashlib.sha256()
    try:
        total = (
            len(spec.paths)
            if spec.kind == "images"
            else int(src.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if src.cap
            else 0
        )
        step = max(1, total // count) if total else 1
        i = 0
        while len(frames) < count and (f := src.read()) is not None:
            if i % step == 0:
                frames.append(f.image)
                h.update(f.image.tobytes()[::97])  # a sample of every frame: cheap, changes with content
            i += 1
    finally:
        src.close()
    if not frames:
        raise InputError(f"{uri}: no readable images (skipped {src.skipped})")
    return CalibrationSet(spec, frames, src.skipped, h.hexdigest()[:16])


class LevelReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over a list of network inputs."""

    def __init__(self, inputs: list[np.ndarray], on_input: Callable[[], None] | None = None) -> None:
        self.inputs, self.on_input, self.i = inputs, on_input, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.inputs):
            return None
        self.i += 1
        if self.on_input is not None:
            self.on_input()
        return {INPUT_NAME: self.inputs[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return ({INPUT_NAME: x} for x in self.inputs)


def pyramid_inputs(
    frames: list[np.ndarray], spec: ModelSpec, scales: list[str]
) -> dict[tuple[int, int], list[np.ndarray]]:
    """Every frame's network input at every pyramid level (the runtime's own preprocessing), by shape.

    ONNX Runtime's histogram calibrators stack what they collect, so one call sees one shape.
    """
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    parsed = parse_scales(scales)
    for frame in frames:
        levels = plan_levels(spec.arch, spec.fine_stride, frame.shape[:2], parsed)
        for lv, x in zip_strict(levels, level_inputs(frame, levels, spec)):
            groups.setdefault(lv.input_hw, []).append(x)
    return groups


def level_count(frames: list[np.ndarray], spec: ModelSpec, scales: list[str]) -> int:
    """How many network inputs :func:`pyramid_inputs` makes of ``frames`` (a rule's levels depend on each size)."""
    parsed = parse_scales(scales)
    return sum(len(plan_levels(spec.arch, spec.fine_stride, f.shape[:2], parsed)) for f in frames)


def calibration_key(
    onnx_sha: str, spec: ModelSpec, scales: list[str], method: str, exclude: list[str], images: str
) -> str:
    # the preprocessing version too: ranges measured on other inputs are not these inputs' ranges
    text = json.dumps([onnx_sha, spec.to_json(), scales, method, sorted(exclude), images, PREPROCESS_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    table = {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }
    if name not in table:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {name!r}")
    return table[name]


def resolve_exclusions(onnx_path: Path, names: list[str]) -> list[str]:
    """``--exclude`` names -> node names: a node's name, or a tensor's (the report lists tensors),
    which means the node that produces it. An unknown name is an :class:`InputError`."""
    if not names:
        return []
    onnx = require("onnx", "calibrate")
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    nodes = {n.name for n in graph.node}
    producer = {out: n.name for n in graph.node for out in n.output}
    resolved = []
    for name in names:
        if name in nodes:
            resolved.append(name)
        elif name in producer:
            resolved.append(producer[name])
        else:
            near = sorted(nodes | set(producer))[:6]
            raise InputError(
                f"--exclude {name!r}: no node or tensor of that name in {onnx_path.name} (e.g. {', '.join(near)})"
            )
    return sorted(set(resolved))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantization tools print progress and advice (on stdout and the root logger)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantize(job: Quantization, out_dir: Path) -> tuple[Path, Path]:
    """Calibrate ``job`` and write the two Q/DQ flavours and their ranges; returns (TensorRT's Q/DQ ONNX, its ranges).

    ``model.qdq.onnx`` (ranges ``ranges.json``) is what TensorRT requires: symmetric int8 activations
    (S8S8), Q/DQ wherever ONNX Runtime places them. ``model.cpu.qdq.onnx`` (``ranges.cpu.json``) is
    what CPU runtimes fuse: asymmetric uint8 activations and int8 per-channel weights (U8S8, the
    x86 kernels' form), Q/DQ around the convolutions only (ReLU and pools stay between them, where
    ONNX Runtime and OpenVINO fold them into the int8 convolution), ranges calibrated asymmetric
    (a ReLU's starts at 0), and the heads' last convolutions and so the outputs stay float.
    """
    require("onnx", "calibrate")
    out_dir.mkdir(parents=True, exist_ok=True)
    qdq, ranges = out_dir / "model.qdq.onnx", out_dir / "ranges.json"
    cpu, cpu_ranges = out_dir / CPU_QDQ, out_dir / "ranges.cpu.json"
    groups = list(pyramid_inputs(job.frames, job.spec, job.scales).values())
    with _quiet():
        _calibrate(job, groups, ranges, symmetric=True)
        _write_qdq(job, job.exclude, qdq, ranges)
    quantize_cpu(job, groups, cpu, cpu_ranges)
    return qdq, ranges


def quantize_cpu(job: Quantization, groups: list[list[np.ndarray]], qdq: Path, ranges: Path) -> Path:
    """The CPU runtimes' Q/DQ flavour of ``job``'s model alone (see :func:`quantize`), calibrated on
    ``groups``: network inputs (N, 3, H, W) float32, one shape per group (a cascade stage's crops, not
    ``job``'s pyramid); ranges in ``ranges``; returns ``qdq``."""
    with _quiet():
        _calibrate(job, groups, ranges, symmetric=False)
        _write_qdq(job, job.exclude + head_convs(job.onnx_path), qdq, ranges, cpu_flavour=True)
    return qdq


CPU_QDQ = "model.cpu.qdq.onnx"
CALIBRATED = ("model.qdq.onnx", CPU_QDQ, "trt.cache")  # what a finished calibration folder holds


def is_calibrated(dest: Path, also: Sequence[str] = ()) -> bool:
    """True when ``dest`` holds both Q/DQ flavours, TensorRT's cache and the files ``also`` names (a
    cascade's stages); the key names its inputs."""
    return all((dest / f).is_file() for f in (*CALIBRATED, *also))


def quantize_to(job: Quantization, dest: Path, trt_version: str) -> Path:
    """`quantize` into ``dest``, then TensorRT's calibration cache from its ranges; returns TensorRT's Q/DQ ONNX."""
    qdq, ranges = quantize(job, dest)
    write_trt_cache(dest / "trt.cache", tensor_scales(ranges), trt_version)
    return qdq


def head_convs(onnx_path: Path) -> list[str]:
    """The convolutions whose output is a graph output, directly or through Softmax (kept float)."""
    onnx = require("onnx", "calibrate")
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    softmax_in = {n.input[0] for n in graph.node if n.op_type == "Softmax" and set(n.output) & outputs}
    return [n.name for n in graph.node if n.op_type == "Conv" and set(n.output) & (outputs | softmax_in)]


def _calibrate(job: Quantization, groups: list[list[np.ndarray]], ranges: Path, symmetric: bool) -> None:
    from onnxruntime.quantization import create_calibrator, save_tensors_data

    if not ranges.is_file():
        # symmetric ranges; collect_data calls of one input shape each (the histogram calibrators
        # stack what one call collects) and of _CHUNK inputs at most: a call holds every
        # intermediate tensor of its inputs until it folds them into the ranges or histograms at
        # its end (16 frames x 6 levels in one pass peaked at 1.8 GB). Not
        # CalibMaxIntermediateOutputs: in onnxruntime 1.32 the min-max calibrator drops, rather than
        # folds, what it collected when that is set.
        options: dict[str, Any] = {"symmetric": symmetric}
        if job.method == "percentile":
            options["percentile"] = 99.99
        with tempfile.TemporaryDirectory(prefix="overfeat-calib-") as tmpdir:
            calibrator = create_calibrator(
                job.onnx_path,
                augmented_model_path=str(Path(tmpdir) / "augmented.onnx"),
                calibrate_method=_method(job.method),
                extra_options=options,
            )
            for inputs in groups:
                for i in range(0, len(inputs), _CHUNK):
                    calibrator.collect_data(LevelReader(inputs[i : i + _CHUNK], job.on_frame))
            with atomic_path(ranges) as tmp_ranges:
                save_tensors_data(calibrator.compute_data(), tmp_ranges)


def _write_qdq(job: Quantization, exclude: list[str], qdq: Path, ranges: Path, cpu_flavour: bool = False) -> None:
    """``job``'s model with Q/DQ from ``ranges`` (nodes ``exclude`` kept float), our spec in its metadata."""
    onnx = require("onnx", "calibrate")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if cpu_flavour:  # U8S8, convolutions only (see quantize); ONNX Runtime's own defaults otherwise
        extra: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
        activation, op_types = QuantType.QUInt8, ["Conv"]
    else:
        # int8 with zero point 0 (symmetric), per-channel weights: what TensorRT's Q/DQ requires; biases
        # stay float (TensorRT fuses them into the int8 convolution itself, and takes no int32 Q/DQ)
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
        activation, op_types = QuantType.QInt8, None
    with atomic_path(qdq) as tmp:
        quantize_static(
            str(job.onnx_path),
            str(tmp),
            None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=True,
            activation_type=activation,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude or None,
            calibrate_method=_method(job.method),
            extra_options=extra,
            calibration_cache_path=str(ranges),
        )
        model = onnx.load(str(tmp))
        del model.metadata_props[:]  # keep our spec, so the runtime reads the Q/DQ model like any other
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, job.spec.to_json()
        onnx.save(model, str(tmp))


def tensor_scales(ranges: Path) -> dict[str, float]:
    """Symmetric int8 scale of every calibrated tensor: max(|min|, |max|) / 127."""
    from onnxruntime.quantization import load_tensors_data

    out = {}
    for name, td in load_tensors_data(ranges).items():
        lo, hi = (float(np.asarray(v).ravel()[0]) for v in td.range_value)
        out[name] = max(abs(lo), abs(hi), 1e-8) / 127.0
    return out


def write_trt_cache(path: Path, scales: dict[str, float], version: str = TRT_CACHE_VERSION) -> None:
    """TensorRT's calibration cache text: a header line, then ``name: <float32 big-endian hex>``."""
    lines = [f"TRT-{version}-EntropyCalibration2"]
    lines += [f"{name}: {struct.pack('>f', s).hex()}" for name, s in sorted(scales.items())]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_trt_cache(path: Path) -> tuple[str, dict[str, float]]:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise InputError(f"{path}: not a TensorRT calibration cache")
    out = {}
    for ln in lines[1:]:
        name, hexv = ln.rsplit(":", 1)
        out[name.strip()] = struct.unpack(">f", bytes.fromhex(hexv.strip()))[0]
    return lines[0], out
