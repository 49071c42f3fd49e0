"""What this machine has, for `doctor`: CPU, NVIDIA driver, GPU and CUDA, TensorRT, ONNX Runtime, OpenVINO,
OpenCV with or without GStreamer, whether the greedy merge is compiled, and how its CPU precisions compare."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from overfeat_edge.errors import OverfeatEdgeError


def version(module: str) -> str:
    """``module``'s version, "installed" where it has none, or "not installed"."""
    try:
        m = importlib.import_module(module)
    except Exception:
        return "not installed"
    return str(getattr(m, "__version__", getattr(m, "VERSION_TEXT", "installed")))


def nvidia_driver() -> str:
    """The NVIDIA driver's own line (desktop) or the L4T release (Jetson), or "" where there is none."""
    for path in (Path("/proc/driver/nvidia/version"), Path("/etc/nv_tegra_release")):
        try:
            first = path.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            continue
        return first[:120]
    return ""


def has_tensorrt() -> bool:
    """True when TensorRT's Python module loads."""
    try:
        from overfeat_edge.engine.trt import load_tensorrt

        load_tensorrt()
        return True
    except OverfeatEdgeError:
        return False


def _compiled(built: bool) -> str:
    return "compiled (C)" if built else "numpy (the C extension was not built: no compiler at install)"


def machine_rows(has_trt: bool) -> list[tuple[str, str]]:
    """(what, which version or why none) for each part of this machine doctor reports; ``has_trt``: `has_tensorrt`."""
    import cv2
    import onnxruntime as ort

    from overfeat_edge.pipeline.merge import COMPILED
    from overfeat_edge.pipeline.preprocess import COMPILED as POOL_COMPILED
    from overfeat_edge.runtime.auto import cpu
    from overfeat_edge.stream.sources import has_gstreamer

    rows: list[tuple[str, str]] = []
    bindings = version("cuda.bindings")
    cuda_python = bindings if bindings != "not installed" else version("cuda")
    gst = "yes" if has_gstreamer() else "no (csi:// and pipelines need it)"
    rows.append(("CPU", f"{cpu()}, {os.cpu_count()} cores"))
    driver = nvidia_driver()
    rows.append(("NVIDIA driver", driver or "none found (no /proc/driver/nvidia/version, no /etc/nv_tegra_release)"))
    try:
        from overfeat_edge.runtime.cuda import load_cuda

        cuda = load_cuda()
        gpu, cc = cuda.device()
        rows += [("GPU", f"{gpu} (compute capability {cc})"), ("CUDA API", cuda.name)]
        rows += [(k, v) for k, v in cuda.versions().items()]
    except OverfeatEdgeError as exc:
        rows.append(("GPU", f"not usable: {exc}" if driver else "none: this machine has no NVIDIA GPU driver"))
    rows += [
        ("TensorRT", version("tensorrt") if has_trt else "not installed"),
        ("Polygraphy", version("polygraphy")),
        ("pycuda", version("pycuda")),
        ("cuda-python", cuda_python),
        ("ONNX Runtime", f"{ort.__version__}; providers: {', '.join(ort.get_available_providers())}"),
        ("OpenVINO", version("openvino").split("-")[0]),
        ("OpenCV", f"{cv2.__version__}; GStreamer: {gst}"),
        ("greedy merge, NMS", _compiled(COMPILED)),
        ("adaptive pooling", _compiled(POOL_COMPILED)),
    ]
    return rows


def cpu_precisions(model: str) -> tuple[list[str], list[str]]:
    """Every installed CPU backend at every precision it runs, on two generated frames, against ONNX Runtime
    FP32 (a few rounds: a guide only). Returns a line per precision (how much faster, how close its
    detections are) and, for each one not run, why."""
    import numpy as np

    from overfeat_edge.sidebyside import side_by_side
    from overfeat_edge.train.synth import scene

    rng = np.random.default_rng(5)
    rows, skipped = side_by_side(model, [scene(rng)[0] for _ in range(2)], rounds=4)
    base = rows[0].median_ms
    lines = [f"{r.label}: {base / r.median_ms:.2f}x onnxruntime fp32 here; {r.detections.describe()}" for r in rows[1:]]
    return lines, skipped
